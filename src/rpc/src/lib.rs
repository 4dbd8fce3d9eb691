//! Node identity, peers and RPC.
//!
//! Layout:
//! - [`net`]: the [`net::Transport`] trait every other crate uses to reach
//!   peers, and typed endpoints over it. No other crate names a netapp type.
//! - [`netapp_transport`]: the production transport, netapp 0.10 (an
//!   authenticated, encrypted full mesh).
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
mod metrics;
pub mod net;
pub mod netapp_transport;
pub mod node_key;
pub mod quorum;
pub mod system;

pub use error::{RpcError, SystemError};
pub use net::{Endpoint, Handler, RpcMessage, Transport};
