//! The image routes: list (declared Images and the engine's other images), get with live pull
//! progress, pull now, update-all by registry digest, and delete — refused while containers use
//! the image, and never touching containers wharf does not own.
//!
//! Pulls and checks run in the request (the caller gets the outcome, not a background thread),
//! and their progress is visible to every other client through `GET /api/v1/images/{name}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use super::state::ApiState;
use super::views::{Items, ObjectList};
use crate::images::PullPhase;
use crate::reconcile::status::{unix_rfc3339, users};
use crate::runtime::image_match::{created_from, find_local};
use crate::runtime::{ImageSummary, RuntimeError, labels};
use crate::spec::status::{ImagePhase, ImageStatus, ObjectStatus};
use crate::spec::validate::{AppKey, check_name};
use crate::spec::{ImageSpec, Kind};
use crate::store::{Event, EventType, ObjectRecord, ObjectSource, ObjectView, StoreError};

fn image_key(name: String) -> ApiResult<AppKey> {
    check_name(&name).map_err(ApiError::bad_request)?;
    Ok(AppKey {
        namespace: String::new(),
        name,
    })
}

fn spec_of(record: &ObjectRecord) -> ApiResult<ImageSpec> {
    record
        .image_spec()
        .map_err(|e| ApiError::internal("stored Image no longer validates", e))
}

/// A declared Image as the API shows it: its document, marked managed, with the live pull
/// progress while a pull is under way.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeclaredImage<'a> {
    #[serde(flatten)]
    pub object: ObjectView<'a>,
    pub managed: bool,
}

/// An image in the engine that no Image object declares.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineImage {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub managed: bool,
    pub metadata: EngineImageMeta,
    pub status: EngineImageStatus,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EngineImageMeta {
    /// Its first tag, or the start of its id.
    pub name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineImageStatus {
    pub phase: ImagePhase,
    pub id: String,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    pub size: i64,
    pub created: Option<String>,
    pub used_by: usize,
    pub used_by_apps: Vec<String>,
}

/// One entry of the image list.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ImageItem<'a> {
    Declared(DeclaredImage<'a>),
    Engine(EngineImage),
}

/// The stored status with the live pull (`spec` is the record's validated spec, when it still
/// validates): the pull as it moves, and phase `Pulling` while it does.
fn live_status(
    state: &ApiState,
    record: &ObjectRecord,
    spec: Option<&ImageSpec>,
) -> Option<ObjectStatus> {
    let pull = state.images.memory(&spec?.canonical).pull?;
    let mut status = record
        .image_status()
        .cloned()
        .unwrap_or_else(|| ImageStatus {
            phase: ImagePhase::Missing,
            observed_generation: None,
            conditions: Vec::new(),
            id: None,
            digest: None,
            tags: Vec::new(),
            size: None,
            created: None,
            pulled_at: None,
            last_checked_at: None,
            remote_digest: None,
            used_by: 0,
            used_by_apps: Vec::new(),
            pull: None,
            message: None,
        });
    if pull.state == PullPhase::Pulling {
        status.phase = ImagePhase::Pulling;
    }
    status.pull = Some(pull);
    Some(ObjectStatus::Image(status))
}

/// `record` as the API shows it, with `live` (from `live_status`) in place of its stored status.
fn declared<'a>(record: &'a ObjectRecord, live: &'a Option<ObjectStatus>) -> DeclaredImage<'a> {
    let mut object = record.view();
    if live.is_some() {
        object.status = live.as_ref();
    }
    DeclaredImage {
        object,
        managed: true,
    }
}

/// `GET /api/v1/images`: declared Images, then the engine's images no Image declares.
pub async fn list(State(state): State<ApiState>) -> ApiResult<Response> {
    let records = state.store.list(Kind::Image, None).await?;
    let observed = state
        .controller
        .listing()
        .await
        .map_err(|e| ApiError::runtime("listing the engine's images and containers", e))?;
    let (engine, containers) = (observed.images, observed.containers);
    let specs: Vec<Option<ImageSpec>> = records.iter().map(|r| spec_of(r).ok()).collect();
    let lives: Vec<Option<ObjectStatus>> = records
        .iter()
        .zip(&specs)
        .map(|(r, s)| live_status(&state, r, s.as_ref()))
        .collect();
    let declared_ids: Vec<&str> = specs
        .iter()
        .flatten()
        .filter_map(|s| find_local(&engine, &s.canonical))
        .map(|i| i.id.as_str())
        .collect();
    let mut items: Vec<ImageItem<'_>> = records
        .iter()
        .zip(&lives)
        .map(|(r, live)| ImageItem::Declared(declared(r, live)))
        .collect();
    for image in engine
        .iter()
        .filter(|i| !declared_ids.contains(&i.id.as_str()))
    {
        let used = users(image, None, &containers);
        let name = image
            .repo_tags
            .first()
            .cloned()
            .unwrap_or_else(|| image.id.chars().take(19).collect());
        items.push(ImageItem::Engine(EngineImage {
            api_version: crate::spec::wire::API_VERSION,
            kind: "Image",
            managed: false,
            metadata: EngineImageMeta { name },
            status: EngineImageStatus {
                phase: ImagePhase::Present,
                id: image.id.clone(),
                tags: image.repo_tags.clone(),
                digests: image.repo_digests.clone(),
                size: image.size,
                created: unix_rfc3339(image.created),
                used_by: used.len(),
                used_by_apps: used,
            },
        }));
    }
    Ok(Json(ObjectList::new("ImageList", items)).into_response())
}

/// `GET /api/v1/images/{name}`.
pub async fn get(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult<Response> {
    let key = image_key(name)?;
    let record = state.record(Kind::Image, &key).await?;
    let spec = spec_of(&record).ok();
    let live = live_status(&state, &record, spec.as_ref());
    Ok(Json(declared(&record, &live)).into_response())
}

/// `POST /api/v1/images/{name}/pull`: pulls now, whatever the policy says, and answers when the
/// pull is done. The loop is woken afterwards: apps using a changed image roll.
pub async fn pull(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult<Response> {
    let key = image_key(name)?;
    let record = state.record(Kind::Image, &key).await?;
    if record.is_terminating() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Image {key} is being deleted"),
        ));
    }
    let spec = spec_of(&record)?;
    let result = state
        .images
        .pull(&spec.canonical, spec.credentials.as_ref())
        .await;
    let outcome = match &result {
        Ok(()) => (
            EventType::Normal,
            "Pulled",
            format!("pulled {} on request", spec.reference),
        ),
        Err(e) => (
            EventType::Warning,
            e.reason(),
            format!("pull on request failed: {e}"),
        ),
    };
    if let Err(e) = state
        .store
        .record_event(&record, outcome.0, outcome.1, &outcome.2)
        .await
    {
        tracing::warn!(image = %key, "could not record event: {e}");
    }
    state.wake.notify_one();
    result.map_err(|e| ApiError::runtime("pull", e))?;
    let live = live_status(&state, &record, Some(&spec));
    Ok(Json(declared(&record, &live)).into_response())
}

/// `POST /api/v1/images:update-all`: for every declared Image that may be pulled, one manifest
/// HEAD to its registry; only images whose digest changed are pulled. The loop then rolls the
/// apps using them, one app at a time per image.
pub async fn update_all(State(state): State<ApiState>) -> ApiResult<Json<UpdateAll>> {
    let records = state.store.list(Kind::Image, None).await?;
    let engine = state
        .controller
        .engine_images()
        .await
        .map_err(|e| ApiError::runtime("listing images", e))?;
    let mut items = Vec::new();
    for record in records.iter().filter(|r| !r.is_terminating()) {
        let Ok(spec) = spec_of(record) else { continue };
        let item = update_one(&state, &spec, &engine).await;
        let (kind, reason) = match item.result {
            UpdateResult::Error => (EventType::Warning, "UpdateCheckFailed"),
            UpdateResult::Pulled | UpdateResult::Pinned => (EventType::Normal, "Updated"),
            _ => (EventType::Normal, "Checked"),
        };
        let message = format!(
            "update-all: {}{}",
            item.result.as_str(),
            item.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
        if let Err(e) = state
            .store
            .record_event(record, kind, reason, &message)
            .await
        {
            tracing::warn!(image = %record.key, "could not record event: {e}");
        }
        items.push(UpdateItem {
            name: record.key.name.clone(),
            ..item
        });
    }
    let pulled = items
        .iter()
        .filter(|i| i.result == UpdateResult::Pulled)
        .count();
    if pulled > 0 || items.iter().any(|i| i.result == UpdateResult::Pinned) {
        state.wake.notify_one();
    }
    Ok(Json(UpdateAll { pulled, items }))
}

/// The answer to update-all.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UpdateAll {
    /// How many images were pulled (their apps are then rolled).
    pub pulled: usize,
    pub items: Vec<UpdateItem>,
}

/// What update-all did for one declared Image.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateItem {
    pub name: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub result: UpdateResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_digest: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateResult {
    Skipped,
    Unchanged,
    Pulled,
    /// Swarm mode: the registry's digest is pinned into the services using the image (each
    /// node pulls it as its tasks are replaced; services already on it are unchanged).
    Pinned,
    Error,
}

impl UpdateResult {
    fn as_str(self) -> &'static str {
        match self {
            UpdateResult::Skipped => "skipped",
            UpdateResult::Unchanged => "unchanged",
            UpdateResult::Pulled => "pulled",
            UpdateResult::Pinned => "pinned",
            UpdateResult::Error => "error",
        }
    }
}

/// Checks one Image's registry digest against the engine's copy and pulls it when it changed.
async fn update_one(state: &ApiState, spec: &ImageSpec, engine: &[ImageSummary]) -> UpdateItem {
    let mut item = UpdateItem {
        name: String::new(),
        reference: spec.reference.clone(),
        result: UpdateResult::Unchanged,
        reason: None,
        message: None,
        remote_digest: None,
        local_digest: None,
    };
    if spec.pull_policy == crate::spec::image::PullPolicy::Never {
        item.result = UpdateResult::Skipped;
        item.message = Some("pullPolicy is Never".into());
        return item;
    }
    let creds = spec.credentials.as_ref();
    if state.controller.swarm().is_some() {
        // The nodes pull, not this engine: the digest goes into the services' spec.
        match state.images.check(&spec.canonical, creds).await {
            Ok(digest) => {
                item.result = UpdateResult::Pinned;
                item.message = Some(format!(
                    "services using it run {}@{digest}; Swarm rolls those that ran another digest",
                    spec.reference
                ));
                item.remote_digest = Some(digest);
            }
            Err(e) => {
                item.result = UpdateResult::Error;
                item.reason = Some(e.reason());
                item.message = Some(e.to_string());
            }
        }
        return item;
    }
    let check = match state
        .images
        .check_against(&spec.canonical, creds, engine)
        .await
    {
        Ok(check) => check,
        Err(e) => {
            item.result = UpdateResult::Error;
            item.reason = Some(e.reason());
            item.message = Some(e.to_string());
            return item;
        }
    };
    item.remote_digest = Some(check.remote_digest);
    item.local_digest = check.local_digest;
    if !check.changed {
        return item;
    }
    match state.images.pull(&spec.canonical, creds).await {
        Ok(()) => item.result = UpdateResult::Pulled,
        Err(e) => {
            item.result = UpdateResult::Error;
            item.reason = Some(e.reason());
            item.message = Some(e.to_string());
        }
    }
    item
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
    resource_version: Option<String>,
}

/// `DELETE /api/v1/images/{name}[?force=true]`: removes the Docker image, then the object.
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    let key = image_key(name)?;
    let record = state.record(Kind::Image, &key).await?;
    if record.source != ObjectSource::Api {
        return Err(StoreError::Conflict(crate::store::ownership_message(
            Kind::Image,
            &key,
            &record.source,
        ))
        .into());
    }
    if let Some(rv) = &query.resource_version
        && *rv != record.resource_version.to_string()
    {
        return Err(StoreError::Conflict(format!(
            "Image {key} has resourceVersion {}, not {rv}",
            record.resource_version
        ))
        .into());
    }
    let spec = spec_of(&record)?;
    let engine = state
        .runtime
        .images()
        .await
        .map_err(|e| ApiError::runtime("listing images", e))?;
    if let Some(local) = find_local(&engine, &spec.canonical) {
        let using: Vec<_> = state
            .runtime
            .containers_using(&local.id)
            .await
            .map_err(|e| ApiError::runtime("listing containers", e))?
            .into_iter()
            .filter(|c| created_from(c, local, &spec.canonical))
            .collect();
        let name_of = |c: &crate::runtime::ContainerSummary| c.name.clone();
        let foreign: Vec<String> = using
            .iter()
            .filter(|c| {
                c.labels.get(labels::MANAGED_BY).map(String::as_str)
                    != Some(labels::MANAGED_BY_VALUE)
            })
            .map(name_of)
            .collect();
        if !using.is_empty() && !query.force {
            let names: Vec<String> = using.iter().map(name_of).collect();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ImageInUse",
                format!(
                    "Image {key} ({}) is used by {} container(s): {}; delete those first, or use ?force=true",
                    spec.reference,
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
        if !foreign.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ImageInUse",
                format!(
                    "Image {key} ({}) is used by containers wharf does not manage: {}; wharf never touches those, even with force",
                    spec.reference,
                    foreign.join(", ")
                ),
            ));
        }
        match state
            .runtime
            .remove_image(&spec.canonical, query.force)
            .await
        {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(ApiError::runtime("removing the image", e)),
        }
    }
    let record = state
        .store
        .delete(
            Kind::Image,
            &key,
            Some(&ObjectSource::Api),
            query.resource_version.as_deref(),
        )
        .await?;
    state.wake.notify_one();
    Ok(Json(record.to_document()))
}

pub async fn image_events(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Items<Event>>> {
    check_name(&name).map_err(ApiError::bad_request)?;
    let key = AppKey {
        namespace: String::new(),
        name,
    };
    let record = state.record(Kind::Image, &key).await?;
    let events = state.store.events(&record.uid).await?;
    Ok(Json(Items::new(events)))
}
