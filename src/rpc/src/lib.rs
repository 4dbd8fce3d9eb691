//! Node identity, peers and RPC.
//!
//! Layout:
//! - [`net`]: the [`net::Transport`] trait every other crate uses to reach
//!   peers, and typed endpoints over it.
//! - [`mesh`]: the production transport, an authenticated, encrypted full
//!   mesh of TCP connections (secret handshake and box stream).
//! - [`memory_transport`]: an in-process transport for tests and simulation.
//! - [`node_key`]: the node's ed25519 identity, kept in `metadata_dir`.
//! - [`quorum`]: calling several nodes and waiting for a quorum.
//! - [`layout`]: the cluster layout (role table, staging, assignment).
//! - [`system`]: membership, status exchange and the layout manager.
//! - `metrics`: the per-endpoint RPC counters and durations.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod layout;
pub mod memory_transport;
pub mod mesh;
mod metrics;
pub mod net;
pub mod node_key;
pub mod quorum;
pub mod system;

pub use error::{RpcError, SystemError};
pub use net::{Endpoint, Handler, RpcMessage, Transport};
