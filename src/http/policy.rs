//! A namespace's policy: read (the effective one), set, and remove its override.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::audit::noted;
use super::body::{body, body_format, text};
use super::error::{ApiError, ApiResult};
use super::extract::Path;
use super::state::ApiState;
use crate::auth::Principal;
use crate::spec::Format;
use crate::spec::validate::check_namespace;

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
    let text = text(&bytes)?;
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
