//! Uptime of swarm apps, from what the node agents see: an app is up while the running
//! replicas its agents confirm are at least the desired count (and at least one); fewer is
//! `partial` (down, with how many run); a task on a node whose agent is not connected makes the
//! app unknown unless the confirmed replicas already suffice — a node nobody watches never
//! counts as up. Transitions are recorded when the state changes: at once on an agent's
//! connect, disconnect or container transition, and at the latest every `RECHECK`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::hub::AgentHub;
use crate::spec::Kind;
use crate::spec::status::ObjectStatus;
use crate::store::Store;
use crate::store::stats::{Transition, UpState};

/// The longest time between two evaluations (statuses move without agent messages too).
const RECHECK: Duration = Duration::from_secs(5);

/// An app's availability now: `(state, event, detail)`.
pub fn availability(
    desired: u64,
    confirmed: usize,
    task_nodes: &[(String, String)],
    connected: &HashSet<String>,
    cause: Option<&str>,
) -> (UpState, &'static str, String) {
    let confirmed = confirmed as u64;
    let because = cause.map(|c| format!(" ({c})")).unwrap_or_default();
    if desired == 0 {
        return (UpState::Down, "stopped", "no replica is wanted".into());
    }
    if confirmed >= desired {
        return (
            UpState::Up,
            "running",
            format!("{confirmed} of {desired} replicas running"),
        );
    }
    let mut unwatched: Vec<&str> = task_nodes
        .iter()
        .filter(|(id, _)| !connected.contains(id))
        .map(|(_, name)| name.as_str())
        .collect();
    unwatched.sort_unstable();
    unwatched.dedup();
    if !unwatched.is_empty() {
        return (
            UpState::Unknown,
            "unwatched",
            format!(
                "no agent connected on node {} ({confirmed} of {desired} replicas confirmed running)",
                unwatched.join(", ")
            ),
        );
    }
    if confirmed == 0 {
        (
            UpState::Down,
            "died",
            format!("no replica running{because}"),
        )
    } else {
        (
            UpState::Down,
            "partial",
            format!("{confirmed} of {desired} replicas running{because}"),
        )
    }
}

/// Records transitions of every swarm app.
pub struct SwarmUptime {
    store: Store,
    hub: Arc<AgentHub>,
}

impl SwarmUptime {
    pub fn spawn(store: Store, hub: Arc<AgentHub>) -> JoinHandle<()> {
        let me = Self { store, hub };
        tokio::spawn(async move { me.run().await })
    }

    async fn run(self) {
        let mut changes = self.hub.subscribe();
        let mut last: HashMap<String, (UpState, String)> = HashMap::new();
        loop {
            if let Err(e) = self.evaluate(&mut last).await {
                tracing::debug!("swarm uptime not evaluated: {e}");
            }
            // A change or the recheck, whichever comes first; a closed channel means the
            // server is stopping.
            if let Ok(Err(_)) = tokio::time::timeout(RECHECK, changes.changed()).await {
                return;
            }
        }
    }

    async fn evaluate(
        &self,
        last: &mut HashMap<String, (UpState, String)>,
    ) -> Result<(), crate::store::StoreError> {
        let apps = self.store.list(Kind::App, None).await?;
        let connected = self.hub.connected();
        let running = self.hub.running(None);
        let now = chrono::Utc::now().timestamp_millis();
        let mut transitions = Vec::new();
        for record in &apps {
            let Some(ObjectStatus::App(status)) = &record.status else {
                continue;
            };
            let Some(replicas) = status.replicas else {
                continue;
            };
            // (node id, the name to show: its hostname when known)
            let task_nodes: Vec<(String, String)> = status
                .tasks
                .iter()
                .filter(|t| t.desired_state == "running")
                .filter_map(|t| t.node.as_ref())
                .map(|n| {
                    let name = if n.hostname.is_empty() {
                        &n.id
                    } else {
                        &n.hostname
                    };
                    (n.id.clone(), name.clone())
                })
                .collect();
            let confirmed = running
                .iter()
                .filter(|t| t.container.uid == record.uid)
                .count();
            let cause = self.hub.cause(&record.uid);
            let (state, event, detail) = availability(
                replicas.desired,
                confirmed,
                &task_nodes,
                &connected,
                cause.as_deref(),
            );
            let key = (state, event.to_string());
            if last.get(&record.uid) == Some(&key) {
                continue;
            }
            last.insert(record.uid.clone(), key);
            transitions.push(Transition {
                uid: record.uid.clone(),
                t: now,
                state,
                event: event.to_string(),
                detail,
            });
        }
        let live: HashSet<&str> = apps.iter().map(|r| r.uid.as_str()).collect();
        last.retain(|uid, _| live.contains(uid.as_str()));
        self.store.insert_transitions(&transitions).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter()
            .map(|s| (s.to_string(), format!("host-{s}")))
            .collect()
    }

    #[test]
    fn up_needs_every_desired_replica_confirmed_by_an_agent() {
        let all: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let tasks = nodes(&["a", "b", "c"]);
        assert_eq!(availability(3, 3, &tasks, &all, None).0, UpState::Up);
        let (state, event, detail) = availability(3, 2, &tasks, &all, Some("task 2 died"));
        assert_eq!((state, event), (UpState::Down, "partial"));
        assert_eq!(detail, "2 of 3 replicas running (task 2 died)");
        assert_eq!(availability(3, 0, &tasks, &all, None).1, "died");
        assert_eq!(availability(0, 0, &[], &all, None).1, "stopped");
    }

    #[test]
    fn a_node_without_an_agent_is_unknown_never_up() {
        let some: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let tasks = nodes(&["a", "b", "c"]);
        let (state, event, detail) = availability(3, 2, &tasks, &some, None);
        assert_eq!((state, event), (UpState::Unknown, "unwatched"));
        assert!(detail.contains("node host-c"), "{detail}");
        // No agent at all: unknown, even though Swarm says the tasks run.
        assert_eq!(
            availability(1, 0, &nodes(&["a"]), &HashSet::new(), None).0,
            UpState::Unknown
        );
        // Enough replicas confirmed elsewhere: up.
        assert_eq!(availability(2, 2, &tasks, &some, None).0, UpState::Up);
    }
}
