//! The image routes: list (declared Images and the engine's other images), get with live pull
//! progress, pull now, update-all by registry digest, and delete — refused while containers use
//! the image, and never touching containers wharf does not own.
//!
//! Pulls and checks run in the request (the caller gets the outcome, not a background thread),
//! and their progress is visible to every other client through `GET /api/v1/images/{name}`.

use axum::Json;
use axum::extract::State;

use super::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use crate::images::PullPhase;
use crate::reconcile::status::{unix_rfc3339, users};
use crate::runtime::image_match::{created_from, find_local};
use crate::runtime::{RuntimeError, labels};
use crate::spec::validate::{AppKey, check_name};
use crate::spec::{ImageSpec, Kind};
use crate::store::EventType;
use crate::store::{ObjectRecord, ObjectSource, StoreError};

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

/// The stored document, with the live pull progress when a pull is under way (`spec` is the
/// record's validated spec, when it still validates).
fn with_live(state: &ApiState, record: &ObjectRecord, spec: Option<&ImageSpec>) -> Value {
    let mut doc = record.to_document();
    doc["managed"] = json!(true);
    let Some(spec) = spec else {
        return doc;
    };
    if let Some(pull) = state.images.memory(&spec.canonical).pull {
        if !doc["status"].is_object() {
            doc["status"] = json!({});
        }
        if pull.state == PullPhase::Pulling {
            doc["status"]["phase"] = json!("Pulling");
        }
        doc["status"]["pull"] = json!(pull);
    }
    doc
}

/// `GET /api/v1/images`: declared Images, then the engine's images no Image declares.
pub async fn list(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let records = state.store.list(Kind::Image, None).await?;
    let observed = state
        .controller
        .listing()
        .await
        .map_err(|e| ApiError::runtime("listing the engine's images and containers", e))?;
    let (engine, containers) = (observed.images, observed.containers);
    let mut declared_ids = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    for record in &records {
        let spec = spec_of(record).ok();
        if let Some(local) = spec
            .as_ref()
            .and_then(|s| find_local(&engine, &s.canonical))
        {
            declared_ids.push(local.id.clone());
        }
        items.push(with_live(&state, record, spec.as_ref()));
    }
    for image in engine.iter().filter(|i| !declared_ids.contains(&i.id)) {
        let used = users(image, None, &containers);
        let name = image
            .repo_tags
            .first()
            .cloned()
            .unwrap_or_else(|| image.id.chars().take(19).collect());
        items.push(json!({
            "apiVersion": "wharf/v1",
            "kind": "Image",
            "managed": false,
            "metadata": { "name": name },
            "status": {
                "phase": "Present",
                "id": image.id,
                "tags": image.repo_tags,
                "digests": image.repo_digests,
                "size": image.size,
                "created": unix_rfc3339(image.created),
                "usedBy": used.len(),
                "usedByApps": used,
            },
        }));
    }
    Ok(Json(
        json!({ "apiVersion": "wharf/v1", "kind": "ImageList", "items": items }),
    ))
}

/// `GET /api/v1/images/{name}`.
pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = image_key(name)?;
    let record = state.record(Kind::Image, &key).await?;
    let spec = spec_of(&record).ok();
    Ok(Json(with_live(&state, &record, spec.as_ref())))
}

/// `POST /api/v1/images/{name}/pull`: pulls now, whatever the policy says, and answers when the
/// pull is done. The loop is woken afterwards: apps using a changed image roll.
pub async fn pull(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(with_live(&state, &record, Some(&spec))))
}

/// `POST /api/v1/images:update-all`: for every declared Image that may be pulled, one manifest
/// HEAD to its registry; only images whose digest changed are pulled. The loop then rolls the
/// apps using them, one app at a time per image.
pub async fn update_all(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let records = state.store.list(Kind::Image, None).await?;
    let engine = state
        .controller
        .engine_images()
        .await
        .map_err(|e| ApiError::runtime("listing images", e))?;
    let mut items = Vec::new();
    let mut pulled = 0;
    for record in records.iter().filter(|r| !r.is_terminating()) {
        let Ok(spec) = spec_of(record) else { continue };
        let mut item = json!({ "name": record.key.name, "ref": spec.reference });
        if spec.pull_policy == crate::spec::image::PullPolicy::Never {
            item["result"] = json!("skipped");
            item["message"] = json!("pullPolicy is Never");
            items.push(item);
            continue;
        }
        let creds = spec.credentials.as_ref();
        match state
            .images
            .check_against(&spec.canonical, creds, &engine)
            .await
        {
            Err(e) => {
                item["result"] = json!("error");
                item["reason"] = json!(e.reason());
                item["message"] = json!(e.to_string());
            }
            Ok(check) => {
                item["remoteDigest"] = json!(check.remote_digest);
                item["localDigest"] = json!(check.local_digest);
                if !check.changed {
                    item["result"] = json!("unchanged");
                } else {
                    match state.images.pull(&spec.canonical, creds).await {
                        Ok(()) => {
                            pulled += 1;
                            item["result"] = json!("pulled");
                        }
                        Err(e) => {
                            item["result"] = json!("error");
                            item["reason"] = json!(e.reason());
                            item["message"] = json!(e.to_string());
                        }
                    }
                }
            }
        }
        let (kind, reason) = match item["result"].as_str() {
            Some("error") => (EventType::Warning, "UpdateCheckFailed"),
            Some("pulled") => (EventType::Normal, "Updated"),
            _ => (EventType::Normal, "Checked"),
        };
        let message = format!(
            "update-all: {}{}",
            item["result"].as_str().unwrap_or_default(),
            item["message"]
                .as_str()
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
        items.push(item);
    }
    if pulled > 0 {
        state.wake.notify_one();
    }
    Ok(Json(json!({ "pulled": pulled, "items": items })))
}

#[derive(Deserialize, Default)]
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
) -> ApiResult<Json<Value>> {
    check_name(&name).map_err(ApiError::bad_request)?;
    let key = AppKey {
        namespace: String::new(),
        name,
    };
    let record = state.record(Kind::Image, &key).await?;
    let events = state.store.events(&record.uid).await?;
    Ok(Json(json!({ "items": events })))
}
