//! The Docker seam: one narrow trait in wharf's own types.
//!
//! `docker/` is the only module that sees bollard; `fake.rs` is an in-memory recording
//! runtime for planner and loop tests. Every call the daemon makes through this trait has a
//! deadline (enforced by the adapter), so a wedged engine call surfaces as `Timeout` instead of
//! stalling its caller. Nothing here decides anything: callers say what to do.

pub mod cgroup;
pub mod docker;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod image_match;
pub mod swarm;

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;

pub use crate::spec::status::HealthState;
use crate::spec::validate::{ContainerConfig, Limits};

/// Labels wharf puts on every object it creates. Objects without `managed-by` are never touched.
pub mod labels {
    pub const MANAGED_BY: &str = "wharf.managed-by";
    pub const MANAGED_BY_VALUE: &str = "wharf";
    /// Which wharf (data directory) owns the object; several can share one engine.
    pub const INSTANCE: &str = "wharf.instance";
    pub const NAMESPACE: &str = "wharf.namespace";
    pub const APP: &str = "wharf.app";
    pub const UID: &str = "wharf.uid";
    pub const GENERATION: &str = "wharf.generation";
    pub const HASH_RECREATE: &str = "wharf.hash.recreate";
    pub const HASH_UPDATE: &str = "wharf.hash.update";
}

/// A container's state as Docker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        })
    }
}

impl ContainerState {
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }
}

/// One line of the container list.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Health, when the container has a health check and is running.
    pub health: Option<HealthState>,
}

/// What an inspect adds to the summary: exit details and the limits in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerDetails {
    /// The state at the time of the inspect.
    pub state: Option<ContainerState>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub restart_count: i64,
    pub limits: ObservedLimits,
    pub health: Option<HealthState>,
    /// The output of the last health probe, when it failed.
    pub health_output: Option<String>,
}

/// The limits Docker reports for a container (0 = unset, as Docker says).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedLimits {
    pub memory: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub restart: String,
}

/// Everything needed to create one container.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub config: ContainerConfig,
    pub limits: Limits,
    /// Docker volume names by the spec's volume name.
    pub volume_names: BTreeMap<String, String>,
}

/// One image in the engine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageSummary {
    pub id: String,
    /// `name:tag` as Docker lists them (`busybox:1.36`, `127.0.0.1:5000/team/app:2`).
    pub repo_tags: Vec<String>,
    /// `name@sha256:…`: the registry manifest digests the image was pulled or pushed by.
    pub repo_digests: Vec<String>,
    pub size: i64,
    /// Unix seconds.
    pub created: i64,
}

/// Registry credentials for one pull (never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
    /// The registry host (`127.0.0.1:5000`, `docker.io`).
    pub server: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryCredentials({}@{})", self.username, self.server)
    }
}

/// One progress message of a pull.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullProgress {
    /// The layer the message is about, if any.
    pub layer: Option<String>,
    /// Docker's words: "Downloading", "Extracting", "Pull complete", ...
    pub status: String,
    pub current: Option<i64>,
    pub total: Option<i64>,
}

/// One reading of a container's counters (the engine's one-shot stats: no second sample, so
/// CPU % comes from the difference between two readings, see `stats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerStats {
    /// Unix milliseconds of the reading.
    pub read_at_ms: i64,
    /// Container CPU time, nanoseconds (cumulative).
    pub cpu_total_ns: u64,
    /// Host CPU time, nanoseconds (cumulative, all CPUs).
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    /// Memory in use (without the page cache, as `docker stats` counts it).
    pub mem_usage: u64,
    pub mem_limit: u64,
    /// The peak of memory use (cgroup v1 only; 0 where the engine does not report it).
    pub mem_max: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

/// What a command run in a container printed, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// Which part of a container's log to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    /// The last N lines only.
    pub tail: Option<u64>,
    /// Lines since this unix time.
    pub since: Option<i64>,
    /// Keep streaming new lines until the container stops.
    pub follow: bool,
    pub timestamps: bool,
}

/// A piece of a container's log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogChunk {
    pub stderr: bool,
    pub data: bytes::Bytes,
}

/// A container event (start, die, destroy, ...) or an image event (pull, tag, untag, delete).
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeEvent {
    /// The container's id, or the image's id or reference.
    pub id: String,
    /// Docker's action: `start`, `die`, `oom`, `pause`, `health_status: healthy`, …
    pub action: String,
    pub image: bool,
    /// When the engine saw it, unix milliseconds.
    pub time_ms: i64,
    /// The actor's attributes: a container's labels, `exitCode`, `name`, …
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RuntimeError {
    #[error("no such container or object: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("Docker call `{op}` did not answer within {seconds}s")]
    Timeout { op: &'static str, seconds: u64 },
    #[error("Docker Engine unavailable: {0}")]
    Unavailable(String),
    /// A pull failed: the registry's or the engine's message.
    #[error("pulling {reference} failed: {message}")]
    Pull { reference: String, message: String },
    #[error("Docker Engine refused `{op}` ({status}): {message}")]
    Engine {
        op: &'static str,
        status: u16,
        message: String,
    },
    /// A write this instance may not issue: it does not hold the leader's lease (several
    /// instances on one database), so the step was not sent to the engine.
    #[error("not issued: {0}")]
    NotLeader(String),
}

impl RuntimeError {
    /// A short machine-readable reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            RuntimeError::NotFound(_) => "NotFound",
            RuntimeError::Conflict(_) => "Conflict",
            RuntimeError::Timeout { .. } => "DockerTimeout",
            RuntimeError::Unavailable(_) => "DockerUnavailable",
            RuntimeError::Pull { .. } => "ImagePullBackOff",
            RuntimeError::Engine { .. } => "DockerError",
            RuntimeError::NotLeader(_) => "NotLeader",
        }
    }
}

pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// The operations wharf performs on a container engine.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Checks the engine answers (negotiating the API version on first contact or after an
    /// outage); returns its version string.
    async fn ping(&self) -> RuntimeResult<String>;
    /// The engine host's memory in bytes (Docker's `MemTotal`).
    async fn host_memory(&self) -> RuntimeResult<i64>;
    /// All containers (any state) carrying `wharf.managed-by` and this instance's label.
    async fn list(&self, instance: &str) -> RuntimeResult<Vec<ContainerSummary>>;
    async fn inspect(&self, id: &str) -> RuntimeResult<ContainerDetails>;
    /// Creates a named volume if it does not exist yet.
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> RuntimeResult<()>;
    /// Creates a container and returns its id.
    async fn create(&self, spec: &CreateSpec) -> RuntimeResult<String>;
    async fn start(&self, id: &str) -> RuntimeResult<()>;
    /// Stops with SIGTERM, then SIGKILL after `grace_seconds` (Docker's default when `None`).
    async fn stop(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()>;
    async fn pause(&self, id: &str) -> RuntimeResult<()>;
    async fn unpause(&self, id: &str) -> RuntimeResult<()>;
    /// Applies update-class limits in place.
    async fn update(&self, id: &str, limits: &Limits) -> RuntimeResult<()>;
    /// Removes a container (force: kill it first if running).
    async fn remove(&self, id: &str, force: bool) -> RuntimeResult<()>;
    /// Restarts a container (stop with `grace_seconds`, then start).
    async fn restart(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()>;
    /// Sends a signal (`SIGKILL`, `SIGHUP`, `15`, ...) to a container's main process.
    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()>;
    /// Runs `argv` (no shell) in a running container and collects its output, within
    /// `timeout`.
    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        working_dir: Option<&str>,
        timeout: std::time::Duration,
    ) -> RuntimeResult<ExecOutput>;
    /// One reading of a container's counters (a one-shot stats call).
    async fn stats(&self, id: &str) -> RuntimeResult<ContainerStats>;
    /// One reading of each container's counters, at most `concurrency` engine calls in flight;
    /// each container's reading or why it could not be read, in no particular order. An adapter
    /// that can read many containers more cheaply at once than one by one says so here.
    async fn stats_many(
        &self,
        ids: Vec<String>,
        concurrency: usize,
    ) -> Vec<(String, RuntimeResult<ContainerStats>)> {
        futures::stream::iter(ids)
            .map(|id| async move {
                let reading = self.stats(&id).await;
                (id, reading)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await
    }
    /// The engine's full inspect document of a container, as it gives it.
    async fn inspect_raw(&self, id: &str) -> RuntimeResult<serde_json::Value>;
    /// A container's log. With `follow`, the stream goes on until the container stops or the
    /// consumer drops it.
    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, RuntimeResult<LogChunk>>;
    /// Removes a named volume (fails with `Conflict` while a container uses it).
    async fn remove_volume(&self, name: &str) -> RuntimeResult<()>;
    /// Gives a container a new name.
    async fn rename(&self, id: &str, name: &str) -> RuntimeResult<()>;
    /// Every image in the engine (top-level, not intermediate layers).
    async fn images(&self) -> RuntimeResult<Vec<ImageSummary>>;
    /// Pulls `reference` (which names a tag or a digest), reporting each progress message.
    /// A pull that makes no progress for the call deadline, or exceeds the pull deadline, fails
    /// with `Timeout`.
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()>;
    /// Removes an image by id or reference (force: untag it even if containers use it).
    async fn remove_image(&self, image: &str, force: bool) -> RuntimeResult<()>;
    /// Every container on the engine, whoever owns it, created from the image `image_id`.
    async fn containers_using(&self, image_id: &str) -> RuntimeResult<Vec<ContainerSummary>>;
    /// Container events for this instance's containers, and every image event. The stream ends or errors when the
    /// connection to the engine is lost; callers re-subscribe.
    fn events(&self, instance: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>>;
}
