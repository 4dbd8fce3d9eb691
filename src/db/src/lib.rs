//! Local storage behind one small API: named trees of ordered byte keys,
//! range scans, and atomic multi-tree transactions.
//!
//! # Layout
//!
//! - [`error`]: [`Error`], and [`TxError`] for transactions.
//! - `options`: [`Engine`] (the `db_engine` setting) and [`OpenOptions`].
//! - `db`: the handles other crates use: [`Db`], [`Tree`], [`Transaction`].
//! - `engine`: the internal contract each engine implements, and the staged
//!   transaction shared by the engines without native range-capable
//!   transactions.
//! - `memory`, `redb_adapter` (feature `redb`, the default), `sled_adapter`
//!   (feature `sled`): the engines. No other crate names an engine type.
//! - [`sim_disk`] (feature `redb`): a simulated disk for crash and power-loss
//!   tests of the redb engine.
//!
//! # Guarantees
//!
//! Every call is synchronous and may come from any thread. A read outside a
//! transaction sees one committed snapshot. A write or transaction that
//! returned `Ok` survives a crash of the process; with `fsync` it also
//! survives a power loss (redb only; sled refuses `fsync`). See
//! `doc/storage.md` for the details per engine.

#![warn(missing_docs)]

pub mod error;

mod db;
mod engine;
mod memory;
mod options;
#[cfg(feature = "redb")]
mod redb_adapter;
#[cfg(feature = "redb")]
pub mod sim_disk;
#[cfg(feature = "sled")]
mod sled_adapter;

#[cfg(test)]
mod tests;

pub use db::{Db, Transaction, Tree};
pub use error::{Error, Result, TxError, TxResult};
pub use options::{Engine, OpenOptions};

/// A value (or key) as stored: an owned byte string.
pub type Value = Vec<u8>;
