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
use tokio_util::sync::CancellationToken;

use axum_server::tls_rustls::RustlsConfig;
use procfs::Current;

use crate::agent::hub::AgentHub;
use crate::agent::uptime::SwarmUptime;
use crate::auth::token_digest;
use crate::cluster::fence::Fenced;
use crate::cluster::{ClusterConfig, Leadership};
use crate::defaults;
use crate::http::{self, ApiState};
use crate::notify::Notifier;
use crate::policy::Policy;
use crate::reconcile::{Controller, ControllerConfig};
use crate::runtime::Runtime;
use crate::runtime::docker::{Deadlines, DockerRuntime};
use crate::runtime::swarm::Swarm;
use crate::source::git::GitSource;
use crate::spec::mode::Mode;
use crate::stats::uptime::Recorder;
use crate::stats::{Sampler, StatsConfig};
use crate::store::{Admission, Database, PortRange, Store};

pub const TOKEN_FILE: &str = "admin.token";

/// How long the API may take to answer the requests it has when it stops.
const API_DRAIN: Duration = Duration::from_secs(10);
pub const DATABASE_FILE: &str = "wharf.db";

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// The database (`--database`); `None`: SQLite in the data directory.
    pub database: Option<Database>,
    /// This instance's id among the instances on one database (`--server-id`); `None`:
    /// `HOSTNAME:PORT`.
    pub server_id: Option<String>,
    /// Where the other instances and users reach this one (`--advertise`); `None`: the
    /// listen address.
    pub advertise: Option<String>,
    /// The leader's lease (`--lease-ttl`).
    pub lease_ttl: Duration,
    /// `None` disables the watched directory.
    pub specs_dir: Option<PathBuf>,
    pub listen: SocketAddr,
    pub controller: ControllerConfig,
    pub max_body: usize,
    pub deadlines: Deadlines,
    /// Host ports that port areas are allocated from.
    pub port_areas: PortRange,
    pub stats: StatsConfig,
    /// Serve HTTPS with this certificate and key (PEM).
    pub tls: Option<TlsFiles>,
    /// The server's policy (namespaces may override it).
    pub policy: Policy,
    /// Apps may together declare at most this percent of the host's memory (0: no check).
    pub host_memory_percent: u8,
    /// How long audit entries are kept.
    pub audit_retention: Duration,
    /// Solo (containers of one engine) or swarm (services of the swarm the engine manages).
    pub mode: Mode,
    /// Follow a remote git repository's branch as the source of spec files.
    pub git: Option<crate::source::git::GitConfig>,
    /// Where notable changes are posted (`--notify-webhook`).
    pub notify: Vec<crate::notify::Webhook>,
    /// The HMAC key of their signature (`--notify-secret-file`).
    pub notify_secret_file: Option<PathBuf>,
}

/// A PEM certificate chain and its private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServeConfig {
    /// The database this configuration names: `--database`, else `DATA/wharf.db`.
    pub fn database(&self) -> Database {
        self.database
            .clone()
            .unwrap_or_else(|| Database::Sqlite(self.data_dir.join(DATABASE_FILE)))
    }

    /// This instance's place in an election: its id, address and lease.
    pub fn cluster(&self) -> ClusterConfig {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let id = self.server_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "wharf".into());
            format!("{host}:{}", self.listen.port())
        });
        ClusterConfig {
            id,
            address: self
                .advertise
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}", self.listen)),
            ttl: self.lease_ttl,
        }
    }

    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database: None,
            server_id: None,
            advertise: None,
            lease_ttl: defaults::LEASE_TTL,
            specs_dir: Some(PathBuf::from(defaults::SPECS_DIR)),
            listen: SocketAddr::from(([127, 0, 0, 1], 7999)),
            controller: ControllerConfig::default(),
            max_body: defaults::MAX_BODY,
            deadlines: Deadlines::default(),
            port_areas: PortRange::default(),
            stats: StatsConfig::default(),
            tls: None,
            policy: Policy::default(),
            host_memory_percent: defaults::HOST_MEMORY_PERCENT,
            audit_retention: defaults::AUDIT_RETENTION,
            mode: Mode::Solo,
            git: None,
            notify: Vec::new(),
            notify_secret_file: None,
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
    #[error("TLS certificate {cert} / key {key}: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        source: std::io::Error,
    },
    /// `--mode swarm` against an engine that is not a swarm manager.
    #[error("{0}")]
    NotManager(String),
    /// `--git …` cannot be followed as given.
    #[error("{0}")]
    Git(String),
    #[error("--notify-secret-file {0}")]
    Notify(String),
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

/// The engine host's memory, for the host-level admission check: the engine's own figure, else
/// this host's (the engine is usually local), else 0 (no check) with a warning.
async fn host_memory(runtime: &dyn Runtime) -> i64 {
    match runtime.host_memory().await {
        Ok(m) => return m,
        Err(e @ crate::runtime::RuntimeError::Unavailable(_)) => tracing::warn!(
            "{e}. Meanwhile wharf serves its API (/readyz answers 503), keeps every accepted write, and reconciles as soon as the engine answers; admission checks use this host's memory"
        ),
        Err(e) => tracing::warn!("the engine's memory is unknown ({e}); using this host's"),
    }
    match procfs::Meminfo::current() {
        Ok(m) => i64::try_from(m.mem_total).unwrap_or(i64::MAX),
        Err(e) => {
            tracing::warn!("host memory unknown ({e}): the host memory admission check is off");
            0
        }
    }
}

/// Swarm mode needs the engine to be a swarm manager: says what it found otherwise.
async fn check_manager(swarm: &dyn Swarm) -> Result<(), ServeError> {
    let found = swarm.membership().await.map_err(|e| {
        ServeError::NotManager(format!(
            "--mode swarm: cannot ask the Docker Engine whether it is a swarm manager: {e}"
        ))
    })?;
    if found.is_manager() {
        tracing::info!(
            node = %found.node_id,
            nodes = found.nodes,
            managers = found.managers,
            "swarm mode: the engine is a manager of the swarm"
        );
        return Ok(());
    }
    let what = match found.local_node_state.as_str() {
        "inactive" | "" => "is not part of a swarm".to_string(),
        "active" => format!("is a swarm worker (node {}), not a manager", found.node_id),
        other => format!(
            "is in swarm state {other:?}{}",
            found
                .error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    };
    Err(ServeError::NotManager(format!(
        "--mode swarm needs a swarm manager, and the Docker Engine wharf talks to (DOCKER_HOST or the local socket) {what}. Make it one (`docker swarm init`, or `docker node promote`), point DOCKER_HOST at a manager, or run wharf with --mode solo"
    )))
}

/// Drops audit entries older than `retention`, at start and hourly.
fn spawn_audit_pruning(store: Store, retention: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let Ok(age) = chrono::Duration::from_std(retention) else {
                return;
            };
            let before =
                (chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            match store.prune_audit(&before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "pruned the audit log"),
                Err(e) => tracing::warn!("pruning the audit log: {e}"),
            }
        }
    })
}

/// Bearer tokens cross the network in clear text without TLS: say so where nobody can miss it.
fn warn_plain_http(addr: SocketAddr) {
    let line = "!".repeat(78);
    eprintln!(
        "{line}\n!! WARNING: wharf listens on {addr} without TLS.\n!! Bearer tokens and every spec cross the network in clear text.\n!! Serve HTTPS with --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1.\n{line}"
    );
    tracing::warn!(%addr, "listening on a non-loopback address without TLS; pass --tls-cert and --tls-key");
}

/// How long a shutdown lets in-flight container operations finish (each engine call also has
/// its own deadline).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// A running wharf.
pub struct Server {
    pub addr: SocketAddr,
    pub token: String,
    pub store: Store,
    pub controller: Arc<Controller>,
    /// Swarm mode: the node agents connected to this server.
    pub agents: Option<Arc<AgentHub>>,
    /// Stops the API from accepting requests (it answers those it has).
    api_stop: CancellationToken,
    api: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// PostgreSQL: the election loop, and what stops it (giving the lease up).
    election: Option<(CancellationToken, JoinHandle<()>)>,
    /// This instance's place among the instances on its database.
    pub leadership: Leadership,
}

impl Server {
    /// Starts against the local Docker Engine (`DOCKER_HOST` or the default socket).
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        let runtime = DockerRuntime::connect_local(config.deadlines);
        Self::start_on(config, Arc::new(runtime)).await
    }

    /// Starts against `engine`, in the configuration's mode.
    pub async fn start_on(
        config: ServeConfig,
        engine: Arc<DockerRuntime>,
    ) -> Result<Self, ServeError> {
        let swarm: Option<Arc<dyn Swarm>> = match config.mode {
            Mode::Solo => None,
            Mode::Swarm => Some(Arc::clone(&engine) as Arc<dyn Swarm>),
        };
        Self::start_with_backend(config, engine, swarm).await
    }

    /// Starts in solo mode against any runtime.
    pub async fn start_with(
        config: ServeConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Self, ServeError> {
        Self::start_with_backend(config, runtime, None).await
    }

    /// Starts against any runtime, and in swarm mode its swarm (the same engine).
    pub async fn start_with_backend(
        mut config: ServeConfig,
        runtime: Arc<dyn Runtime>,
        swarm: Option<Arc<dyn Swarm>>,
    ) -> Result<Self, ServeError> {
        config.mode = if swarm.is_some() {
            Mode::Swarm
        } else {
            Mode::Solo
        };
        if let Some(swarm) = &swarm {
            check_manager(swarm.as_ref()).await?;
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let token = admin_token(&config.data_dir)?;
        let host_memory = host_memory(runtime.as_ref()).await;
        let database = config.database();
        tracing::info!(%database, "opening the store");
        let store = Store::connect(&database)
            .await?
            .with_port_areas(config.port_areas)
            .with_admission(Admission {
                policy: config.policy.clone(),
                host_memory,
                host_memory_percent: config.host_memory_percent,
                mode: config.mode,
            });
        store.claim_mode(config.mode).await?;
        // Alone on SQLite this instance always leads; on PostgreSQL it leads while it holds
        // the lease, and every Docker write it makes is fenced by it.
        let cluster = config.cluster();
        let leadership = if store.backend().is_postgres() {
            tracing::info!(id = %cluster.id, address = %cluster.address, "several instances may share this database: electing a leader");
            Leadership::elected(cluster)
        } else {
            Leadership::single(cluster)
        };
        let runtime: Arc<dyn Runtime> = Arc::new(Fenced::new(runtime, leadership.clone()));
        let swarm: Option<Arc<dyn Swarm>> =
            swarm.map(|s| Arc::new(Fenced::new(s, leadership.clone())) as Arc<dyn Swarm>);
        config.controller.leadership = leadership.clone();
        let wake = Arc::new(Notify::new());
        let notify_secret = match &config.notify_secret_file {
            Some(file) => Some(crate::auth::read_secret_file(file).map_err(ServeError::Notify)?),
            None => None,
        };
        let (notifier, notify_tasks) = Notifier::start(
            config.notify.clone(),
            notify_secret,
            config.controller.instance.clone(),
        );
        config.controller.notifier = notifier.clone();
        let controller = Controller::with_backend(
            store.clone(),
            Arc::clone(&runtime),
            swarm,
            config.controller.clone(),
            Arc::clone(&wake),
        );
        let mut tasks = notify_tasks;
        let election = match &database {
            Database::Postgres(url) => {
                tasks.push(crate::cluster::notify::spawn(
                    url.clone(),
                    Arc::clone(&wake),
                ));
                // The lease on connections of its own: a busy API never delays a renewal.
                let lease_store = Store::connect(&database).await?;
                let stop = CancellationToken::new();
                Some((stop.clone(), leadership.spawn(lease_store, stop)))
            }
            Database::Sqlite(_) => None,
        };
        if let Some(dir) = &config.specs_dir {
            // One scan before the loop starts, so a restart never plans on a stale store.
            if leadership.is_leader()
                && let Err(e) = crate::source::sync_once(dir, &store, &notifier).await
            {
                tracing::error!("first scan of {}: {e}", dir.display());
            }
            // Only the leader follows its watched directory: instances whose directories
            // differ never undo each other's files.
            let (dir, store, wake, notifier) = (
                dir.clone(),
                store.clone(),
                Arc::clone(&wake),
                notifier.clone(),
            );
            tasks.push(
                leadership.spawn_while_leading("the watched directory", move || {
                    vec![crate::source::spawn(
                        dir.clone(),
                        store.clone(),
                        Arc::clone(&wake),
                        notifier.clone(),
                    )]
                }),
            );
        }
        let git_hook = match config.git.clone() {
            Some(git) => {
                let (source, hook) = GitSource::new(
                    git,
                    &config.data_dir,
                    store.clone(),
                    Arc::clone(&wake),
                    notifier.clone(),
                )
                .map_err(ServeError::Git)?;
                tasks.push(source.spawn());
                Some(hook)
            }
            None => None,
        };
        tasks.extend(controller.spawn());
        // The leader alone prunes, samples stats and records uptime.
        let (pruned, retention) = (store.clone(), config.audit_retention);
        tasks.push(leadership.spawn_while_leading("audit pruning", move || {
            vec![spawn_audit_pruning(pruned.clone(), retention)]
        }));
        let sampler = Sampler::new(
            store.clone(),
            Arc::clone(&runtime),
            config.controller.instance.clone(),
            config.stats.clone(),
        );
        tasks.push(leadership.spawn_while_leading("stats sampling", move || sampler.spawn()));
        // Solo mode records uptime from its engine's events; swarm mode from the node agents.
        let agents = match config.mode {
            Mode::Solo => {
                let recorder = Recorder::new(
                    store.clone(),
                    Arc::clone(&runtime),
                    config.controller.instance.clone(),
                );
                tasks.push(
                    leadership.spawn_while_leading("uptime recording", move || recorder.spawn()),
                );
                None
            }
            Mode::Swarm => {
                let hub = AgentHub::new(
                    store.clone(),
                    config.controller.instance.clone(),
                    config.stats.interval,
                    controller.observed_waker(),
                );
                tasks.push(hub.spawn());
                tasks.push(SwarmUptime::spawn(store.clone(), Arc::clone(&hub)));
                Some(hub)
            }
        };
        let api_stop = CancellationToken::new();
        let state = ApiState {
            store: store.clone(),
            runtime,
            wake,
            admin_sha256: token_digest(&token),
            health: controller.health(),
            images: controller.images(),
            controller: Arc::clone(&controller),
            stats: config.stats.clone(),
            instance: config.controller.instance.clone(),
            max_body: config.max_body,
            agents: agents.clone(),
            git: git_hook,
            stopping: api_stop.clone(),
            leadership: leadership.clone(),
        };
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Listen {
                addr: config.listen,
                source,
            })?;
        let listen_err = |source| ServeError::Listen {
            addr: config.listen,
            source,
        };
        listener.set_nonblocking(true).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let app = http::router(state).into_make_service();
        let api = match &config.tls {
            Some(files) => {
                let tls = RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|source| ServeError::Tls {
                        cert: files.cert.clone(),
                        key: files.key.clone(),
                        source,
                    })?;
                let handle = axum_server::Handle::new();
                let server = axum_server::from_tcp_rustls(listener, tls)
                    .map_err(listen_err)?
                    .handle(handle.clone());
                let stop = api_stop.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    handle.graceful_shutdown(Some(API_DRAIN));
                });
                tokio::spawn(async move {
                    if let Err(e) = server.serve(app).await {
                        tracing::error!("API server stopped: {e}");
                    }
                })
            }
            None => {
                if !addr.ip().is_loopback() {
                    warn_plain_http(addr);
                }
                let listener = tokio::net::TcpListener::from_std(listener).map_err(listen_err)?;
                let stop = api_stop.clone().cancelled_owned();
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                    {
                        tracing::error!("API server stopped: {e}");
                    }
                })
            }
        };
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(%addr, %scheme, "wharf API listening");
        Ok(Self {
            addr,
            token,
            store,
            controller,
            agents,
            api_stop,
            api: Some(api),
            tasks,
            election,
            leadership,
        })
    }

    /// Stops gracefully: the API stops accepting requests and answers those it has; the loop
    /// starts nothing new and lets the container operations in flight finish (within
    /// `SHUTDOWN_GRACE`), then stores the statuses they left; then the watcher, sampler and
    /// recorder stop. Logs what it waited for.
    pub async fn shutdown(mut self) {
        self.api_stop.cancel();
        if let Some(agents) = &self.agents {
            agents.close_all();
        }
        if let Some(api) = self.api.take()
            && tokio::time::timeout(API_DRAIN * 2, api).await.is_err()
        {
            tracing::warn!("the API did not stop within {}s", (API_DRAIN * 2).as_secs());
        }
        let left = self.controller.stop(SHUTDOWN_GRACE).await;
        // The loop issues nothing more: give the lease up, so another instance leads at once.
        if let Some((stop, election)) = self.election.take() {
            stop.cancel();
            let _ended = election.await;
        }
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            // Aborted tasks end with a cancellation error; nothing to report.
            let _aborted = t.await;
        }
        if left.is_empty() {
            tracing::info!("stopped: every accepted request answered, every operation finished");
        } else {
            tracing::warn!(
                apps = left.len(),
                "stopped with work unfinished; the next start picks it up"
            );
        }
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
