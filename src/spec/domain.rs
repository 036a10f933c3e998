//! The domain types a validated App becomes: normalised (env as a sorted map, ports and volumes
//! sorted, quantities in bytes, defaults filled) and split into the two classes DESIGN.md names:
//! `ContainerConfig` (recreate-class: a change replaces the container) and `Limits`
//! (update-class: a change is applied in place). Each class is hashed into its own label.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::wire::{DesiredState, FailureAction, Protocol, UpdateOrder};

pub const DEFAULT_NAMESPACE: &str = "default";

/// The identity of an app: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AppKey {
    pub namespace: String,
    pub name: String,
}

/// `namespace/name`; just `name` for cluster-scoped objects (empty namespace).
impl std::fmt::Display for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A validated App.
#[derive(Clone, Debug, PartialEq)]
pub struct AppSpec {
    pub key: AppKey,
    pub owner: Option<String>,
    pub state: DesiredState,
    pub container: ContainerConfig,
    pub limits: Limits,
    pub port_area: Option<u16>,
    /// How long a replacement must run (and be healthy) before the old container goes.
    pub min_ready: std::time::Duration,
    /// What only swarm mode uses: replicas, placement, reservations, rolling updates.
    pub swarm: SwarmSettings,
}

/// The parts of an App that only a Swarm service has. Not part of the solo hashes, so they
/// never touch a solo container.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SwarmSettings {
    pub replicas: u64,
    pub global: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Spread preferences, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve_memory: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve_nano_cpus: Option<i64>,
    pub update: RollingUpdate,
    /// Swarm's pause between restarts of a task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_delay_ns: Option<i64>,
    /// Container ports published in host mode (the others go through the ingress).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_mode_ports: Vec<(u16, Protocol)>,
    /// The swarm-only fields the spec sets, as field paths (solo mode refuses them).
    #[serde(skip)]
    pub fields_set: Vec<String>,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            global: false,
            constraints: Vec::new(),
            spread: Vec::new(),
            max_replicas_per_node: None,
            reserve_memory: None,
            reserve_nano_cpus: None,
            update: RollingUpdate::default(),
            restart_delay_ns: None,
            host_mode_ports: Vec::new(),
            fields_set: Vec::new(),
        }
    }
}

/// How Swarm rolls a changed service over its tasks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RollingUpdate {
    pub parallelism: u64,
    pub delay_ns: i64,
    pub order: UpdateOrder,
    pub failure_action: FailureAction,
    pub monitor_ns: i64,
    pub max_failure_ratio: f64,
}

impl Default for RollingUpdate {
    fn default() -> Self {
        Self {
            parallelism: 1,
            delay_ns: 0,
            order: UpdateOrder::StopFirst,
            failure_action: FailureAction::Rollback,
            monitor_ns: i64::from(DEFAULT_MIN_READY_SECONDS) * 1_000_000_000,
            max_failure_ratio: 0.0,
        }
    }
}

/// `spec.update.minReadySeconds` when not set.
pub const DEFAULT_MIN_READY_SECONDS: u32 = 5;

/// The largest `spec.update.minReadySeconds`.
pub const MAX_MIN_READY_SECONDS: u32 = 3600;

/// Recreate-class configuration: what Docker fixes at container creation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ContainerConfig {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortBinding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Health>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_seconds: Option<u64>,
    /// Block-device throttles. Docker's container update ignores them, so they are fixed at
    /// creation and a change replaces the container.
    #[serde(skip_serializing_if = "Blkio::is_empty")]
    pub blkio: Blkio,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<Bind>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_pid: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_ipc: bool,
    /// Normalised names (upper case, no `CAP_`), sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
}

/// A bind mount of a host directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Bind {
    pub mount_path: String,
    pub host_path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Position in `spec.volumes` (for error messages).
    #[serde(skip)]
    pub index: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Device {
    pub host_path: String,
    pub container_path: String,
    pub permissions: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<Throttle>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<Throttle>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<Throttle>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<Throttle>,
}

impl Blkio {
    pub fn is_empty(&self) -> bool {
        self.device_read_bps.is_empty()
            && self.device_write_bps.is_empty()
            && self.device_read_iops.is_empty()
            && self.device_write_iops.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PortBinding {
    pub container_port: u16,
    pub protocol: Protocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Volume {
    pub mount_path: String,
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period_ns: Option<i64>,
}

impl Health {
    /// Whether the check runs at all (`["NONE"]` disables the image's own check).
    pub fn is_enabled(&self) -> bool {
        self.test.first().is_some_and(|t| t != "NONE")
    }

    /// The longest Docker may take to call a new container healthy or unhealthy: the start
    /// period, then `retries + 1` probes of `interval + timeout` (Docker's defaults: 30s, 30s,
    /// 3 retries).
    pub fn verdict_within(&self) -> std::time::Duration {
        let ns = |v: Option<i64>, default_s: u64| {
            v.filter(|n| *n > 0)
                .map_or(std::time::Duration::from_secs(default_s), |n| {
                    std::time::Duration::from_nanos(n as u64)
                })
        };
        let probe = ns(self.interval_ns, 30) + ns(self.timeout_ns, 30);
        let probes = self.retries.filter(|r| *r > 0).unwrap_or(3) as u32 + 1;
        ns(self.start_period_ns, 0) + probe * probes
    }
}

/// Update-class configuration: what `POST /containers/{id}/update` changes in place.
/// (Docker's update takes blkio device throttles in its body but does not apply them; they
/// are recreate-class, in `ContainerConfig`.)
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory + swap; always set together with `memory` (equal to it unless declared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    pub restart: Restart,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Throttle {
    pub path: String,
    pub rate: u64,
}

/// Restart policy, normalised. The default is `unless-stopped`: a declared `running` app is
/// kept running, and Docker does not restart it behind a `state: stopped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Restart {
    No,
    Always,
    #[default]
    UnlessStopped,
    OnFailure {
        max_retries: u32,
    },
}

impl Restart {
    pub fn docker_name(&self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::Always => "always",
            Restart::UnlessStopped => "unless-stopped",
            Restart::OnFailure { .. } => "on-failure",
        }
    }
}

/// The two container labels' values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashes {
    pub recreate: String,
    pub update: String,
}

impl AppSpec {
    /// Publishes the ports of an app with a port area on `root + containerPort` (the store
    /// allocates `root`). Part of the recreate-class config, so a moved area recreates.
    pub fn place_in_port_area(&mut self, root: Option<u16>) {
        let Some(root) = root.filter(|_| self.port_area.is_some()) else {
            return;
        };
        for p in &mut self.container.ports {
            if p.host_port.is_none() {
                p.host_port = root.checked_add(p.container_port);
            }
        }
    }

    pub fn hashes(&self) -> Hashes {
        Hashes {
            recreate: hash_of(&self.container),
            update: hash_of(&self.limits),
        }
    }
}

fn hash_of<T: Serialize>(value: &T) -> String {
    // Serialising plain structs, BTreeMaps and Vecs to JSON cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
