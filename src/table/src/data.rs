//! Local storage of one table.
//!
//! Entries are stored under `hash(partition key) ‖ sort key`. Every change
//! happens in one transaction that also records the new value's hash in the
//! Merkle "todo" tree (for anti-entropy) and runs the schema's `updated`
//! hook, so derived data (counters) never drifts from the entries.

use std::ops::Bound;
use std::sync::Arc;

use garage_db::{Db, Transaction, Tree, TxError};
use garage_util::crdt::Crdt;
use garage_util::data::{blake2sum, Hash};
use garage_util::encode::Migrate;
use garage_util::time::Clock;

use crate::error::Error;
use crate::schema::{Entry, PartitionKey, SortKey, TableSchema};

/// The local part of a table.
pub struct TableData<F: TableSchema> {
    /// The schema (hooks, filters).
    pub(crate) schema: Arc<F>,
    /// The database.
    pub(crate) db: Db,
    /// Entries.
    pub(crate) store: Tree,
    /// Keys whose Merkle leaf must be recomputed (empty values).
    pub(crate) merkle_todo: Tree,
    /// Tombstones to collect: `stored at (ms, u64 BE) ‖ storage key` →
    /// hash of the tombstone (None: this table keeps its tombstones).
    pub(crate) gc_todo: Option<Tree>,
    /// The clock stamping the GC queue.
    pub(crate) clock: Clock,
    generation: std::sync::atomic::AtomicU64,
    merges: MergeQueue<F::E>,
}

/// Peers' updates waiting for the next grouped merge transaction.
struct MergeQueue<E> {
    pending: std::sync::Mutex<Vec<PendingMerge<E>>>,
    /// Whether a task is merging (it takes whatever is pending when done).
    running: std::sync::atomic::AtomicBool,
}

type PendingMerge<E> = (Vec<E>, tokio::sync::oneshot::Sender<Result<(), String>>);

/// The most entries merged by one grouped transaction.
const MERGE_GROUP_MAX: usize = 4096;

/// One transaction over a table's entries (see [`TableData::transact`]).
pub struct TableTx<'a, 'b, F: TableSchema> {
    data: &'a TableData<F>,
    tx: &'a mut Transaction<'b>,
    changes: Vec<(Option<F::E>, F::E)>,
}

impl<'b, F: TableSchema> TableTx<'_, 'b, F> {
    /// The entry at (`pk`, `sk`), with this transaction's writes.
    pub fn get(&self, pk: &F::P, sk: &F::S) -> Result<Option<F::E>, TxError<Error>> {
        let key = tree_key(&pk.hash(), sk.sort_key());
        match self.tx.get(&self.data.store, &key)? {
            Some(b) => Ok(Some(self.data.decode(&b).map_err(TxError::Abort)?)),
            None => Ok(None),
        }
    }

    /// Stores `new` in place of `old` (what [`Self::get`] returned).
    pub fn put(&mut self, old: Option<F::E>, new: F::E) -> Result<(), TxError<Error>> {
        let key = tree_key(&new.partition_key().hash(), new.sort_key().sort_key());
        self.data.store_in_tx(self.tx, &key, old.as_ref(), &new)?;
        self.changes.push((old, new));
        Ok(())
    }

    /// The underlying transaction, for the caller's own trees.
    pub fn tx(&mut self) -> &mut Transaction<'b> {
        self.tx
    }
}

/// A stored (storage key, encoded entry) pair.
pub type StoredRow = (Vec<u8>, Vec<u8>);

/// The storage key of an entry.
pub fn tree_key(hash: &Hash, sort_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + sort_key.len());
    k.extend_from_slice(hash.as_slice());
    k.extend_from_slice(sort_key);
    k
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Bounds on the sort keys of a range read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SortRange {
    /// Lower bound.
    pub lo: Bound<Vec<u8>>,
    /// Upper bound.
    pub hi: Bound<Vec<u8>>,
}

impl SortRange {
    /// Every key of the partition.
    pub fn all() -> Self {
        Self {
            lo: Bound::Unbounded,
            hi: Bound::Unbounded,
        }
    }
}

/// The first key after every key starting with `prefix`, if any.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

impl<F: TableSchema> TableData<F> {
    /// Opens the table's trees; `collect_tombstones` queues every stored
    /// tombstone for garbage collection.
    pub fn new(
        schema: Arc<F>,
        db: Db,
        clock: Clock,
        collect_tombstones: bool,
    ) -> Result<Arc<Self>, Error> {
        let store = db.open_tree(&format!("{}:table", F::TABLE_NAME))?;
        let merkle_todo = db.open_tree(&format!("{}:merkle_todo", F::TABLE_NAME))?;
        let gc_todo = if collect_tombstones {
            Some(db.open_tree(&format!("{}:gc_todo", F::TABLE_NAME))?)
        } else {
            None
        };
        Ok(Arc::new(Self {
            schema,
            db,
            store,
            merkle_todo,
            gc_todo,
            clock,
            generation: std::sync::atomic::AtomicU64::new(0),
            merges: MergeQueue {
                pending: std::sync::Mutex::new(Vec::new()),
                running: std::sync::atomic::AtomicBool::new(false),
            },
        }))
    }

    fn decode(&self, bytes: &[u8]) -> Result<F::E, Error> {
        F::E::decode(bytes).ok_or(Error::Corrupted {
            table: F::TABLE_NAME,
        })
    }

    /// Reads one entry's encoded bytes.
    pub fn read_entry(&self, hash: &Hash, sort_key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.store.get(&tree_key(hash, sort_key))?)
    }

    /// Reads one entry.
    pub fn get(&self, pk: &F::P, sk: &F::S) -> Result<Option<F::E>, Error> {
        match self.read_entry(&pk.hash(), sk.sort_key())? {
            Some(b) => Ok(Some(self.decode(&b)?)),
            None => Ok(None),
        }
    }

    /// Reads the entries of one partition whose sort keys are within
    /// `range`, ascending (or descending when `reverse`), keeping those that
    /// pass `filter`, at most `limit`.
    pub fn read_range(
        &self,
        hash: &Hash,
        range: &SortRange,
        filter: Option<&F::Filter>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<F::E>, Error> {
        let part_end = prefix_end(hash.as_slice());
        let full = |b: &Bound<Vec<u8>>, low: bool| -> Bound<Vec<u8>> {
            match b {
                Bound::Included(k) => Bound::Included(tree_key(hash, k)),
                Bound::Excluded(k) => Bound::Excluded(tree_key(hash, k)),
                Bound::Unbounded if low => Bound::Included(tree_key(hash, &[])),
                Bound::Unbounded => match &part_end {
                    Some(pe) => Bound::Excluded(pe.clone()),
                    None => Bound::Unbounded,
                },
            }
        };
        let mut lo = full(&range.lo, true);
        let mut hi = full(&range.hi, false);
        let mut out = Vec::new();
        while out.len() < limit {
            let page = std::cmp::max(limit - out.len(), 16).min(1024);
            let rows = self
                .store
                .range(as_ref(&lo), as_ref(&hi), reverse, Some(page))?;
            let n = rows.len();
            for (k, v) in rows.into_iter() {
                let e = self.decode(&v)?;
                if filter.map(|f| F::matches_filter(&e, f)).unwrap_or(true) {
                    out.push(e);
                    if out.len() >= limit {
                        break;
                    }
                }
                if reverse {
                    hi = Bound::Excluded(k);
                } else {
                    lo = Bound::Excluded(k);
                }
            }
            if n < page {
                break;
            }
        }
        Ok(out)
    }

    /// Stored (storage key, encoded entry) pairs in key order, starting
    /// after `after`, at most `limit`.
    pub fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<StoredRow>, Error> {
        let lo = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        Ok(self.store.range(lo, Bound::Unbounded, false, Some(limit))?)
    }

    /// Stored rows of one partition (by the first byte of the partition
    /// hash), in key order, starting after `after`, at most `limit`.
    pub fn scan_partition(
        &self,
        partition: u8,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<StoredRow>, Error> {
        let first = [partition];
        let lo = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Included(&first[..]),
        };
        let next = partition.checked_add(1).map(|n| [n]);
        let hi = match &next {
            Some(n) => Bound::Excluded(&n[..]),
            None => Bound::Unbounded,
        };
        Ok(self.store.range(lo, hi, false, Some(limit))?)
    }

    /// Merges an incoming entry into the local copy. Returns the new value
    /// if anything changed.
    pub fn update_entry(&self, entry: &F::E) -> Result<Option<F::E>, Error> {
        Ok(self
            .merge_entries(std::slice::from_ref(entry))?
            .into_iter()
            .next()
            .flatten())
    }

    /// Merges entries into the local copies in ONE transaction; for each,
    /// the new value if it changed.
    pub fn merge_entries(&self, entries: &[F::E]) -> Result<Vec<Option<F::E>>, Error> {
        let (changed, mut written) = self.transact(|t| {
            let mut changed = Vec::with_capacity(entries.len());
            for entry in entries {
                let old = t.get(entry.partition_key(), entry.sort_key())?;
                let new = match &old {
                    Some(o) => {
                        let mut m = o.clone();
                        m.merge(entry);
                        m
                    }
                    None => entry.clone(),
                };
                if old.as_ref() == Some(&new) {
                    changed.push(false);
                    continue;
                }
                t.put(old, new)?;
                changed.push(true);
            }
            Ok(changed)
        })?;
        let mut written = written.drain(..);
        Ok(changed
            .into_iter()
            .map(|c| if c { written.next() } else { None })
            .collect())
    }

    /// A counter raised after every committed local change: caches of
    /// entries compare it to know when to refresh.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump_generation(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Writes `new` at `key` inside `tx`: entry, Merkle todo, GC queue and
    /// the hook.
    fn store_in_tx(
        &self,
        tx: &mut Transaction<'_>,
        key: &[u8],
        old: Option<&F::E>,
        new: &F::E,
    ) -> Result<(), TxError<Error>> {
        let enc = new.encode().map_err(|e| {
            TxError::Abort(Error::Encode {
                table: F::TABLE_NAME,
                message: e.to_string(),
            })
        })?;
        tx.insert(&self.store, key, &enc)?;
        // An empty value marks the key dirty: the Merkle updater hashes the
        // stored value when it processes the key (no hash on the write path).
        tx.insert(&self.merkle_todo, key, &[])?;
        if let (Some(gc), true) = (&self.gc_todo, new.is_tombstone()) {
            let mut qk = self.clock.now_ms().to_be_bytes().to_vec();
            qk.extend_from_slice(key);
            tx.insert(gc, &qk, blake2sum(&enc).as_slice())?;
        }
        self.schema.updated(tx, old, Some(new))?;
        Ok(())
    }

    /// Runs `body` in ONE transaction of the table's database: `body` reads
    /// and writes entries through the [`TableTx`] (each write stores the
    /// entry, marks it for the Merkle updater, queues a tombstone for GC and
    /// runs the schema's `updated` hook, all in the transaction) and may
    /// write the caller's own trees through [`TableTx::tx`]. After the
    /// commit, the schema's `committed` hook runs for every written entry.
    /// Returns `body`'s result and the written entries, in write order.
    /// `body` may run more than once (engines retry on conflict).
    pub fn transact<T>(
        &self,
        body: impl Fn(&mut TableTx<'_, '_, F>) -> Result<T, TxError<Error>>,
    ) -> Result<(T, Vec<F::E>), Error> {
        let res = self.db.transaction(|tx| {
            let mut t = TableTx {
                data: self,
                tx,
                changes: vec![],
            };
            let out = body(&mut t)?;
            Ok((out, t.changes))
        });
        let (out, changes) = match res {
            Ok(c) => c,
            Err(TxError::Abort(e)) => return Err(e),
            Err(TxError::Db(e)) => return Err(e.into()),
        };
        if !changes.is_empty() {
            self.bump_generation();
        }
        let mut written = Vec::with_capacity(changes.len());
        for (old, new) in changes {
            self.schema.committed(old.as_ref(), &new);
            written.push(new);
        }
        Ok((out, written))
    }

    /// Deletes the entries at `keys` whose stored value still hashes to the
    /// given hash, in one transaction (Merkle todo and hook included);
    /// returns how many were deleted.
    pub fn delete_if_equal_hash(&self, keys: &[(Vec<u8>, Hash)]) -> Result<usize, Error> {
        let res = self.db.transaction(|tx| {
            let mut deleted = vec![];
            for (key, h) in keys {
                let Some(v) = tx.get(&self.store, key)? else {
                    continue;
                };
                if blake2sum(&v) != *h {
                    continue;
                }
                let old = self.decode(&v).map_err(TxError::Abort)?;
                tx.remove(&self.store, key)?;
                tx.insert(&self.merkle_todo, key, &[])?;
                self.schema.updated(tx, Some(&old), None)?;
                deleted.push(());
            }
            Ok(deleted.len())
        });
        match res {
            Ok(n) => {
                if n > 0 {
                    self.bump_generation();
                }
                Ok(n)
            }
            Err(TxError::Abort(e)) => Err(e),
            Err(TxError::Db(e)) => Err(e.into()),
        }
    }

    /// Merges a batch of encoded entries (from a peer) in one transaction.
    pub fn update_many(&self, entries: &[Vec<u8>]) -> Result<(), Error> {
        let decoded = entries
            .iter()
            .map(|b| self.decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        self.merge_entries(&decoded)?;
        Ok(())
    }

    /// Merges a batch of encoded entries (from a peer), grouped with the
    /// batches of other requests arriving meanwhile into one transaction,
    /// on a blocking thread: under load, replicas take many small updates
    /// (one per write on the coordinator), and one write transaction each
    /// would serialize them behind the database's single writer.
    pub async fn update_many_grouped(self: &Arc<Self>, entries: &[Vec<u8>]) -> Result<(), Error> {
        let decoded = entries
            .iter()
            .map(|b| self.decode(b))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        lock(&self.merges.pending).push((decoded, tx));
        self.start_merging();
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Merge { message }),
            Err(_) => Err(Error::Merge {
                message: "the grouped merge was abandoned".into(),
            }),
        }
    }

    /// Starts a merging task unless one runs.
    fn start_merging(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.merges.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let group = {
                    let mut pending = lock(&me.merges.pending);
                    let mut n = 0;
                    let take = pending
                        .iter()
                        .take_while(|(e, _)| {
                            n += e.len();
                            n <= MERGE_GROUP_MAX || n == e.len()
                        })
                        .count();
                    pending.drain(..take).collect::<Vec<_>>()
                };
                if group.is_empty() {
                    me.merges.running.store(false, Ordering::Release);
                    // A batch queued after the check above and before the
                    // flag dropped saw a running merger: take it too.
                    if lock(&me.merges.pending).is_empty()
                        || me.merges.running.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                    continue;
                }
                let me2 = me.clone();
                let done = garage_util::background::spawn_blocking(move || {
                    let mut all: Vec<F::E> = Vec::new();
                    let mut waiting = Vec::with_capacity(group.len());
                    for (entries, tx) in group {
                        all.extend(entries);
                        waiting.push(tx);
                    }
                    let r = me2
                        .merge_entries(&all)
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    for tx in waiting {
                        let _ = tx.send(r.clone());
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(table = F::TABLE_NAME, error = %e, "grouped merge failed");
                }
            }
        });
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_works() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_peer_updates_are_merged_in_groups() {
        use crate::schema::EmptyKey;
        use crate::test_schema::E;
        use garage_util::encode::Migrate;

        let data = crate::test_schema::data();
        // 64 concurrent requests of 25 updates over 10 keys: every update
        // lands, and the merge (max) sees all of them.
        let tasks = (0..64u64).map(|r| {
            let data = data.clone();
            tokio::spawn(async move {
                let batch: Vec<Vec<u8>> = (0..25u64)
                    .map(|i| {
                        let e = E {
                            k: format!("k{}", (r + i) % 10),
                            v: r * 100 + i,
                        };
                        e.encode().expect("encode")
                    })
                    .collect();
                data.update_many_grouped(&batch).await
            })
        });
        for r in futures::future::join_all(tasks).await {
            r.expect("task").expect("merged");
        }
        for k in 0..10u64 {
            let want = (0..64u64)
                .flat_map(|r| (0..25u64).map(move |i| (r, i)))
                .filter(|(r, i)| (r + i) % 10 == k)
                .map(|(r, i)| r * 100 + i)
                .max();
            let got = data.get(&EmptyKey, &format!("k{k}")).expect("get");
            assert_eq!(got.map(|e| e.v), want, "k{k}");
        }
        // A batch with an undecodable entry is refused whole.
        let good = E {
            k: "new".into(),
            v: 1,
        }
        .encode()
        .expect("encode");
        let r = data.update_many_grouped(&[good, b"garbage".to_vec()]).await;
        assert!(matches!(r, Err(Error::Corrupted { .. })), "{r:?}");
        assert_eq!(data.get(&EmptyKey, &"new".to_string()).expect("get"), None);
    }
}
