//! The reconcile loop: wake-ups carry no data; each pass observes everything (this instance's
//! containers and the engine's images), plans, stores status, and hands each app's (and each
//! Image's) steps to a worker.
//!
//! - Wakes on Docker events, store writes, finished work, requeue times and a periodic resync.
//! - A pass whose listing failed plans nothing (never "remove everything" on an empty error).
//! - Work is bounded-parallel across apps (a semaphore over container operations) and serial per
//!   app: an app with work in flight is skipped until that work finishes.
//! - Retry policy lives here, in one place: a failed or repairing app is held back with a per-app
//!   exponential backoff (1 s doubling to 5 min, reset by a spec change or 10 min of health).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::execute::{ExecError, Execution, execute};
use super::plan::{
    Action, AppPlan, Desired, DesiredApp, DesiredImage, Observed, ObservedContainer, RequestNote,
    RolledBack, plan,
};
use super::status::{self, AppStatus, Failure, ImageStatus};
use crate::images::ImageService;
use crate::images::registry::RegistryClient;
use crate::metrics::Metrics;
use crate::runtime::image_match::find_local;
use crate::runtime::{ContainerState, HealthState, ImageSummary, Runtime, RuntimeError, labels};
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::store::{ObjectRecord, Store, now_rfc3339};

/// How long an app must stay up before its repair backoff resets.
const HEALTHY_RESET: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Label value separating this wharf's containers from another's on the same engine.
    pub instance: String,
    /// Full pass at least this often, events or not.
    pub resync: Duration,
    /// Container operations in flight at once, across all apps.
    pub max_ops: usize,
    /// Passes woken by events or finished work start at least this far apart.
    pub min_pass_interval: Duration,
    /// Registries (`host:port`) reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Deadline of one registry request.
    pub registry_timeout: Duration,
    /// Apps may only use images declared by an Image object.
    pub require_approved_images: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            instance: "default".into(),
            resync: Duration::from_secs(30),
            max_ops: 4,
            min_pass_interval: Duration::from_millis(200),
            insecure_registries: Vec::new(),
            registry_timeout: Duration::from_secs(15),
            require_approved_images: false,
        }
    }
}

/// What `/readyz` and the logs say about the loop.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub docker_connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_error: Option<String>,
    /// Passes that observed Docker completely.
    pub passes: u64,
}

fn app_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(300))
        .without_max_times()
        .build()
}

fn outage_backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_factor(2.0)
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// What the loop remembers about an app between passes (lost on restart, by design: a
/// restarted wharf gives every app a fresh chance).
struct AppMemory {
    generation: i64,
    backoff: ExponentialBackoff,
    repairs: u32,
    hold_until: Option<Instant>,
    last_repair: Option<Instant>,
    failure: Option<Failure>,
    /// Images: the generation a pull was last made for.
    pulled_generation: Option<i64>,
    /// Apps: a replacement at this generation rolled back.
    rolled_back: Option<RolledBack>,
}

impl AppMemory {
    fn new(generation: i64) -> Self {
        Self {
            generation,
            backoff: app_backoff(),
            repairs: 0,
            hold_until: None,
            last_repair: None,
            failure: None,
            pulled_generation: None,
            rolled_back: None,
        }
    }

    /// After a wharf restart: a rollback of the current generation is still remembered (from
    /// the stored status), so a failed replacement is not tried again on every restart.
    fn restored(record: &ObjectRecord) -> Self {
        let mut memory = Self::new(record.generation);
        memory.rolled_back = stored_status::<AppStatus>(record)
            .and_then(|s| s.rolled_back)
            .filter(|r| r.generation == record.generation)
            .map(|r| RolledBack {
                image_id: r.image_id,
                message: r.message,
            });
        memory
    }

    fn hold(&mut self, now: Instant) {
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(300));
        self.hold_until = Some(now + delay);
    }
}

/// The engine's image list, reused until an image event, a pull, or the resync interval says
/// it may be stale (images change far less often than containers, and listing them on every
/// pass costs the engine as much as listing the containers).
struct ImageCache {
    images: Vec<ImageSummary>,
    listed: Instant,
    events: u64,
    pulls: u64,
}

#[derive(Default)]
pub(super) struct LoopState {
    image_cache: Option<ImageCache>,
    /// Image events seen.
    image_events: u64,
    pub(super) inflight: BTreeSet<AppKey>,
    /// When each app's last work finished: an observation older than that is stale for it.
    pub(super) finished: HashMap<AppKey, Instant>,
    apps: HashMap<String, AppMemory>,
    docker_down: bool,
    outage: Option<ExponentialBackoff>,
}

impl LoopState {
    /// Work for `key` is running or finished after `observed_at`: an observation taken then does
    /// not show its effects, so nothing may be planned or reported from it.
    /// Work for `key` is done: the app is free for the next pass, and observations taken before
    /// now are stale for it.
    pub(super) fn release(&mut self, key: &AppKey) {
        self.inflight.remove(key);
        self.finished.insert(key.clone(), Instant::now());
    }

    fn is_stale(&self, key: &AppKey, observed_at: Instant) -> bool {
        self.inflight.contains(key) || self.finished.get(key).is_some_and(|t| *t >= observed_at)
    }
}

pub struct Controller {
    pub(super) store: Store,
    pub(super) runtime: Arc<dyn Runtime>,
    pub(super) images: Arc<ImageService>,
    pub(super) config: ControllerConfig,
    pub(super) wake: Arc<Notify>,
    pub(super) ops: Arc<Semaphore>,
    // std Mutex: held only for short, synchronous bookkeeping, never across an .await.
    state: Mutex<LoopState>,
    health: watch::Sender<Health>,
    metrics: Arc<Metrics>,
}

impl Controller {
    pub fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        config: ControllerConfig,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        let registry =
            RegistryClient::new(config.insecure_registries.clone(), config.registry_timeout);
        Arc::new(Self {
            store,
            images: Arc::new(ImageService::new(Arc::clone(&runtime), registry)),
            runtime,
            ops: Arc::new(Semaphore::new(config.max_ops.max(1))),
            config,
            wake,
            state: Mutex::new(LoopState {
                docker_down: true,
                ..LoopState::default()
            }),
            health: watch::channel(Health::default()).0,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// What the loop counts (and the API adds to), for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Apps with work in flight.
    pub fn queue_depth(&self) -> usize {
        self.lock().inflight.len()
    }

    /// Pulls and registry checks, shared with the API (live pull progress).
    pub fn images(&self) -> Arc<ImageService> {
        Arc::clone(&self.images)
    }

    pub fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LoopState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the loop and the event watcher; abort the handles to stop them.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(self).run()),
            tokio::spawn(Arc::clone(self).watch_events()),
        ]
    }

    async fn run(self: Arc<Self>) {
        let mut next: Option<Duration> = Some(Duration::ZERO);
        let mut last_pass: Option<Instant> = None;
        loop {
            let sleep = next.unwrap_or(self.config.resync).min(self.config.resync);
            tokio::select! {
                _ = self.wake.notified() => {
                    // Let a burst of events (kill, die, stop) land before looking, and while
                    // work completes in quick succession, look at most every `min_pass_interval`:
                    // each pass lists every container, which costs the engine too.
                    let earliest = last_pass.map(|t| t + self.config.min_pass_interval);
                    let burst = Instant::now() + Duration::from_millis(15);
                    tokio::time::sleep_until(earliest.map_or(burst, |e| e.max(burst))).await;
                }
                _ = tokio::time::sleep(sleep) => {}
            }
            last_pass = Some(Instant::now());
            next = self.pass().await;
        }
    }

    async fn watch_events(self: Arc<Self>) {
        let mut backoff = outage_backoff();
        loop {
            let started = Instant::now();
            let mut stream = self.runtime.events(&self.config.instance);
            while let Some(event) = stream.next().await {
                match event {
                    // Commands run in a container (health probes every interval, git) change
                    // nothing a pass looks at.
                    Ok(e) if e.action.starts_with("exec_") => {}
                    Ok(e) => {
                        tracing::debug!(id = %e.id, action = %e.action, image = e.image, "docker event");
                        if e.image {
                            self.lock().image_events += 1;
                        }
                        self.wake.notify_one();
                    }
                    Err(e) => {
                        tracing::debug!("Docker event stream: {e}");
                        break;
                    }
                }
            }
            // The stream ended: the engine went away or restarted. Look again (images too),
            // then re-subscribe with backoff.
            self.lock().image_events += 1;
            self.wake.notify_one();
            if started.elapsed() > Duration::from_secs(10) {
                backoff = outage_backoff();
            }
            tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))).await;
        }
    }

    fn docker_failed(&self, error: String) -> Option<Duration> {
        self.metrics.docker_errors.inc();
        let mut state = self.lock();
        if !state.docker_down {
            tracing::error!("lost the Docker Engine: {error}; retrying with backoff");
        }
        state.docker_down = true;
        let delay = state
            .outage
            .get_or_insert_with(outage_backoff)
            .next()
            .unwrap_or(Duration::from_secs(30));
        drop(state);
        self.health.send_modify(|h| {
            h.docker_connected = false;
            h.docker_error = Some(error);
        });
        Some(delay)
    }

    /// One full pass. Returns when the next pass is due at the latest.
    pub async fn pass(self: &Arc<Self>) -> Option<Duration> {
        if self.lock().docker_down {
            match self.runtime.ping().await {
                Ok(version) => {
                    tracing::info!(%version, "connected to the Docker Engine");
                    let mut state = self.lock();
                    state.docker_down = false;
                    state.outage = None;
                    drop(state);
                    self.health.send_modify(|h| {
                        h.docker_connected = true;
                        h.docker_version = Some(version);
                        h.docker_error = None;
                    });
                }
                Err(e) => return self.docker_failed(e.to_string()),
            }
        }
        let observed_at = Instant::now();
        let containers = match self.runtime.list(&self.config.instance).await {
            Ok(c) => c,
            Err(e) => return self.docker_failed(e.to_string()),
        };
        let images = match self.images_now().await {
            Ok(i) => i,
            Err(e) => return self.docker_failed(e.to_string()),
        };
        let records = match self.records().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("reading the store failed, skipping this pass: {e}");
                return Some(Duration::from_secs(1));
            }
        };
        let now = Instant::now();
        let (mut desired, by_uid) = self.desired(&records, now);
        // The requests only word the condition of an app whose image is not approved; a pass
        // where every image is declared reads none.
        let unapproved = desired
            .apps
            .values()
            .any(|a| desired.unapproved(&a.spec.container.image).is_some());
        if unapproved {
            match self.store.image_requests(None, None).await {
                // Newest first: keep the first seen per reference.
                Ok(requests) => {
                    for r in requests {
                        desired
                            .image_requests
                            .entry(r.reference.clone())
                            .or_insert(RequestNote {
                                id: r.id,
                                requested_by: r.requested_by,
                                state: r.state,
                                decided_by: r.decided_by,
                                message: r.message,
                            });
                    }
                }
                Err(e) => tracing::warn!("reading image requests: {e}"),
            }
        }

        let mut observed = Observed {
            containers: containers
                .into_iter()
                .map(|c| {
                    let applied = c
                        .labels
                        .get(labels::UID)
                        .and_then(|uid| by_uid.get(uid.as_str()))
                        .and_then(|r| r.applied_hash_for(&c.id));
                    let mut container = ObservedContainer::new(c, None);
                    container.applied_update = applied;
                    container
                })
                .collect(),
            images,
        };

        // Inspect only what needs it: containers not running, not matching their spec, or
        // not yet known to the status. A converged app costs no call beyond the list.
        let busy: BTreeSet<AppKey> = self.lock().inflight.clone();
        desired.busy = busy.clone();
        let need_details: Vec<String> = observed
            .containers
            .iter()
            .filter(|c| needs_details(c, &busy, &by_uid, &desired))
            .map(|c| c.summary.id.clone())
            .collect();
        let runtime = &self.runtime;
        let mut inspected: HashMap<String, _> = futures::stream::iter(need_details)
            .map(|id| async move {
                let details = runtime.inspect(&id).await;
                (id, details)
            })
            .buffer_unordered(self.config.max_ops.max(1))
            .collect()
            .await;
        let mut incomplete = BTreeSet::new();
        observed.containers.retain_mut(|c| match inspected.remove(&c.summary.id) {
            None => true,
            Some(Ok(d)) => {
                c.details = Some(d);
                true
            }
            // Gone between list and inspect: the next pass sees it.
            Some(Err(RuntimeError::NotFound(_))) => false,
            Some(Err(e)) => {
                tracing::warn!(container = %c.summary.name, "inspect failed, app skipped this pass: {e}");
                if let Some(uid) = c.summary.labels.get(labels::UID) {
                    incomplete.insert(uid.clone());
                }
                true
            }
        });
        // Never plan on incomplete input: leave those apps (and their containers) alone.
        desired.apps.retain(|_, a| !incomplete.contains(&a.uid));
        desired.frozen_uids.extend(incomplete);

        let the_plan = plan(&desired, &observed, now);
        self.health.send_modify(|h| h.passes += 1);
        self.metrics.passes.inc();
        self.reset_healthy(&desired, &observed, now);
        self.write_statuses(&desired, &observed, &the_plan.apps, &by_uid, observed_at)
            .await;
        self.metrics
            .pass_seconds
            .observe(observed_at.elapsed().as_secs_f64());

        for (key, app_plan) in the_plan.apps.iter() {
            if app_plan.steps.is_empty() {
                continue;
            }
            {
                let mut state = self.lock();
                if state.is_stale(key, observed_at) || !state.inflight.insert(key.clone()) {
                    continue;
                }
            }
            let record = app_plan.uid.as_deref().and_then(|u| by_uid.get(u)).cloned();
            let this = Arc::clone(self);
            let key = key.clone();
            let app_plan = app_plan.clone();
            tokio::spawn(async move { this.work(key, record, app_plan).await });
        }
        the_plan.requeue_after()
    }

    /// The engine's images: the cached list while nothing can have changed them, else a fresh
    /// one.
    pub(super) async fn images_now(&self) -> Result<Vec<ImageSummary>, RuntimeError> {
        let (events, pulls) = (self.lock().image_events, self.images.pulls());
        if let Some(cache) = &self.lock().image_cache
            && cache.events == events
            && cache.pulls == pulls
            && cache.listed.elapsed() < self.config.resync
        {
            return Ok(cache.images.clone());
        }
        let images = self.runtime.images().await?;
        self.lock().image_cache = Some(ImageCache {
            images: images.clone(),
            listed: Instant::now(),
            events,
            pulls,
        });
        Ok(images)
    }

    /// Every stored App and Image.
    async fn records(&self) -> Result<Vec<ObjectRecord>, crate::store::StoreError> {
        let mut records = self.store.list(Kind::App, None).await?;
        records.extend(self.store.list(Kind::Image, None).await?);
        Ok(records)
    }

    fn desired_image(
        &self,
        state: &mut LoopState,
        record: &ObjectRecord,
        now: Instant,
    ) -> Option<DesiredImage> {
        let spec = match record.image_spec() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(image = %record.key, "stored Image no longer validates; left alone: {e}");
                return None;
            }
        };
        let memory = state
            .apps
            .entry(record.uid.clone())
            .or_insert_with(|| AppMemory::new(record.generation));
        if memory.generation != record.generation {
            *memory = AppMemory::new(record.generation);
        }
        let known = self.images.memory(&spec.canonical);
        let check_due = spec.update_interval.is_some_and(|interval| {
            known.check_hold_until.is_none_or(|t| t <= now)
                && known
                    .checked
                    .is_none_or(|t| now.duration_since(t) >= interval)
        });
        Some(DesiredImage {
            uid: record.uid.clone(),
            generation: record.generation,
            deleting: record.is_terminating(),
            hold_until: memory.hold_until.filter(|t| *t > now),
            pulled_generation: memory.pulled_generation,
            check_due,
            remote_digest: known.remote_digest,
            spec,
        })
    }

    fn desired<'a>(
        &self,
        records: &'a [ObjectRecord],
        now: Instant,
    ) -> (Desired, HashMap<&'a str, ObjectRecord>) {
        let mut desired = Desired {
            instance: self.config.instance.clone(),
            require_approved_images: self.config.require_approved_images,
            ..Desired::default()
        };
        let mut by_uid = HashMap::new();
        let mut state = self.lock();
        for record in records {
            by_uid.insert(record.uid.as_str(), record.clone());
            if record.kind == Kind::Image {
                if let Some(image) = self.desired_image(&mut state, record, now) {
                    desired.images.insert(record.key.clone(), image);
                }
                continue;
            }
            match desired_app(&mut state, record, now) {
                Ok(app) => {
                    desired.apps.insert(record.key.clone(), app);
                }
                Err(e) => {
                    tracing::error!(app = %record.key, "stored spec no longer validates; its container is left alone: {e}");
                    desired.frozen_uids.insert(record.uid.clone());
                }
            }
        }
        let live: BTreeSet<&str> = records.iter().map(|r| r.uid.as_str()).collect();
        state.apps.retain(|uid, _| live.contains(uid.as_str()));
        state
            .finished
            .retain(|key, _| desired.apps.contains_key(key) || desired.images.contains_key(key));
        (desired, by_uid)
    }

    fn reset_healthy(&self, desired: &Desired, observed: &Observed, now: Instant) {
        let mut state = self.lock();
        for app in desired.apps.values() {
            let running = observed.containers.iter().any(|c| {
                c.summary.labels.get(labels::UID) == Some(&app.uid)
                    && c.summary.state == ContainerState::Running
            });
            if let Some(m) = state.apps.get_mut(&app.uid)
                && running
                && m.last_repair
                    .is_some_and(|t| now.duration_since(t) >= HEALTHY_RESET)
            {
                tracing::info!(app = %app.spec.key, "healthy for 10 minutes; repair backoff reset");
                *m = AppMemory::new(app.generation);
            }
        }
    }

    async fn write_statuses(
        &self,
        desired: &Desired,
        observed: &Observed,
        plans: &BTreeMap<AppKey, AppPlan>,
        by_uid: &HashMap<&str, ObjectRecord>,
        observed_at: Instant,
    ) {
        let now = now_rfc3339();
        let mut changed = Vec::new();
        for (key, app) in &desired.apps {
            let (inflight, failure) = {
                let state = self.lock();
                (
                    state.is_stale(key, observed_at),
                    state.apps.get(&app.uid).and_then(|m| m.failure.clone()),
                )
            };
            if inflight {
                continue;
            }
            let Some(record) = by_uid.get(app.uid.as_str()) else {
                continue;
            };
            let container = observed
                .containers
                .iter()
                .filter(|c| c.summary.labels.get(labels::UID) == Some(&app.uid))
                .max_by_key(|c| {
                    (
                        c.recreate_hash() == Some(app.hashes.recreate.as_str()),
                        c.summary.created,
                    )
                });
            let previous: Option<AppStatus> = stored_status(record);
            let computed = status::compute(
                app,
                container,
                plans.get(key),
                failure.as_ref(),
                previous.as_ref(),
                &now,
            );
            changed.extend(status_change(record, &computed));
        }
        for (key, image) in &desired.images {
            let (inflight, failure) = {
                let state = self.lock();
                (
                    state.is_stale(key, observed_at),
                    state.apps.get(&image.uid).and_then(|m| m.failure.clone()),
                )
            };
            let Some(record) = by_uid.get(image.uid.as_str()).filter(|_| !inflight) else {
                continue;
            };
            let previous: Option<ImageStatus> = stored_status(record);
            let computed = status::compute_image(
                image,
                find_local(&observed.images, &image.spec.canonical),
                &observed.containers,
                &self.images.memory(&image.spec.canonical),
                plans.get(key),
                failure.as_ref(),
                previous.as_ref(),
                &now,
            );
            changed.extend(status_change(record, &computed));
        }
        if let Err(e) = self.store.set_statuses(&changed).await {
            tracing::warn!("could not store {} statuses: {e}", changed.len());
        }
    }

    /// Runs one app's plan, records what happened, updates the backoff, and wakes the loop.
    async fn work(self: Arc<Self>, key: AppKey, record: Option<ObjectRecord>, app_plan: AppPlan) {
        let execution = execute(
            self.runtime.as_ref(),
            &self.store,
            &self.images,
            &self.ops,
            &app_plan,
        )
        .await;
        let pulled = execution
            .outcomes
            .iter()
            .any(|o| o.result.is_ok() && matches!(o.step.action, Action::Pull { .. }));
        if execution
            .outcomes
            .iter()
            .any(|o| matches!(o.step.action, Action::RemoveImage { .. }))
        {
            self.lock().image_events += 1;
        }
        self.report(&key, record.as_ref(), &execution).await;
        if let Some((_, ExecError::Runtime(_))) = execution.error() {
            self.metrics.docker_errors.inc();
        }
        let now = Instant::now();
        {
            let mut state = self.lock();
            if let Some(uid) = &app_plan.uid
                && let Some(memory) = state.apps.get_mut(uid)
            {
                match execution.error() {
                    Some((step, e)) => {
                        if let (ExecError::RolledBack(message), Action::Replace { image_id, .. }) =
                            (e, &step.action)
                        {
                            memory.rolled_back = Some(RolledBack {
                                image_id: image_id.clone(),
                                message: message.clone(),
                            });
                        }
                        memory.failure = Some(Failure {
                            generation: memory.generation,
                            reason: e.reason().to_string(),
                            message: format!("{} failed: {e}", step.action.verb()),
                        });
                        memory.repairs += u32::from(app_plan.repair);
                        memory.hold(now);
                    }
                    None => {
                        memory.failure = None;
                        if pulled {
                            memory.pulled_generation = Some(memory.generation);
                        }
                        if app_plan.repair {
                            memory.repairs += 1;
                            memory.last_repair = Some(now);
                            memory.hold(now);
                        }
                    }
                }
            }
            state.release(&key);
        }
        self.wake.notify_one();
    }

    /// Logs every step's outcome and records it as an event on the object.
    pub(super) async fn report(
        &self,
        key: &AppKey,
        record: Option<&ObjectRecord>,
        execution: &Execution,
    ) {
        for outcome in &execution.outcomes {
            let step = &outcome.step;
            match &outcome.result {
                Ok(detail) => {
                    let message = if detail.is_empty() {
                        step.reason.clone()
                    } else {
                        format!("{detail}: {}", step.reason)
                    };
                    tracing::info!(app = %key, "{} {message}", step.action.verb());
                    if let Some(record) = record {
                        self.event(record, "Normal", step.action.verb(), &message)
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(app = %key, "{} failed ({}): {e}", step.action.verb(), step.reason);
                    if let Some(record) = record {
                        let message =
                            format!("{} failed ({}): {e}", step.action.verb(), step.reason);
                        self.event(record, "Warning", e.reason(), &message).await;
                    }
                }
            }
        }
    }

    pub(super) async fn event(
        &self,
        record: &ObjectRecord,
        kind: &str,
        reason: &str,
        message: &str,
    ) {
        if let Err(e) = self.store.record_event(record, kind, reason, message).await {
            tracing::warn!(app = %record.key, "could not record event: {e}");
        }
    }
}

/// The app a stored record declares, with what the loop remembers about it; or why its stored
/// spec no longer validates.
pub(super) fn desired_app(
    state: &mut LoopState,
    record: &ObjectRecord,
    now: Instant,
) -> Result<DesiredApp, String> {
    let mut spec = record.app_spec()?;
    let memory = state
        .apps
        .entry(record.uid.clone())
        .or_insert_with(|| AppMemory::restored(record));
    if memory.generation != record.generation {
        // A new spec gets a fresh chance.
        *memory = AppMemory::new(record.generation);
    }
    spec.place_in_port_area(record.host_port_root);
    let hashes = spec.hashes();
    Ok(DesiredApp {
        uid: record.uid.clone(),
        generation: record.generation,
        spec,
        hashes,
        deleting: record.is_terminating(),
        hold_until: memory.hold_until.filter(|t| *t > now),
        repairs: memory.repairs,
        rolled_back: memory.rolled_back.clone(),
        host_port_root: record.host_port_root,
        had_container: record
            .status
            .as_ref()
            .is_some_and(|s| s.get("containerId").is_some()),
    })
}

/// The status stored with `record`, if it reads as `T`.
fn stored_status<T: serde::de::DeserializeOwned>(record: &ObjectRecord) -> Option<T> {
    record
        .status
        .clone()
        .and_then(|s| serde_json::from_value(s).ok())
}

/// `(uid, status)` to store when `computed` differs from what `record` holds.
fn status_change(
    record: &ObjectRecord,
    computed: &impl Serialize,
) -> Option<(String, serde_json::Value)> {
    let value = serde_json::to_value(computed).ok()?;
    (record.status.as_ref() != Some(&value)).then(|| (record.uid.clone(), value))
}

/// Whether planning needs a container's inspect details: it is stopped (exit code), out of date
/// (the limits in force), new to the status (start time) or unhealthy (the probe's output) —
/// unless its app is busy anyway.
fn needs_details(
    c: &ObservedContainer,
    busy: &BTreeSet<AppKey>,
    by_uid: &HashMap<&str, ObjectRecord>,
    desired: &Desired,
) -> bool {
    let tags = &c.summary.labels;
    let Some(uid) = tags.get(labels::UID) else {
        return false;
    };
    let key = AppKey {
        namespace: tags.get(labels::NAMESPACE).cloned().unwrap_or_default(),
        name: tags.get(labels::APP).cloned().unwrap_or_default(),
    };
    if busy.contains(&key) {
        return false;
    }
    let running = c.summary.state == ContainerState::Running;
    let Some(record) = by_uid.get(uid.as_str()) else {
        return !running;
    };
    let status_id = record
        .status
        .as_ref()
        .and_then(|s| s.get("containerId"))
        .and_then(|v| v.as_str());
    let out_of_date = desired.apps.get(&record.key).is_some_and(|a| {
        c.recreate_hash() != Some(a.hashes.recreate.as_str())
            || c.update_hash() != Some(a.hashes.update.as_str())
    });
    // An unhealthy container's last probe output explains its Ready condition.
    let unhealthy = c.summary.health == Some(HealthState::Unhealthy);
    !running || status_id != Some(c.summary.id.as_str()) || out_of_date || unhealthy
}
