//! The executor: runs one app's steps in order, records each result, stops at the first
//! failure. It interprets the plan and decides nothing.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::plan::{Action, AppPlan, Step, Target};
use crate::images::ImageService;
use crate::images::registry::RegistryError;
use crate::runtime::{ContainerState, CreateSpec, Runtime, RuntimeError};
use crate::store::{Store, StoreError};

/// How long a replacement container must stay running before the old one is removed.
pub const REPLACE_SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A replacement failed and the old container was put back.
    #[error("{0}")]
    RolledBack(String),
    #[error("plan refers to a container it did not create")]
    NoCreatedContainer,
}

impl ExecError {
    pub fn reason(&self) -> &'static str {
        match self {
            ExecError::Runtime(e) => e.reason(),
            ExecError::Store(_) => "StoreError",
            ExecError::Registry(e) => e.reason(),
            ExecError::RolledBack(_) => "RolledBack",
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
/// engine about containers: its steps run one at a time, so at most `ops` container operations
/// are in flight across all apps, and an app goes from nothing to running without queueing
/// between steps. Pulls and registry checks come first and take no permit: a long download
/// does not hold back other apps' container work.
pub async fn execute(
    runtime: &dyn Runtime,
    store: &Store,
    images: &ImageService,
    ops: &Semaphore,
    plan: &AppPlan,
) -> Execution {
    let mut execution = Execution::default();
    let mut created: Option<String> = None;
    let mut permit: Option<SemaphorePermit<'_>> = None;
    for step in &plan.steps {
        let needs_permit = !matches!(
            step.action,
            Action::Forget { .. } | Action::Pull { .. } | Action::CheckDigest { .. }
        );
        if needs_permit && permit.is_none() {
            // The semaphore is never closed, so acquiring only fails if it were; treat that as
            // "no bound".
            permit = ops.acquire().await.ok();
        }
        let result = run_step(
            runtime,
            store,
            images,
            plan.uid.as_deref(),
            step,
            &mut created,
        )
        .await;
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

/// After a failed replacement: the new container is gone; give the old one its name back and
/// restart it if it was running. Returns what could not be restored, if anything.
async fn restore(runtime: &dyn Runtime, old: &str, name: &str, was_running: bool) -> String {
    let mut problems = Vec::new();
    if let Err(e) = runtime.rename(old, name).await {
        problems.push(format!("renaming it back failed: {e}"));
    }
    if was_running && let Err(e) = runtime.start(old).await {
        problems.push(format!("restarting it failed: {e}"));
    }
    problems.join("; ")
}

fn with_problems(problems: String) -> String {
    if problems.is_empty() {
        problems
    } else {
        format!(" ({problems})")
    }
}

/// Starts the new container of a replacement and checks it is still running after
/// `REPLACE_SETTLE`.
async fn start_and_settle(runtime: &dyn Runtime, id: &str) -> Result<(), String> {
    runtime
        .start(id)
        .await
        .map_err(|e| format!("failed to start: {e}"))?;
    tokio::time::sleep(REPLACE_SETTLE).await;
    let details = runtime
        .inspect(id)
        .await
        .map_err(|e| format!("could not be inspected: {e}"))?;
    match details.state {
        Some(ContainerState::Running) => Ok(()),
        state => {
            let code = details
                .exit_code
                .map(|c| format!(" with code {c}"))
                .unwrap_or_default();
            let error = details.error.map(|e| format!(": {e}")).unwrap_or_default();
            Err(format!(
                "did not keep running ({}{code}{error})",
                state.map_or("unknown".into(), |s| format!("{s:?}").to_lowercase())
            ))
        }
    }
}

/// The fixed semantics of `Action::Replace`; returns the new container's id.
async fn replace(
    runtime: &dyn Runtime,
    old: &str,
    old_name: &str,
    old_running: bool,
    create: &CreateSpec,
    start: bool,
    grace_seconds: Option<u64>,
) -> Result<String, ExecError> {
    let aside = format!("{}.replaced-{}", create.name, short(old));
    if old_name != aside {
        runtime.rename(old, &aside).await?;
    }
    if old_running && let Err(e) = runtime.stop(old, grace_seconds).await {
        let problems = restore(runtime, old, &create.name, false).await;
        if !problems.is_empty() {
            tracing::error!(container = %create.name, "after a failed stop: {problems}");
        }
        return Err(e.into());
    }
    let new = match runtime.create(create).await {
        Ok(id) => id,
        Err(e) => {
            let problems = restore(runtime, old, &create.name, old_running).await;
            return Err(ExecError::RolledBack(format!(
                "the new container could not be created: {e}; kept container {}{}",
                short(old),
                with_problems(problems)
            )));
        }
    };
    if start && let Err(why) = start_and_settle(runtime, &new).await {
        if let Err(e) = runtime.remove(&new, true).await {
            tracing::error!(container = %create.name, "removing the failed replacement {}: {e}", short(&new));
        }
        let problems = restore(runtime, old, &create.name, old_running).await;
        return Err(ExecError::RolledBack(format!(
            "the new container {} {why}; rolled back to container {}{}",
            short(&new),
            short(old),
            with_problems(problems)
        )));
    }
    // The new one runs; a failure to remove the old one leaves it stopped under its aside
    // name, and the next pass removes it as a duplicate.
    runtime.remove(old, true).await?;
    Ok(new)
}

async fn run_step(
    runtime: &dyn Runtime,
    store: &Store,
    images: &ImageService,
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
        Action::Replace {
            old,
            old_name,
            old_running,
            create,
            start,
            grace_seconds,
            ..
        } => {
            let id = replace(
                runtime,
                old,
                old_name,
                *old_running,
                create,
                *start,
                *grace_seconds,
            )
            .await?;
            let detail = format!("container {} replaced {}", short(&id), short(old));
            *created = Some(id);
            Ok(detail)
        }
        Action::Pull {
            reference,
            credentials,
        } => {
            images.pull(reference, credentials.as_ref()).await?;
            Ok(format!("image {reference}"))
        }
        Action::CheckDigest {
            reference,
            credentials,
        } => {
            let digest = images.check(reference, credentials.as_ref()).await?;
            Ok(format!("{reference} is {digest} in the registry"))
        }
        Action::RemoveImage { reference } => match runtime.remove_image(reference, false).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(format!("image {reference}")),
            Err(RuntimeError::Conflict(m)) => Ok(format!(
                "image {reference} kept: containers still use it ({m})"
            )),
            Err(e) => Err(e.into()),
        },
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
