//! The Swarm seam: what wharf asks of a swarm manager, in wharf's own types.
//!
//! `ServiceSpec` is the service wharf declares, as plain data; the adapter (`docker/swarm.rs`)
//! maps it to the Engine API and reads the engine's services back into the same type, so the
//! planner compares like with like and a change made behind wharf's back shows as a field that
//! differs. Nothing here decides anything.

use schemars::JsonSchema;
use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::Serialize;

use super::{LogChunk, LogOptions, RegistryCredentials, RuntimeEvent, RuntimeResult};
use crate::spec::validate::Health;
use crate::spec::wire::{FailureAction, Protocol, UpdateOrder};

/// Labels wharf puts on a service besides the common ones (`runtime::labels`).
pub mod labels {
    /// The hash of the declared service spec (its `ServiceSpec` without the replica count).
    pub const HASH_SERVICE: &str = "wharf.hash.service";
}

/// The engine's swarm membership, from its `/info`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmMembership {
    /// `active`, `inactive`, `pending`, `error`, `locked`.
    pub local_node_state: String,
    pub node_id: String,
    pub node_addr: String,
    /// The engine can manage the swarm (it is a manager).
    pub control_available: bool,
    pub cluster_id: Option<String>,
    pub nodes: i64,
    pub managers: i64,
    pub error: Option<String>,
}

impl SwarmMembership {
    pub fn is_manager(&self) -> bool {
        self.local_node_state == "active" && self.control_available
    }
}

/// How a service runs its tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceMode {
    Replicated { replicas: u64 },
    Global,
}

/// A mount of a task's container.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMount {
    pub target: String,
    /// A volume name, or a host path for a bind.
    pub source: String,
    pub bind: bool,
    pub read_only: bool,
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub target: u16,
    pub protocol: Protocol,
    /// `None`: Swarm picks one (30000 and up).
    pub published: Option<u16>,
    /// Published on the nodes running a task only, not through the ingress.
    pub host_mode: bool,
}

/// Swarm's restart policy for tasks.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRestart {
    /// `none`, `on-failure` or `any`.
    pub condition: &'static str,
    pub max_attempts: Option<u64>,
    pub delay_ns: Option<i64>,
}

/// Rolling update (and rollback) settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUpdateConfig {
    pub parallelism: u64,
    pub delay_ns: i64,
    pub order: UpdateOrder,
    pub failure_action: FailureAction,
    pub monitor_ns: i64,
    pub max_failure_ratio: f64,
}

/// The service wharf declares for one app (or reads back from the engine).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Labels of the task containers (so a node's engine tells whose they are).
    pub container_labels: BTreeMap<String, String>,
    pub image: String,
    /// The image's ENTRYPOINT override (`ContainerSpec.Command`).
    pub entrypoint: Option<Vec<String>>,
    /// The image's CMD override (`ContainerSpec.Args`).
    pub command: Option<Vec<String>>,
    /// `K=V`, sorted.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub mounts: Vec<ServiceMount>,
    pub healthcheck: Option<Health>,
    pub stop_grace_ns: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
    pub reserve_memory: Option<i64>,
    pub reserve_nano_cpus: Option<i64>,
    pub restart: ServiceRestart,
    pub constraints: Vec<String>,
    pub spread: Vec<String>,
    pub max_replicas_per_node: Option<u64>,
    pub mode: ServiceMode,
    pub update: ServiceUpdateConfig,
    pub ports: Vec<ServicePort>,
}

impl ServiceSpec {
    /// The names of the fields where `other` differs from `self` (for "changed behind wharf's
    /// back" reasons).
    pub fn differences(&self, other: &ServiceSpec) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |name: &'static str, same: bool| {
            if !same {
                out.push(name);
            }
        };
        check("name", self.name == other.name);
        // The hash label moves with every change; it is not a difference of its own.
        fn without_hash(l: &BTreeMap<String, String>) -> Vec<(&String, &String)> {
            l.iter()
                .filter(|(k, _)| k.as_str() != labels::HASH_SERVICE)
                .collect()
        }
        check(
            "labels",
            without_hash(&self.labels) == without_hash(&other.labels),
        );
        check(
            "container labels",
            self.container_labels == other.container_labels,
        );
        check("image", self.image == other.image);
        check("entrypoint", self.entrypoint == other.entrypoint);
        check("command", self.command == other.command);
        check("env", self.env == other.env);
        check("workingDir", self.working_dir == other.working_dir);
        check("mounts", self.mounts == other.mounts);
        check("healthcheck", self.healthcheck == other.healthcheck);
        check("stopGracePeriod", self.stop_grace_ns == other.stop_grace_ns);
        check(
            "capabilities",
            self.cap_add == other.cap_add && self.cap_drop == other.cap_drop,
        );
        check(
            "limits",
            self.memory == other.memory
                && self.nano_cpus == other.nano_cpus
                && self.pids == other.pids,
        );
        check(
            "reservations",
            self.reserve_memory == other.reserve_memory
                && self.reserve_nano_cpus == other.reserve_nano_cpus,
        );
        check("restartPolicy", self.restart == other.restart);
        check(
            "placement",
            self.constraints == other.constraints
                && self.spread == other.spread
                && self.max_replicas_per_node == other.max_replicas_per_node,
        );
        check("replicas", self.mode == other.mode);
        check("update", self.update == other.update);
        check("ports", self.ports == other.ports);
        out
    }
}

/// Swarm's report on the service's last update (the type the app's status shows).
pub use crate::spec::status::ServiceUpdateStatus as UpdateStatus;

/// One service as the manager reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceState {
    pub id: String,
    /// The object version a write must name.
    pub version: u64,
    pub spec: ServiceSpec,
    /// `TaskTemplate.ForceUpdate`: bumping it replaces every task.
    pub force_update: u64,
    pub update_status: Option<UpdateStatus>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// One task of a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskState {
    pub id: String,
    #[serde(skip)]
    pub service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `new`, `pending`, `assigned`, …, `running`, `complete`, `shutdown`, `failed`,
    /// `rejected`, `orphaned`.
    pub state: String,
    pub desired_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// When the task reached its current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl TaskState {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// The task failed on its own (not shut down by Swarm).
    pub fn is_failure(&self) -> bool {
        matches!(self.state.as_str(), "failed" | "rejected")
    }
}

/// One node of the swarm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub id: String,
    #[serde(skip)]
    pub version: u64,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// `leader`, `reachable`, `unreachable`; none for a worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpus: f64,
    pub memory: i64,
}

/// A node's declared settings (what `kind: Node` manages).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUpdate {
    pub availability: String,
    pub labels: BTreeMap<String, String>,
}

/// The operations wharf performs on a swarm manager.
#[async_trait]
pub trait Swarm: Send + Sync + 'static {
    /// The engine's swarm membership.
    async fn membership(&self) -> RuntimeResult<SwarmMembership>;
    /// Every service carrying `wharf.managed-by` and this instance's label.
    async fn services(&self, instance: &str) -> RuntimeResult<Vec<ServiceState>>;
    /// Every task of the given services.
    async fn tasks(&self, service_ids: &[String]) -> RuntimeResult<Vec<TaskState>>;
    /// Creates a service; returns its id.
    async fn create_service(
        &self,
        spec: &ServiceSpec,
        credentials: Option<&RegistryCredentials>,
    ) -> RuntimeResult<String>;
    /// Replaces a service's spec (at `version`); `force_update` is the new `ForceUpdate`
    /// counter (a higher one replaces every task). Returns the engine's warnings.
    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        force_update: u64,
        credentials: Option<&RegistryCredentials>,
    ) -> RuntimeResult<Vec<String>>;
    async fn remove_service(&self, id: &str) -> RuntimeResult<()>;
    async fn nodes(&self) -> RuntimeResult<Vec<NodeState>>;
    /// The engine's full inspect document of a node (by id or hostname).
    async fn node_raw(&self, id: &str) -> RuntimeResult<serde_json::Value>;
    async fn update_node(&self, id: &str, version: u64, update: &NodeUpdate) -> RuntimeResult<()>;
    /// Service and node events. Ends or errors when the connection is lost; callers
    /// re-subscribe.
    /// A service's log (every task's, through the manager), or one task's with `task`.
    fn service_logs(
        &self,
        service: &str,
        task: Option<&str>,
        options: &LogOptions,
    ) -> BoxStream<'static, RuntimeResult<LogChunk>>;
    fn swarm_events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>>;
}
