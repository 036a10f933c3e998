//! `wharf agent`: runs on every swarm node beside its engine. It finds its node id from the
//! engine, dials the server (`GET /api/v1/agents/connect`, upgraded to a WebSocket, with the
//! same TLS settings as the CLI) and then, until the connection ends:
//! - every interval the server named, reports the node's wharf task containers, a sample of
//!   each running one (the solo sampler's readings: cgroup files, else the engine) and the
//!   node's host figures;
//! - reports each container transition from the engine's events as it happens;
//! - answers the server's commands (kill, inspect, git) for wharf task containers of the
//!   server's instance on this node, and refuses every other container.
//!
//! A lost connection is dialled again with backoff; a token the server refuses ends the agent
//! (retrying cannot fix it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::hub::GIT_TIMEOUT;
use super::protocol::{
    AgentMessage, Command, CommandError, ContainerTransition, Hello, PROTOCOL, Reply, Report,
    ServerMessage, TaskContainer, TaskSample, Welcome,
};
use crate::reconcile::actions::parse_signal;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::swarm::Swarm;
use crate::runtime::{ContainerState, ContainerSummary, Runtime, RuntimeEvent, labels};
use crate::stats::{Readings, read_containers};

/// The path the agent connects to, under the server's URL.
pub const CONNECT_PATH: &str = "/api/v1/agents/connect";
/// Stats calls in flight at once on one node.
const CONCURRENCY: usize = 16;
/// How long the server has to answer the hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection that lasted this long starts the backoff over.
const STABLE: Duration = Duration::from_secs(60);

/// Swarm's labels on a task container.
const TASK_ID: &str = "com.docker.swarm.task.id";
const TASK_NAME: &str = "com.docker.swarm.task.name";

/// How the agent reaches its server.
pub struct AgentConfig {
    /// `https://HOST:7999` (or `http://` on loopback).
    pub server: String,
    pub token: String,
    /// A PEM certificate to trust besides the system's.
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the engine: {0}")]
    Engine(String),
    #[error("the server refused the agent's token ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Config(String),
}

/// Why one connection ended.
enum Ended {
    /// Dial again (after the backoff).
    Retry(String),
    /// Give up.
    Fatal(AgentError),
}

/// Runs the agent until a fatal error.
pub async fn run(config: AgentConfig, engine: Arc<DockerRuntime>) -> Result<(), AgentError> {
    let http = http_client(config.ca_cert.as_deref())?;
    let base = config.server.trim_end_matches('/').to_string();
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(AgentError::Config(format!(
            "--server: {base:?} must start with https:// (or http:// on loopback)"
        )));
    }
    let membership = engine
        .membership()
        .await
        .map_err(|e| AgentError::Engine(e.to_string()))?;
    if membership.local_node_state != "active" || membership.node_id.is_empty() {
        return Err(AgentError::Engine(format!(
            "the engine is not an active member of a swarm (state {:?}); the agent runs on swarm nodes",
            membership.local_node_state
        )));
    }
    let hello = Hello {
        protocol: PROTOCOL,
        node_id: membership.node_id.clone(),
        hostname: engine.engine_name().await.unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        engine_version: engine.ping().await.ok(),
        agent_id: uuid::Uuid::new_v4().to_string(),
    };
    tracing::info!(node = %hello.node_id, hostname = %hello.hostname, server = %base, "wharf agent starting");
    let mut backoff = crate::backoff::outage();
    loop {
        let started = Instant::now();
        match session(&http, &base, &config.token, &hello, &engine).await {
            Ended::Fatal(e) => return Err(e),
            Ended::Retry(why) => {
                if started.elapsed() >= STABLE {
                    backoff = crate::backoff::outage();
                }
                let wait = backoff.next().unwrap_or(crate::backoff::OUTAGE_MAX);
                tracing::warn!("connection to {base} ended: {why}; dialling again in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn http_client(ca_cert: Option<&std::path::Path>) -> Result<reqwest::Client, AgentError> {
    // The upgrade needs HTTP/1.1; no overall timeout (the connection lives on).
    let mut builder = reqwest::Client::builder()
        .http1_only()
        .connect_timeout(Duration::from_secs(10));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| AgentError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| AgentError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| AgentError::Config(format!("HTTP client: {e}")))
}

type Socket = WebSocketStream<reqwest::Upgraded>;

/// An error with its causes: reqwest's own words leave out why (a certificate, a refusal).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Opens the WebSocket.
async fn dial(http: &reqwest::Client, base: &str, token: &str) -> Result<Socket, Ended> {
    use tokio_tungstenite::tungstenite::handshake::client::generate_key;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let key = generate_key();
    let response = http
        .get(format!("{base}{CONNECT_PATH}"))
        .bearer_auth(token)
        .header(reqwest::header::CONNECTION, "Upgrade")
        .header(reqwest::header::UPGRADE, "websocket")
        .header(reqwest::header::SEC_WEBSOCKET_VERSION, "13")
        .header(reqwest::header::SEC_WEBSOCKET_KEY, &key)
        .send()
        .await
        .map_err(|e| Ended::Retry(format!("connecting: {}", causes(&e))))?;
    let status = response.status();
    if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(match status.as_u16() {
            401 | 403 => Ended::Fatal(AgentError::Refused {
                status: status.as_u16(),
                message,
            }),
            code => Ended::Retry(format!("the server answered {code}: {message}")),
        });
    }
    let accept = response
        .headers()
        .get(reqwest::header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(Ended::Retry(
            "the server's WebSocket handshake is not valid".into(),
        ));
    }
    let upgraded = response
        .upgrade()
        .await
        .map_err(|e| Ended::Retry(format!("upgrading the connection: {e}")))?;
    Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await)
}

/// One connection: hello, welcome, then reports, transitions and commands until it ends.
async fn session(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    hello: &Hello,
    engine: &Arc<DockerRuntime>,
) -> Ended {
    let mut socket = match dial(http, base, token).await {
        Ok(s) => s,
        Err(ended) => return ended,
    };
    let text = match serde_json::to_string(&AgentMessage::Hello(hello.clone())) {
        Ok(t) => t,
        Err(e) => return Ended::Retry(format!("encoding the hello: {e}")),
    };
    if let Err(e) = socket.send(Message::text(text)).await {
        return Ended::Retry(format!("sending the hello: {e}"));
    }
    let welcome =
        match tokio::time::timeout(WELCOME_TIMEOUT, next_server_message(&mut socket)).await {
            Err(_) => return Ended::Retry("the server sent no welcome".into()),
            Ok(Err(why)) => return Ended::Retry(why),
            Ok(Ok(ServerMessage::Welcome(w))) => w,
            Ok(Ok(other)) => return Ended::Retry(format!("expected a welcome, got {other:?}")),
        };
    tracing::info!(instance = %welcome.instance, interval_ms = welcome.interval_ms, "connected to the wharf server");
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<AgentMessage>(256);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let text = match serde_json::to_string(&message) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("encoding a message: {e}");
                    continue;
                }
            };
            if let Err(e) = sink.send(Message::text(text)).await {
                return format!("sending: {e}");
            }
        }
        "the agent stopped sending".to_string()
    });
    let welcome = Arc::new(welcome);
    let reporter = tokio::spawn(report(
        Arc::clone(engine),
        Arc::clone(&welcome),
        out.clone(),
    ));
    let watcher = tokio::spawn(watch_events(
        Arc::clone(engine),
        welcome.instance.clone(),
        out.clone(),
    ));
    let why = loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = out.closed() => break "the connection's writer stopped".to_string(),
        };
        let text = match frame {
            None => break "the server closed the connection".to_string(),
            Some(Err(e)) => break format!("reading: {e}"),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                break format!(
                    "the server closed the connection{}",
                    frame.map(|f| format!(": {}", f.reason)).unwrap_or_default()
                );
            }
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Command { id, command }) => {
                let engine = Arc::clone(engine);
                let instance = welcome.instance.clone();
                let out = out.clone();
                tokio::spawn(async move {
                    let outcome = execute(&engine, &instance, command).await;
                    let (ok, error) = match outcome {
                        Ok(v) => (Some(v), None),
                        Err(e) => (None, Some(e)),
                    };
                    let _closed = out.send(AgentMessage::Reply(Reply { id, ok, error })).await;
                });
            }
            Ok(ServerMessage::Welcome(_)) => {}
            Err(e) => break format!("a message from the server is not understood: {e}"),
        }
    };
    reporter.abort();
    watcher.abort();
    writer.abort();
    Ended::Retry(why)
}

async fn next_server_message(socket: &mut Socket) -> Result<ServerMessage, String> {
    loop {
        match socket.next().await {
            None => return Err("the server closed the connection".into()),
            Some(Err(e)) => return Err(format!("reading: {e}")),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| format!("a message from the server is not understood: {e}"));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!(
                    "the server closed the connection{}",
                    frame.map(|f| format!(": {}", f.reason)).unwrap_or_default()
                ));
            }
            Some(Ok(_)) => {}
        }
    }
}

/// A task container as the protocol has it (None: not a wharf task container).
fn task_container(c: &ContainerSummary) -> Option<TaskContainer> {
    from_labels(&c.id, c.state.to_string(), |k| c.labels.get(k).cloned())
}

fn from_labels(
    id: &str,
    state: String,
    label: impl Fn(&str) -> Option<String>,
) -> Option<TaskContainer> {
    let task_id = label(TASK_ID)?;
    // `service.slot.task` for a replicated service, `service.node.task` for a global one.
    let slot = label(TASK_NAME).and_then(|name| {
        let mut parts = name.rsplitn(3, '.');
        let _task = parts.next();
        parts.next()?.parse::<u64>().ok()
    });
    Some(TaskContainer {
        id: id.to_string(),
        uid: label(labels::UID)?,
        namespace: label(labels::NAMESPACE).unwrap_or_default(),
        app: label(labels::APP).unwrap_or_default(),
        task_id,
        slot,
        state,
    })
}

/// Every interval: the node's task containers, their samples and the host's figures.
async fn report(
    engine: Arc<DockerRuntime>,
    welcome: Arc<Welcome>,
    out: mpsc::Sender<AgentMessage>,
) {
    let readings = Readings::default();
    let interval = Duration::from_millis(welcome.interval_ms.max(100));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let listed_at = chrono::Utc::now().timestamp_millis();
        let containers = match engine.task_containers(&welcome.instance).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("listing task containers: {e}");
                continue;
            }
        };
        let tasks: Vec<TaskContainer> = containers.iter().filter_map(task_container).collect();
        let running = tasks
            .iter()
            .filter(|t| t.state == ContainerState::Running.to_string())
            .map(|t| (t.id.clone(), t.uid.clone(), t.task_id.clone()))
            .collect::<Vec<_>>();
        let read = read_containers(engine.as_ref() as &dyn Runtime, running, CONCURRENCY).await;
        let samples = readings
            .samples(read)
            .into_iter()
            .filter_map(|s| {
                let task = tasks.iter().find(|t| t.task_id == s.task)?;
                Some(TaskSample {
                    container: task.id.clone(),
                    task_id: s.task.clone(),
                    uid: s.uid.clone(),
                    sample: s,
                })
            })
            .collect();
        let host = match tokio::task::spawn_blocking(crate::stats::host::read).await {
            Ok(Ok(reading)) => serde_json::to_value(&reading).ok(),
            Ok(Err(e)) => {
                tracing::debug!("host reading: {e}");
                None
            }
            Err(e) => {
                tracing::debug!("host reading: {e}");
                None
            }
        };
        let message = AgentMessage::Report(Report {
            listed_at,
            containers: tasks,
            samples,
            host,
        });
        if out.send(message).await.is_err() {
            return;
        }
    }
}

/// The state a container is in after an event (None: the event changes no state).
fn state_after(action: &str) -> Option<&'static str> {
    Some(match action {
        "start" | "unpause" => "running",
        "die" | "kill" | "oom" | "stop" => "exited",
        "pause" => "paused",
        "destroy" => "removed",
        _ => return None,
    })
}

/// The engine's events of the node's task containers, as transitions.
async fn watch_events(
    engine: Arc<DockerRuntime>,
    instance: String,
    out: mpsc::Sender<AgentMessage>,
) {
    let mut backoff = crate::backoff::outage();
    loop {
        let mut events = engine.task_events(&instance);
        while let Some(event) = events.next().await {
            let event: RuntimeEvent = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("engine events: {e}");
                    break;
                }
            };
            backoff = crate::backoff::outage();
            let Some(state) = state_after(&event.action) else {
                continue;
            };
            // `kill` only signals: the container runs on until `die` says otherwise.
            let state = if event.action == "kill" {
                "running"
            } else {
                state
            };
            let Some(container) = from_labels(&event.id, state.to_string(), |k| {
                event.attributes.get(k).cloned()
            }) else {
                continue;
            };
            let detail = match event.action.as_str() {
                "die" => event
                    .attributes
                    .get("exitCode")
                    .map(|c| format!("exit code {c}"))
                    .unwrap_or_default(),
                "kill" => event
                    .attributes
                    .get("signal")
                    .map(|s| format!("signal {s}"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let transition = AgentMessage::Transition(ContainerTransition {
                container,
                action: event.action.clone(),
                t: event.time_ms,
                detail,
            });
            if out.send(transition).await.is_err() {
                return;
            }
        }
        let wait = backoff.next().unwrap_or(crate::backoff::OUTAGE_MAX);
        tokio::time::sleep(wait).await;
    }
}

fn refuse(code: &str, message: impl Into<String>) -> CommandError {
    CommandError {
        code: code.into(),
        message: message.into(),
    }
}

/// Does one command, for a wharf task container of `instance` on this node only.
pub async fn execute(
    engine: &DockerRuntime,
    instance: &str,
    command: Command,
) -> Result<Value, CommandError> {
    let wanted = command.container().to_string();
    let containers = engine
        .task_containers(instance)
        .await
        .map_err(|e| refuse("Failed", format!("listing the node's containers: {e}")))?;
    let found = containers
        .iter()
        .find(|c| c.id == wanted || (wanted.len() >= 12 && c.id.starts_with(&wanted)))
        .filter(|c| task_container(c).is_some())
        .ok_or_else(|| {
            refuse(
                "NotWharf",
                format!(
                    "container {wanted} is not one of wharf's task containers (instance {instance}) on this node; the agent touches nothing else"
                ),
            )
        })?;
    let id = found.id.clone();
    match command {
        Command::Kill { signal, .. } => {
            let signal =
                parse_signal(&signal).map_err(|e| refuse("Invalid", format!("signal: {e}")))?;
            engine
                .kill(&id, &signal)
                .await
                .map_err(|e| refuse("Failed", format!("killing container {id}: {e}")))?;
            Ok(json!({ "container": id, "signal": signal }))
        }
        Command::Inspect { .. } => engine
            .inspect_raw(&id)
            .await
            .map_err(|e| refuse("Failed", format!("inspecting container {id}: {e}"))),
        Command::Git {
            operation,
            path,
            branch,
            ..
        } => {
            let argv =
                crate::git::argv(&operation, path.as_deref(), branch.as_deref()).map_err(|e| {
                    match e {
                        crate::git::GitArgError::UnknownOp(m) => refuse("Invalid", m),
                        crate::git::GitArgError::Field(field, m) => {
                            refuse("Invalid", format!("{field}: {m}"))
                        }
                    }
                })?;
            if found.state != ContainerState::Running {
                return Err(refuse(
                    "NotRunning",
                    format!(
                        "container {id} is {}; git runs inside a running container",
                        found.state
                    ),
                ));
            }
            let output = engine
                .exec(&id, &argv, None, GIT_TIMEOUT)
                .await
                .map_err(|e| refuse("Failed", format!("running git in container {id}: {e}")))?;
            Ok(json!({
                "container": id,
                "argv": argv,
                "exitCode": output.exit_code,
                "stdout": output.stdout,
                "stderr": output.stderr,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_containers_are_read_from_their_labels() {
        let labels = [
            (TASK_ID, "t1"),
            (TASK_NAME, "demo_web.2.t1"),
            (labels::UID, "u1"),
            (labels::NAMESPACE, "demo"),
            (labels::APP, "web"),
        ];
        let label = |k: &str| {
            labels
                .iter()
                .find(|(l, _)| *l == k)
                .map(|(_, v)| v.to_string())
        };
        let c = from_labels("c1", "running".into(), label).expect("a task container");
        assert_eq!(
            (c.slot, c.task_id.as_str(), c.uid.as_str()),
            (Some(2), "t1", "u1")
        );
        // A global service's task names the node, not a slot.
        let global = |k: &str| match k {
            TASK_NAME => Some("demo_agent.abcnode.t9".to_string()),
            _ => label(k),
        };
        assert_eq!(
            from_labels("c2", "running".into(), global)
                .expect("task")
                .slot,
            None
        );
        // Without wharf's uid label it is not one of wharf's containers.
        assert_eq!(
            from_labels("c3", "running".into(), |k| (k == TASK_ID)
                .then(|| "t".to_string())),
            None
        );
    }
}
