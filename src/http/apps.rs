//! Apps: label-selected lists, get (with usage and live pull progress), PUT, JSON merge PATCH,
//! DELETE, events, and the namespace's users.

use schemars::JsonSchema;
use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::audit::noted;
use super::body::{body, body_format, items, read_documents, text};
use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query, key_from_path};
use super::selector::Selector;
use super::state::ApiState;
use super::stats;
use super::views::{Items, ObjectList};
use crate::auth::{Need, Principal, Role};
use crate::images::{PullPhase, PullState};
use crate::spec::image::canonical_reference;
use crate::spec::status::ObjectStatus;
use crate::spec::validate::{AppKey, check_namespace};
use crate::spec::{Format, Kind, SpecError, Validated, parse_values, validate_bundle};
use crate::store::{Event, ObjectRecord, ObjectSource, ObjectView, WriteOutcome};

/// An App as the API shows it: its document, with its latest usage and a pull under way added
/// to its status.
pub type AppView<'a> = ObjectView<'a, LiveStatus<'a>>;

/// The stored status with what is live.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LiveStatus<'a> {
    #[serde(flatten)]
    pub stored: &'a ObjectStatus,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub usage: Option<stats::Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullState>,
}

/// `record` as the API shows an App.
fn app_view(
    record: &ObjectRecord,
    usage: Option<stats::Usage>,
    pull: Option<PullState>,
) -> AppView<'_> {
    record.view().map_status(|stored| LiveStatus {
        stored,
        usage,
        pull,
    })
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    label_selector: Option<String>,
    owner: Option<String>,
}

pub async fn list_response(
    state: &ApiState,
    records: Vec<ObjectRecord>,
    query: &ListQuery,
) -> ApiResult<Response> {
    let selector = Selector::parse(query.label_selector.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", e))?;
    let records: Vec<&ObjectRecord> = records
        .iter()
        .filter(|r| selector.matches(&r.labels))
        .filter(|r| query.owner.as_deref().is_none_or(|o| r.owner() == Some(o)))
        .collect();
    let mut live = stats::usages(state).await;
    let items = records
        .iter()
        .map(|record| app_view(record, live.remove(&record.uid), None))
        .collect();
    Ok(Json(ObjectList::new("AppList", items)).into_response())
}

pub async fn list_all(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let mut records = state.store.list(Kind::App, None).await?;
    records.retain(|r| principal.may(Need::Namespace(Role::Viewer), Some(&r.key.namespace)));
    list_response(&state, records, &query).await
}

pub async fn list_namespace(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    let records = state.store.list(Kind::App, Some(&ns)).await?;
    list_response(&state, records, &query).await
}

pub async fn get_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let record = state.record(Kind::App, &key).await?;
    let usage = stats::usage(&state, &record).await;
    // While the app's image is being pulled, show the pull as it moves.
    let pulling = record
        .spec
        .app()
        .and_then(|s| canonical_reference(&s.image).ok())
        .and_then(|r| state.images.memory(&r).pull)
        .filter(|p| p.state == PullPhase::Pulling);
    Ok(Json(app_view(&record, usage, pulling)).into_response())
}

pub async fn app_events(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Items<Event>>> {
    let key = key_from_path(ns, name)?;
    let record = state.record(Kind::App, &key).await?;
    let events = state.store.events(&record.uid).await?;
    Ok(Json(Items::new(events)))
}

pub fn check_path_matches(kind: Kind, key: &AppKey, v: &Validated) -> ApiResult<()> {
    if v.kind() != kind || v.key() != key {
        return Err(ApiError::invalid(vec![SpecError::field(
            "metadata",
            format!(
                "the document names {}, but the URL names {}",
                v.describe(),
                kind.describe(key)
            ),
        )]));
    }
    Ok(())
}

pub async fn write_one(
    state: &ApiState,
    kind: Kind,
    key: &AppKey,
    mut docs: Vec<Validated>,
) -> ApiResult<Response> {
    if docs.len() != 1 {
        return Err(ApiError::bad_request("send exactly one document"));
    }
    let v = docs.remove(0);
    check_path_matches(kind, key, &v)?;
    let mut results = state.store.apply(&items(&[v]), &ObjectSource::Api).await?;
    let (outcome, record) = results.remove(0);
    if outcome != WriteOutcome::Unchanged {
        state.wake.notify_one();
    }
    let status = if outcome == WriteOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(noted(
        (status, Json(record.to_document())),
        format!("{} {}", record.describe(), outcome.as_str()),
        Some(&key.namespace),
    ))
}

pub async fn put_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let bytes = body(bytes)?;
    let text = text(&bytes)?;
    // A document without a namespace takes the URL's.
    let mut values: Vec<Value> = match body_format(&headers) {
        Format::Json => match crate::spec::parse::json_value(text) {
            Ok(v) => vec![v],
            Err(e) => {
                return Err(ApiError::invalid(vec![SpecError {
                    line: Some(e.line() as u64),
                    column: Some(e.column() as u64),
                    ..SpecError::message(e.to_string())
                }]));
            }
        },
        Format::Yaml => {
            let docs = read_documents(&headers, &bytes)?;
            docs.into_iter().map(|d| d.document.to_value()).collect()
        }
    };
    for v in &mut values {
        if v.pointer("/metadata/namespace").is_none()
            && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), json!(key.namespace));
        }
    }
    let docs = validate_bundle(parse_values(values).map_err(ApiError::invalid)?, None)
        .map_err(ApiError::invalid)?;
    write_one(&state, Kind::App, &key, docs).await
}

/// JSON merge patch (RFC 7386) of an app; YAML bodies are read as the same patch.
pub async fn patch_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let bytes = body(bytes)?;
    let text = text(&bytes)?;
    let patch: Value = match body_format(&headers) {
        Format::Json => crate::spec::parse::json_value(text)
            .map_err(|e| ApiError::bad_request(format!("patch is not JSON: {e}")))?,
        Format::Yaml => crate::spec::parse::from_yaml(text)
            .map_err(|e| ApiError::bad_request(format!("patch is not YAML: {e}")))?,
    };
    if !patch.is_object() {
        return Err(ApiError::bad_request("a merge patch must be an object"));
    }
    // The version read guards each write, so a concurrent change is never lost. A patch that
    // names no resourceVersion of its own is applied to the newest version: when the loop
    // stored a status (which bumps the version) between the read and the write, it is merged
    // again and retried.
    let pinned = patch.pointer("/metadata/resourceVersion").is_some();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match patch_once(&state, &key, &patch).await {
            Err(e) if !pinned && attempt < PATCH_ATTEMPTS && e.status == StatusCode::CONFLICT => {}
            answer => return answer,
        }
    }
}

/// How often a merge patch without its own `resourceVersion` is tried against a changing object.
const PATCH_ATTEMPTS: usize = 5;

/// Reads the app, merges `patch` into it and writes it, guarded by the version read.
async fn patch_once(state: &ApiState, key: &AppKey, patch: &Value) -> ApiResult<Response> {
    let record = state.record(Kind::App, key).await?;
    let mut doc = record.to_document();
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        for server_set in [
            "uid",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "source",
        ] {
            meta.remove(server_set);
        }
    }
    json_patch::merge(&mut doc, patch);
    let docs = validate_bundle(parse_values(vec![doc]).map_err(ApiError::invalid)?, None)
        .map_err(ApiError::invalid)?;
    write_one(state, Kind::App, key, docs).await
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteQuery {
    resource_version: Option<String>,
}

pub async fn delete_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let record = state
        .store
        .delete(
            Kind::App,
            &key,
            Some(&ObjectSource::Api),
            query.resource_version.as_deref(),
        )
        .await?;
    state.wake.notify_one();
    Ok(noted(
        Json(record.to_document()),
        format!("{} marked for deletion", record.describe()),
        Some(&key.namespace),
    ))
}

/// The owners of a namespace's apps (the SRC API's users).
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserList {
    pub kind: &'static str,
    pub namespace: String,
    pub items: Vec<User>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct User {
    pub name: String,
    /// The names of the user's apps.
    pub apps: Vec<String>,
}

pub async fn users(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
) -> ApiResult<Json<UserList>> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in state.store.list(Kind::App, Some(&ns)).await? {
        if let Some(owner) = record.owner() {
            owners
                .entry(owner.to_string())
                .or_default()
                .push(record.key.name.clone());
        }
    }
    let items = owners
        .into_iter()
        .map(|(name, apps)| User { name, apps })
        .collect();
    Ok(Json(UserList {
        kind: "UserList",
        namespace: ns,
        items,
    }))
}
