//! The REST API under `/api/v1`: apply bundles (with dry-run plans and diffs), CRUD on apps,
//! label-selected lists, events and spec-file problems, images (`images.rs`); plus `/healthz`
//! and `/readyz`.
//!
//! Handlers parse and validate input, then call the store; they never call Docker except to
//! observe for a dry-run plan. `router(state)` builds everything, so tests drive it with
//! `oneshot` and no socket.

pub mod apps;
pub mod error;
pub mod extract;
pub mod images;
pub mod security;
pub mod selector;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::auth::{Need, Principal, Role};
use crate::images::ImageService;
use crate::images::PullPhase;
use crate::reconcile::preview::PreviewError;
use crate::reconcile::{Controller, Health};
use crate::runtime::Runtime;
use crate::spec::image::canonical_reference;
use crate::spec::validate::{AppKey, check_name, check_namespace};
use crate::spec::{
    Format, Kind, SpecError, Validated, parse_documents, parse_values, validate_bundle,
};
use crate::stats::StatsConfig;
use crate::store::{
    ObjectRecord, SOURCE_API, Store, StoreError, WriteItem, WriteOutcome, ownership_message,
};
use error::{ApiError, ApiResult};
use extract::{Path, Query};
use security::{noted, require_admin, require_role};
use selector::Selector;

/// Default request body limit.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub runtime: Arc<dyn Runtime>,
    pub wake: Arc<Notify>,
    /// SHA-256 of the admin token of the data directory.
    pub admin_sha256: [u8; 32],
    pub health: watch::Receiver<Health>,
    /// Pulls and registry checks (shared with the loop, for live progress).
    pub images: Arc<ImageService>,
    /// The loop, for actions that must not run beside its work on the same app.
    pub controller: Arc<Controller>,
    /// Sampling interval and retention (which resolution a stats query reads).
    pub stats: StatsConfig,
    pub instance: String,
    pub max_body: usize,
}

/// One route of the API: where it is, and what its caller needs. The router is built from this
/// table and nothing else, so every route is authorised (and the role-matrix test walks it).
#[derive(Clone, Debug)]
pub struct ApiRoute {
    pub method: Method,
    /// Under `/api/v1`, with `{ns}`-style parameters (`/metrics` is outside it).
    pub path: &'static str,
    pub need: Need,
}

fn route(
    method: Method,
    path: &'static str,
    need: Need,
    handler: MethodRouter<ApiState>,
) -> (ApiRoute, MethodRouter<ApiState>) {
    (ApiRoute { method, path, need }, handler)
}

/// Every route under `/api/v1`.
fn api_table() -> Vec<(ApiRoute, MethodRouter<ApiState>)> {
    use Method as M;
    use Need::{Everywhere, Namespace, Somewhere, Token};
    use Role::{Admin, Editor, Viewer};
    vec![
        // Each document is checked against its own namespace (Image: admin everywhere).
        route(M::POST, "/apply", Somewhere(Editor), post(apply)),
        route(M::GET, "/whoami", Token, get(security::whoami)),
        // Lists only the namespaces the token may read.
        route(M::GET, "/apps", Token, get(list_all)),
        route(M::GET, "/sources", Everywhere(Viewer), get(sources)),
        route(
            M::GET,
            "/namespaces/{ns}/apps",
            Namespace(Viewer),
            get(list_namespace),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Viewer),
            get(get_app),
        ),
        route(
            M::PUT,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Editor),
            put(put_app),
        ),
        route(
            M::PATCH,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Editor),
            patch(patch_app),
        ),
        route(
            M::DELETE,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Editor),
            delete(delete_app),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/events",
            Namespace(Viewer),
            get(app_events),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/restart",
            Namespace(Editor),
            post(apps::restart),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/kill",
            Namespace(Editor),
            post(apps::kill),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/hard-reset",
            Namespace(Editor),
            post(apps::hard_reset),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/inspect",
            Namespace(Viewer),
            get(apps::inspect),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/logs",
            Namespace(Viewer),
            get(apps::logs),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/git/{op}",
            Namespace(Editor),
            post(apps::git),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/stats",
            Namespace(Viewer),
            get(stats::app_stats),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/uptime",
            Namespace(Viewer),
            get(stats::app_uptime),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/users",
            Namespace(Viewer),
            get(apps::users),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/policy",
            Namespace(Viewer),
            get(security::get_policy),
        ),
        route(
            M::PUT,
            "/namespaces/{ns}/policy",
            Everywhere(Admin),
            put(security::put_policy),
        ),
        route(
            M::DELETE,
            "/namespaces/{ns}/policy",
            Everywhere(Admin),
            delete(security::delete_policy),
        ),
        route(
            M::GET,
            "/host/stats",
            Everywhere(Admin),
            get(stats::host_now),
        ),
        route(
            M::GET,
            "/host/stats/history",
            Everywhere(Admin),
            get(stats::host_history),
        ),
        route(M::GET, "/images", Token, get(images::list)),
        route(
            M::POST,
            "/images:update-all",
            Everywhere(Admin),
            post(images::update_all),
        ),
        route(M::GET, "/images/{name}", Token, get(images::get)),
        route(
            M::DELETE,
            "/images/{name}",
            Everywhere(Admin),
            delete(images::delete),
        ),
        route(
            M::POST,
            "/images/{name}/pull",
            Everywhere(Admin),
            post(images::pull),
        ),
        route(M::GET, "/images/{name}/events", Token, get(image_events)),
        route(
            M::POST,
            "/image-requests",
            Somewhere(Editor),
            post(security::request_image),
        ),
        // Admins see every request, others their own.
        route(
            M::GET,
            "/image-requests",
            Token,
            get(security::list_image_requests),
        ),
        route(
            M::POST,
            "/image-requests/{id}/approve",
            Everywhere(Admin),
            post(security::approve_image_request),
        ),
        route(
            M::POST,
            "/image-requests/{id}/reject",
            Everywhere(Admin),
            post(security::reject_image_request),
        ),
        route(
            M::POST,
            "/tokens",
            Everywhere(Admin),
            post(security::create_token),
        ),
        route(
            M::GET,
            "/tokens",
            Everywhere(Admin),
            get(security::list_tokens),
        ),
        route(
            M::DELETE,
            "/tokens/{id}",
            Everywhere(Admin),
            delete(security::revoke_token),
        ),
        route(M::GET, "/audit", Everywhere(Admin), get(security::audit)),
    ]
}

/// `GET /metrics`: every app's figures, so it needs a viewer of every namespace.
pub const METRICS_NEED: Need = Need::Everywhere(Role::Viewer);

/// The API's routes and what each needs (for documentation and the role-matrix test).
pub fn api_routes() -> Vec<ApiRoute> {
    api_table().into_iter().map(|(r, _)| r).collect()
}

fn guarded(need: Need, handler: MethodRouter<ApiState>) -> MethodRouter<ApiState> {
    handler.route_layer(middleware::from_fn_with_state(need, security::authorize))
}

pub fn router(state: ApiState) -> Router {
    let mut api = Router::new();
    for (r, handler) in api_table() {
        api = api.route(r.path, guarded(r.need, handler));
    }
    let api = api
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::authenticate,
        ));
    let metrics = Router::new()
        .route("/metrics", guarded(METRICS_NEED, get(metrics)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::authenticate,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(metrics)
        .route("/readyz", get(readyz))
        .nest("/api/v1", api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// `GET /metrics`: Prometheus text exposition (bearer token, as the API).
async fn metrics(State(state): State<ApiState>) -> ApiResult<Response> {
    let text = state
        .controller
        .metrics()
        .render(
            &state.store,
            state.controller.queue_depth(),
            state.stats.interval,
        )
        .await
        .map_err(|e| ApiError::internal("rendering metrics", e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let health = state.health.borrow().clone();
    let status = if health.docker_connected && health.passes > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

/// The body, or 413 / 400 in the API's error shape.
pub(crate) fn body(bytes: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    bytes.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "RequestEntityTooLarge",
                "request body is larger than the server's limit (--max-body)",
            )
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })
}

fn body_format(headers: &HeaderMap) -> Format {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if json { Format::Json } else { Format::Yaml }
}

fn read_documents(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Vec<Validated>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    let parsed = parse_documents(text, body_format(headers), None).map_err(ApiError::invalid)?;
    if parsed.is_empty() {
        return Err(ApiError::invalid(vec![SpecError::message(
            "the body holds no document",
        )]));
    }
    validate_bundle(parsed, None).map_err(ApiError::invalid)
}

fn items(docs: &[Validated]) -> Vec<WriteItem> {
    docs.iter().map(WriteItem::new).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

fn outcome_json(outcome: &str, record: &ObjectRecord) -> Value {
    json!({
        "kind": record.kind,
        "namespace": record.key.namespace,
        "name": record.key.name,
        "result": outcome,
        "uid": record.uid,
        "generation": record.generation,
        "resourceVersion": record.resource_version.to_string(),
    })
}

async fn apply(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ApplyQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let answer = apply_bundle(&state, &principal, &query, &headers, bytes).await;
    let status = match &answer {
        Ok(_) => 200,
        Err(e) => e.status.as_u16(),
    };
    state.controller.metrics().apply_answered(status);
    answer
}

/// 403 unless the principal may write every document of the bundle.
fn authorize_bundle(principal: &Principal, docs: &[Validated]) -> ApiResult<()> {
    for v in docs {
        match v.kind() {
            Kind::App => require_role(principal, Role::Editor, &v.key().namespace, &v.describe())?,
            Kind::Image => require_admin(principal, &v.describe())?,
        }
    }
    Ok(())
}

/// The one namespace a bundle writes to, if it writes to exactly one.
fn bundle_namespace(docs: &[Validated]) -> Option<&str> {
    let namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|v| v.kind() == Kind::App)
        .map(|v| v.key().namespace.as_str())
        .collect();
    match (namespaces.len(), docs.iter().all(|v| v.kind() == Kind::App)) {
        (1, true) => namespaces.into_iter().next(),
        _ => None,
    }
}

async fn apply_bundle(
    state: &ApiState,
    principal: &Principal,
    query: &ApplyQuery,
    headers: &HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let bytes = body(bytes)?;
    let docs = read_documents(headers, &bytes)?;
    authorize_bundle(principal, &docs)?;
    if query.dry_run {
        // A dry run answers the refusals the write would get.
        state.store.check_apply(&items(&docs), SOURCE_API).await?;
        return dry_run(state, &docs).await.map(|v| Json(v).into_response());
    }
    let results = state.store.apply(&items(&docs), SOURCE_API).await?;
    if results.iter().any(|(o, _)| *o != WriteOutcome::Unchanged) {
        state.wake.notify_one();
    }
    let note: Vec<String> = results
        .iter()
        .map(|(o, r)| format!("{} {}", r.describe(), o.as_str()))
        .collect();
    let items: Vec<Value> = results
        .iter()
        .map(|(o, r)| outcome_json(o.as_str(), r))
        .collect();
    Ok(noted(
        Json(json!({ "dryRun": false, "items": items })),
        format!("applied: {}", note.join(", ")),
        bundle_namespace(&docs),
    ))
}

/// YAML of what `diff` compares: labels, annotations and spec.
fn diff_text(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &Value,
) -> String {
    let mut doc = json!({ "spec": spec });
    if !labels.is_empty() || !annotations.is_empty() {
        doc["metadata"] = json!({ "labels": labels, "annotations": annotations });
    }
    serde_saphyr::to_string(&doc)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&doc).unwrap_or_default())
}

async fn dry_run(state: &ApiState, docs: &[Validated]) -> ApiResult<Value> {
    let mut out = Vec::new();
    let mut candidates = Vec::new();
    for v in docs {
        let key = v.key();
        let current = state.store.get(v.kind(), key).await?;
        let new_spec = v.document.spec_value();
        let meta = v.document.metadata();
        let new_text = diff_text(&meta.labels, &meta.annotations, &new_spec);
        let (result, old_text) = match &current {
            None => ("created", String::new()),
            Some(r) => {
                if r.source != SOURCE_API {
                    return Err(
                        StoreError::Conflict(ownership_message(v.kind(), key, &r.source)).into(),
                    );
                }
                let old = diff_text(&r.labels, &r.annotations, &json!(r.spec));
                let result = if old == new_text && !r.is_terminating() {
                    "unchanged"
                } else {
                    "configured"
                };
                (result, old)
            }
        };
        let diff = similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .header("current", "applied")
            .to_string();
        candidates.push(WriteItem::new(v).would_store(current.as_ref()));
        out.push(json!({
            "kind": v.kind(),
            "namespace": key.namespace,
            "name": key.name,
            "result": result,
            "diff": diff,
        }));
    }
    let mut plans = state
        .controller
        .preview(candidates)
        .await
        .map_err(|e| match e {
            PreviewError::Unobservable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "EngineUnavailable", m)
            }
            PreviewError::Store(e) => e.into(),
        })?;
    for (item, v) in out.iter_mut().zip(docs) {
        if v.kind() != Kind::App {
            continue;
        }
        let steps: Vec<Value> = plans
            .remove(v.key())
            .unwrap_or_default()
            .steps
            .iter()
            .map(|s| json!({ "action": s.action.verb(), "reason": s.reason }))
            .collect();
        item["plan"] = json!(steps);
    }
    Ok(json!({ "dryRun": true, "items": out }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    label_selector: Option<String>,
    owner: Option<String>,
}

async fn list_response(
    state: &ApiState,
    records: Vec<ObjectRecord>,
    query: &ListQuery,
) -> ApiResult<Json<Value>> {
    let selector = Selector::parse(query.label_selector.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", e))?;
    let mut items = Vec::new();
    for record in records
        .iter()
        .filter(|r| selector.matches(&r.labels))
        .filter(|r| query.owner.as_deref().is_none_or(|o| r.owner() == Some(o)))
    {
        let mut doc = record.to_document();
        stats::add_usage(state, record, &mut doc).await;
        items.push(doc);
    }
    Ok(Json(
        json!({ "apiVersion": "wharf/v1", "kind": "AppList", "items": items }),
    ))
}

async fn list_all(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let mut records = state.store.list(Kind::App, None).await?;
    records.retain(|r| principal.may(Need::Namespace(Role::Viewer), Some(&r.key.namespace)));
    list_response(&state, records, &query).await
}

async fn list_namespace(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    let records = state.store.list(Kind::App, Some(&ns)).await?;
    list_response(&state, records, &query).await
}

pub(crate) fn key_from_path(ns: String, name: String) -> ApiResult<AppKey> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    check_name(&name).map_err(ApiError::bad_request)?;
    Ok(AppKey {
        namespace: ns,
        name,
    })
}

async fn get_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let key = key_from_path(ns, name)?;
    let record = state
        .store
        .get(Kind::App, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("App {key} not found")))?;
    let mut doc = record.to_document();
    stats::add_usage(&state, &record, &mut doc).await;
    // While the app's image is being pulled, show the pull as it moves.
    let pulling = record
        .spec
        .app()
        .and_then(|s| canonical_reference(&s.image).ok())
        .and_then(|r| state.images.memory(&r).pull)
        .filter(|p| p.state == PullPhase::Pulling);
    if let Some(pull) = pulling
        && doc["status"].is_object()
    {
        doc["status"]["pull"] = json!(pull);
    }
    Ok(Json(doc))
}

async fn app_events(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let key = key_from_path(ns, name)?;
    let record = state
        .store
        .get(Kind::App, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("App {key} not found")))?;
    let events = state.store.events(&record.uid).await?;
    Ok(Json(json!({ "items": events })))
}

async fn image_events(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check_name(&name).map_err(ApiError::bad_request)?;
    let key = AppKey {
        namespace: String::new(),
        name,
    };
    let record = state
        .store
        .get(Kind::Image, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Image {key} not found")))?;
    let events = state.store.events(&record.uid).await?;
    Ok(Json(json!({ "items": events })))
}

fn check_path_matches(kind: Kind, key: &AppKey, v: &Validated) -> ApiResult<()> {
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

pub(crate) async fn write_one(
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
    let mut results = state.store.apply(&items(&[v]), SOURCE_API).await?;
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

async fn put_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let bytes = body(bytes)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
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
async fn patch_app(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let bytes = body(bytes)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    let patch: Value = match body_format(&headers) {
        Format::Json => crate::spec::parse::json_value(text)
            .map_err(|e| ApiError::bad_request(format!("patch is not JSON: {e}")))?,
        Format::Yaml => crate::spec::parse::from_yaml(text)
            .map_err(|e| ApiError::bad_request(format!("patch is not YAML: {e}")))?,
    };
    if !patch.is_object() {
        return Err(ApiError::bad_request("a merge patch must be an object"));
    }
    let record = state
        .store
        .get(Kind::App, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("App {key} not found")))?;
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
    // The version read above guards the write unless the patch names its own.
    json_patch::merge(&mut doc, &patch);
    let docs = validate_bundle(parse_values(vec![doc]).map_err(ApiError::invalid)?, None)
        .map_err(ApiError::invalid)?;
    write_one(&state, Kind::App, &key, docs).await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteQuery {
    resource_version: Option<String>,
}

async fn delete_app(
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
            Some(SOURCE_API),
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

async fn sources(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let errors = state.store.source_errors().await?;
    Ok(Json(json!({ "errors": errors })))
}
