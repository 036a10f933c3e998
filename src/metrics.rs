//! Prometheus metrics (`GET /metrics`, text exposition through `prometheus-client`).
//!
//! The loop and the API count into `Metrics` as they work (passes and their duration, Docker
//! errors, apply requests by result). Per-app figures — CPU, memory, network, block I/O, up,
//! restarts — are read at scrape time from the latest stored sample and status, labelled only
//! by namespace and app, so label cardinality is bounded by the number of apps.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::spec::Kind;
use crate::spec::status::Phase;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    pub namespace: String,
    pub app: String,
}

/// A swarm task's series: bounded by the apps' replicas (the slot, not the task id, which
/// changes with every replacement).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub namespace: String,
    pub app: String,
    /// The task's slot (empty for a global app's task: its node tells it apart).
    pub slot: String,
    pub node: String,
}

/// A swarm task's latest figures, from its node's agent.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskFigures {
    pub labels: TaskLabels,
    pub cpu_percent: f64,
    pub memory_bytes: f64,
    pub memory_limit_bytes: f64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// ok, invalid, conflict, unauthorized, error.
    pub result: String,
}

/// What the loop and the API count.
pub struct Metrics {
    pub passes: Counter,
    pub pass_seconds: Histogram,
    pub docker_errors: Counter,
    pub apply_requests: Family<ResultLabels, Counter>,
    /// Notifications by webhook, event and result (the notifier counts into it).
    pub notifications: Family<crate::notify::NotificationLabels, Counter>,
    /// 1 while this instance holds the leader's lease (always alone on SQLite), else 0; set
    /// when the metrics are read.
    pub leader: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            passes: Counter::default(),
            // 1 ms to about 16 s.
            pass_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            docker_errors: Counter::default(),
            apply_requests: Family::default(),
            notifications: Family::default(),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Counts one answered apply request by its HTTP status.
    pub fn apply_answered(&self, status: u16) {
        let result = match status {
            200..=299 => "ok",
            401 | 403 => "unauthorized",
            409 => "conflict",
            400 | 413 | 422 => "invalid",
            _ => "error",
        };
        self.apply_requests
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    /// The text exposition: the counted metrics, the queue depth, every app's latest figures
    /// (only samples at most three `stats_interval`s old count as current) and, in swarm mode,
    /// every running task's.
    pub async fn render(
        &self,
        store: &Store,
        queue_depth: usize,
        stats_interval: Duration,
        tasks: &[TaskFigures],
    ) -> Result<String, String> {
        let mut registry = Registry::with_prefix("wharf");
        registry.register(
            "reconcile_passes",
            "Reconcile passes that observed Docker completely",
            self.passes.clone(),
        );
        registry.register(
            "reconcile_pass_duration_seconds",
            "Duration of a reconcile pass (observe, plan, status; work runs after)",
            self.pass_seconds.clone(),
        );
        registry.register(
            "docker_errors",
            "Docker API calls that failed (listings, steps, outages)",
            self.docker_errors.clone(),
        );
        registry.register(
            "apply_requests",
            "POST /api/v1/apply requests by result",
            self.apply_requests.clone(),
        );
        registry.register(
            "notifications",
            "Notifications by webhook (scheme, host, port), event and result: delivered, failed (every attempt), dropped (queue full)",
            self.notifications.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance leads (holds the leader's lease; always alone on SQLite), else 0",
            self.leader.clone(),
        );
        let queue = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        queue.set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        registry.register("reconcile_queue_depth", "Apps with work in flight", queue);

        type F = Family<AppLabels, Gauge<f64, AtomicU64>>;
        let families: [(&str, &str, F); 10] = [
            (
                "app_cpu_percent",
                "CPU use, percent of one core",
                F::default(),
            ),
            (
                "app_memory_bytes",
                "Memory in use, page cache excluded",
                F::default(),
            ),
            ("app_memory_limit_bytes", "Memory limit", F::default()),
            (
                "app_network_receive_bytes",
                "Bytes received (cumulative)",
                F::default(),
            ),
            (
                "app_network_transmit_bytes",
                "Bytes sent (cumulative)",
                F::default(),
            ),
            (
                "app_block_read_bytes",
                "Bytes read from block devices (cumulative)",
                F::default(),
            ),
            (
                "app_block_write_bytes",
                "Bytes written to block devices (cumulative)",
                F::default(),
            ),
            ("app_pids", "Processes in the container", F::default()),
            (
                "app_up",
                "1 when the app's container is running",
                F::default(),
            ),
            (
                "app_restarts",
                "Restarts of the app's container",
                F::default(),
            ),
        ];
        let now = chrono::Utc::now().timestamp_millis();
        let records = store
            .list(Kind::App, None)
            .await
            .map_err(|e| e.to_string())?;
        for record in &records {
            let labels = AppLabels {
                namespace: record.key.namespace.clone(),
                app: record.key.name.clone(),
            };
            let set = |i: usize, v: f64| {
                families[i].2.get_or_create(&labels).set(v);
            };
            let status = record.app_status();
            let running = status.is_some_and(|s| s.phase == Phase::Running);
            set(8, if running { 1.0 } else { 0.0 });
            set(9, status.map_or(0.0, |s| s.restart_count as f64));
            let sample = store
                .latest_sample(&record.uid)
                .await
                .map_err(|e| e.to_string())?;
            let Some(s) = sample.filter(|s| crate::stats::is_current(stats_interval, s.t, now))
            else {
                continue;
            };
            for (i, v) in [
                s.cpu,
                s.mem as f64,
                s.mem_limit as f64,
                s.net_rx as f64,
                s.net_tx as f64,
                s.blk_read as f64,
                s.blk_write as f64,
                s.pids as f64,
            ]
            .into_iter()
            .enumerate()
            {
                set(i, v);
            }
        }
        for (name, help, family) in families {
            registry.register(name, help, family);
        }
        if !tasks.is_empty() {
            type T = Family<TaskLabels, Gauge<f64, AtomicU64>>;
            let (cpu, mem, limit) = (T::default(), T::default(), T::default());
            for t in tasks {
                cpu.get_or_create(&t.labels).set(t.cpu_percent);
                mem.get_or_create(&t.labels).set(t.memory_bytes);
                limit.get_or_create(&t.labels).set(t.memory_limit_bytes);
            }
            registry.register(
                "task_cpu_percent",
                "A swarm task's CPU use, percent of one core",
                cpu,
            );
            registry.register(
                "task_memory_bytes",
                "A swarm task's memory in use, page cache excluded",
                mem,
            );
            registry.register(
                "task_memory_limit_bytes",
                "A swarm task's memory limit",
                limit,
            );
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}
