//! wharf: a Kubernetes-style declarative reconciler for Docker.
//!
//! People declare apps (containers) as YAML or JSON documents — pushed over the REST API or
//! the CLI, or dropped into a watched directory — and wharf keeps the Docker Engine matching
//! them.
//!
//! # Layout
//! The folders follow the data flow:
//! - `spec`: wire types, parsing with locations, validation into domain types, hashing.
//! - `source`: the watched directory, or a followed git branch (`source/git.rs`) → file-owned
//!   objects in the store.
//! - `store`: sqlx/SQLite — desired objects, status, events; ownership and preconditions; port
//!   claims; stats samples and rollups.
//! - `reconcile`: observe → build desired → plan (pure) → execute, the loop, status, previews;
//!   `reconcile/swarm/` is the swarm backend (services instead of containers) under the same
//!   loop, memory, statuses and events.
//! - `runtime`: the Docker seam (the bollard adapter with deadlines in `runtime/docker/`, the
//!   only code that names bollard; `runtime/swarm.rs` is the swarm manager's half; a
//!   recording fake behind the `testing` feature).
//! - `backoff`: every retry delay wharf uses.
//! - `defaults`: every default of `wharf serve`.
//! - `stats`: the stats sampler (one-shot engine stats → samples), rollups and retention.
//! - `images`: the registry client (digest checks) and registry credentials.
//! - `http`: the REST API (`router(state)`).
//! - `schemas`: the published JSON Schemas.
//! - `metrics`: Prometheus metrics: loop and API counters, per-app figures at scrape time.
//! - `cli`: the client commands of the `wharf` binary.
//! - `server`: wires them together for `wharf serve` and for tests.
//! - `auth`: tokens, roles per namespace, what a route needs; `policy`: admission rules.
//!
//! # One apply, from the request to the engine
//! 1. `http/routes.rs` routes `POST /api/v1/apply` through `http/auth.rs` (bearer token →
//!    `Principal`, and the route's `Need`) to `http/apply.rs` `apply`: the body is read
//!    (`http/body.rs`, `spec/parse.rs`), validated into domain types (`spec/validate.rs`), and
//!    each document's role is checked (`auth.rs`).
//! 2. `store/objects.rs` `Store::apply`: ownership, `resourceVersion`, admission
//!    (`store/admission.rs` with `policy.rs`), port claims (`store/ports.rs`); committed before
//!    the answer; the loop is woken. (With `?dryRun=true`, `reconcile/preview.rs` plans the
//!    bundle through steps 3–4 instead, and nothing is written.)
//! 3. `reconcile/controller.rs` `pass`: reads every record (`store/record.rs`), keeps
//!    `reconcile/memory.rs` in step, builds `Desired` (`reconcile/desired.rs`) and observes the
//!    engine (`reconcile/observe.rs` → `runtime/docker/mod.rs`: list, images, inspect).
//! 4. `reconcile/plan/mod.rs` `plan`: pure; an app's steps come from `plan/app.rs`, each with
//!    its reason; `reconcile/publish.rs` stores the statuses `reconcile/status.rs` computes.
//! 5. `reconcile/execute.rs` `execute`: one app's steps in order through the `Runtime` trait
//!    (`runtime/mod.rs`) to `runtime/docker/mod.rs` (bodies built in `runtime/docker/convert.rs`),
//!    every call under its deadline; outcomes become events (`reconcile/publish.rs`); failures
//!    are classified (transient: backoff from `backoff.rs`; permanent: wait for a change).
//!
//! In swarm mode (`spec/mode.rs`), step 3 hands over to `reconcile/swarm/mod.rs` after
//! building `Desired`: it observes the manager (services, tasks, nodes), plans service writes
//! with `reconcile/swarm/plan.rs` (services declared by `reconcile/swarm/declare.rs`), computes
//! statuses with `reconcile/swarm/status.rs`, and `reconcile/swarm/execute.rs` runs the writes
//! through the `Swarm` trait (`runtime/swarm.rs` → `runtime/docker/swarm.rs`).

pub mod agent;
pub mod auth;
pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod compose;
pub mod defaults;
pub mod git;
pub mod http;
pub mod images;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod reconcile;
pub mod runtime;
pub mod schemas;
pub mod server;
pub mod source;
pub mod spec;
pub mod stats;
pub mod store;
