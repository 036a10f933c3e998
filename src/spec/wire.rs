//! Wire types: the documents users write, exactly as they are read and written (serde +
//! schemars, unknown fields refused).
//!
//! These types accept every spelling DESIGN.md allows (env as a map or a list, ports as objects
//! or `"8080:80/tcp"` strings, quantities with units) and keep the user's text so a stored spec
//! reads back as it was written. Cross-field rules and normalisation live in `validate.rs`;
//! nothing here talks to Docker or the store.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, de};

use super::quantity::{ByteQuantity, DurationText};

pub const API_VERSION: &str = "wharf/v1";

/// `apiVersion` of every wharf document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "wharf/v1")]
    V1,
}

/// `kind: App`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AppKind {
    App,
}

/// Object metadata. `name` is required; the rest is optional on input. Server-set fields are
/// accepted (so the output of `GET` can be applied again) and, except `resourceVersion`, which
/// is a write precondition, ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-set: unique id of this object (a new one after delete and re-create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Server-set: bumped on every spec change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Bumped on every write. When given on a write, the write fails with 409 if the stored
    /// object has moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Server-set: who manages the object: `api`, or `file:PATH` (relative to the watched
    /// directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Server-set: the git commit a file-owned object was last applied from (`wharf serve
    /// --git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
}

/// An App: one container wharf keeps matching its spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "App")]
pub struct AppDocument {
    pub api_version: ApiVersion,
    pub kind: AppKind,
    pub metadata: ObjectMeta,
    pub spec: AppSpec,
    /// Server-owned; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The desired state of one app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    /// Any image reference (`busybox:1.36`, `registry:5000/team/app@sha256:…`).
    pub image: String,
    /// The user the app belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `running` (default), `stopped` or `paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DesiredState>,
    /// Overrides the image's CMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Overrides the image's ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_area: Option<PortArea>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// How long a stop waits after SIGTERM before SIGKILL (Docker's default is 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<DurationText>,
    /// How a replacement container is rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateStrategy>,
    /// Run the container privileged (every capability and device). Refused unless the
    /// namespace's policy allows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Use the host's network stack (no port publishing). Refused unless allowed by policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// Share the host's PID namespace. Refused unless allowed by policy.
    #[serde(
        default,
        rename = "hostPID",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub host_pid: bool,
    /// Share the host's IPC namespace. Refused unless allowed by policy.
    #[serde(
        default,
        rename = "hostIPC",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub host_ipc: bool,
    /// Linux capabilities to add to or drop from Docker's default set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Host devices to expose in the container. Each must be allowed by policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// Swarm mode: how many tasks run (default 1). Solo mode runs one container and accepts
    /// only 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// Swarm mode: `replicated` (default: `replicas` tasks) or `global` (one task on every
    /// eligible node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServiceMode>,
    /// Swarm mode: where tasks may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// How a swarm service runs its tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    #[default]
    Replicated,
    Global,
}

/// Swarm placement of an app's tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Swarm constraints, e.g. `node.role==worker`, `node.labels.disk==ssd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Spread tasks evenly over the values of a node attribute, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    /// At most this many tasks of the app on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
}

/// `{spread: node.labels.zone}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementPreference {
    pub spread: String,
}

/// Capabilities to add or drop, e.g. `NET_ADMIN` (a `CAP_` prefix is accepted); `ALL` in `drop`
/// drops every capability.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// A host device made available in the container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceMapping {
    /// e.g. `/dev/fuse`.
    pub host_path: String,
    /// Default: the host path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// cgroup permissions, any of `r`, `w`, `m` (default `rwm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

/// How a replacement container is rolled out. The old container is stopped and kept until the
/// new one has been running (and healthy, with a health check) for `minReadySeconds`; if the new
/// one fails first, the old one is restored and the app is marked Degraded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    /// Seconds the new container must stay running (and healthy) before the old one is removed.
    /// Default 5; at most 3600. In swarm mode, Swarm's update monitor period (unless `monitor`
    /// is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
    /// Swarm mode: tasks replaced at once (default 1; 0 = all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    /// Swarm mode: pause between batches of tasks (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationText>,
    /// Swarm mode: `stop-first` (default) or `start-first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UpdateOrder>,
    /// Swarm mode: what a failed update does: `rollback` (default), `pause` or `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    /// Swarm mode: how long a new task is watched for failure (default: `minReadySeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<DurationText>,
    /// Swarm mode: the share of tasks that may fail during an update before `failureAction`
    /// (0 to 1, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
}

/// Whether a swarm update starts the new task before stopping the old one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

/// What Swarm does when an update fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    #[default]
    Rollback,
    Pause,
    Continue,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    #[default]
    Running,
    Stopped,
    Paused,
}

impl fmt::Display for DesiredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
            DesiredState::Paused => "paused",
        })
    }
}

/// Environment: a map `{TZ: UTC}` or a list `["TZ=UTC"]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Env {
    Map(BTreeMap<String, EnvValue>),
    List(Vec<String>),
}

/// An environment value; numbers and booleans are taken as their text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Env;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of NAME: value, or a list of \"NAME=value\" strings")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Env, A::Error> {
                Deserialize::deserialize(de::value::MapAccessDeserializer::new(map)).map(Env::Map)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Env, A::Error> {
                Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Env::List)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Env {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Env".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Environment: a map of NAME: value, or a list of \"NAME=value\" strings.",
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}}
            ]
        })
    }
}

/// A published port: an object, or a string `"8080:80/tcp"`, `"127.0.0.1:8080:80"`, `"80"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Port {
    Short(String),
    Long(PortObject),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortObject {
    pub container_port: u16,
    /// Host port to publish on; omitted means the container port is exposed but not published
    /// (or published inside the port area, when one is declared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Host address to bind (default: all addresses, as Docker does).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Swarm mode: `ingress` (default: the port answers on every node) or `host` (only on the
    /// nodes running a task, on their own address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PortMode>,
}

/// How a swarm service publishes a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortMode {
    #[default]
    Ingress,
    Host,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port object {containerPort, hostPort, protocol} or a string like \"8080:80/tcp\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                parse_short_port(v).map_err(E::custom)?;
                Ok(Port::Short(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Port, A::Error> {
                Deserialize::deserialize(de::value::MapAccessDeserializer::new(map)).map(Port::Long)
            }
        }
        d.deserialize_any(V)
    }
}

impl Port {
    /// The object form of this port.
    pub fn to_object(&self) -> Result<PortObject, String> {
        match self {
            Port::Short(s) => parse_short_port(s),
            Port::Long(p) => Ok(p.clone()),
        }
    }
}

/// Parses `[hostIP:][hostPort:]containerPort[/protocol]`.
pub fn parse_short_port(text: &str) -> Result<PortObject, String> {
    let bad = |why: &str| format!("invalid port {text:?}: {why} (write e.g. \"8080:80/tcp\")");
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, p)) => {
            let protocol = match p {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return Err(bad("protocol must be tcp, udp or sctp")),
            };
            (rest, Some(protocol))
        }
        None => (text, None),
    };
    let number = |s: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("{s:?} is not a port number (1-65535)")))
    };
    let parts: Vec<&str> = match rest.rsplit_once(':') {
        None => vec![rest],
        Some((head, container)) => match head.rsplit_once(':') {
            None => vec![head, container],
            Some((ip, host)) => vec![ip, host, container],
        },
    };
    let (host_ip, host_port, container_port) = match parts.as_slice() {
        [c] => (None, None, number(c)?),
        [h, c] => (None, Some(number(h)?), number(c)?),
        [ip, h, c] => (
            Some(ip.trim_matches(|c| c == '[' || c == ']').to_string()),
            Some(number(h)?),
            number(c)?,
        ),
        _ => return Err(bad("too many parts")),
    };
    Ok(PortObject {
        container_port,
        host_port,
        protocol,
        host_ip,
        mode: None,
    })
}

impl JsonSchema for Port {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let object = g.subschema_for::<PortObject>();
        schemars::json_schema!({
            "description": "A port: an object, or a string \"[hostIP:][hostPort:]containerPort[/tcp|udp|sctp]\".",
            "anyOf": [
                object,
                {"type": "string", "pattern": "^(\\[?[0-9a-fA-F.:]+\\]?:)?([0-9]+:)?[0-9]+(/(tcp|udp|sctp))?$"},
                {"type": "integer", "minimum": 1, "maximum": 65535}
            ]
        })
    }
}

/// A block of host ports reserved for the app; container port p is published on
/// `status.hostPortRoot + p`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortArea {
    pub size: u16,
}

/// Resource limits. Memory, swap, CPUs and pids change in place on a running container;
/// block-device throttles are fixed at creation (Docker cannot update them), so changing them
/// replaces the container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteQuantity>,
    /// Memory plus swap (Docker's `--memory-swap`); must be at least `memory`. Default: equal to
    /// `memory` (no swap), and it moves with `memory` on every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<ByteQuantity>,
    /// CPUs (e.g. 1.5). Exclusive with `cpuPercent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Percent of one core (e.g. 50 = half a core). Exclusive with `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio: Option<Blkio>,
    /// Swarm mode: what the scheduler sets aside for each task (a node without it free gets
    /// no task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Reservations>,
}

/// Resources reserved for each task in swarm mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reservations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteQuantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
}

/// Block-device throttling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<ThrottleBytes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<ThrottleBytes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<ThrottleOps>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<ThrottleOps>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottleBytes {
    /// Block device path on the host, e.g. /dev/sda.
    pub path: String,
    /// Bytes per second.
    pub rate: ByteQuantity,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThrottleOps {
    pub path: String,
    /// Operations per second.
    pub rate: u64,
}

/// A mount: a named volume (`name`; created, labelled as wharf's, if missing) or a bind mount of
/// a host directory (`hostPath`, which the namespace's policy must allow). Exactly one of the two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// What happens when the container exits on its own. Applied to Docker and to wharf's repairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    pub name: RestartPolicyName,
    /// With `on-failure`: how many restarts before giving up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Swarm mode: how long Swarm waits between restarts of a task (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationText>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicyName {
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

/// A container health check (Docker's HEALTHCHECK).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", "curl", "-f", "localhost"]`, `["CMD-SHELL", "curl -f localhost"]` or `["NONE"]`.
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<DurationText>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports_parse_like_docker_run() {
        let p = parse_short_port("8080:80/udp").unwrap();
        assert_eq!((p.host_port, p.container_port), (Some(8080), 80));
        assert_eq!(p.protocol, Some(Protocol::Udp));
        let p = parse_short_port("127.0.0.1:8080:80").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        let p = parse_short_port("80").unwrap();
        assert_eq!((p.host_port, p.container_port), (None, 80));
        assert!(parse_short_port("80/ftp").is_err());
        assert!(parse_short_port("0").is_err());
        assert!(parse_short_port("a:b").is_err());
    }
}
