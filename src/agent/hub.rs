//! The server's side of the node agents: who is connected, what each reported last, the
//! commands in flight. The WebSocket handler (`http/agents.rs`) feeds it; the API, the swarm
//! pass (node conditions), the uptime evaluator and `/metrics` read it.
//!
//! Reports are stored as they arrive: each task's sample under its task id, the node's host
//! figures under its node id. Every interval the hub adds each app's own sample: the sum of
//! its tasks' latest samples (cpu, memory, limits, counters), so the app's series, rollups,
//! retention and status read the same as in solo mode.

use schemars::JsonSchema;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    AgentMessage, Command, CommandError, ContainerTransition, Hello, Report, ServerMessage,
    TaskContainer, TaskSample, Welcome,
};
use crate::store::{Sample, Store};

/// How long the server waits for an agent's answer to a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Git may take this long inside the container (as in solo mode).
pub const GIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Commands queued for one agent before the server refuses more.
const QUEUE: usize = 64;

/// What an agent looks like from the API (`GET /nodes`).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub connected: bool,
    pub version: String,
    pub hostname: String,
    /// Unix milliseconds of the last message.
    pub last_seen: i64,
    /// When the current connection (or, when gone, the last one) began.
    pub connected_since: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<i64>,
    /// Wharf task containers the agent reported running.
    pub running: usize,
}

/// Why a command did not reach an answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HubError {
    #[error("node {0} has no connected agent (run `wharf agent` there)")]
    NoAgent(String),
    #[error("the agent of node {node} refused: {}", error.message)]
    Refused { node: String, error: CommandError },
    #[error("the agent of node {0} did not answer within {1}s")]
    Timeout(String, u64),
    #[error("the agent of node {0} went away before answering")]
    Gone(String),
}

struct Agent {
    /// Which connection is current (a reconnect replaces the previous one).
    conn: u64,
    hello: Hello,
    sender: Option<mpsc::Sender<ServerMessage>>,
    pending: HashMap<u64, oneshot::Sender<Result<Value, CommandError>>>,
    connected_since: i64,
    last_seen: i64,
    disconnected_at: Option<i64>,
    containers: HashMap<String, TaskContainer>,
    /// When each container's last transition happened (unix ms): a report listed before it
    /// does not undo it.
    transitioned: HashMap<String, i64>,
    /// The latest sample of each running container, by container id.
    latest: HashMap<String, TaskSample>,
    host: Option<(i64, Value)>,
}

#[derive(Default)]
struct HubState {
    agents: BTreeMap<String, Agent>,
    next_conn: u64,
    next_command: u64,
    /// The last container transition of each app (uid): what made it change.
    causes: HashMap<String, String>,
}

pub struct AgentHub {
    store: Store,
    instance: String,
    interval: Duration,
    state: Mutex<HubState>,
    /// Bumped on every connect, disconnect and container transition.
    changes: watch::Sender<u64>,
    /// The reconcile loop's wake-up (node statuses follow the agents).
    wake: Arc<Notify>,
    /// Cancelled when the server stops: every agent connection closes (upgraded connections
    /// outlive the HTTP server's graceful shutdown otherwise).
    stop: CancellationToken,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One running task container as the hub knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningTask {
    pub node: String,
    pub hostname: String,
    pub container: TaskContainer,
    pub sample: Option<TaskSample>,
}

impl AgentHub {
    pub fn new(store: Store, instance: String, interval: Duration, wake: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            store,
            instance,
            interval,
            state: Mutex::new(HubState::default()),
            changes: watch::channel(0).0,
            wake,
            stop: CancellationToken::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        self.wake.notify_one();
    }

    /// A receiver that sees every change of who is connected or what runs.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Closes every agent connection, and every later one at once (the server is stopping).
    pub fn close_all(&self) {
        self.stop.cancel();
    }

    /// Resolves when the server stops.
    pub fn closing(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The welcome for an agent that said hello.
    pub fn welcome(&self) -> Welcome {
        Welcome {
            instance: self.instance.clone(),
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Registers a connection; the messages to send it come out of the receiver. A new
    /// connection of the same agent (a reconnect) replaces its old one, whose receiver then
    /// ends; another agent of the same node is refused while the first one is heard from.
    pub fn attach(&self, hello: Hello) -> Result<(u64, mpsc::Receiver<ServerMessage>), String> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let now = now_ms();
        let alive = 2 * i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX / 4);
        let conn = {
            let mut state = self.lock();
            let node = hello.node_id.clone();
            if let Some(old) = state.agents.get_mut(&node) {
                let other = old.hello.agent_id != hello.agent_id;
                if other && old.sender.is_some() && now - old.last_seen <= alive {
                    return Err(format!(
                        "node {node} ({}) already has a connected agent (version {}, connected since {}); one agent per node",
                        old.hello.hostname,
                        old.hello.version,
                        chrono::DateTime::from_timestamp_millis(old.connected_since)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default()
                    ));
                }
                fail_pending(old, &node);
            }
            state.next_conn += 1;
            let conn = state.next_conn;
            state.agents.insert(
                node,
                Agent {
                    conn,
                    hello,
                    sender: Some(tx),
                    pending: HashMap::new(),
                    connected_since: now,
                    last_seen: now,
                    disconnected_at: None,
                    containers: HashMap::new(),
                    transitioned: HashMap::new(),
                    latest: HashMap::new(),
                    host: None,
                },
            );
            conn
        };
        self.changed();
        Ok((conn, rx))
    }

    /// The connection `conn` of `node` ended.
    pub fn detach(&self, node: &str, conn: u64) {
        {
            let mut state = self.lock();
            let Some(agent) = state.agents.get_mut(node).filter(|a| a.conn == conn) else {
                return;
            };
            agent.sender = None;
            agent.disconnected_at = Some(now_ms());
            fail_pending(agent, node);
            // What it reported is no longer known to hold.
            agent.containers.clear();
            agent.transitioned.clear();
            agent.latest.clear();
            agent.host = None;
        }
        self.changed();
    }

    /// Takes in one message of connection `conn` of `node`.
    pub async fn receive(&self, node: &str, conn: u64, message: AgentMessage) {
        let now = now_ms();
        let report = {
            let mut state = self.lock();
            let Some(agent) = state.agents.get_mut(node).filter(|a| a.conn == conn) else {
                return;
            };
            agent.last_seen = now;
            match message {
                AgentMessage::Hello(_) => None,
                AgentMessage::Reply(reply) => {
                    if let Some(waiting) = agent.pending.remove(&reply.id) {
                        let outcome = match (reply.ok, reply.error) {
                            (_, Some(error)) => Err(error),
                            (ok, None) => Ok(ok.unwrap_or(Value::Null)),
                        };
                        // The asker may have given up (timeout): nothing to do then.
                        let _gone = waiting.send(outcome);
                    }
                    None
                }
                AgentMessage::Transition(t) => {
                    let cause = transition_cause(&t);
                    let uid = t.container.uid.clone();
                    agent.transitioned.insert(t.container.id.clone(), t.t);
                    agent.containers.insert(t.container.id.clone(), t.container);
                    if let Some(cause) = cause {
                        state.causes.insert(uid, cause);
                    }
                    drop(state);
                    self.changed();
                    return;
                }
                AgentMessage::Report(report) => {
                    let before: HashSet<(String, String)> = agent
                        .containers
                        .values()
                        .map(|c| (c.id.clone(), c.state.clone()))
                        .collect();
                    let mut listed: HashMap<String, TaskContainer> = report
                        .containers
                        .iter()
                        .map(|c| (c.id.clone(), c.clone()))
                        .collect();
                    // What changed after the listing stays as its transition said.
                    agent.transitioned.retain(|_, t| *t > report.listed_at);
                    for id in agent.transitioned.keys() {
                        match agent.containers.get(id) {
                            Some(newer) => {
                                listed.insert(id.clone(), newer.clone());
                            }
                            None => {
                                listed.remove(id);
                            }
                        }
                    }
                    agent.containers = listed;
                    agent.latest = report
                        .samples
                        .iter()
                        .map(|s| (s.container.clone(), s.clone()))
                        .collect();
                    if let Some(host) = &report.host {
                        let t = host.get("t").and_then(Value::as_i64).unwrap_or(now);
                        agent.host = Some((t, host.clone()));
                    }
                    let after: HashSet<(String, String)> = agent
                        .containers
                        .values()
                        .map(|c| (c.id.clone(), c.state.clone()))
                        .collect();
                    Some((report, before != after))
                }
            }
        };
        if let Some((report, moved)) = report {
            self.store_report(node, &report).await;
            if moved {
                self.changed();
            }
        }
    }

    async fn store_report(&self, node: &str, report: &Report) {
        let samples: Vec<Sample> = report
            .samples
            .iter()
            .map(|s| Sample {
                uid: s.uid.clone(),
                task: s.task_id.clone(),
                ..s.sample.clone()
            })
            .collect();
        if let Err(e) = self.store.insert_samples(&samples).await {
            tracing::warn!(%node, "storing {} task samples: {e}", samples.len());
        }
        if let Some(host) = &report.host {
            let t = host.get("t").and_then(Value::as_i64).unwrap_or_else(now_ms);
            if let Err(e) = self.store.insert_host_sample(node, t, host).await {
                tracing::warn!(%node, "storing the node's host sample: {e}");
            }
        }
    }

    /// Sends `command` to the agent of `node` and waits for its answer.
    pub async fn command(
        &self,
        node: &str,
        command: Command,
        timeout: Duration,
    ) -> Result<Value, HubError> {
        let (tx, rx) = oneshot::channel();
        let (id, sender) = {
            let mut state = self.lock();
            state.next_command += 1;
            let id = state.next_command;
            let agent = state
                .agents
                .get_mut(node)
                .filter(|a| a.sender.is_some())
                .ok_or_else(|| HubError::NoAgent(node.to_string()))?;
            agent.pending.insert(id, tx);
            let sender = agent
                .sender
                .clone()
                .ok_or_else(|| HubError::NoAgent(node.to_string()))?;
            (id, sender)
        };
        if sender
            .send(ServerMessage::Command { id, command })
            .await
            .is_err()
        {
            return Err(HubError::Gone(node.to_string()));
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        let mut state = self.lock();
        if let Some(agent) = state.agents.get_mut(node) {
            agent.pending.remove(&id);
        }
        match outcome {
            Err(_) => Err(HubError::Timeout(node.to_string(), timeout.as_secs())),
            Ok(Err(_)) => Err(HubError::Gone(node.to_string())),
            Ok(Ok(Err(error))) => Err(HubError::Refused {
                node: node.to_string(),
                error,
            }),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }

    /// Every agent that ever connected since the server started, by node id.
    pub fn views(&self) -> BTreeMap<String, AgentView> {
        self.lock()
            .agents
            .iter()
            .map(|(node, a)| {
                (
                    node.clone(),
                    AgentView {
                        connected: a.sender.is_some(),
                        version: a.hello.version.clone(),
                        hostname: a.hello.hostname.clone(),
                        last_seen: a.last_seen,
                        connected_since: a.connected_since,
                        disconnected_at: a.disconnected_at,
                        running: a
                            .containers
                            .values()
                            .filter(|c| c.state == "running")
                            .count(),
                    },
                )
            })
            .collect()
    }

    /// The nodes whose agent is connected now.
    pub fn connected(&self) -> HashSet<String> {
        self.lock()
            .agents
            .iter()
            .filter(|(_, a)| a.sender.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The running task containers the connected agents reported, of one app (`Some(uid)`) or
    /// of all.
    pub fn running(&self, uid: Option<&str>) -> Vec<RunningTask> {
        let state = self.lock();
        let mut tasks: Vec<RunningTask> = state
            .agents
            .iter()
            .filter(|(_, a)| a.sender.is_some())
            .flat_map(|(node, a)| {
                a.containers
                    .values()
                    .filter(|c| c.state == "running" && uid.is_none_or(|u| c.uid == u))
                    .map(|c| RunningTask {
                        node: node.clone(),
                        hostname: a.hello.hostname.clone(),
                        container: c.clone(),
                        sample: a.latest.get(&c.id).cloned(),
                    })
            })
            .collect();
        tasks.sort_by(|a, b| {
            (a.container.slot, &a.container.task_id).cmp(&(b.container.slot, &b.container.task_id))
        });
        tasks
    }

    /// The last container transition that changed an app (`task 2 died: exit code 137`).
    pub fn cause(&self, uid: &str) -> Option<String> {
        self.lock().causes.get(uid).cloned()
    }

    /// The latest host reading of `node`.
    pub fn host(&self, node: &str) -> Option<(i64, Value)> {
        self.lock().agents.get(node).and_then(|a| a.host.clone())
    }

    /// Each app's own sample from its tasks' latest ones (read within two intervals of `now`).
    pub fn app_sums(&self, now: i64) -> Vec<Sample> {
        let fresh = 2 * i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX / 4);
        let mut sums: BTreeMap<String, Sample> = BTreeMap::new();
        for task in self.running(None) {
            let Some(s) = task.sample.filter(|s| now - s.sample.t <= fresh) else {
                continue;
            };
            let sum = sums.entry(s.uid.clone()).or_insert_with(|| Sample {
                uid: s.uid.clone(),
                t: now,
                ..Sample::default()
            });
            let x = &s.sample;
            sum.cpu += x.cpu;
            sum.mem += x.mem;
            sum.mem_limit += x.mem_limit;
            sum.mem_max += x.mem_max;
            sum.net_rx += x.net_rx;
            sum.net_tx += x.net_tx;
            sum.blk_read += x.blk_read;
            sum.blk_write += x.blk_write;
            sum.pids += x.pids;
        }
        sums.into_values().collect()
    }

    /// Stores each app's summed sample every interval; abort the handle to stop.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let sums = hub.app_sums(now_ms());
                if let Err(e) = hub.store.insert_samples(&sums).await {
                    tracing::warn!("storing {} app samples: {e}", sums.len());
                }
            }
        })
    }
}

fn fail_pending(agent: &mut Agent, node: &str) {
    for (_, waiting) in agent.pending.drain() {
        let _gone = waiting.send(Err(CommandError {
            code: "Gone".into(),
            message: format!("the agent of node {node} disconnected"),
        }));
    }
    agent.sender = None;
}

/// What a transition says about its app, when it takes a task down.
fn transition_cause(t: &ContainerTransition) -> Option<String> {
    let task = match t.container.slot {
        Some(slot) => format!("task {slot}"),
        None => format!(
            "task {}",
            &t.container.task_id[..t.container.task_id.len().min(12)]
        ),
    };
    let what = match t.action.as_str() {
        "die" => "died",
        "oom" => "was killed for lack of memory",
        "kill" => "was signalled",
        "stop" => "stopped",
        "destroy" => "was removed",
        _ => return None,
    };
    Some(if t.detail.is_empty() {
        format!("{task} {what}")
    } else {
        format!("{task} {what}: {}", t.detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::protocol::{Reply, TaskContainer};

    async fn store_with_app() -> (crate::store::TestDb, Store, String) {
        let db = crate::store::TestDb::sqlite();
        let (store, uid) = crate::store::store_with_one_app(&db).await;
        (db, store, uid)
    }

    fn hello(node: &str) -> Hello {
        Hello {
            protocol: crate::agent::protocol::PROTOCOL,
            node_id: node.into(),
            hostname: format!("host-{node}"),
            version: "test".into(),
            engine_version: None,
            agent_id: format!("agent-{node}"),
        }
    }

    fn task(uid: &str, id: &str, slot: u64, cpu: f64, t: i64) -> (TaskContainer, TaskSample) {
        let container = TaskContainer {
            id: format!("c-{id}"),
            uid: uid.into(),
            namespace: "demo".into(),
            app: "web".into(),
            task_id: id.into(),
            slot: Some(slot),
            state: "running".into(),
        };
        let sample = TaskSample {
            container: container.id.clone(),
            task_id: id.into(),
            uid: uid.into(),
            sample: Sample {
                t,
                cpu,
                mem: 1 << 20,
                mem_limit: 64 << 20,
                ..Sample::default()
            },
        };
        (container, sample)
    }

    #[tokio::test]
    async fn reports_make_task_series_and_app_sums_and_commands_get_answers() {
        let (_dir, store, uid) = store_with_app().await;
        let hub = AgentHub::new(
            store.clone(),
            "i".into(),
            Duration::from_secs(10),
            Arc::new(Notify::new()),
        );
        let now = now_ms();
        let changes = hub.subscribe();
        let (conn_a, mut to_a) = hub.attach(hello("a")).expect("attached");
        let (conn_b, _to_b) = hub.attach(hello("b")).expect("attached");
        // A second agent on node b is refused while the first is heard from.
        let other = Hello {
            agent_id: "another".into(),
            ..hello("b")
        };
        let refused = hub.attach(other).expect_err("one agent per node");
        assert!(
            refused.contains("already has a connected agent"),
            "{refused}"
        );
        assert!(changes.has_changed().expect("open"), "connects are changes");
        for (node, conn, (c, s)) in [
            ("a", conn_a, task(&uid, "t1", 1, 40.0, now)),
            ("b", conn_b, task(&uid, "t2", 2, 10.0, now)),
        ] {
            let report = Report {
                listed_at: now,
                containers: vec![c],
                samples: vec![s],
                host: Some(serde_json::json!({"t": now, "loadAverage": [0.5, 0.4, 0.3]})),
            };
            hub.receive(node, conn, AgentMessage::Report(report)).await;
        }
        // Each task's series is stored under its id; the app's is their sum.
        let series = store
            .stats_series(&uid, "t1", now - 1, now + 1, crate::store::Resolution::Raw)
            .await
            .expect("series");
        assert_eq!(series.len(), 1);
        let sums = hub.app_sums(now + 1);
        assert_eq!(sums.len(), 1);
        assert!((sums[0].cpu - 50.0).abs() < 1e-9, "{:?}", sums[0]);
        assert_eq!(sums[0].mem, 2 << 20);
        // Samples older than two intervals no longer count.
        assert!(hub.app_sums(now + 25_000).is_empty());
        assert_eq!(
            store
                .host_samples("a", now - 1, now + 1, 10)
                .await
                .expect("host")
                .len(),
            1
        );

        // A command goes to the node's connection and comes back by id.
        let answering = {
            let hub = Arc::clone(&hub);
            tokio::spawn(async move {
                let Some(ServerMessage::Command { id, command }) = to_a.recv().await else {
                    panic!("a command");
                };
                assert_eq!(command.container(), "c-t1");
                let reply = Reply {
                    id,
                    ok: Some(serde_json::json!({"done": true})),
                    error: None,
                };
                hub.receive("a", conn_a, AgentMessage::Reply(reply)).await;
                to_a
            })
        };
        let answer = hub
            .command(
                "a",
                Command::Inspect {
                    container: "c-t1".into(),
                },
                Duration::from_secs(5),
            )
            .await
            .expect("answered");
        assert_eq!(answer["done"], true);
        let _to_a = answering.await.expect("agent task");

        // A report listed before a transition does not undo it.
        let (mut died, _) = task(&uid, "t2", 2, 0.0, now);
        died.state = "exited".into();
        hub.receive(
            "b",
            conn_b,
            AgentMessage::Transition(crate::agent::protocol::ContainerTransition {
                container: died,
                action: "die".into(),
                t: now + 100,
                detail: "exit code 137".into(),
            }),
        )
        .await;
        let (stale, s) = task(&uid, "t2", 2, 10.0, now);
        let report = Report {
            listed_at: now + 50,
            containers: vec![stale],
            samples: vec![s],
            host: None,
        };
        hub.receive("b", conn_b, AgentMessage::Report(report.clone()))
            .await;
        assert!(
            hub.running(Some(&uid)).iter().all(|t| t.node != "b"),
            "the older listing must not bring the task back"
        );
        assert_eq!(
            hub.cause(&uid).as_deref(),
            Some("task 2 died: exit code 137")
        );
        // A listing after it counts again.
        let (alive, s) = task(&uid, "t2", 2, 10.0, now);
        let later = Report {
            listed_at: now + 200,
            containers: vec![alive],
            samples: vec![s],
            host: None,
        };
        hub.receive("b", conn_b, AgentMessage::Report(later)).await;
        assert!(hub.running(Some(&uid)).iter().any(|t| t.node == "b"));

        // Gone: nothing it said counts, and its node's commands have nowhere to go.
        hub.detach("a", conn_a);
        assert!(!hub.connected().contains("a"));
        assert_eq!(hub.running(Some(&uid)).len(), 1, "only node b's task");
        assert!(hub.host("a").is_none());
        let refused = hub
            .command(
                "a",
                Command::Inspect {
                    container: "c-t1".into(),
                },
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(refused, Err(HubError::NoAgent("a".into())));
        let views = hub.views();
        assert!(!views["a"].connected && views["a"].disconnected_at.is_some());
        // A stale connection's messages are ignored after a reconnect.
        let (_conn_b2, _rx) = hub.attach(hello("b")).expect("the same agent reconnects");
        let (c, s) = task(&uid, "t9", 3, 99.0, now);
        hub.receive(
            "b",
            conn_b,
            AgentMessage::Report(Report {
                listed_at: now,
                containers: vec![c],
                samples: vec![s],
                host: None,
            }),
        )
        .await;
        assert!(
            hub.running(Some(&uid)).is_empty(),
            "{:?}",
            hub.running(None)
        );
    }
}
