//! What a node agent and the server say to each other over the agent's connection
//! (`/api/v1/agents/connect`, a WebSocket the agent opens): JSON text messages tagged by
//! `type`. The agent speaks first (`hello`), the server answers `welcome` with what the agent
//! needs to know (the instance whose task containers it reports, the sampling interval); then
//! the agent reports every interval and on every container transition, and answers the
//! server's commands by id. A new field is ignored by an older peer; a new message type closes
//! the connection with a reason, so the protocol number goes up when one is added.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Sample;

/// Bumped when a message type is added or a field changes meaning.
pub const PROTOCOL: u32 = 1;

/// A message from the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AgentMessage {
    Hello(Hello),
    Report(Report),
    Transition(ContainerTransition),
    Reply(Reply),
}

/// A message from the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    Welcome(Welcome),
    Command { id: u64, command: Command },
}

/// Who the agent is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub protocol: u32,
    /// The Swarm node id of the agent's engine.
    pub node_id: String,
    pub hostname: String,
    /// wharf's version.
    pub version: String,
    /// Random per agent process: a reconnect of the same agent replaces its old connection;
    /// a second agent on the same node is refused while the first is alive.
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub engine_version: Option<String>,
}

/// The server's answer to `hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// The wharf instance whose task containers the agent reports (their `wharf.instance`).
    pub instance: String,
    pub interval_ms: u64,
    pub version: String,
}

/// A wharf task container on the agent's node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskContainer {
    pub id: String,
    /// The app's uid (`wharf.uid`).
    pub uid: String,
    pub namespace: String,
    pub app: String,
    pub task_id: String,
    /// The task's slot (replicated services).
    #[serde(default)]
    pub slot: Option<u64>,
    /// `running`, `exited`, `paused`, …
    pub state: String,
}

/// One sampling round of the agent's node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When the containers were listed (unix ms): a transition after it is newer than the
    /// state listed.
    #[serde(default)]
    pub listed_at: i64,
    /// Every wharf task container on the node, whatever its state.
    pub containers: Vec<TaskContainer>,
    /// One per running container read in this round and the one before.
    pub samples: Vec<TaskSample>,
    /// The node's host figures (as `GET /host/stats` has them).
    #[serde(default)]
    pub host: Option<Value>,
}

/// A task container's figures over the last interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSample {
    pub container: String,
    pub task_id: String,
    pub uid: String,
    #[serde(flatten)]
    pub sample: Sample,
}

/// A container of the node changed state (the engine's event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerTransition {
    pub container: TaskContainer,
    /// The engine's action: `start`, `die`, `oom`, `kill`, `destroy`, …
    pub action: String,
    /// Unix milliseconds.
    pub t: i64,
    #[serde(default)]
    pub detail: String,
}

/// What the server asks of an agent. Every command names a container the agent checks is one
/// of wharf's task containers of the welcome's instance before it does anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    Kill {
        container: String,
        signal: String,
    },
    Inspect {
        container: String,
    },
    /// A git operation (`crate::git::OPERATIONS`); the agent builds the argv itself.
    Git {
        container: String,
        operation: String,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        branch: Option<String>,
    },
}

impl Command {
    pub fn container(&self) -> &str {
        match self {
            Command::Kill { container, .. }
            | Command::Inspect { container }
            | Command::Git { container, .. } => container,
        }
    }
}

/// Why a command was not done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandError {
    /// `NotWharf` (not a wharf task container), `NotFound`, `Invalid`, `Failed`.
    pub code: String,
    pub message: String,
}

/// The answer to one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub id: u64,
    #[serde(default)]
    pub ok: Option<Value>,
    #[serde(default)]
    pub error: Option<CommandError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_as_written() {
        let messages = [
            AgentMessage::Report(Report {
                listed_at: 1,
                containers: vec![TaskContainer {
                    id: "c1".into(),
                    uid: "u".into(),
                    task_id: "t1".into(),
                    slot: Some(2),
                    state: "running".into(),
                    ..TaskContainer::default()
                }],
                samples: vec![TaskSample {
                    container: "c1".into(),
                    task_id: "t1".into(),
                    uid: "u".into(),
                    sample: Sample {
                        t: 5,
                        cpu: 49.5,
                        mem: 1 << 20,
                        ..Sample::default()
                    },
                }],
                host: None,
            }),
            AgentMessage::Reply(Reply {
                id: 7,
                ok: None,
                error: Some(CommandError {
                    code: "NotWharf".into(),
                    message: "no".into(),
                }),
            }),
        ];
        for m in messages {
            let text = serde_json::to_string(&m).expect("json");
            let back: AgentMessage = serde_json::from_str(&text).expect(&text);
            assert_eq!(back, m, "{text}");
        }
        let command = ServerMessage::Command {
            id: 1,
            command: Command::Kill {
                container: "c1".into(),
                signal: "SIGTERM".into(),
            },
        };
        let text = serde_json::to_string(&command).expect("json");
        assert_eq!(
            text,
            r#"{"type":"command","id":1,"command":{"op":"kill","container":"c1","signal":"SIGTERM"}}"#
        );
    }
}
