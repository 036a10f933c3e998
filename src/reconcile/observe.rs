//! Observation: the one way wharf looks at the engine — this instance's containers, the engine's
//! images (cached while nothing can have changed them), and inspect details for the containers
//! that need them, fetched in parallel.
//!
//! The loop's passes, the dry run's preview and the image listing all look through here. An
//! observation is complete or it is an error: a failed listing is an error, never an empty list,
//! and a container whose inspect failed is named in `Observed::unobserved` so its app is set
//! aside instead of being planned on partial input. This module decides nothing.
//!
//! A container that is not running keeps the inspect details it had until the engine says
//! something happened to it (one of its events) or the event stream was lost: a converged
//! pass over stopped apps is one listing, not one inspect per stopped container.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::plan::{Observed, ObservedContainer};
use crate::runtime::{
    ContainerDetails, ContainerState, ContainerSummary, ImageSummary, Runtime, RuntimeError, labels,
};

/// The engine's image list, reused until an image event, a pull, or the cache's age says it may
/// be stale (images change far less often than containers, and listing them on every pass
/// costs the engine as much as listing the containers).
struct ImageCache {
    images: Vec<ImageSummary>,
    listed: Instant,
    /// The image changes (and pulls) counted when it was listed.
    changes: (u64, u64),
}

/// Looks at the engine for one wharf instance.
pub struct Observer {
    instance: String,
    /// Inspects in flight at once.
    parallel: usize,
    /// The cached image list is reused for at most this long.
    max_age: Duration,
    /// Bumped by anything that may have changed the engine's images (an image event, a pull,
    /// an image removal, a lost event stream).
    image_changes: AtomicU64,
    // std Mutex: held only to copy the list in or out, never across an .await.
    images: Mutex<Option<ImageCache>>,
    /// Inspect details of containers that were not running, kept while no event touched them.
    at_rest: Mutex<AtRest>,
}

/// The inspect details of containers that are not running, and which containers the engine
/// reported something about since (by a sequence number, so details read before an event are
/// never kept after it).
#[derive(Default)]
struct AtRest {
    /// Bumped by every container event.
    seq: u64,
    /// The `seq` of each container's last event.
    touched: HashMap<String, u64>,
    /// Container id → (its state when inspected, the details, the `seq` before its listing).
    details: HashMap<String, (ContainerState, ContainerDetails, u64)>,
    /// Containers whose last lifecycle event was an exit (`die`): until their next `start`, a
    /// listing that says they run is checked with an inspect. The engine sends `die` before its
    /// listing shows the exit (it releases the container's network first), so a pass woken by
    /// the event could otherwise see the container still running and repair nothing.
    exited: std::collections::HashSet<String>,
}

impl AtRest {
    fn valid(&self, id: &str, state: ContainerState) -> Option<ContainerDetails> {
        let (at, details, seq) = self.details.get(id)?;
        let untouched = self.touched.get(id).is_none_or(|t| t <= seq);
        (*at == state && untouched).then(|| details.clone())
    }
}

/// What needs more than the listing says.
pub struct Wants<'a> {
    /// Pulls made so far (a pull changes the engine's images).
    pub pulls: u64,
    /// Whether a container's inspect details are needed for planning.
    pub details: &'a (dyn Fn(&ContainerSummary) -> bool + Sync),
    /// The update-class hash wharf applied in place to a container, if any (labels cannot
    /// record it; the store does).
    pub applied_update: &'a (dyn Fn(&ContainerSummary) -> Option<String> + Sync),
}

impl Observer {
    pub fn new(instance: String, parallel: usize, max_age: Duration) -> Self {
        Self {
            instance,
            parallel: parallel.max(1),
            max_age,
            image_changes: AtomicU64::new(0),
            images: Mutex::new(None),
            at_rest: Mutex::new(AtRest::default()),
        }
    }

    fn at_rest(&self) -> std::sync::MutexGuard<'_, AtRest> {
        self.at_rest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine reported `action` about container `id`: its details are read again.
    pub fn container_changed(&self, id: &str, action: &str) {
        let mut at_rest = self.at_rest();
        at_rest.seq += 1;
        let seq = at_rest.seq;
        at_rest.touched.insert(id.to_string(), seq);
        match action {
            "die" => {
                at_rest.exited.insert(id.to_string());
            }
            "start" | "restart" | "destroy" => {
                at_rest.exited.remove(id);
            }
            _ => {}
        }
    }

    /// Events may have been missed (the stream was lost): every container is read again.
    pub fn containers_changed(&self) {
        let mut at_rest = self.at_rest();
        at_rest.details.clear();
        at_rest.touched.clear();
        at_rest.exited.clear();
        at_rest.seq += 1;
    }

    /// The engine's images may have changed: the next observation lists them again.
    pub fn images_changed(&self) {
        self.image_changes.fetch_add(1, Ordering::AcqRel);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<ImageCache>> {
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine's images: the cached list while nothing can have changed them (`pulls`
    /// counts the pulls made so far), else a fresh one.
    pub async fn images(
        &self,
        runtime: &dyn Runtime,
        pulls: u64,
    ) -> Result<Vec<ImageSummary>, RuntimeError> {
        let changes = (self.image_changes.load(Ordering::Acquire), pulls);
        if let Some(cache) = self.cache().as_ref()
            && cache.changes == changes
            && cache.listed.elapsed() < self.max_age
        {
            return Ok(cache.images.clone());
        }
        let images = runtime.images().await?;
        *self.cache() = Some(ImageCache {
            images: images.clone(),
            listed: Instant::now(),
            changes,
        });
        Ok(images)
    }

    /// This instance's containers and the engine's images, without inspect details.
    pub async fn listing(
        &self,
        runtime: &dyn Runtime,
        pulls: u64,
    ) -> Result<Observed, RuntimeError> {
        self.observe(
            runtime,
            &Wants {
                pulls,
                details: &|_| false,
                applied_update: &|_| None,
            },
        )
        .await
    }

    /// A complete observation: the listings (an error if either fails) and the inspect details
    /// `wants` asks for. A container that vanished between list and inspect is left out (the
    /// next pass sees it gone); one whose inspect failed otherwise names its app in
    /// `unobserved`.
    pub async fn observe(
        &self,
        runtime: &dyn Runtime,
        wants: &Wants<'_>,
    ) -> Result<Observed, RuntimeError> {
        let seq = self.at_rest().seq;
        let mut containers = runtime.list(&self.instance).await?;
        let images = self.images(runtime, wants.pulls).await?;
        let mut kept: HashMap<String, ContainerDetails> = HashMap::new();
        let need: Vec<String> = {
            let at_rest = self.at_rest();
            let stale = |c: &ContainerSummary| {
                c.state == ContainerState::Running && at_rest.exited.contains(&c.id)
            };
            containers
                .iter()
                .filter(|c| stale(c) || (wants.details)(c))
                .filter(|c| {
                    let cached = (c.state != ContainerState::Running)
                        .then(|| at_rest.valid(&c.id, c.state))
                        .flatten();
                    match cached {
                        Some(details) => {
                            kept.insert(c.id.clone(), details);
                            false
                        }
                        None => true,
                    }
                })
                .map(|c| c.id.clone())
                .collect()
        };
        let mut inspected: HashMap<String, _> = futures::stream::iter(need)
            .map(|id| async move {
                let details = runtime.inspect(&id).await;
                (id, details)
            })
            .buffer_unordered(self.parallel)
            .collect()
            .await;
        // An inspect reads the container itself, a listing the engine's copy of it, which
        // follows an exit a little later: where they differ, the inspect is newer.
        for c in &mut containers {
            if let Some(Ok(ContainerDetails {
                state: Some(state), ..
            })) = inspected.get(&c.id)
                && c.state == ContainerState::Running
                && *state != ContainerState::Running
            {
                c.state = *state;
            }
        }
        let mut observed = Observed {
            images,
            ..Observed::default()
        };
        {
            let mut at_rest = self.at_rest();
            let listed: std::collections::HashSet<&str> =
                containers.iter().map(|c| c.id.as_str()).collect();
            at_rest.details.retain(|id, _| listed.contains(id.as_str()));
            at_rest.touched.retain(|id, _| listed.contains(id.as_str()));
            at_rest.exited.retain(|id| listed.contains(id.as_str()));
            for c in containers
                .iter()
                .filter(|c| c.state != ContainerState::Running)
            {
                if let Some(Ok(details)) = inspected.get(&c.id) {
                    at_rest
                        .details
                        .insert(c.id.clone(), (c.state, details.clone(), seq));
                }
            }
        }
        for summary in containers {
            let applied = (wants.applied_update)(&summary);
            let details = match inspected.remove(&summary.id) {
                None => kept.remove(&summary.id),
                Some(Ok(d)) => Some(d),
                Some(Err(RuntimeError::NotFound(_))) => continue,
                Some(Err(e)) => {
                    tracing::warn!(container = %summary.name, "inspect failed, app set aside this pass: {e}");
                    if let Some(uid) = summary.labels.get(labels::UID) {
                        observed
                            .unobserved
                            .insert(uid.clone(), format!("inspecting {}: {e}", summary.name));
                    }
                    None
                }
            };
            let mut container = ObservedContainer::new(summary, details);
            container.applied_update = applied;
            observed.containers.push(container);
        }
        Ok(observed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{FakeRuntime, Op};
    use crate::runtime::{ContainerState, CreateSpec};
    use crate::spec::validate::{ContainerConfig, Limits};

    fn spec(name: &str, uid: &str) -> CreateSpec {
        CreateSpec {
            name: name.into(),
            labels: [
                (labels::MANAGED_BY, labels::MANAGED_BY_VALUE),
                (labels::INSTANCE, "obs"),
                (labels::UID, uid),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            config: ContainerConfig {
                image: "busybox".into(),
                ..ContainerConfig::default()
            },
            limits: Limits::default(),
            volume_names: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_failed_inspect_sets_its_app_aside_and_a_failed_listing_is_an_error() {
        let fake = FakeRuntime::default();
        fake.add_image("busybox");
        let a = fake.create(&spec("demo.a", "ua")).await.expect("created");
        let b = fake.create(&spec("demo.b", "ub")).await.expect("created");
        fake.fail_next(
            Op::Inspect,
            &b,
            RuntimeError::Timeout {
                op: "inspect",
                seconds: 1,
            },
        );
        let observer = Observer::new("obs".into(), 4, Duration::from_secs(30));
        let all = |_: &ContainerSummary| true;
        let none = |_: &ContainerSummary| None;
        let wants = Wants {
            pulls: 0,
            details: &all,
            applied_update: &none,
        };
        let observed = observer.observe(&fake, &wants).await.expect("observed");
        assert_eq!(observed.containers.len(), 2);
        let by_id = |id: &str| observed.containers.iter().find(|c| c.summary.id == id);
        assert!(by_id(&a).is_some_and(|c| c.details.is_some()));
        assert!(by_id(&b).is_some_and(|c| c.details.is_none()));
        assert_eq!(
            observed.unobserved.keys().collect::<Vec<_>>(),
            vec!["ub"],
            "only the app whose inspect failed is set aside"
        );
        assert!(
            observed
                .containers
                .iter()
                .all(|c| c.summary.state == ContainerState::Created)
        );

        fake.fail_next(
            Op::List,
            "",
            RuntimeError::Unavailable("engine gone".into()),
        );
        assert!(
            observer.observe(&fake, &wants).await.is_err(),
            "a failed listing is an error, never an empty observation"
        );
    }

    #[tokio::test]
    async fn a_stopped_container_is_inspected_again_only_after_an_event() {
        let fake = FakeRuntime::default();
        fake.add_image("busybox");
        let a = fake.create(&spec("demo.a", "ua")).await.expect("created");
        let observer = Observer::new("obs".into(), 4, Duration::from_secs(30));
        let all = |_: &ContainerSummary| true;
        let none = |_: &ContainerSummary| None;
        let wants = Wants {
            pulls: 0,
            details: &all,
            applied_update: &none,
        };
        let inspects =
            |fake: &FakeRuntime| fake.calls().iter().filter(|c| c.op == Op::Inspect).count();
        for _ in 0..3 {
            let observed = observer.observe(&fake, &wants).await.expect("observed");
            assert!(observed.containers[0].details.is_some(), "details kept");
        }
        assert_eq!(inspects(&fake), 1, "one inspect for three passes");
        observer.container_changed(&a, "die");
        observer.observe(&fake, &wants).await.expect("observed");
        assert_eq!(inspects(&fake), 2, "an event makes it read again");
        // Running containers are read every time they are wanted.
        fake.start(&a).await.expect("started");
        observer.observe(&fake, &wants).await.expect("observed");
        observer.observe(&fake, &wants).await.expect("observed");
        assert_eq!(inspects(&fake), 4);
        observer.containers_changed();
        fake.stop(&a, None).await.expect("stopped");
        observer.observe(&fake, &wants).await.expect("observed");
        observer.observe(&fake, &wants).await.expect("observed");
        assert_eq!(inspects(&fake), 5, "stopped again: read once, then kept");
    }

    #[tokio::test]
    async fn the_image_list_is_reused_until_something_changed_it() {
        let fake = FakeRuntime::default();
        fake.add_image("busybox");
        let observer = Observer::new("obs".into(), 4, Duration::from_secs(30));
        assert_eq!(observer.images(&fake, 0).await.expect("listed").len(), 1);
        fake.add_image("alpine");
        assert_eq!(
            observer.images(&fake, 0).await.expect("cached").len(),
            1,
            "nothing said the images changed"
        );
        assert_eq!(
            observer.images(&fake, 1).await.expect("listed").len(),
            2,
            "a pull changes the images"
        );
        fake.add_image("debian");
        observer.images_changed();
        assert_eq!(observer.images(&fake, 1).await.expect("listed").len(), 3);
    }
}
