//! The queue of blocks to check, persistent in the database.
//!
//! Tree `block_resync_queue`: key `when (ms, u64 BE) ‖ block hash` (empty
//! value), so the first key is the next block due. A block may be queued
//! several times; checking it is idempotent. Tree `block_resync_errors`:
//! block hash → `failures (u64 BE) ‖ next try (ms, u64 BE)` for blocks whose
//! last check failed; each failure doubles the wait (1 s up to 1 h).

use std::sync::Arc;

use tokio::sync::Notify;

use garage_db::{Db, Transaction, Tree};
use garage_util::data::Hash;

/// Name of the queue tree.
pub(crate) const QUEUE_TREE: &str = "block_resync_queue";
/// Name of the error tree.
pub(crate) const ERRORS_TREE: &str = "block_resync_errors";

/// Longest wait before retrying a failing block.
const MAX_RETRY_MS: u64 = 3_600_000;

/// One due entry of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) key: Vec<u8>,
    pub(crate) hash: Hash,
}

/// What the head of the queue says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// This block is due now.
    Due(Due),
    /// The first block is due at this time (ms).
    Later(u64),
    /// Nothing queued.
    Empty,
}

/// The resync queue and its error records.
pub(crate) struct ResyncQueue {
    pub(crate) queue: Tree,
    pub(crate) errors: Tree,
    /// Woken after a commit that queued something.
    pub(crate) notify: Arc<Notify>,
}

fn queue_key(when: u64, hash: &Hash) -> Vec<u8> {
    let mut k = when.to_be_bytes().to_vec();
    k.extend_from_slice(hash.as_slice());
    k
}

impl ResyncQueue {
    pub(crate) fn new(db: &Db) -> Result<Self, garage_db::Error> {
        Ok(Self {
            queue: db.open_tree(QUEUE_TREE)?,
            errors: db.open_tree(ERRORS_TREE)?,
            notify: Arc::new(Notify::new()),
        })
    }

    /// Queues `hash` for a check at `when` inside `tx` (the caller wakes
    /// the worker after the commit).
    pub(crate) fn put_tx(
        &self,
        tx: &mut Transaction<'_>,
        when: u64,
        hash: &Hash,
    ) -> Result<(), garage_db::Error> {
        tx.insert(&self.queue, &queue_key(when, hash), &[])
    }

    /// Queues `hash` for a check at `when`, and wakes the worker.
    pub(crate) fn put(&self, when: u64, hash: &Hash) -> Result<(), garage_db::Error> {
        self.queue.insert(&queue_key(when, hash), &[])?;
        self.notify.notify_one();
        Ok(())
    }

    /// The head of the queue at time `now`.
    pub(crate) fn next(&self, now: u64) -> Result<Next, garage_db::Error> {
        loop {
            let Some((k, _)) = self.queue.first()? else {
                return Ok(Next::Empty);
            };
            let parsed = k
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .zip(k.get(8..).and_then(Hash::try_from_slice));
            let Some((when, hash)) = parsed else {
                // Not written by this code: drop it.
                self.queue.remove(&k)?;
                continue;
            };
            if when > now {
                return Ok(Next::Later(when));
            }
            return Ok(Next::Due(Due { key: k, hash }));
        }
    }

    /// Up to `limit` entries due at `now`, first due first, one per block
    /// (later entries of the same block stay queued).
    pub(crate) fn due_batch(&self, now: u64, limit: usize) -> Result<Vec<Due>, garage_db::Error> {
        let mut out: Vec<Due> = vec![];
        let end = now.saturating_add(1).to_be_bytes();
        let rows = self.queue.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(&end[..]),
            false,
            Some(limit.saturating_mul(2)),
        )?;
        for (k, _) in rows {
            let Some(hash) = k.get(8..).and_then(Hash::try_from_slice) else {
                self.queue.remove(&k)?;
                continue;
            };
            if out.iter().any(|d| d.hash == hash) {
                continue;
            }
            out.push(Due { key: k, hash });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Removes a processed entry.
    pub(crate) fn done(&self, due: &Due) -> Result<(), garage_db::Error> {
        self.queue.remove(&due.key)
    }

    /// Number of queued entries.
    pub(crate) fn len(&self) -> Result<usize, garage_db::Error> {
        self.queue.len()
    }

    /// Number of blocks whose last check failed.
    pub(crate) fn errors_len(&self) -> Result<usize, garage_db::Error> {
        self.errors.len()
    }

    /// Records a failed check of `hash` at `now`; returns when to retry.
    pub(crate) fn record_error(&self, hash: &Hash, now: u64) -> Result<u64, garage_db::Error> {
        let failures = self
            .errors
            .get(hash.as_slice())?
            .and_then(|b| b.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
            .map(u64::from_be_bytes)
            .unwrap_or(0)
            + 1;
        let wait = 1000u64
            .saturating_mul(1u64 << failures.min(20).saturating_sub(1))
            .min(MAX_RETRY_MS);
        let next = now.saturating_add(wait);
        let mut v = failures.to_be_bytes().to_vec();
        v.extend_from_slice(&next.to_be_bytes());
        self.errors.insert(hash.as_slice(), &v)?;
        Ok(next)
    }

    /// Forgets the failures of `hash` after a successful check.
    pub(crate) fn clear_error(&self, hash: &Hash) -> Result<(), garage_db::Error> {
        self.errors.remove(hash.as_slice())
    }

    /// (failures, next try) of `hash`, if its last check failed.
    pub(crate) fn error_of(&self, hash: &Hash) -> Result<Option<(u64, u64)>, garage_db::Error> {
        Ok(self
            .errors
            .get(hash.as_slice())?
            .and_then(|b| parse_error(&b)))
    }

    /// Up to `limit` failing blocks: (hash, failures, next try).
    pub(crate) fn list_errors(
        &self,
        limit: usize,
    ) -> Result<Vec<(Hash, u64, u64)>, garage_db::Error> {
        let rows = self.errors.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
            Some(limit),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let (f, n) = parse_error(&v)?;
                Some((Hash::try_from_slice(&k)?, f, n))
            })
            .collect())
    }

    /// Failures so far of `hash`.
    #[cfg(test)]
    pub(crate) fn failures(&self, hash: &Hash) -> u64 {
        self.errors
            .get(hash.as_slice())
            .ok()
            .flatten()
            .and_then(|b| b.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    }
}

fn parse_error(b: &[u8]) -> Option<(u64, u64)> {
    let f = u64::from_be_bytes(<[u8; 8]>::try_from(b.get(..8)?).ok()?);
    let n = u64::from_be_bytes(<[u8; 8]>::try_from(b.get(8..16)?).ok()?);
    Some((f, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_orders_by_time_then_hash() {
        let db = Db::memory();
        let q = ResyncQueue::new(&db).expect("queue");
        let (a, b, c) = (
            Hash::from_bytes([3; 32]),
            Hash::from_bytes([1; 32]),
            Hash::from_bytes([2; 32]),
        );
        q.put(200, &a).expect("put");
        q.put(100, &b).expect("put");
        q.put(100, &c).expect("put");
        q.put(300, &a).expect("put");
        assert_eq!(q.len().expect("len"), 4);
        assert_eq!(q.next(50).expect("next"), Next::Later(100));
        let mut order = vec![];
        while let Next::Due(d) = q.next(250).expect("next") {
            order.push(d.hash);
            q.done(&d).expect("done");
        }
        assert_eq!(order, vec![b, c, a]);
        assert_eq!(q.next(250).expect("next"), Next::Later(300));
        assert_eq!(
            q.next(300).expect("next"),
            Next::Due(Due {
                key: queue_key(300, &a),
                hash: a
            })
        );
        // A foreign key is dropped, not returned.
        q.queue.insert(b"junk", &[]).expect("junk");
        let mut seen = 0;
        while let Next::Due(d) = q.next(1000).expect("next") {
            seen += 1;
            q.done(&d).expect("done");
        }
        assert_eq!(seen, 1);
        assert_eq!(q.next(1000).expect("next"), Next::Empty);
    }

    #[test]
    fn due_batch_takes_one_entry_per_block() {
        let db = Db::memory();
        let q = ResyncQueue::new(&db).expect("queue");
        let (a, b, c) = (
            Hash::from_bytes([1; 32]),
            Hash::from_bytes([2; 32]),
            Hash::from_bytes([3; 32]),
        );
        q.put(10, &a).expect("put");
        q.put(11, &a).expect("put");
        q.put(12, &b).expect("put");
        q.put(13, &c).expect("put");
        q.put(99, &c).expect("put");
        let hashes = |v: Vec<Due>| v.into_iter().map(|d| d.hash).collect::<Vec<_>>();
        assert_eq!(hashes(q.due_batch(13, 8).expect("batch")), vec![a, b, c]);
        assert_eq!(hashes(q.due_batch(13, 2).expect("batch")), vec![a, b]);
        assert_eq!(hashes(q.due_batch(11, 8).expect("batch")), vec![a]);
        assert!(q.due_batch(9, 8).expect("batch").is_empty());
    }

    #[test]
    fn errors_back_off_exponentially() {
        let db = Db::memory();
        let q = ResyncQueue::new(&db).expect("queue");
        let h = Hash::from_bytes([9; 32]);
        assert_eq!(q.record_error(&h, 0).expect("err"), 1000);
        assert_eq!(q.record_error(&h, 0).expect("err"), 2000);
        assert_eq!(q.record_error(&h, 0).expect("err"), 4000);
        assert_eq!(q.failures(&h), 3);
        assert_eq!(q.error_of(&h).expect("get"), Some((3, 4000)));
        assert_eq!(q.list_errors(10).expect("list"), vec![(h, 3, 4000)]);
        assert_eq!(q.errors_len().expect("len"), 1);
        for _ in 0..30 {
            q.record_error(&h, 0).expect("err");
        }
        assert_eq!(q.record_error(&h, 0).expect("err"), MAX_RETRY_MS);
        q.clear_error(&h).expect("clear");
        assert_eq!(q.errors_len().expect("len"), 0);
    }
}
