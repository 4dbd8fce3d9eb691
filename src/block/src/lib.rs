//! The block store: the data of objects, cut into blocks named by their
//! Blake2 hash, kept as files on the storage nodes of the hash's partition.
//!
//! Layout:
//! - `layout`: the `data_dir` directories and which one holds a block
//!   (weighted rendezvous hashing, read-only directories read only).
//! - `store`: the files: `<dir>/ab/cd/<64 hex>`, written through a temporary
//!   file and a rename, read back with their hash checked.
//! - [`block_ref_table`]: the replicated table of references from object
//!   versions to blocks, whose `updated` hook keeps the local reference
//!   counts (`rc`) and queues resync checks.
//! - `resync`: the persistent queue of blocks to check, and the worker
//!   that fetches missing blocks, hands off blocks this node no longer
//!   stores, and deletes unreferenced ones after the delay.
//! - `scrub`: the periodic read-back of every stored file.
//! - [`rpc`]: the messages between block stores.
//! - [`manager`]: [`BlockManager`], which owns all of the above.
//!
//! See `doc/blocks.md` for the design.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod block_ref_table;
mod error;
mod layout;
pub mod manager;
mod metrics;
mod rc;
mod resync;
pub mod rpc;
mod scrub;
mod store;
mod worker;

pub use block_ref_table::{BlockRef, BlockRefFilter, BlockRefTable};
pub use error::BlockError;
pub use manager::{BlockErrorInfo, BlockInfo, BlockManager, BlockStats, RefCount};
pub use rpc::BlockRpc;
