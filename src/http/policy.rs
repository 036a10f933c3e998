//! A namespace's policy: read (the effective one), set, and remove its override.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

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
) -> ApiResult<Json<NamespacePolicy>> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    let over = state.store.namespace_policy(&ns).await?;
    let effective = state.store.effective_policy(&ns).await?;
    let admission = state.store.admission();
    Ok(Json(NamespacePolicy {
        namespace: ns,
        over,
        effective: Some(effective),
        host_memory_admission: Some(HostMemoryAdmission {
            percent: admission.host_memory_percent,
            host_memory: admission.host_memory,
        }),
    }))
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
        Json(NamespacePolicy {
            namespace: ns.clone(),
            over: Some(value.clone()),
            effective: None,
            host_memory_admission: None,
        }),
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
        Json(NamespacePolicy {
            namespace: ns.clone(),
            over: None,
            effective: None,
            host_memory_admission: None,
        }),
        format!("removed the policy override of namespace {ns}"),
        Some(&ns),
    ))
}

/// A namespace's policy: its own override (`null` when it has none) and, when read, the policy
/// in effect there and the host memory admission.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePolicy {
    pub namespace: String,
    #[serde(rename = "override")]
    pub over: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<crate::policy::Policy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_memory_admission: Option<HostMemoryAdmission>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostMemoryAdmission {
    pub percent: u8,
    pub host_memory: i64,
}
