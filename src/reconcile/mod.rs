//! Reconciliation: observe Docker, plan (pure), execute, publish status.
//!
//! - `observe`: the one look at the engine (listings, inspect fan-out, image cache).
//! - `memory`: what the loop remembers between passes, about each object and each image.
//! - `images`: pulls and registry checks, recorded in that memory.
//! - `desired`: the one builder of `Desired` from stored records and that memory.
//! - `plan`: the pure planner and its step types.
//! - `status`: app status from what was observed and planned.
//! - `execute`: runs one app's steps in order; decides nothing.
//! - `publish`: stores the statuses a pass computed and records step outcomes as events.
//! - `controller`: the level-triggered loop and bounded parallelism.
//! - `preview`: what a write would do (the dry run), through the same observe, builder and
//!   planner as the loop.
//! - `actions`: imperative one-shots (restart, kill, hard-reset) that take an app's place in
//!   the loop.

pub mod actions;
pub mod controller;
mod desired;
pub mod execute;
pub mod images;
pub mod memory;
pub mod observe;
mod pacing;
pub mod plan;
pub mod preview;
mod publish;
pub mod status;
pub mod swarm;

pub use actions::{ActionError, AppAction};
pub use controller::{Controller, ControllerConfig, Health};
