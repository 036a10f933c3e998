//! Swarm mode's task news: the task failures and the tasks moved to another node since the
//! last pass, each reported once as an event on its app. Pure bookkeeping over the observation
//! and the `TaskBook` the memory keeps.

use std::collections::{HashMap, HashSet};

use super::plan::SwarmObserved;
use crate::reconcile::memory::TaskBook;
use crate::runtime::labels;
use crate::store::EventType;

/// A task event to record on an app.
pub(super) struct TaskNews {
    pub(super) uid: String,
    pub(super) kind: EventType,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

/// The task failures and reschedules in `observed` that `book` has not reported yet (it then
/// has).
pub(super) fn task_news(book: &mut TaskBook, observed: &SwarmObserved) -> Vec<TaskNews> {
    let first = book.reported.is_none();
    let reported = book.reported.get_or_insert_with(HashSet::new);
    let uid_of: HashMap<&str, &str> = observed
        .services
        .iter()
        .filter_map(|s| {
            s.spec
                .labels
                .get(labels::UID)
                .map(|u| (s.id.as_str(), u.as_str()))
        })
        .collect();
    let hostname = |id: &str| {
        observed
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(id.to_string(), |n| n.hostname.clone())
    };
    let mut out = Vec::new();
    for t in &observed.tasks {
        let Some(uid) = uid_of.get(t.service_id.as_str()) else {
            continue;
        };
        if t.is_failure() && reported.insert(t.id.clone()) && !first {
            out.push(TaskNews {
                uid: uid.to_string(),
                kind: EventType::Warning,
                reason: "TaskFailed",
                message: format!(
                    "task {} (slot {}) on {} {}: {}",
                    &t.id[..t.id.len().min(12)],
                    t.slot.map_or("-".to_string(), |s| s.to_string()),
                    t.node_id.as_deref().map_or("no node".into(), hostname),
                    t.state,
                    t.error
                        .clone()
                        .or(t.message.clone())
                        .unwrap_or_else(|| "no reason given".into())
                ),
            });
        }
        if let (Some(slot), Some(node), true) = (t.slot, &t.node_id, t.is_running()) {
            let place = (t.service_id.clone(), slot);
            match book.placed.insert(place, node.clone()) {
                Some(before) if before != *node => out.push(TaskNews {
                    uid: uid.to_string(),
                    kind: EventType::Normal,
                    reason: "TaskRescheduled",
                    message: format!(
                        "slot {slot} moved from {} to {}",
                        hostname(&before),
                        hostname(node)
                    ),
                }),
                _ => {}
            }
        }
    }
    let live: HashSet<&str> = observed.tasks.iter().map(|t| t.id.as_str()).collect();
    reported.retain(|id| live.contains(id.as_str()));
    let services: HashSet<&str> = observed.services.iter().map(|s| s.id.as_str()).collect();
    book.placed
        .retain(|(service, _), _| services.contains(service.as_str()));
    out
}
