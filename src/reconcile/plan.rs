//! The planner: a pure function from desired and observed state to a plan of steps, each with
//! the reason it is needed.
//!
//! No I/O, no clock of its own (`now` is an argument), deterministic order (BTreeMap). The
//! executor interprets the plan and decides nothing; the loop feeds it fresh, complete
//! observations only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::image_match::{find_local, has_digest, repo_digest};
use crate::runtime::{
    ContainerDetails, ContainerState, ContainerSummary, CreateSpec, ImageSummary, labels,
};
use crate::spec::image::{
    CredentialsRef, ImageSpec, PullPolicy, RequestState, canonical_reference,
};
use crate::spec::quantity::format_bytes;
use crate::spec::validate::{AppKey, AppSpec, Hashes, Limits, Restart, is_image_id};
use crate::spec::wire::DesiredState;

/// One app as the store holds it.
#[derive(Clone, Debug)]
pub struct DesiredApp {
    pub uid: String,
    pub generation: i64,
    pub spec: AppSpec,
    pub hashes: Hashes,
    pub deleting: bool,
    /// Repairs and retries for this app are held back until then (per-app backoff).
    pub hold_until: Option<Instant>,
    /// Repairs already made in this crash loop (on-failure `maxRetries` counts them).
    pub repairs: u32,
    /// The app had a container before (its status names one): a missing one vanished.
    pub had_container: bool,
    /// A replacement at this generation failed and was rolled back: not tried again for the
    /// same image until the spec changes.
    pub rolled_back: Option<RolledBack>,
    /// The first host port of the app's port area (allocated by the store).
    pub host_port_root: Option<u16>,
    /// A permanent failure holds the app back (`hold_until`) until the engine image its
    /// reference names is no longer this one (`None`: there was none).
    pub blocked_on_image: Option<Option<String>>,
}

/// A failed replacement: the image it would have run, and what went wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct RolledBack {
    pub image_id: Option<String>,
    pub message: String,
}

/// One Image object as the store holds it, with what the loop knows about it.
#[derive(Clone, Debug)]
pub struct DesiredImage {
    pub uid: String,
    pub generation: i64,
    pub spec: ImageSpec,
    pub deleting: bool,
    pub hold_until: Option<Instant>,
    /// The generation a `pullPolicy: Always` pull was last made for.
    pub pulled_generation: Option<i64>,
    /// Its `updateInterval` has passed since the last registry check.
    pub check_due: bool,
    /// The digest the registry served at the last check.
    pub remote_digest: Option<String>,
}

/// Everything the planner needs to know about what should exist.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub instance: String,
    pub apps: BTreeMap<AppKey, DesiredApp>,
    /// Image objects, keyed with an empty namespace.
    pub images: BTreeMap<AppKey, DesiredImage>,
    /// Objects whose stored spec no longer validates: their containers are left alone.
    pub frozen_uids: BTreeSet<String>,
    /// Apps and images with work in flight (a rollout moves one app at a time).
    pub busy: BTreeSet<AppKey>,
    /// `--require-approved-images`: an app's image must be declared by an Image object.
    pub require_approved_images: bool,
    /// The newest image request per canonical reference (for the message of a waiting app).
    pub image_requests: BTreeMap<String, RequestNote>,
}

/// The newest request to approve an image reference: what a waiting app's condition names.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestNote {
    pub id: i64,
    pub requested_by: String,
    pub state: RequestState,
    pub decided_by: Option<String>,
    pub message: String,
}

/// Reason of the Ready condition of an app whose image is not approved.
pub const IMAGE_NOT_APPROVED: &str = "ImageNotApproved";

impl Desired {
    /// Why `image` may not be used: with `--require-approved-images`, only images declared by an
    /// Image object are.
    pub fn unapproved(&self, image: &str) -> Option<String> {
        if !self.require_approved_images {
            return None;
        }
        if is_image_id(image) {
            return Some(format!(
                "image {image} is an image id; with --require-approved-images an app names an approved image reference"
            ));
        }
        let canonical = canonical_reference(image).ok()?;
        let declared = self
            .images
            .values()
            .any(|i| !i.deleting && i.spec.canonical == canonical);
        if declared {
            return None;
        }
        let request = match self.image_requests.get(&canonical) {
            Some(r) if r.state == RequestState::Pending => format!(
                "; request {} by {} is waiting for an admin (wharf images approve {})",
                r.id, r.requested_by, r.id
            ),
            Some(r) if r.state == RequestState::Rejected => format!(
                "; request {} was rejected by {}{}",
                r.id,
                r.decided_by.as_deref().unwrap_or("an admin"),
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.message)
                }
            ),
            _ => format!("; request it with `wharf images request {image}`"),
        };
        Some(format!("image {image} is not approved{request}"))
    }

    /// Sets aside the apps some of whose containers could not be observed: they are not
    /// planned, and their containers are left alone this pass.
    pub fn set_aside(&mut self, unobserved: &BTreeMap<String, String>) {
        self.apps.retain(|_, a| !unobserved.contains_key(&a.uid));
        self.frozen_uids.extend(unobserved.keys().cloned());
    }

    /// The pull policy and credentials for an image reference: those of the Image object that
    /// declares it, else `IfNotPresent` without credentials.
    fn pull_policy(&self, canonical: &str) -> (PullPolicy, Option<&CredentialsRef>) {
        self.images
            .values()
            .find(|i| !i.deleting && i.spec.canonical == canonical)
            .map_or((PullPolicy::IfNotPresent, None), |i| {
                (i.spec.pull_policy, i.spec.credentials.as_ref())
            })
    }
}

/// A container with, when it was needed, its inspect details.
#[derive(Clone, Debug)]
pub struct ObservedContainer {
    pub summary: ContainerSummary,
    pub details: Option<ContainerDetails>,
    /// The update-class hash wharf applied in place to this container, if it did (labels
    /// cannot be changed after creation, so the store remembers it).
    pub applied_update: Option<String>,
}

impl ObservedContainer {
    pub fn new(summary: ContainerSummary, details: Option<ContainerDetails>) -> Self {
        Self {
            summary,
            details,
            applied_update: None,
        }
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.summary.labels.get(key).map(String::as_str)
    }

    /// The update-class hash in force: the last one applied in place, else the creation label.
    pub fn update_hash(&self) -> Option<&str> {
        self.applied_update
            .as_deref()
            .or_else(|| self.label(labels::HASH_UPDATE))
    }

    pub fn recreate_hash(&self) -> Option<&str> {
        self.label(labels::HASH_RECREATE)
    }
}

/// All of this instance's containers, and the engine's images. Built only from complete
/// listings.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub images: Vec<ImageSummary>,
    /// Apps (by uid) some of whose containers could not be inspected, with why: they are set
    /// aside (`Desired::set_aside`), never planned on partial input.
    pub unobserved: BTreeMap<String, String>,
}

/// Which container a step acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Id(String),
    /// The container created by an earlier step of the same plan.
    Created,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    EnsureVolume {
        name: String,
        labels: BTreeMap<String, String>,
    },
    Create(Box<CreateSpec>),
    /// Replaces container `old` with a new one made from `create`, keeping the old one until
    /// the new one runs: rename the old one aside, stop it, create and (with `start`) start the
    /// new one under the app's name, then remove the old one. If the new one fails to create,
    /// start or keep running, it is removed and the old one is renamed back and restarted.
    Replace {
        old: String,
        /// The old container's current name (it may already be aside after an interrupted
        /// replacement).
        old_name: String,
        old_running: bool,
        create: Box<CreateSpec>,
        start: bool,
        grace_seconds: Option<u64>,
        /// The engine's image the new container runs, when known (for the rollback record).
        image_id: Option<String>,
        /// How long the new container must run (and be healthy, with a check) before the old
        /// one is removed.
        min_ready: Duration,
    },
    /// Pulls an image (canonical reference).
    Pull {
        reference: String,
        credentials: Option<CredentialsRef>,
    },
    /// Asks the registry which digest the reference has now (one manifest HEAD).
    CheckDigest {
        reference: String,
        credentials: Option<CredentialsRef>,
    },
    /// Removes an image reference from the engine; one that containers still use is kept.
    RemoveImage {
        reference: String,
    },
    Start(Target),
    Stop {
        target: Target,
        grace_seconds: Option<u64>,
    },
    Pause(Target),
    Unpause(Target),
    /// `hash` is the update-class hash the limits carry; the executor records it as applied.
    Update {
        target: Target,
        limits: Limits,
        hash: String,
    },
    Remove {
        id: String,
    },
    /// Removes a named volume (a hard reset that discards the app's data).
    RemoveVolume {
        name: String,
    },
    /// The app's containers are gone: delete the object from the store.
    Forget {
        uid: String,
    },
}

impl Action {
    /// A short verb for events ("Created", "Started", ...).
    pub fn verb(&self) -> &'static str {
        match self {
            Action::EnsureVolume { .. } => "VolumeReady",
            Action::Create(_) => "Created",
            Action::Replace { .. } => "Replaced",
            Action::Pull { .. } => "Pulled",
            Action::CheckDigest { .. } => "Checked",
            Action::RemoveImage { .. } => "ImageRemoved",
            Action::Start(_) => "Started",
            Action::Stop { .. } => "Stopped",
            Action::Pause(_) => "Paused",
            Action::Unpause(_) => "Unpaused",
            Action::Update { .. } => "Updated",
            Action::Remove { .. } => "Removed",
            Action::RemoveVolume { .. } => "VolumeRemoved",
            Action::Forget { .. } => "Deleted",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub action: Action,
    pub reason: String,
}

/// The plan for one app (or for the orphaned containers of a deleted one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppPlan {
    /// The object's uid, when the object exists.
    pub uid: Option<String>,
    pub steps: Vec<Step>,
    /// The steps repair drift (a container that died or vanished); they count for backoff.
    pub repair: bool,
    /// Why nothing is done now although something is wrong (backoff, Docker busy).
    pub waiting: Option<String>,
    /// The condition reason for `waiting` when it is not plain `Waiting`.
    pub waiting_reason: Option<&'static str>,
    /// Look again after this long even without an event.
    pub requeue_after: Option<Duration>,
    /// The engine image the app's reference names now, when there is one.
    pub image_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub apps: BTreeMap<AppKey, AppPlan>,
}

impl Plan {
    pub fn requeue_after(&self) -> Option<Duration> {
        self.apps.values().filter_map(|p| p.requeue_after).min()
    }
}

/// Name of an app's container: `{namespace}.{name}` (namespaces have no dots, so it is unique).
pub fn container_name(key: &AppKey) -> String {
    format!("{}.{}", key.namespace, key.name)
}

/// Docker name of a declared volume: shared by the apps of one namespace.
pub fn volume_name(namespace: &str, volume: &str) -> String {
    format!("wharf.{namespace}.{volume}")
}

fn container_labels(instance: &str, app: &DesiredApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (labels::INSTANCE.to_string(), instance.to_string()),
        (
            labels::NAMESPACE.to_string(),
            app.spec.key.namespace.clone(),
        ),
        (labels::APP.to_string(), app.spec.key.name.clone()),
        (labels::UID.to_string(), app.uid.clone()),
        (labels::GENERATION.to_string(), app.generation.to_string()),
        (
            labels::HASH_RECREATE.to_string(),
            app.hashes.recreate.clone(),
        ),
        (labels::HASH_UPDATE.to_string(), app.hashes.update.clone()),
    ])
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Computes the plan. Pure and deterministic.
pub fn plan(desired: &Desired, observed: &Observed, now: Instant) -> Plan {
    let mut by_uid: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
    for c in &observed.containers {
        if let Some(uid) = c.label(labels::UID) {
            by_uid.entry(uid).or_default().push(c);
        }
    }
    for list in by_uid.values_mut() {
        // Newest first; ties by id for determinism.
        list.sort_by(|a, b| {
            b.summary
                .created
                .cmp(&a.summary.created)
                .then(a.summary.id.cmp(&b.summary.id))
        });
    }

    let mut out = Plan::default();
    // Orphans first: their steps must run before a same-named app creates its container.
    let live: BTreeSet<&str> = desired.apps.values().map(|a| a.uid.as_str()).collect();
    for (uid, containers) in &by_uid {
        if live.contains(uid) || desired.frozen_uids.contains(*uid) {
            continue;
        }
        for c in containers {
            let key = AppKey {
                namespace: c.label(labels::NAMESPACE).unwrap_or("").to_string(),
                name: c.label(labels::APP).unwrap_or("").to_string(),
            };
            let plan = out.apps.entry(key.clone()).or_default();
            remove_steps(
                plan,
                c,
                None,
                format!("orphan: its object {key} (uid {uid}) no longer exists"),
            );
        }
    }

    // A rollout of a changed image replaces one app at a time: none starts while another app
    // of the same image has work in flight.
    let mut rolling: BTreeSet<String> = desired
        .busy
        .iter()
        .filter_map(|k| desired.apps.get(k))
        .filter_map(|a| canonical_reference(&a.spec.container.image).ok())
        .collect();
    for (key, app) in &desired.apps {
        let containers = by_uid.get(app.uid.as_str()).cloned().unwrap_or_default();
        let mut own = AppPlan::default();
        plan_app(desired, observed, app, &containers, &mut rolling, &mut own);
        if own.waiting.is_some() && own.waiting == desired.unapproved(&app.spec.container.image) {
            own.waiting_reason = Some(IMAGE_NOT_APPROVED);
        }
        let image_id = canonical_reference(&app.spec.container.image)
            .ok()
            .and_then(|r| find_local(&observed.images, &r))
            .map(|i| i.id.clone());
        // A permanent failure waits for a change; a new image is one.
        let hold = match &app.blocked_on_image {
            Some(blocked) if *blocked != image_id => None,
            _ => app.hold_until,
        };
        hold_back(hold, app.deleting, now, &mut own);
        let plan = out.apps.entry(key.clone()).or_default();
        plan.image_id = image_id;
        plan.uid = Some(app.uid.clone());
        plan.steps.extend(own.steps);
        plan.repair = own.repair;
        plan.waiting = own.waiting;
        plan.waiting_reason = own.waiting_reason;
        plan.requeue_after = own.requeue_after;
    }
    for (key, image) in &desired.images {
        let mut own = AppPlan {
            uid: Some(image.uid.clone()),
            ..AppPlan::default()
        };
        plan_image(observed, image, &mut own);
        hold_back(image.hold_until, image.deleting, now, &mut own);
        out.apps.insert(key.clone(), own);
    }
    out.apps
        .retain(|_, p| p.uid.is_some() || !p.steps.is_empty());
    out
}

pub(crate) fn remove_steps(
    plan: &mut AppPlan,
    c: &ObservedContainer,
    grace: Option<u64>,
    reason: String,
) {
    let id = c.summary.id.clone();
    if c.summary.state == ContainerState::Running {
        plan.steps.push(Step {
            action: Action::Stop {
                target: Target::Id(id.clone()),
                grace_seconds: grace,
            },
            reason: reason.clone(),
        });
    }
    plan.steps.push(Step {
        action: Action::Remove { id },
        reason,
    });
}

/// While an app or image is backing off (after a failure or a repair), its steps wait;
/// deletion does not, and a spec change starts a new generation without a hold.
fn hold_back(hold_until: Option<Instant>, deleting: bool, now: Instant, plan: &mut AppPlan) {
    let Some(until) = hold_until.filter(|t| *t > now) else {
        return;
    };
    if deleting || plan.steps.is_empty() {
        return;
    }
    let wait = until - now;
    let why = &plan.steps[0].reason;
    plan.waiting = Some(format!(
        "{why}; backing off, next attempt in {}s",
        wait.as_secs_f64().ceil()
    ));
    plan.requeue_after = Some(wait);
    plan.steps.clear();
    plan.repair = false;
}

fn plan_image(observed: &Observed, image: &DesiredImage, plan: &mut AppPlan) {
    let reference = &image.spec.canonical;
    let local = find_local(&observed.images, reference);
    if image.deleting {
        if local.is_some() {
            plan.steps.push(Step {
                action: Action::RemoveImage {
                    reference: reference.clone(),
                },
                reason: "the Image is being deleted".into(),
            });
        }
        plan.steps.push(Step {
            action: Action::Forget {
                uid: image.uid.clone(),
            },
            reason: "its image is removed from the engine (or kept while containers use it)".into(),
        });
        return;
    }
    let pull = |reason: String| Step {
        action: Action::Pull {
            reference: reference.clone(),
            credentials: image.spec.credentials.clone(),
        },
        reason,
    };
    let policy = image.spec.pull_policy;
    let Some(local) = local else {
        if policy == PullPolicy::Never {
            plan.waiting = Some(format!(
                "{} is not in the engine and its pullPolicy is Never",
                image.spec.reference
            ));
        } else {
            plan.steps.push(pull(format!(
                "{} is not in the engine (pullPolicy {policy})",
                image.spec.reference
            )));
        }
        return;
    };
    if policy == PullPolicy::Never {
        return;
    }
    if policy == PullPolicy::Always && image.pulled_generation != Some(image.generation) {
        plan.steps.push(pull(format!(
            "pullPolicy Always: pulled when generation {} is declared",
            image.generation
        )));
        return;
    }
    if let Some(remote) = &image.remote_digest
        && !has_digest(local, reference, remote)
    {
        let current = repo_digest(local, reference).unwrap_or_else(|| "none".into());
        plan.steps.push(pull(format!(
            "the registry serves digest {remote}; the engine has {current}"
        )));
        return;
    }
    if image.check_due {
        plan.steps.push(Step {
            action: Action::CheckDigest {
                reference: reference.clone(),
                credentials: image.spec.credentials.clone(),
            },
            reason: "its updateInterval has passed since the last registry check".into(),
        });
    }
}

fn plan_app(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    containers: &[&ObservedContainer],
    rolling: &mut BTreeSet<String>,
    plan: &mut AppPlan,
) {
    let grace = app.spec.container.stop_grace_seconds;
    if app.deleting {
        for c in containers {
            remove_steps(plan, c, grace, "the app is being deleted".to_string());
        }
        plan.steps.push(Step {
            action: Action::Forget {
                uid: app.uid.clone(),
            },
            reason: "its containers are removed".to_string(),
        });
        return;
    }

    // Keep one container: the newest with the current recreate hash, else the newest.
    let keep = containers
        .iter()
        .position(|c| c.label(labels::HASH_RECREATE) == Some(app.hashes.recreate.as_str()))
        .unwrap_or(0);
    for (i, c) in containers.iter().enumerate() {
        if i != keep {
            remove_steps(
                plan,
                c,
                grace,
                format!("duplicate container {} of the app", short(&c.summary.id)),
            );
        }
    }
    let Some(current) = containers.get(keep) else {
        match create_steps(desired, observed, app, "no container".to_string()) {
            Ok(steps) => plan.steps.extend(steps),
            Err(why) => plan.waiting = Some(why),
        }
        // A first creation is not a repair; a container that vanished is.
        plan.repair = app.had_container;
        return;
    };
    let id = current.summary.id.clone();
    let target = Target::Id(id.clone());

    match current.summary.state {
        ContainerState::Removing => {
            plan.waiting = Some("Docker is removing the container".into());
            plan.requeue_after = Some(Duration::from_secs(1));
            return;
        }
        ContainerState::Dead => {
            plan.steps.push(Step {
                action: Action::Remove { id: id.clone() },
                reason: "container is dead".into(),
            });
            match create_steps(
                desired,
                observed,
                app,
                "replacing the dead container".into(),
            ) {
                Ok(steps) => plan.steps.extend(steps),
                Err(why) => plan.waiting = Some(why),
            }
            plan.repair = true;
            return;
        }
        _ => {}
    }

    if current.label(labels::HASH_RECREATE) != Some(app.hashes.recreate.as_str()) {
        let why = recreate_reason(app, current);
        replace(desired, observed, app, current, why, plan);
        return;
    }

    let image = &app.spec.container.image;
    let canonical = canonical_reference(image)
        .ok()
        .filter(|_| !is_image_id(image));
    if let Some(canonical) = canonical
        && let Some(local) = find_local(&observed.images, &canonical)
        && !current.summary.image_id.is_empty()
        && current.summary.image_id != local.id
    {
        if rolling.contains(&canonical) {
            plan.waiting = Some(format!(
                "{image} changed; waiting for the other apps using it (one at a time)"
            ));
            plan.requeue_after = Some(Duration::from_secs(2));
            return;
        }
        rolling.insert(canonical);
        let why = format!(
            "image {image} changed ({} → {})",
            short(current.summary.image_id.trim_start_matches("sha256:")),
            short(local.id.trim_start_matches("sha256:"))
        );
        replace(desired, observed, app, current, why, plan);
        return;
    }

    if current.update_hash() != Some(app.hashes.update.as_str()) {
        match update_reason(&app.spec.limits, current.details.as_ref()) {
            Ok(why) => plan.steps.push(Step {
                action: Action::Update {
                    target: target.clone(),
                    limits: app.spec.limits.clone(),
                    hash: app.hashes.update.clone(),
                },
                reason: why,
            }),
            Err(why) => {
                replace(desired, observed, app, current, why, plan);
                return;
            }
        }
    }

    let state = current.summary.state;
    let exit = current.details.as_ref().and_then(|d| d.exit_code);
    let step = |action: Action, reason: &str| Step {
        action,
        reason: reason.to_string(),
    };
    match (app.spec.state, state) {
        (_, ContainerState::Restarting) => {
            plan.waiting = Some("Docker is restarting the container".into());
            plan.requeue_after = Some(Duration::from_secs(2));
        }
        (DesiredState::Running, ContainerState::Running)
        | (DesiredState::Paused, ContainerState::Paused)
        | (DesiredState::Stopped, ContainerState::Exited | ContainerState::Created) => {}
        (DesiredState::Running, ContainerState::Paused) => plan
            .steps
            .push(step(Action::Unpause(target), "paused, declared running")),
        (DesiredState::Running | DesiredState::Paused, ContainerState::Created) => {
            plan.steps
                .push(step(Action::Start(target.clone()), "created, not started"));
            if app.spec.state == DesiredState::Paused {
                plan.steps
                    .push(step(Action::Pause(target), "declared paused"));
            }
        }
        (
            DesiredState::Running | DesiredState::Paused,
            ContainerState::Exited | ContainerState::Unknown,
        ) => {
            let code = exit.map(|c| format!(" with code {c}")).unwrap_or_default();
            let restarts = app.repairs as i64
                + current
                    .details
                    .as_ref()
                    .map(|d| d.restart_count)
                    .unwrap_or(0);
            let allowed = match app.spec.limits.restart {
                Restart::No => Err("restart policy is \"no\"".to_string()),
                Restart::OnFailure { .. } if exit == Some(0) => Err(
                    "it completed (exit code 0) and the restart policy is on-failure".to_string(),
                ),
                Restart::OnFailure { max_retries }
                    if max_retries > 0 && restarts >= i64::from(max_retries) =>
                {
                    Err(format!("on-failure restart limit of {max_retries} reached"))
                }
                _ => Ok(()),
            };
            match allowed {
                Err(why) => {
                    plan.waiting = Some(format!("container exited{code}; not restarted: {why}"))
                }
                Ok(()) => {
                    let why = format!("container exited{code}, declared {}", app.spec.state);
                    plan.steps.push(step(Action::Start(target.clone()), &why));
                    if app.spec.state == DesiredState::Paused {
                        plan.steps
                            .push(step(Action::Pause(target), "declared paused"));
                    }
                    plan.repair = true;
                }
            }
        }
        (DesiredState::Paused, ContainerState::Running) => plan
            .steps
            .push(step(Action::Pause(target), "running, declared paused")),
        (DesiredState::Stopped, ContainerState::Running) => plan.steps.push(step(
            Action::Stop {
                target,
                grace_seconds: grace,
            },
            "running, declared stopped",
        )),
        (DesiredState::Stopped, ContainerState::Paused) => {
            plan.steps.push(step(
                Action::Unpause(target.clone()),
                "paused, declared stopped",
            ));
            plan.steps.push(step(
                Action::Stop {
                    target,
                    grace_seconds: grace,
                },
                "declared stopped",
            ));
        }
        (DesiredState::Stopped, ContainerState::Unknown) => {}
        (_, ContainerState::Removing | ContainerState::Dead) => {}
    }
}

/// The steps before a container can be created — volumes and, by the pull policy, the image
/// — and its create spec; or why it cannot be created now.
fn prepare(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
) -> Result<(Vec<Step>, CreateSpec), String> {
    let mut steps = Vec::new();
    if let Some(why) = desired.unapproved(&app.spec.container.image) {
        return Err(why);
    }
    if app.spec.port_area.is_some() && app.host_port_root.is_none() {
        return Err(
            "its port area gets its block of host ports when the app is stored (an app stored before port areas existed needs one more apply)"
                .into(),
        );
    }
    // The pull comes first: a download holds no container-operation slot (see the executor).
    let image = &app.spec.container.image;
    if !is_image_id(image)
        && let Ok(canonical) = canonical_reference(image)
    {
        let (policy, credentials) = desired.pull_policy(&canonical);
        let present = find_local(&observed.images, &canonical).is_some();
        let why = match (policy, present) {
            (PullPolicy::Never, false) => {
                return Err(format!(
                    "image {image} is not in the engine and its Image declares pullPolicy Never"
                ));
            }
            (PullPolicy::Always, _) => Some(format!(
                "pullPolicy Always: {image} is pulled before every create"
            )),
            (_, false) => Some(format!("image {image} is not in the engine")),
            _ => None,
        };
        if let Some(reason) = why {
            steps.push(Step {
                action: Action::Pull {
                    reference: canonical,
                    credentials: credentials.cloned(),
                },
                reason,
            });
        }
    }
    let mut volume_names = BTreeMap::new();
    for v in &app.spec.container.volumes {
        let name = volume_name(&app.spec.key.namespace, &v.name);
        volume_names.insert(v.name.clone(), name.clone());
        if steps
            .iter()
            .any(|s: &Step| matches!(&s.action, Action::EnsureVolume { name: n, .. } if *n == name))
        {
            continue;
        }
        steps.push(Step {
            action: Action::EnsureVolume {
                name,
                labels: BTreeMap::from([
                    (
                        labels::MANAGED_BY.to_string(),
                        labels::MANAGED_BY_VALUE.to_string(),
                    ),
                    (
                        labels::NAMESPACE.to_string(),
                        app.spec.key.namespace.clone(),
                    ),
                ]),
            },
            reason: format!("volume {} is mounted at {}", v.name, v.mount_path),
        });
    }
    let spec = CreateSpec {
        name: container_name(&app.spec.key),
        labels: container_labels(&desired.instance, app),
        config: app.spec.container.clone(),
        limits: app.spec.limits.clone(),
        volume_names,
    };
    Ok((steps, spec))
}

fn create_steps(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    reason: String,
) -> Result<Vec<Step>, String> {
    let (mut steps, spec) = prepare(desired, observed, app)?;
    steps.push(Step {
        action: Action::Create(Box::new(spec)),
        reason,
    });
    match app.spec.state {
        DesiredState::Running => steps.push(Step {
            action: Action::Start(Target::Created),
            reason: "declared running".into(),
        }),
        DesiredState::Paused => {
            steps.push(Step {
                action: Action::Start(Target::Created),
                reason: "declared paused (started, then paused)".into(),
            });
            steps.push(Step {
                action: Action::Pause(Target::Created),
                reason: "declared paused".into(),
            });
        }
        DesiredState::Stopped => {}
    }
    Ok(steps)
}

/// Plans the replacement of `current`: the old container is kept until the new one runs.
fn replace(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    current: &ObservedContainer,
    reason: String,
    plan: &mut AppPlan,
) {
    let image_id = canonical_reference(&app.spec.container.image)
        .ok()
        .and_then(|r| find_local(&observed.images, &r))
        .map(|i| i.id.clone());
    if let Some(failed) = &app.rolled_back
        && failed.image_id == image_id
    {
        plan.waiting = Some(format!(
            "{reason}; the last attempt rolled back ({}); change the spec, or the image, to try again",
            failed.message
        ));
        return;
    }
    let (steps, spec) = match prepare(desired, observed, app) {
        Ok(p) => p,
        Err(why) => {
            plan.waiting = Some(why);
            return;
        }
    };
    plan.steps.extend(steps);
    plan.steps.push(Step {
        action: Action::Replace {
            old: current.summary.id.clone(),
            old_name: current.summary.name.clone(),
            old_running: matches!(
                current.summary.state,
                ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
            ),
            create: Box::new(spec),
            start: app.spec.state != DesiredState::Stopped,
            grace_seconds: app.spec.container.stop_grace_seconds,
            image_id,
            min_ready: app.spec.min_ready,
        },
        reason,
    });
    if app.spec.state == DesiredState::Paused {
        plan.steps.push(Step {
            action: Action::Pause(Target::Created),
            reason: "declared paused".into(),
        });
    }
}

fn recreate_reason(app: &DesiredApp, current: &ObservedContainer) -> String {
    let old = current.label(labels::HASH_RECREATE).unwrap_or("none");
    let mut why = format!(
        "recreate-class config changed (hash {old} → {})",
        app.hashes.recreate
    );
    if current.summary.image != app.spec.container.image {
        why.push_str(&format!(
            ": image {} → {}",
            current.summary.image, app.spec.container.image
        ));
    }
    why
}

/// Describes an in-place update, or says why it cannot be done in place.
fn update_reason(limits: &Limits, details: Option<&ContainerDetails>) -> Result<String, String> {
    let Some(d) = details else {
        return Ok("update-class config changed (in place)".into());
    };
    let o = &d.limits;
    let mut changes = Vec::new();
    let cpus = |n: i64| format!("{}", n as f64 / 1e9);
    let unset = |what: &str| {
        Err(format!(
            "{what} limit removed; Docker cannot lift it in place, so the container is replaced"
        ))
    };
    match limits.memory {
        None if o.memory > 0 => return unset("memory"),
        Some(m) if m != o.memory => changes.push(format!(
            "memory {}→{}",
            if o.memory > 0 {
                format_bytes(o.memory as u64)
            } else {
                "unlimited".into()
            },
            format_bytes(m as u64)
        )),
        _ => {}
    }
    if let Some(s) = limits.memory_swap
        && s != o.memory_swap
    {
        changes.push(format!(
            "memory+swap {}→{}",
            format_bytes(o.memory_swap.max(0) as u64),
            format_bytes(s as u64)
        ));
    }
    match limits.nano_cpus {
        None if o.nano_cpus > 0 => return unset("cpu"),
        Some(n) if n != o.nano_cpus => changes.push(format!(
            "cpus {}→{}",
            if o.nano_cpus > 0 {
                cpus(o.nano_cpus)
            } else {
                "unlimited".into()
            },
            cpus(n)
        )),
        _ => {}
    }
    let pids = limits.pids.unwrap_or(0);
    if pids != o.pids.max(0) {
        let show = |p: i64| {
            if p > 0 {
                p.to_string()
            } else {
                "unlimited".into()
            }
        };
        changes.push(format!("pids {}→{}", show(o.pids), show(pids)));
    }
    if limits.restart.docker_name() != o.restart {
        changes.push(format!(
            "restart policy {}→{}",
            o.restart,
            limits.restart.docker_name()
        ));
    }
    if changes.is_empty() {
        changes.push("limits relabelled".into());
    }
    Ok(format!("{} (in place)", changes.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ObservedLimits;
    use crate::spec::status::ConditionStatus;
    use crate::spec::{Document, Format, parse_documents, validate_app};

    fn spec(extra: &str) -> AppSpec {
        let yaml = format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: web, namespace: demo}}\nspec:\n  image: busybox:1\n{extra}"
        );
        let docs = parse_documents(&yaml, Format::Yaml, None).expect("parses");
        let Document::App(doc) = &docs[0].document else {
            panic!("not an App")
        };
        validate_app(doc).expect("valid")
    }

    fn desired_with(app_spec: AppSpec) -> Desired {
        let hashes = app_spec.hashes();
        let app = DesiredApp {
            uid: "u1".into(),
            generation: 1,
            spec: app_spec,
            hashes,
            deleting: false,
            hold_until: None,
            repairs: 0,
            had_container: false,
            rolled_back: None,
            host_port_root: None,
            blocked_on_image: None,
        };
        Desired {
            instance: "test".into(),
            apps: BTreeMap::from([(app.spec.key.clone(), app)]),
            ..Desired::default()
        }
    }

    fn container_for(d: &Desired, state: ContainerState) -> ObservedContainer {
        let app = d.apps.values().next().unwrap();
        ObservedContainer {
            summary: ContainerSummary {
                id: "c1".into(),
                name: container_name(&app.spec.key),
                image: app.spec.container.image.clone(),
                image_id: "sha256:x".into(),
                state,
                labels: container_labels(&d.instance, app),
                created: 10,
                health: None,
            },
            applied_update: None,
            details: Some(ContainerDetails {
                exit_code: Some(137),
                limits: ObservedLimits {
                    memory: app.spec.limits.memory.unwrap_or(0),
                    memory_swap: app.spec.limits.memory_swap.unwrap_or(0),
                    nano_cpus: app.spec.limits.nano_cpus.unwrap_or(0),
                    pids: app.spec.limits.pids.unwrap_or(0),
                    restart: app.spec.limits.restart.docker_name().into(),
                },
                ..Default::default()
            }),
        }
    }

    fn verbs(p: &Plan) -> Vec<&'static str> {
        p.apps
            .values()
            .flat_map(|a| a.steps.iter().map(|s| s.action.verb()))
            .collect()
    }

    fn observed(cs: Vec<ObservedContainer>) -> Observed {
        Observed {
            containers: cs,
            images: vec![busybox()],
            unobserved: BTreeMap::new(),
        }
    }

    /// The engine's `busybox:1`, which the test containers run.
    fn busybox() -> ImageSummary {
        ImageSummary {
            id: "sha256:x".into(),
            repo_tags: vec!["busybox:1".into()],
            ..ImageSummary::default()
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            desired: &'static str,
            /// spec the container was created from, and its state
            container: Option<(&'static str, ContainerState)>,
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "missing container is created and started",
                desired: "",
                container: None,
                want: &["Created", "Started"],
            },
            Case {
                name: "declared stopped creates without starting",
                desired: "  state: stopped\n",
                container: None,
                want: &["Created"],
            },
            Case {
                name: "declared paused starts then pauses",
                desired: "  state: paused\n",
                container: None,
                want: &["Created", "Started", "Paused"],
            },
            Case {
                name: "volumes are ensured first",
                desired: "  volumes: [{name: work, mountPath: /w}]\n",
                container: None,
                want: &["VolumeReady", "Created", "Started"],
            },
            Case {
                name: "converged app needs nothing",
                desired: "",
                container: Some(("", ContainerState::Running)),
                want: &[],
            },
            Case {
                name: "limit change is in place",
                desired: "  resources: {memory: 512Mi}\n",
                container: Some(("  resources: {memory: 256Mi}\n", ContainerState::Running)),
                want: &["Updated"],
            },
            Case {
                name: "image change replaces",
                desired: "  command: [sleep, '1']\n",
                container: Some(("", ContainerState::Running)),
                want: &["Replaced"],
            },
            Case {
                name: "lifting a memory limit replaces",
                desired: "",
                container: Some(("  resources: {memory: 256Mi}\n", ContainerState::Running)),
                want: &["Replaced"],
            },
            Case {
                name: "pause",
                desired: "  state: paused\n",
                container: Some(("  state: paused\n", ContainerState::Running)),
                want: &["Paused"],
            },
            Case {
                name: "unpause",
                desired: "",
                container: Some(("", ContainerState::Paused)),
                want: &["Unpaused"],
            },
            Case {
                name: "stop",
                desired: "  state: stopped\n",
                container: Some(("", ContainerState::Running)),
                want: &["Stopped"],
            },
            Case {
                name: "stop a paused container",
                desired: "  state: stopped\n",
                container: Some(("", ContainerState::Paused)),
                want: &["Unpaused", "Stopped"],
            },
            Case {
                name: "start a stopped container",
                desired: "",
                container: Some(("", ContainerState::Exited)),
                want: &["Started"],
            },
            Case {
                name: "restart policy no leaves an exited container",
                desired: "  restartPolicy: {name: 'no'}\n",
                container: Some(("  restartPolicy: {name: 'no'}\n", ContainerState::Exited)),
                want: &[],
            },
            Case {
                name: "Docker restarting: wait",
                desired: "",
                container: Some(("", ContainerState::Restarting)),
                want: &[],
            },
            Case {
                name: "dead container is replaced",
                desired: "",
                container: Some(("", ContainerState::Dead)),
                want: &["Removed", "Created", "Started"],
            },
        ];
        for case in cases {
            let d = desired_with(spec(case.desired));
            let obs = match case.container {
                None => observed(vec![]),
                Some((old, state)) => {
                    let old_d = desired_with(spec(old));
                    observed(vec![container_for(&old_d, state)])
                }
            };
            let p = plan(&d, &obs, Instant::now());
            assert_eq!(verbs(&p), case.want, "{}", case.name);
            for s in p.apps.values().flat_map(|a| &a.steps) {
                assert!(
                    !s.reason.is_empty(),
                    "{}: every step has a reason",
                    case.name
                );
            }
        }
    }

    #[test]
    fn in_place_reason_names_old_and_new_values() {
        let d = desired_with(spec("  resources: {memory: 512Mi, cpus: 1}\n"));
        let old = desired_with(spec("  resources: {memory: 256Mi, cpus: 0.5}\n"));
        let p = plan(
            &d,
            &observed(vec![container_for(&old, ContainerState::Running)]),
            Instant::now(),
        );
        let step = &p.apps.values().next().unwrap().steps[0];
        assert_eq!(
            step.reason,
            "memory 256Mi→512Mi, memory+swap 256Mi→512Mi, cpus 0.5→1 (in place)"
        );
    }

    #[test]
    fn orphans_are_removed_and_foreign_containers_never_seen() {
        let d = desired_with(spec(""));
        let mut orphan = container_for(&d, ContainerState::Running);
        orphan
            .summary
            .labels
            .insert(labels::UID.into(), "gone".into());
        orphan
            .summary
            .labels
            .insert(labels::APP.into(), "old".into());
        orphan.summary.id = "c9".into();
        let current = container_for(&d, ContainerState::Running);
        let p = plan(&d, &observed(vec![orphan, current]), Instant::now());
        assert_eq!(verbs(&p), ["Stopped", "Removed"]);
        let key = AppKey {
            namespace: "demo".into(),
            name: "old".into(),
        };
        assert!(p.apps[&key].steps[0].reason.starts_with("orphan"));
    }

    #[test]
    fn frozen_objects_keep_their_containers() {
        let mut d = desired_with(spec(""));
        let c = container_for(&d, ContainerState::Running);
        d.apps.clear();
        d.frozen_uids.insert("u1".into());
        assert!(verbs(&plan(&d, &observed(vec![c]), Instant::now())).is_empty());
    }

    #[test]
    fn deletion_removes_then_forgets() {
        let mut d = desired_with(spec(""));
        let c = container_for(&d, ContainerState::Running);
        d.apps.values_mut().next().unwrap().deleting = true;
        assert_eq!(
            verbs(&plan(&d, &observed(vec![c]), Instant::now())),
            ["Stopped", "Removed", "Deleted"]
        );
        assert_eq!(
            verbs(&plan(&d, &observed(vec![]), Instant::now())),
            ["Deleted"]
        );
    }

    #[test]
    fn repairs_wait_for_the_backoff() {
        let mut d = desired_with(spec(""));
        let c = container_for(&d, ContainerState::Exited);
        let now = Instant::now();
        let app = d.apps.values_mut().next().unwrap();
        app.hold_until = Some(now + Duration::from_secs(4));
        app.repairs = 3;
        let p = plan(&d, &observed(vec![c.clone()]), now);
        let a = p.apps.values().next().unwrap();
        assert!(a.steps.is_empty());
        assert!(a.waiting.as_deref().unwrap().contains("backing off"));
        assert_eq!(p.requeue_after(), Some(Duration::from_secs(4)));
        // Once the hold expires, the repair happens and is flagged as one.
        let p = plan(&d, &observed(vec![c]), now + Duration::from_secs(5));
        let a = p.apps.values().next().unwrap();
        assert!(a.repair);
        assert_eq!(verbs(&p), ["Started"]);
    }

    #[test]
    fn a_permanent_failure_waits_until_the_image_changes() {
        let mut d = desired_with(spec(""));
        let now = Instant::now();
        let current = busybox().id;
        let app = d.apps.values_mut().next().unwrap();
        app.hold_until = Some(now + Duration::from_secs(300));
        app.blocked_on_image = Some(Some(current.clone()));
        let p = plan(&d, &observed(vec![]), now);
        let a = p.apps.values().next().unwrap();
        assert!(a.steps.is_empty(), "the same image fails the same way");
        assert_eq!(a.image_id.as_deref(), Some(current.as_str()));
        // The reference now names another image: the hold no longer applies.
        d.apps.values_mut().next().unwrap().blocked_on_image = Some(Some("sha256:old".into()));
        assert_eq!(
            verbs(&plan(&d, &observed(vec![]), now)),
            ["Created", "Started"]
        );
    }

    #[test]
    fn on_failure_stops_at_max_retries_and_after_success() {
        let mut d = desired_with(spec("  restartPolicy: {name: on-failure, maxRetries: 2}\n"));
        let mut c = container_for(&d, ContainerState::Exited);
        d.apps.values_mut().next().unwrap().repairs = 2;
        assert!(verbs(&plan(&d, &observed(vec![c.clone()]), Instant::now())).is_empty());
        d.apps.values_mut().next().unwrap().repairs = 0;
        c.details.as_mut().unwrap().exit_code = Some(0);
        assert!(verbs(&plan(&d, &observed(vec![c]), Instant::now())).is_empty());
    }

    #[test]
    fn duplicates_keep_the_current_one() {
        let d = desired_with(spec(""));
        let mut a = container_for(&d, ContainerState::Running);
        let mut b = container_for(&d, ContainerState::Running);
        a.summary.id = "old".into();
        a.summary.created = 1;
        b.summary.id = "new".into();
        b.summary.created = 2;
        let p = plan(&d, &observed(vec![a, b]), Instant::now());
        let steps = &p.apps.values().next().unwrap().steps;
        assert_eq!(
            steps.last().unwrap().action,
            Action::Remove { id: "old".into() }
        );
    }

    #[test]
    fn ready_needs_a_declared_health_check_to_pass_and_a_rollback_degrades() {
        use crate::reconcile::status::{Phase, compute};
        use crate::runtime::HealthState;
        let d = desired_with(spec(
            "  healthcheck: {cmd: [\"CMD\", \"true\"], interval: 1s}\n",
        ));
        let app = d.apps.values().next().unwrap().clone();
        let ready = |health: Option<HealthState>, app: &DesiredApp| {
            let mut c = container_for(&d, ContainerState::Running);
            c.summary.health = health;
            let status = compute(app, Some(&c), None, None, None, "now");
            let cond = status.condition("Ready").unwrap().clone();
            (status.phase, cond.status, cond.reason)
        };
        assert_eq!(
            ready(Some(HealthState::Starting), &app),
            (
                Phase::Running,
                ConditionStatus::False,
                "HealthCheckPending".into()
            )
        );
        assert_eq!(
            ready(Some(HealthState::Unhealthy), &app),
            (Phase::Running, ConditionStatus::False, "Unhealthy".into())
        );
        assert_eq!(
            ready(Some(HealthState::Healthy), &app),
            (Phase::Running, ConditionStatus::True, "Running".into())
        );

        // A rolled-back generation: the old container (other hashes) runs; the app is Degraded.
        let mut rolled = app.clone();
        rolled.rolled_back = Some(RolledBack {
            image_id: None,
            message: "the new container exited with code 3".into(),
        });
        rolled.hashes.recreate = "newer".into();
        let (phase, status, reason) = ready(Some(HealthState::Healthy), &rolled);
        assert_eq!(
            (phase, status, reason.as_str()),
            (Phase::Degraded, ConditionStatus::False, "RolledBack")
        );
    }

    #[test]
    fn plans_are_deterministic() {
        let d = desired_with(spec("  resources: {memory: 512Mi}\n"));
        let now = Instant::now();
        let a = plan(&d, &observed(vec![]), now);
        let b = plan(&d, &observed(vec![]), now);
        assert_eq!(a, b);
    }

    fn image_object(reference: &str, extra: &str) -> DesiredImage {
        let yaml = format!(
            "apiVersion: wharf/v1\nkind: Image\nmetadata: {{name: img}}\nspec:\n  ref: {reference}\n{extra}"
        );
        let docs = parse_documents(&yaml, Format::Yaml, None).expect("parses");
        let Document::Image(doc) = &docs[0].document else {
            panic!("not an Image")
        };
        DesiredImage {
            uid: "i1".into(),
            generation: 1,
            spec: crate::spec::validate_image(doc).expect("valid"),
            deleting: false,
            hold_until: None,
            pulled_generation: None,
            check_due: false,
            remote_digest: None,
        }
    }

    fn image_key() -> AppKey {
        AppKey {
            namespace: String::new(),
            name: "img".into(),
        }
    }

    fn steps_of<'a>(p: &'a Plan, key: &AppKey) -> Vec<&'a str> {
        p.apps[key].steps.iter().map(|s| s.action.verb()).collect()
    }

    #[test]
    fn unapproved_images_are_not_created_and_approval_lets_them_through() {
        let mut d = desired_with(spec(""));
        d.require_approved_images = true;
        let now = Instant::now();
        let key = d.apps.keys().next().unwrap().clone();
        let p = plan(&d, &observed(vec![]), now);
        assert!(steps_of(&p, &key).is_empty());
        assert_eq!(p.apps[&key].waiting_reason, Some(IMAGE_NOT_APPROVED));
        let why = p.apps[&key].waiting.clone().unwrap_or_default();
        assert!(why.contains("wharf images request busybox:1"), "{why}");
        // A pending request is named; a running container of an unapproved image is left alone.
        d.image_requests.insert(
            "docker.io/library/busybox:1".into(),
            RequestNote {
                id: 4,
                requested_by: "tok_a".into(),
                state: RequestState::Pending,
                decided_by: None,
                message: String::new(),
            },
        );
        let p = plan(&d, &observed(vec![]), now);
        let why = p.apps[&key].waiting.clone().unwrap_or_default();
        assert!(why.contains("wharf images approve 4"), "{why}");
        let running = container_for(&d, ContainerState::Running);
        assert!(steps_of(&plan(&d, &observed(vec![running]), now), &key).is_empty());
        d.images.insert(image_key(), image_object("busybox:1", ""));
        let p = plan(&d, &observed(vec![]), now);
        assert_eq!(steps_of(&p, &key), ["Created", "Started"]);
        assert_eq!(p.apps[&key].waiting_reason, None);
    }

    #[test]
    fn a_missing_image_is_pulled_before_create_unless_never() {
        let mut d = desired_with(spec(""));
        let empty = Observed::default();
        let p = plan(&d, &empty, Instant::now());
        assert_eq!(verbs(&p), ["Pulled", "Created", "Started"]);
        let Action::Pull { reference, .. } = &p.apps.values().next().unwrap().steps[0].action
        else {
            panic!("a pull first")
        };
        assert_eq!(reference, "docker.io/library/busybox:1");

        d.images.insert(
            image_key(),
            image_object("busybox:1", "  pullPolicy: Never\n"),
        );
        let p = plan(&d, &empty, Instant::now());
        let app = p
            .apps
            .values()
            .find(|a| a.uid.as_deref() == Some("u1"))
            .unwrap();
        assert!(app.steps.is_empty());
        assert!(app.waiting.as_deref().unwrap().contains("pullPolicy Never"));

        // Present: no pull (IfNotPresent), or a pull before each create (Always).
        d.images.clear();
        assert_eq!(
            verbs(&plan(&d, &observed(vec![]), Instant::now())),
            ["Created", "Started"]
        );
        d.images.insert(
            image_key(),
            image_object("busybox:1", "  pullPolicy: Always\n"),
        );
        d.images.get_mut(&image_key()).unwrap().pulled_generation = Some(1);
        let p = plan(&d, &observed(vec![]), Instant::now());
        assert_eq!(
            p.apps
                .values()
                .find(|a| a.uid.as_deref() == Some("u1"))
                .unwrap()
                .steps
                .len(),
            3
        );
    }

    #[test]
    fn image_objects_pull_check_and_delete_by_policy() {
        let d = |image: DesiredImage| Desired {
            images: BTreeMap::from([(image_key(), image)]),
            ..Desired::default()
        };
        let now = Instant::now();
        let present = observed(vec![]);
        let absent = Observed::default();

        let img = image_object("busybox:1", "");
        assert_eq!(
            steps_of(&plan(&d(img.clone()), &absent, now), &image_key()),
            ["Pulled"]
        );
        assert!(steps_of(&plan(&d(img.clone()), &present, now), &image_key()).is_empty());

        let always = image_object("busybox:1", "  pullPolicy: Always\n");
        assert_eq!(
            steps_of(&plan(&d(always.clone()), &present, now), &image_key()),
            ["Pulled"]
        );
        let pulled = DesiredImage {
            pulled_generation: Some(1),
            ..always
        };
        assert!(steps_of(&plan(&d(pulled), &present, now), &image_key()).is_empty());

        let due = DesiredImage {
            check_due: true,
            ..img.clone()
        };
        assert_eq!(
            steps_of(&plan(&d(due), &present, now), &image_key()),
            ["Checked"]
        );
        let moved = DesiredImage {
            remote_digest: Some("sha256:new".into()),
            ..img.clone()
        };
        let p = plan(&d(moved), &present, now);
        assert_eq!(steps_of(&p, &image_key()), ["Pulled"]);
        assert!(p.apps[&image_key()].steps[0].reason.contains("sha256:new"));

        let deleting = DesiredImage {
            deleting: true,
            ..img
        };
        assert_eq!(
            steps_of(&plan(&d(deleting.clone()), &present, now), &image_key()),
            ["ImageRemoved", "Deleted"]
        );
        assert_eq!(
            steps_of(&plan(&d(deleting), &absent, now), &image_key()),
            ["Deleted"]
        );
    }

    #[test]
    fn a_changed_image_rolls_one_app_at_a_time_and_not_after_a_rollback() {
        let mut d = desired_with(spec(""));
        let first = d.apps.values().next().unwrap().clone();
        let mut second = first.clone();
        second.uid = "u2".into();
        second.spec.key.name = "web2".into();
        d.apps.insert(second.spec.key.clone(), second.clone());
        let mut c1 = container_for(&d, ContainerState::Running);
        let mut c2 = c1.clone();
        c2.summary.id = "c2".into();
        c2.summary.labels = container_labels(&d.instance, &second);
        c1.summary.image_id = "sha256:old".into();
        c2.summary.image_id = "sha256:old".into();
        let o = observed(vec![c1.clone(), c2.clone()]);
        let p = plan(&d, &o, Instant::now());
        let replaced: Vec<_> = p
            .apps
            .values()
            .filter(|a| a.steps.iter().any(|s| s.action.verb() == "Replaced"))
            .collect();
        assert_eq!(replaced.len(), 1, "one app at a time: {p:#?}");
        assert!(
            replaced[0].steps[0]
                .reason
                .contains("image busybox:1 changed")
        );
        let waiting = p.apps.values().filter(|a| a.waiting.is_some()).count();
        assert_eq!(waiting, 1);

        // While the first app is busy, the second still waits.
        d.busy.insert(first.spec.key.clone());
        let p = plan(&d, &o, Instant::now());
        assert!(p.apps.values().all(|a| a.steps.is_empty()), "{p:#?}");

        // A rolled-back replacement to the same image is not tried again.
        d.busy.clear();
        for app in d.apps.values_mut() {
            app.rolled_back = Some(RolledBack {
                image_id: Some("sha256:x".into()),
                message: "exited".into(),
            });
        }
        let p = plan(&d, &o, Instant::now());
        assert!(p.apps.values().all(|a| a.steps.is_empty()), "{p:#?}");
        assert!(
            p.apps
                .values()
                .filter_map(|a| a.waiting.as_deref())
                .any(|w| w.contains("rolled back"))
        );
    }
}
