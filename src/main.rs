//! The `wharf` binary: `wharf serve` runs the reconciler; every other command is a client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wharf::cli::{self, Client, Exit, Output};
use wharf::policy::{Policy, Quota};
use wharf::reconcile::ControllerConfig;
use wharf::runtime::docker::Deadlines;
use wharf::server::{ServeConfig, Server, TlsFiles};
use wharf::spec::quantity::ByteQuantity;
use wharf::stats::StatsConfig;
use wharf::store::Retention;

#[derive(Parser)]
#[command(name = "wharf", version, about = "A declarative reconciler for Docker")]
struct Args {
    /// wharf server URL (client commands).
    #[arg(
        long,
        global = true,
        env = "WHARF_SERVER",
        default_value = "http://127.0.0.1:7999"
    )]
    server: String,
    /// Bearer token (client commands); default: DATA/admin.token.
    #[arg(long, global = true, env = "WHARF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust for an https server URL, e.g. a self-signed one.
    #[arg(long, global = true, env = "WHARF_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Data directory: database and admin token.
    #[arg(long, global = true, env = "WHARF_DATA", default_value = ".wharf")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reconciler and the API.
    Serve {
        /// Watched directory of spec files (recursive).
        #[arg(long, default_value = "specs")]
        specs: PathBuf,
        /// Do not watch a directory.
        #[arg(long, conflicts_with = "specs")]
        no_specs: bool,
        #[arg(long, default_value = "127.0.0.1:7999")]
        listen: SocketAddr,
        /// Separates this wharf's containers from another wharf's on the same engine.
        #[arg(long, default_value = "default")]
        instance: String,
        /// Full reconcile pass at least this often.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        resync: Duration,
        /// Container operations in flight at once.
        #[arg(long, default_value_t = 4)]
        max_ops: usize,
        /// While work completes in quick succession, passes start at least this far apart.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        min_pass_interval: Duration,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = wharf::http::DEFAULT_MAX_BODY)]
        max_body: usize,
        /// Deadline of each Docker call (stop and remove add the grace period; a pull fails
        /// when no progress arrives for this long).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        docker_timeout: Duration,
        /// Deadline of a whole image pull.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        pull_timeout: Duration,
        /// A registry (HOST:PORT) to reach over plain HTTP for digest checks; loopback ones
        /// always are. Repeatable. (Pulls follow the engine's own insecure-registries setting.)
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
        /// Host ports that port areas (spec.portArea) are allocated from.
        #[arg(long, default_value = "20000-32767")]
        port_area_range: wharf::store::PortRange,
        /// Time between two stats samples of every running app.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        stats_interval: Duration,
        /// How long raw stats samples are kept.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        stats_raw_retention: Duration,
        /// How long 1-minute stats rollups are kept.
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        stats_minute_retention: Duration,
        /// How long 1-hour stats rollups are kept.
        #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
        stats_hour_retention: Duration,
        #[command(flatten)]
        security: Box<SecurityFlags>,
    },
    /// Create or update objects from files, directories or stdin (-).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Show the plan and diff; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait until every app is ready at its new generation.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// List apps or images, or show one.
    Get {
        /// Resource type: apps or images.
        #[arg(value_parser = ["apps", "app", "images", "image"])]
        resource: String,
        name: Option<String>,
        #[arg(short, long)]
        namespace: Option<String>,
        /// Label selector, e.g. team=astro,tier in (web).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Only apps of this owner.
        #[arg(long)]
        owner: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show an app with its status and events.
    Describe {
        #[arg(value_parser = ["app", "apps"])]
        resource: String,
        name: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// Delete an app by name, or the objects declared in files.
    Delete {
        #[arg(value_parser = ["app", "apps"], required_unless_present = "files")]
        resource: Option<String>,
        name: Option<String>,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
    },
    /// Show what applying files would change (exit 1 when anything would).
    Diff {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Check files offline (for CI lint); non-zero exit on any error.
    Validate {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Pull an Image now, or check every declared image for updates.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Restart an app's container (the spec is unchanged; recorded as an event).
    Restart {
        #[command(flatten)]
        app: AppRef,
    },
    /// Send a signal to a running app's container (default SIGKILL). The app's restart policy
    /// decides what follows; `wharf stop` stops it for good.
    Kill {
        #[command(flatten)]
        app: AppRef,
        #[arg(short, long, default_value = "SIGKILL")]
        signal: String,
    },
    /// Remove the app's container and create it afresh from the image (its writable layer is
    /// discarded; named volumes are kept unless --volumes).
    HardReset {
        #[command(flatten)]
        app: AppRef,
        /// Also discard the app's named volumes.
        #[arg(long)]
        volumes: bool,
    },
    /// Declare an app running (PATCH spec.state; API-managed apps only).
    Start {
        #[command(flatten)]
        app: AppRef,
    },
    /// Declare an app stopped (PATCH spec.state; API-managed apps only).
    Stop {
        #[command(flatten)]
        app: AppRef,
    },
    /// Declare an app paused (PATCH spec.state; API-managed apps only).
    Pause {
        #[command(flatten)]
        app: AppRef,
    },
    /// Declare a paused app running again (PATCH spec.state; API-managed apps only).
    Unpause {
        #[command(flatten)]
        app: AppRef,
    },
    /// Print an app's container output.
    Logs {
        #[command(flatten)]
        app: AppRef,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<String>,
        /// Only lines since this time (RFC 3339 or unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Keep printing new output.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print the engine's inspect data of an app's container.
    Inspect {
        #[command(flatten)]
        app: AppRef,
        #[arg(short, long, value_enum, default_value = "json")]
        output: Output,
    },
    /// List the owners of a namespace's apps.
    Users {
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Run git inside an app's container: pull, init, head, branches, branch, checkout.
    Git {
        #[command(flatten)]
        app: AppRef,
        #[arg(value_parser = ["pull", "init", "head", "branches", "branch", "checkout"])]
        op: String,
        /// The repository's directory in the container (absolute).
        #[arg(long)]
        path: String,
        /// The branch to check out.
        #[arg(long, required_if_eq("op", "checkout"))]
        branch: Option<String>,
    },
    /// Create, list or revoke API tokens (admin).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show the token in use and its grants.
    Whoami {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show or change a namespace's policy override.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show the audit log: every write and action, who did it and how it ended (admin).
    Audit {
        /// Only this token's entries.
        #[arg(long = "by")]
        token_id: Option<String>,
        #[arg(short, long)]
        namespace: Option<String>,
        /// Only entries since this time (RFC 3339 or unix seconds).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Declare an app IMAGE--USER running IMAGE for USER (through the API).
    Run {
        image: String,
        /// The user the app belongs to.
        #[arg(long)]
        owner: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// App name instead of IMAGE--USER.
        #[arg(long)]
        name: Option<String>,
        /// Environment variable NAME=VALUE (repeatable).
        #[arg(short, long)]
        env: Vec<String>,
        /// Port [HOST:]CONTAINER[/PROTO] (repeatable).
        #[arg(short, long)]
        port: Vec<String>,
        #[arg(long)]
        memory: Option<String>,
        #[arg(long)]
        cpus: Option<f64>,
        #[arg(long)]
        dry_run: bool,
        /// Wait until the app is ready.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Command to run instead of the image's (after --).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// An app's stats history: CPU and memory sparklines and the newest samples.
    Stats {
        #[command(flatten)]
        app: AppRef,
        /// How far back: a duration (1h, 30m, 7d), an RFC 3339 time or unix seconds.
        #[arg(long, default_value = "1h")]
        since: String,
        /// raw, 1m or 1h (default: picked from the time range).
        #[arg(long)]
        step: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// An app's availability over the last hour, day, week or month, with a bar.
    Uptime {
        #[command(flatten)]
        app: AppRef,
        #[arg(long, default_value = "day", value_parser = ["hour", "day", "week", "month"])]
        duration: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Print the JSON Schema of one kind (app, image), or write every schema to a directory.
    Schema {
        #[arg(value_enum, default_value = "app")]
        kind: cli::SchemaKind,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// TLS, image approval and the server's policy (`wharf policy set` overrides it per namespace).
#[derive(clap::Args)]
struct SecurityFlags {
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Apps may only use images declared by an Image object; editors request images
    /// (`wharf images request REF`), admins approve them.
    #[arg(long)]
    require_approved_images: bool,
    /// Allow privileged containers (spec.privileged).
    #[arg(long)]
    allow_privileged: bool,
    /// Allow apps on the host's network (spec.hostNetwork).
    #[arg(long)]
    allow_host_network: bool,
    /// Allow apps in the host's PID namespace (spec.hostPID).
    #[arg(long)]
    allow_host_pid: bool,
    /// Allow apps in the host's IPC namespace (spec.hostIPC).
    #[arg(long)]
    allow_host_ipc: bool,
    /// A host directory bind mounts may come from (repeatable; none by default).
    #[arg(long = "allowed-host-path", value_name = "DIR")]
    allowed_host_paths: Vec<String>,
    /// A host device apps may use (repeatable; none by default).
    #[arg(long = "allowed-device", value_name = "PATH")]
    allowed_devices: Vec<String>,
    /// A capability apps may add (repeatable; default: Docker's default set).
    #[arg(long = "allowed-capability", value_name = "CAP")]
    allowed_capabilities: Vec<String>,
    /// Largest memory limit of one app, e.g. 4Gi.
    #[arg(long, value_parser = ByteQuantity::parse)]
    max_app_memory: Option<ByteQuantity>,
    /// Most CPUs of one app.
    #[arg(long)]
    max_app_cpus: Option<f64>,
    /// Most processes of one app.
    #[arg(long)]
    max_app_pids: Option<i64>,
    /// Every app must set memory, cpus and pids limits.
    #[arg(long)]
    require_limits: bool,
    /// Memory the apps of one namespace may declare together.
    #[arg(long, value_parser = ByteQuantity::parse)]
    namespace_quota_memory: Option<ByteQuantity>,
    /// CPUs the apps of one namespace may declare together.
    #[arg(long)]
    namespace_quota_cpus: Option<f64>,
    /// Processes the apps of one namespace may declare together.
    #[arg(long)]
    namespace_quota_pids: Option<i64>,
    /// Apps one namespace may hold.
    #[arg(long)]
    namespace_quota_apps: Option<i64>,
    /// Apps may together declare at most this percent of the host's memory (0: no check).
    #[arg(long, default_value_t = wharf::policy::DEFAULT_HOST_MEMORY_PERCENT, value_parser = clap::value_parser!(u8).range(0..=100))]
    host_memory_admission: u8,
    /// How long audit log entries are kept.
    #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
    audit_retention: Duration,
}

impl SecurityFlags {
    fn policy(&self) -> anyhow::Result<Policy> {
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
            .map_err(|e| anyhow::anyhow!("policy flags: {e}"))?;
        Ok(policy)
    }
}

/// `app NAME [-n NAMESPACE]`: the app a command acts on.
#[derive(clap::Args)]
struct AppRef {
    #[arg(value_parser = ["app"])]
    resource: String,
    name: String,
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Pull a declared Image now (whatever its pull policy), showing each layer.
    Pull { name: String },
    /// Check every declared image's registry digest (one manifest HEAD each) and pull the
    /// changed ones; the apps using them are then replaced one at a time.
    UpdateAll,
    /// Ask an admin to approve an image (with --require-approved-images).
    Request {
        reference: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List image requests (an admin sees all, others their own).
    Requests {
        /// Pending, Approved or Rejected.
        #[arg(long)]
        state: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Approve an image request: declares its Image (admin).
    Approve { id: String },
    /// Reject an image request (admin).
    Reject {
        id: String,
        #[arg(long, default_value = "")]
        message: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; prints it once on stdout.
    Create {
        /// A namespace the role applies in (repeatable; `*` for every namespace).
        #[arg(short, long = "namespace", required = true)]
        namespaces: Vec<String>,
        #[arg(long, value_parser = ["viewer", "editor", "admin"])]
        role: String,
        /// Lifetime, e.g. 30d or 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Revoke a token by id (tok_…); it stops working at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// The namespace's override and the policy in effect.
    Get {
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// Replace the namespace's override with a policy file (YAML or JSON; see schemas/policy.json).
    Set {
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Remove the namespace's override.
    Delete {
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn serve(args: &Args, command: &Command) -> anyhow::Result<()> {
    let Command::Serve {
        specs,
        no_specs,
        listen,
        instance,
        resync,
        max_ops,
        min_pass_interval,
        max_body,
        docker_timeout,
        pull_timeout,
        insecure_registries,
        port_area_range,
        stats_interval,
        stats_raw_retention,
        stats_minute_retention,
        stats_hour_retention,
        security,
    } = command
    else {
        unreachable!("serve is only called for the serve command");
    };
    let config = ServeConfig {
        data_dir: args.data.clone(),
        specs_dir: (!no_specs).then(|| specs.clone()),
        listen: *listen,
        controller: ControllerConfig {
            instance: instance.clone(),
            resync: *resync,
            max_ops: *max_ops,
            min_pass_interval: *min_pass_interval,
            insecure_registries: insecure_registries.clone(),
            require_approved_images: security.require_approved_images,
            ..ControllerConfig::default()
        },
        max_body: *max_body,
        port_areas: *port_area_range,
        stats: StatsConfig {
            interval: (*stats_interval).max(Duration::from_secs(1)),
            retention: Retention {
                raw_ms: millis(*stats_raw_retention),
                minute_ms: millis(*stats_minute_retention),
                hour_ms: millis(*stats_hour_retention),
            },
            ..StatsConfig::default()
        },
        deadlines: Deadlines {
            call: *docker_timeout,
            pull: *pull_timeout,
            ..Deadlines::default()
        },
        tls: security
            .tls_cert
            .clone()
            .zip(security.tls_key.clone())
            .map(|(cert, key)| TlsFiles { cert, key }),
        policy: security.policy()?,
        host_memory_percent: security.host_memory_admission,
        audit_retention: security.audit_retention,
    };
    let server = Server::start(config).await?;
    tracing::info!(token_file = %args.data.join(wharf::server::TOKEN_FILE).display(), "ready");
    let signal = termination().await?;
    tracing::info!("{signal}: shutting down");
    server.shutdown().await;
    Ok(())
}

/// Waits for SIGTERM (service managers, `docker stop`) or SIGINT (Ctrl-C); names the one.
async fn termination() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

async fn client_command(args: &Args) -> cli::CliResult {
    let client = || {
        Client::new(
            &args.server,
            args.token.clone(),
            &args.data,
            args.ca_cert.as_deref(),
        )
    };
    match &args.command {
        Command::Serve { .. } => unreachable!("serve is handled before"),
        Command::Validate { files } => cli::validate(files),
        Command::Schema { kind, out } => cli::schema(*kind, out.as_deref()),
        Command::Apply {
            files,
            dry_run,
            wait,
            timeout,
        } => cli::apply(&client()?, files, *dry_run, *wait, *timeout).await,
        Command::Diff { files } => cli::diff(&client()?, files).await,
        Command::Get {
            resource,
            name,
            output,
            ..
        } if resource.starts_with("image") => {
            cli::images::get(&client()?, name.as_deref(), *output).await
        }
        Command::Images { command } => match command {
            ImagesCommand::Pull { name } => cli::images::pull(&client()?, name).await,
            ImagesCommand::UpdateAll => cli::images::update_all(&client()?).await,
            ImagesCommand::Request { reference, reason } => {
                cli::security::request_image(&client()?, reference, reason).await
            }
            ImagesCommand::Requests { state, output } => {
                cli::security::list_requests(&client()?, state.as_deref(), *output).await
            }
            ImagesCommand::Approve { id } => cli::security::decide(&client()?, id, true, "").await,
            ImagesCommand::Reject { id, message } => {
                cli::security::decide(&client()?, id, false, message).await
            }
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                namespaces,
                role,
                expires,
                description,
            } => {
                cli::security::create_token(
                    &client()?,
                    namespaces,
                    role,
                    expires.as_deref(),
                    description,
                )
                .await
            }
            TokenCommand::List { output } => cli::security::list_tokens(&client()?, *output).await,
            TokenCommand::Revoke { id } => cli::security::revoke_token(&client()?, id).await,
        },
        Command::Whoami { output } => cli::security::whoami(&client()?, *output).await,
        Command::Policy { command } => match command {
            PolicyCommand::Get { namespace, output } => {
                cli::security::get_policy(&client()?, namespace, *output).await
            }
            PolicyCommand::Set { namespace, file } => {
                cli::security::set_policy(&client()?, namespace, file).await
            }
            PolicyCommand::Delete { namespace } => {
                cli::security::delete_policy(&client()?, namespace).await
            }
        },
        Command::Audit {
            token_id,
            namespace,
            since,
            limit,
            output,
        } => {
            cli::security::audit(
                &client()?,
                token_id.as_deref(),
                namespace.as_deref(),
                since.as_deref(),
                *limit,
                *output,
            )
            .await
        }
        Command::Get {
            name,
            namespace,
            selector,
            owner,
            output,
            ..
        } => {
            cli::get_apps(
                &client()?,
                namespace.as_deref(),
                name.as_deref(),
                selector.as_deref(),
                owner.as_deref(),
                *output,
            )
            .await
        }
        Command::Restart { app } => {
            cli::apps::action(&client()?, &app.namespace, &app.name, "restart", &[]).await
        }
        Command::Kill { app, signal } => {
            let query = [("signal", signal.clone())];
            cli::apps::action(&client()?, &app.namespace, &app.name, "kill", &query).await
        }
        Command::HardReset { app, volumes } => {
            let query = [("volumes", volumes.to_string())];
            cli::apps::action(&client()?, &app.namespace, &app.name, "hard-reset", &query).await
        }
        Command::Start { app } | Command::Unpause { app } => {
            cli::apps::set_state(&client()?, &app.namespace, &app.name, "running").await
        }
        Command::Stop { app } => {
            cli::apps::set_state(&client()?, &app.namespace, &app.name, "stopped").await
        }
        Command::Pause { app } => {
            cli::apps::set_state(&client()?, &app.namespace, &app.name, "paused").await
        }
        Command::Logs {
            app,
            tail,
            since,
            follow,
        } => {
            cli::apps::logs(
                &client()?,
                &app.namespace,
                &app.name,
                tail.as_deref(),
                since.as_deref(),
                *follow,
            )
            .await
        }
        Command::Inspect { app, output } => {
            cli::apps::inspect(&client()?, &app.namespace, &app.name, *output).await
        }
        Command::Stats {
            app,
            since,
            step,
            output,
        } => {
            cli::stats::app(
                &client()?,
                &app.namespace,
                &app.name,
                since,
                step.as_deref(),
                *output,
            )
            .await
        }
        Command::Uptime {
            app,
            duration,
            output,
        } => cli::stats::uptime(&client()?, &app.namespace, &app.name, duration, *output).await,
        Command::Users { namespace, output } => {
            cli::apps::users(&client()?, namespace, *output).await
        }
        Command::Git {
            app,
            op,
            path,
            branch,
        } => {
            cli::apps::git(
                &client()?,
                &app.namespace,
                &app.name,
                op,
                path,
                branch.as_deref(),
            )
            .await
        }
        Command::Run {
            image,
            owner,
            namespace,
            name,
            env,
            port,
            memory,
            cpus,
            dry_run,
            wait,
            timeout,
            command,
        } => {
            let options = cli::apps::RunOptions {
                image,
                owner,
                namespace,
                name: name.as_deref(),
                env,
                ports: port,
                memory: memory.as_deref(),
                cpus: *cpus,
                command,
                dry_run: *dry_run,
                wait: *wait,
                timeout: *timeout,
            };
            cli::apps::run(&client()?, options).await
        }
        Command::Describe {
            name, namespace, ..
        } => cli::describe(&client()?, namespace, name).await,
        Command::Delete {
            name,
            namespace,
            files,
            ..
        } => cli::delete(&client()?, namespace, name.as_deref(), files).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Serve { .. } = &args.command {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into()),
            )
            .init();
        return match serve(&args, &args.command).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                Exit::Failure.into()
            }
        };
    }
    match client_command(&args).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            cli::report(&e);
            e.exit.into()
        }
    }
}
