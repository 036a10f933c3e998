//! `GET /api/v1/info` (the mode, the engine and, in swarm mode, the cluster), and the swarm's
//! nodes: `GET /api/v1/nodes` and `GET /api/v1/nodes/{node}` (the engine's inspect document).
//! In solo mode the node routes answer 409 saying so.

use schemars::JsonSchema;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Serialize;

use super::agents::hub;
use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use super::stats::{HOST_HISTORY_LIMIT, time_of, window};
use super::tasks::no_agent;
use super::views::Items;
use serde_json::Value;

use crate::agent::hub::AgentView;
use crate::runtime::swarm::{NodeState, Swarm, SwarmMembership};
use crate::spec::Kind;
use crate::spec::mode::Mode;
use crate::spec::status::Condition;
use crate::spec::validate::AppKey;
use crate::stats::host::HostStats;
use crate::store::ObjectSource;

/// `GET /info`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub mode: Mode,
    /// wharf's own version.
    pub version: &'static str,
    pub instance: String,
    pub engine: EngineInfo,
    /// Swarm mode: the cluster the engine manages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<SwarmMembership>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn info(State(state): State<ApiState>) -> ApiResult<Json<Info>> {
    let health = state.health.borrow().clone();
    let swarm = state.controller.swarm();
    let cluster = match &swarm {
        Some(s) => Some(
            s.membership()
                .await
                .map_err(|e| ApiError::runtime("asking the engine about its swarm", e))?,
        ),
        None => None,
    };
    Ok(Json(Info {
        mode: if swarm.is_some() {
            Mode::Swarm
        } else {
            Mode::Solo
        },
        version: env!("CARGO_PKG_VERSION"),
        instance: state.instance.clone(),
        engine: EngineInfo {
            connected: health.docker_connected,
            version: health.docker_version,
            error: health.docker_error,
        },
        cluster,
    }))
}

/// The swarm manager, or 409 in solo mode.
fn manager(state: &ApiState) -> ApiResult<Arc<dyn Swarm>> {
    state.controller.swarm().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "SoloMode",
            "wharf runs in solo mode (one engine, no swarm nodes); nodes exist in swarm mode (wharf serve --mode swarm)",
        )
    })
}

/// One node in `GET /nodes`, with the number of tasks Swarm wants running on it and the
/// `kind: Node` object that declares it, if any.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    #[serde(flatten)]
    pub node: NodeState,
    pub tasks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<Declared>,
    /// The node's agent, once one connected since the server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentView>,
    /// `AgentConnected`: whether wharf can read and act on the node's task containers.
    pub conditions: Vec<Condition>,
}

/// The `AgentConnected` condition of a node.
fn agent_condition(agent: Option<&AgentView>) -> Condition {
    let at = |ms: i64| time_of(ms).unwrap_or_default();
    let (ok, reason, message, since) = match agent {
        Some(a) if a.connected => (
            true,
            "Connected",
            format!("agent {} connected", a.version),
            a.connected_since,
        ),
        Some(a) => (
            false,
            "Disconnected",
            format!("the agent was last seen at {}", at(a.last_seen)),
            a.disconnected_at.unwrap_or(a.last_seen),
        ),
        None => (
            false,
            "NeverConnected",
            "no agent has connected since the server started; run `wharf agent` on the node"
                .to_string(),
            0,
        ),
    };
    Condition {
        kind: "AgentConnected".into(),
        status: ok.into(),
        reason: reason.into(),
        message,
        last_transition_time: if since > 0 { at(since) } else { String::new() },
    }
}

/// The Node object naming a node.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Declared {
    pub name: String,
    pub source: String,
    pub spec: crate::spec::ObjectSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::spec::status::ObjectStatus>,
}

pub async fn list(State(state): State<ApiState>) -> ApiResult<Json<Items<NodeView>>> {
    let swarm = manager(&state)?;
    let nodes = swarm
        .nodes()
        .await
        .map_err(|e| ApiError::runtime("listing the swarm's nodes", e))?;
    let services = swarm
        .services(&state.instance)
        .await
        .map_err(|e| ApiError::runtime("listing services", e))?;
    let ids: Vec<String> = services.into_iter().map(|s| s.id).collect();
    let tasks = swarm
        .tasks(&ids)
        .await
        .map_err(|e| ApiError::runtime("listing tasks", e))?;
    let declared = state.store.list(Kind::Node, None).await?;
    let agents = state.agents.as_ref().map(|h| h.views()).unwrap_or_default();
    let items = nodes
        .into_iter()
        .map(|node| {
            let count = tasks
                .iter()
                .filter(|t| t.desired_state == "running" && t.node_id.as_ref() == Some(&node.id))
                .count();
            let object = declared
                .iter()
                .find(|r| r.key.name == node.id)
                .or_else(|| declared.iter().find(|r| r.key.name == node.hostname))
                .map(|r| Declared {
                    name: r.key.name.clone(),
                    source: r.source.to_string(),
                    spec: r.spec.clone(),
                    status: r.status.clone(),
                });
            let agent = agents.get(&node.id).cloned();
            NodeView {
                conditions: vec![agent_condition(agent.as_ref())],
                node,
                tasks: count,
                declared: object,
                agent,
            }
        })
        .collect();
    Ok(Json(Items { items }))
}

/// The node with id or hostname `name` (404 when none, 409 when the hostname is ambiguous).
async fn find_node(swarm: &dyn Swarm, name: &str) -> ApiResult<NodeState> {
    let nodes = swarm
        .nodes()
        .await
        .map_err(|e| ApiError::runtime("listing the swarm's nodes", e))?;
    let matching: Vec<&NodeState> = nodes
        .iter()
        .filter(|n| n.id == name || n.hostname == name)
        .collect();
    match matching.as_slice() {
        [] => Err(ApiError::not_found(format!(
            "no node of the swarm has the id or hostname {name:?}"
        ))),
        [one] => Ok((*one).clone()),
        many => match many.iter().find(|n| n.id == name) {
            Some(n) => Ok((*n).clone()),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "Ambiguous",
                format!(
                    "{} nodes have the hostname {name:?}; name one by id: {}",
                    many.len(),
                    many.iter()
                        .map(|n| n.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        },
    }
}

/// `GET /nodes/{node}`: by hostname or id.
pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let swarm = manager(&state)?;
    let node = find_node(swarm.as_ref(), &name).await?;
    let raw = swarm
        .node_raw(&node.id)
        .await
        .map_err(|e| ApiError::runtime("inspecting the node", e))?;
    Ok(Json(raw))
}

/// `GET /nodes/{node}/stats`: the node's host figures, as its agent read them last.
pub async fn node_stats(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<NodeStats>> {
    let swarm = manager(&state)?;
    let hub = hub(&state)?;
    let node = find_node(swarm.as_ref(), &name).await?;
    let Some((_, reading)) = hub.host(&node.id) else {
        return Err(no_agent(&node.id, &node.hostname));
    };
    Ok(Json(NodeStats {
        kind: "NodeStats",
        node: node.id,
        hostname: node.hostname,
        reading,
    }))
}

/// `GET /nodes/{node}/stats`: a node's latest host reading.
#[derive(Serialize, JsonSchema)]
pub struct NodeStats {
    pub kind: &'static str,
    pub node: String,
    pub hostname: String,
    /// The reading's fields, as the node's agent sent them.
    #[serde(flatten)]
    #[schemars(with = "HostStats")]
    pub reading: Value,
}

#[derive(serde::Deserialize, Default, JsonSchema)]
pub struct HistoryQuery {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /nodes/{node}/stats/history?since=&until=`: the node's stored host readings.
pub async fn node_stats_history(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<NodeStatsHistory>> {
    let swarm = manager(&state)?;
    let node = find_node(swarm.as_ref(), &name).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let (since, until) = window(query.since.as_deref(), query.until.as_deref(), now)?;
    let items = state
        .store
        .host_samples(&node.id, since, until, HOST_HISTORY_LIMIT)
        .await?;
    Ok(Json(NodeStatsHistory {
        kind: "NodeStatsHistory",
        node: node.id,
        hostname: node.hostname,
        since: time_of(since),
        until: time_of(until),
        items,
    }))
}

/// `GET /nodes/{node}/stats/history`: a node's stored host readings.
#[derive(Serialize, JsonSchema)]
pub struct NodeStatsHistory {
    pub kind: &'static str,
    pub node: String,
    pub hostname: String,
    pub since: Option<String>,
    pub until: Option<String>,
    #[schemars(with = "Vec<HostStats>")]
    pub items: Vec<Value>,
}

/// `DELETE /nodes/{name}`: deletes the `kind: Node` object named so (API-owned); the node
/// itself is left as it is.
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<NodeDeleted>> {
    let key = AppKey {
        namespace: String::new(),
        name,
    };
    let record = state
        .store
        .delete(Kind::Node, &key, Some(&ObjectSource::Api), None)
        .await?;
    state.wake.notify_one();
    Ok(Json(NodeDeleted {
        kind: "Node",
        name: key.name,
        uid: record.uid,
        message: "the Node object is deleted; the node keeps its availability and labels",
    }))
}

/// `DELETE /nodes/{node}`: the deleted Node object.
#[derive(Serialize, JsonSchema)]
pub struct NodeDeleted {
    pub kind: &'static str,
    pub name: String,
    pub uid: String,
    pub message: &'static str,
}
