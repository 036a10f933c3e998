//! Imperative one-shots on an app — restart, kill, hard-reset — the SRC API's actions. They do
//! not change the spec; each is recorded as an event on the app.
//!
//! An action takes the app's place in the loop (as a pass's work does), so it never runs
//! beside the loop's own steps for the same app. A hard reset is planned by the planner (remove
//! everything, then the steps for "no container") and run by the executor, like any pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::controller::Controller;
use super::desired::desired_app;
use super::execute::execute;
use super::plan::{
    Action, AppPlan, Desired, Observed, ObservedContainer, Step, container_name, plan,
    remove_steps, volume_name,
};
use crate::runtime::{ContainerState, ContainerSummary, Runtime, RuntimeError, labels};
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::spec::wire::DesiredState;
use crate::store::EventType;
use crate::store::{ObjectRecord, StoreError};

/// How long an action waits for the loop's work on the same app to finish.
const WAIT_FOR_APP: Duration = Duration::from_secs(30);

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum AppAction {
    Restart,
    /// Send a signal (validated by [`parse_signal`]).
    Kill {
        signal: String,
    },
    /// Stop and remove the container, then create it afresh from the image (the writable layer
    /// is discarded). With `volumes`, the app's named volumes are removed too.
    HardReset {
        volumes: bool,
    },
}

impl AppAction {
    fn verb(&self) -> &'static str {
        match self {
            AppAction::Restart => "Restarted",
            AppAction::Kill { .. } => "Killed",
            AppAction::HardReset { .. } => "HardReset",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0} not found")]
    NotFound(String),
    /// The action makes no sense in the app's current state (409).
    #[error("{0}")]
    InvalidTransition(String),
    /// The app is busy with other work.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Signal names Linux knows, without the `SIG` prefix.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// `KILL`, `sigterm`, `SIGHUP` or a number 1–64 → the form Docker takes (`SIGKILL`, `9`).
pub fn parse_signal(text: &str) -> Result<String, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u8>() {
        return if (1..=64).contains(&n) {
            Ok(n.to_string())
        } else {
            Err(format!("signal {n} is out of range (1-64)"))
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) {
        Ok(format!("SIG{name}"))
    } else {
        Err(format!(
            "unknown signal {text:?}: use a name such as SIGTERM, SIGKILL, SIGHUP, or a number 1-64"
        ))
    }
}

/// Every container of the app with `uid` (this instance's, any state).
pub async fn app_containers(
    runtime: &dyn Runtime,
    instance: &str,
    uid: &str,
) -> Result<Vec<ContainerSummary>, RuntimeError> {
    Ok(runtime
        .list(instance)
        .await?
        .into_iter()
        .filter(|c| c.labels.get(labels::UID).map(String::as_str) == Some(uid))
        .collect())
}

/// The app's own container among `containers`: the one under its name, else the newest.
pub fn current(containers: &[ContainerSummary], key: &AppKey) -> Option<ContainerSummary> {
    let name = container_name(key);
    containers
        .iter()
        .find(|c| c.name == name)
        .or_else(|| containers.iter().max_by_key(|c| c.created))
        .cloned()
}

impl Controller {
    /// Runs `action` on the app `key` and returns what was done. The app's spec is unchanged.
    pub async fn act(
        self: &Arc<Self>,
        key: &AppKey,
        action: AppAction,
    ) -> Result<String, ActionError> {
        self.claim(key).await?;
        let result = self.act_claimed(key, &action).await;
        self.release(key);
        self.observed.notify_one();
        result
    }

    /// Takes the app's place in the loop, waiting (for a release, not by polling) for work in
    /// flight to finish.
    async fn claim(&self, key: &AppKey) -> Result<(), ActionError> {
        let give_up = Instant::now() + WAIT_FOR_APP;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release between the look and the wait is seen.
            released.as_mut().enable();
            if self.lock().inflight.insert(key.clone()) {
                return Ok(());
            }
            if tokio::time::timeout_at(give_up, released).await.is_err() {
                return Err(ActionError::Busy(format!(
                    "app {key} is still busy with other work after {}s; try again",
                    WAIT_FOR_APP.as_secs()
                )));
            }
        }
    }

    async fn act_claimed(&self, key: &AppKey, action: &AppAction) -> Result<String, ActionError> {
        let record = self
            .store
            .get(Kind::App, key)
            .await?
            .ok_or_else(|| ActionError::NotFound(Kind::App.describe(key)))?;
        if record.is_terminating() {
            return Err(ActionError::InvalidTransition(format!(
                "app {key} is being deleted"
            )));
        }
        let result = match &self.swarm {
            Some(swarm) => self.swarm_act(swarm.as_ref(), key, &record, action).await,
            None => self.solo_act(key, &record, action).await,
        };
        self.record_action(key, &record, action, &result).await;
        result
    }

    /// An action on the app's container.
    async fn solo_act(
        &self,
        key: &AppKey,
        record: &ObjectRecord,
        action: &AppAction,
    ) -> Result<String, ActionError> {
        let containers =
            app_containers(self.runtime.as_ref(), &self.config.instance, &record.uid).await?;
        match action {
            AppAction::Restart => {
                self.signal(key, record, current(&containers, key), None)
                    .await
            }
            AppAction::Kill { signal } => {
                self.signal(key, record, current(&containers, key), Some(signal))
                    .await
            }
            AppAction::HardReset { volumes } => {
                self.hard_reset(key, record, &containers, *volumes).await
            }
        }
    }

    /// An action on the app's service: restart and hard reset replace every task (Swarm
    /// recreates task containers from the image, so both discard the writable layers).
    async fn swarm_act(
        &self,
        swarm: &dyn crate::runtime::swarm::Swarm,
        key: &AppKey,
        record: &ObjectRecord,
        action: &AppAction,
    ) -> Result<String, ActionError> {
        match action {
            AppAction::Kill { .. } => Err(ActionError::InvalidTransition(format!(
                "app {key} runs as a Swarm service: a manager cannot signal the containers of its tasks on other nodes; the API's kill signals them through the node agents (`wharf agent`). Use restart to replace the tasks"
            ))),
            AppAction::HardReset { volumes: true } => Err(ActionError::InvalidTransition(format!(
                "app {key} runs as a Swarm service: its volumes live on every node its tasks ran on, and wharf removes them in solo mode only; hard-reset without volumes replaces the tasks"
            ))),
            AppAction::Restart | AppAction::HardReset { volumes: false } => {
                let spec = record.app_spec().map_err(|e| {
                    ActionError::Failed(format!("stored spec no longer validates: {e}"))
                })?;
                if spec.state != DesiredState::Running {
                    return Err(ActionError::InvalidTransition(format!(
                        "app {key} is declared {}; restart applies to running apps (start it with `wharf start app {}`)",
                        spec.state, key.name
                    )));
                }
                let _permit = self.ops.acquire().await.ok();
                match self.swarm_replace_tasks(swarm, record).await {
                    Err(RuntimeError::Conflict(m)) => Err(ActionError::InvalidTransition(m)),
                    other => Ok(other?),
                }
            }
        }
    }

    /// Logs an action's outcome and records it as an event on the app.
    async fn record_action(
        &self,
        key: &AppKey,
        record: &ObjectRecord,
        action: &AppAction,
        result: &Result<String, ActionError>,
    ) {
        match result {
            Ok(detail) => {
                let message = format!("{detail} (requested through the API)");
                tracing::info!(app = %key, "{} {message}", action.verb());
                self.event(record, EventType::Normal, action.verb(), &message)
                    .await;
            }
            Err(e @ (ActionError::Runtime(_) | ActionError::Failed(_))) => {
                let message = format!("{} failed: {e}", action.verb());
                tracing::warn!(app = %key, "{message}");
                self.event(record, EventType::Warning, "ActionFailed", &message)
                    .await;
            }
            Err(_) => {}
        }
    }

    /// Restart (no `kill` signal) and kill: one engine call on the app's container, in a state
    /// that allows it.
    async fn signal(
        &self,
        key: &AppKey,
        record: &ObjectRecord,
        container: Option<ContainerSummary>,
        kill: Option<&str>,
    ) -> Result<String, ActionError> {
        let spec = record
            .app_spec()
            .map_err(|e| ActionError::Failed(format!("stored spec no longer validates: {e}")))?;
        let Some(container) = container else {
            return Err(ActionError::InvalidTransition(format!(
                "app {key} has no container yet"
            )));
        };
        let id = container.id.as_str();
        let short = &id[..id.len().min(12)];
        let _permit = self.ops.acquire().await.ok();
        match kill {
            None => {
                if spec.state != DesiredState::Running {
                    return Err(ActionError::InvalidTransition(format!(
                        "app {key} is declared {}; restart applies to running apps (start it with `wharf start app {}`)",
                        spec.state, key.name
                    )));
                }
                if container.state == ContainerState::Paused {
                    return Err(ActionError::InvalidTransition(format!(
                        "app {key} is paused; unpause it first"
                    )));
                }
                self.runtime
                    .restart(id, spec.container.stop_grace_seconds)
                    .await?;
                Ok(format!("container {short} restarted"))
            }
            Some(signal) => {
                if container.state != ContainerState::Running {
                    return Err(ActionError::InvalidTransition(format!(
                        "app {key} is not running (its container is {}); only a running app can be killed",
                        container.state
                    )));
                }
                match self.runtime.kill(id, signal).await {
                    // Stopped between the list and the kill.
                    Err(RuntimeError::Conflict(m)) => Err(ActionError::InvalidTransition(format!(
                        "app {key} is not running: {m}"
                    ))),
                    Err(e) => Err(e.into()),
                    Ok(()) => Ok(format!("container {short} sent {signal}")),
                }
            }
        }
    }

    /// Removes every container of the app (and, with `volumes`, its named volumes), then runs
    /// the planner's steps for an app with no container.
    async fn hard_reset(
        &self,
        key: &AppKey,
        record: &ObjectRecord,
        containers: &[ContainerSummary],
        volumes: bool,
    ) -> Result<String, ActionError> {
        let now = Instant::now();
        let mut app = desired_app(record, &self.memory(), now)
            .map_err(|e| ActionError::Failed(format!("stored spec no longer validates: {e}")))?;
        // Asked for now: no backoff, and a clean slate for a rolled-back generation.
        app.hold_until = None;
        app.rolled_back = None;
        let mut steps = Vec::new();
        let grace = app.spec.container.stop_grace_seconds;
        for c in containers {
            let mut removal = AppPlan::default();
            remove_steps(
                &mut removal,
                &ObservedContainer::new(c.clone(), None),
                grace,
                "hard reset: the container and its writable layer are discarded".into(),
            );
            steps.extend(removal.steps);
        }
        if volumes {
            let shared = self.shared_volumes(record).await?;
            if !shared.is_empty() {
                return Err(ActionError::InvalidTransition(format!(
                    "app {key} shares {}; removing it would discard another app's data (hard-reset without volumes=true keeps volumes)",
                    shared.join(", ")
                )));
            }
            for v in &app.spec.container.volumes {
                steps.push(Step {
                    action: Action::RemoveVolume {
                        name: volume_name(&key.namespace, &v.name),
                    },
                    reason: format!("hard reset with volumes: volume {} is discarded", v.name),
                });
            }
        }
        let images = self
            .observer
            .images(self.runtime.as_ref(), self.images.pulls())
            .await?;
        let desired = Desired {
            instance: self.config.instance.clone(),
            apps: [(key.clone(), app)].into(),
            ..Desired::default()
        };
        let observed = Observed {
            images,
            ..Observed::default()
        };
        let fresh = plan(&desired, &observed, now)
            .apps
            .remove(key)
            .unwrap_or_default();
        if fresh.steps.is_empty() {
            return Err(ActionError::Failed(format!(
                "the app cannot be recreated now: {}",
                fresh.waiting.unwrap_or_else(|| "nothing to create".into())
            )));
        }
        steps.extend(fresh.steps);
        let reset = AppPlan {
            uid: Some(record.uid.clone()),
            steps,
            ..AppPlan::default()
        };
        let execution = execute(
            self.runtime.as_ref(),
            &self.store,
            &self.images,
            &self.ops,
            &reset,
        )
        .await;
        self.report(key, Some(record), &execution).await;
        if let Some((step, e)) = execution.error() {
            return Err(ActionError::Failed(format!(
                "{} failed ({}): {e}",
                step.action.verb(),
                step.reason
            )));
        }
        let created = execution
            .outcomes
            .iter()
            .find_map(|o| match (&o.step.action, &o.result) {
                (Action::Create(_), Ok(detail)) => Some(detail.clone()),
                _ => None,
            });
        Ok(format!(
            "recreated from the image: {}{}",
            created.unwrap_or_else(|| "new container".into()),
            if volumes { ", volumes discarded" } else { "" }
        ))
    }

    /// The app's volumes that another app of its namespace mounts too.
    async fn shared_volumes(&self, record: &ObjectRecord) -> Result<Vec<String>, ActionError> {
        let mine: Vec<String> = record
            .app_spec()
            .map(|s| s.container.volumes.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default();
        let mut shared = Vec::new();
        for other in self
            .store
            .list(Kind::App, Some(&record.key.namespace))
            .await?
        {
            if other.uid == record.uid {
                continue;
            }
            let Ok(spec) = other.app_spec() else { continue };
            for v in &spec.container.volumes {
                if mine.contains(&v.name) {
                    shared.push(format!("volume {} with app {}", v.name, other.key));
                }
            }
        }
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked_and_spelled_for_docker() {
        assert_eq!(parse_signal("kill").unwrap(), "SIGKILL");
        assert_eq!(parse_signal("SIGHUP").unwrap(), "SIGHUP");
        assert_eq!(parse_signal("sigterm").unwrap(), "SIGTERM");
        assert_eq!(parse_signal("9").unwrap(), "9");
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("--help").is_err());
    }
}
