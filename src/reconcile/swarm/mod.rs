//! The swarm backend: observe → plan → execute for Swarm services, beside the solo backend's
//! containers, sharing everything above them (store, desired objects and the approval gate,
//! the loop's wake-ups, memory and backoff, statuses and events).
//!
//! - `declare`: an App as the `ServiceSpec` wharf wants (pure).
//! - `plan`: the pure planner.
//! - `status`: an app's status from its service and tasks (pure).
//! - here: the pass (observe the manager, learn from rollbacks, plan, publish, hand out work),
//!   the executor of service steps, and the swarm actions (restart, hard reset).
//!
//! Swarm schedules, replaces and rolls back tasks; wharf never touches a task or a container
//! in swarm mode.

pub mod plan;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::controller::Controller;
use super::execute::{ErrorClass, ExecError};
use super::memory::{Failure, TaskBook};
use super::plan::{Desired, DesiredApp, volume_name};
use crate::images::resolve_credentials;
use crate::runtime::swarm::{
    ServiceMode, ServiceMount, ServicePort, ServiceRestart, ServiceSpec, ServiceUpdateConfig, Swarm,
};
use crate::runtime::{RegistryCredentials, RuntimeError, labels};
use crate::spec::Kind;
use crate::spec::image::CredentialsRef;
use crate::spec::reference::canonical_reference;
use crate::spec::status::ObjectStatus;
use crate::spec::validate::{AppKey, Restart};
use crate::spec::wire::DesiredState;
use crate::store::{EventType, ObjectRecord, now_rfc3339};
use plan::{DesiredService, ServiceAction, ServicePlan, SwarmObserved};

pub use crate::runtime::swarm::labels::HASH_SERVICE as HASH_LABEL;

/// The service label naming the user the app belongs to (`spec.owner`).
pub const OWNER_LABEL: &str = "wharf.owner";

/// The service name of an app: `namespace_name` as `docker stack` names them, when that is a
/// valid service name (at most 63 letters, digits, `-` and `_`); else a shortened form with a
/// hash of the key, still unique.
pub fn service_name(key: &AppKey) -> String {
    let plain = format!("{}_{}", key.namespace, key.name);
    if plain.len() <= 63 && !plain.contains('.') {
        return plain;
    }
    let digest = Sha256::digest(format!("{}/{}", key.namespace, key.name).as_bytes());
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut head: String = plain.replace('.', "-").chars().take(54).collect();
    while head.ends_with(['-', '_']) {
        head.pop();
    }
    format!("{head}-{suffix}")
}

/// The service wharf declares for `app`, running `image` (the app's reference, pinned to a
/// digest when one is known: see `pinned_image`), with its hash label set.
pub fn declare(app: &DesiredApp, image: &str, instance: &str) -> ServiceSpec {
    let spec = &app.spec;
    let c = &spec.container;
    let s = &spec.swarm;
    let common = BTreeMap::from([
        (labels::INSTANCE.to_string(), instance.to_string()),
        (labels::NAMESPACE.to_string(), spec.key.namespace.clone()),
        (labels::APP.to_string(), spec.key.name.clone()),
        (labels::UID.to_string(), app.uid.clone()),
    ]);
    // The app's own labels and its owner go on the service (not on the task containers: a
    // change of them then replaces no task); `wharf.*` keys are wharf's alone.
    let mut service_labels: BTreeMap<String, String> = app
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("wharf."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    service_labels.extend(common.clone());
    if let Some(owner) = &spec.owner {
        service_labels.insert(OWNER_LABEL.to_string(), owner.clone());
    }
    service_labels.insert(
        labels::MANAGED_BY.to_string(),
        labels::MANAGED_BY_VALUE.to_string(),
    );
    let mut mounts: Vec<ServiceMount> = c
        .volumes
        .iter()
        .map(|v| ServiceMount {
            target: v.mount_path.clone(),
            source: volume_name(&spec.key.namespace, &v.name),
            bind: false,
            read_only: v.read_only,
        })
        .chain(c.binds.iter().map(|b| ServiceMount {
            target: b.mount_path.clone(),
            source: b.host_path.clone(),
            bind: true,
            read_only: b.read_only,
        }))
        .collect();
    mounts.sort();
    let mut ports: Vec<ServicePort> = c
        .ports
        .iter()
        .map(|p| ServicePort {
            target: p.container_port,
            protocol: p.protocol,
            published: p.host_port,
            host_mode: s.host_mode_ports.contains(&(p.container_port, p.protocol)),
        })
        .collect();
    ports.sort();
    let (condition, max_attempts) = match spec.limits.restart {
        Restart::No => ("none", None),
        Restart::Always | Restart::UnlessStopped => ("any", None),
        Restart::OnFailure { max_retries } => (
            "on-failure",
            (max_retries > 0).then_some(u64::from(max_retries)),
        ),
    };
    let mode = if s.global {
        ServiceMode::Global
    } else if spec.state == DesiredState::Stopped {
        ServiceMode::Replicated { replicas: 0 }
    } else {
        ServiceMode::Replicated {
            replicas: s.replicas,
        }
    };
    let mut service = ServiceSpec {
        name: service_name(&spec.key),
        labels: service_labels,
        container_labels: common,
        image: image.to_string(),
        entrypoint: c.entrypoint.clone(),
        command: c.command.clone(),
        env: c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: c.working_dir.clone(),
        mounts,
        healthcheck: c.healthcheck.clone(),
        stop_grace_ns: c
            .stop_grace_seconds
            .map(|g| i64::try_from(g.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX)),
        cap_add: c.cap_add.clone(),
        cap_drop: c.cap_drop.clone(),
        memory: spec.limits.memory,
        nano_cpus: spec.limits.nano_cpus,
        pids: spec.limits.pids,
        reserve_memory: s.reserve_memory,
        reserve_nano_cpus: s.reserve_nano_cpus,
        restart: ServiceRestart {
            condition,
            max_attempts,
            delay_ns: s.restart_delay_ns,
        },
        constraints: s.constraints.clone(),
        spread: s.spread.clone(),
        max_replicas_per_node: s.max_replicas_per_node,
        mode,
        update: ServiceUpdateConfig {
            parallelism: s.update.parallelism,
            delay_ns: s.update.delay_ns,
            order: s.update.order,
            failure_action: s.update.failure_action,
            monitor_ns: s.update.monitor_ns,
            max_failure_ratio: s.update.max_failure_ratio,
        },
        ports,
    };
    let hash = hash_of(&service);
    service.labels.insert(HASH_LABEL.to_string(), hash);
    service
}

/// The image a service runs: the app's reference pinned to the registry digest its Image
/// object last saw (an `updateInterval` check or `images update-all`), so every node runs the
/// same image and a new digest rolls the service; else the digest the service already runs
/// for the same reference (a restart of wharf rolls nothing); else the reference as written
/// (each node pulls it). A reference that names a digest is used as it is.
pub fn pinned_image(image: &str, desired: &Desired, running: Option<&str>) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let canonical = canonical_reference(image).ok();
    let checked = desired
        .images
        .values()
        .find(|i| !i.deleting && Some(&i.spec.canonical) == canonical.as_ref())
        .and_then(|i| i.remote_digest.clone());
    if let Some(digest) = checked {
        return format!("{image}@{digest}");
    }
    match running.and_then(|r| r.split_once('@')) {
        Some((base, digest)) if base == image => format!("{image}@{digest}"),
        _ => image.to_string(),
    }
}

/// The hash of a declared service (its labels hold it, so it is taken without them).
fn hash_of(spec: &ServiceSpec) -> String {
    let mut bare = spec.clone();
    bare.labels.remove(HASH_LABEL);
    // Plain data (strings, numbers, maps): serialising it cannot fail.
    let bytes = serde_json::to_vec(&bare).unwrap_or_default();
    Sha256::digest(&bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A task event to record on an app.
struct TaskNews {
    uid: String,
    kind: EventType,
    reason: &'static str,
    message: String,
}

/// The task failures and reschedules in `observed` that `book` has not reported yet (it then
/// has).
fn task_news(book: &mut TaskBook, observed: &SwarmObserved) -> Vec<TaskNews> {
    {
        let first = book.reported.is_none();
        let reported = book.reported.get_or_insert_with(HashSet::new);
        let uid_of: HashMap<&str, &str> = observed
            .services
            .iter()
            .filter_map(|s| {
                s.spec
                    .labels
                    .get(labels::UID)
                    .map(|u| (s.id.as_str(), u.as_str()))
            })
            .collect();
        let hostname = |id: &str| {
            observed
                .nodes
                .iter()
                .find(|n| n.id == id)
                .map_or(id.to_string(), |n| n.hostname.clone())
        };
        let mut out = Vec::new();
        for t in &observed.tasks {
            let Some(uid) = uid_of.get(t.service_id.as_str()) else {
                continue;
            };
            if t.is_failure() && reported.insert(t.id.clone()) && !first {
                out.push(TaskNews {
                    uid: uid.to_string(),
                    kind: EventType::Warning,
                    reason: "TaskFailed",
                    message: format!(
                        "task {} (slot {}) on {} {}: {}",
                        &t.id[..t.id.len().min(12)],
                        t.slot.map_or("-".to_string(), |s| s.to_string()),
                        t.node_id.as_deref().map_or("no node".into(), hostname),
                        t.state,
                        t.error
                            .clone()
                            .or(t.message.clone())
                            .unwrap_or_else(|| "no reason given".into())
                    ),
                });
            }
            if let (Some(slot), Some(node), true) = (t.slot, &t.node_id, t.is_running()) {
                let place = (t.service_id.clone(), slot);
                match book.placed.insert(place, node.clone()) {
                    Some(before) if before != *node => out.push(TaskNews {
                        uid: uid.to_string(),
                        kind: EventType::Normal,
                        reason: "TaskRescheduled",
                        message: format!(
                            "slot {slot} moved from {} to {}",
                            hostname(&before),
                            hostname(node)
                        ),
                    }),
                    _ => {}
                }
            }
        }
        let live: HashSet<&str> = observed.tasks.iter().map(|t| t.id.as_str()).collect();
        reported.retain(|id| live.contains(id.as_str()));
        let services: HashSet<&str> = observed.services.iter().map(|s| s.id.as_str()).collect();
        book.placed
            .retain(|(service, _), _| services.contains(service.as_str()));
        out
    }
}

impl Controller {
    /// One swarm pass over `records` (already in `desired`). Returns when the next pass is due
    /// at the latest.
    pub(super) async fn swarm_pass(
        self: &Arc<Self>,
        swarm: &Arc<dyn Swarm>,
        records: &[ObjectRecord],
        desired: &Desired,
        observed_at: Instant,
    ) -> Option<Duration> {
        let observed = match observe(swarm.as_ref(), &self.config.instance).await {
            Ok(o) => o,
            Err(e) => return self.docker_failed(e.to_string()),
        };
        let by_uid: HashMap<&str, &ObjectRecord> =
            records.iter().map(|r| (r.uid.as_str(), r)).collect();
        self.learn_rollbacks(desired, &observed, observed_at);
        let now = Instant::now();
        let services = self.desired_services(desired, &observed, now);
        let nodes = desired_nodes(records);
        let the_plan = plan::plan(&services, &nodes, &desired.frozen_uids, &observed, now);
        self.health.send_modify(|h| h.passes += 1);
        self.metrics.passes.inc();

        let news = task_news(&mut self.memory().tasks, &observed);
        for n in news {
            if let Some(record) = by_uid.get(n.uid.as_str()) {
                tracing::info!(app = %record.key, "{}: {}", n.reason, n.message);
                self.event(record, n.kind, n.reason, &n.message).await;
            }
        }
        self.write_swarm_statuses(&services, &observed, &the_plan, &by_uid, observed_at)
            .await;
        self.metrics
            .pass_seconds
            .observe(observed_at.elapsed().as_secs_f64());
        if self.cancel.is_cancelled() {
            return None;
        }
        self.check_images(desired, observed_at);
        for (key, service_plan) in the_plan.apps.iter().chain(the_plan.nodes.iter()) {
            if service_plan.steps.is_empty() {
                continue;
            }
            {
                let mut state = self.lock();
                if state.is_stale(key, observed_at) || !state.inflight.insert(key.clone()) {
                    continue;
                }
            }
            let record = service_plan
                .uid
                .as_deref()
                .and_then(|u| by_uid.get(u))
                .map(|r| (*r).clone());
            let credentials = service_plan
                .uid
                .as_deref()
                .and_then(|u| services.values().find(|s| s.uid == u))
                .and_then(|s| credentials_for(desired, &s.spec.image));
            let this = Arc::clone(self);
            let swarm = Arc::clone(swarm);
            let key = key.clone();
            let service_plan = service_plan.clone();
            self.work.spawn(async move {
                this.swarm_work(swarm, key, record, service_plan, credentials)
                    .await
            });
        }
        let resync = the_plan.requeue;
        let held = services
            .values()
            .filter_map(|s| s.hold_until)
            .filter(|t| *t > now)
            .map(|t| t.duration_since(now))
            .min();
        match (resync, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The dry run's plan in swarm mode: the same observation, memory and planner as a pass.
    pub(super) async fn swarm_preview(
        &self,
        swarm: &dyn Swarm,
        records: &[ObjectRecord],
        desired: &Desired,
        now: Instant,
    ) -> Result<BTreeMap<AppKey, Vec<super::preview::PreviewStep>>, RuntimeError> {
        let observed = observe(swarm, &self.config.instance).await?;
        let services = self.desired_services(desired, &observed, now);
        let nodes = desired_nodes(records);
        let the_plan = plan::plan(&services, &nodes, &desired.frozen_uids, &observed, now);
        Ok(the_plan
            .apps
            .into_iter()
            .map(|(key, p)| {
                let steps = p
                    .steps
                    .into_iter()
                    .map(|s| super::preview::PreviewStep {
                        action: s.action.verb(),
                        reason: s.reason,
                    })
                    .collect();
                (key, steps)
            })
            .collect())
    }

    /// The declared service of every app, with what the memory says about it.
    fn desired_services(
        &self,
        desired: &Desired,
        observed: &SwarmObserved,
        now: Instant,
    ) -> BTreeMap<AppKey, DesiredService> {
        let memory = self.memory();
        desired
            .apps
            .iter()
            .map(|(key, app)| {
                let running = observed
                    .services_of(&app.uid, &service_name(key))
                    .first()
                    .map(|s| s.spec.image.clone());
                let image = pinned_image(&app.spec.container.image, desired, running.as_deref());
                let spec = declare(app, &image, &self.config.instance);
                let hash = spec.labels.get(HASH_LABEL).cloned().unwrap_or_default();
                // The memory, not `app`: this pass may just have learnt of a rollback.
                let rolled_back = memory
                    .get(&app.uid)
                    .filter(|m| m.generation == app.generation)
                    .and_then(|m| m.rolled_back.as_ref())
                    .or(app.rolled_back.as_ref())
                    .map(|r| r.message.clone());
                let hold_until = memory
                    .get(&app.uid)
                    .and_then(|m| m.hold_until)
                    .filter(|t| *t > now);
                (
                    key.clone(),
                    DesiredService {
                        uid: app.uid.clone(),
                        generation: app.generation,
                        hash,
                        deleting: app.deleting,
                        hold_until,
                        unapproved: desired.unapproved(&app.spec.container.image),
                        rolled_back,
                        spec,
                    },
                )
            })
            .collect()
    }

    /// Registry checks of the Images whose `updateInterval` has passed, in the background (one
    /// at a time per Image, held back with its backoff after a failure): a new digest changes
    /// the pinned image of the services using it, and the next pass rolls them.
    fn check_images(self: &Arc<Self>, desired: &Desired, observed_at: Instant) {
        for (key, image) in &desired.images {
            if image.deleting
                || !image.check_due
                || image.hold_until.is_some()
                || image.spec.pull_policy == crate::spec::image::PullPolicy::Never
            {
                continue;
            }
            {
                let mut state = self.lock();
                if state.is_stale(key, observed_at) || !state.inflight.insert(key.clone()) {
                    continue;
                }
            }
            let this = Arc::clone(self);
            let key = key.clone();
            let uid = image.uid.clone();
            let reference = image.spec.canonical.clone();
            let credentials = image.spec.credentials.clone();
            self.work.spawn(async move {
                let result = this.images.check(&reference, credentials.as_ref()).await;
                let now = Instant::now();
                if let Some(m) = this.memory().get_mut(&uid) {
                    match &result {
                        Ok(_) => m.failure = None,
                        Err(e) => {
                            tracing::warn!(image = %key, "registry check failed: {e}");
                            m.failure = Some(Failure {
                                generation: m.generation,
                                reason: e.reason().to_string(),
                                message: format!("registry check failed: {e}"),
                            });
                            m.hold(now);
                        }
                    }
                }
                this.release(&key);
                this.wake.notify_one();
            });
        }
    }

    /// A service whose update this generation made was rolled back (by Swarm on failure, or
    /// by hand) or paused on failure: the app remembers it (and its status keeps it across
    /// restarts), and the update is not sent again until the spec changes. A service that
    /// carries another spec than the one wharf last sent it has been taken back to an earlier
    /// one, whatever state Swarm's update report is in yet.
    fn learn_rollbacks(&self, desired: &Desired, observed: &SwarmObserved, observed_at: Instant) {
        let mut memory = self.memory();
        let state = self.lock();
        for (key, app) in &desired.apps {
            // Work running or finished since the observation: it does not show its effect.
            if state.is_stale(key, observed_at) {
                continue;
            }
            let Some(m) = memory.get_mut(&app.uid) else {
                continue;
            };
            let Some(attempted) = m.attempted.clone() else {
                continue;
            };
            if m.rolled_back.is_some() {
                continue;
            }
            let name = service_name(&app.spec.key);
            let Some(service) = observed.services_of(&app.uid, &name).first().copied() else {
                continue;
            };
            let update = service.update_status.as_ref();
            let on_service = service.spec.labels.get(HASH_LABEL);
            let reverted = on_service != Some(&attempted);
            let paused =
                on_service == Some(&attempted) && update.is_some_and(|u| u.state == "paused");
            if !(reverted || paused) {
                continue;
            }
            let message = update
                .and_then(|u| u.message.clone())
                .filter(|m| !m.is_empty() && m != "update in progress")
                .unwrap_or_else(|| match update {
                    Some(u) if paused => format!("update {}", u.state),
                    _ => "the service was taken back to its previous spec".to_string(),
                });
            tracing::warn!(app = %app.spec.key, "Swarm did not keep the update: {message}");
            m.rolled_back = Some(super::plan::RolledBack {
                image_id: None,
                message,
            });
        }
    }

    async fn write_swarm_statuses(
        &self,
        services: &BTreeMap<AppKey, DesiredService>,
        observed: &SwarmObserved,
        the_plan: &plan::SwarmPlan,
        by_uid: &HashMap<&str, &ObjectRecord>,
        observed_at: Instant,
    ) {
        let now = now_rfc3339();
        let mut changed = Vec::new();
        for (key, app) in services {
            if self.lock().is_stale(key, observed_at) {
                continue;
            }
            let failure: Option<Failure> =
                self.memory().get(&app.uid).and_then(|m| m.failure.clone());
            let Some(record) = by_uid.get(app.uid.as_str()) else {
                continue;
            };
            let service = observed
                .services_of(&app.uid, &app.spec.name)
                .first()
                .copied();
            let tasks = service
                .map(|s| observed.tasks_of(&s.id))
                .unwrap_or_default();
            let seen = status::Seen {
                service,
                tasks: &tasks,
                nodes: &observed.nodes,
            };
            let computed = status::compute(
                app,
                seen,
                the_plan.apps.get(key),
                failure.as_ref(),
                record.app_status(),
                &now,
            );
            let computed = ObjectStatus::App(computed);
            if record.status.as_ref() != Some(&computed) {
                changed.push((record.uid.clone(), computed));
            }
        }
        for (key, node) in &the_plan.nodes {
            let Some(record) = node.uid.as_deref().and_then(|u| by_uid.get(u)) else {
                continue;
            };
            if self.lock().is_stale(key, observed_at) {
                continue;
            }
            let failure = self
                .memory()
                .get(&record.uid)
                .and_then(|m| m.failure.clone());
            let computed = ObjectStatus::Node(status::compute_node(
                observed.node(&record.key.name),
                node,
                failure.as_ref(),
                record.status.as_ref().and_then(|s| match s {
                    ObjectStatus::Node(n) => Some(n),
                    _ => None,
                }),
                &now,
            ));
            if record.status.as_ref() != Some(&computed) {
                changed.push((record.uid.clone(), computed));
            }
        }
        if let Err(e) = self.store.set_statuses(&changed).await {
            tracing::warn!("could not store {} statuses: {e}", changed.len());
        }
    }

    /// Runs one app's (or node's) service steps, records each outcome as an event, and keeps
    /// the backoff.
    async fn swarm_work(
        self: Arc<Self>,
        swarm: Arc<dyn Swarm>,
        key: AppKey,
        record: Option<ObjectRecord>,
        service_plan: ServicePlan,
        credentials: Option<CredentialsRef>,
    ) {
        let mut error: Option<(String, ExecError)> = None;
        for step in &service_plan.steps {
            let result = {
                let _permit = self.ops.acquire().await.ok();
                self.run_step(swarm.as_ref(), &step.action, credentials.as_ref())
                    .await
            };
            let verb = step.action.verb();
            match result {
                Ok(detail) => {
                    let message = if detail.is_empty() {
                        step.reason.clone()
                    } else {
                        format!("{detail}: {}", step.reason)
                    };
                    tracing::info!(app = %key, "{verb} {message}");
                    if let Some(record) = &record
                        && !matches!(step.action, ServiceAction::Forget { .. })
                    {
                        self.event(record, EventType::Normal, verb, &message).await;
                    }
                    if let (
                        ServiceAction::Create { spec } | ServiceAction::Update { spec, .. },
                        Some(uid),
                    ) = (&step.action, &service_plan.uid)
                        && let Some(m) = self.memory().get_mut(uid)
                    {
                        m.attempted = spec.labels.get(HASH_LABEL).cloned();
                    }
                }
                Err(e) => {
                    let message = format!("{verb} failed ({}): {e}", step.reason);
                    tracing::warn!(app = %key, "{message}");
                    if let Some(record) = &record {
                        self.event(record, EventType::Warning, e.reason(), &message)
                            .await;
                    }
                    error = Some((message, e));
                    break;
                }
            }
        }
        if let Some((_, ExecError::Runtime(_))) = &error {
            self.metrics.docker_errors.inc();
        }
        let now = Instant::now();
        if let Some(uid) = &service_plan.uid
            && let Some(m) = self.memory().get_mut(uid)
        {
            match error {
                Some((message, e)) => {
                    m.failure = Some(Failure {
                        generation: m.generation,
                        reason: e.reason().to_string(),
                        message,
                    });
                    match e.class() {
                        ErrorClass::Transient => m.hold(now),
                        ErrorClass::Permanent => m.block(None, now),
                    }
                }
                None => m.failure = None,
            }
        }
        self.release(&key);
        self.wake.notify_one();
    }

    async fn run_step(
        &self,
        swarm: &dyn Swarm,
        action: &ServiceAction,
        credentials: Option<&CredentialsRef>,
    ) -> Result<String, ExecError> {
        let registry = |image: &str| -> Result<Option<RegistryCredentials>, ExecError> {
            credentials
                .map(|c| resolve_credentials(c, image))
                .transpose()
                .map_err(|m| {
                    ExecError::Runtime(RuntimeError::Engine {
                        op: "registry credentials",
                        status: 400,
                        message: m,
                    })
                })
        };
        match action {
            ServiceAction::Create { spec } => {
                let auth = registry(&spec.image)?;
                let id = swarm.create_service(spec, auth.as_ref()).await?;
                Ok(format!("service {} ({})", spec.name, short(&id)))
            }
            ServiceAction::Update {
                id,
                version,
                spec,
                force_update,
            } => {
                let auth = registry(&spec.image)?;
                let warnings = swarm
                    .update_service(id, *version, spec, *force_update, auth.as_ref())
                    .await?;
                for w in &warnings {
                    tracing::info!(service = %spec.name, "the engine says: {w}");
                }
                Ok(format!("service {}", spec.name))
            }
            ServiceAction::Remove { id, name } => match swarm.remove_service(id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(format!("service {name}")),
                Err(e) => Err(e.into()),
            },
            ServiceAction::Forget { uid } => {
                self.store.forget(uid).await?;
                Ok(String::new())
            }
            ServiceAction::UpdateNode {
                id,
                version,
                update,
            } => {
                swarm.update_node(id, *version, update).await?;
                Ok(format!("node {}", short(id)))
            }
        }
    }

    /// Restart and hard reset in swarm mode: a forced update replaces every task, following the
    /// app's update settings.
    pub(super) async fn swarm_replace_tasks(
        &self,
        swarm: &dyn Swarm,
        record: &ObjectRecord,
    ) -> Result<String, RuntimeError> {
        let services = swarm.services(&self.config.instance).await?;
        let service = services
            .iter()
            .filter(|s| s.spec.labels.get(labels::UID) == Some(&record.uid))
            .min_by_key(|s| s.spec.name != service_name(&record.key))
            .ok_or_else(|| {
                RuntimeError::Conflict(format!("app {} has no service yet", record.key))
            })?;
        swarm
            .update_service(
                &service.id,
                service.version,
                &service.spec,
                service.force_update + 1,
                None,
            )
            .await?;
        Ok(format!(
            "service {}: every task is being replaced",
            service.spec.name
        ))
    }
}

/// The manager's services of this instance, their tasks and the nodes: all, or an error.
async fn observe(swarm: &dyn Swarm, instance: &str) -> Result<SwarmObserved, RuntimeError> {
    let (services, nodes) = tokio::try_join!(swarm.services(instance), swarm.nodes())?;
    let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
    let tasks = swarm.tasks(&ids).await?;
    Ok(SwarmObserved {
        services,
        tasks,
        nodes,
    })
}

/// The nodes `kind: Node` objects declare (swarm mode), by object key.
fn desired_nodes(records: &[ObjectRecord]) -> BTreeMap<AppKey, plan::DesiredNode> {
    let mut out = BTreeMap::new();
    for record in records.iter().filter(|r| r.kind == Kind::Node) {
        match record.node_spec() {
            Ok(spec) => {
                out.insert(
                    record.key.clone(),
                    plan::DesiredNode {
                        uid: record.uid.clone(),
                        name: spec.key.name.clone(),
                        deleting: record.is_terminating(),
                        update: crate::runtime::swarm::NodeUpdate {
                            availability: spec.availability.as_str().to_string(),
                            labels: spec.labels,
                        },
                    },
                );
            }
            Err(e) => {
                tracing::error!(node = %record.key, "stored Node no longer validates; left alone: {e}")
            }
        }
    }
    out
}

/// The credentials of the Image object that declares `image`, if any.
fn credentials_for(desired: &Desired, image: &str) -> Option<CredentialsRef> {
    let canonical = canonical_reference(image).ok()?;
    desired.pull_policy(&canonical).1.cloned()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pinned_to_the_digest_last_seen() {
        use crate::reconcile::plan::DesiredImage;
        use crate::spec::ImageSpec;
        use crate::spec::image::PullPolicy;
        let key = AppKey {
            namespace: String::new(),
            name: "app".into(),
        };
        let mut desired = Desired::default();
        let digest = format!("sha256:{}", "a".repeat(64));
        desired.images.insert(
            key.clone(),
            DesiredImage {
                uid: "u".into(),
                generation: 1,
                spec: ImageSpec {
                    key,
                    reference: "registry.test:5000/team/app:2".into(),
                    canonical: "registry.test:5000/team/app:2".into(),
                    pull_policy: PullPolicy::IfNotPresent,
                    update_interval: None,
                    credentials: None,
                },
                deleting: false,
                hold_until: None,
                pulled_generation: None,
                check_due: false,
                remote_digest: Some(digest.clone()),
            },
        );
        let image = "registry.test:5000/team/app:2";
        assert_eq!(
            pinned_image(image, &desired, None),
            format!("{image}@{digest}")
        );
        // A digest already in the reference is used as it is.
        let named = format!("{image}@sha256:{}", "b".repeat(64));
        assert_eq!(pinned_image(&named, &desired, None), named);
        // No Image object: the digest the service runs, else the reference as written.
        let other = "busybox:1.36";
        let running = format!("{other}@sha256:{}", "c".repeat(64));
        assert_eq!(pinned_image(other, &desired, Some(&running)), running);
        assert_eq!(
            pinned_image(other, &desired, Some("busybox:1.35@sha256:x")),
            other
        );
        assert_eq!(pinned_image(other, &desired, None), other);
    }

    fn desired_app(yaml: &str) -> DesiredApp {
        let docs = crate::spec::parse::parse_documents(yaml, crate::spec::Format::Yaml, None)
            .expect("parses");
        let crate::spec::Document::App(doc) = &docs[0].document else {
            panic!("an App")
        };
        let spec = crate::spec::validate_app(doc).expect("valid");
        DesiredApp {
            uid: "u1".into(),
            generation: 1,
            hashes: spec.hashes(),
            spec,
            deleting: false,
            hold_until: None,
            repairs: 0,
            had_container: false,
            rolled_back: None,
            host_port_root: None,
            blocked_on_image: None,
            labels: doc.metadata.labels.clone(),
        }
    }

    #[test]
    fn an_app_becomes_a_service() {
        let app = desired_app(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo, labels: {team: astro, wharf.uid: forged}}\nspec:\n  image: busybox:1\n  owner: john\n  replicas: 3\n  state: running\n  env: {B: 2, A: 1}\n  resources: {memory: 64Mi, reservations: {cpus: 0.5}}\n  restartPolicy: {name: on-failure, maxRetries: 3}\n  ports: [{containerPort: 80, hostPort: 8080, mode: host}, \"9090:90/udp\"]\n",
        );
        let s = declare(&app, "busybox:1", "main");
        assert_eq!(s.name, "demo_web");
        assert_eq!(s.labels["team"], "astro");
        assert_eq!(
            s.labels[labels::UID],
            "u1",
            "wharf's labels cannot be forged"
        );
        assert_eq!(s.labels[OWNER_LABEL], "john");
        assert!(s.labels.contains_key(HASH_LABEL));
        assert!(!s.container_labels.contains_key("team"));
        assert!(!s.container_labels.contains_key(labels::MANAGED_BY));
        assert_eq!(s.env, ["A=1", "B=2"]);
        assert_eq!(s.mode, ServiceMode::Replicated { replicas: 3 });
        assert_eq!(s.memory, Some(64 << 20));
        assert_eq!(s.reserve_nano_cpus, Some(500_000_000));
        assert_eq!(s.restart.condition, "on-failure");
        assert_eq!(s.restart.max_attempts, Some(3));
        let host: Vec<(u16, bool)> = s.ports.iter().map(|p| (p.target, p.host_mode)).collect();
        assert_eq!(host, [(80, true), (90, false)]);
        // The hash moves with the spec, not with nothing.
        assert_eq!(s, declare(&app, "busybox:1", "main"));
        let stopped = desired_app(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec: {image: busybox:1, replicas: 3, state: stopped}\n",
        );
        let s2 = declare(&stopped, "busybox:1", "main");
        assert_eq!(s2.mode, ServiceMode::Replicated { replicas: 0 });
        assert_ne!(s2.labels[HASH_LABEL], s.labels[HASH_LABEL]);
    }

    #[test]
    fn service_names_are_readable_and_valid() {
        let key = |ns: &str, name: &str| AppKey {
            namespace: ns.into(),
            name: name.into(),
        };
        assert_eq!(service_name(&key("demo", "web")), "demo_web");
        let dotted = service_name(&key("demo", "web.v2"));
        assert!(dotted.starts_with("demo_web-v2-"), "{dotted}");
        assert_ne!(dotted, service_name(&key("demo", "web-v2")));
        let long = service_name(&key(&"n".repeat(63), &"a".repeat(63)));
        assert!(long.len() <= 63, "{long}");
    }
}
