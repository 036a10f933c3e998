//! `ApiState`: what every handler is given — the store, the controller (loop, observation,
//! images, actions), the engine for the per-app views, and the server's settings.

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ApiResult};
use crate::agent::hub::AgentHub;
use crate::reconcile::images::ImageService;
use crate::reconcile::{Controller, Health};
use crate::runtime::Runtime;
use crate::source::git::GitHook;
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::stats::StatsConfig;
use crate::store::{ObjectRecord, Store};

/// Default request body limit.
pub const DEFAULT_MAX_BODY: usize = crate::defaults::MAX_BODY;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub runtime: Arc<dyn Runtime>,
    pub wake: Arc<Notify>,
    /// SHA-256 of the admin token of the data directory.
    pub admin_sha256: [u8; 32],
    pub health: watch::Receiver<Health>,
    /// Pulls and registry checks (shared with the loop, for live progress).
    pub images: Arc<ImageService>,
    /// The loop, for actions that must not run beside its work on the same app.
    pub controller: Arc<Controller>,
    /// Sampling interval and retention (which resolution a stats query reads).
    pub stats: StatsConfig,
    pub instance: String,
    pub max_body: usize,
    /// Swarm mode: the node agents.
    pub agents: Option<Arc<AgentHub>>,
    /// `--git`: the webhook that makes the source fetch at once.
    pub git: Option<Arc<GitHook>>,
    /// Cancelled when the server stops: streams that never end on their own (watches) end
    /// then, so a graceful shutdown does not wait for them.
    pub stopping: CancellationToken,
    /// This instance's place among the instances on its database.
    pub leadership: crate::cluster::Leadership,
}

impl ApiState {
    /// The stored object, or 404 naming it.
    pub async fn record(&self, kind: Kind, key: &AppKey) -> ApiResult<ObjectRecord> {
        self.store
            .get(kind, key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{} not found", kind.describe(key))))
    }
}
