//! `whoami` and the tokens API: create (the secret shown once), list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::audit::noted;
use super::body::body;
use super::error::{ApiError, ApiResult};
use super::extract::Path;
use super::state::ApiState;
use super::views::Items;
use crate::auth::{ALL_NAMESPACES, Grant, Principal, Role, new_token, token_digest};
use crate::spec::validate::check_namespace;
use crate::store::security::TokenInfo;

/// The token in use and what it may do.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub token_id: String,
    pub grants: Vec<Grant>,
}

/// A new token: its record and, this once, its secret.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

pub async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        token_id: principal.token_id,
        grants: principal.grants,
    })
}

#[derive(Deserialize, JsonSchema)]
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
    // An agent token is that and nothing else: it must not be able to read or write the API.
    let agent_grants = request
        .grants
        .iter()
        .filter(|g| g.role == Role::Agent)
        .count();
    if agent_grants > 0 {
        if agent_grants != request.grants.len() {
            return Err(ApiError::bad_request(
                "grants: an agent token holds the agent role only (create a separate token for other roles)",
            ));
        }
        if let Some(i) = request
            .grants
            .iter()
            .position(|g| g.namespace != ALL_NAMESPACES)
        {
            return Err(ApiError::bad_request(format!(
                "grants[{i}].namespace: the agent role is not per namespace; use \"*\""
            )));
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
    Ok(noted(
        (
            StatusCode::CREATED,
            Json(NewToken {
                info,
                token: secret,
            }),
        ),
        format!("created token {id} ({})", grants.join(", ")),
        None,
    ))
}

pub async fn list_tokens(State(state): State<ApiState>) -> ApiResult<Json<Items<TokenInfo>>> {
    let tokens = state.store.tokens().await?;
    Ok(Json(Items::new(tokens)))
}

pub async fn revoke_token(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ApiError::bad_request(format!("{id:?} is not a token id")));
    }
    let info = state.store.revoke_token(&id).await?;
    Ok(noted(Json(info), format!("revoked token {id}"), None))
}
