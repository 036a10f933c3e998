//! Authentication, authorisation and the audit log, plus the routes that manage them: tokens,
//! namespace policies and image requests.
//!
//! Every request under `/api/v1` (and `/metrics`) passes `authenticate`, which turns the bearer
//! token into a `Principal` or answers 401, and records every write's outcome in the audit log.
//! Each route then passes `authorize` with the `Need` its entry in the route table declares.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, MatchedPath, OriginalUri, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use super::{ApiState, body, body_format};
use crate::auth::{
    ALL_NAMESPACES, Grant, Need, Principal, Role, digests_equal, new_token, token_digest,
};
use crate::spec::image::{RequestState, canonical_reference};
use crate::spec::validate::{AppKey, check_name, check_namespace};
use crate::spec::{Format, Kind, parse_values, validate_bundle};
use crate::store::security::{AuditQuery, NewAudit, TokenRefusal};
use crate::store::{SOURCE_API, WriteItem, now_rfc3339};

/// What a write did, for the audit log (set by handlers and by `ApiError`).
#[derive(Clone, Debug)]
pub struct AuditNote(pub String);

/// The namespace a request acted in, for the audit log.
#[derive(Clone, Debug)]
pub struct AuditNamespace(pub String);

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Resolves the bearer token to a principal (401 otherwise) and audits every write.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(token_digest);
    let Some(digest) = presented else {
        return ApiError::unauthorized("a bearer token is required (Authorization: Bearer TOKEN)")
            .into_response();
    };
    let principal = if digests_equal(&digest, &state.admin_sha256) {
        Principal::admin()
    } else {
        match state.store.principal_for(&digest, &now_rfc3339()).await {
            Ok(Ok(p)) => p,
            Ok(Err(refusal)) => {
                let why = match refusal {
                    TokenRefusal::Unknown => "the token is not valid".to_string(),
                    TokenRefusal::Expired(id) => format!("token {id} has expired"),
                    TokenRefusal::Revoked(id) => format!("token {id} was revoked"),
                };
                tracing::warn!(path = %request.uri().path(), "refused: {why}");
                return ApiError::unauthorized(why).into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
    let method = request.method().clone();
    // Inside the nested API router the URI has lost its `/api/v1` prefix.
    let path = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().path().to_string(),
        |u| u.path().to_string(),
    );
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_string(), |m| m.as_str().to_string());
    let token_id = principal.token_id.clone();
    request.extensions_mut().insert(principal);
    let response = next.run(request).await;
    if is_write(&method) {
        let status = response.status();
        let note = response.extensions().get::<AuditNote>().map_or_else(
            || status.canonical_reason().unwrap_or("").to_string(),
            |n| n.0.clone(),
        );
        let namespace = response
            .extensions()
            .get::<AuditNamespace>()
            .map(|n| n.0.clone());
        let entry = NewAudit {
            token_id: &token_id,
            method: method.as_str(),
            route: &route,
            path: &path,
            namespace: namespace.as_deref(),
            status: status.as_u16(),
            result: &note,
        };
        if let Err(e) = state.store.record_audit(&entry).await {
            tracing::error!(%token_id, %method, %path, "could not write the audit log: {e}");
        }
    }
    response
}

/// Checks the route's `Need` against the principal; the namespace is the path's `{ns}`.
pub async fn authorize(
    State(need): State<Need>,
    Extension(principal): Extension<Principal>,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let namespace = params
        .iter()
        .find(|(k, _)| *k == "ns")
        .map(|(_, v)| v.to_string());
    if !principal.may(need, namespace.as_deref()) {
        let scope = match (need, &namespace) {
            (Need::Namespace(_), Some(ns)) => format!(" ({ns})"),
            _ => String::new(),
        };
        let mut response = ApiError::forbidden(format!(
            "token {} may not do this: it needs {need}{scope}",
            principal.token_id
        ))
        .into_response();
        if let Some(ns) = namespace {
            response.extensions_mut().insert(AuditNamespace(ns));
        }
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(ns) = namespace
        && response.extensions().get::<AuditNamespace>().is_none()
    {
        response.extensions_mut().insert(AuditNamespace(ns));
    }
    response
}

/// 403 unless `principal` holds `role` in `namespace`.
pub fn require_role(
    principal: &Principal,
    role: Role,
    namespace: &str,
    what: &str,
) -> ApiResult<()> {
    if principal.may(Need::Namespace(role), Some(namespace)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token {} may not write {what}: it needs role {role} in namespace {namespace}",
            principal.token_id
        )))
    }
}

/// 403 unless `principal` is an admin of every namespace.
pub fn require_admin(principal: &Principal, what: &str) -> ApiResult<()> {
    if principal.may(Need::Everywhere(Role::Admin), None) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token {} may not write {what}: cluster-scoped objects need role admin on every namespace (*)",
            principal.token_id
        )))
    }
}

/// Adds the audit note (and the namespace, when there is one) to a response.
pub fn noted(response: impl IntoResponse, note: String, namespace: Option<&str>) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(AuditNote(note));
    if let Some(ns) = namespace {
        response
            .extensions_mut()
            .insert(AuditNamespace(ns.to_string()));
    }
    response
}

// ---- whoami and tokens -------------------------------------------------------------------

pub async fn whoami(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({ "tokenId": principal.token_id, "grants": principal.grants }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default)]
    description: String,
    grants: Vec<Grant>,
    /// e.g. `30d`, `12h`.
    #[serde(default)]
    expires_in: Option<String>,
}

/// Longest token lifetime `expiresIn` accepts.
const MAX_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 86400);

pub async fn create_token(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let bytes = body(bytes)?;
    let request: TokenRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("token request: {e}")))?;
    if request.grants.is_empty() {
        return Err(ApiError::bad_request(
            "grants: give at least one {namespace, role}",
        ));
    }
    for (i, g) in request.grants.iter().enumerate() {
        if g.namespace != ALL_NAMESPACES {
            check_namespace(&g.namespace)
                .map_err(|e| ApiError::bad_request(format!("grants[{i}].namespace: {e}")))?;
        }
    }
    if request.description.len() > 256 || request.description.contains(char::is_control) {
        return Err(ApiError::bad_request(
            "description: at most 256 characters, no control characters",
        ));
    }
    let expires_at = match request.expires_in.as_deref() {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "expiresIn: {text:?} is not a duration like 30d: {e}"
                ))
            })?;
            if d.is_zero() || d > MAX_TOKEN_LIFETIME {
                return Err(ApiError::bad_request(
                    "expiresIn: must be above 0 and at most 10 years",
                ));
            }
            let at = chrono::Utc::now()
                + chrono::Duration::from_std(d)
                    .map_err(|_| ApiError::bad_request("expiresIn: too long"))?;
            Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
    };
    let (id, secret) = new_token();
    let info = state
        .store
        .create_token(
            &id,
            &token_digest(&secret),
            &request.description,
            &request.grants,
            &principal.token_id,
            expires_at.as_deref(),
        )
        .await?;
    let grants: Vec<String> = info
        .grants
        .iter()
        .map(|g| format!("{}@{}", g.role, g.namespace))
        .collect();
    let mut out = json!(info);
    out["token"] = json!(secret);
    Ok(noted(
        (StatusCode::CREATED, Json(out)),
        format!("created token {id} ({})", grants.join(", ")),
        None,
    ))
}

pub async fn list_tokens(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let tokens = state.store.tokens().await?;
    Ok(Json(json!({ "items": tokens })))
}

pub async fn revoke_token(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ApiError::bad_request(format!("{id:?} is not a token id")));
    }
    let info = state.store.revoke_token(&id).await?;
    Ok(noted(
        Json(json!(info)),
        format!("revoked token {id}"),
        None,
    ))
}

// ---- audit --------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    token: Option<String>,
    namespace: Option<String>,
    since: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn audit(
    State(state): State<ApiState>,
    Query(params): Query<AuditParams>,
) -> ApiResult<Json<Value>> {
    let since = match params.since.as_deref() {
        None => None,
        Some(text) => Some(
            super::apps::parse_time(text)
                .map(|secs| {
                    chrono::DateTime::from_timestamp(secs, 0)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                })
                .map_err(|e| ApiError::bad_request(format!("since: {e}")))?,
        ),
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 1000"));
    }
    let items = state
        .store
        .audit(&AuditQuery {
            token_id: params.token,
            namespace: params.namespace,
            since,
            before: params.before,
            limit,
        })
        .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({ "items": items, "nextBefore": next })))
}

// ---- namespace policy ---------------------------------------------------------------------

pub async fn get_policy(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
) -> ApiResult<Json<Value>> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    let over = state.store.namespace_policy(&ns).await?;
    let effective = state.store.effective_policy(&ns).await?;
    let admission = state.store.admission();
    Ok(Json(json!({
        "namespace": ns,
        "override": over,
        "effective": effective,
        "hostMemoryAdmission": {
            "percent": admission.host_memory_percent,
            "hostMemory": admission.host_memory,
        },
    })))
}

pub async fn put_policy(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    let bytes = body(bytes)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    let policy: crate::policy::Policy = match body_format(&headers) {
        Format::Json => {
            serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("policy: {e}")))?
        }
        Format::Yaml => crate::spec::parse::from_yaml(text)
            .map_err(|e| ApiError::bad_request(format!("policy: {e}")))?,
    };
    policy
        .validate()
        .map_err(|e| ApiError::bad_request(format!("policy: {e}")))?;
    let value =
        serde_json::to_value(&policy).map_err(|e| ApiError::internal("storing the policy", e))?;
    state
        .store
        .set_namespace_policy(&ns, Some(&value), &principal.token_id)
        .await?;
    Ok(noted(
        Json(json!({ "namespace": ns, "override": value })),
        format!("set the policy of namespace {ns}: {value}"),
        Some(&ns),
    ))
}

pub async fn delete_policy(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    state
        .store
        .set_namespace_policy(&ns, None, &principal.token_id)
        .await?;
    Ok(noted(
        Json(json!({ "namespace": ns, "override": null })),
        format!("removed the policy override of namespace {ns}"),
        Some(&ns),
    ))
}

// ---- image requests -----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRequestBody {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    reason: String,
}

/// The Image object declaring `canonical`, if one does.
async fn declaring_image(state: &ApiState, canonical: &str) -> ApiResult<Option<AppKey>> {
    let images = state.store.list(Kind::Image, None).await?;
    Ok(images.into_iter().find_map(|r| {
        r.image_spec()
            .ok()
            .filter(|s| s.canonical == canonical && !r.is_terminating())
            .map(|_| r.key)
    }))
}

pub async fn request_image(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let bytes = body(bytes)?;
    let request: ImageRequestBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("image request: {e}")))?;
    if request.reason.len() > 1024
        || request
            .reason
            .contains(|c: char| c.is_control() && c != '\n')
    {
        return Err(ApiError::bad_request(
            "reason: at most 1024 characters, no control characters",
        ));
    }
    let canonical = canonical_reference(&request.reference)
        .map_err(|e| ApiError::bad_request(format!("ref: {e}")))?;
    if let Some(key) = declaring_image(&state, &canonical).await? {
        return Ok(noted(
            Json(json!({ "ref": canonical, "state": RequestState::Approved, "image": key.name })),
            format!("{canonical} is already approved (Image {})", key.name),
            None,
        ));
    }
    let (created, r) = state
        .store
        .request_image(&canonical, &request.reason, &principal.token_id)
        .await?;
    state.wake.notify_one();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(noted(
        (status, Json(json!(r))),
        format!("requested image {canonical} (request {})", r.id),
        None,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RequestListParams {
    state: Option<String>,
}

pub async fn list_image_requests(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<RequestListParams>,
) -> ApiResult<Json<Value>> {
    let wanted = params
        .state
        .as_deref()
        .map(str::parse::<RequestState>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("state: {e}")))?;
    // Admins see every request; anyone else their own.
    let mine = (!principal.may(Need::Everywhere(Role::Admin), None))
        .then_some(principal.token_id.as_str());
    let items = state.store.image_requests(mine, wanted).await?;
    Ok(Json(json!({ "items": items })))
}

fn request_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a request id")))
}

/// An Image name for a reference: its last path part and tag (`busybox-1-36`), made valid.
fn image_name_for(canonical: &str) -> String {
    let last = canonical.rsplit('/').next().unwrap_or(canonical);
    let last = last.split('@').next().unwrap_or(last);
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    name.truncate(50);
    if name.is_empty() {
        name = "image".into();
    }
    name.trim_end_matches('-').to_string()
}

pub async fn approve_image_request(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = request_id(&id)?;
    let request = state
        .store
        .image_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("image request {id} not found")))?;
    if request.state != RequestState::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "image request {id} was already {}",
                request.state.as_str().to_lowercase()
            ),
        ));
    }
    // Declaring the Image is the approval; one that declares it already is kept.
    let image = match declaring_image(&state, &request.reference).await? {
        Some(key) => key.name,
        None => {
            let base = image_name_for(&request.reference);
            let mut name = base.clone();
            let mut n = 1;
            while state
                .store
                .get(
                    Kind::Image,
                    &AppKey {
                        namespace: String::new(),
                        name: name.clone(),
                    },
                )
                .await?
                .is_some()
            {
                n += 1;
                name = format!("{base}-{n}");
            }
            check_name(&name).map_err(|e| ApiError::internal("naming the Image", e))?;
            let doc = json!({
                "apiVersion": "wharf/v1",
                "kind": "Image",
                "metadata": {
                    "name": name,
                    "annotations": {"wharf.approved-request": id.to_string()},
                },
                "spec": {"ref": request.reference},
            });
            let docs = validate_bundle(parse_values(vec![doc]).map_err(ApiError::invalid)?, None)
                .map_err(ApiError::invalid)?;
            let items: Vec<WriteItem> = docs.iter().map(WriteItem::new).collect();
            state.store.apply(&items, SOURCE_API).await?;
            name
        }
    };
    let decided = state
        .store
        .decide_image_request(id, RequestState::Approved, &principal.token_id, "")
        .await?;
    state.wake.notify_one();
    let mut out = json!(decided);
    out["image"] = json!(image);
    Ok(noted(
        Json(out),
        format!(
            "approved image request {id}: {} (Image {image})",
            request.reference
        ),
        None,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    #[serde(default)]
    message: String,
}

pub async fn reject_image_request(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let id = request_id(&id)?;
    let bytes = body(bytes)?;
    let reject: RejectBody = if bytes.is_empty() {
        RejectBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("rejection: {e}")))?
    };
    if reject.message.len() > 1024 {
        return Err(ApiError::bad_request("message: at most 1024 characters"));
    }
    let decided = state
        .store
        .decide_image_request(
            id,
            RequestState::Rejected,
            &principal.token_id,
            &reject.message,
        )
        .await?;
    state.wake.notify_one();
    Ok(noted(
        Json(json!(decided)),
        format!("rejected image request {id}: {}", decided.reference),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_come_from_the_reference() {
        assert_eq!(
            image_name_for("docker.io/library/busybox:1.36"),
            "busybox-1-36"
        );
        assert_eq!(
            image_name_for("127.0.0.1:5000/team/App_x:latest"),
            "app-x-latest"
        );
        assert!(check_name(&image_name_for("r/x@sha256:abc")).is_ok());
    }
}
