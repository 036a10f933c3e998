//! `GET /api/v1/agents/connect`: where node agents (`wharf agent`) dial in, upgraded to a
//! WebSocket. Only an agent token may connect (role `agent`), and only in swarm mode. The agent
//! says hello, the server welcomes it, and from then on the connection carries the agent's
//! reports and the server's commands (`agent::protocol`) until either side closes it or the
//! agent falls silent for three intervals.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use crate::agent::hub::AgentHub;
use crate::agent::protocol::{AgentMessage, Hello, PROTOCOL, ServerMessage};
use crate::runtime::swarm::Swarm;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest message an agent may send (a report of a node with many task containers).
const MAX_MESSAGE: usize = 16 << 20;

/// The swarm's agent hub, or 409 in solo mode.
pub fn hub(state: &ApiState) -> ApiResult<Arc<AgentHub>> {
    state.agents.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "SoloMode",
            "wharf runs in solo mode, where it reads its one engine itself; node agents connect to a server in swarm mode (wharf serve --mode swarm)",
        )
    })
}

pub async fn connect(
    State(state): State<ApiState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let hub = hub(&state)?;
    let swarm = state
        .controller
        .swarm()
        .ok_or_else(|| ApiError::internal("agent connection", "swarm mode without a swarm"))?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "this route is a WebSocket for `wharf agent`: {}",
            e.body_text()
        ))
    })?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(hub, swarm, socket)))
}

async fn close(mut socket: WebSocket, reason: String) {
    tracing::warn!("agent connection refused: {reason}");
    let _closing = socket
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::POLICY,
            reason: reason.into(),
        })))
        .await;
}

async fn serve(hub: Arc<AgentHub>, swarm: Arc<dyn Swarm>, mut socket: WebSocket) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, first_hello(&mut socket)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(why)) => return close(socket, why).await,
        Err(_) => return close(socket, "no hello within 15 s".into()).await,
    };
    if hello.protocol != PROTOCOL {
        let why = format!(
            "agent protocol {} is not this server's {PROTOCOL} (server {}, agent {}): run the same wharf version",
            hello.protocol,
            env!("CARGO_PKG_VERSION"),
            hello.version
        );
        return close(socket, why).await;
    }
    if hello.node_id.is_empty() || hello.node_id.len() > 64 {
        return close(socket, "the hello names no valid node id".into()).await;
    }
    // An agent speaks for a node of this swarm, and only one.
    match swarm.nodes().await {
        Ok(nodes) if nodes.iter().any(|n| n.id == hello.node_id) => {}
        Ok(_) => {
            let why = format!(
                "node {} ({}) is not a node of the swarm this server manages",
                hello.node_id, hello.hostname
            );
            return close(socket, why).await;
        }
        Err(e) => return close(socket, format!("the swarm's nodes cannot be listed: {e}")).await,
    }
    let node = hello.node_id.clone();
    let hostname = hello.hostname.clone();
    let version = hello.version.clone();
    let welcome = ServerMessage::Welcome(hub.welcome());
    let (conn, mut commands) = match hub.attach(hello) {
        Ok(attached) => attached,
        Err(why) => return close(socket, why).await,
    };
    tracing::info!(%node, %hostname, %version, "node agent connected");
    let silence = hub.interval() * 3 + Duration::from_secs(15);
    let why = match send(&mut socket, &welcome).await {
        Err(e) => e,
        Ok(()) => loop {
            tokio::select! {
                _ = hub.closing() => {
                    let _closing = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: axum::extract::ws::close_code::AWAY,
                            reason: "the server is stopping".into(),
                        })))
                        .await;
                    break "the server is stopping".to_string();
                }
                command = commands.recv() => match command {
                    None => break "replaced by a newer connection of the same node".to_string(),
                    Some(message) => {
                        if let Err(e) = send(&mut socket, &message).await {
                            break e;
                        }
                    }
                },
                frame = tokio::time::timeout(silence, socket.recv()) => match frame {
                    Err(_) => break format!("silent for {}s", silence.as_secs()),
                    Ok(None) => break "the agent closed the connection".to_string(),
                    Ok(Some(Err(e))) => break format!("reading: {e}"),
                    Ok(Some(Ok(Message::Text(text)))) => {
                        match serde_json::from_str::<AgentMessage>(text.as_str()) {
                            Ok(message) => hub.receive(&node, conn, message).await,
                            Err(e) => {
                                tracing::warn!(%node, "an agent message is not understood: {e}");
                            }
                        }
                    }
                    Ok(Some(Ok(Message::Close(_)))) => break "the agent closed the connection".to_string(),
                    Ok(Some(Ok(_))) => {}
                },
            }
        },
    };
    hub.detach(&node, conn);
    tracing::warn!(%node, %hostname, "node agent disconnected: {why}");
}

async fn first_hello(socket: &mut WebSocket) -> Result<Hello, String> {
    loop {
        match socket.recv().await {
            None => return Err("closed before its hello".into()),
            Some(Err(e)) => return Err(format!("reading the hello: {e}")),
            Some(Ok(Message::Text(text))) => {
                return match serde_json::from_str::<AgentMessage>(text.as_str()) {
                    Ok(AgentMessage::Hello(hello)) => Ok(hello),
                    Ok(_) => Err("the first message must be a hello".into()),
                    Err(e) => Err(format!("the hello is not understood: {e}")),
                };
            }
            Some(Ok(Message::Close(_))) => return Err("closed before its hello".into()),
            Some(Ok(_)) => {}
        }
    }
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| format!("encoding: {e}"))?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| format!("sending: {e}"))
}
