//! The loop's image operations: pulls (one at a time per reference, with live per-layer
//! progress) and registry digest checks (with a back-off for registries that rate-limit). What
//! they find is recorded in the loop's memory (`memory.rs`), where the Desired builder reads it
//! with everything else the loop remembers; the API reads the live pull progress from there
//! too, so a client sees a pull move while it happens.
//!
//! The planner decides when to pull or check; this module only does it and records the result.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::time::Instant;

use super::memory::{ImageMemory, Memory};
use crate::images::registry::{RegistryClient, RegistryError};
use crate::images::resolve_credentials;
use crate::runtime::image_match::{find_local, has_digest, repo_digest};
use crate::runtime::{ImageSummary, PullProgress, Runtime, RuntimeError};
use crate::spec::image::CredentialsRef;
use crate::spec::status::{LayerProgress, PullPhase, PullState};
use crate::store::now_rfc3339;

/// The result of checking one image against its registry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    pub remote_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_digest: Option<String>,
    pub changed: bool,
}

pub struct ImageService {
    runtime: Arc<dyn Runtime>,
    registry: RegistryClient,
    /// The loop's memory, whose image part this service keeps.
    memory: Arc<Mutex<Memory>>,
    /// One pull at a time per reference; a second caller waits and then finds it done.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped after every pull: the loop's cached image list is stale when this moved.
    pulls: AtomicU64,
}

impl ImageService {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        registry: RegistryClient,
        memory: Arc<Mutex<Memory>>,
    ) -> Self {
        Self {
            runtime,
            registry,
            memory,
            locks: Mutex::new(HashMap::new()),
            pulls: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, reference: &str, f: impl FnOnce(&mut ImageMemory)) {
        f(self.lock().image_mut(reference));
    }

    /// How many pulls finished (successfully or not) since start.
    pub fn pulls(&self) -> u64 {
        self.pulls.load(Ordering::Acquire)
    }

    /// What is remembered about `reference` (canonical form).
    pub fn memory(&self, reference: &str) -> ImageMemory {
        self.lock().image(reference)
    }

    /// Pulls `reference` (canonical form) and records progress and result.
    pub async fn pull(
        &self,
        reference: &str,
        credentials: Option<&CredentialsRef>,
    ) -> Result<(), RuntimeError> {
        let gate = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(reference.to_string()).or_default())
        };
        let _one_at_a_time = gate.lock().await;
        let credentials = credentials
            .map(|c| resolve_credentials(c, reference))
            .transpose()
            .map_err(|message| RuntimeError::Pull {
                reference: reference.to_string(),
                message,
            })?;
        self.update(reference, |m| {
            m.pull = Some(PullState {
                state: PullPhase::Pulling,
                started_at: now_rfc3339(),
                finished_at: None,
                layers: BTreeMap::new(),
                message: None,
            })
        });
        let progress = |p: PullProgress| {
            let Some(layer) = p.layer else { return };
            // Docker reports the tag itself as a "layer" in its first message.
            if p.status.starts_with("Pulling from") {
                return;
            }
            self.update(reference, |m| {
                if let Some(pull) = &mut m.pull {
                    pull.layers.insert(
                        layer,
                        LayerProgress {
                            status: p.status,
                            current: p.current,
                            total: p.total,
                        },
                    );
                }
            });
        };
        let result = self
            .runtime
            .pull(reference, credentials.as_ref(), &progress)
            .await;
        self.pulls.fetch_add(1, Ordering::AcqRel);
        let now = now_rfc3339();
        self.update(reference, |m| {
            if let Some(pull) = &mut m.pull {
                pull.finished_at = Some(now.clone());
                match &result {
                    Ok(()) => pull.state = PullPhase::Pulled,
                    Err(e) => {
                        pull.state = PullPhase::Failed;
                        pull.message = Some(e.to_string());
                    }
                }
            }
            if result.is_ok() {
                m.pulled_at = Some(now);
                // The pull is the freshest word on the digest; the next check asks again.
                m.remote_digest = None;
            }
        });
        result
    }

    /// Asks the registry for the digest `reference` (canonical form) has now, unless the
    /// registry is being backed off after a 429.
    pub async fn check(
        &self,
        reference: &str,
        credentials: Option<&CredentialsRef>,
    ) -> Result<String, RegistryError> {
        let now = Instant::now();
        if let Some(until) = self.memory(reference).check_hold_until.filter(|t| *t > now) {
            return Err(RegistryError::RateLimited(format!(
                "backing off; next check in {}s",
                (until - now).as_secs()
            )));
        }
        let credentials = credentials
            .map(|c| resolve_credentials(c, reference))
            .transpose()
            .map_err(RegistryError::Unauthorized)?;
        let result = self.registry.digest(reference, credentials.as_ref()).await;
        self.update(reference, |m| {
            m.checked = Some(Instant::now());
            m.checked_at = Some(now_rfc3339());
            match &result {
                Ok(digest) => {
                    m.remote_digest = Some(digest.clone());
                    m.check_error = None;
                    m.rate_limit_backoff = None;
                    m.check_hold_until = None;
                }
                Err(e) => {
                    m.check_error = Some(e.clone());
                    if matches!(e, RegistryError::RateLimited(_)) {
                        let wait = crate::backoff::rate_limited(m.rate_limit_backoff);
                        m.rate_limit_backoff = Some(wait);
                        m.check_hold_until = Some(Instant::now() + wait);
                    }
                }
            }
        });
        result
    }

    /// Checks `reference` against the engine's copy: changed when the registry serves a digest
    /// the local image was not pulled by (or there is no local image).
    pub async fn check_against(
        &self,
        reference: &str,
        credentials: Option<&CredentialsRef>,
        local: &[ImageSummary],
    ) -> Result<CheckOutcome, RegistryError> {
        let remote = self.check(reference, credentials).await?;
        let found = find_local(local, reference);
        let local_digest = found.and_then(|i| repo_digest(i, reference));
        let changed = match found {
            None => true,
            Some(i) => !has_digest(i, reference, &remote),
        };
        Ok(CheckOutcome {
            remote_digest: remote,
            local_digest,
            changed,
        })
    }
}
