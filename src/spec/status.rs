//! The server-owned `status` of each kind, as the API shows it and the store keeps it: plain
//! data with its wire names. Computing it is the loop's business (`reconcile/status.rs`); this
//! module only says what it is.

use schemars::JsonSchema;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The stored status of an object of any kind.
#[allow(clippy::large_enum_variant)] // one per record, read and written whole
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ObjectStatus {
    App(AppStatus),
    Image(ImageStatus),
    Node(NodeStatus),
}

impl ObjectStatus {
    pub fn app(&self) -> Option<&AppStatus> {
        match self {
            ObjectStatus::App(s) => Some(s),
            ObjectStatus::Image(_) | ObjectStatus::Node(_) => None,
        }
    }

    pub fn image(&self) -> Option<&ImageStatus> {
        match self {
            ObjectStatus::Image(s) => Some(s),
            ObjectStatus::App(_) | ObjectStatus::Node(_) => None,
        }
    }
}

/// A condition's truth, spelled as Kubernetes does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(ok: bool) -> Self {
        if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    Pending,
    Running,
    Paused,
    Stopped,
    Failed,
    /// A replacement failed and was rolled back: the previous container runs, the current
    /// generation does not.
    Degraded,
    Terminating,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub restart_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Health check result, when the app declares a check (or its image has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthState>,
    /// The first port of the app's port area: container port p is published on
    /// `hostPortRoot + p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_root: Option<u16>,
    /// The last replacement that failed and was rolled back; it is not retried at this
    /// generation (with the same image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBackStatus>,
    /// Swarm mode: the app's service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Swarm mode: tasks wanted, running, and running and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaCounts>,
    /// Swarm mode: Swarm's report on the last rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<ServiceUpdateStatus>,
    /// Swarm mode: the service's current tasks (one per slot, or per node for a global app).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskStatus>,
}

/// The status of a `kind: Node` object: the node it names as the swarm reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// `Ready=True` once the node has the declared availability and labels.
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// As the swarm reports it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// `ready`, `down`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `status.replicas`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    pub desired: u64,
    pub running: u64,
    pub ready: u64,
}

/// `status.updateStatus`: Swarm's words.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`,
    /// `rollback_completed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

impl ServiceUpdateStatus {
    /// Swarm is still replacing tasks (or rolling them back).
    pub fn in_progress(&self) -> bool {
        matches!(self.state.as_str(), "updating" | "rollback_started")
    }

    /// The update failed: rolled back, or paused on failure.
    pub fn failed(&self) -> bool {
        matches!(
            self.state.as_str(),
            "paused" | "rollback_started" | "rollback_paused" | "rollback_completed"
        )
    }
}

/// One task in `status.tasks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<TaskNode>,
    pub state: String,
    pub desired_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// When the task reached its current state (for a running task: when it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// The node a task runs on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskNode {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}

/// `status.rolledBack`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolledBackStatus {
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub message: String,
}

impl AppStatus {
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Ready and observed at `generation`: what `apply --wait` waits for.
    pub fn is_ready_at(&self, generation: i64) -> bool {
        self.observed_generation == Some(generation)
            && self
                .condition("Ready")
                .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

/// Where an Image stands in the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImagePhase {
    Present,
    Pulling,
    Missing,
    Failed,
    Terminating,
}

/// Image status: what the engine has for the reference, who uses it, and the last pull and
/// registry check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    pub phase: ImagePhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The registry digest the engine's image was pulled (or pushed) by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    /// The digest the registry served at the last check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_digest: Option<String>,
    /// Managed containers created from this image (the SRC API's `CreatedContainerCount`).
    pub used_by: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by_apps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a pull stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPhase {
    Pulling,
    Pulled,
    Failed,
}

/// Progress of one layer of a pull.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerProgress {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// The last (or current) pull of an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullState {
    pub state: PullPhase,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layers: BTreeMap<String, LayerProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The result of a container's health check, for containers that have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthState {
    /// Reads Docker's words: `healthy`, `unhealthy`, `starting` (inspect), or the container
    /// list's status text (`Up 5 seconds (healthy)`, `(health: starting)`).
    pub fn parse(s: &str) -> Option<Self> {
        if s.contains("unhealthy") {
            Some(Self::Unhealthy)
        } else if s.contains("healthy") {
            Some(Self::Healthy)
        } else if s.contains("starting") {
            Some(Self::Starting)
        } else {
            None
        }
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        })
    }
}
