//! The S3 side of the store: objects in buckets.
//!
//! - [`object_table`]: per (bucket, key) the versions of an object; small
//!   objects inline.
//! - [`version_table`]: per version, its blocks in order and its multipart
//!   parts.
//!
//! - [`cascade`]: the local queue of the writes that deletions call for.
//!
//! Data of a version lives in content-addressed blocks (the block manager).
//! When a version can no longer be read (overwritten, deleted, aborted) the
//! object table's hook queues its deletion in the version table, and the
//! version table's hook queues the release of its blocks' references; the
//! queue is written in the transaction of the change, and carried out by a
//! worker, on every replica (the writes are idempotent).

pub mod cascade;
pub mod object_table;
pub mod version_table;

use std::sync::Arc;

use garage_block::BlockRefTable;
use garage_table::{Table, TableShardedReplication};

use object_table::ObjectTable;
use version_table::VersionTable;

/// The object table type.
pub type ObjectTableT = Table<ObjectTable, TableShardedReplication>;
/// The version table type.
pub type VersionTableT = Table<VersionTable, TableShardedReplication>;

/// The block reference table type.
pub type BlockRefTableT = Table<BlockRefTable, TableShardedReplication>;

/// The S3 part of a node.
pub struct S3State {
    /// Objects.
    pub object_table: Arc<ObjectTableT>,
    /// Versions and their blocks.
    pub version_table: Arc<VersionTableT>,
    /// The queue of version and block releases.
    pub cascade: Arc<cascade::Cascade>,
}
