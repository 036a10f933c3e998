//! wharf: a Kubernetes-style declarative reconciler for Docker.
//!
//! People declare apps (containers) as YAML or JSON documents — pushed over the REST API or
//! the CLI, or dropped into a watched directory — and wharf keeps the Docker Engine matching
//! them.
//!
//! # Layout
//! The folders follow the data flow:
//! - `spec`: wire types, parsing with locations, validation into domain types, hashing.
//! - `source`: the watched directory → file-owned objects in the store.
//! - `store`: sqlx/SQLite — desired objects, status, events; ownership and preconditions; port
//!   claims; stats samples and rollups.
//! - `reconcile`: observe → plan (pure) → execute, the loop, backoff, status.
//! - `runtime`: the Docker seam (bollard adapter with deadlines; a recording fake).
//! - `stats`: the stats sampler (one-shot engine stats → samples), rollups and retention.
//! - `images`: pulls with live progress, registry digest checks, registry credentials.
//! - `http`: the REST API (`router(state)`).
//! - `metrics`: Prometheus metrics: loop and API counters, per-app figures at scrape time.
//! - `cli`: the client commands of the `wharf` binary.
//! - `server`: wires them together for `wharf serve` and for tests.

pub mod auth;
pub mod backoff;
pub mod cli;
pub mod http;
pub mod images;
pub mod metrics;
pub mod policy;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod source;
pub mod spec;
pub mod stats;
pub mod store;
