//! `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use crate::metrics::{TaskFigures, TaskLabels};

/// `GET /metrics`: Prometheus text exposition (bearer token, as the API).
pub async fn metrics(State(state): State<ApiState>) -> ApiResult<Response> {
    let now = chrono::Utc::now().timestamp_millis();
    let tasks: Vec<TaskFigures> = state
        .agents
        .as_ref()
        .map(|hub| hub.running(None))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| {
            let sample = t
                .sample
                .filter(|s| crate::stats::is_current(state.stats.interval, s.sample.t, now))?;
            Some(TaskFigures {
                labels: TaskLabels {
                    namespace: t.container.namespace,
                    app: t.container.app,
                    slot: t.container.slot.map(|s| s.to_string()).unwrap_or_default(),
                    node: if t.hostname.is_empty() {
                        t.node
                    } else {
                        t.hostname
                    },
                },
                cpu_percent: sample.sample.cpu,
                memory_bytes: sample.sample.mem as f64,
                memory_limit_bytes: sample.sample.mem_limit as f64,
            })
        })
        .collect();
    let text = state
        .controller
        .metrics()
        .render(
            &state.store,
            state.controller.queue_depth(),
            state.stats.interval,
            &tasks,
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
