//! wharf's integration tests, one binary with named modules.
//!
//! - `apps`: apps reconciled against the real Docker Engine (needs dockerd and busybox-static).
//! - `images`: Images against the real engine and a real registry (Debian's docker-registry):
//!   pull policies, backoff, update-all and rollouts, credentials, delete in use, rollback.
//! - `lifecycle`: actions, port areas, health checks, safe replace and rollback, git via exec,
//!   inspect, logs and users against the real engine.
//! - `stats`: stats sampling against the real engine (CPU under a limit, memory), history kept
//!   across restarts and removed with the app.
//! - `cli`: the `wharf` binary: validate, apply --wait, get, diff, delete.
//! - `api`: the REST API through `router(state)` (no socket): auth, 409, 413, 422, selectors.
//! - `control_loop`: the loop against the recording fake runtime: outages, wedged calls.
//! - `artifacts`: committed JSON Schemas and example specs are current and valid; no module
//!   import cycles.
//! - `security`: image approval, policy and HTTPS against the real engine and the CLI.
//! - `swarm`: swarm mode on a real three-node swarm the test builds (dockerd daemons in
//!   network namespaces), the rules of each mode, and the node agents (`wharf agent` processes,
//!   one per node) for task stats, kill, inspect, git, logs and uptime.
//! - `gitops`: `wharf serve --git`: a bare repository on disk and one served by `git daemon`,
//!   pushes applied whole, a bad commit refused, signed webhooks.
//! - `ha`: several `wharf serve` processes on one PostgreSQL the tests start (Debian's
//!   postgresql): the leader's election, writes through a follower, SIGKILL failover, the fence
//!   after SIGSTOP, PostgreSQL restarted under load.
//! - `notify`: `--notify-webhook` against the real engine: failures, recoveries and rejected
//!   files posted, signed, filtered, retried and counted.
//! - `faults`: the data directory's file system running full (a small tmpfs): 507, nothing
//!   half written, containers untouched, recovery when space returns.
//! - `ui`: the dashboard in a real headless Chromium (Debian's chromium and chromium-driver)
//!   against a real wharf: roles, the editor, watch updates, buttons acting on Docker, charts,
//!   logs, the API's errors; screenshots under `target/ui-screenshots/`.
//! - `hostile`: alias bombs, deep nesting, huge strings, duplicate keys and a property run over
//!   the spec reader and validator.

mod support;

mod api;
mod apps;
mod artifacts;
mod cli;
mod control_loop;
mod faults;
mod gitops;
mod ha;
mod hostile;
mod images;
mod lifecycle;
mod notify;
mod security;
mod stats;
mod swarm;
mod ui;
