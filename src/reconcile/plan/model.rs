//! The planner's data: what should exist (`Desired`), what does (`Observed`), and what to do
//! about it (`Plan`: per app, `Step`s of an `Action` with the reason it is needed). Plain data,
//! ordered maps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::{ContainerDetails, ContainerSummary, CreateSpec, ImageSummary, labels};
use crate::spec::image::{
    CredentialsRef, ImageSpec, PullPolicy, RequestState, canonical_reference,
};
use crate::spec::validate::{AppKey, AppSpec, Hashes, Limits, is_image_id};

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
    /// The object's `metadata.labels` (swarm mode puts them on the service).
    pub labels: BTreeMap<String, String>,
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
    /// Apps and images with work in flight (they hold their places in image rollouts).
    pub busy: BTreeSet<AppKey>,
    /// Apps of one image replaced at once when its Image sets no `spec.rollout.maxUnavailable`
    /// (`wharf serve --rollout-width`; 0 counts as 1).
    pub rollout_width: u32,
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
    pub(crate) fn pull_policy(&self, canonical: &str) -> (PullPolicy, Option<&CredentialsRef>) {
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

    pub fn label(&self, key: &str) -> Option<&str> {
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

impl Observed {
    /// The containers of each app, by the uid label (one walk: a pass over 1000 apps must not
    /// scan the list once per app).
    pub fn by_uid(&self) -> HashMap<&str, Vec<&ObservedContainer>> {
        let mut by_uid: HashMap<&str, Vec<&ObservedContainer>> = HashMap::new();
        for c in &self.containers {
            if let Some(uid) = c.label(labels::UID) {
                by_uid.entry(uid).or_default().push(c);
            }
        }
        by_uid
    }
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
    /// Gives a container its app's name back (one an interrupted replacement left aside).
    Rename {
        id: String,
        name: String,
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
            Action::Rename { .. } => "Renamed",
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
