//! The one builder of `Desired`: stored records plus what the loop remembers about them and
//! about their images (one memory), the approval gate and the image requests that word it.
//!
//! The loop's passes, the dry run's preview and hard resets all build through here, so a
//! preview plans exactly what the loop would. `needs_details` says, from the same inputs, which
//! containers the observation must inspect. Reads only: the loop keeps the memory in step with
//! the store before it builds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::time::Instant;

use super::memory::Memory;
use super::plan::{Desired, DesiredApp, DesiredImage, RequestNote};
use crate::runtime::{ContainerState, ContainerSummary, HealthState, labels};
use crate::spec::Kind;
use crate::spec::validate::{AppKey, AppSpec, Hashes};
use crate::store::ObjectRecord;
use crate::store::security::ImageRequest;

/// Validated app specs by uid, with the generation, resource version and port area they were
/// validated at: a stored spec changes only with them, so a converged pass validates nothing.
/// Only the loop's passes use it (a dry run's candidates are validated afresh).
#[derive(Default)]
pub(super) struct SpecCache(std::sync::Mutex<HashMap<String, CachedSpec>>);

struct CachedSpec {
    version: (i64, i64, Option<u16>),
    spec: AppSpec,
    hashes: Hashes,
}

impl SpecCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedSpec>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `record`'s spec placed in its port area, and its hashes: from the cache when the record
    /// is the one validated before.
    fn get(&self, record: &ObjectRecord) -> Result<(AppSpec, Hashes), String> {
        let version = (
            record.generation,
            record.resource_version,
            record.host_port_root,
        );
        if let Some(hit) = self
            .lock()
            .get(&record.uid)
            .filter(|c| c.version == version)
        {
            return Ok((hit.spec.clone(), hit.hashes.clone()));
        }
        let (spec, hashes) = validated(record)?;
        self.lock().insert(
            record.uid.clone(),
            CachedSpec {
                version,
                spec: spec.clone(),
                hashes: hashes.clone(),
            },
        );
        Ok((spec, hashes))
    }

    /// Forgets the objects that are no longer stored.
    fn keep(&self, records: &[ObjectRecord]) {
        let live: BTreeSet<&str> = records.iter().map(|r| r.uid.as_str()).collect();
        self.lock().retain(|uid, _| live.contains(uid.as_str()));
    }
}

/// `record`'s spec validated and placed in its port area, with its hashes.
fn validated(record: &ObjectRecord) -> Result<(AppSpec, Hashes), String> {
    let mut spec = record.app_spec()?;
    spec.place_in_port_area(record.host_port_root);
    let hashes = spec.hashes();
    Ok((spec, hashes))
}

/// What `Desired` is built from besides the records.
pub(super) struct Context<'a> {
    pub(super) instance: &'a str,
    pub(super) require_approved_images: bool,
    pub(super) rollout_width: u32,
    pub(super) memory: &'a Memory,
    /// Apps with work in flight.
    pub(super) busy: &'a BTreeSet<AppKey>,
    /// The loop's validated specs (`None`: validate every record).
    pub(super) specs: Option<&'a SpecCache>,
}

/// Builds `Desired` from every stored App and Image. A record whose stored spec no longer
/// validates is frozen (its containers are left alone) and logged.
pub(super) fn build(records: &[ObjectRecord], cx: &Context<'_>, now: Instant) -> Desired {
    let mut desired = Desired {
        instance: cx.instance.to_string(),
        require_approved_images: cx.require_approved_images,
        rollout_width: cx.rollout_width,
        busy: cx.busy.clone(),
        ..Desired::default()
    };
    for record in records {
        match record.kind {
            Kind::Image => match desired_image(record, cx, now) {
                Ok(image) => {
                    desired.images.insert(record.key.clone(), image);
                }
                Err(e) => {
                    tracing::error!(image = %record.key, "stored Image no longer validates; left alone: {e}");
                }
            },
            // Swarm mode's nodes: see `desired_nodes`.
            Kind::Node => {}
            Kind::App => match desired_app_with(record, cx.memory, cx.specs, now) {
                Ok(app) => {
                    desired.apps.insert(record.key.clone(), app);
                }
                Err(e) => {
                    tracing::error!(app = %record.key, "stored spec no longer validates; its container is left alone: {e}");
                    desired.frozen_uids.insert(record.uid.clone());
                }
            },
        }
    }
    if let Some(specs) = cx.specs {
        specs.keep(records);
    }
    desired
}

/// Whether some app waits for the approval of its image: only then are the image requests
/// read (to name the request in its condition).
pub(super) fn needs_requests(desired: &Desired) -> bool {
    desired
        .apps
        .values()
        .any(|a| desired.unapproved(&a.spec.container.image).is_some())
}

/// Notes the newest request per reference (`requests` newest first).
pub(super) fn note_requests(desired: &mut Desired, requests: Vec<ImageRequest>) {
    for r in requests {
        desired
            .image_requests
            .entry(r.reference.clone())
            .or_insert(RequestNote {
                id: r.id,
                requested_by: r.requested_by,
                state: r.state,
                decided_by: r.decided_by,
                message: r.message,
            });
    }
}

/// The app a stored record declares, with what the loop remembers about it; or why its stored
/// spec no longer validates.
pub(super) fn desired_app(
    record: &ObjectRecord,
    memory: &Memory,
    now: Instant,
) -> Result<DesiredApp, String> {
    desired_app_with(record, memory, None, now)
}

fn desired_app_with(
    record: &ObjectRecord,
    memory: &Memory,
    specs: Option<&SpecCache>,
    now: Instant,
) -> Result<DesiredApp, String> {
    let (spec, hashes) = match specs {
        Some(cache) => cache.get(record)?,
        None => validated(record)?,
    };
    let view = memory.view(record, now);
    Ok(DesiredApp {
        uid: record.uid.clone(),
        generation: record.generation,
        spec,
        hashes,
        deleting: record.is_terminating(),
        hold_until: view.hold_until,
        repairs: view.repairs,
        rolled_back: view.rolled_back,
        host_port_root: record.host_port_root,
        blocked_on_image: view.blocked_on_image,
        labels: record.labels.clone(),
        had_container: record
            .app_status()
            .is_some_and(|s| s.container_id.is_some()),
    })
}

fn desired_image(
    record: &ObjectRecord,
    cx: &Context<'_>,
    now: Instant,
) -> Result<DesiredImage, String> {
    let spec = record.image_spec()?;
    let view = cx.memory.view(record, now);
    let known = cx.memory.image(&spec.canonical);
    let check_due = spec.update_interval.is_some_and(|interval| {
        known.check_hold_until.is_none_or(|t| t <= now)
            && known
                .checked
                .is_none_or(|t| now.duration_since(t) >= interval)
    });
    Ok(DesiredImage {
        uid: record.uid.clone(),
        generation: record.generation,
        deleting: record.is_terminating(),
        hold_until: view.hold_until,
        pulled_generation: view.pulled_generation,
        check_due,
        remote_digest: known.remote_digest,
        spec,
    })
}

/// The records a write of `candidates` would leave in the store: `stored` with each candidate
/// in place of the object it names (or added).
pub(super) fn with_candidates(
    mut stored: Vec<ObjectRecord>,
    candidates: Vec<ObjectRecord>,
) -> Vec<ObjectRecord> {
    let mut by_key: BTreeMap<(Kind, AppKey), ObjectRecord> = stored
        .drain(..)
        .map(|r| ((r.kind, r.key.clone()), r))
        .collect();
    for c in candidates {
        by_key.insert((c.kind, c.key.clone()), c);
    }
    by_key.into_values().collect()
}

/// Whether planning needs a container's inspect details: it is stopped (exit code), out of date
/// (the limits in force), new to the status (start time) or unhealthy (the probe's output) —
/// unless its app is busy anyway.
pub(super) fn needs_details(
    c: &ContainerSummary,
    by_uid: &HashMap<&str, &ObjectRecord>,
    desired: &Desired,
) -> bool {
    let tags = &c.labels;
    let Some(uid) = tags.get(labels::UID) else {
        return false;
    };
    let key = AppKey {
        namespace: tags.get(labels::NAMESPACE).cloned().unwrap_or_default(),
        name: tags.get(labels::APP).cloned().unwrap_or_default(),
    };
    if desired.busy.contains(&key) {
        return false;
    }
    let running = c.state == ContainerState::Running;
    let Some(record) = by_uid.get(uid.as_str()) else {
        return !running;
    };
    let status_id = record.app_status().and_then(|s| s.container_id.as_deref());
    let out_of_date = desired.apps.get(&record.key).is_some_and(|a| {
        c.labels.get(labels::HASH_RECREATE) != Some(&a.hashes.recreate)
            || record
                .applied_hash_for(&c.id)
                .as_ref()
                .or(c.labels.get(labels::HASH_UPDATE))
                != Some(&a.hashes.update)
    });
    // An unhealthy container's last probe output explains its Ready condition.
    let unhealthy = c.health == Some(HealthState::Unhealthy);
    !running || status_id != Some(c.id.as_str()) || out_of_date || unhealthy
}
