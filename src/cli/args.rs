//! The command line: every command, flag and default of the `wharf` binary (clap), and the
//! conversion of `wharf serve`'s flags into a `ServeConfig`. `main.rs` parses and dispatches.
//!
//! The doc comments here are the `--help` text, written for a terminal, not for rustdoc.
#![allow(rustdoc::broken_intra_doc_links)]

use crate::spec::mode::Mode;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::{Output, SchemaKind};
use crate::defaults;

mod serve;
pub use serve::{GitFlags, SecurityFlags, ServeArgs};

#[derive(Parser)]
#[command(name = "wharf", version, about = "A declarative reconciler for Docker")]
pub struct Args {
    /// wharf server URL (client commands).
    #[arg(
        long,
        global = true,
        env = "WHARF_SERVER",
        default_value = defaults::SERVER_URL
    )]
    pub server: String,
    /// Bearer token (client commands); default: DATA/admin.token.
    #[arg(long, global = true, env = "WHARF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for an https server URL, e.g. a self-signed one.
    #[arg(long, global = true, env = "WHARF_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Data directory: database and admin token.
    #[arg(long, global = true, env = "WHARF_DATA", default_value = defaults::DATA_DIR)]
    pub data: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the reconciler and the API.
    Serve(Box<ServeArgs>),
    /// Create or update objects from files, directories or stdin (-).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Show the plan and diff; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        set: SetFlags,
        #[command(flatten)]
        wait: WaitFlags,
    },
    /// List apps, images or (swarm mode) nodes, or show one.
    Get {
        /// Resource type: apps, images or nodes.
        #[arg(value_parser = ["apps", "app", "images", "image", "nodes", "node"])]
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
        /// Apps: after the list, print each change as it happens (until interrupted).
        #[arg(short, long)]
        watch: bool,
        #[command(flatten)]
        output: TableOutput,
    },
    /// Show an app with its status and events, or (swarm mode) a node as the engine reports it.
    Describe {
        #[arg(value_parser = ["app", "apps", "node", "nodes"])]
        resource: String,
        name: String,
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// Delete an app (or a `kind: Node` object) by name, or the objects declared in files.
    Delete {
        #[arg(value_parser = ["app", "apps", "node", "nodes"], required_unless_present = "files")]
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
    /// Run the node agent (swarm mode): on every swarm node, beside its engine (DOCKER_HOST or
    /// the default socket). Dials --server with an agent token (`wharf token create --role
    /// agent`), reports the node's task containers and host figures, and does the server's
    /// kill, inspect and git requests for wharf's task containers there.
    Agent {
        /// A file holding the agent token (else --token or WHARF_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Copy the data directory's database while wharf runs (SQLite's VACUUM INTO), and check
    /// the copy. Restore: stop wharf, put the copy in place of DATA/wharf.db (moving the old
    /// file and its -wal and -shm files aside), start wharf.
    Backup {
        /// Where the copy goes (must not exist); default wharf-backup-<UTC time>.db here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Move an installation between databases (stop wharf first): objects and their status,
    /// events, tokens, image requests, policies, the audit log, settings, stats and uptime.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The instances on the server's database, which one leads and since when, and whether
    /// the answering instance is ready. Exit 3 when no instance leads.
    Status {
        #[command(flatten)]
        output: TableOutput,
    },
    /// The server's mode (solo or swarm), engine and, in swarm mode, cluster.
    Info {
        #[command(flatten)]
        output: TableOutput,
    },
    /// Spec file problems and, with `serve --git`, the followed branch and its applied commit.
    /// Exit 3 while a file (or the branch's head) is rejected.
    Sources {
        #[command(flatten)]
        output: TableOutput,
    },
    /// Check files offline (for CI lint); non-zero exit on any error.
    Validate {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Convert a docker compose file into App (and Image) documents, offline; every key not
    /// carried over is listed on stderr with why.
    Convert {
        #[arg(short = 'f', long = "filename", value_name = "COMPOSE_FILE")]
        file: PathBuf,
        /// The namespace of the apps.
        #[arg(short, long, default_value = crate::spec::validate::DEFAULT_NAMESPACE)]
        namespace: String,
        /// Write one NAME.yaml per service into DIR (default: every document to stdout).
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: Option<PathBuf>,
        /// The mode the documents are for: solo drops what only swarm mode has (replicas,
        /// placement, reservations, update settings), with a warning.
        #[arg(long, value_enum, default_value_t = Mode::Solo)]
        mode: Mode,
        /// Exit 3 when any key is not carried over.
        #[arg(long)]
        strict: bool,
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
        /// Swarm mode: one task (its id, an id prefix or its slot); default every running one.
        #[arg(long)]
        task: Option<String>,
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
        /// Swarm mode: one task (its id, an id prefix or its slot).
        #[arg(long)]
        task: Option<String>,
    },
    /// Print the engine's inspect data of an app's container.
    Inspect {
        #[command(flatten)]
        app: AppRef,
        #[arg(short, long, value_enum, default_value = "json")]
        output: Output,
        /// Swarm mode: one task (its id, an id prefix or its slot).
        #[arg(long)]
        task: Option<String>,
    },
    /// List the owners of a namespace's apps.
    Users {
        #[arg(short, long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        output: TableOutput,
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
        /// Swarm mode: one task (its id, an id prefix or its slot).
        #[arg(long)]
        task: Option<String>,
    },
    /// Create, list or revoke API tokens (admin).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show the token in use and its grants.
    Whoami {
        #[command(flatten)]
        output: TableOutput,
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
        #[command(flatten)]
        output: TableOutput,
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
        #[command(flatten)]
        wait: WaitFlags,
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
        /// Swarm mode: one task (its id, an id prefix or its slot).
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        output: TableOutput,
    },
    /// An app's availability over the last hour, day, week or month, with a bar.
    Uptime {
        #[command(flatten)]
        app: AppRef,
        #[arg(long, default_value = "day", value_parser = ["hour", "day", "week", "month"])]
        duration: String,
        #[command(flatten)]
        output: TableOutput,
    },
    /// Print the JSON Schema of one kind (app, image), or write every schema to a directory.
    Schema {
        #[arg(value_enum, default_value = "app")]
        kind: SchemaKind,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script: `wharf completion bash >
    /// /etc/bash_completion.d/wharf`, `wharf completion zsh > "${fpath[1]}/_wharf"`, `wharf
    /// completion fish > ~/.config/fish/completions/wharf.fish`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages: wharf.1 and one per command (wharf-serve.1, wharf-apply.1, …).
    /// Install them under a MANPATH directory's man1, e.g. /usr/local/share/man/man1.
    Man {
        /// Directory for the pages (created if missing; existing pages are replaced).
        #[arg(long, default_value = "man")]
        out: PathBuf,
    },
}

/// A duration on the command line: `30s`, `200ms`, `7d` (humantime), shown the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl std::str::FromStr for Span {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(Span)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (secs, millis) = (self.0.as_secs(), self.0.subsec_millis());
        match (secs, millis) {
            (0, ms) => write!(f, "{ms}ms"),
            (s, 0) if s % 86400 == 0 => write!(f, "{}d", s / 86400),
            (s, 0) if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            (s, 0) if s % 60 == 0 => write!(f, "{}m", s / 60),
            (s, 0) => write!(f, "{s}s"),
            _ => write!(f, "{}ms", self.0.as_millis()),
        }
    }
}

/// `--wait [--timeout 2m]`: wait until what was applied is ready.
#[derive(clap::Args)]
pub struct WaitFlags {
    /// Wait until every app is ready at its new generation (and every Image present).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value_t = Span(defaults::WAIT_TIMEOUT))]
    pub timeout: Span,
}

/// `--set NAME [--prune]`: an apply set, and the pruning of what left it.
#[derive(clap::Args, Default)]
pub struct SetFlags {
    /// Label everything applied with this apply set (`wharf.set: NAME`).
    #[arg(long, value_name = "NAME")]
    pub set: Option<String>,
    /// Delete the objects of --set that the files no longer contain (API-owned objects of that
    /// set only); with --dry-run, list them.
    #[arg(long, requires = "set")]
    pub prune: bool,
}

impl SetFlags {
    /// The apply's query string: `?dryRun=true&set=NAME&prune=true`, or empty.
    pub fn query(&self, dry_run: bool) -> String {
        let mut parts = Vec::new();
        if dry_run {
            parts.push("dryRun=true".to_string());
        }
        if let Some(set) = &self.set {
            parts.push(format!("set={set}"));
        }
        if self.prune {
            parts.push("prune=true".into());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// `-o table|json|yaml`, table by default.
#[derive(clap::Args)]
pub struct TableOutput {
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

/// `app NAME [-n NAMESPACE]`: the app a command acts on.
#[derive(clap::Args)]
pub struct AppRef {
    #[arg(value_parser = ["app"])]
    pub resource: String,
    pub name: String,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Pull a declared Image now (whatever its pull policy), showing each layer.
    Pull { name: String },
    /// Check every declared image's registry digest (one manifest HEAD each) and pull the
    /// changed ones; the apps using them are then replaced (spec.rollout.maxUnavailable at a time).
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
        #[command(flatten)]
        output: TableOutput,
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
pub enum StoreCommand {
    /// Copy every table of one database into another, which must be empty (one transaction:
    /// a failed copy leaves it empty), e.g. --to postgres://wharf:PASSWORD@db:5432/wharf.
    Copy {
        /// The database to read (default: DATA/wharf.db).
        #[arg(long, value_name = "URL")]
        from: Option<crate::store::Database>,
        /// The database to fill: sqlite://PATH or postgres://….
        #[arg(long, value_name = "URL")]
        to: crate::store::Database,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it once on stdout.
    Create {
        /// A namespace the role applies in (repeatable; `*` for every namespace). Required but
        /// for `--role agent`, which is not per namespace.
        #[arg(short, long = "namespace")]
        namespaces: Vec<String>,
        /// `agent`: a node agent's token (`wharf agent`), which may do nothing else.
        #[arg(long, value_parser = ["viewer", "editor", "admin", "agent"])]
        role: String,
        /// Lifetime, e.g. 30d or 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        #[command(flatten)]
        output: TableOutput,
    },
    /// Revoke a token by id (tok_…); it stops working at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_and_print_as_people_write_them() {
        for text in ["200ms", "30s", "5m", "24h", "7d", "90d"] {
            let span: Span = text.parse().expect("parses");
            let again: Span = span.to_string().parse().expect("reparses");
            assert_eq!(span, again, "{text}");
        }
        assert_eq!(Span(Duration::from_secs(86400)).to_string(), "1d");
        assert_eq!(Span(Duration::from_millis(1500)).to_string(), "1500ms");
        assert!("soon".parse::<Span>().is_err());
    }
}
