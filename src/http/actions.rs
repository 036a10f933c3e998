//! Per-app routes beyond CRUD: the actions (restart, kill, hard-reset), git inside the
//! container, the engine's inspect data and streamed logs.
//!
//! Actions go through the controller, which serialises them with the loop's work on the same
//! app. Git runs through the engine's exec API with an argv array built here from validated
//! parts: nothing is ever given to a shell.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use schemars::JsonSchema;

use super::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::body;
use super::error::{ApiError, ApiResult};
use super::extract::key_from_path;
use super::state::ApiState;
use super::stats::find_task;
use super::tasks;
use super::time::parse_time;
use crate::agent::hub::{COMMAND_TIMEOUT, GIT_TIMEOUT};
use crate::agent::protocol::Command;
use crate::reconcile::actions::{app_containers, current, parse_signal};
use crate::reconcile::{ActionError, AppAction};
use crate::runtime::{ContainerState, ContainerSummary, ExecOutput, LogOptions};
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::store::EventType;
use crate::store::ObjectRecord;

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(m) => ApiError::not_found(format!("{m} not found")),
            ActionError::InvalidTransition(m) => {
                ApiError::new(StatusCode::CONFLICT, "InvalidTransition", m)
            }
            ActionError::Busy(m) => ApiError::new(StatusCode::CONFLICT, "Busy", m),
            ActionError::Failed(m) => ApiError::new(StatusCode::BAD_GATEWAY, "ActionFailed", m),
            ActionError::Runtime(e) => ApiError::runtime("the action", e),
            ActionError::Store(e) => e.into(),
        }
    }
}

/// What an action did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActionResult {
    pub kind: &'static str,
    pub action: &'static str,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// What a git operation in the container printed, and what it found.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitResult {
    pub kind: &'static str,
    pub op: String,
    pub argv: Vec<String>,
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// `head`: the commit checked out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// `branch`: the current branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `branches`: every local branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branches: Option<Vec<String>>,
}

async fn run_action(
    state: &ApiState,
    key: AppKey,
    action: AppAction,
) -> ApiResult<Json<ActionResult>> {
    let name = match &action {
        AppAction::Restart => "restart",
        AppAction::Kill { .. } => "kill",
        AppAction::HardReset { .. } => "hard-reset",
    };
    // Actions run on the leader: another instance's fence would refuse their steps anyway.
    state
        .leadership
        .check()
        .map_err(|e| ApiError::runtime("the action", e))?;
    let message = state.controller.act(&key, action).await?;
    Ok(Json(ActionResult {
        kind: "ActionResult",
        action: name,
        namespace: key.namespace,
        name: key.name,
        message,
    }))
}

pub async fn restart(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<ActionResult>> {
    run_action(&state, key_from_path(ns, name)?, AppAction::Restart).await
}

#[derive(Deserialize, JsonSchema)]
pub struct KillQuery {
    signal: Option<String>,
    /// Swarm mode: one task (id, id prefix or slot) instead of every running one.
    task: Option<String>,
}

pub async fn kill(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<KillQuery>,
) -> ApiResult<Json<ActionResult>> {
    let key = key_from_path(ns, name)?;
    let signal = parse_signal(query.signal.as_deref().unwrap_or("SIGKILL"))
        .map_err(|e| ApiError::bad_request(format!("signal: {e}")))?;
    if state.agents.is_some() {
        return kill_tasks(&state, key, signal, query.task.as_deref()).await;
    }
    if query.task.is_some() {
        return Err(solo_task(&key));
    }
    run_action(&state, key, AppAction::Kill { signal }).await
}

/// 400: `?task=` in solo mode.
fn solo_task(key: &AppKey) -> ApiError {
    ApiError::bad_request(format!(
        "task: app {key} is one container (solo mode); tasks exist in swarm mode"
    ))
}

/// Swarm mode: signals every running task of the app (or the one asked for) through the
/// agents of their nodes. Every node must have its agent before any task is signalled.
async fn kill_tasks(
    state: &ApiState,
    key: AppKey,
    signal: String,
    wanted: Option<&str>,
) -> ApiResult<Json<ActionResult>> {
    let record = state.record(Kind::App, &key).await?;
    let running = tasks::running(state, &key, &record).await?;
    let chosen = match wanted {
        Some(_) => vec![tasks::pick(&key, running, wanted)?],
        None if running.is_empty() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "InvalidTransition",
                format!("app {key} has no running task to kill"),
            ));
        }
        None => running,
    };
    let connected = super::agents::hub(state)?.connected();
    if let Some(t) = chosen.iter().find(|t| !connected.contains(&t.node)) {
        return Err(tasks::no_agent(&t.node, &t.hostname));
    }
    let mut done = Vec::new();
    for target in &chosen {
        let command = Command::Kill {
            container: target.container.clone(),
            signal: signal.clone(),
        };
        tasks::send(state, target, command, COMMAND_TIMEOUT).await?;
        done.push(tasks::describe(target));
    }
    let message = format!("sent {signal} to {}", done.join(", "));
    if let Err(e) = state
        .store
        .record_event(&record, EventType::Normal, "Kill", &message)
        .await
    {
        tracing::warn!(app = %key, "could not record event: {e}");
    }
    Ok(Json(ActionResult {
        kind: "ActionResult",
        action: "kill",
        namespace: key.namespace,
        name: key.name,
        message,
    }))
}

#[derive(Deserialize, JsonSchema)]
pub struct HardResetQuery {
    #[serde(default)]
    volumes: bool,
}

pub async fn hard_reset(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<HardResetQuery>,
) -> ApiResult<Json<ActionResult>> {
    let key = key_from_path(ns, name)?;
    run_action(
        &state,
        key,
        AppAction::HardReset {
            volumes: query.volumes,
        },
    )
    .await
}

/// The stored app and its container (the one under the app's name, else the newest).
async fn app_container(
    state: &ApiState,
    key: &AppKey,
) -> ApiResult<(ObjectRecord, ContainerSummary)> {
    let record = state.record(Kind::App, key).await?;
    let containers = app_containers(state.runtime.as_ref(), &state.instance, &record.uid)
        .await
        .map_err(|e| ApiError::runtime("listing containers", e))?;
    let container = current(&containers, key).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "NoContainer",
            format!("app {key} has no container yet"),
        )
    })?;
    Ok((record, container))
}

#[derive(Deserialize, Default, JsonSchema)]
pub struct TaskQuery {
    /// Swarm mode: the task (id, id prefix or slot); the first running one by default.
    task: Option<String>,
}

pub async fn inspect(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<TaskQuery>,
) -> ApiResult<Json<Value>> {
    let key = key_from_path(ns, name)?;
    if state.agents.is_some() {
        let (_, target) = tasks::target(&state, &key, query.task.as_deref()).await?;
        let command = Command::Inspect {
            container: target.container.clone(),
        };
        return Ok(Json(
            tasks::send(&state, &target, command, COMMAND_TIMEOUT).await?,
        ));
    }
    if query.task.is_some() {
        return Err(solo_task(&key));
    }
    let (_, container) = app_container(&state, &key).await?;
    let inspected = state
        .runtime
        .inspect_raw(&container.id)
        .await
        .map_err(|e| ApiError::runtime("inspecting the container", e))?;
    Ok(Json(inspected))
}

#[derive(Deserialize, Default, JsonSchema)]
pub struct LogsQuery {
    tail: Option<String>,
    since: Option<String>,
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    timestamps: bool,
    /// Swarm mode: one task's log (id, id prefix or slot); every task's by default.
    task: Option<String>,
}

pub async fn logs(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Response> {
    let key = key_from_path(ns, name)?;
    let tail = match query.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("tail: {n:?} is not a number of lines (or \"all\")"))
        })?),
    };
    let since = query
        .since
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("since: {e}")))?;
    let options = LogOptions {
        tail,
        since,
        follow: query.follow,
        timestamps: query.timestamps,
    };
    let mut stream = match state.controller.swarm() {
        Some(swarm) => {
            let record = state.record(Kind::App, &key).await?;
            let service = tasks::service_id(&key, &record)?;
            let task = match query.task.as_deref() {
                None => None,
                Some(wanted) => {
                    let current = record
                        .app_status()
                        .map(|s| s.tasks.as_slice())
                        .unwrap_or_default();
                    Some(find_task(wanted, current, &[]).ok_or_else(|| {
                        ApiError::not_found(format!(
                            "app {key} has no task {wanted:?} (give a task id, an id prefix or a slot)"
                        ))
                    })?)
                }
            };
            swarm.service_logs(&service, task.as_deref(), &options)
        }
        None => {
            if query.task.is_some() {
                return Err(solo_task(&key));
            }
            let (_, container) = app_container(&state, &key).await?;
            state.runtime.logs(&container.id, &options)
        }
    };
    // The first chunk tells whether the engine accepted the request: an error then is an
    // error response, not a stream that breaks at once.
    let first = stream.next().await;
    let first = match first {
        Some(Err(e)) => return Err(ApiError::runtime("reading the logs", e)),
        other => other,
    };
    let rest = futures::stream::iter(first).chain(stream).map(|chunk| {
        chunk
            .map(|c| c.data)
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(rest),
    )
        .into_response())
}

/// A git operation's parameters, from the JSON body or the query string.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitRequest {
    path: Option<String>,
    branch: Option<String>,
    /// Swarm mode: the task (id, id prefix or slot); the first running one by default.
    task: Option<String>,
}

/// The argv for one git operation, or 400/404 naming the field.
fn git_argv(op: &str, request: &GitRequest) -> ApiResult<Vec<String>> {
    crate::git::argv(op, request.path.as_deref(), request.branch.as_deref()).map_err(|e| match e {
        crate::git::GitArgError::UnknownOp(m) => ApiError::not_found(m),
        crate::git::GitArgError::Field(field, m) => ApiError::bad_request(format!("{field}: {m}")),
    })
}

pub async fn git(
    State(state): State<ApiState>,
    Path((ns, name, op)): Path<(String, String, String)>,
    Query(query): Query<GitRequest>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<GitResult>> {
    let key = key_from_path(ns, name)?;
    let bytes = body(bytes)?;
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        query
    } else {
        let from_body: GitRequest = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
        GitRequest {
            path: from_body.path.or(query.path),
            branch: from_body.branch.or(query.branch),
            task: from_body.task.or(query.task),
        }
    };
    let argv = git_argv(&op, &request)?;
    if state.agents.is_some() {
        let (record, target) = tasks::target(&state, &key, request.task.as_deref()).await?;
        let command = Command::Git {
            container: target.container.clone(),
            operation: op.clone(),
            path: request.path.clone(),
            branch: request.branch.clone(),
        };
        let answer = tasks::send(&state, &target, command, GIT_TIMEOUT + COMMAND_TIMEOUT).await?;
        let output = ExecOutput {
            exit_code: answer["exitCode"].as_i64().unwrap_or(-1),
            stdout: answer["stdout"].as_str().unwrap_or_default().to_string(),
            stderr: answer["stderr"].as_str().unwrap_or_default().to_string(),
        };
        let place = format!(" ({})", tasks::describe(&target));
        return git_answer(
            &state,
            &key,
            &record,
            op,
            argv,
            output,
            &place,
            request.path.as_deref(),
        )
        .await;
    }
    if request.task.is_some() {
        return Err(solo_task(&key));
    }
    let (record, container) = app_container(&state, &key).await?;
    if container.state != ContainerState::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "InvalidTransition",
            format!(
                "app {key} is not running (its container is {}); git runs inside a running container",
                container.state
            ),
        ));
    }
    let output = state
        .runtime
        .exec(&container.id, &argv, None, GIT_TIMEOUT)
        .await
        .map_err(|e| ApiError::runtime("running git in the container", e))?;
    git_answer(
        &state,
        &key,
        &record,
        op,
        argv,
        output,
        "",
        request.path.as_deref(),
    )
    .await
}

/// The answer to a git operation, recorded as an event on the app (`place`: where it ran, in
/// swarm mode).
#[allow(clippy::too_many_arguments)]
async fn git_answer(
    state: &ApiState,
    key: &AppKey,
    record: &ObjectRecord,
    op: String,
    argv: Vec<String>,
    output: ExecOutput,
    place: &str,
    path: Option<&str>,
) -> ApiResult<Json<GitResult>> {
    if crate::git::missing(output.exit_code, &output.stdout, &output.stderr) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "GitNotAvailable",
            format!("the container of app {key}{place} has no git executable on its PATH"),
        ));
    }
    let message = format!(
        "git {op} in {}{place} exited with code {}",
        path.unwrap_or_default(),
        output.exit_code
    );
    let kind = if output.exit_code == 0 {
        EventType::Normal
    } else {
        EventType::Warning
    };
    if let Err(e) = state
        .store
        .record_event(record, kind, "Git", &message)
        .await
    {
        tracing::warn!(app = %key, "could not record event: {e}");
    }
    let text = output.stdout.trim().to_string();
    let found = |wanted: &str| (output.exit_code == 0 && op == wanted).then(|| text.clone());
    let (head, branch) = (found("head"), found("branch"));
    let branches = found("branches").map(|t| t.lines().map(|l| l.trim().to_string()).collect());
    Ok(Json(GitResult {
        kind: "GitResult",
        op,
        argv,
        exit_code: output.exit_code,
        stdout: output.stdout,
        stderr: output.stderr,
        head,
        branch,
        branches,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_argv_is_built_from_validated_parts() {
        let request = GitRequest {
            path: Some("/repo".into()),
            branch: Some("main".into()),
            task: None,
        };
        let argv = git_argv("checkout", &request).expect("valid");
        assert_eq!(argv, ["git", "-C", "/repo", "checkout", "main", "--"]);
        let request = GitRequest {
            path: Some("/repo".into()),
            branch: None,
            task: None,
        };
        assert_eq!(
            git_argv("init", &request).expect("valid"),
            ["git", "init", "--", "/repo"]
        );
        assert!(git_argv("checkout", &request).is_err());
        assert!(git_argv("rm", &request).is_err());
    }
}
