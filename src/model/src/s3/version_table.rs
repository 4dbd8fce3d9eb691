//! The version table: per version uuid, the blocks of its data, in order,
//! and (multipart uploads) the parts uploaded so far.
//!
//! Blocks are keyed by (part number, attempt, offset in the part): a part
//! uploaded twice keeps both attempts until the version is deleted, and the
//! newest attempt of each part is the one read. A simple PutObject writes
//! part 0, attempt 0. `deleted` is a one-way flag: once set, the blocks and
//! parts are forgotten and the blocks' references are released.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use garage_db::Transaction;
use garage_table::{Entry, TableSchema};
use garage_util::crdt::Crdt;
use garage_util::data::{Hash, Uuid};
use garage_util::encode::{Migrate, NoPrevious};

use super::cascade::{Cascade, CascadeTask};

pub use v1::{PartMeta, Version, VersionBlock, VersionBlockKey};

mod v1 {
    use super::*;

    /// The data of one object version.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Version {
        /// The version uuid (object table).
        pub uuid: Uuid,
        /// The bucket of the object.
        pub bucket_id: Uuid,
        /// The object key.
        pub key: String,
        /// Deleted: blocks no longer referenced.
        pub deleted: bool,
        /// Blocks in order.
        pub blocks: Vec<(VersionBlockKey, VersionBlock)>,
        /// Multipart: the newest attempt of each part.
        pub parts: Vec<(u64, PartMeta)>,
    }

    /// Where a block sits in the object.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct VersionBlockKey {
        /// Part number (0 for a simple upload).
        pub part_number: u64,
        /// Attempt of that part (its upload time in ms).
        pub attempt: u64,
        /// Offset of the block in the part.
        pub offset: u64,
    }

    /// A block of a version.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct VersionBlock {
        /// Its hash (block id).
        pub hash: Hash,
        /// Its size in bytes.
        pub size: u64,
    }

    /// One uploaded part.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct PartMeta {
        /// The attempt (upload time, ms): the newest wins.
        pub attempt: u64,
        /// MD5 of the part (hex).
        pub etag: String,
        /// Bytes.
        pub size: u64,
    }

    impl Migrate for Version {
        const VERSION_MARKER: &'static [u8] = b"S3ver1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

impl Version {
    /// An empty version.
    pub fn new(uuid: Uuid, bucket_id: Uuid, key: String) -> Self {
        Self {
            uuid,
            bucket_id,
            key,
            deleted: false,
            blocks: vec![],
            parts: vec![],
        }
    }

    /// A deletion of version `uuid`.
    pub fn deleted(uuid: Uuid, bucket_id: Uuid, key: String) -> Self {
        Self {
            deleted: true,
            ..Self::new(uuid, bucket_id, key)
        }
    }

    /// The blocks to read, in order. `selected` lists the (part number,
    /// attempt) pairs a completed multipart upload is made of; when empty,
    /// every block (simple upload) or the newest attempt of every part.
    pub fn read_blocks(&self, selected: &[(u64, u64)]) -> Vec<VersionBlock> {
        let newest: BTreeMap<u64, u64> = self.parts.iter().map(|(n, p)| (*n, p.attempt)).collect();
        self.blocks
            .iter()
            .filter(|(k, _)| {
                if !selected.is_empty() {
                    selected.contains(&(k.part_number, k.attempt))
                } else {
                    self.parts.is_empty() || newest.get(&k.part_number) == Some(&k.attempt)
                }
            })
            .map(|(_, b)| *b)
            .collect()
    }

    /// The newest attempt of a part.
    pub fn part(&self, n: u64) -> Option<&PartMeta> {
        self.parts.iter().find(|(p, _)| *p == n).map(|(_, m)| m)
    }
}

/// Merges two sorted association lists, keeping the larger value on a tie.
fn merge_sorted<K: Ord + Clone, V: Ord + Clone>(mine: &mut Vec<(K, V)>, other: &[(K, V)]) {
    for (k, v) in other {
        match mine.binary_search_by(|(mk, _)| mk.cmp(k)) {
            Ok(i) => {
                if *v > mine[i].1 {
                    mine[i].1 = v.clone();
                }
            }
            Err(i) => mine.insert(i, (k.clone(), v.clone())),
        }
    }
}

impl Crdt for Version {
    fn merge(&mut self, other: &Self) {
        self.deleted |= other.deleted;
        if self.deleted {
            self.blocks.clear();
            self.parts.clear();
            return;
        }
        merge_sorted(&mut self.blocks, &other.blocks);
        merge_sorted(&mut self.parts, &other.parts);
    }
}

impl Entry<Uuid, Uuid> for Version {
    fn partition_key(&self) -> &Uuid {
        &self.uuid
    }
    fn sort_key(&self) -> &Uuid {
        &self.uuid
    }
    fn is_tombstone(&self) -> bool {
        self.deleted
    }
}

/// Schema of the version table; its hook queues the release of the block
/// references of a version that becomes deleted.
pub struct VersionTable {
    /// The queue of follow-up writes.
    pub cascade: std::sync::Arc<Cascade>,
}

impl TableSchema for VersionTable {
    const TABLE_NAME: &'static str = "version";
    type P = Uuid;
    type S = Uuid;
    type E = Version;
    type Filter = ();

    fn matches_filter(entry: &Version, _filter: &()) -> bool {
        !entry.deleted
    }

    fn updated(
        &self,
        tx: &mut Transaction<'_>,
        old: Option<&Version>,
        new: Option<&Version>,
    ) -> Result<(), garage_db::Error> {
        let (Some(old), Some(new)) = (old, new) else {
            return Ok(());
        };
        if old.deleted || !new.deleted || old.blocks.is_empty() {
            return Ok(());
        }
        let mut blocks: Vec<Hash> = old.blocks.iter().map(|(_, b)| b.hash).collect();
        blocks.sort();
        blocks.dedup();
        self.cascade.queue_in_tx(
            tx,
            &CascadeTask::ReleaseBlocks {
                version: new.uuid,
                blocks,
            },
        )
    }

    fn committed(&self, _old: Option<&Version>, _new: &Version) {
        self.cascade.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::crdt::laws;
    use proptest::prelude::*;

    fn block(p: u64, a: u64, o: u64) -> (VersionBlockKey, VersionBlock) {
        (
            VersionBlockKey {
                part_number: p,
                attempt: a,
                offset: o,
            },
            VersionBlock {
                hash: Hash::from([(p * 16 + a * 4 + o) as u8; 32]),
                size: 10,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn version_merge_laws(
            steps in prop::collection::vec((0usize..3, 0u64..3, 0u64..2, 0u64..2, any::<bool>(), proptest::option::of(0usize..3)), 0..12),
        ) {
            let u = Uuid::from([5; 32]);
            let b = Uuid::from([6; 32]);
            let base = Version::new(u, b, "k".into());
            let mut reps = vec![base.clone(), base.clone(), base];
            for (r, p, a, o, del, m) in steps {
                let mut upd = Version::new(u, b, "k".into());
                if del && p == 0 && a == 0 {
                    upd.deleted = true;
                } else {
                    upd.blocks.push(block(p, a, o));
                    upd.parts.push((p, PartMeta { attempt: a, etag: format!("{p}{a}"), size: 10 }));
                }
                reps[r].merge(&upd);
                if let Some(m) = m {
                    let other = reps[m].clone();
                    reps[r].merge(&other);
                }
            }
            laws::check_all(&reps);
            for v in &reps {
                prop_assert_eq!(Version::decode(&v.encode().expect("encode")), Some(v.clone()));
            }
        }
    }

    #[test]
    fn newest_attempt_is_read() {
        let mut v = Version::new(Uuid::from([1; 32]), Uuid::from([2; 32]), "k".into());
        v.blocks = vec![
            block(1, 1, 0),
            block(1, 2, 0),
            block(2, 1, 0),
            block(2, 1, 1),
        ];
        v.parts = vec![
            (
                1,
                PartMeta {
                    attempt: 2,
                    etag: "a".into(),
                    size: 10,
                },
            ),
            (
                2,
                PartMeta {
                    attempt: 1,
                    etag: "b".into(),
                    size: 20,
                },
            ),
        ];
        let all = v.read_blocks(&[]);
        assert_eq!(
            all,
            vec![block(1, 2, 0).1, block(2, 1, 0).1, block(2, 1, 1).1]
        );
        assert_eq!(
            v.read_blocks(&[(2, 1)]),
            vec![block(2, 1, 0).1, block(2, 1, 1).1]
        );
    }
}
