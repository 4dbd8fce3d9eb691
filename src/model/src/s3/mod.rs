//! The S3 side of the store: objects in buckets.
//!
//! - [`object_table`]: per (bucket, key) the versions of an object; small
//!   objects inline.
//! - [`version_table`]: per version, its blocks in order and its multipart
//!   parts.
//!
//! Data of a version lives in content-addressed blocks (the block manager).
//! When a version can no longer be read (overwritten, deleted, aborted) the
//! object table's hook marks it deleted in the version table, and the
//! version table's hook releases the references of its blocks. Both hooks
//! run after the local commit, on every replica (the writes are idempotent).

pub mod object_table;
pub mod version_table;

use std::sync::{Arc, OnceLock};

use garage_block::{BlockRef, BlockRefTable};
use garage_table::{Table, TableShardedReplication};
use garage_util::data::{Hash, Uuid};

use object_table::ObjectTable;
use version_table::{Version, VersionTable};

/// The object table type.
pub type ObjectTableT = Table<ObjectTable, TableShardedReplication>;
/// The version table type.
pub type VersionTableT = Table<VersionTable, TableShardedReplication>;

/// Where the hooks send their follow-up writes; set once the tables exist.
#[derive(Default)]
pub(crate) struct Cascade {
    pub(crate) versions: OnceLock<Arc<VersionTableT>>,
    pub(crate) block_refs: OnceLock<Arc<BlockRefTableT>>,
}

/// The block reference table type.
pub type BlockRefTableT = Table<BlockRefTable, TableShardedReplication>;

impl Cascade {
    /// Marks the versions deleted in the version table (in the background).
    pub(crate) fn drop_versions(&self, bucket_id: Uuid, key: String, uuids: Vec<Uuid>) {
        let (Some(t), Ok(rt)) = (
            self.versions.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        rt.spawn(async move {
            let entries: Vec<Version> = uuids
                .into_iter()
                .map(|u| Version::deleted(u, bucket_id, key.clone()))
                .collect();
            if let Err(e) = t.insert_many(&entries).await {
                tracing::warn!(error = %e, "could not mark dropped versions deleted");
            }
        });
    }

    /// Releases the block references of a deleted version.
    pub(crate) fn release_blocks(&self, version: Uuid, blocks: Vec<Hash>) {
        let (Some(t), Ok(rt)) = (
            self.block_refs.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        rt.spawn(async move {
            let refs: Vec<BlockRef> = blocks
                .into_iter()
                .map(|block| BlockRef {
                    block,
                    version,
                    deleted: true,
                })
                .collect();
            if let Err(e) = t.insert_many(&refs).await {
                tracing::warn!(error = %e, "could not release the blocks of a deleted version");
            }
        });
    }
}

/// The S3 part of a node.
pub struct S3State {
    /// Objects.
    pub object_table: Arc<ObjectTableT>,
    /// Versions and their blocks.
    pub version_table: Arc<VersionTableT>,
}
