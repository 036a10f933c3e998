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
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, DeviceMapping, HealthConfig, HostConfig, Mount,
    MountType, PortBinding, RestartPolicy, RestartPolicyNameEnum, ThrottleDevice,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, KillContainerOptions,
    ListContainersOptions, ListImagesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions, RenameContainerOptions, RestartContainerOptions,
    StatsOptions, StopContainerOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{
    ContainerDetails, ContainerState, ContainerStats, ContainerSummary, CreateSpec, ExecOutput,
    HealthState, ImageSummary, LogChunk, LogOptions, ObservedLimits, PullProgress,
    RegistryCredentials, Runtime, RuntimeError, RuntimeEvent, RuntimeResult, labels,
};
use crate::spec::validate::{Limits, Restart, Throttle};

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

/// At most this much of each of an exec's stdout and stderr is kept.
const EXEC_OUTPUT_LIMIT: usize = 1 << 20;

/// Docker's own default stop grace period.
const DOCKER_DEFAULT_GRACE: u64 = 10;

pub struct DockerRuntime {
    docker: Docker,
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
    pub fn connect_local(deadlines: Deadlines) -> RuntimeResult<Self> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))?
            // bollard's own timeout is a backstop; ours below is the real deadline.
            .with_timeout(deadlines.pull + deadlines.stop_extra + Duration::from_secs(600));
        let remote = std::env::var("DOCKER_HOST").is_ok_and(|h| !h.starts_with("unix://"));
        Ok(Self {
            docker,
            negotiated: AtomicBool::new(false),
            deadlines,
            local_files: !remote && std::path::Path::new("/sys/fs/cgroup").is_dir(),
            pids: std::sync::Mutex::new(HashMap::new()),
        })
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

    /// The engine's `t` for a stop (or restart) with `grace_seconds`, and the call's deadline:
    /// the grace period plus `stop_extra`.
    fn stop_timing(&self, grace_seconds: Option<u64>) -> (Option<i32>, Duration) {
        let grace = grace_seconds.unwrap_or(DOCKER_DEFAULT_GRACE);
        (
            grace_seconds.map(|g| g.min(i32::MAX as u64) as i32),
            Duration::from_secs(grace) + self.deadlines.stop_extra,
        )
    }

    /// A container's counters from the host's cgroup files, when they can be read (else the
    /// engine is asked).
    async fn stats_from_files(&self, id: &str) -> Option<ContainerStats> {
        let cached = self
            .pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied();
        let pid = match cached {
            Some(pid) => pid,
            None => {
                let c = self
                    .deadline(
                        "inspect container",
                        self.deadlines.call,
                        self.docker.inspect_container(id, None),
                    )
                    .await
                    .ok()?;
                c.state.and_then(|s| s.pid).filter(|p| *p > 0)?
            }
        };
        let full_id = id.to_string();
        let read = tokio::task::spawn_blocking(move || {
            super::cgroup::read_stats(
                std::path::Path::new("/proc"),
                std::path::Path::new("/sys/fs/cgroup"),
                &full_id,
                pid,
            )
        })
        .await
        .ok()?;
        let mut pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        match read {
            Ok(stats) => {
                // Containers come and go: past this size the cache starts over (one inspect
                // per container to fill it again).
                if pids.len() >= 10_000 {
                    pids.clear();
                }
                pids.insert(id.to_string(), pid);
                Some(stats)
            }
            Err(e) => {
                // Restarted (a new process), or not visible from here: ask the engine.
                tracing::debug!(container = %id, "cgroup files not readable, asking the engine: {e}");
                pids.remove(id);
                None
            }
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
                self.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(list.into_iter().filter_map(container_summary).collect())
    }

    fn instance_filters(instance: &str) -> HashMap<String, Vec<String>> {
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

fn throttles(list: &[Throttle]) -> Option<Vec<ThrottleDevice>> {
    (!list.is_empty()).then(|| {
        list.iter()
            .map(|t| ThrottleDevice {
                path: Some(t.path.clone()),
                rate: Some(t.rate.min(i64::MAX as u64) as i64),
            })
            .collect()
    })
}

fn restart_policy(restart: Restart) -> RestartPolicy {
    let (name, retries) = match restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            Some(i64::from(max_retries)),
        ),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

fn create_body(spec: &CreateSpec) -> ContainerCreateBody {
    let c = &spec.config;
    let l = &spec.limits;
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        exposed.push(key.clone());
        if let Some(host_port) = p.host_port {
            bindings
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(host_port.to_string()),
                });
        }
    }
    let mounts: Vec<Mount> = c
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.mount_path.clone()),
            source: Some(
                spec.volume_names
                    .get(&v.name)
                    .cloned()
                    .unwrap_or_else(|| v.name.clone()),
            ),
            typ: Some(MountType::VOLUME),
            read_only: Some(v.read_only),
            ..Default::default()
        })
        .chain(c.binds.iter().map(|b| Mount {
            target: Some(b.mount_path.clone()),
            source: Some(b.host_path.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(b.read_only),
            ..Default::default()
        }))
        .collect();
    let host = |wanted: bool| wanted.then(|| "host".to_string());
    let devices: Vec<DeviceMapping> = c
        .devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: Some(d.host_path.clone()),
            path_in_container: Some(d.container_path.clone()),
            cgroup_permissions: Some(d.permissions.clone()),
        })
        .collect();
    let host_config = HostConfig {
        memory: l.memory,
        memory_swap: l.memory_swap,
        nano_cpus: l.nano_cpus,
        pids_limit: l.pids,
        blkio_device_read_bps: throttles(&c.blkio.device_read_bps),
        blkio_device_write_bps: throttles(&c.blkio.device_write_bps),
        blkio_device_read_iops: throttles(&c.blkio.device_read_iops),
        blkio_device_write_iops: throttles(&c.blkio.device_write_iops),
        restart_policy: Some(restart_policy(l.restart)),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        privileged: c.privileged.then_some(true),
        network_mode: host(c.host_network),
        pid_mode: host(c.host_pid),
        ipc_mode: host(c.host_ipc),
        cap_add: (!c.cap_add.is_empty()).then(|| c.cap_add.clone()),
        cap_drop: (!c.cap_drop.is_empty()).then(|| c.cap_drop.clone()),
        devices: (!devices.is_empty()).then_some(devices),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: c.command.clone(),
        entrypoint: c.entrypoint.clone(),
        working_dir: c.working_dir.clone(),
        env: (!c.env.is_empty()).then(|| c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries,
            start_period: h.start_period_ns,
            start_interval: None,
        }),
        stop_timeout: c.stop_grace_seconds.map(|s| s.min(i64::MAX as u64) as i64),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn update_body(l: &Limits) -> ContainerUpdateBody {
    ContainerUpdateBody {
        memory: l.memory,
        memory_swap: l.memory_swap,
        nano_cpus: l.nano_cpus,
        // -1 lifts a pids limit in place; memory and CPU limits cannot be lifted by an update
        // (0 means "unchanged"), which the planner handles by recreating.
        pids_limit: Some(l.pids.unwrap_or(-1)),
        restart_policy: Some(restart_policy(l.restart)),
        ..Default::default()
    }
}

fn container_summary(c: bollard::models::ContainerSummary) -> Option<ContainerSummary> {
    let labels: BTreeMap<String, String> = c.labels.unwrap_or_default().into_iter().collect();
    Some(ContainerSummary {
        id: c.id?,
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        image_id: c.image_id.unwrap_or_default(),
        state: c
            .state
            .map(|s| ContainerState::parse(s.as_ref()))
            .unwrap_or(ContainerState::Unknown),
        labels,
        created: c.created.unwrap_or_default(),
        health: c.status.as_deref().and_then(HealthState::parse),
    })
}

/// wharf's reading from the engine's stats document. Memory use leaves out the page cache
/// (cgroup v1 `total_inactive_file`, v2 `inactive_file`), as `docker stats` does.
fn container_stats(r: bollard::models::ContainerStatsResponse) -> ContainerStats {
    let cpu = r.cpu_stats.unwrap_or_default();
    let memory = r.memory_stats.unwrap_or_default();
    let cache = memory.stats.as_ref().and_then(|s| {
        s.get("total_inactive_file")
            .or_else(|| s.get("inactive_file"))
            .copied()
    });
    let usage = memory.usage.unwrap_or(0);
    let (net_rx, net_tx) = r
        .networks
        .unwrap_or_default()
        .values()
        .fold((0, 0), |(rx, tx), n| {
            (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
        });
    let (blk_read, blk_write) = r
        .blkio_stats
        .and_then(|b| b.io_service_bytes_recursive)
        .unwrap_or_default()
        .iter()
        .fold((0, 0), |(read, write), e| {
            let v = e.value.unwrap_or(0);
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => (read + v, write),
                Some("write") => (read, write + v),
                _ => (read, write),
            }
        });
    ContainerStats {
        read_at_ms: r
            .read
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp_millis())
            .filter(|t| *t > 0)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
        system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
        online_cpus: cpu.online_cpus.unwrap_or(0),
        mem_usage: usage.saturating_sub(cache.unwrap_or(0)),
        mem_limit: memory.limit.unwrap_or(0),
        mem_max: memory.max_usage.unwrap_or(0),
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        pids: r.pids_stats.and_then(|p| p.current).unwrap_or(0),
    }
}

/// Appends `data` to `out`, keeping at most `EXEC_OUTPUT_LIMIT` bytes.
fn append_limited(out: &mut Vec<u8>, data: &[u8]) {
    let room = EXEC_OUTPUT_LIMIT.saturating_sub(out.len());
    out.extend_from_slice(&data[..data.len().min(room)]);
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn host_memory(&self) -> RuntimeResult<i64> {
        self.ping().await?;
        let info = self
            .deadline("info", self.deadlines.call, self.docker.info())
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
                    self.docker.clone().negotiate_version(),
                )
                .await?;
            tracing::info!(api_version = %negotiated.client_version(), "negotiated Docker API version");
            self.negotiated.store(true, Ordering::Release);
        }
        let version = self
            .deadline("version", self.deadlines.call, self.docker.version())
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
                self.docker.inspect_container(id, None),
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
                self.docker.inspect_volume(name),
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
        self.deadline(
            "create volume",
            self.deadlines.call,
            self.docker.create_volume(request),
        )
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
                self.docker
                    .create_container(Some(options), create_body(spec)),
            )
            .await?;
        for warning in response.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(container = %spec.name, "Docker: {warning}");
        }
        Ok(response.id)
    }

    async fn start(&self, id: &str) -> RuntimeResult<()> {
        self.deadline(
            "start container",
            self.deadlines.call,
            self.docker.start_container(id, None),
        )
        .await
    }

    async fn stop(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()> {
        let (t, limit) = self.stop_timing(grace_seconds);
        let options = StopContainerOptions { t, signal: None };
        self.deadline(
            "stop container",
            limit,
            self.docker.stop_container(id, Some(options)),
        )
        .await
    }

    async fn pause(&self, id: &str) -> RuntimeResult<()> {
        self.deadline(
            "pause container",
            self.deadlines.call,
            self.docker.pause_container(id),
        )
        .await
    }

    async fn unpause(&self, id: &str) -> RuntimeResult<()> {
        self.deadline(
            "unpause container",
            self.deadlines.call,
            self.docker.unpause_container(id),
        )
        .await
    }

    async fn update(&self, id: &str, limits: &Limits) -> RuntimeResult<()> {
        self.deadline(
            "update container",
            self.deadlines.call,
            self.docker.update_container(id, update_body(limits)),
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
                self.docker.remove_container(id, Some(options)),
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
            self.docker.restart_container(id, Some(options)),
        )
        .await
    }

    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        let options = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.deadline(
            "kill container",
            self.deadlines.call,
            self.docker.kill_container(id, Some(options)),
        )
        .await
    }

    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        working_dir: Option<&str>,
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        let config = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv.to_vec()),
            working_dir: working_dir.map(str::to_string),
            ..Default::default()
        };
        let exec = self
            .deadline(
                "create exec",
                self.deadlines.call,
                self.docker.create_exec(id, config),
            )
            .await?;
        let run = async {
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            if let StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        LogOutput::StdErr { message } => append_limited(&mut stderr, &message),
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            append_limited(&mut stdout, &message)
                        }
                        LogOutput::StdIn { .. } => {}
                    }
                }
            }
            Ok::<_, BollardError>((stdout, stderr))
        };
        let (stdout, stderr) = self.deadline("run exec", timeout, run).await?;
        let inspected = self
            .deadline(
                "inspect exec",
                self.deadlines.call,
                self.docker.inspect_exec(&exec.id),
            )
            .await?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn stats(&self, id: &str) -> RuntimeResult<ContainerStats> {
        if self.local_files
            && let Some(stats) = self.stats_from_files(id).await
        {
            return Ok(stats);
        }
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker.stats(id, Some(options));
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

    async fn inspect_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        let c = self
            .deadline(
                "inspect container",
                self.deadlines.call,
                self.docker.inspect_container(id, None),
            )
            .await?;
        serde_json::to_value(c).map_err(|e| RuntimeError::Engine {
            op: "inspect container",
            status: 0,
            message: e.to_string(),
        })
    }

    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        let query = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            since: options
                .since
                .map_or(0, |s| s.clamp(0, i64::from(i32::MAX)) as i32),
            until: 0,
            timestamps: options.timestamps,
            tail: options
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
        };
        self.docker
            .logs(id, Some(query))
            .map(|chunk| {
                let chunk = chunk.map_err(|e| map_error("container logs", e))?;
                Ok(match chunk {
                    LogOutput::StdErr { message } => LogChunk {
                        stderr: true,
                        data: message,
                    },
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => LogChunk {
                        stderr: false,
                        data: message,
                    },
                })
            })
            .boxed()
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        match self
            .deadline(
                "remove volume",
                self.deadlines.call,
                self.docker.remove_volume(name, None::<RemoveVolumeOptions>),
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
        self.deadline(
            "rename container",
            self.deadlines.call,
            self.docker.rename_container(id, options),
        )
        .await
    }

    async fn images(&self) -> RuntimeResult<Vec<ImageSummary>> {
        let list = self
            .deadline(
                "list images",
                self.deadlines.call,
                self.docker.list_images(None::<ListImagesOptions>),
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

    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()> {
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let credentials = credentials.map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let idle = self.deadlines.call;
        let whole = async {
            // Each message must arrive within the call deadline: a stalled pull fails instead of
            // holding its app forever.
            loop {
                match tokio::time::timeout(idle, stream.next()).await {
                    Err(_) => {
                        return Err(RuntimeError::Timeout {
                            op: "pull image (no progress)",
                            seconds: idle.as_secs(),
                        });
                    }
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(BollardError::DockerStreamError { error }))) => {
                        return Err(RuntimeError::Pull {
                            reference: reference.to_string(),
                            message: error,
                        });
                    }
                    Ok(Some(Err(BollardError::DockerResponseServerError { message, .. }))) => {
                        return Err(RuntimeError::Pull {
                            reference: reference.to_string(),
                            message,
                        });
                    }
                    Ok(Some(Err(e))) => return Err(map_error("pull image", e)),
                    Ok(Some(Ok(info))) => {
                        let detail = info.progress_detail.unwrap_or_default();
                        progress(PullProgress {
                            layer: info.id,
                            status: info.status.unwrap_or_default(),
                            current: detail.current,
                            total: detail.total,
                        });
                    }
                }
            }
        };
        match tokio::time::timeout(self.deadlines.pull, whole).await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Timeout {
                op: "pull image",
                seconds: self.deadlines.pull.as_secs(),
            }),
        }
    }

    async fn remove_image(&self, image: &str, force: bool) -> RuntimeResult<()> {
        let options = RemoveImageOptions {
            force,
            noprune: false,
            platforms: None,
        };
        self.deadline(
            "remove image",
            self.deadlines.call,
            self.docker.remove_image(image, Some(options), None),
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

    fn events(&self, instance: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let mut filters = Self::instance_filters(instance);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let containers = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        // Images carry no wharf labels: their events come on a stream of their own.
        let images = EventsOptions {
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["image".to_string()],
            )])),
            ..Default::default()
        };
        let convert = |image: bool| {
            move |event: Result<bollard::models::EventMessage, BollardError>| {
                let event = event.map_err(|e| map_error("events", e))?;
                let time_ms = match (event.time_nano, event.time) {
                    (Some(ns), _) if ns > 0 => ns / 1_000_000,
                    (_, Some(s)) => s.saturating_mul(1000),
                    _ => chrono::Utc::now().timestamp_millis(),
                };
                let actor = event.actor.unwrap_or_default();
                Ok(RuntimeEvent {
                    id: actor.id.unwrap_or_default(),
                    action: event.action.unwrap_or_default(),
                    image,
                    time_ms,
                    attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
                })
            }
        };
        futures::stream::select(
            self.docker.events(Some(containers)).map(convert(false)),
            self.docker.events(Some(images)).map(convert(true)),
        )
        .boxed()
    }
}
