//! The replicated table layer.
//!
//! A table is described by a [`TableSchema`] (its key types, its entry CRDT,
//! a filter for range reads and an `updated` hook that runs inside the
//! storage transaction), and placed on nodes by a [`TableReplication`]
//! (sharded by partition, or copied to every node). [`Table`] puts the two
//! together: local storage with a Merkle "todo" kept current, quorum reads
//! with read repair, and quorum writes.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod data;
mod error;
mod full_sync;
mod gc;
pub mod merkle;
mod replication;
mod schema;
mod stats;
mod sync;
mod table;
#[cfg(test)]
mod test_schema;

pub use data::{prefix_end, SortRange, StoredRow, TableData, TableTx};
pub use error::Error;
pub use full_sync::FullCopySyncWorker;
pub use gc::GcWorker;
pub use merkle::MerkleWorker;
pub use replication::{TableFullReplication, TableReplication, TableShardedReplication};
pub use schema::{EmptyKey, Entry, PartitionKey, SortKey, TableSchema};
pub use stats::TableStats;
pub use sync::{SyncStats, SyncTrigger, SyncWorker};
pub use table::{Table, TableRpc};
