//! Several wharf instances on one PostgreSQL database, one of them the elected leader.
//!
//! The leader holds a lease in the database (`store::lease`): a holder, a fencing generation
//! bumped on every acquisition, and an expiry on the database's clock. It renews the lease every
//! `ttl / 5`; the others try to take it as often, and get it once it expired. Only the leader
//! reconciles, pulls, samples stats, records uptime, prunes and follows the spec source; every
//! instance serves the whole API, and writes made on any of them wake the leader through
//! `LISTEN/NOTIFY` (`notify`).
//!
//! Fencing: every Docker write goes through [`fence`], which refuses it unless this instance
//! holds the lease with a margin: the lease counts as this instance's only until
//! `start of the last successful renewal + ttl - margin` (`margin = 3/10 of ttl`), on the
//! process's monotonic clock. The database's expiry is at least `ttl` after that renewal
//! started, so a write is never issued once the lease may have passed to another instance,
//! even when the process was stopped (SIGSTOP) or the database stopped answering.
//!
//! With the default 10 s lease: renewals every 2 s; a leader that cannot renew stops issuing
//! writes 7 s after its last renewal; another instance takes over at most 12 s after the
//! leader's last renewal (10 s of lease and up to 2 s until its next try).
//!
//! With SQLite (one instance) there is no election: the instance always leads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::runtime::{RuntimeError, RuntimeResult};
use crate::store::{Lease, Store};

pub mod fence;
pub mod notify;

/// How an instance takes part in an election.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This instance's id (unique among the instances on the database).
    pub id: String,
    /// Where this instance's API is reached, as shown to the others.
    pub address: String,
    /// The lease's lifetime.
    pub ttl: Duration,
}

impl ClusterConfig {
    /// Between two renewals (and two attempts of a follower).
    pub fn renew_every(&self) -> Duration {
        self.ttl / 5
    }

    /// How long before the lease's end the leader stops issuing Docker writes.
    pub fn margin(&self) -> Duration {
        self.ttl * 3 / 10
    }
}

/// What this instance knows of the election.
#[derive(Clone, Debug, Default)]
struct Term {
    /// This instance's lease is its own until then (the fence's deadline).
    valid_until: Option<Instant>,
    /// The holder seen last, and its generation and start (database clock, unix ms).
    leader: Option<String>,
    generation: i64,
    since_ms: Option<i64>,
    /// Why the last renewal or attempt failed, while it does.
    error: Option<String>,
}

/// The leadership of this instance, shared by everything that may only run on the leader.
#[derive(Clone)]
pub struct Leadership(Arc<Inner>);

struct Inner {
    config: ClusterConfig,
    /// `false`: one instance on SQLite, always the leader.
    elected: bool,
    term: Mutex<Term>,
    leading: watch::Sender<bool>,
    started_ms: i64,
}

/// The election as `GET /api/v1/cluster` shows part of it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderView {
    /// The leader's instance id, when one holds an unexpired lease as far as this instance
    /// knows.
    pub leader: Option<String>,
    /// Since when it leads (RFC 3339).
    pub since: Option<String>,
    /// The lease's fencing generation.
    pub generation: i64,
    /// Whether this instance leads (and may issue Docker writes) now.
    pub leading: bool,
    /// Whether instances are elected (PostgreSQL) or this one always leads (SQLite).
    pub elected: bool,
    /// Why this instance's last renewal or attempt failed, while it does.
    pub error: Option<String>,
}

impl Default for Leadership {
    /// An instance alone on its database.
    fn default() -> Self {
        Self::single(ClusterConfig {
            id: "local".into(),
            address: String::new(),
            ttl: crate::defaults::LEASE_TTL,
        })
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("id", &self.0.config.id)
            .field("elected", &self.0.elected)
            .field("leading", &self.is_leader())
            .finish()
    }
}

impl Leadership {
    /// One instance alone on its database: it always leads.
    pub fn single(config: ClusterConfig) -> Self {
        let term = Term {
            leader: Some(config.id.clone()),
            generation: 1,
            since_ms: Some(chrono::Utc::now().timestamp_millis()),
            ..Term::default()
        };
        Self::new(config, false, term)
    }

    /// An instance that leads only while it holds the database's lease.
    pub fn elected(config: ClusterConfig) -> Self {
        Self::new(config, true, Term::default())
    }

    fn new(config: ClusterConfig, elected: bool, term: Term) -> Self {
        let (leading, _) = watch::channel(!elected);
        Self(Arc::new(Inner {
            config,
            elected,
            term: Mutex::new(term),
            leading,
            started_ms: chrono::Utc::now().timestamp_millis(),
        }))
    }

    fn term(&self) -> std::sync::MutexGuard<'_, Term> {
        self.0.term.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn id(&self) -> &str {
        &self.0.config.id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.0.config
    }

    pub fn is_elected(&self) -> bool {
        self.0.elected
    }

    /// When this process started (unix ms).
    pub fn started_ms(&self) -> i64 {
        self.0.started_ms
    }

    /// Whether this instance holds the lease (with the fence's margin) now.
    pub fn is_leader(&self) -> bool {
        !self.0.elected || self.term().valid_until.is_some_and(|t| Instant::now() < t)
    }

    /// `Ok` when a Docker write may be issued now; otherwise why not.
    pub fn check(&self) -> RuntimeResult<()> {
        if self.is_leader() {
            return Ok(());
        }
        let term = self.term();
        let leader = match &term.leader {
            Some(l) if *l != self.0.config.id => format!("{l} leads"),
            _ => "no instance holds the lease".to_string(),
        };
        Err(RuntimeError::NotLeader(format!(
            "this instance ({}) does not hold the leader's lease ({leader}); Docker writes and actions go through the leader",
            self.0.config.id
        )))
    }

    /// Changes of [`Self::is_leader`] (as the election loop sees them).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.leading.subscribe()
    }

    /// Returns once this instance leads.
    pub async fn until_leader(&self) {
        let mut rx = self.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(|leading| *leading).await;
    }

    pub fn view(&self) -> LeaderView {
        let leading = self.is_leader();
        let term = self.term();
        LeaderView {
            leader: term.leader.clone(),
            since: term.since_ms.and_then(|ms| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }),
            generation: term.generation,
            leading,
            elected: self.0.elected,
            error: term.error.clone(),
        }
    }

    /// Runs `start` while this instance leads, and stops what it started when it no longer
    /// does (or when this task is aborted).
    pub fn spawn_while_leading(
        &self,
        what: &'static str,
        start: impl Fn() -> Vec<JoinHandle<()>> + Send + 'static,
    ) -> JoinHandle<()> {
        let mut rx = self.subscribe();
        tokio::spawn(async move {
            loop {
                if rx.wait_for(|leading| *leading).await.is_err() {
                    return;
                }
                let _running = AbortOnDrop(start());
                tracing::debug!(what, "started on this leader");
                if rx.wait_for(|leading| !*leading).await.is_err() {
                    return;
                }
                tracing::info!(what, "stopped: this instance no longer leads");
            }
        })
    }

    /// The election loop (PostgreSQL): takes or renews the lease, heartbeats this instance,
    /// and gives the lease up on `stop`.
    pub fn spawn(&self, store: Store, stop: CancellationToken) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run(store, stop).await })
    }

    async fn run(self, store: Store, stop: CancellationToken) {
        let config = self.0.config.clone();
        let every = config.renew_every();
        let ttl_ms = i64::try_from(config.ttl.as_millis()).unwrap_or(i64::MAX);
        let version = env!("CARGO_PKG_VERSION");
        loop {
            let started = Instant::now();
            let attempt =
                tokio::time::timeout(every, store.acquire_lease(&config.id, ttl_ms)).await;
            match attempt {
                Ok(Ok(Some(lease))) => self.held(started + config.ttl - config.margin(), &lease),
                Ok(Ok(None)) => {
                    let current = tokio::time::timeout(every, store.lease()).await;
                    self.other_holds(current.ok().and_then(Result::ok).flatten());
                }
                Ok(Err(e)) => self.failed(e.to_string()),
                Err(_) => self.failed(format!(
                    "the database did not answer within {} ms",
                    every.as_millis()
                )),
            }
            let heartbeat =
                store.heartbeat_instance(&config.id, &config.address, version, self.0.started_ms);
            if let Ok(Err(e)) = tokio::time::timeout(every, heartbeat).await {
                tracing::debug!("instance heartbeat: {e}");
            }
            self.publish();
            let valid_until = self.term().valid_until;
            let deadline = valid_until.filter(|t| Instant::now() < *t);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(started + every) => {}
                // The fence closes on its own; the watchers learn it at that moment.
                _ = async { tokio::time::sleep_until(deadline.unwrap_or(started + every)).await }, if deadline.is_some() => {}
            }
            self.publish();
        }
        let was_leading = self.is_leader();
        self.term().valid_until = None;
        self.publish();
        if was_leading {
            match tokio::time::timeout(every, store.release_lease(&config.id)).await {
                Ok(Ok(_)) => tracing::info!("gave the leader's lease up"),
                Ok(Err(e)) => tracing::warn!("giving the lease up: {e}; it expires on its own"),
                Err(_) => tracing::warn!("giving the lease up timed out; it expires on its own"),
            }
        }
    }

    fn held(&self, valid_until: Instant, lease: &Lease) {
        let mut term = self.term();
        let new = term.valid_until.is_none_or(|t| Instant::now() >= t)
            || term.generation != lease.generation;
        term.valid_until = Some(valid_until);
        term.leader = Some(lease.holder.clone());
        term.generation = lease.generation;
        term.since_ms = Some(lease.since_ms);
        if term.error.take().is_some() {
            tracing::info!("the database answers again");
        }
        drop(term);
        if new {
            tracing::info!(
                generation = lease.generation,
                "this instance leads now (the leader's lease, generation {})",
                lease.generation
            );
        }
    }

    fn other_holds(&self, lease: Option<Lease>) {
        let mut term = self.term();
        let was = term.valid_until.take().is_some_and(|t| Instant::now() < t);
        term.error = None;
        match lease {
            Some(l) if !l.expired() => {
                if was || term.leader.as_deref() != Some(&l.holder) {
                    tracing::info!(leader = %l.holder, generation = l.generation, "{} leads", l.holder);
                }
                term.leader = Some(l.holder);
                term.generation = l.generation;
                term.since_ms = Some(l.since_ms);
            }
            _ => term.leader = None,
        }
    }

    fn failed(&self, error: String) {
        let mut term = self.term();
        if term.error.is_none() {
            tracing::warn!(
                "the leader's lease could not be renewed or taken: {error}; retrying every {} ms{}",
                self.0.config.renew_every().as_millis(),
                if term.valid_until.is_some() {
                    "; Docker writes stop when the lease's margin is reached"
                } else {
                    ""
                }
            );
        }
        term.error = Some(error);
    }

    /// Tells the watchers whether this instance leads now.
    fn publish(&self) {
        let leading = self.is_leader();
        self.0.leading.send_if_modified(|l| {
            let changed = *l != leading;
            *l = leading;
            changed
        });
    }
}

/// Aborts its tasks when dropped.
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, ttl_ms: u64) -> ClusterConfig {
        ClusterConfig {
            id: id.into(),
            address: format!("http://{id}"),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    #[tokio::test]
    async fn a_single_instance_always_leads() {
        let single = Leadership::single(config("solo", 10_000));
        assert!(single.is_leader());
        assert!(single.check().is_ok());
        assert!(*single.subscribe().borrow());
        assert_eq!(single.view().leader.as_deref(), Some("solo"));
    }

    /// Two elected instances on PostgreSQL: one leads; when it stops, the other takes over
    /// within the lease; a fenced-out instance's check names the leader.
    #[tokio::test]
    async fn the_lease_passes_to_the_other_instance_when_the_leader_stops() {
        let db = crate::store::TestDb::postgres().await;
        let (a, b) = (
            Leadership::elected(config("a", 1_000)),
            Leadership::elected(config("b", 1_000)),
        );
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let task_a = a.spawn(db.open().await, stop_a.clone());
        tokio::time::timeout(Duration::from_secs(5), a.until_leader())
            .await
            .expect("a leads");
        let task_b = b.spawn(db.open().await, stop_b.clone());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(a.is_leader() && !b.is_leader());
        let refused = b.check().unwrap_err().to_string();
        assert!(
            refused.contains("(b)") && refused.contains("a leads"),
            "{refused}"
        );

        // A SIGKILL-like end: a stops renewing without giving the lease up.
        task_a.abort();
        let waited = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), b.until_leader())
            .await
            .expect("b takes over");
        assert!(waited.elapsed() <= Duration::from_millis(1_000 + 200 + 300));
        assert!(!a.is_leader(), "a's fence closed within its lease");
        assert_eq!(b.view().generation, 2);
        stop_b.cancel();
        task_b.await.expect("b's loop ends");
        assert!(!b.is_leader());
        drop(stop_a);
    }
}
