//! The node agent (`wharf agent`) and the server's side of it, for swarm mode. A swarm
//! manager's API cannot read the stats of containers on other nodes, signal them or exec into
//! them; an agent on each node does that for wharf's task containers there, talking only to its
//! own node's engine and dialling home to the server over one WebSocket. No port is opened on
//! the nodes.
//!
//! - `protocol`: the messages.
//! - `client`: the agent process.
//! - `hub`: the server's registry of connected agents, their reports and commands.
//! - `uptime`: swarm apps' availability from what the agents see.

pub mod client;
pub mod hub;
pub mod protocol;
pub mod uptime;
