//! Reconciliation: observe Docker, plan (pure), execute, publish status.
//!
//! - `plan`: the pure planner and its step types.
//! - `status`: app status from what was observed and planned.
//! - `execute`: runs one app's steps in order; decides nothing.
//! - `controller`: the level-triggered loop, backoff and bounded parallelism.
//! - `actions`: imperative one-shots (restart, kill, hard-reset) that take an app's place in
//!   the loop.

pub mod actions;
pub mod controller;
pub mod execute;
pub mod plan;
pub mod status;

pub use actions::{ActionError, AppAction};
pub use controller::{Controller, ControllerConfig, Health};
