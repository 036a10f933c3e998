//! `wharf serve`'s flags, and their conversion into a `ServeConfig`.
//!
//! The doc comments here are the `--help` text, written for a terminal, not for rustdoc.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Span;
use crate::defaults;
use crate::policy::{Policy, Quota};
use crate::reconcile::ControllerConfig;
use crate::runtime::docker::Deadlines;
use crate::server::{ServeConfig, TlsFiles};
use crate::spec::mode::Mode;
use crate::spec::quantity::ByteQuantity;
use crate::stats::StatsConfig;
use crate::store::{PortRange, Retention};

/// `wharf serve`'s flags; every default comes from `wharf::defaults`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// `solo`: apps are containers of one engine. `swarm`: apps are services of the swarm the
    /// engine manages (it must be a swarm manager). A data directory keeps the mode it was
    /// first started in.
    #[arg(long, value_enum, default_value_t = Mode::Solo)]
    pub mode: Mode,
    /// The database: sqlite://PATH (default: DATA/wharf.db) or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. Several wharf instances on one PostgreSQL
    /// database elect one leader, which reconciles; every instance serves the API.
    #[arg(
        long,
        env = "WHARF_DATABASE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<crate::store::Database>,
    /// This instance's id among the instances on one database (default: HOSTNAME:PORT).
    #[arg(long, env = "WHARF_SERVER_ID", value_name = "ID")]
    pub server_id: Option<String>,
    /// The URL the other instances and users reach this one at, as `wharf status` shows it
    /// (default: the listen address).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    /// The leader's lease on PostgreSQL: renewed every fifth of it; a leader that cannot renew
    /// stops Docker writes 3/10 of it before its end; another instance leads at most 1.2 times
    /// it after the leader's last renewal.
    #[arg(long, default_value_t = Span(defaults::LEASE_TTL))]
    pub lease_ttl: Span,
    /// Watched directory of spec files (recursive).
    #[arg(long, default_value = defaults::SPECS_DIR)]
    pub specs: PathBuf,
    /// Do not watch a directory.
    #[arg(long, conflicts_with = "specs")]
    pub no_specs: bool,
    #[command(flatten)]
    pub git: GitFlags,
    /// Post notable changes (app degraded, rolled back, failed or recovered, image updated,
    /// node down, spec file rejected) as JSON to this URL. Repeatable; `URL#events=E1,E2` posts
    /// only those events (app.degraded, app.rolledBack, app.failed, app.recovered,
    /// image.updated, node.down, source.rejected).
    #[arg(long = "notify-webhook", value_name = "URL")]
    pub notify_webhooks: Vec<crate::notify::Webhook>,
    /// Sign notifications with HMAC-SHA256 of this file's secret (X-Wharf-Signature-256).
    #[arg(long, value_name = "FILE")]
    pub notify_secret_file: Option<PathBuf>,
    #[arg(long, default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Separates this wharf's containers from another wharf's on the same engine.
    #[arg(long, default_value = defaults::INSTANCE)]
    pub instance: String,
    /// Full reconcile pass at least this often.
    #[arg(long, default_value_t = Span(defaults::RESYNC))]
    pub resync: Span,
    /// Container operations in flight at once.
    #[arg(long, default_value_t = defaults::MAX_OPS)]
    pub max_ops: usize,
    /// Apps of one image replaced at once when a new version of it rolls out, unless its Image
    /// sets spec.rollout.maxUnavailable.
    #[arg(long, default_value_t = defaults::ROLLOUT_WIDTH, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rollout_width: u32,
    /// Passes woken by engine events or finished work start at least this far apart; a write,
    /// or a container that exited or went away, is looked at at once (at most every quarter of
    /// this).
    #[arg(long, default_value_t = Span(defaults::MIN_PASS_INTERVAL))]
    pub min_pass_interval: Span,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = defaults::MAX_BODY)]
    pub max_body: usize,
    /// Deadline of each Docker call (stop and remove add the grace period; a pull fails
    /// when no progress arrives for this long).
    #[arg(long, default_value_t = Span(defaults::DOCKER_TIMEOUT))]
    pub docker_timeout: Span,
    /// Deadline of a whole image pull.
    #[arg(long, default_value_t = Span(defaults::PULL_TIMEOUT))]
    pub pull_timeout: Span,
    /// A registry (HOST:PORT) to reach over plain HTTP for digest checks; loopback ones
    /// always are. Repeatable. (Pulls follow the engine's own insecure-registries setting.)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Host ports that port areas (spec.portArea) are allocated from.
    #[arg(long, default_value_t = PortRange::default())]
    pub port_area_range: PortRange,
    /// Time between two stats samples of every running app.
    #[arg(long, default_value_t = Span(defaults::STATS_INTERVAL))]
    pub stats_interval: Span,
    /// How long raw stats samples are kept.
    #[arg(long, default_value_t = Span(defaults::STATS_RAW_RETENTION))]
    pub stats_raw_retention: Span,
    /// How long 1-minute stats rollups are kept.
    #[arg(long, default_value_t = Span(defaults::STATS_MINUTE_RETENTION))]
    pub stats_minute_retention: Span,
    /// How long 1-hour stats rollups are kept.
    #[arg(long, default_value_t = Span(defaults::STATS_HOUR_RETENTION))]
    pub stats_hour_retention: Span,
    #[command(flatten)]
    pub security: SecurityFlags,
}

/// `wharf serve --git URL …`: a remote repository's branch as the source of spec files, in
/// place of the watched directory.
#[derive(clap::Args)]
pub struct GitFlags {
    /// Follow this repository (https://, ssh://, git://, file:// or a path) instead of watching
    /// a directory: wharf clones it into the data directory and applies each new commit of
    /// the branch whole.
    #[arg(long = "git", value_name = "URL", conflicts_with_all = ["specs", "no_specs"])]
    pub url: Option<String>,
    /// The branch to follow.
    #[arg(long = "git-branch", value_name = "BRANCH", default_value = defaults::GIT_BRANCH, requires = "url")]
    pub branch: String,
    /// The directory of spec files inside the repository (default: its root).
    #[arg(long = "git-path", value_name = "DIR", requires = "url")]
    pub path: Option<PathBuf>,
    /// How often to fetch; a signed webhook (POST /api/v1/hooks/git) fetches at once.
    #[arg(long = "git-poll", default_value_t = Span(defaults::GIT_POLL), requires = "url")]
    pub poll: Span,
    /// A private key for an SSH URL (the host must be in known_hosts).
    #[arg(long = "git-ssh-key", value_name = "FILE", requires = "url")]
    pub ssh_key: Option<PathBuf>,
    /// A file holding an HTTPS access token (else WHARF_GIT_TOKEN); re-read at every fetch.
    #[arg(long = "git-token-file", value_name = "FILE", requires = "url")]
    pub token_file: Option<PathBuf>,
    /// A file holding the webhook secret (GitHub and Gitea sign with it; GitLab sends it).
    #[arg(
        long = "git-webhook-secret-file",
        value_name = "FILE",
        requires = "url"
    )]
    pub webhook_secret_file: Option<PathBuf>,
}

impl GitFlags {
    fn config(self) -> Option<crate::source::git::GitConfig> {
        Some(crate::source::git::GitConfig {
            url: self.url?,
            branch: self.branch,
            path: self.path,
            poll: self.poll.0.max(Duration::from_secs(1)),
            ssh_key: self.ssh_key,
            token_file: self.token_file,
            token_env: std::env::var("WHARF_GIT_TOKEN").ok(),
            webhook_secret_file: self.webhook_secret_file,
        })
    }
}

impl ServeArgs {
    /// The server's configuration, with its data directory.
    pub fn into_config(self, data_dir: PathBuf) -> Result<ServeConfig, String> {
        let security = self.security;
        let git = self.git.config();
        Ok(ServeConfig {
            data_dir,
            database: self.database,
            server_id: self.server_id,
            advertise: self.advertise,
            lease_ttl: self.lease_ttl.0.max(Duration::from_secs(1)),
            specs_dir: (!self.no_specs && git.is_none()).then_some(self.specs),
            git,
            notify: self.notify_webhooks,
            notify_secret_file: self.notify_secret_file,
            listen: self.listen,
            controller: ControllerConfig {
                instance: self.instance,
                resync: self.resync.0,
                max_ops: self.max_ops,
                min_pass_interval: self.min_pass_interval.0,
                insecure_registries: self.insecure_registries,
                require_approved_images: security.require_approved_images,
                rollout_width: self.rollout_width,
                ..ControllerConfig::default()
            },
            max_body: self.max_body,
            port_areas: self.port_area_range,
            stats: StatsConfig {
                interval: self.stats_interval.0.max(Duration::from_secs(1)),
                retention: Retention {
                    raw_ms: Retention::millis(self.stats_raw_retention.0),
                    minute_ms: Retention::millis(self.stats_minute_retention.0),
                    hour_ms: Retention::millis(self.stats_hour_retention.0),
                },
                ..StatsConfig::default()
            },
            deadlines: Deadlines {
                call: self.docker_timeout.0,
                pull: self.pull_timeout.0,
                ..Deadlines::default()
            },
            tls: security
                .tls_cert
                .clone()
                .zip(security.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
            policy: security.policy()?,
            host_memory_percent: security.host_memory_admission,
            audit_retention: security.audit_retention.0,
            mode: self.mode,
        })
    }
}

/// TLS, image approval and the server's policy (`wharf policy set` overrides it per namespace).
#[derive(clap::Args)]
pub struct SecurityFlags {
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Apps may only use images declared by an Image object; editors request images
    /// (`wharf images request REF`), admins approve them.
    #[arg(long)]
    pub require_approved_images: bool,
    /// Allow privileged containers (spec.privileged).
    #[arg(long)]
    pub allow_privileged: bool,
    /// Allow apps on the host's network (spec.hostNetwork).
    #[arg(long)]
    pub allow_host_network: bool,
    /// Allow apps in the host's PID namespace (spec.hostPID).
    #[arg(long)]
    pub allow_host_pid: bool,
    /// Allow apps in the host's IPC namespace (spec.hostIPC).
    #[arg(long)]
    pub allow_host_ipc: bool,
    /// A host directory bind mounts may come from (repeatable; none by default).
    #[arg(long = "allowed-host-path", value_name = "DIR")]
    pub allowed_host_paths: Vec<String>,
    /// A host device apps may use (repeatable; none by default).
    #[arg(long = "allowed-device", value_name = "PATH")]
    pub allowed_devices: Vec<String>,
    /// A capability apps may add (repeatable; default: Docker's default set).
    #[arg(long = "allowed-capability", value_name = "CAP")]
    pub allowed_capabilities: Vec<String>,
    /// Largest memory limit of one app, e.g. 4Gi.
    #[arg(long, value_parser = ByteQuantity::parse)]
    pub max_app_memory: Option<ByteQuantity>,
    /// Most CPUs of one app.
    #[arg(long)]
    pub max_app_cpus: Option<f64>,
    /// Most processes of one app.
    #[arg(long)]
    pub max_app_pids: Option<i64>,
    /// Every app must set memory, cpus and pids limits.
    #[arg(long)]
    pub require_limits: bool,
    /// Memory the apps of one namespace may declare together.
    #[arg(long, value_parser = ByteQuantity::parse)]
    pub namespace_quota_memory: Option<ByteQuantity>,
    /// CPUs the apps of one namespace may declare together.
    #[arg(long)]
    pub namespace_quota_cpus: Option<f64>,
    /// Processes the apps of one namespace may declare together.
    #[arg(long)]
    pub namespace_quota_pids: Option<i64>,
    /// Apps one namespace may hold.
    #[arg(long)]
    pub namespace_quota_apps: Option<i64>,
    /// Apps may together declare at most this percent of the host's memory (0: no check).
    #[arg(long, default_value_t = defaults::HOST_MEMORY_PERCENT, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub host_memory_admission: u8,
    /// How long audit log entries are kept.
    #[arg(long, default_value_t = Span(defaults::AUDIT_RETENTION))]
    pub audit_retention: Span,
}

impl SecurityFlags {
    pub fn policy(&self) -> Result<Policy, String> {
        let flag = |on: bool| on.then_some(true);
        let list = |l: &Vec<String>| (!l.is_empty()).then(|| l.clone());
        let quota = Quota {
            memory: self.namespace_quota_memory.clone(),
            cpus: self.namespace_quota_cpus,
            pids: self.namespace_quota_pids,
            apps: self.namespace_quota_apps,
        };
        let policy = Policy {
            allow_privileged: flag(self.allow_privileged),
            allow_host_network: flag(self.allow_host_network),
            allow_host_pid: flag(self.allow_host_pid),
            allow_host_ipc: flag(self.allow_host_ipc),
            allowed_host_paths: list(&self.allowed_host_paths),
            allowed_devices: list(&self.allowed_devices),
            allowed_capabilities: list(&self.allowed_capabilities),
            max_app_memory: self.max_app_memory.clone(),
            max_app_cpus: self.max_app_cpus,
            max_app_pids: self.max_app_pids,
            require_limits: flag(self.require_limits),
            quota: (quota != Quota::default()).then_some(quota),
        };
        policy
            .validate()
            .map_err(|e| format!("policy flags: {e}"))?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Args, Command};
    use super::*;
    use clap::Parser;

    #[test]
    fn serve_without_flags_is_the_servers_default_configuration() {
        let Ok(Args {
            command: Command::Serve(serve),
            data,
            ..
        }) = Args::try_parse_from(["wharf", "serve"])
        else {
            panic!("wharf serve parses");
        };
        let config = serve
            .into_config(data.clone())
            .expect("default policy is valid");
        let expected = ServeConfig::new(data);
        assert_eq!(config.data_dir, PathBuf::from(defaults::DATA_DIR));
        assert_eq!(config.specs_dir, expected.specs_dir);
        assert_eq!(config.listen, expected.listen);
        assert_eq!(config.max_body, expected.max_body);
        assert_eq!(config.port_areas, expected.port_areas);
        assert_eq!(config.host_memory_percent, expected.host_memory_percent);
        assert_eq!(config.audit_retention, expected.audit_retention);
        let (c, e) = (&config.controller, &expected.controller);
        assert_eq!(
            (&c.instance, c.resync, c.max_ops, c.min_pass_interval),
            (&e.instance, e.resync, e.max_ops, e.min_pass_interval)
        );
        assert_eq!(config.stats.interval, expected.stats.interval);
        assert_eq!(config.stats.retention, expected.stats.retention);
        assert_eq!(config.deadlines.call, expected.deadlines.call);
        assert_eq!(config.deadlines.pull, expected.deadlines.pull);
    }
}
