//! The swarm backend: observe → plan → execute for Swarm services, beside the solo backend's
//! containers, sharing everything above them (store, desired objects and the approval gate,
//! the loop's wake-ups, memory and backoff, statuses and events).
//!
//! - `declare`: an App as the `ServiceSpec` wharf wants (pure).
//! - `plan`: the pure planner.
//! - `status`: an app's status from its service and tasks (pure).
//! - `tasks`: which task failures and moves are news (events).
//! - `execute`: the executor of service steps, and the forced update behind restart and hard
//!   reset.
//! - here: the pass (observe the manager, learn from rollbacks, plan, publish, hand out work)
//!   and the dry run's plan.
//!
//! Swarm schedules, replaces and rolls back tasks; wharf never touches a task or a container
//! in swarm mode.

pub mod declare;
mod execute;
pub mod plan;
pub mod status;
mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::controller::Controller;
use super::memory::Failure;
use super::plan::Desired;
use crate::runtime::RuntimeError;
use crate::runtime::swarm::Swarm;
use crate::spec::Kind;
use crate::spec::image::CredentialsRef;
use crate::spec::reference::canonical_reference;
use crate::spec::status::ObjectStatus;
use crate::spec::validate::AppKey;
use crate::store::{ObjectRecord, now_rfc3339};
pub use declare::{HASH_LABEL, OWNER_LABEL, declare, pinned_image, service_name};
use plan::{DesiredService, SwarmObserved};
use tasks::task_news;

impl Controller {
    /// One swarm pass over `records` (already in `desired`). Returns when the next pass is due
    /// at the latest.
    pub(super) async fn swarm_pass(
        self: &Arc<Self>,
        swarm: &Arc<dyn Swarm>,
        records: &[ObjectRecord],
        desired: &Desired,
        observed_at: Instant,
    ) -> Option<Duration> {
        let observed = match observe(swarm.as_ref(), &self.config.instance).await {
            Ok(o) => o,
            Err(e) => return self.docker_failed(e.to_string()),
        };
        let by_uid: HashMap<&str, &ObjectRecord> =
            records.iter().map(|r| (r.uid.as_str(), r)).collect();
        self.learn_rollbacks(desired, &observed, observed_at);
        let now = Instant::now();
        let services = self.desired_services(desired, &observed, now);
        let nodes = desired_nodes(records);
        let the_plan = plan::plan(&services, &nodes, &desired.frozen_uids, &observed, now);
        self.health.send_modify(|h| h.passes += 1);
        self.metrics.passes.inc();

        let news = task_news(&mut self.memory().tasks, &observed);
        for n in news {
            if let Some(record) = by_uid.get(n.uid.as_str()) {
                tracing::info!(app = %record.key, "{}: {}", n.reason, n.message);
                self.event(record, n.kind, n.reason, &n.message).await;
            }
        }
        self.write_swarm_statuses(&services, &observed, &the_plan, &by_uid, observed_at)
            .await;
        self.metrics
            .pass_seconds
            .observe(observed_at.elapsed().as_secs_f64());
        if self.cancel.is_cancelled() {
            return None;
        }
        self.check_images(desired, observed_at);
        for (key, service_plan) in the_plan.apps.iter().chain(the_plan.nodes.iter()) {
            if service_plan.steps.is_empty() {
                continue;
            }
            if !self.claim_fresh(key, observed_at) {
                continue;
            }
            let record = service_plan
                .uid
                .as_deref()
                .and_then(|u| by_uid.get(u))
                .map(|r| (*r).clone());
            let credentials = service_plan
                .uid
                .as_deref()
                .and_then(|u| services.values().find(|s| s.uid == u))
                .and_then(|s| credentials_for(desired, &s.spec.image));
            let this = Arc::clone(self);
            let swarm = Arc::clone(swarm);
            let key = key.clone();
            let service_plan = service_plan.clone();
            self.work.spawn(async move {
                this.swarm_work(swarm, key, record, service_plan, credentials)
                    .await
            });
        }
        let resync = the_plan.requeue;
        let held = services
            .values()
            .filter_map(|s| s.hold_until)
            .filter(|t| *t > now)
            .map(|t| t.duration_since(now))
            .min();
        match (resync, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The dry run's plan in swarm mode: the same observation, memory and planner as a pass.
    pub(super) async fn swarm_preview(
        &self,
        swarm: &dyn Swarm,
        records: &[ObjectRecord],
        desired: &Desired,
        now: Instant,
    ) -> Result<BTreeMap<AppKey, Vec<super::preview::PreviewStep>>, RuntimeError> {
        let observed = observe(swarm, &self.config.instance).await?;
        let services = self.desired_services(desired, &observed, now);
        let nodes = desired_nodes(records);
        let the_plan = plan::plan(&services, &nodes, &desired.frozen_uids, &observed, now);
        Ok(the_plan
            .apps
            .into_iter()
            .map(|(key, p)| {
                let steps = p
                    .steps
                    .into_iter()
                    .map(|s| super::preview::PreviewStep {
                        action: s.action.verb(),
                        reason: s.reason,
                    })
                    .collect();
                (key, steps)
            })
            .collect())
    }

    /// The declared service of every app, with what the memory says about it.
    fn desired_services(
        &self,
        desired: &Desired,
        observed: &SwarmObserved,
        now: Instant,
    ) -> BTreeMap<AppKey, DesiredService> {
        let memory = self.memory();
        desired
            .apps
            .iter()
            .map(|(key, app)| {
                let running = observed
                    .services_of(&app.uid, &service_name(key))
                    .first()
                    .map(|s| s.spec.image.clone());
                let image = pinned_image(&app.spec.container.image, desired, running.as_deref());
                let spec = declare(app, &image, &self.config.instance);
                let hash = spec.labels.get(HASH_LABEL).cloned().unwrap_or_default();
                // The memory, not `app`: this pass may just have learnt of a rollback.
                let rolled_back = memory
                    .get(&app.uid)
                    .filter(|m| m.generation == app.generation)
                    .and_then(|m| m.rolled_back.as_ref())
                    .or(app.rolled_back.as_ref())
                    .map(|r| r.message.clone());
                let hold_until = memory
                    .get(&app.uid)
                    .and_then(|m| m.hold_until)
                    .filter(|t| *t > now);
                (
                    key.clone(),
                    DesiredService {
                        uid: app.uid.clone(),
                        generation: app.generation,
                        hash,
                        deleting: app.deleting,
                        hold_until,
                        unapproved: desired.unapproved(&app.spec.container.image),
                        rolled_back,
                        spec,
                    },
                )
            })
            .collect()
    }

    /// Registry checks of the Images whose `updateInterval` has passed, in the background (one
    /// at a time per Image, held back with its backoff after a failure): a new digest changes
    /// the pinned image of the services using it, and the next pass rolls them.
    fn check_images(self: &Arc<Self>, desired: &Desired, observed_at: Instant) {
        for (key, image) in &desired.images {
            if image.deleting
                || !image.check_due
                || image.hold_until.is_some()
                || image.spec.pull_policy == crate::spec::image::PullPolicy::Never
            {
                continue;
            }
            if !self.claim_fresh(key, observed_at) {
                continue;
            }
            let this = Arc::clone(self);
            let key = key.clone();
            let uid = image.uid.clone();
            let reference = image.spec.canonical.clone();
            let credentials = image.spec.credentials.clone();
            self.work.spawn(async move {
                let result = this.images.check(&reference, credentials.as_ref()).await;
                let now = Instant::now();
                if let Some(m) = this.memory().get_mut(&uid) {
                    match &result {
                        Ok(_) => m.failure = None,
                        Err(e) => {
                            tracing::warn!(image = %key, "registry check failed: {e}");
                            m.failure = Some(Failure {
                                generation: m.generation,
                                reason: e.reason().to_string(),
                                message: format!("registry check failed: {e}"),
                            });
                            m.hold(now);
                        }
                    }
                }
                this.release(&key);
                this.observed.notify_one();
            });
        }
    }

    /// A service whose update this generation made was rolled back (by Swarm on failure, or
    /// by hand) or paused on failure: the app remembers it (and its status keeps it across
    /// restarts), and the update is not sent again until the spec changes. A service that
    /// carries another spec than the one wharf last sent it has been taken back to an earlier
    /// one, whatever state Swarm's update report is in yet.
    fn learn_rollbacks(&self, desired: &Desired, observed: &SwarmObserved, observed_at: Instant) {
        let mut memory = self.memory();
        let state = self.lock();
        for (key, app) in &desired.apps {
            // Work running or finished since the observation: it does not show its effect.
            if state.is_stale(key, observed_at) {
                continue;
            }
            let Some(m) = memory.get_mut(&app.uid) else {
                continue;
            };
            let Some(attempted) = m.attempted.clone() else {
                continue;
            };
            if m.rolled_back.is_some() {
                continue;
            }
            let name = service_name(&app.spec.key);
            let Some(service) = observed.services_of(&app.uid, &name).first().copied() else {
                continue;
            };
            let update = service.update_status.as_ref();
            let on_service = service.spec.labels.get(HASH_LABEL);
            let reverted = on_service != Some(&attempted);
            let paused =
                on_service == Some(&attempted) && update.is_some_and(|u| u.state == "paused");
            if !(reverted || paused) {
                continue;
            }
            let message = update
                .and_then(|u| u.message.clone())
                .filter(|m| !m.is_empty() && m != "update in progress")
                .unwrap_or_else(|| match update {
                    Some(u) if paused => format!("update {}", u.state),
                    _ => "the service was taken back to its previous spec".to_string(),
                });
            tracing::warn!(app = %app.spec.key, "Swarm did not keep the update: {message}");
            m.rolled_back = Some(super::plan::RolledBack {
                image_id: None,
                message,
            });
        }
    }

    async fn write_swarm_statuses(
        &self,
        services: &BTreeMap<AppKey, DesiredService>,
        observed: &SwarmObserved,
        the_plan: &plan::SwarmPlan,
        by_uid: &HashMap<&str, &ObjectRecord>,
        observed_at: Instant,
    ) {
        let now = now_rfc3339();
        let mut changed = Vec::new();
        for (key, app) in services {
            if self.lock().is_stale(key, observed_at) {
                continue;
            }
            let failure: Option<Failure> =
                self.memory().get(&app.uid).and_then(|m| m.failure.clone());
            let Some(record) = by_uid.get(app.uid.as_str()) else {
                continue;
            };
            let service = observed
                .services_of(&app.uid, &app.spec.name)
                .first()
                .copied();
            let tasks = service
                .map(|s| observed.tasks_of(&s.id))
                .unwrap_or_default();
            let seen = status::Seen {
                service,
                tasks: &tasks,
                nodes: &observed.nodes,
            };
            let computed = status::compute(
                app,
                seen,
                the_plan.apps.get(key),
                failure.as_ref(),
                record.app_status(),
                &now,
            );
            let computed = ObjectStatus::App(computed);
            if record.status.as_ref() != Some(&computed) {
                changed.push((record.uid.clone(), computed));
            }
        }
        for (key, node) in &the_plan.nodes {
            let Some(record) = node.uid.as_deref().and_then(|u| by_uid.get(u)) else {
                continue;
            };
            if self.lock().is_stale(key, observed_at) {
                continue;
            }
            let failure = self
                .memory()
                .get(&record.uid)
                .and_then(|m| m.failure.clone());
            let computed = ObjectStatus::Node(status::compute_node(
                observed.node(&record.key.name),
                node,
                failure.as_ref(),
                record.status.as_ref().and_then(|s| match s {
                    ObjectStatus::Node(n) => Some(n),
                    _ => None,
                }),
                &now,
            ));
            if record.status.as_ref() != Some(&computed) {
                changed.push((record.uid.clone(), computed));
            }
        }
        self.store_statuses(changed, by_uid).await;
    }
}

/// The manager's services of this instance, their tasks and the nodes: all, or an error.
async fn observe(swarm: &dyn Swarm, instance: &str) -> Result<SwarmObserved, RuntimeError> {
    let (services, nodes) = tokio::try_join!(swarm.services(instance), swarm.nodes())?;
    let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
    let tasks = swarm.tasks(&ids).await?;
    Ok(SwarmObserved {
        services,
        tasks,
        nodes,
    })
}

/// The nodes `kind: Node` objects declare (swarm mode), by object key.
fn desired_nodes(records: &[ObjectRecord]) -> BTreeMap<AppKey, plan::DesiredNode> {
    let mut out = BTreeMap::new();
    for record in records.iter().filter(|r| r.kind == Kind::Node) {
        match record.node_spec() {
            Ok(spec) => {
                out.insert(
                    record.key.clone(),
                    plan::DesiredNode {
                        uid: record.uid.clone(),
                        name: spec.key.name.clone(),
                        deleting: record.is_terminating(),
                        update: crate::runtime::swarm::NodeUpdate {
                            availability: spec.availability.as_str().to_string(),
                            labels: spec.labels,
                        },
                    },
                );
            }
            Err(e) => {
                tracing::error!(node = %record.key, "stored Node no longer validates; left alone: {e}")
            }
        }
    }
    out
}

/// The credentials of the Image object that declares `image`, if any.
fn credentials_for(desired: &Desired, image: &str) -> Option<CredentialsRef> {
    let canonical = canonical_reference(image).ok()?;
    desired.pull_policy(&canonical).1.cloned()
}
