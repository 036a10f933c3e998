//! App status: computed from the desired app, its observed container, the pending plan and the
//! last failure. Pure; the loop stores the result when it changed.

use serde::{Deserialize, Serialize};

use super::plan::{AppPlan, DesiredApp, ObservedContainer};
use crate::runtime::ContainerState;
use crate::spec::wire::DesiredState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Paused,
    Stopped,
    Failed,
    Terminating,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub restart_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The last failed attempt to reconcile an app.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub generation: i64,
    pub reason: String,
    pub message: String,
}

impl AppStatus {
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Ready and observed at `generation`: what `apply --wait` waits for.
    pub fn is_ready_at(&self, generation: i64) -> bool {
        self.observed_generation == Some(generation)
            && self.condition("Ready").is_some_and(|c| c.status == "True")
    }
}

fn condition(
    previous: Option<&AppStatus>,
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let since = previous
        .and_then(|p| p.condition(kind))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    Condition {
        kind: kind.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: since,
    }
}

/// Computes an app's status.
pub fn compute(
    app: &DesiredApp,
    container: Option<&ObservedContainer>,
    plan: Option<&AppPlan>,
    failure: Option<&Failure>,
    previous: Option<&AppStatus>,
    now: &str,
) -> AppStatus {
    let pending = plan.is_some_and(|p| !p.steps.is_empty());
    let waiting = plan.and_then(|p| p.waiting.clone());
    let state = container.map(|c| c.summary.state);
    let details = container.and_then(|c| c.details.as_ref());
    let exit_code = details
        .and_then(|d| d.exit_code)
        .filter(|_| matches!(state, Some(ContainerState::Exited | ContainerState::Dead)));
    let current_failure = failure.filter(|f| f.generation == app.generation);

    let matches_spec = container.is_some_and(|c| {
        c.recreate_hash() == Some(app.hashes.recreate.as_str())
            && c.update_hash() == Some(app.hashes.update.as_str())
    });
    let in_declared_state = matches!(
        (app.spec.state, state),
        (DesiredState::Running, Some(ContainerState::Running))
            | (DesiredState::Paused, Some(ContainerState::Paused))
            | (
                DesiredState::Stopped,
                Some(ContainerState::Exited | ContainerState::Created)
            )
    );
    let converged = matches_spec && in_declared_state && !pending;

    let phase = if app.deleting {
        Phase::Terminating
    } else {
        match state {
            Some(ContainerState::Running) => Phase::Running,
            Some(ContainerState::Paused) => Phase::Paused,
            Some(ContainerState::Exited) if app.spec.state == DesiredState::Stopped => {
                Phase::Stopped
            }
            Some(ContainerState::Exited) if exit_code == Some(0) => Phase::Stopped,
            Some(ContainerState::Exited | ContainerState::Dead) => Phase::Failed,
            Some(ContainerState::Created) if app.spec.state == DesiredState::Stopped => {
                Phase::Stopped
            }
            _ if current_failure.is_some() => Phase::Failed,
            _ => Phase::Pending,
        }
    };

    let (ready_reason, ready_message) = if converged {
        let reason = match app.spec.state {
            DesiredState::Running => "Running",
            DesiredState::Paused => "Paused",
            DesiredState::Stopped => "Stopped",
        };
        (reason.to_string(), String::new())
    } else if app.deleting {
        ("Terminating".into(), "the app is being deleted".into())
    } else if let Some(f) = current_failure {
        (f.reason.clone(), f.message.clone())
    } else if let Some(w) = &waiting {
        ("Waiting".into(), w.clone())
    } else if pending {
        let steps: Vec<_> = plan
            .map(|p| p.steps.iter().map(|s| s.reason.clone()).collect())
            .unwrap_or_default();
        ("Progressing".into(), steps.join("; "))
    } else {
        (
            "NotReady".into(),
            format!(
                "container is {}",
                state
                    .map(|s| format!("{s:?}").to_lowercase())
                    .unwrap_or_else(|| "missing".into())
            ),
        )
    };
    let ready = condition(
        previous,
        "Ready",
        converged,
        &ready_reason,
        &ready_message,
        now,
    );
    let synced = match current_failure {
        Some(f) => condition(previous, "Synced", false, &f.reason, &f.message, now),
        None => condition(previous, "Synced", true, "Synced", "", now),
    };

    let observed_generation = if converged {
        Some(app.generation)
    } else {
        previous.and_then(|p| p.observed_generation)
    };
    // Details come only with an inspect (new, changed or stopped containers); between those,
    // keep what was learned about the same container.
    let same_container = container.is_some()
        && previous.and_then(|p| p.container_id.as_deref())
            == container.map(|c| c.summary.id.as_str());
    let kept = previous.filter(|_| same_container);
    let docker_restarts = details.map(|d| d.restart_count);
    let restart_count = match (docker_restarts, kept) {
        (Some(d), _) => i64::from(app.repairs) + d,
        (None, Some(p)) => p.restart_count.max(i64::from(app.repairs)),
        (None, None) => i64::from(app.repairs),
    };
    let started_at = details
        .and_then(|d| d.started_at.clone())
        .filter(|s| !s.starts_with("0001"))
        .or_else(|| kept.and_then(|p| p.started_at.clone()));
    AppStatus {
        phase,
        observed_generation,
        conditions: vec![ready, synced],
        container_id: container.map(|c| c.summary.id.clone()),
        container_name: container.map(|c| c.summary.name.clone()),
        image_id: container
            .map(|c| c.summary.image_id.clone())
            .filter(|s| !s.is_empty()),
        restart_count,
        started_at,
        exit_code,
        message: waiting.or_else(|| current_failure.map(|f| f.message.clone())),
    }
}
