//! `POST /api/v1/hooks/git`: a forge's push webhook makes the git source fetch at once. The
//! route takes no bearer token — the forge's signature over the body is its authentication
//! (GitHub's `X-Hub-Signature-256`, Gitea's `X-Gitea-Signature`, GitLab's `X-Gitlab-Token`),
//! checked against the secret of `--git-webhook-secret-file`. A delivery that fails the check
//! is answered 401, logged, and changes nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use schemars::JsonSchema;
use serde::Serialize;

use super::body::body;
use super::error::{ApiError, ApiResult};
use super::state::ApiState;

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HookAccepted {
    /// `github`, `gitea`, `gogs` or `gitlab`: whose signature matched.
    pub forge: &'static str,
    pub message: &'static str,
}

pub async fn git(
    State(state): State<ApiState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<HookAccepted>)> {
    let Some(hook) = &state.git else {
        return Err(ApiError::not_found(
            "this server follows no git repository (wharf serve --git URL)",
        ));
    };
    let bytes = body(bytes)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match hook.deliver(header, &bytes) {
        Ok(forge) => {
            tracing::info!(forge, "git webhook accepted: fetching");
            Ok((
                StatusCode::ACCEPTED,
                Json(HookAccepted {
                    forge,
                    message: "fetching the branch now",
                }),
            ))
        }
        Err(why) => {
            tracing::warn!("git webhook refused: {why}");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                format!("webhook refused: {why}"),
            ))
        }
    }
}
