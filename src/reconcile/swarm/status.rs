//! An app's status in swarm mode, computed from its service, the service's tasks and the
//! nodes they run on. Pure.

use crate::reconcile::memory::Failure;
use crate::reconcile::status::{condition, synced};
use crate::runtime::swarm::{NodeState, ServiceMode, ServiceState, TaskState};
use crate::spec::status::{
    AppStatus, NodeStatus, Phase, ReplicaCounts, RolledBackStatus, TaskNode, TaskStatus,
};

use super::plan::{DesiredService, ServicePlan};

/// The tasks that stand for the service now: per slot (per node for a global service) the
/// newest task, preferring one Swarm wants running.
pub fn current_tasks<'a>(tasks: &[&'a TaskState]) -> Vec<&'a TaskState> {
    let mut by_place: std::collections::BTreeMap<(Option<u64>, Option<&str>), &TaskState> =
        std::collections::BTreeMap::new();
    for t in tasks {
        let place = match t.slot {
            Some(slot) => (Some(slot), None),
            None => (None, t.node_id.as_deref()),
        };
        let better = |old: &TaskState| {
            let rank = |t: &TaskState| (t.desired_state == "running", t.created_at.clone());
            rank(t) > rank(old)
        };
        match by_place.get(&place) {
            Some(old) if !better(old) => {}
            _ => {
                by_place.insert(place, t);
            }
        }
    }
    by_place.into_values().collect()
}

/// What the manager reported about one app.
pub struct Seen<'a> {
    pub service: Option<&'a ServiceState>,
    /// The service's tasks (any state).
    pub tasks: &'a [&'a TaskState],
    pub nodes: &'a [NodeState],
}

/// The status of `app` from what the manager reported.
pub fn compute(
    app: &DesiredService,
    seen: Seen<'_>,
    plan: Option<&ServicePlan>,
    failure: Option<&Failure>,
    previous: Option<&AppStatus>,
    now: &str,
) -> AppStatus {
    let Seen {
        service,
        tasks,
        nodes,
    } = seen;
    let current = current_tasks(tasks);
    let running = current
        .iter()
        .filter(|t| t.desired_state == "running" && t.is_running())
        .count() as u64;
    let desired = match service.map(|s| s.spec.mode) {
        Some(ServiceMode::Replicated { replicas }) => replicas,
        // A global service wants a task on every node Swarm gave it one.
        Some(ServiceMode::Global) => current
            .iter()
            .filter(|t| t.desired_state == "running")
            .count() as u64,
        None => match app.spec.mode {
            ServiceMode::Replicated { replicas } => replicas,
            ServiceMode::Global => 0,
        },
    };
    let update = service.and_then(|s| s.update_status.clone());
    let updating = update.as_ref().is_some_and(|u| u.in_progress());
    let pending = plan.is_some_and(|p| !p.steps.is_empty());
    let waiting = plan.and_then(|p| p.waiting.clone());
    let current_failure = failure.filter(|f| f.generation == app.generation);
    let matches = service.is_some_and(|s| {
        s.spec.labels.get(super::HASH_LABEL) == Some(&app.hash) && s.spec == app.spec
    });
    let converged = matches && !pending && !updating && running == desired;
    let stopped = desired == 0 && matches!(app.spec.mode, ServiceMode::Replicated { .. });

    let phase = if app.deleting {
        Phase::Terminating
    } else if app.rolled_back.is_some()
        || update
            .as_ref()
            .is_some_and(|u| u.failed() && !u.in_progress())
    {
        Phase::Degraded
    } else if converged && stopped {
        Phase::Stopped
    } else if converged || (running > 0 && running >= desired.min(1)) {
        if running < desired {
            Phase::Degraded
        } else {
            Phase::Running
        }
    } else if current_failure.is_some() {
        Phase::Failed
    } else {
        Phase::Pending
    };

    let failed_task = current
        .iter()
        .filter(|t| t.is_failure())
        .max_by_key(|t| t.created_at.clone())
        .map(|t| {
            format!(
                "task {} {}: {}",
                short(&t.id),
                t.state,
                t.error.clone().or(t.message.clone()).unwrap_or_default()
            )
        });
    let (reason, message) = if converged {
        let reason = if stopped { "Stopped" } else { "Running" };
        (reason.to_string(), String::new())
    } else if app.deleting {
        ("Terminating".into(), "the app is being deleted".into())
    } else if let Some(m) = &app.rolled_back {
        (
            "RolledBack".into(),
            format!(
                "generation {} was rolled back by Swarm: {m}; change the spec to try again",
                app.generation
            ),
        )
    } else if let Some(f) = current_failure {
        (f.reason.clone(), f.message.clone())
    } else if let Some((reason, message)) = &waiting {
        (reason.to_string(), message.clone())
    } else if updating {
        (
            "Updating".into(),
            update
                .as_ref()
                .and_then(|u| u.message.clone())
                .unwrap_or_else(|| "Swarm is replacing the tasks".into()),
        )
    } else if update.as_ref().is_some_and(|u| u.state == "paused") {
        (
            "UpdatePaused".into(),
            update
                .as_ref()
                .and_then(|u| u.message.clone())
                .unwrap_or_default(),
        )
    } else if pending {
        let steps: Vec<_> = plan
            .map(|p| p.steps.iter().map(|s| s.reason.clone()).collect())
            .unwrap_or_default();
        ("Progressing".into(), steps.join("; "))
    } else {
        let mut m = format!("{running} of {desired} replicas running");
        if let Some(f) = &failed_task {
            m.push_str(&format!("; {f}"));
        }
        ("Scaling".into(), m)
    };
    let ready = condition(
        previous.and_then(|p| p.condition("Ready")),
        "Ready",
        converged,
        &reason,
        &message,
        now,
    );
    let synced = synced(
        previous.and_then(|p| p.condition("Synced")),
        current_failure,
        now,
    );
    let hostname = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.hostname.clone())
            .unwrap_or_default()
    };
    let task_views: Vec<TaskStatus> = current
        .iter()
        .map(|t| TaskStatus {
            id: t.id.clone(),
            slot: t.slot,
            node: t.node_id.as_ref().map(|id| TaskNode {
                id: id.clone(),
                hostname: hostname(id),
            }),
            state: t.state.clone(),
            desired_state: t.desired_state.clone(),
            error: t.error.clone(),
            message: t.message.clone(),
            container_id: t.container_id.clone(),
            started_at: t.timestamp.clone(),
        })
        .collect();
    let restart_count = tasks
        .iter()
        .filter(|t| t.is_failure() || t.state == "complete")
        .count() as i64;
    AppStatus {
        phase,
        observed_generation: if converged {
            Some(app.generation)
        } else {
            previous.and_then(|p| p.observed_generation)
        },
        conditions: vec![ready, synced],
        container_id: None,
        container_name: None,
        image_id: None,
        restart_count,
        started_at: current
            .iter()
            .filter(|t| t.is_running())
            .filter_map(|t| t.timestamp.clone())
            .min(),
        exit_code: None,
        message: waiting
            .map(|w| w.1)
            .or_else(|| current_failure.map(|f| f.message.clone()))
            .or(failed_task.filter(|_| !converged)),
        health: None,
        host_port_root: None,
        rolled_back: app.rolled_back.as_ref().map(|m| RolledBackStatus {
            generation: app.generation,
            image_id: None,
            message: m.clone(),
        }),
        service_id: service.map(|s| s.id.clone()),
        replicas: Some(ReplicaCounts {
            desired,
            running,
            ready: running,
        }),
        update_status: update,
        tasks: task_views,
    }
}

/// The status of a `kind: Node` object from the node it names.
pub fn compute_node(
    node: Option<&NodeState>,
    plan: &ServicePlan,
    failure: Option<&Failure>,
    previous: Option<&NodeStatus>,
    now: &str,
) -> NodeStatus {
    let pending = !plan.steps.is_empty();
    let (ok, reason, message) = match (node, failure, &plan.waiting) {
        (_, Some(f), _) => (false, f.reason.clone(), f.message.clone()),
        (_, None, Some((reason, message))) => (false, reason.to_string(), message.clone()),
        (Some(_), None, None) if pending => (
            false,
            "Progressing".to_string(),
            plan.steps
                .iter()
                .map(|s| s.reason.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (Some(_), None, None) => (true, "Applied".to_string(), String::new()),
        (None, None, None) => (false, "NodeNotFound".to_string(), String::new()),
    };
    let previous_ready = previous.and_then(|p| p.conditions.iter().find(|c| c.kind == "Ready"));
    NodeStatus {
        conditions: vec![condition(
            previous_ready,
            "Ready",
            ok,
            &reason,
            &message,
            now,
        )],
        node_id: node.map(|n| n.id.clone()),
        hostname: node.map(|n| n.hostname.clone()),
        availability: node.map(|n| n.availability.clone()),
        state: node.map(|n| n.status.clone()),
        message: (!message.is_empty()).then_some(message),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
