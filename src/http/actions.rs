//! Per-app routes beyond CRUD: the actions (restart, kill, hard-reset), git inside the
//! container, the engine's inspect data and streamed logs.
//!
//! Actions go through the controller, which serialises them with the loop's work on the same
//! app. Git runs through the engine's exec API with an argv array built here from validated
//! parts: nothing is ever given to a shell.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;

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
use super::time::parse_time;
use crate::reconcile::actions::{app_containers, current, parse_signal};
use crate::reconcile::{ActionError, AppAction};
use crate::runtime::{ContainerState, ContainerSummary, LogOptions};
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::store::EventType;
use crate::store::ObjectRecord;

/// How long one git command may run in a container.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

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
#[derive(Debug, Serialize)]
pub struct ActionResult {
    pub kind: &'static str,
    pub action: &'static str,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// What a git operation in the container printed, and what it found.
#[derive(Debug, Serialize)]
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

#[derive(Deserialize)]
pub struct KillQuery {
    signal: Option<String>,
}

pub async fn kill(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<KillQuery>,
) -> ApiResult<Json<ActionResult>> {
    let key = key_from_path(ns, name)?;
    let signal = parse_signal(query.signal.as_deref().unwrap_or("SIGKILL"))
        .map_err(|e| ApiError::bad_request(format!("signal: {e}")))?;
    run_action(&state, key, AppAction::Kill { signal }).await
}

#[derive(Deserialize)]
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
    if state.controller.swarm().is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "SwarmMode",
            format!(
                "app {key} runs as a Swarm service whose task containers live on the swarm's nodes; a manager cannot reach into them, which needs the node agent (`wharf agent`) swarm mode does not have yet. Its tasks, nodes and container ids are in status.tasks"
            ),
        ));
    }
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

pub async fn inspect(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let key = key_from_path(ns, name)?;
    let (_, container) = app_container(&state, &key).await?;
    let inspected = state
        .runtime
        .inspect_raw(&container.id)
        .await
        .map_err(|e| ApiError::runtime("inspecting the container", e))?;
    Ok(Json(inspected))
}

#[derive(Deserialize, Default)]
pub struct LogsQuery {
    tail: Option<String>,
    since: Option<String>,
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    timestamps: bool,
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
    let (_, container) = app_container(&state, &key).await?;
    let options = LogOptions {
        tail,
        since,
        follow: query.follow,
        timestamps: query.timestamps,
    };
    let mut stream = state.runtime.logs(&container.id, &options);
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
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GitRequest {
    path: Option<String>,
    branch: Option<String>,
}

/// An absolute path inside the container, without `..`, control characters or NUL.
pub fn check_git_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} must be an absolute path in the container"
        ));
    }
    if path.len() > 4096 {
        return Err("is longer than 4096 characters".into());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!("{path:?} must not contain \"..\""));
    }
    Ok(())
}

/// A branch name by git's `check-ref-format` rules, restricted to a safe alphabet.
pub fn check_branch(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if name.is_empty()
        || name.len() > 255
        || !ok_chars
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("/.")
    {
        return Err(format!(
            "{name:?} is not a valid branch name (letters, digits, '.', '_', '-', '/'; no leading '-', no \"..\")"
        ));
    }
    Ok(())
}

/// The argv for one git operation.
fn git_argv(op: &str, request: &GitRequest) -> ApiResult<Vec<String>> {
    let path = request.path.as_deref().ok_or_else(|| {
        ApiError::bad_request("path: required (the repository's directory in the container)")
    })?;
    check_git_path(path).map_err(|e| ApiError::bad_request(format!("path: {e}")))?;
    if op != "checkout" && request.branch.is_some() {
        return Err(ApiError::bad_request(format!(
            "branch: only checkout takes a branch, not {op}"
        )));
    }
    let in_repo = |args: &[&str]| {
        ["git", "-C", path]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    Ok(match op {
        "init" => vec!["git".into(), "init".into(), "--".into(), path.to_string()],
        "pull" => in_repo(&["pull"]),
        "head" => in_repo(&["rev-parse", "HEAD"]),
        "branches" => in_repo(&["branch", "--list", "--format=%(refname:short)"]),
        "branch" => in_repo(&["symbolic-ref", "--short", "HEAD"]),
        "checkout" => {
            let branch = request
                .branch
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("branch: required for checkout"))?;
            check_branch(branch).map_err(|e| ApiError::bad_request(format!("branch: {e}")))?;
            in_repo(&["checkout", branch, "--"])
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no git operation {other:?}: use pull, init, head, branches, branch or checkout"
            )));
        }
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
        }
    };
    let argv = git_argv(&op, &request)?;
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
    let missing = matches!(output.exit_code, 126 | 127)
        && (output.stderr.contains("executable file not found")
            || output.stderr.contains("no such file or directory")
            || output.stdout.contains("executable file not found"));
    if missing {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "GitNotAvailable",
            format!("the container of app {key} has no git executable on its PATH"),
        ));
    }
    let message = format!(
        "git {op} in {} exited with code {}",
        request.path.as_deref().unwrap_or_default(),
        output.exit_code
    );
    let kind = if output.exit_code == 0 {
        EventType::Normal
    } else {
        EventType::Warning
    };
    if let Err(e) = state
        .store
        .record_event(&record, kind, "Git", &message)
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
    fn git_paths_and_branches_are_validated() {
        assert!(check_git_path("/home/jovyan/work").is_ok());
        assert!(check_git_path("relative").is_err());
        assert!(check_git_path("/a/../etc").is_err());
        assert!(check_git_path("/a\nb").is_err());
        assert!(check_branch("feature/x-1").is_ok());
        for bad in [
            "-b", "--force", "a..b", "a b", "x.lock", "/x", "a//b", "a;rm", "$(x)",
        ] {
            assert!(check_branch(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn git_argv_is_built_from_validated_parts() {
        let request = GitRequest {
            path: Some("/repo".into()),
            branch: Some("main".into()),
        };
        let argv = git_argv("checkout", &request).expect("valid");
        assert_eq!(argv, ["git", "-C", "/repo", "checkout", "main", "--"]);
        let request = GitRequest {
            path: Some("/repo".into()),
            branch: None,
        };
        assert_eq!(
            git_argv("init", &request).expect("valid"),
            ["git", "init", "--", "/repo"]
        );
        assert!(git_argv("checkout", &request).is_err());
        assert!(git_argv("rm", &request).is_err());
    }
}
