//! The REST API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`. `router(state)`
//! builds everything, so tests drive it with `oneshot` and no socket. Handlers parse and
//! validate input, then call the store or the controller; they never plan or act on Docker
//! themselves.
//!
//! Leaf helpers (used by the resources, using none of them): `state`, `error`, `extract`,
//! `body`, `time`, `audit`, `auth`, `selector`, `views` (shared answer shapes). One module per resource: `apply`, `apps`,
//! `actions`, `images`, `image_requests`, `stats`, `tokens`, `policy`, `audit_log`, `sources`,
//! `health`, `nodes`, `watch` (a list's changes as server-sent events), `ui` (the dashboard's
//! embedded files), `agents` (the node agents' connection; its hub lookup is shared), `tasks`
//! (swarm mode: reaching task containers through the agents, used by `actions`). `routes` holds the route table and the router, and is the only module that names
//! the resources.

pub mod actions;
pub mod agents;
pub mod apply;
pub mod apps;
pub mod audit;
pub mod audit_log;
pub mod auth;
pub mod body;
pub mod cluster;
pub mod error;
pub mod extract;
pub mod health;
pub mod hooks;
pub mod image_requests;
pub mod images;
pub mod nodes;
pub mod openapi;
pub mod policy;
pub mod routes;
pub mod selector;
pub mod sources;
pub mod state;
pub mod stats;
pub mod tasks;
pub mod time;
pub mod tokens;
pub mod ui;
pub mod views;
pub mod watch;

pub use routes::{ApiRoute, METRICS_NEED, api_routes, router};
pub use state::{ApiState, DEFAULT_MAX_BODY};
