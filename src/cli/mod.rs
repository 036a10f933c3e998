//! The client side of the `wharf` binary: apply, get, describe, delete, diff, validate, schema.
//!
//! Files are parsed and validated locally first (so errors name file, line and field), then sent
//! to the server as JSON. Exit codes are part of the contract (see `Exit`).

pub mod apps;
pub mod args;
pub mod backup;
pub mod cluster;
pub mod convert;
pub mod images;
pub mod nodes;
pub mod security;
pub mod shell;
pub mod sources;
pub mod stats;

mod apply;
mod client;
mod files;
mod get;
mod output;

pub use apply::{apply, delete, delete_node, diff};
pub use client::{CliError, CliResult, Client, Exit, report};
pub use files::{read_paths, validate};
pub use get::{SchemaKind, describe, get_apps, schema, watch_apps, watch_refused};
pub use output::Output;
