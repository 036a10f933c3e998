//! The swarm planner: a pure function from the declared services and the observed ones to the
//! service writes that make them match, each with its reason. No I/O, no clock of its own,
//! deterministic order. Swarm itself replaces tasks, rolls back and reschedules; wharf only
//! declares services.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::labels;
use crate::runtime::swarm::{NodeState, NodeUpdate, ServiceSpec, ServiceState, TaskState};
use crate::spec::validate::AppKey;

/// One app as a service to declare.
#[derive(Clone, Debug)]
pub struct DesiredService {
    pub uid: String,
    pub generation: i64,
    pub spec: ServiceSpec,
    /// `wharf.hash.service` of `spec`.
    pub hash: String,
    pub deleting: bool,
    /// Retries are held back until then (per-app backoff).
    pub hold_until: Option<Instant>,
    /// Why the app may not run its image (`--require-approved-images`).
    pub unapproved: Option<String>,
    /// Swarm rolled this generation's update back: not tried again until the spec changes.
    pub rolled_back: Option<String>,
}

/// A node as a `kind: Node` object declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredNode {
    pub uid: String,
    /// Hostname or node id.
    pub name: String,
    /// The object is being deleted: it is forgotten, the node left as it is.
    pub deleting: bool,
    pub update: NodeUpdate,
}

/// What the swarm manager reported.
#[derive(Clone, Debug, Default)]
pub struct SwarmObserved {
    pub services: Vec<ServiceState>,
    pub tasks: Vec<TaskState>,
    pub nodes: Vec<NodeState>,
}

impl SwarmObserved {
    /// The services labelled with `uid`, the one named `name` first.
    pub fn services_of<'a>(&'a self, uid: &str, name: &str) -> Vec<&'a ServiceState> {
        let mut out: Vec<&ServiceState> = self
            .services
            .iter()
            .filter(|s| s.spec.labels.get(labels::UID).map(String::as_str) == Some(uid))
            .collect();
        out.sort_by_key(|s| (s.spec.name != name, s.id.clone()));
        out
    }

    pub fn tasks_of<'a>(&'a self, service_id: &str) -> Vec<&'a TaskState> {
        self.tasks
            .iter()
            .filter(|t| t.service_id == service_id)
            .collect()
    }

    /// A node by id or hostname (an id wins).
    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes
            .iter()
            .find(|n| n.id == name)
            .or_else(|| self.nodes.iter().find(|n| n.hostname == name))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ServiceAction {
    Create {
        spec: ServiceSpec,
    },
    Update {
        id: String,
        version: u64,
        spec: ServiceSpec,
        /// The `ForceUpdate` counter to send (one more than the service's replaces every task).
        force_update: u64,
    },
    Remove {
        id: String,
        name: String,
    },
    /// The service is gone: forget the deleted object.
    Forget {
        uid: String,
    },
    UpdateNode {
        id: String,
        version: u64,
        update: NodeUpdate,
    },
}

impl ServiceAction {
    pub fn verb(&self) -> &'static str {
        match self {
            ServiceAction::Create { .. } => "ServiceCreated",
            ServiceAction::Update { .. } => "ServiceUpdated",
            ServiceAction::Remove { .. } => "ServiceRemoved",
            ServiceAction::Forget { .. } => "Deleted",
            ServiceAction::UpdateNode { .. } => "NodeUpdated",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStep {
    pub action: ServiceAction,
    pub reason: String,
}

/// One app's (or node's) steps, and why it waits when it has none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServicePlan {
    pub uid: Option<String>,
    pub steps: Vec<ServiceStep>,
    /// Why nothing is done although the service does not match (held back, not approved,
    /// rolled back).
    pub waiting: Option<(&'static str, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct SwarmPlan {
    pub apps: BTreeMap<AppKey, ServicePlan>,
    /// Declared nodes, by object key (cluster-scoped: empty namespace).
    pub nodes: BTreeMap<AppKey, ServicePlan>,
    /// Look again this soon at the latest: Swarm reports task progress by no event.
    pub requeue: Option<Duration>,
}

/// How often a pass looks while Swarm is still moving tasks (task progress comes with no
/// event). A look is three calls to the manager (services, tasks, nodes); passes are also
/// spaced by `min_pass_interval`.
pub const PROGRESS_POLL: Duration = Duration::from_millis(250);

/// The service writes that make `observed` match `desired` (`frozen`: uids whose spec no
/// longer reads; their services are left alone).
pub fn plan(
    desired: &BTreeMap<AppKey, DesiredService>,
    nodes: &BTreeMap<AppKey, DesiredNode>,
    frozen: &BTreeSet<String>,
    observed: &SwarmObserved,
    now: Instant,
) -> SwarmPlan {
    let mut out = SwarmPlan::default();
    let requeue = |d: Duration, out: &mut SwarmPlan| {
        out.requeue = Some(out.requeue.map_or(d, |r| r.min(d)));
    };
    for (key, app) in desired {
        let services = observed.services_of(&app.uid, &app.spec.name);
        let mut plan = ServicePlan {
            uid: Some(app.uid.clone()),
            ..ServicePlan::default()
        };
        for extra in services.iter().skip(1) {
            plan.steps.push(ServiceStep {
                action: ServiceAction::Remove {
                    id: extra.id.clone(),
                    name: extra.spec.name.clone(),
                },
                reason: format!("a second service {} for the app", extra.spec.name),
            });
        }
        let service = services.first().copied();
        if app.deleting {
            match service {
                Some(s) => plan.steps.push(ServiceStep {
                    action: ServiceAction::Remove {
                        id: s.id.clone(),
                        name: s.spec.name.clone(),
                    },
                    reason: "the app is being deleted".into(),
                }),
                None if services.is_empty() => plan.steps.push(ServiceStep {
                    action: ServiceAction::Forget {
                        uid: app.uid.clone(),
                    },
                    reason: "its service is gone".into(),
                }),
                None => {}
            }
            out.apps.insert(key.clone(), plan);
            continue;
        }
        if let Some(s) = service
            && (s.update_status.as_ref().is_some_and(|u| u.in_progress())
                || !tasks_settled(s, &observed.tasks_of(&s.id)))
        {
            requeue(PROGRESS_POLL, &mut out);
        }
        let change = match service {
            None => Some((
                ServiceAction::Create {
                    spec: app.spec.clone(),
                },
                "no service".to_string(),
            )),
            Some(s) => {
                let hash = s.spec.labels.get(super::HASH_LABEL).map(String::as_str);
                let differences = app.spec.differences(&s.spec);
                if hash != Some(app.hash.as_str()) {
                    Some((
                        ServiceAction::Update {
                            id: s.id.clone(),
                            version: s.version,
                            spec: app.spec.clone(),
                            force_update: s.force_update,
                        },
                        format!(
                            "spec changed (generation {}): {}",
                            app.generation,
                            differences.join(", ")
                        ),
                    ))
                } else if !differences.is_empty() {
                    Some((
                        ServiceAction::Update {
                            id: s.id.clone(),
                            version: s.version,
                            spec: app.spec.clone(),
                            force_update: s.force_update,
                        },
                        format!("changed behind wharf's back: {}", differences.join(", ")),
                    ))
                } else {
                    None
                }
            }
        };
        if let Some((action, reason)) = change {
            if let Some(why) = &app.unapproved {
                plan.waiting = Some((super::super::plan::IMAGE_NOT_APPROVED, why.clone()));
            } else if let Some(message) = &app.rolled_back {
                plan.waiting = Some(("RolledBack", message.clone()));
            } else if let Some(t) = app.hold_until.filter(|t| *t > now) {
                plan.waiting = Some((
                    "BackOff",
                    format!(
                        "retrying in {}s: {reason}",
                        t.duration_since(now).as_secs().max(1)
                    ),
                ));
                requeue(t.duration_since(now), &mut out);
            } else {
                plan.steps.push(ServiceStep { action, reason });
            }
        }
        out.apps.insert(key.clone(), plan);
    }

    // Services of this instance that no object declares (and whose object is not frozen).
    let declared: BTreeSet<&str> = desired.values().map(|a| a.uid.as_str()).collect();
    for s in &observed.services {
        let uid = s.spec.labels.get(labels::UID).map(String::as_str);
        if uid.is_some_and(|u| declared.contains(u) || frozen.contains(u)) {
            continue;
        }
        let key = AppKey {
            namespace: s
                .spec
                .labels
                .get(labels::NAMESPACE)
                .cloned()
                .unwrap_or_default(),
            name: s.spec.labels.get(labels::APP).cloned().unwrap_or_default(),
        };
        out.apps.entry(key).or_default().steps.push(ServiceStep {
            action: ServiceAction::Remove {
                id: s.id.clone(),
                name: s.spec.name.clone(),
            },
            reason: "orphan: no App declares it".into(),
        });
    }

    for (key, node) in nodes {
        let mut plan = ServicePlan {
            uid: Some(node.uid.clone()),
            ..ServicePlan::default()
        };
        if node.deleting {
            plan.steps.push(ServiceStep {
                action: ServiceAction::Forget {
                    uid: node.uid.clone(),
                },
                reason: "the Node object is deleted; the node stays as it is".into(),
            });
            out.nodes.insert(key.clone(), plan);
            continue;
        }
        match observed.node(&node.name) {
            None => {
                plan.waiting = Some((
                    "NodeNotFound",
                    format!("no node of the swarm has the id or hostname {}", node.name),
                ))
            }
            Some(n) => {
                let mut changed = Vec::new();
                if n.availability != node.update.availability {
                    changed.push(format!(
                        "availability {}→{}",
                        n.availability, node.update.availability
                    ));
                }
                if n.labels != node.update.labels {
                    changed.push("labels".to_string());
                }
                if !changed.is_empty() {
                    plan.steps.push(ServiceStep {
                        action: ServiceAction::UpdateNode {
                            id: n.id.clone(),
                            version: n.version,
                            update: node.update.clone(),
                        },
                        reason: changed.join(", "),
                    });
                }
            }
        }
        out.nodes.insert(key.clone(), plan);
    }
    out
}

/// Every task Swarm wants running runs, and no task is on its way up or down.
fn tasks_settled(service: &ServiceState, tasks: &[&TaskState]) -> bool {
    let wanted = tasks
        .iter()
        .filter(|t| t.desired_state == "running")
        .count();
    let running = tasks
        .iter()
        .filter(|t| t.desired_state == "running" && t.is_running())
        .count();
    let stopping = tasks
        .iter()
        .filter(|t| t.desired_state != "running" && t.is_running())
        .count();
    let replicas = match service.spec.mode {
        crate::runtime::swarm::ServiceMode::Replicated { replicas } => Some(replicas as usize),
        crate::runtime::swarm::ServiceMode::Global => None,
    };
    wanted == running && stopping == 0 && replicas.is_none_or(|r| r == running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::swarm::{ServiceMode, ServiceRestart, ServiceUpdateConfig, UpdateStatus};
    use crate::spec::wire::{FailureAction, UpdateOrder};

    fn spec(name: &str, replicas: u64, hash: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            labels: BTreeMap::from([
                (labels::UID.to_string(), format!("uid-{name}")),
                (labels::NAMESPACE.to_string(), "demo".to_string()),
                (labels::APP.to_string(), name.to_string()),
                (super::super::HASH_LABEL.to_string(), hash.to_string()),
            ]),
            container_labels: BTreeMap::new(),
            image: "busybox:1".into(),
            entrypoint: None,
            command: None,
            env: vec![],
            working_dir: None,
            mounts: vec![],
            healthcheck: None,
            stop_grace_ns: None,
            cap_add: vec![],
            cap_drop: vec![],
            memory: None,
            nano_cpus: None,
            pids: None,
            reserve_memory: None,
            reserve_nano_cpus: None,
            restart: ServiceRestart {
                condition: "any",
                max_attempts: None,
                delay_ns: None,
            },
            constraints: vec![],
            spread: vec![],
            max_replicas_per_node: None,
            mode: ServiceMode::Replicated { replicas },
            update: ServiceUpdateConfig {
                parallelism: 1,
                delay_ns: 0,
                order: UpdateOrder::StopFirst,
                failure_action: FailureAction::Rollback,
                monitor_ns: 5_000_000_000,
                max_failure_ratio: 0.0,
            },
            ports: vec![],
        }
    }

    fn app(name: &str, replicas: u64, hash: &str) -> (AppKey, DesiredService) {
        (
            AppKey {
                namespace: "demo".into(),
                name: name.into(),
            },
            DesiredService {
                uid: format!("uid-{name}"),
                generation: 1,
                spec: spec(name, replicas, hash),
                hash: hash.into(),
                deleting: false,
                hold_until: None,
                unapproved: None,
                rolled_back: None,
            },
        )
    }

    fn service(spec: ServiceSpec) -> ServiceState {
        ServiceState {
            id: format!("svc-{}", spec.name),
            version: 7,
            spec,
            force_update: 0,
            update_status: None,
            created_at: None,
            updated_at: None,
        }
    }

    fn run(
        desired: &[(AppKey, DesiredService)],
        observed: &SwarmObserved,
    ) -> BTreeMap<String, Vec<String>> {
        let desired: BTreeMap<_, _> = desired.iter().cloned().collect();
        plan(
            &desired,
            &BTreeMap::new(),
            &BTreeSet::new(),
            observed,
            Instant::now(),
        )
        .apps
        .into_iter()
        .map(|(k, p)| {
            (
                k.name,
                p.steps
                    .iter()
                    .map(|s| format!("{} ({})", s.action.verb(), s.reason))
                    .collect(),
            )
        })
        .collect()
    }

    #[test]
    fn a_missing_service_is_created_and_a_matching_one_left_alone() {
        let observed = SwarmObserved {
            services: vec![service(spec("b", 2, "h"))],
            ..SwarmObserved::default()
        };
        let steps = run(&[app("a", 1, "h"), app("b", 2, "h")], &observed);
        assert_eq!(steps["a"], ["ServiceCreated (no service)"]);
        assert!(
            steps["b"].is_empty(),
            "unchanged re-apply: {:?}",
            steps["b"]
        );
    }

    #[test]
    fn a_spec_change_is_one_update_naming_what_changed() {
        let observed = SwarmObserved {
            services: vec![service(spec("a", 2, "old"))],
            ..SwarmObserved::default()
        };
        let steps = run(&[app("a", 3, "new")], &observed);
        assert_eq!(
            steps["a"],
            ["ServiceUpdated (spec changed (generation 1): replicas)"]
        );
    }

    #[test]
    fn a_change_behind_wharfs_back_is_put_back() {
        let mut scaled = spec("a", 5, "h");
        scaled.env = vec!["X=1".into()];
        let observed = SwarmObserved {
            services: vec![service(scaled)],
            ..SwarmObserved::default()
        };
        let steps = run(&[app("a", 2, "h")], &observed);
        assert_eq!(
            steps["a"],
            ["ServiceUpdated (changed behind wharf's back: env, replicas)"]
        );
    }

    #[test]
    fn a_rolled_back_generation_is_not_tried_again() {
        let mut s = service(spec("a", 2, "old"));
        s.update_status = Some(UpdateStatus {
            state: "rollback_completed".into(),
            message: Some("update rolled back".into()),
            ..UpdateStatus::default()
        });
        let observed = SwarmObserved {
            services: vec![s],
            ..SwarmObserved::default()
        };
        let (key, mut a) = app("a", 2, "new");
        a.rolled_back = Some("update rolled back".into());
        let desired = BTreeMap::from([(key.clone(), a)]);
        let p = plan(
            &desired,
            &BTreeMap::new(),
            &BTreeSet::new(),
            &observed,
            Instant::now(),
        );
        assert!(p.apps[&key].steps.is_empty());
        assert_eq!(
            p.apps[&key].waiting.as_ref().map(|w| w.0),
            Some("RolledBack")
        );
    }

    #[test]
    fn orphans_are_removed_and_deleted_apps_forgotten_once_gone() {
        let observed = SwarmObserved {
            services: vec![service(spec("gone", 1, "h")), service(spec("d", 1, "h"))],
            ..SwarmObserved::default()
        };
        let (k, mut d) = app("d", 1, "h");
        d.deleting = true;
        let steps = run(&[(k.clone(), d.clone())], &observed);
        assert_eq!(
            steps["gone"],
            ["ServiceRemoved (orphan: no App declares it)"]
        );
        assert_eq!(steps["d"], ["ServiceRemoved (the app is being deleted)"]);
        let steps = run(&[(k, d)], &SwarmObserved::default());
        assert_eq!(steps["d"], ["Deleted (its service is gone)"]);
    }

    #[test]
    fn an_unsettled_service_is_looked_at_again_soon() {
        let mut observed = SwarmObserved {
            services: vec![service(spec("a", 2, "h"))],
            ..SwarmObserved::default()
        };
        observed.tasks.push(TaskState {
            id: "t1".into(),
            service_id: "svc-a".into(),
            state: "running".into(),
            desired_state: "running".into(),
            ..TaskState::default()
        });
        let desired: BTreeMap<_, _> = [app("a", 2, "h")].into_iter().collect();
        let p = plan(
            &desired,
            &BTreeMap::new(),
            &BTreeSet::new(),
            &observed,
            Instant::now(),
        );
        assert_eq!(p.requeue, Some(PROGRESS_POLL), "1 of 2 replicas running");
    }
}
