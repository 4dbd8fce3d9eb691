//! Shared primitives used by every other crate of the workspace.
//!
//! Layout:
//! - [`data`]: 32-byte identifiers and hashes (blake2).
//! - [`crdt`]: the `Crdt` trait and the CRDT primitives (Lww, LwwMap, Deletable) and the
//!   merge-law checks their property tests share.
//! - [`encode`]: versioned MessagePack encoding of stored and wire types.
//! - [`time`]: the clock handle; nothing below the binary reads the system clock directly.
//! - [`config`]: the `garage.toml` configuration, Garage-compatible.
//! - [`background`]: the single `Worker` trait and the runner that drives every loop.
//! - [`rng`]: the seeded randomness handle.
//! - [`metrics`]: counters and histograms for `/metrics`, and the Prometheus text format.
#![warn(missing_docs)]

pub mod background;
pub mod config;
pub mod crdt;
pub mod data;
pub mod encode;
pub mod metrics;
pub mod rng;
pub mod time;
