//! `wharf serve`'s defaults, in one place: the flags' defaults, `ServeConfig::new` and the
//! `Default` impls of the configurations it holds all read them from here.

use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Where the API listens: loopback only.
pub const LISTEN: &str = "127.0.0.1:7999";
/// The watched directory of spec files.
pub const SPECS_DIR: &str = "specs";
/// The data directory: database and admin token.
pub const DATA_DIR: &str = ".wharf";
/// `--git-branch`: the branch a git source follows.
pub const GIT_BRANCH: &str = "main";
/// `--git-poll`: how often a git source fetches (a signed webhook fetches at once).
pub const GIT_POLL: Duration = Duration::from_secs(60);
/// The server a client command talks to.
pub const SERVER_URL: &str = "http://127.0.0.1:7999";
/// Separates this wharf's containers from another's on the same engine.
pub const INSTANCE: &str = "default";
/// The leader's lease (several instances on PostgreSQL): renewed every fifth of it; a leader
/// that cannot renew stops Docker writes 3/10 of it before its end; another instance leads
/// within 12 s of the leader's last renewal (see `cluster`).
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// A full reconcile pass at least this often.
pub const RESYNC: Duration = Duration::from_secs(30);
/// Container operations in flight at once. On 2 cores raw create+start of 50 and 100
/// containers is 5–10 % faster at 8 in flight than at 4 (`examples/bench_converge.rs`), and
/// wharf at 8 is within 10 % of that; graceful stops and readiness watches hold none.
pub const MAX_OPS: usize = 8;
/// Apps of one image replaced at once in a rollout: one, so a bad version reaches one app
/// before the rollback stops it.
pub const ROLLOUT_WIDTH: u32 = 1;
/// Passes woken by engine events or finished work start at least this far apart; passes for
/// writes, exits and removals at least a quarter of this.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_millis(200);
/// Deadline of one registry request.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline of each Docker call.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a whole image pull.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Host ports port areas are allocated from: below Linux's ephemeral range (32768–60999),
/// which outgoing connections draw from.
pub const PORT_AREA_RANGE: (u16, u16) = (20000, 32767);
/// Time between two stats samples of every running app.
pub const STATS_INTERVAL: Duration = Duration::from_secs(10);
/// How long raw stats samples, 1-minute and 1-hour rollups are kept.
pub const STATS_RAW_RETENTION: Duration = DAY;
pub const STATS_MINUTE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const STATS_HOUR_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long audit log entries are kept.
pub const AUDIT_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Apps may together declare at most this percent of the host's memory.
pub const HOST_MEMORY_PERCENT: u8 = 90;
/// How long `apply --wait` and `run --wait` wait.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(120);
