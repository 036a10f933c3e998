//! The executor: runs one app's steps in order, records each result, stops at the first
//! failure. It interprets the plan and decides nothing.

use tokio::sync::Semaphore;

use super::plan::{Action, AppPlan, Step, Target};
use crate::runtime::{Runtime, RuntimeError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("plan refers to a container it did not create")]
    NoCreatedContainer,
}

impl ExecError {
    pub fn reason(&self) -> &'static str {
        match self {
            ExecError::Runtime(e) => e.reason(),
            ExecError::Store(_) => "StoreError",
            ExecError::NoCreatedContainer => "InternalError",
        }
    }
}

/// What happened to one step.
#[derive(Debug)]
pub struct StepOutcome {
    pub step: Step,
    /// A detail for the event ("container 7ab3515c6a31"), or the error.
    pub result: Result<String, ExecError>,
}

/// What happened to a whole plan.
#[derive(Debug, Default)]
pub struct Execution {
    pub outcomes: Vec<StepOutcome>,
}

impl Execution {
    pub fn error(&self) -> Option<(&Step, &ExecError)> {
        self.outcomes
            .iter()
            .find_map(|o| o.result.as_ref().err().map(|e| (&o.step, e)))
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Runs `plan`'s steps in order. The chain holds one permit of `ops` while it talks to the
/// engine: its steps run one at a time, so at most `ops` container operations are in flight
/// across all apps, and an app goes from nothing to running without queueing between steps.
pub async fn execute(
    runtime: &dyn Runtime,
    store: &Store,
    ops: &Semaphore,
    plan: &AppPlan,
) -> Execution {
    let mut execution = Execution::default();
    let mut created: Option<String> = None;
    let engine_steps = plan
        .steps
        .iter()
        .any(|s| !matches!(s.action, Action::Forget { .. }));
    // The semaphore is never closed, so acquiring only fails if it were; treat that as "no bound".
    let _permit = if engine_steps {
        ops.acquire().await.ok()
    } else {
        None
    };
    for step in &plan.steps {
        let result = run_step(runtime, store, plan.uid.as_deref(), step, &mut created).await;
        let failed = result.is_err();
        execution.outcomes.push(StepOutcome {
            step: step.clone(),
            result,
        });
        if failed {
            break;
        }
    }
    execution
}

async fn run_step(
    runtime: &dyn Runtime,
    store: &Store,
    uid: Option<&str>,
    step: &Step,
    created: &mut Option<String>,
) -> Result<String, ExecError> {
    let resolve = |target: &Target| -> Result<String, ExecError> {
        match target {
            Target::Id(id) => Ok(id.clone()),
            Target::Created => created.clone().ok_or(ExecError::NoCreatedContainer),
        }
    };
    if let Action::Forget { uid } = &step.action {
        store.forget(uid).await?;
        return Ok(String::new());
    }
    match &step.action {
        Action::EnsureVolume { name, labels } => {
            runtime.ensure_volume(name, labels).await?;
            Ok(format!("volume {name}"))
        }
        Action::Create(spec) => {
            let id = runtime.create(spec).await?;
            let detail = format!("container {} ({})", short(&id), spec.name);
            *created = Some(id);
            Ok(detail)
        }
        Action::Start(t) => {
            let id = resolve(t)?;
            runtime.start(&id).await?;
            Ok(format!("container {}", short(&id)))
        }
        Action::Stop {
            target,
            grace_seconds,
        } => {
            let id = resolve(target)?;
            runtime.stop(&id, *grace_seconds).await?;
            Ok(format!("container {}", short(&id)))
        }
        Action::Pause(t) => {
            let id = resolve(t)?;
            runtime.pause(&id).await?;
            Ok(format!("container {}", short(&id)))
        }
        Action::Unpause(t) => {
            let id = resolve(t)?;
            runtime.unpause(&id).await?;
            Ok(format!("container {}", short(&id)))
        }
        Action::Update {
            target,
            limits,
            hash,
        } => {
            let id = resolve(target)?;
            runtime.update(&id, limits).await?;
            // The container's label still names the creation-time hash; remember the new one.
            if let Some(uid) = uid {
                store.set_applied_update(uid, &id, hash).await?;
            }
            Ok(format!("container {}", short(&id)))
        }
        Action::Remove { id } => {
            runtime.remove(id, true).await?;
            Ok(format!("container {}", short(id)))
        }
        Action::Forget { .. } => Ok(String::new()),
    }
}
