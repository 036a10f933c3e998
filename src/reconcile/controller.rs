//! The reconcile loop: wake-ups carry no data; each pass observes everything (this instance's
//! containers and the engine's images), plans, stores status, and hands each app's (and each
//! Image's) steps to a worker.
//!
//! - Wakes on store writes, Docker events, finished work, requeue times and a periodic resync,
//!   paced by `pacing` (urgent wake-ups — writes, exits, removals — are not kept waiting by
//!   routine ones).
//! - A pass whose listing failed plans nothing (never "remove everything" on an empty error).
//! - Work is bounded-parallel across apps (a semaphore over container operations) and serial per
//!   app: an app with work in flight is skipped until that work finishes.
//! - Retry policy lives here, in one place: a failed or repairing app is held back with a per-app
//!   exponential backoff (1 s doubling to 5 min, reset by a spec change or 10 min of health).

use schemars::JsonSchema;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::ExponentialBackoff;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::desired::{self, Context, SpecCache, needs_details};
use super::execute::{ErrorClass, ExecError, execute};
use super::images::ImageService;
use super::memory::Memory;
use super::observe::{Observer, Wants};
use super::pacing::{self, LastPass};
use super::plan::{Action, AppPlan, Desired, Observed, RolledBack, plan};
use super::status::Failure;
use crate::backoff;
use crate::defaults;
use crate::images::registry::RegistryClient;
use crate::metrics::Metrics;
use crate::runtime::swarm::Swarm;
use crate::runtime::{ContainerState, ContainerSummary, Runtime, labels};
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::store::{ObjectRecord, Store};

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
    /// Apps of one image replaced at once in a rollout, unless its Image says otherwise.
    pub rollout_width: u32,
    /// Where notable status changes are sent (`--notify-webhook`); nowhere by default.
    pub notifier: crate::notify::Notifier,
    /// Passes run only while this instance leads (always, alone on SQLite).
    pub leadership: crate::cluster::Leadership,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            instance: defaults::INSTANCE.into(),
            resync: defaults::RESYNC,
            max_ops: defaults::MAX_OPS,
            min_pass_interval: defaults::MIN_PASS_INTERVAL,
            insecure_registries: Vec::new(),
            registry_timeout: defaults::REGISTRY_TIMEOUT,
            require_approved_images: false,
            rollout_width: defaults::ROLLOUT_WIDTH,
            notifier: crate::notify::Notifier::default(),
            leadership: crate::cluster::Leadership::default(),
        }
    }
}

/// What `/readyz` and the logs say about the loop.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
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

impl Health {
    /// Before the first answer from the engine: not ready, and `/readyz` says why.
    fn connecting() -> Self {
        Health {
            docker_error: Some("connecting to the Docker Engine: no answer yet".into()),
            ..Health::default()
        }
    }
}

#[derive(Default)]
pub(super) struct LoopState {
    pub(super) inflight: BTreeSet<AppKey>,
    /// When each app's last work finished: an observation older than that is stale for it.
    pub(super) finished: HashMap<AppKey, Instant>,
    docker_down: bool,
    outage: Option<ExponentialBackoff>,
}

impl LoopState {
    /// Work for `key` is done: the app is free for the next pass, and observations taken before
    /// now are stale for it.
    fn release(&mut self, key: &AppKey) {
        self.inflight.remove(key);
        self.finished.insert(key.clone(), Instant::now());
    }

    /// Work for `key` is running or finished after `observed_at`: an observation taken then does
    /// not show its effects, so nothing may be planned or reported from it.
    pub(super) fn is_stale(&self, key: &AppKey, observed_at: Instant) -> bool {
        self.inflight.contains(key) || self.finished.get(key).is_some_and(|t| *t >= observed_at)
    }
}

pub struct Controller {
    pub(super) store: Store,
    pub(super) runtime: Arc<dyn Runtime>,
    /// Swarm mode: the manager the apps are declared to as services (the loop then plans
    /// services instead of containers).
    pub(super) swarm: Option<Arc<dyn Swarm>>,
    pub(super) images: Arc<ImageService>,
    pub(super) observer: Observer,
    pub(super) config: ControllerConfig,
    /// Woken by what needs a look at once: a change of what is declared (the API, the spec
    /// files), or a container that exited or went away (a repair).
    pub(super) wake: Arc<Notify>,
    /// Woken by other changes of what runs (engine events, finished work, node agents).
    pub(super) observed: Arc<Notify>,
    pub(super) ops: Arc<Semaphore>,
    // std Mutexes: held only for short, synchronous bookkeeping, never across an .await; when
    // both are held, the memory is taken first.
    state: Mutex<LoopState>,
    memory: Arc<Mutex<Memory>>,
    /// Signalled whenever an app's work is released (actions wait on it for their app).
    pub(super) released: Notify,
    pub(super) health: watch::Sender<Health>,
    pub(super) metrics: Arc<Metrics>,
    /// Stops the loop and the watcher; no new work starts once it is cancelled.
    pub(super) cancel: CancellationToken,
    /// Every app's work in flight, so a shutdown can let it finish.
    pub(super) work: TaskTracker,
    /// The stored objects as last read, with the store's change counter then: a pass re-reads
    /// them only when something changed.
    records: Mutex<Option<(i64, Arc<Vec<ObjectRecord>>)>>,
    /// The stored app specs, validated once per change.
    specs: SpecCache,
}

impl Controller {
    /// Work for `key` is done: the app is free for the next pass (and for an action waiting
    /// for it).
    pub(super) fn release(&self, key: &AppKey) {
        self.lock().release(key);
        self.released.notify_waiters();
    }

    /// Takes `key`'s place for work planned from an observation at `observed_at`: false when
    /// work for it is in flight, or finished after that observation (it would be stale).
    pub(super) fn claim_fresh(&self, key: &AppKey, observed_at: Instant) -> bool {
        let mut state = self.lock();
        !state.is_stale(key, observed_at) && state.inflight.insert(key.clone())
    }

    /// A solo-mode controller: apps are containers of `runtime`'s engine.
    pub fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        config: ControllerConfig,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        Self::with_backend(store, runtime, None, config, wake)
    }

    /// With `swarm`, a swarm-mode controller: apps are services of the swarm that engine
    /// manages (`runtime` is the same engine).
    pub fn with_backend(
        store: Store,
        runtime: Arc<dyn Runtime>,
        swarm: Option<Arc<dyn Swarm>>,
        config: ControllerConfig,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        let registry =
            RegistryClient::new(config.insecure_registries.clone(), config.registry_timeout);
        let memory = Arc::new(Mutex::new(Memory::default()));
        let metrics = Arc::new(Metrics {
            notifications: config.notifier.counts(),
            ..Metrics::default()
        });
        Arc::new(Self {
            store,
            images: Arc::new(ImageService::new(
                Arc::clone(&runtime),
                registry,
                Arc::clone(&memory),
            )),
            memory,
            runtime,
            swarm,
            ops: Arc::new(Semaphore::new(config.max_ops.max(1))),
            observer: Observer::new(config.instance.clone(), config.max_ops, config.resync),
            config,
            wake,
            observed: Arc::new(Notify::new()),
            state: Mutex::new(LoopState {
                docker_down: true,
                ..LoopState::default()
            }),
            released: Notify::new(),
            health: watch::channel(Health::connecting()).0,
            metrics,
            cancel: CancellationToken::new(),
            work: TaskTracker::new(),
            records: Mutex::new(None),
            specs: SpecCache::default(),
        })
    }

    /// The swarm manager, in swarm mode.
    pub fn swarm(&self) -> Option<Arc<dyn Swarm>> {
        self.swarm.clone()
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

    /// Asks for a pass now (as a store write does).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// What wakes the loop when something that runs changed (the node agents' reports).
    pub fn observed_waker(&self) -> Arc<Notify> {
        Arc::clone(&self.observed)
    }

    pub fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// What the loop remembers (shared with the image operations).
    pub(super) fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LoopState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the loop and the event watcher; `stop` ends them (aborting the handles does too,
    /// without waiting for work in flight).
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(self).run()),
            tokio::spawn(Arc::clone(self).watch_events()),
        ]
    }

    /// Stops the loop: no pass starts and no work is handed out any more; the work in flight
    /// finishes (every engine call has its deadline) for at most `grace`; then one last look
    /// stores the statuses it left. Returns the apps whose work was still running at the end.
    pub async fn stop(self: &Arc<Self>, grace: Duration) -> Vec<AppKey> {
        self.cancel.cancel();
        self.work.close();
        let busy: Vec<AppKey> = self.lock().inflight.iter().cloned().collect();
        if !busy.is_empty() {
            tracing::info!(
                apps = busy.len(),
                "waiting for the work in flight: {}",
                list(&busy)
            );
        }
        if tokio::time::timeout(grace, self.work.wait()).await.is_err() {
            let left: Vec<AppKey> = self.lock().inflight.iter().cloned().collect();
            tracing::warn!(
                "work of {} app(s) did not finish within {}s: {}",
                left.len(),
                grace.as_secs(),
                list(&left)
            );
            return left;
        }
        // The statuses as the finished work left them (the pass starts no new work); only the
        // leader writes statuses.
        if self.config.leadership.is_leader()
            && tokio::time::timeout(grace, self.pass()).await.is_err()
        {
            tracing::warn!(
                "the last status update did not finish within {}s",
                grace.as_secs()
            );
        }
        Vec::new()
    }

    async fn run(self: Arc<Self>) {
        let mut next: Option<Duration> = Some(Duration::ZERO);
        let mut last_pass: Option<LastPass> = None;
        let min = self.config.min_pass_interval;
        loop {
            let sleep = next.unwrap_or(self.config.resync).min(self.config.resync);
            // Woken (urgent or routine) or the timer's pass; see `pacing` for the spacing.
            let woken = tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.wake.notified() => Some(true),
                _ = self.observed.notified() => Some(false),
                _ = tokio::time::sleep(sleep) => None,
            };
            let mut urgent = woken == Some(true);
            if let Some(woken_urgent) = woken {
                let at = pacing::earliest(last_pass, woken_urgent, Instant::now(), min);
                if woken_urgent {
                    tokio::time::sleep_until(at).await;
                } else {
                    // An urgent wake-up while a routine pass waits its turn goes first.
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.wake.notified() => {
                            urgent = true;
                            let at = pacing::earliest(last_pass, true, Instant::now(), min);
                            tokio::time::sleep_until(at).await;
                        }
                    }
                }
            }
            if !self.config.leadership.is_leader() {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = self.config.leadership.until_leader() => {}
                }
                // A new term starts from a full observation (images and stopped containers
                // included), so the work a previous leader left half done is adopted as found.
                self.observer.images_changed();
                self.observer.containers_changed();
            }
            last_pass = Some(LastPass {
                at: Instant::now(),
                urgent,
            });
            next = self.pass().await;
        }
    }

    async fn watch_events(self: Arc<Self>) {
        let mut outage = backoff::outage();
        loop {
            let started = Instant::now();
            // Swarm mode: services and nodes (task progress has no event; passes poll while
            // Swarm moves tasks).
            let mut stream = match &self.swarm {
                Some(swarm) => swarm.swarm_events(),
                None => self.runtime.events(&self.config.instance),
            };
            loop {
                let event = tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    event = stream.next() => event,
                };
                let Some(event) = event else { break };
                match event {
                    // Commands run in a container (health probes every interval, git) change
                    // nothing a pass looks at.
                    Ok(e) if e.action.starts_with("exec_") => {}
                    // A signal sent (`docker kill`, the first step of `docker stop`): what it
                    // does arrives as `die`, and a pass woken before that would find the
                    // container still running and then have to wait `min_pass_interval` for it.
                    Ok(e) if e.action == "kill" => {
                        self.observer.container_changed(&e.id, &e.action);
                    }
                    Ok(e) => {
                        tracing::debug!(id = %e.id, action = %e.action, image = e.image, "docker event");
                        if e.image {
                            self.observer.images_changed();
                        } else {
                            self.observer.container_changed(&e.id, &e.action);
                        }
                        // An exit or a removal may need a repair at once; the rest (mostly
                        // the creates and starts of wharf's own work) can wait their turn.
                        if !e.image && matches!(e.action.as_str(), "die" | "destroy") {
                            self.wake.notify_one();
                        } else {
                            self.observed.notify_one();
                        }
                    }
                    Err(e) => {
                        tracing::debug!("Docker event stream: {e}");
                        break;
                    }
                }
            }
            // The stream ended: the engine went away or restarted. Look again (images and
            // stopped containers too), then re-subscribe with backoff.
            self.observer.images_changed();
            self.observer.containers_changed();
            self.observed.notify_one();
            if started.elapsed() > Duration::from_secs(10) {
                outage = backoff::outage();
            }
            let delay = outage.next().unwrap_or(backoff::OUTAGE_MAX);
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    pub(super) fn docker_failed(&self, error: String) -> Option<Duration> {
        self.metrics.docker_errors.inc();
        let mut state = self.lock();
        if !state.docker_down {
            tracing::error!("lost the Docker Engine: {error}; retrying with backoff");
        }
        state.docker_down = true;
        let delay = state
            .outage
            .get_or_insert_with(backoff::outage)
            .next()
            .unwrap_or(backoff::OUTAGE_MAX);
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
                    self.memory().unblock_all();
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
        let t0 = std::time::Instant::now();
        let records = match self.records().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("reading the store failed, skipping this pass: {e}");
                return Some(Duration::from_secs(1));
            }
        };
        let by_uid: HashMap<&str, &ObjectRecord> =
            records.iter().map(|r| (r.uid.as_str(), r)).collect();
        let t1 = t0.elapsed();
        self.memory().sync(&records);
        let now = Instant::now();
        let mut desired = self.desired(&records, Some(&self.specs), now).await;
        let t2 = t0.elapsed();
        {
            let mut state = self.lock();
            state.finished.retain(|key, _| {
                desired.apps.contains_key(key) || desired.images.contains_key(key)
            });
        }
        if let Some(swarm) = &self.swarm {
            return self
                .swarm_pass(swarm, &records, &desired, observed_at)
                .await;
        }
        let observed = match self.observe(&desired, &by_uid).await {
            Ok(o) => o,
            Err(e) => return self.docker_failed(e.to_string()),
        };
        // Never plan on incomplete input: leave those apps (and their containers) alone.
        desired.set_aside(&observed.unobserved);
        let t3 = t0.elapsed();
        let the_plan = plan(&desired, &observed, now);
        let t4 = t0.elapsed();
        self.health.send_modify(|h| h.passes += 1);
        self.metrics.passes.inc();
        self.reset_healthy(&desired, &observed, now);
        self.write_statuses(&desired, &observed, &the_plan.apps, &by_uid, observed_at)
            .await;
        tracing::debug!(
            "pass over {} apps: records read {t1:?}, desired built {t2:?}, observed {t3:?}, planned {t4:?}, statuses written {:?} (cumulative)",
            desired.apps.len(),
            t0.elapsed()
        );
        self.metrics
            .pass_seconds
            .observe(observed_at.elapsed().as_secs_f64());

        if self.cancel.is_cancelled() {
            return None;
        }
        for (key, app_plan) in the_plan.apps.iter() {
            if app_plan.steps.is_empty() {
                continue;
            }
            if !self.claim_fresh(key, observed_at) {
                continue;
            }
            let record = app_plan
                .uid
                .as_deref()
                .and_then(|u| by_uid.get(u))
                .map(|r| (*r).clone());
            let this = Arc::clone(self);
            let key = key.clone();
            let app_plan = app_plan.clone();
            self.work
                .spawn(async move { this.work(key, record, app_plan).await });
        }
        the_plan.requeue_after()
    }

    /// Every stored App and Image (and Node, in swarm mode), read again only when the store
    /// says an object changed since the last read.
    pub(super) async fn records(&self) -> Result<Arc<Vec<ObjectRecord>>, crate::store::StoreError> {
        let kinds: &[Kind] = if self.swarm.is_some() {
            &[Kind::App, Kind::Image, Kind::Node]
        } else {
            &[Kind::App, Kind::Image]
        };
        let cached = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let seen = cached.as_ref().map(|(counter, _)| *counter);
        match self.store.objects_since(kinds, seen).await? {
            None => Ok(cached.map(|(_, records)| records).unwrap_or_default()),
            Some((counter, records)) => {
                let records = Arc::new(records);
                *self.records.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((counter, Arc::clone(&records)));
                Ok(records)
            }
        }
    }

    /// `Desired` from `records` and the loop's memory, with the image requests that word the
    /// condition of an app waiting for approval (a pass where every image is declared reads
    /// none).
    pub(super) async fn desired(
        &self,
        records: &[ObjectRecord],
        specs: Option<&SpecCache>,
        now: Instant,
    ) -> Desired {
        let mut desired = {
            // Lock order: the memory, then the loop's state.
            let memory = self.memory();
            let state = self.lock();
            let cx = Context {
                instance: &self.config.instance,
                require_approved_images: self.config.require_approved_images,
                rollout_width: self.config.rollout_width,
                memory: &memory,
                busy: &state.inflight,
                specs,
            };
            desired::build(records, &cx, now)
        };
        if desired::needs_requests(&desired) {
            match self.store.image_requests(None, None).await {
                Ok(requests) => desired::note_requests(&mut desired, requests),
                Err(e) => tracing::warn!("reading image requests: {e}"),
            }
        }
        desired
    }

    /// Observes the engine for `desired`: inspect details only where planning needs them
    /// (containers not running, not matching their spec, not yet known to the status, or
    /// unhealthy): a converged app costs no call beyond the list.
    pub(super) async fn observe(
        &self,
        desired: &Desired,
        by_uid: &HashMap<&str, &ObjectRecord>,
    ) -> Result<Observed, crate::runtime::RuntimeError> {
        let details = |c: &ContainerSummary| needs_details(c, by_uid, desired);
        let applied = |c: &ContainerSummary| {
            c.labels
                .get(labels::UID)
                .and_then(|uid| by_uid.get(uid.as_str()))
                .and_then(|r| r.applied_hash_for(&c.id))
        };
        let wants = Wants {
            pulls: self.images.pulls(),
            details: &details,
            applied_update: &applied,
        };
        self.observer.observe(self.runtime.as_ref(), &wants).await
    }

    /// The engine's containers of this instance and its images, without details.
    pub async fn listing(&self) -> Result<Observed, crate::runtime::RuntimeError> {
        self.observer
            .listing(self.runtime.as_ref(), self.images.pulls())
            .await
    }

    /// The engine's images as they are now (an image tagged a moment ago included, before its
    /// event reaches the loop), listed afresh into the cache the loop's passes share.
    pub async fn engine_images(
        &self,
    ) -> Result<Vec<crate::runtime::ImageSummary>, crate::runtime::RuntimeError> {
        self.observer.images_changed();
        self.observer
            .images(self.runtime.as_ref(), self.images.pulls())
            .await
    }

    fn reset_healthy(&self, desired: &Desired, observed: &Observed, now: Instant) {
        let containers = observed.by_uid();
        let mut memory = self.memory();
        for app in desired.apps.values() {
            let running = containers.get(app.uid.as_str()).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.summary.state == ContainerState::Running)
            });
            if memory.reset_healthy(&app.uid, running, now, HEALTHY_RESET) {
                tracing::info!(app = %app.spec.key, "healthy for 10 minutes; repair backoff reset");
            }
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
            self.observer.images_changed();
        }
        self.report(&key, record.as_ref(), &execution).await;
        if let Some((_, ExecError::Runtime(_))) = execution.error() {
            self.metrics.docker_errors.inc();
        }
        let now = Instant::now();
        // The memory first, then the release: a pass in between still sees the app busy.
        {
            let mut all = self.memory();
            if let Some(uid) = &app_plan.uid
                && let Some(memory) = all.get_mut(uid)
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
                        match e.class() {
                            ErrorClass::Transient => memory.hold(now),
                            ErrorClass::Permanent => {
                                tracing::warn!(app = %key, "{} failed for good: waiting for a change of the spec, the image or the engine", step.action.verb());
                                memory.block(app_plan.image_id.clone(), now);
                            }
                        }
                    }
                    None => {
                        memory.failure = None;
                        memory.blocked_on_image = None;
                        // A replacement that went through ends an earlier rollback (to another
                        // version of the image).
                        if app_plan
                            .steps
                            .iter()
                            .any(|s| matches!(s.action, Action::Replace { .. }))
                        {
                            memory.rolled_back = None;
                        }
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
        }
        self.lock().release(&key);
        self.released.notify_waiters();
        self.observed.notify_one();
    }
}

/// `demo/a, demo/b`.
fn list(keys: &[AppKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
