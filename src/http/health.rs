//! `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiResult};
use super::state::ApiState;

/// `GET /metrics`: Prometheus text exposition (bearer token, as the API).
pub async fn metrics(State(state): State<ApiState>) -> ApiResult<Response> {
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

pub async fn readyz(State(state): State<ApiState>) -> Response {
    let health = state.health.borrow().clone();
    let status = if health.docker_connected && health.passes > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}
