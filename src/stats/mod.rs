//! The stats sampler: a task of its own beside the reconcile loop. Every `interval` it lists this
//! instance's containers once, reads each running one's counters (bounded concurrency) — from
//! the host's cgroup files when the engine is local, else with the engine's one-shot stats
//! call (see `runtime/cgroup.rs` for the measurement behind that choice) — turns two readings
//! into a sample (CPU % from the usage deltas and `online_cpus`, never `percpu_usage`), and
//! stores the batch in one transaction.
//! A second task rolls samples up into minutes and hours and prunes by retention.
//!
//! It never plans, never changes a container, and never blocks the loop or the API: a slow or
//! failed reading costs that container one sample.

pub mod host;
pub mod uptime;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::runtime::{ContainerState, ContainerStats, Runtime, labels};
use crate::store::{Retention, Sample, Store};

/// How the sampler works.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsConfig {
    /// Time between samples.
    pub interval: Duration,
    pub retention: Retention,
    /// Stats calls in flight at once.
    pub concurrency: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            interval: crate::defaults::STATS_INTERVAL,
            retention: Retention::default(),
            // File reads take microseconds; an engine stats call waits about a second for the
            // engine's collector, so this many in flight keep 100+ apps within a 10 s round.
            concurrency: 16,
        }
    }
}

/// Whether a sample taken at `t` (unix ms) still describes the app at `now`: at most three
/// sampling intervals old (a stopped app shows no stale usage).
pub fn is_current(interval: Duration, t: i64, now: i64) -> bool {
    (now - t) as f64 <= 3.0 * interval.as_secs_f64() * 1000.0
}

/// CPU use between two readings of one container, in percent of one core.
pub fn cpu_percent(previous: &ContainerStats, current: &ContainerStats) -> Option<f64> {
    let used = current.cpu_total_ns.checked_sub(previous.cpu_total_ns)?;
    let elapsed = current.system_cpu_ns.checked_sub(previous.system_cpu_ns)?;
    if elapsed == 0 {
        return None;
    }
    // `system_cpu_ns` counts every CPU of the host: scale to one core.
    let cpus = if current.online_cpus > 0 {
        f64::from(current.online_cpus)
    } else {
        std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
    };
    Some(used as f64 / elapsed as f64 * cpus * 100.0)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reads the counters of each `(container id, app uid, task id)`, at most `concurrency` engine
/// calls in flight; a container that cannot be read this time is left out.
pub async fn read_containers(
    runtime: &dyn Runtime,
    containers: impl IntoIterator<Item = (String, String, String)>,
    concurrency: usize,
) -> Vec<(String, String, String, ContainerStats)> {
    // In the order given (the engine lists containers in a stable order), so that each
    // container is read at about the same point of every round.
    let mut ids = Vec::new();
    let mut owners: HashMap<String, (String, String)> = HashMap::new();
    for (id, uid, task) in containers {
        ids.push(id.clone());
        owners.insert(id, (uid, task));
    }
    runtime
        .stats_many(ids, concurrency)
        .await
        .into_iter()
        .filter_map(|(id, reading)| match reading {
            Ok(stats) => {
                let (uid, task) = owners.remove(&id)?;
                Some((id, uid, task, stats))
            }
            Err(e) => {
                tracing::debug!(container = %id, "no stats this time: {e}");
                None
            }
        })
        .collect()
}

pub struct Sampler {
    store: Store,
    runtime: Arc<dyn Runtime>,
    instance: String,
    config: StatsConfig,
    previous: Readings,
}

/// The last reading of each running container, by container id: two readings make a sample.
/// (The node agent keeps one for the task containers of its node.)
#[derive(Default)]
pub struct Readings {
    previous: Mutex<HashMap<String, ContainerStats>>,
}

impl Readings {
    /// Samples from this round's readings `(container id, app uid, task id, reading)` of the
    /// containers read before; containers that stopped or went away are forgotten.
    pub fn samples(
        &self,
        readings: impl IntoIterator<Item = (String, String, String, ContainerStats)>,
    ) -> Vec<Sample> {
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(previous.len());
        let mut samples = Vec::new();
        for (id, uid, task, stats) in readings {
            if let Some(cpu) = previous.get(&id).and_then(|p| cpu_percent(p, &stats)) {
                samples.push(Sample {
                    uid,
                    task,
                    t: stats.read_at_ms,
                    cpu,
                    mem: clamp(stats.mem_usage),
                    mem_limit: clamp(stats.mem_limit),
                    mem_max: clamp(stats.mem_max),
                    net_rx: clamp(stats.net_rx),
                    net_tx: clamp(stats.net_tx),
                    blk_read: clamp(stats.blk_read),
                    blk_write: clamp(stats.blk_write),
                    pids: clamp(stats.pids),
                });
            }
            next.insert(id, stats);
        }
        *previous = next;
        samples
    }
}

impl Sampler {
    pub fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        instance: String,
        config: StatsConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            runtime,
            instance,
            config,
            previous: Readings::default(),
        })
    }

    /// Starts sampling and maintenance; abort the handles to stop them.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let sampling = Arc::clone(self);
        let maintenance = Arc::clone(self);
        vec![
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(sampling.config.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = sampling.sample_once().await {
                        tracing::debug!("stats sample skipped: {e}");
                    }
                    if let Err(e) = sampling.sample_host().await {
                        tracing::debug!("host sample skipped: {e}");
                    }
                }
            }),
            tokio::spawn(async move { maintenance.maintain().await }),
        ]
    }

    /// Takes one reading of every running container and stores a sample for each one read
    /// before. Returns how many samples were stored.
    pub async fn sample_once(&self) -> Result<usize, String> {
        let containers = self
            .runtime
            .list(&self.instance)
            .await
            .map_err(|e| format!("listing containers: {e}"))?;
        let running = containers
            .into_iter()
            .filter(|c| c.state == ContainerState::Running)
            .filter_map(|c| Some((c.id, c.labels.get(labels::UID)?.clone(), String::new())));
        let readings =
            read_containers(self.runtime.as_ref(), running, self.config.concurrency).await;
        let samples = self.previous.samples(readings);
        self.store
            .insert_samples(&samples)
            .await
            .map_err(|e| format!("storing {} samples: {e}", samples.len()))?;
        Ok(samples.len())
    }

    /// Reads the host's figures and stores them.
    pub async fn sample_host(&self) -> Result<(), String> {
        let reading = tokio::task::spawn_blocking(host::read)
            .await
            .map_err(|e| format!("host reading: {e}"))??;
        let doc = serde_json::to_value(&reading).map_err(|e| e.to_string())?;
        self.store
            .insert_host_sample("", reading.t, &doc)
            .await
            .map_err(|e| format!("storing the host sample: {e}"))
    }

    /// Rolls up and prunes: once over the whole raw retention at start (a restart misses no
    /// bucket), then every minute over the last ten.
    async fn maintain(&self) {
        let retention = self.config.retention;
        let mut window = retention.raw_ms;
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = chrono::Utc::now().timestamp_millis();
            if let Err(e) = self.store.roll_up(now - window, now).await {
                tracing::warn!("stats rollup failed: {e}");
                continue;
            }
            window = 10 * 60_000;
            match self.store.prune_stats(now, &retention).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!("pruned {n} stats rows past retention"),
                Err(e) => tracing::warn!("stats pruning failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_a_share_of_one_core_from_deltas() {
        let reading = |cpu: u64, system: u64| ContainerStats {
            cpu_total_ns: cpu,
            system_cpu_ns: system,
            online_cpus: 2,
            ..ContainerStats::default()
        };
        // Half a second of CPU while the 2-CPU host ran 2 s of CPU time (1 s wall): 50 %.
        let p = cpu_percent(
            &reading(1_000, 10_000),
            &reading(500_001_000, 2_000_010_000),
        );
        assert!((p.unwrap() - 50.0).abs() < 1e-9);
        // Two busy cores: 200 %.
        let p = cpu_percent(&reading(0, 0), &reading(2_000, 2_000));
        assert!((p.unwrap() - 200.0).abs() < 1e-9);
        // Counters that went back (a restart) or did not move give no figure.
        assert_eq!(cpu_percent(&reading(10, 10), &reading(5, 20)), None);
        assert_eq!(cpu_percent(&reading(10, 10), &reading(10, 10)), None);
    }

    #[tokio::test]
    async fn samples_come_from_two_readings_of_running_apps() {
        use crate::runtime::fake::FakeRuntime;
        let db = crate::store::TestDb::sqlite();
        let (store, uid) = crate::store::store_with_one_app(&db).await;
        let fake = Arc::new(FakeRuntime::default());
        fake.add_image("busybox:1");
        let spec = crate::runtime::CreateSpec {
            name: "demo.web".into(),
            labels: [
                (
                    labels::MANAGED_BY.to_string(),
                    labels::MANAGED_BY_VALUE.to_string(),
                ),
                (labels::INSTANCE.to_string(), "i".to_string()),
                (labels::UID.to_string(), uid.clone()),
            ]
            .into(),
            config: crate::spec::validate::ContainerConfig {
                image: "busybox:1".into(),
                ..Default::default()
            },
            limits: Default::default(),
            volume_names: Default::default(),
        };
        let id = fake.create(&spec).await.expect("create");
        fake.start(&id).await.expect("start");
        let sampler = Sampler::new(store.clone(), fake, "i".into(), StatsConfig::default());
        assert_eq!(
            sampler.sample_once().await,
            Ok(0),
            "the first reading primes"
        );
        assert_eq!(sampler.sample_once().await, Ok(1));
        let latest = store
            .latest_sample(&uid)
            .await
            .expect("read")
            .expect("a sample");
        // The fake's counters: 5 s of CPU per 20 s of 2-CPU host time = 50 % of one core.
        assert!((latest.cpu - 50.0).abs() < 1e-9, "{latest:?}");
        assert_eq!(latest.mem, 2 << 20);
    }
}
