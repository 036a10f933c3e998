//! Swarm mode: the per-app routes that reach into task containers — kill, inspect, git — go
//! to the node agent of the task's node; logs come through the manager's service logs API.
//! Which tasks run, and where, is asked of the manager at the time of the request.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use crate::agent::hub::HubError;
use crate::agent::protocol::Command;
use crate::spec::validate::AppKey;
use crate::store::ObjectRecord;

/// A running task and where it runs.
#[derive(Clone, Debug)]
pub struct Target {
    pub task: String,
    pub slot: Option<u64>,
    pub node: String,
    pub hostname: String,
    pub container: String,
}

/// The app's service id (409 before it has one).
pub fn service_id(key: &AppKey, record: &ObjectRecord) -> ApiResult<String> {
    record
        .app_status()
        .and_then(|s| s.service_id.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "NoContainer",
                format!("app {key} has no service yet"),
            )
        })
}

/// The app's running tasks, by slot, as the manager has them now.
pub async fn running(
    state: &ApiState,
    key: &AppKey,
    record: &ObjectRecord,
) -> ApiResult<Vec<Target>> {
    let swarm = state
        .controller
        .swarm()
        .ok_or_else(|| ApiError::internal("swarm routes", "no swarm backend"))?;
    let service = service_id(key, record)?;
    let tasks = swarm
        .tasks(std::slice::from_ref(&service))
        .await
        .map_err(|e| ApiError::runtime("listing the app's tasks", e))?;
    let hostnames = record
        .app_status()
        .map(|s| s.tasks.as_slice())
        .unwrap_or_default();
    let mut targets: Vec<Target> = tasks
        .into_iter()
        .filter(|t| t.state == "running" && t.desired_state == "running")
        .filter_map(|t| {
            let node = t.node_id?;
            let hostname = hostnames
                .iter()
                .filter_map(|s| s.node.as_ref())
                .find(|n| n.id == node)
                .map(|n| n.hostname.clone())
                .unwrap_or_default();
            Some(Target {
                task: t.id,
                slot: t.slot,
                node,
                hostname,
                container: t.container_id?,
            })
        })
        .collect();
    targets.sort_by(|a, b| (a.slot, &a.task).cmp(&(b.slot, &b.task)));
    Ok(targets)
}

/// The running task `wanted` names (id, id prefix or slot), or the first one.
pub fn pick(key: &AppKey, targets: Vec<Target>, wanted: Option<&str>) -> ApiResult<Target> {
    let index = match wanted {
        None => 0,
        Some(w) => {
            let candidates: Vec<(&str, Option<u64>)> =
                targets.iter().map(|t| (t.task.as_str(), t.slot)).collect();
            choose(w, &candidates).ok_or_else(|| {
                ApiError::not_found(format!(
                    "app {key} has no running task {w:?} (give a task id, an id prefix or a slot)"
                ))
            })?
        }
    };
    targets.into_iter().nth(index).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "NoContainer",
            format!("app {key} has no running task"),
        )
    })
}

/// Which of `candidates` — `(task id, slot)`, the preferred first — `wanted` names: that id,
/// else the first task of that slot, else the one id it begins (at least 4 characters).
pub fn choose(wanted: &str, candidates: &[(&str, Option<u64>)]) -> Option<usize> {
    if let Some(i) = candidates.iter().position(|(id, _)| *id == wanted) {
        return Some(i);
    }
    let slot = wanted.parse::<u64>().ok();
    if let Some(i) = candidates
        .iter()
        .position(|(_, s)| slot.is_some() && *s == slot)
    {
        return Some(i);
    }
    let mut prefixed: Vec<(&str, usize)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| wanted.len() >= 4 && id.starts_with(wanted))
        .map(|(i, (id, _))| (*id, i))
        .collect();
    prefixed.sort_unstable();
    prefixed.dedup_by_key(|(id, _)| *id);
    match prefixed.as_slice() {
        [(_, i)] => Some(*i),
        _ => None,
    }
}

/// The app's record and its running task `wanted` names (the first one by default).
pub async fn target(
    state: &ApiState,
    key: &AppKey,
    wanted: Option<&str>,
) -> ApiResult<(ObjectRecord, Target)> {
    let record = state.record(crate::spec::Kind::App, key).await?;
    let all = running(state, key, &record).await?;
    let target = pick(key, all, wanted)?;
    Ok((record, target))
}

/// 503 naming the node: it has no connected agent.
pub fn no_agent(node: &str, hostname: &str) -> ApiError {
    let name = if hostname.is_empty() || hostname == node {
        node.to_string()
    } else {
        format!("{hostname} ({node})")
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "AgentUnavailable",
        format!(
            "node {name} has no connected agent; run `wharf agent` there (see README, Node agent)"
        ),
    )
}

/// Sends `command` to the agent of the target's node.
pub async fn send(
    state: &ApiState,
    target: &Target,
    command: Command,
    timeout: Duration,
) -> ApiResult<Value> {
    let hub = super::agents::hub(state)?;
    hub.command(&target.node, command, timeout)
        .await
        .map_err(|e| match e {
            HubError::NoAgent(node) => no_agent(&node, &target.hostname),
            HubError::Gone(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "AgentUnavailable",
                e.to_string(),
            ),
            HubError::Timeout(..) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "AgentTimeout", e.to_string())
            }
            HubError::Refused { ref error, .. } => {
                let (status, reason) = match error.code.as_str() {
                    "NotWharf" => (StatusCode::FORBIDDEN, "NotWharf"),
                    "Invalid" => (StatusCode::BAD_REQUEST, "BadRequest"),
                    "NotRunning" => (StatusCode::CONFLICT, "InvalidTransition"),
                    _ => (StatusCode::BAD_GATEWAY, "ActionFailed"),
                };
                ApiError::new(status, reason, e.to_string())
            }
        })
}

/// What a task is called in messages: `task 2 (abc123…) on node-1`.
pub fn describe(t: &Target) -> String {
    let short = &t.task[..t.task.len().min(12)];
    let at = if t.hostname.is_empty() {
        &t.node
    } else {
        &t.hostname
    };
    match t.slot {
        Some(slot) => format!("task {slot} ({short}) on {at}"),
        None => format!("task {short} on {at}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_named_by_id_slot_or_a_unique_prefix() {
        let tasks = [
            ("abcd1234", Some(2)),
            ("abcd9999", Some(1)),
            ("xyz00000", None),
        ];
        assert_eq!(choose("abcd9999", &tasks), Some(1));
        assert_eq!(choose("2", &tasks), Some(0), "the first task of slot 2");
        assert_eq!(choose("xyz0", &tasks), Some(2));
        assert_eq!(choose("abcd", &tasks), None, "ambiguous");
        assert_eq!(choose("xyz", &tasks), None, "too short a prefix");
        assert_eq!(choose("7", &tasks), None);
        // The same id twice (current and stored) is still one task.
        assert_eq!(
            choose("xyz0", &[("xyz00000", None), ("xyz00000", None)]),
            Some(0)
        );
    }
}
