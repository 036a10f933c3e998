//! Authentication and authorisation. Every request under `/api/v1` (and `/metrics`) passes
//! `authenticate`, which turns the bearer token into a `Principal` or answers 401, and records
//! every write's outcome in the audit log. Each route then passes `authorize` with the `Need`
//! its entry in the route table declares.

use axum::extract::{Extension, MatchedPath, OriginalUri, RawPathParams, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::{AuditNamespace, AuditNote};
use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use crate::auth::{Need, Principal, Role, digests_equal, token_digest};
use crate::store::now_rfc3339;
use crate::store::security::{NewAudit, TokenRefusal};

/// Why a token is refused, in the words of a 401.
pub fn refusal_message(refusal: &TokenRefusal) -> String {
    match refusal {
        TokenRefusal::Unknown => "the token is not valid".to_string(),
        TokenRefusal::Expired(id) => format!("token {id} has expired"),
        TokenRefusal::Revoked(id) => format!("token {id} was revoked"),
    }
}

pub fn is_write(method: &Method) -> bool {
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
                let why = refusal_message(&refusal);
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
