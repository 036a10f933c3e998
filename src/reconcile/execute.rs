//! The executor: runs one app's steps in order, records each result, stops at the first
//! failure. It interprets the plan and decides nothing.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::images::ImageService;
use super::plan::{Action, AppPlan, Step, Target};
use crate::images::registry::RegistryError;
use crate::runtime::{
    ContainerDetails, ContainerState, CreateSpec, HealthState, Runtime, RuntimeError,
};
use crate::spec::validate::Health;
use crate::store::{Store, StoreError};

/// How often a replacement container is looked at while it proves itself.
const READY_POLL: Duration = Duration::from_millis(500);

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

/// How the loop treats a failure: the one place retry policy is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Likely to pass on its own (a timeout, an engine or registry hiccup, a race): retried
    /// with the app's backoff.
    Transient,
    /// Will fail again the same way (the engine refused the configuration, a name is held by a
    /// container wharf does not manage, a missing image that may not be pulled, credentials
    /// refused): not retried until the spec or the image changes or the engine reconnects
    /// (and, as a safety net for changes wharf cannot see, after the longest backoff).
    Permanent,
}

impl ExecError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ExecError::Runtime(RuntimeError::Engine { status, .. })
                if (400..500).contains(status) && *status != 408 && *status != 429 =>
            {
                ErrorClass::Permanent
            }
            ExecError::Runtime(RuntimeError::Conflict(m)) if m.contains("is already in use") => {
                ErrorClass::Permanent
            }
            ExecError::Runtime(RuntimeError::NotFound(m)) if m.contains("No such image") => {
                ErrorClass::Permanent
            }
            ExecError::Registry(RegistryError::Unauthorized(_))
            | ExecError::RolledBack(_)
            | ExecError::NoCreatedContainer => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        }
    }

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
    let mut slot = Slot { ops, permit: None };
    for step in &plan.steps {
        let needs_permit = !matches!(
            step.action,
            Action::Forget { .. } | Action::Pull { .. } | Action::CheckDigest { .. }
        );
        if needs_permit {
            slot.acquire().await;
        }
        let result = run_step(
            runtime,
            store,
            images,
            plan.uid.as_deref(),
            step,
            &mut created,
            &mut slot,
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

/// A chain's hold on one of the container-operation permits.
struct Slot<'a> {
    ops: &'a Semaphore,
    permit: Option<SemaphorePermit<'a>>,
}

impl Slot<'_> {
    async fn acquire(&mut self) {
        if self.permit.is_none() {
            // The semaphore is never closed, so acquiring only fails if it were; treat that as
            // "no bound".
            self.permit = self.ops.acquire().await.ok();
        }
    }

    /// Lets other apps use the permit while this chain only waits.
    fn release(&mut self) {
        self.permit = None;
    }
}

/// Stops a container gracefully without holding a permit: the engine signals it, waits out the
/// grace period and kills it at the deadline, and none of that is engine work this chain must
/// bound — so N apps stop in about one grace period, not N / permits of them. The permit is
/// taken again before the chain's next engine call.
async fn graceful_stop(
    runtime: &dyn Runtime,
    slot: &mut Slot<'_>,
    id: &str,
    grace_seconds: Option<u64>,
) -> Result<(), RuntimeError> {
    slot.release();
    let stopped = runtime.stop(id, grace_seconds).await;
    slot.acquire().await;
    stopped
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

/// Watches a just-started replacement until it has been running — and healthy, when `health`
/// declares a check — for `min_ready` without a break. Fails as soon as it exits, restarts
/// (a crash loop under a restart policy), turns unhealthy, or when a check gives no verdict in
/// the time Docker may take to give one.
async fn await_ready(
    runtime: &dyn Runtime,
    id: &str,
    min_ready: Duration,
    health: Option<&Health>,
) -> Result<(), String> {
    let started = Instant::now();
    let health = health.filter(|h| h.is_enabled());
    let give_up = started + health.map_or(Duration::ZERO, Health::verdict_within) + min_ready;
    // Without a check, ready means running: since the start, as long as each look finds it
    // running and never restarted. With one, since the first look that finds it healthy.
    let mut ready_since: Option<Instant> = health.is_none().then_some(started);
    loop {
        let due = ready_since.map_or(READY_POLL, |since| {
            (since + min_ready).saturating_duration_since(Instant::now())
        });
        tokio::time::sleep(due.min(READY_POLL).max(Duration::from_millis(100))).await;
        let details = runtime
            .inspect(id)
            .await
            .map_err(|e| format!("could not be inspected: {e}"))?;
        let now = Instant::now();
        if details.restart_count > 0 {
            return Err(format!(
                "crash-looped: Docker restarted it {} time(s) within {}s{}",
                details.restart_count,
                (now - started).as_secs(),
                exit_detail(&details)
            ));
        }
        if details.state != Some(ContainerState::Running) {
            return Err(format!(
                "did not keep running ({}{})",
                details.state.map_or("unknown".into(), |s| s.to_string()),
                exit_detail(&details)
            ));
        }
        if health.is_some() && details.health == Some(HealthState::Unhealthy) {
            return Err(format!(
                "became unhealthy{}",
                details
                    .health_output
                    .filter(|o| !o.is_empty())
                    .map(|o| format!(": {o}"))
                    .unwrap_or_default()
            ));
        }
        let ready = health.is_none() || details.health == Some(HealthState::Healthy);
        if !ready {
            ready_since = None;
        } else if now - *ready_since.get_or_insert(now) >= min_ready {
            return Ok(());
        }
        if now >= give_up && ready_since.is_none() {
            return Err(format!(
                "was not healthy within {}s (health: {})",
                (now - started).as_secs(),
                details.health.map_or("unknown".into(), |h| h.to_string())
            ));
        }
    }
}

/// " with code 1: error text", as far as the inspect tells.
fn exit_detail(details: &ContainerDetails) -> String {
    let code = details
        .exit_code
        .filter(|c| *c != 0 || details.state != Some(ContainerState::Running))
        .map(|c| format!(" with code {c}"))
        .unwrap_or_default();
    let error = details
        .error
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    format!("{code}{error}")
}

/// The old container of a replacement, as the plan saw it.
struct Old<'a> {
    id: &'a str,
    name: &'a str,
    running: bool,
    grace_seconds: Option<u64>,
}

/// The fixed semantics of `Action::Replace`; returns the new container's id. While the new
/// container proves itself the chain gives its permit back: waiting is not an engine operation.
async fn replace(
    runtime: &dyn Runtime,
    slot: &mut Slot<'_>,
    old: Old<'_>,
    create: &CreateSpec,
    start: bool,
    min_ready: Duration,
) -> Result<String, ExecError> {
    let Old {
        id: old,
        name: old_name,
        running: old_running,
        grace_seconds,
    } = old;
    let aside = format!("{}.replaced-{}", create.name, short(old));
    if old_name != aside {
        runtime.rename(old, &aside).await?;
    }
    if old_running && let Err(e) = graceful_stop(runtime, slot, old, grace_seconds).await {
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
    let proven = if start {
        match runtime.start(&new).await {
            Err(e) => Err(format!("failed to start: {e}")),
            Ok(()) => {
                slot.release();
                let watched =
                    await_ready(runtime, &new, min_ready, create.config.healthcheck.as_ref()).await;
                slot.acquire().await;
                watched
            }
        }
    } else {
        Ok(())
    };
    if let Err(why) = proven {
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
    slot: &mut Slot<'_>,
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
            min_ready,
            ..
        } => {
            let old_container = Old {
                id: old,
                name: old_name,
                running: *old_running,
                grace_seconds: *grace_seconds,
            };
            let id = replace(runtime, slot, old_container, create, *start, *min_ready).await?;
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
        Action::Start(t) | Action::Pause(t) | Action::Unpause(t) => {
            let id = resolve(t)?;
            match &step.action {
                Action::Start(_) => runtime.start(&id).await?,
                Action::Pause(_) => runtime.pause(&id).await?,
                _ => runtime.unpause(&id).await?,
            }
            Ok(format!("container {}", short(&id)))
        }
        Action::Stop {
            target,
            grace_seconds,
        } => {
            let id = resolve(target)?;
            graceful_stop(runtime, slot, &id, *grace_seconds).await?;
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
        Action::Rename { id, name } => {
            runtime.rename(id, name).await?;
            Ok(format!("container {} is {name} again", short(id)))
        }
        Action::RemoveVolume { name } => {
            runtime.remove_volume(name).await?;
            Ok(format!("volume {name}"))
        }
        Action::Forget { .. } => Ok(String::new()),
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;

    #[test]
    fn failures_are_classified_transient_or_permanent() {
        let engine = |status| {
            ExecError::Runtime(RuntimeError::Engine {
                op: "create container",
                status,
                message: "m".into(),
            })
        };
        assert_eq!(engine(400).class(), ErrorClass::Permanent);
        assert_eq!(engine(500).class(), ErrorClass::Transient);
        assert_eq!(engine(429).class(), ErrorClass::Transient);
        let name_taken = ExecError::Runtime(RuntimeError::Conflict(
            "The container name \"/demo.web\" is already in use by container \"ab12\"".into(),
        ));
        assert_eq!(name_taken.class(), ErrorClass::Permanent);
        let removing = ExecError::Runtime(RuntimeError::Conflict(
            "removal of container ab12 is already in progress".into(),
        ));
        assert_eq!(removing.class(), ErrorClass::Transient);
        assert_eq!(
            ExecError::Runtime(RuntimeError::NotFound("No such image: busybox:9".into())).class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            ExecError::Runtime(RuntimeError::Timeout {
                op: "start container",
                seconds: 30
            })
            .class(),
            ErrorClass::Transient
        );
        assert_eq!(
            ExecError::Registry(RegistryError::RateLimited("slow down".into())).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            ExecError::Registry(RegistryError::Unauthorized("no".into())).class(),
            ErrorClass::Permanent
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::images::registry::RegistryClient;
    use crate::runtime::fake::{FakeRuntime, Op};
    use crate::runtime::labels;
    use crate::spec::validate::{ContainerConfig, Limits};

    struct Kit {
        fake: FakeRuntime,
        store: Store,
        images: ImageService,
        ops: Semaphore,
        _dir: tempfile::TempDir,
    }

    async fn kit() -> Kit {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.sqlite"))
            .await
            .expect("store");
        let fake = FakeRuntime::default();
        fake.add_image("busybox");
        let images = ImageService::new(
            std::sync::Arc::new(FakeRuntime::default()),
            RegistryClient::new(Vec::new(), Duration::from_secs(1)),
            Default::default(),
        );
        Kit {
            fake,
            store,
            images,
            ops: Semaphore::new(2),
            _dir: dir,
        }
    }

    fn spec(name: &str, env: &str) -> CreateSpec {
        CreateSpec {
            name: name.into(),
            labels: BTreeMap::from([
                (labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into()),
                (labels::INSTANCE.into(), "exec".into()),
            ]),
            config: ContainerConfig {
                image: "busybox".into(),
                env: BTreeMap::from([("V".to_string(), env.to_string())]),
                ..ContainerConfig::default()
            },
            limits: Limits::default(),
            volume_names: BTreeMap::new(),
        }
    }

    fn step(action: Action) -> Step {
        Step {
            action,
            reason: "test".into(),
        }
    }

    #[tokio::test]
    async fn a_chain_stops_at_its_first_failure_and_records_every_outcome() {
        let k = kit().await;
        k.fake.fail_next(
            Op::Start,
            "",
            RuntimeError::Engine {
                op: "start container",
                status: 500,
                message: "boom".into(),
            },
        );
        let plan = AppPlan {
            steps: vec![
                step(Action::Create(Box::new(spec("demo.web", "A=1")))),
                step(Action::Start(Target::Created)),
                step(Action::Pause(Target::Created)),
            ],
            ..AppPlan::default()
        };
        let run = execute(&k.fake, &k.store, &k.images, &k.ops, &plan).await;
        assert_eq!(
            run.outcomes.len(),
            2,
            "the pause after the failed start is not tried"
        );
        assert!(run.outcomes[0].result.is_ok());
        let (failed, e) = run.error().expect("the start failed");
        assert_eq!(failed.action, Action::Start(Target::Created));
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(!k.fake.calls().iter().any(|c| c.op == Op::Pause));
    }

    #[tokio::test]
    async fn a_replacement_that_cannot_start_is_rolled_back_to_the_old_container() {
        let k = kit().await;
        let old = k.fake.create(&spec("demo.web", "A=1")).await.expect("old");
        k.fake.start(&old).await.expect("old runs");
        k.fake.fail_next(
            Op::Start,
            "",
            RuntimeError::Engine {
                op: "start container",
                status: 500,
                message: "no".into(),
            },
        );
        let plan = AppPlan {
            steps: vec![step(Action::Replace {
                old: old.clone(),
                old_name: "demo.web".into(),
                old_running: true,
                create: Box::new(spec("demo.web", "A=2")),
                start: true,
                grace_seconds: Some(1),
                image_id: None,
                min_ready: Duration::ZERO,
            })],
            ..AppPlan::default()
        };
        let run = execute(&k.fake, &k.store, &k.images, &k.ops, &plan).await;
        let (_, e) = run.error().expect("rolled back");
        assert!(matches!(e, ExecError::RolledBack(_)), "{e}");
        assert_eq!(e.class(), ErrorClass::Permanent);
        let containers = k.fake.containers();
        assert_eq!(containers.len(), 1, "the failed replacement is removed");
        assert_eq!(containers[0].id, old, "the old container is kept");
        assert_eq!(containers[0].name, "demo.web", "under its own name again");
        assert_eq!(containers[0].state, crate::runtime::ContainerState::Running);
    }
}
