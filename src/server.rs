//! `wharf serve`: opens the store, connects to Docker, starts the loop, the directory watcher
//! and the API. Tests start the same server in-process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::http::{self, ApiState};
use crate::reconcile::{Controller, ControllerConfig};
use crate::runtime::Runtime;
use crate::runtime::docker::{Deadlines, DockerRuntime};
use crate::stats::uptime::Recorder;
use crate::stats::{Sampler, StatsConfig};
use crate::store::{PortRange, Store};

pub const TOKEN_FILE: &str = "admin.token";
pub const DATABASE_FILE: &str = "wharf.db";

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// `None` disables the watched directory.
    pub specs_dir: Option<PathBuf>,
    pub listen: SocketAddr,
    pub controller: ControllerConfig,
    pub max_body: usize,
    pub deadlines: Deadlines,
    /// Host ports that port areas are allocated from.
    pub port_areas: PortRange,
    pub stats: StatsConfig,
}

impl ServeConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            specs_dir: Some(PathBuf::from("specs")),
            listen: SocketAddr::from(([127, 0, 0, 1], 7999)),
            controller: ControllerConfig::default(),
            max_body: http::DEFAULT_MAX_BODY,
            deadlines: Deadlines::default(),
            port_areas: PortRange::default(),
            stats: StatsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin token {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Docker(#[from] crate::runtime::RuntimeError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Reads the admin token, creating it (mode 0600) on first start.
pub fn admin_token(data_dir: &Path) -> Result<String, ServeError> {
    let path = data_dir.join(TOKEN_FILE);
    let err = |source| ServeError::Token {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let bytes: [u8; 32] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(err)?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(err)?;
    file.sync_all().map_err(err)?;
    tracing::info!(path = %path.display(), "generated the admin token");
    Ok(token)
}

/// A running wharf.
pub struct Server {
    pub addr: SocketAddr,
    pub token: String,
    pub store: Store,
    pub controller: Arc<Controller>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts against the local Docker Engine.
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        let runtime = DockerRuntime::connect_local(config.deadlines)?;
        Self::start_with(config, Arc::new(runtime)).await
    }

    /// Starts against any runtime.
    pub async fn start_with(
        config: ServeConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Self, ServeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let token = admin_token(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join(DATABASE_FILE))
            .await?
            .with_port_areas(config.port_areas);
        let wake = Arc::new(Notify::new());
        let controller = Controller::new(
            store.clone(),
            Arc::clone(&runtime),
            config.controller.clone(),
            Arc::clone(&wake),
        );
        let mut tasks = Vec::new();
        if let Some(dir) = &config.specs_dir {
            // One scan before the loop starts, so a restart never plans on a stale store.
            if let Err(e) = crate::source::sync_once(dir, &store).await {
                tracing::error!("first scan of {}: {e}", dir.display());
            }
            tasks.push(crate::source::spawn(
                dir.clone(),
                store.clone(),
                Arc::clone(&wake),
            ));
        }
        tasks.extend(controller.spawn());
        let sampler = Sampler::new(
            store.clone(),
            Arc::clone(&runtime),
            config.controller.instance.clone(),
            config.stats.clone(),
        );
        tasks.extend(sampler.spawn());
        tasks.extend(
            Recorder::new(
                store.clone(),
                Arc::clone(&runtime),
                config.controller.instance.clone(),
            )
            .spawn(),
        );
        let state = ApiState {
            store: store.clone(),
            runtime,
            wake,
            token_sha256: http::token_digest(&token),
            health: controller.health(),
            images: controller.images(),
            controller: Arc::clone(&controller),
            stats: config.stats.clone(),
            instance: config.controller.instance.clone(),
            max_body: config.max_body,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
        let app = http::router(state);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("API server stopped: {e}");
            }
        }));
        tracing::info!(%addr, "wharf API listening");
        Ok(Self {
            addr,
            token,
            store,
            controller,
            tasks,
        })
    }

    /// Stops every task of this server.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _aborted = t.await;
        }
        // Let in-flight work notice the abort before the store closes.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_token_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = admin_token(dir.path()).expect("created");
        assert_eq!(first.len(), 64);
        let second = admin_token(dir.path()).expect("read back");
        assert_eq!(first, second, "a restart keeps the token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .expect("token file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
