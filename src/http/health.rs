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
    let metrics = state.controller.metrics();
    metrics.leader.set(i64::from(state.leadership.is_leader()));
    let text = metrics
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

/// `/readyz`: whether this instance can serve. The leader: the engine answers, a pass has
/// completed and the database answers. Another instance: the database answers (it serves the
/// API; the leader reconciles).
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let health = state.health.borrow().clone();
    let database = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.store.change_counter(),
    )
    .await;
    let database_error = match database {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the database did not answer within 2 s".to_string()),
    };
    let leader = state.leadership.view();
    let ready = database_error.is_none()
        && (!leader.leading || (health.docker_connected && health.passes > 0));
    let readiness = Readiness {
        ready,
        role: if leader.leading { "leader" } else { "follower" },
        instance_id: state.leadership.id().to_string(),
        leader: leader.leader,
        database_connected: database_error.is_none(),
        database_error,
        health,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `/readyz`'s answer: the loop's health and this instance's place in the cluster.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub ready: bool,
    /// `leader` (reconciles) or `follower` (serves the API; writes wake the leader).
    pub role: &'static str,
    /// This instance's id (`--server-id`).
    pub instance_id: String,
    /// The leader's id, as far as this instance knows.
    pub leader: Option<String>,
    pub database_connected: bool,
    /// Why the database does not answer, while it does not.
    pub database_error: Option<String>,
    #[serde(flatten)]
    pub health: crate::reconcile::Health,
}
