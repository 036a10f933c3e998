//! What the loop remembers between passes — about each object: its backoff, repairs, last
//! failure, the pull made for its generation and a rolled-back replacement; about each image
//! reference: the last pull (live while it runs) and registry check. Lost on restart by
//! design (a restarted wharf gives every app a fresh chance), except a rollback of the current
//! generation, which the stored status keeps.
//!
//! Who writes what: the loop keeps the object memory in step with the store (`sync`) and
//! records what each app's work did; the image operations (`images.rs`) record pulls and
//! registry checks. The Desired builder and the dry run's preview only read it (`view`,
//! `image`), so a preview sees what the loop would see and changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use backon::ExponentialBackoff;
use tokio::time::Instant;

use super::plan::RolledBack;
use crate::backoff;
use crate::images::registry::RegistryError;
use crate::spec::status::PullState;
use crate::store::ObjectRecord;

/// The last failed attempt to reconcile an app.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub generation: i64,
    pub reason: String,
    pub message: String,
}

/// One object's memory (Apps and Images alike).
pub(super) struct ObjectMemory {
    pub(super) generation: i64,
    backoff: ExponentialBackoff,
    pub(super) repairs: u32,
    pub(super) hold_until: Option<Instant>,
    pub(super) last_repair: Option<Instant>,
    pub(super) failure: Option<Failure>,
    /// Images: the generation a pull was last made for.
    pub(super) pulled_generation: Option<i64>,
    /// Apps: a replacement at this generation rolled back.
    pub(super) rolled_back: Option<RolledBack>,
    /// A permanent failure: the engine image the app's reference named then.
    pub(super) blocked_on_image: Option<Option<String>>,
    /// Swarm mode: the service hash this generation last sent to the manager.
    pub(super) attempted: Option<String>,
}

impl ObjectMemory {
    pub(super) fn new(generation: i64) -> Self {
        Self {
            generation,
            backoff: backoff::app(),
            repairs: 0,
            hold_until: None,
            last_repair: None,
            failure: None,
            pulled_generation: None,
            rolled_back: None,
            blocked_on_image: None,
            attempted: None,
        }
    }

    /// After a wharf restart: a rollback of the current generation is still remembered (from
    /// the stored status), so a failed replacement is not tried again on every restart.
    fn restored(record: &ObjectRecord) -> Self {
        let mut memory = Self::new(record.generation);
        memory.rolled_back = record
            .app_status()
            .and_then(|s| s.rolled_back.clone())
            .filter(|r| r.generation == record.generation)
            .map(|r| RolledBack {
                image_id: r.image_id,
                message: r.message,
            });
        memory
    }

    /// Holds retries and repairs back for the next backoff delay.
    pub(super) fn hold(&mut self, now: Instant) {
        let delay = self.backoff.next().unwrap_or(backoff::APP_MAX);
        self.hold_until = Some(now + delay);
    }

    /// After a permanent failure: no retry until the image changes, the engine reconnects or
    /// the spec changes (a new generation is a new memory), or — for changes wharf cannot see,
    /// such as a foreign container freeing a name — the longest backoff has passed.
    pub(super) fn block(&mut self, image_id: Option<String>, now: Instant) {
        self.blocked_on_image = Some(image_id);
        self.hold_until = Some(now + backoff::APP_MAX);
    }
}

/// What the planner is told about one object from memory.
#[derive(Clone, Debug, Default)]
pub(super) struct View {
    pub(super) hold_until: Option<Instant>,
    pub(super) repairs: u32,
    pub(super) rolled_back: Option<RolledBack>,
    pub(super) pulled_generation: Option<i64>,
    pub(super) blocked_on_image: Option<Option<String>>,
}

/// What wharf remembers about one image reference (in memory; the Image status keeps the
/// times across restarts).
#[derive(Clone, Debug, Default)]
pub struct ImageMemory {
    pub pulled_at: Option<String>,
    pub pull: Option<PullState>,
    pub checked_at: Option<String>,
    pub checked: Option<Instant>,
    pub remote_digest: Option<String>,
    pub check_error: Option<RegistryError>,
    /// A rate-limited registry is not asked again before this.
    pub check_hold_until: Option<Instant>,
    pub(super) rate_limit_backoff: Option<Duration>,
}

/// Swarm mode: the task failures already reported (each failure is one event) and the node
/// each slot's running task was on (a move is an event), per service.
#[derive(Default)]
pub struct TaskBook {
    /// `None` until the first pass has seen the tasks (old failures are not news).
    pub(super) reported: Option<HashSet<String>>,
    pub(super) placed: HashMap<(String, u64), String>,
}

/// Everything the loop remembers: every object's memory by uid, every image reference's
/// (pulls, registry checks) by canonical reference, and in swarm mode what was seen of the
/// tasks.
#[derive(Default)]
pub struct Memory {
    objects: HashMap<String, ObjectMemory>,
    images: HashMap<String, ImageMemory>,
    pub(super) tasks: TaskBook,
}

impl Memory {
    /// Brings the memory in step with the store: new objects are remembered (a stored rollback
    /// restored), a changed spec gets a fresh chance, deleted objects are forgotten.
    pub(super) fn sync(&mut self, records: &[ObjectRecord]) {
        for record in records {
            let memory = self
                .objects
                .entry(record.uid.clone())
                .or_insert_with(|| ObjectMemory::restored(record));
            if memory.generation != record.generation {
                *memory = ObjectMemory::new(record.generation);
            }
        }
        let live: BTreeSet<&str> = records.iter().map(|r| r.uid.as_str()).collect();
        self.objects.retain(|uid, _| live.contains(uid.as_str()));
    }

    /// What is remembered about `record` at its current generation (nothing for an object the
    /// loop has not seen yet, or whose spec changed since; a stored rollback of its generation
    /// counts even then).
    pub(super) fn view(&self, record: &ObjectRecord, now: Instant) -> View {
        match self
            .objects
            .get(&record.uid)
            .filter(|m| m.generation == record.generation)
        {
            Some(m) => View {
                hold_until: m.hold_until.filter(|t| *t > now),
                repairs: m.repairs,
                rolled_back: m.rolled_back.clone(),
                pulled_generation: m.pulled_generation,
                blocked_on_image: m.blocked_on_image.clone(),
            },
            None => View {
                rolled_back: ObjectMemory::restored(record).rolled_back,
                ..View::default()
            },
        }
    }

    /// The engine came back: what failed permanently gets its chance again.
    pub(super) fn unblock_all(&mut self) {
        for m in self.objects.values_mut() {
            if m.blocked_on_image.take().is_some() {
                m.hold_until = None;
            }
        }
    }

    /// What is remembered about an image reference (canonical form).
    pub(super) fn image(&self, reference: &str) -> ImageMemory {
        self.images.get(reference).cloned().unwrap_or_default()
    }

    pub(super) fn image_mut(&mut self, reference: &str) -> &mut ImageMemory {
        self.images.entry(reference.to_string()).or_default()
    }

    pub(super) fn get(&self, uid: &str) -> Option<&ObjectMemory> {
        self.objects.get(uid)
    }

    pub(super) fn get_mut(&mut self, uid: &str) -> Option<&mut ObjectMemory> {
        self.objects.get_mut(uid)
    }

    /// Gives every app that has run for `healthy` since its last repair a fresh backoff.
    pub(super) fn reset_healthy(
        &mut self,
        uid: &str,
        running: bool,
        now: Instant,
        healthy: Duration,
    ) -> bool {
        match self.objects.get_mut(uid) {
            Some(m)
                if running
                    && m.last_repair
                        .is_some_and(|t| now.duration_since(t) >= healthy) =>
            {
                *m = ObjectMemory::new(m.generation);
                true
            }
            _ => false,
        }
    }
}
