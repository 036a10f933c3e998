//! The Docker Engine adapter: the only module that knows bollard.
//!
//! It maps wharf's types to the Engine API and back, negotiates the API version (Debian's engine
//! speaks 1.41), and puts a deadline on every call so a wedged engine call becomes a `Timeout`
//! error for that one app instead of a stalled loop. It never shells out and never decides.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, ListImagesOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions, RenameContainerOptions,
    RestartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{
    ContainerDetails, ContainerState, ContainerStats, ContainerSummary, CreateSpec, ExecOutput,
    HealthState, ImageSummary, LogChunk, LogOptions, ObservedLimits, PullProgress,
    RegistryCredentials, Runtime, RuntimeError, RuntimeEvent, RuntimeResult, labels,
};
use crate::spec::validate::Limits;

mod convert;
mod streams;
mod swarm;

use convert::{append_limited, container_stats, container_summary, create_body, update_body};

/// Deadlines for engine calls.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Any call but stop and remove.
    pub call: Duration,
    /// Added to the stop grace period for stop and forced remove.
    pub stop_extra: Duration,
    /// A whole pull (a pull is also cut when no progress arrives for `call`).
    pub pull: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            call: crate::defaults::DOCKER_TIMEOUT,
            stop_extra: Duration::from_secs(20),
            pull: crate::defaults::PULL_TIMEOUT,
        }
    }
}

/// Why there is no client for the local engine, and how to start one.
fn no_engine_hint(e: &BollardError) -> String {
    format!(
        "no Docker Engine here ({e}): start one (`sudo systemctl start docker`, or `sudo dockerd &` once an engine is installed, e.g. Debian's docker.io) or point DOCKER_HOST at one"
    )
}

/// Docker's own default stop grace period.
const DOCKER_DEFAULT_GRACE: u64 = 10;

pub struct DockerRuntime {
    /// The engine's client, made at the first call that finds the engine's socket: wharf starts
    /// (and serves its API, `/readyz` answering 503) before an engine is there.
    client: std::sync::OnceLock<Docker>,
    negotiated: AtomicBool,
    deadlines: Deadlines,
    /// The engine runs on this host: stats come from its cgroup files (see `cgroup.rs`).
    local_files: bool,
    /// Main process of each container whose files were read (a restart changes it).
    pids: std::sync::Mutex<HashMap<String, i64>>,
}

impl DockerRuntime {
    /// Connects lazily to the local engine (`DOCKER_HOST` or the default socket); the first
    /// `ping` negotiates the API version.
    /// An engine that is not there yet (no socket) is not an error here: each call answers
    /// `Unavailable`, saying how to start one, until it is there.
    pub fn connect_local(deadlines: Deadlines) -> Self {
        let remote = std::env::var("DOCKER_HOST").is_ok_and(|h| !h.starts_with("unix://"));
        let local_files = !remote && std::path::Path::new("/sys/fs/cgroup").is_dir();
        Self::new(std::sync::OnceLock::new(), deadlines, local_files)
    }

    /// The engine's client: made once, when the local engine's socket is first found.
    fn docker(&self) -> RuntimeResult<&Docker> {
        if let Some(docker) = self.client.get() {
            return Ok(docker);
        }
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::Unavailable(no_engine_hint(&e)))?
            .with_timeout(Self::backstop(&self.deadlines));
        Ok(self.client.get_or_init(|| docker))
    }

    /// bollard's own timeout: a backstop; `deadline` below is the real one.
    fn backstop(deadlines: &Deadlines) -> Duration {
        deadlines.pull + deadlines.stop_extra + Duration::from_secs(600)
    }

    /// A stream from the engine's client, or the one error that there is no engine yet.
    fn stream<T: Send + 'static>(
        &self,
        make: impl FnOnce(&Docker) -> BoxStream<'static, RuntimeResult<T>>,
    ) -> BoxStream<'static, RuntimeResult<T>> {
        match self.docker() {
            Ok(docker) => make(docker),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn new(client: std::sync::OnceLock<Docker>, deadlines: Deadlines, local_files: bool) -> Self {
        Self {
            client,
            negotiated: AtomicBool::new(false),
            deadlines,
            local_files,
            pids: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn with_client(docker: Docker, deadlines: Deadlines, local_files: bool) -> Self {
        Self::new(std::sync::OnceLock::from(docker), deadlines, local_files)
    }

    /// The engine host's name (`docker info`'s Name).
    pub async fn engine_name(&self) -> RuntimeResult<String> {
        self.ping().await?;
        let info = self
            .deadline("info", self.deadlines.call, self.docker()?.info())
            .await?;
        Ok(info.name.unwrap_or_default())
    }

    /// Connects lazily to the engine answering on the unix socket at `path` (another engine
    /// than the local default: a swarm node's, or a test's proxy of one).
    pub fn connect_socket(path: &str, deadlines: Deadlines) -> RuntimeResult<Self> {
        let docker = Docker::connect_with_unix(
            path,
            Self::backstop(&deadlines).as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        // Its containers' cgroup files may be this host's, but not under the names the default
        // engine uses: ask the engine.
        Ok(Self::with_client(docker, deadlines, false))
    }

    /// Always asks the engine for stats, even when its host's cgroup files are readable (for
    /// measuring one against the other).
    pub fn without_cgroup_files(mut self) -> Self {
        self.local_files = false;
        self
    }

    async fn deadline<T>(
        &self,
        op: &'static str,
        limit: Duration,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> RuntimeResult<T> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(|e| map_error(op, e)),
            Err(_) => Err(RuntimeError::Timeout {
                op,
                seconds: limit.as_secs(),
            }),
        }
    }

    /// `deadline` with the deadline of an ordinary call.
    pub(super) async fn call<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> RuntimeResult<T> {
        self.deadline(op, self.deadlines.call, call).await
    }

    /// The engine's `t` for a stop (or restart) with `grace_seconds`, and the call's deadline:
    /// the grace period plus `stop_extra`.
    fn stop_timing(&self, grace_seconds: Option<u64>) -> (Option<i32>, Duration) {
        let grace = grace_seconds.unwrap_or(DOCKER_DEFAULT_GRACE);
        (
            grace_seconds.map(|g| g.min(i32::MAX as u64) as i32),
            Duration::from_secs(grace) + self.deadlines.stop_extra,
        )
    }

    /// The counters of the containers `ids` from the host's cgroup files: the host's own
    /// figures once, then each container's files, all in one blocking task (a container's
    /// process id comes from one inspect, then from a cache). Returns the readings and the ids
    /// that could not be read from files (the engine is asked for those).
    async fn stats_from_files(
        &self,
        ids: Vec<String>,
        concurrency: usize,
    ) -> (Vec<(String, ContainerStats)>, Vec<String>) {
        let (known, unknown): (Vec<_>, Vec<_>) = {
            let pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
            ids.into_iter()
                .map(|id| {
                    let pid = pids.get(&id).copied();
                    (id, pid)
                })
                .partition(|(_, pid)| pid.is_some())
        };
        let mut unread = Vec::new();
        let mut targets: Vec<(String, i64)> = known
            .into_iter()
            .filter_map(|(id, pid)| Some((id, pid?)))
            .collect();
        let inspected: Vec<(String, Option<i64>)> = futures::stream::iter(unknown)
            .map(|(id, _)| async move {
                let pid = match self.docker() {
                    Ok(docker) => self
                        .deadline(
                            "inspect container",
                            self.deadlines.call,
                            docker.inspect_container(&id, None),
                        )
                        .await
                        .ok()
                        .and_then(|c| c.state?.pid)
                        .filter(|p| *p > 0),
                    Err(_) => None,
                };
                (id, pid)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (id, pid) in inspected {
            match pid {
                Some(pid) => targets.push((id, pid)),
                None => unread.push(id),
            }
        }
        if targets.is_empty() {
            return (Vec::new(), unread);
        }
        // Kept for the engine should the blocking task fail.
        let target_ids: Vec<String> = targets.iter().map(|(id, _)| id.clone()).collect();
        let read = tokio::task::spawn_blocking(move || {
            let proc = std::path::Path::new("/proc");
            let root = std::path::Path::new("/sys/fs/cgroup");
            let host = super::cgroup::Host::read(proc);
            targets
                .into_iter()
                .map(|(id, pid)| {
                    let reading = match &host {
                        Ok(host) => super::cgroup::read_stats(proc, root, host, &id, pid),
                        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                    };
                    (id, pid, reading)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!("cgroup reading task failed, asking the engine: {e}");
                unread.extend(target_ids);
                return (Vec::new(), unread);
            }
        };
        let mut pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = Vec::with_capacity(read.len());
        for (id, pid, reading) in read {
            match reading {
                Ok(reading) => {
                    // Containers come and go: past this size the cache starts over (one
                    // inspect per container to fill it again).
                    if pids.len() >= 10_000 {
                        pids.clear();
                    }
                    pids.insert(id.clone(), pid);
                    stats.push((id, reading));
                }
                Err(e) => {
                    // Restarted (a new process), or not visible from here: ask the engine.
                    tracing::debug!(container = %id, "cgroup files not readable, asking the engine: {e}");
                    pids.remove(&id);
                    unread.push(id);
                }
            }
        }
        (stats, unread)
    }

    /// One reading of a container's counters with the engine's one-shot stats call.
    async fn engine_stats(&self, id: &str) -> RuntimeResult<ContainerStats> {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker()?.stats(id, Some(options));
        let first = async {
            match stream.next().await {
                Some(reading) => reading.map(Some),
                None => Ok(None),
            }
        };
        match self
            .deadline("container stats", self.deadlines.call, first)
            .await?
        {
            Some(reading) => Ok(container_stats(reading)),
            None => Err(RuntimeError::Engine {
                op: "container stats",
                status: 0,
                message: "the engine sent no stats".into(),
            }),
        }
    }

    /// Every container (any state) the filters select.
    async fn list_containers(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> RuntimeResult<Vec<ContainerSummary>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .deadline(
                "list containers",
                self.deadlines.call,
                self.docker()?.list_containers(Some(options)),
            )
            .await?;
        Ok(list.into_iter().filter_map(container_summary).collect())
    }

    pub(super) fn instance_filters(instance: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE),
                format!("{}={instance}", labels::INSTANCE),
            ],
        )])
    }
}

fn map_error(op: &'static str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => RuntimeError::NotFound(message),
            409 => RuntimeError::Conflict(message),
            status => RuntimeError::Engine {
                op,
                status,
                message,
            },
        },
        BollardError::RequestTimeoutError => RuntimeError::Timeout { op, seconds: 0 },
        BollardError::JsonDataError { .. }
        | BollardError::JsonSerdeError { .. }
        | BollardError::APIVersionParseError { .. } => RuntimeError::Engine {
            op,
            status: 0,
            message: e.to_string(),
        },
        other => RuntimeError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn host_memory(&self) -> RuntimeResult<i64> {
        self.ping().await?;
        let info = self
            .deadline("info", self.deadlines.call, self.docker()?.info())
            .await?;
        info.mem_total
            .filter(|m| *m > 0)
            .ok_or_else(|| RuntimeError::Unavailable("the engine reports no MemTotal".into()))
    }

    async fn ping(&self) -> RuntimeResult<String> {
        if !self.negotiated.load(Ordering::Acquire) {
            let negotiated = self
                .deadline(
                    "negotiate version",
                    self.deadlines.call,
                    self.docker()?.clone().negotiate_version(),
                )
                .await?;
            tracing::info!(api_version = %negotiated.client_version(), "negotiated Docker API version");
            self.negotiated.store(true, Ordering::Release);
        }
        let version = self
            .deadline("version", self.deadlines.call, self.docker()?.version())
            .await
            .inspect_err(|_| self.negotiated.store(false, Ordering::Release))?;
        Ok(version.version.unwrap_or_default())
    }

    async fn list(&self, instance: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.list_containers(Self::instance_filters(instance)).await
    }

    async fn inspect(&self, id: &str) -> RuntimeResult<ContainerDetails> {
        let c = self
            .deadline(
                "inspect container",
                self.deadlines.call,
                self.docker()?.inspect_container(id, None),
            )
            .await?;
        let state = c.state.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let health = state.health.unwrap_or_default();
        let health_output = health
            .log
            .as_ref()
            .and_then(|log| log.last())
            .filter(|r| r.exit_code.is_some_and(|code| code != 0))
            .and_then(|r| r.output.clone())
            .map(|o| o.trim().to_string());
        Ok(ContainerDetails {
            state: state.status.map(|s| ContainerState::parse(s.as_ref())),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|e| !e.is_empty()),
            started_at: state.started_at,
            finished_at: state.finished_at,
            restart_count: c.restart_count.unwrap_or_default(),
            limits: ObservedLimits {
                memory: host.memory.unwrap_or_default(),
                memory_swap: host.memory_swap.unwrap_or_default(),
                nano_cpus: host.nano_cpus.unwrap_or_default(),
                pids: host.pids_limit.unwrap_or_default(),
                restart: host
                    .restart_policy
                    .and_then(|r| r.name)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            },
            health: health.status.and_then(|s| HealthState::parse(s.as_ref())),
            health_output,
        })
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> RuntimeResult<()> {
        match self
            .deadline(
                "inspect volume",
                self.deadlines.call,
                self.docker()?.inspect_volume(name),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ..Default::default()
        };
        self.call("create volume", self.docker()?.create_volume(request))
            .await
            .map(|_| ())
    }

    async fn create(&self, spec: &CreateSpec) -> RuntimeResult<String> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let response = self
            .deadline(
                "create container",
                self.deadlines.call,
                self.docker()?
                    .create_container(Some(options), create_body(spec)),
            )
            .await?;
        for warning in response.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(container = %spec.name, "Docker: {warning}");
        }
        Ok(response.id)
    }

    async fn start(&self, id: &str) -> RuntimeResult<()> {
        self.call("start container", self.docker()?.start_container(id, None))
            .await
    }

    async fn stop(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()> {
        let (t, limit) = self.stop_timing(grace_seconds);
        let options = StopContainerOptions { t, signal: None };
        self.deadline(
            "stop container",
            limit,
            self.docker()?.stop_container(id, Some(options)),
        )
        .await
    }

    async fn pause(&self, id: &str) -> RuntimeResult<()> {
        self.call("pause container", self.docker()?.pause_container(id))
            .await
    }

    async fn unpause(&self, id: &str) -> RuntimeResult<()> {
        self.call("unpause container", self.docker()?.unpause_container(id))
            .await
    }

    async fn update(&self, id: &str, limits: &Limits) -> RuntimeResult<()> {
        self.call(
            "update container",
            self.docker()?.update_container(id, update_body(limits)),
        )
        .await
    }

    async fn remove(&self, id: &str, force: bool) -> RuntimeResult<()> {
        let options = RemoveContainerOptions {
            force,
            v: false,
            link: false,
        };
        let limit = self.deadlines.call + self.deadlines.stop_extra;
        match self
            .deadline(
                "remove container",
                limit,
                self.docker()?.remove_container(id, Some(options)),
            )
            .await
        {
            Err(RuntimeError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn restart(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()> {
        let (t, limit) = self.stop_timing(grace_seconds);
        let options = RestartContainerOptions { t, signal: None };
        self.deadline(
            "restart container",
            limit,
            self.docker()?.restart_container(id, Some(options)),
        )
        .await
    }

    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        let options = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.call(
            "kill container",
            self.docker()?.kill_container(id, Some(options)),
        )
        .await
    }

    async fn stats(&self, id: &str) -> RuntimeResult<ContainerStats> {
        if self.local_files {
            let (mut read, _) = self.stats_from_files(vec![id.to_string()], 1).await;
            if let Some((_, stats)) = read.pop() {
                return Ok(stats);
            }
        }
        self.engine_stats(id).await
    }

    /// With a local engine, the cgroup files of all the containers in one go; the engine's
    /// one-shot call for the ones that cannot be read that way.
    async fn stats_many(
        &self,
        ids: Vec<String>,
        concurrency: usize,
    ) -> Vec<(String, RuntimeResult<ContainerStats>)> {
        let (read, rest) = if self.local_files {
            self.stats_from_files(ids, concurrency).await
        } else {
            (Vec::new(), ids)
        };
        let mut readings: Vec<_> = read.into_iter().map(|(id, s)| (id, Ok(s))).collect();
        readings.extend(
            futures::stream::iter(rest)
                .map(|id| async move {
                    let reading = self.engine_stats(&id).await;
                    (id, reading)
                })
                .buffer_unordered(concurrency.max(1))
                .collect::<Vec<_>>()
                .await,
        );
        readings
    }

    async fn inspect_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        let c = self
            .deadline(
                "inspect container",
                self.deadlines.call,
                self.docker()?.inspect_container(id, None),
            )
            .await?;
        serde_json::to_value(c).map_err(|e| RuntimeError::Engine {
            op: "inspect container",
            status: 0,
            message: e.to_string(),
        })
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        match self
            .deadline(
                "remove volume",
                self.deadlines.call,
                self.docker()?
                    .remove_volume(name, None::<RemoveVolumeOptions>),
            )
            .await
        {
            Err(RuntimeError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn rename(&self, id: &str, name: &str) -> RuntimeResult<()> {
        let options = RenameContainerOptions {
            name: name.to_string(),
        };
        self.call(
            "rename container",
            self.docker()?.rename_container(id, options),
        )
        .await
    }

    async fn images(&self) -> RuntimeResult<Vec<ImageSummary>> {
        let list = self
            .deadline(
                "list images",
                self.deadlines.call,
                self.docker()?.list_images(None::<ListImagesOptions>),
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                repo_tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                repo_digests: i
                    .repo_digests
                    .into_iter()
                    .filter(|d| d != "<none>@<none>")
                    .collect(),
                size: i.size,
                created: i.created,
            })
            .collect())
    }

    async fn remove_image(&self, image: &str, force: bool) -> RuntimeResult<()> {
        let options = RemoveImageOptions {
            force,
            noprune: false,
            platforms: None,
        };
        self.call(
            "remove image",
            self.docker()?.remove_image(image, Some(options), None),
        )
        .await
        .map(|_| ())
    }

    async fn containers_using(&self, image_id: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        let filters = HashMap::from([("ancestor".to_string(), vec![image_id.to_string()])]);
        let list = self.list_containers(filters).await?;
        // `ancestor` also matches images built on top of this one; keep direct users.
        Ok(list
            .into_iter()
            .filter(|c| c.image_id == image_id)
            .collect())
    }

    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        working_dir: Option<&str>,
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        self.exec_in(id, argv, working_dir, timeout).await
    }

    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        self.log_stream(id, options)
    }

    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()> {
        self.pull_image(reference, credentials, progress).await
    }

    fn events(&self, instance: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        self.event_stream(instance)
    }
}
