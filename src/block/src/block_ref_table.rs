//! The block reference table: which object versions use which block.
//!
//! One entry per (block, version): partition key = the block hash, so the
//! entry lives on exactly the nodes that must store the block, and sort key
//! = the version's uuid. `deleted` only ever goes from false to true (a
//! merge keeps true), so once a version let go of a block it never takes
//! it back. Deleted entries are tombstones, collected by the table's GC.
//!
//! The `updated` hook runs in the transaction of every local change, on
//! each node holding the partition, and keeps the local reference count of
//! the block (`rc`): a block that gains its first live reference is
//! queued for a check now (it may be missing here), one that loses its last
//! is queued for a check after the deletion delay.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use garage_db::Transaction;
use garage_table::{Entry, TableSchema};
use garage_util::crdt::Crdt;
use garage_util::data::{Hash, Uuid};
use garage_util::time::Clock;

use crate::rc::{BlockRc, Transition};
use crate::resync::ResyncQueue;

mod v1 {
    use super::*;
    use garage_util::encode::{Migrate, NoPrevious};

    /// One reference from an object version to a block.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BlockRef {
        /// The block (partition key).
        pub block: Hash,
        /// The version using it (sort key).
        pub version: Uuid,
        /// The version no longer uses the block (true forever once set).
        pub deleted: bool,
    }

    impl Migrate for BlockRef {
        const VERSION_MARKER: &'static [u8] = b"K2Vbref1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

pub use v1::BlockRef;

impl Crdt for BlockRef {
    fn merge(&mut self, other: &Self) {
        self.deleted = self.deleted || other.deleted;
    }
}

impl Entry<Hash, Uuid> for BlockRef {
    fn partition_key(&self) -> &Hash {
        &self.block
    }
    fn sort_key(&self) -> &Uuid {
        &self.version
    }
    fn is_tombstone(&self) -> bool {
        self.deleted
    }
}

/// Filter of range reads on the block reference table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BlockRefFilter {
    /// Only references still in use.
    Live,
    /// Every reference, deleted ones included.
    Any,
}

/// Schema of the block reference table (`block_ref`); it carries the
/// local reference counts its hook maintains.
pub struct BlockRefTable {
    pub(crate) rc: Arc<BlockRc>,
    pub(crate) resync: Arc<ResyncQueue>,
    pub(crate) clock: Clock,
    /// How long an unreferenced block is kept (ms).
    pub(crate) delete_delay_ms: u64,
    /// How long after its first reference a block is checked (ms): the
    /// write of its data normally follows the reference.
    pub(crate) live_check_delay_ms: u64,
}

impl TableSchema for BlockRefTable {
    const TABLE_NAME: &'static str = "block_ref";
    type P = Hash;
    type S = Uuid;
    type E = BlockRef;
    type Filter = BlockRefFilter;

    fn matches_filter(entry: &BlockRef, filter: &BlockRefFilter) -> bool {
        match filter {
            BlockRefFilter::Live => !entry.deleted,
            BlockRefFilter::Any => true,
        }
    }

    fn updated(
        &self,
        tx: &mut Transaction<'_>,
        old: Option<&BlockRef>,
        new: Option<&BlockRef>,
    ) -> Result<(), garage_db::Error> {
        let live = |e: Option<&BlockRef>| e.is_some_and(|e| !e.deleted);
        let delta: i64 = match (live(old), live(new)) {
            (false, true) => 1,
            (true, false) => -1,
            _ => return Ok(()),
        };
        let Some(block) = new.or(old).map(|e| e.block) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        match self.rc.add_tx(tx, &block, delta, now)? {
            Transition::BecameLive => {
                self.resync
                    .put_tx(tx, now.saturating_add(self.live_check_delay_ms), &block)?;
            }
            Transition::BecameZero => {
                self.resync
                    .put_tx(tx, now.saturating_add(self.delete_delay_ms), &block)?;
            }
            Transition::None => (),
        }
        Ok(())
    }

    fn committed(&self, _old: Option<&BlockRef>, _new: &BlockRef) {
        self.resync.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rc::Rc;
    use crate::resync::Next;
    use garage_db::Db;
    use garage_util::encode::Migrate;

    fn schema(db: &Db, clock: Clock) -> BlockRefTable {
        BlockRefTable {
            rc: Arc::new(BlockRc::new(db).expect("rc")),
            resync: Arc::new(ResyncQueue::new(db).expect("queue")),
            clock,
            delete_delay_ms: 1000,
            live_check_delay_ms: 0,
        }
    }

    fn r(block: u8, version: u8, deleted: bool) -> BlockRef {
        BlockRef {
            block: Hash::from_bytes([block; 32]),
            version: Uuid::from_bytes([version; 32]),
            deleted,
        }
    }

    fn run(db: &Db, s: &BlockRefTable, old: Option<&BlockRef>, new: Option<&BlockRef>) {
        db.transaction(|tx| {
            s.updated(tx, old, new)?;
            Ok::<_, garage_db::TxError<garage_db::Error>>(())
        })
        .expect("tx");
    }

    #[test]
    fn merge_keeps_deleted_and_encoding_is_versioned() {
        let mut a = r(1, 2, false);
        a.merge(&r(1, 2, true));
        assert!(a.deleted);
        a.merge(&r(1, 2, false));
        assert!(a.deleted, "deleted is forever");
        let enc = a.encode().expect("encode");
        assert!(enc.starts_with(b"K2Vbref1"));
        assert_eq!(BlockRef::decode(&enc), Some(a));
        assert_eq!(BlockRef::decode(b"garbage"), None);
    }

    #[test]
    fn hook_counts_live_references_and_queues_checks() {
        let db = Db::memory();
        let clock = Clock::manual(10_000);
        let s = schema(&db, clock.clone());
        let h = Hash::from_bytes([1; 32]);
        let (v1, v2) = (r(1, 1, false), r(1, 2, false));

        // First live reference: counted, a check queued now.
        run(&db, &s, None, Some(&v1));
        assert_eq!(s.rc.get(&h).expect("rc"), Some(Rc::Live(1)));
        assert!(matches!(s.resync.next(10_000).expect("next"), Next::Due(d) if d.hash == h));
        s.resync
            .queue
            .remove(&{
                let mut k = 10_000u64.to_be_bytes().to_vec();
                k.extend_from_slice(h.as_slice());
                k
            })
            .expect("rm");

        // Same state again (a merge that changed nothing live), and a
        // second version: counted, nothing new queued for the second.
        run(&db, &s, Some(&v1), Some(&v1));
        run(&db, &s, None, Some(&v2));
        assert_eq!(s.rc.get(&h).expect("rc"), Some(Rc::Live(2)));
        assert_eq!(s.resync.len().expect("len"), 0);

        // Deleting both: zero since now, a check queued after the delay.
        clock.advance(5);
        run(&db, &s, Some(&v1), Some(&r(1, 1, true)));
        run(&db, &s, Some(&v2), Some(&r(1, 2, true)));
        assert_eq!(s.rc.get(&h).expect("rc"), Some(Rc::ZeroSince(10_005)));
        assert_eq!(s.resync.next(10_005).expect("next"), Next::Later(11_005));

        // GC removing a tombstone changes nothing.
        run(&db, &s, Some(&r(1, 1, true)), None);
        assert_eq!(s.rc.get(&h).expect("rc"), Some(Rc::ZeroSince(10_005)));

        // A tombstone arriving first (never live here) counts nothing.
        let other = Hash::from_bytes([7; 32]);
        run(&db, &s, None, Some(&r(7, 1, true)));
        assert_eq!(s.rc.get(&other).expect("rc"), None);

        // Anti-entropy removing a live reference (hand-off) drops the count.
        run(&db, &s, None, Some(&r(7, 2, false)));
        assert_eq!(s.rc.get(&other).expect("rc"), Some(Rc::Live(1)));
        run(&db, &s, Some(&r(7, 2, false)), None);
        assert_eq!(s.rc.get(&other).expect("rc"), Some(Rc::ZeroSince(10_005)));
    }
}
