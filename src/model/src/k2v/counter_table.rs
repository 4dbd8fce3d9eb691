//! Index counters: per (bucket, partition key), the number of entries,
//! conflicts, values and bytes.
//!
//! Each storage node counts its own items in a local tree, in the same
//! transaction as the item change, and queues the key. A worker pushes the
//! queued counts into the replicated counter table, where each node's
//! counts are a last-writer-wins register on `(timestamp, value)`. A reader
//! takes, per counter, the maximum over the current storage nodes (replicas
//! count the same items).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use garage_db::{Db, Transaction, Tree, TxError};
use garage_table::{Entry, Table, TableSchema, TableShardedReplication};
use garage_util::background::{Worker, WorkerState};
use garage_util::crdt::Crdt;
use garage_util::data::Uuid;
use garage_util::encode::{Migrate, NoPrevious};
use garage_util::time::Clock;

use super::item::ItemCounts;

/// Counter names, in the order the API lists them.
pub const COUNTER_NAMES: [&str; 4] = ["entries", "conflicts", "values", "bytes"];

pub use v1::CounterEntry;

mod v1 {
    use super::*;

    /// The counters of one partition key of one bucket, per node.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct CounterEntry {
        /// The bucket.
        pub bucket_id: Uuid,
        /// The K2V partition key.
        pub partition_key: String,
        /// Counter name → node → (timestamp, value).
        pub values: BTreeMap<String, BTreeMap<Uuid, (u64, i64)>>,
    }

    impl Migrate for CounterEntry {
        const VERSION_MARKER: &'static [u8] = b"K2Vcnt1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

impl CounterEntry {
    /// Counter values, keeping only `nodes` (the current storage nodes),
    /// maximum over them.
    pub fn filtered_values(&self, nodes: &[Uuid]) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for (name, per_node) in self.values.iter() {
            let v = per_node
                .iter()
                .filter(|(n, _)| nodes.contains(n))
                .map(|(_, (_, v))| *v)
                .max()
                .unwrap_or(0);
            out.insert(name.clone(), v);
        }
        out
    }
}

impl Crdt for CounterEntry {
    fn merge(&mut self, other: &Self) {
        for (name, per_node) in other.values.iter() {
            let mine = self.values.entry(name.clone()).or_default();
            for (node, tv) in per_node.iter() {
                let e = mine.entry(*node).or_insert(*tv);
                // A true last-writer-wins on (timestamp, value).
                if *tv > *e {
                    *e = *tv;
                }
            }
        }
    }
}

impl Entry<Uuid, String> for CounterEntry {
    fn partition_key(&self) -> &Uuid {
        &self.bucket_id
    }
    fn sort_key(&self) -> &String {
        &self.partition_key
    }
    fn is_tombstone(&self) -> bool {
        self.values
            .values()
            .all(|per_node| per_node.values().all(|(_, v)| *v == 0))
    }
}

/// Schema of the replicated counter table.
pub struct CounterTable;

impl TableSchema for CounterTable {
    const TABLE_NAME: &'static str = "k2v_index_counter";
    type P = Uuid;
    type S = String;
    type E = CounterEntry;
    type Filter = ();

    fn matches_filter(_entry: &CounterEntry, _filter: &()) -> bool {
        true
    }
}

/// The replicated counter table type.
pub type CounterTableT = Table<CounterTable, TableShardedReplication>;

/// This node's counts of one (bucket, partition key): per counter of
/// [`COUNTER_NAMES`], (timestamp, value). Stored as 4 × (u64 BE, i64 BE):
/// fixed size, no field names, since it is rewritten on every item change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LocalCounts([(u64, i64); 4]);

impl LocalCounts {
    const LEN: usize = 64;

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        let mut out = [(0u64, 0i64); 4];
        for (i, c) in b.chunks_exact(16).enumerate() {
            let mut ts = [0u8; 8];
            let mut v = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            v.copy_from_slice(&c[8..]);
            out[i] = (u64::from_be_bytes(ts), i64::from_be_bytes(v));
        }
        Some(Self(out))
    }

    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        for (i, (ts, v)) in self.0.iter().enumerate() {
            out[i * 16..i * 16 + 8].copy_from_slice(&ts.to_be_bytes());
            out[i * 16 + 8..i * 16 + 16].copy_from_slice(&v.to_be_bytes());
        }
        out
    }
}

thread_local! {
    /// Counter changes collected during a deferred transaction, by row key.
    static DEFERRED: std::cell::RefCell<Option<BTreeMap<Vec<u8>, [i64; 4]>>> =
        const { std::cell::RefCell::new(None) };
}

/// Ends deferred counting on this thread when dropped (also on errors, so
/// later transactions of the thread count immediately again).
pub struct DeferGuard(());

impl Drop for DeferGuard {
    fn drop(&mut self) {
        DEFERRED.with(|d| *d.borrow_mut() = None);
    }
}

/// This node's local counters and the queue that feeds the counter table.
pub struct IndexCounter {
    this_node: Uuid,
    clock: Clock,
    local: Tree,
    queue: Tree,
    db: Db,
    table: OnceLock<Arc<CounterTableT>>,
    notify: Notify,
}

fn counter_key(bucket: &Uuid, pk: &str) -> Vec<u8> {
    let mut k = bucket.as_slice().to_vec();
    k.extend_from_slice(pk.as_bytes());
    k
}

impl IndexCounter {
    /// Opens the local trees.
    pub fn new(db: &Db, this_node: Uuid, clock: Clock) -> Result<Arc<Self>, garage_db::Error> {
        Ok(Arc::new(Self {
            this_node,
            clock,
            local: db.open_tree("k2v_local_counter")?,
            queue: db.open_tree("k2v_local_counter:queue")?,
            db: db.clone(),
            table: OnceLock::new(),
            notify: Notify::new(),
        }))
    }

    /// Connects the replicated table (built after this).
    pub fn set_table(&self, t: Arc<CounterTableT>) {
        let _ = self.table.set(t);
    }

    /// Adds `after - before` to the local counts of (bucket, pk), in `tx`
    /// (or, inside [`Self::defer`], to this thread's pending sums).
    pub fn count_in_tx(
        &self,
        tx: &mut Transaction<'_>,
        bucket: &Uuid,
        pk: &str,
        before: ItemCounts,
        after: ItemCounts,
    ) -> Result<(), garage_db::Error> {
        let deltas = [
            after.entries - before.entries,
            after.conflicts - before.conflicts,
            after.values - before.values,
            after.bytes - before.bytes,
        ];
        if deltas.iter().all(|d| *d == 0) {
            return Ok(());
        }
        let key = counter_key(bucket, pk);
        let deferred = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
            Some(m) => {
                let sum = m.entry(key.clone()).or_insert([0; 4]);
                for (s, d) in sum.iter_mut().zip(deltas) {
                    *s += d;
                }
                true
            }
            None => false,
        });
        if deferred {
            return Ok(());
        }
        self.apply_in_tx(tx, &key, deltas)
    }

    /// Collects the counter changes made on this thread until the guard is
    /// dropped; [`Self::flush_deferred`] applies them, once per counter row.
    /// For transactions that change many items of few partition keys.
    pub fn defer(&self) -> DeferGuard {
        DEFERRED.with(|d| *d.borrow_mut() = Some(BTreeMap::new()));
        DeferGuard(())
    }

    /// Applies the changes collected since [`Self::defer`] in `tx`.
    pub fn flush_deferred(&self, tx: &mut Transaction<'_>) -> Result<(), garage_db::Error> {
        let sums = DEFERRED.with(|d| d.borrow_mut().as_mut().map(std::mem::take));
        for (key, deltas) in sums.unwrap_or_default() {
            if deltas.iter().any(|d| *d != 0) {
                self.apply_in_tx(tx, &key, deltas)?;
            }
        }
        Ok(())
    }

    fn apply_in_tx(
        &self,
        tx: &mut Transaction<'_>,
        key: &[u8],
        deltas: [i64; 4],
    ) -> Result<(), garage_db::Error> {
        let mut counts = match tx.get(&self.local, key)? {
            Some(b) => LocalCounts::decode(&b).ok_or_else(|| garage_db::Error::Corrupted {
                engine: "k2v counters",
                message: format!("local counter entry of {} bytes", b.len()),
            })?,
            None => LocalCounts::default(),
        };
        let now = self.clock.now_ms();
        for (e, d) in counts.0.iter_mut().zip(deltas) {
            e.0 = std::cmp::max(e.0 + 1, now);
            e.1 += d;
        }
        let enc = counts.encode();
        tx.insert(&self.local, key, &enc)?;
        tx.insert(&self.queue, key, &enc)?;
        Ok(())
    }

    /// Wakes the propagation worker.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// The worker pushing local counts to the replicated table.
    pub fn worker(self: &Arc<Self>) -> CounterPropagationWorker {
        CounterPropagationWorker {
            counter: self.clone(),
        }
    }

    async fn propagate_batch(&self) -> Result<WorkerState, garage_table::Error> {
        let Some(table) = self.table.get() else {
            return Ok(WorkerState::Idle);
        };
        let rows = self.queue.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
            Some(256),
        )?;
        if rows.is_empty() {
            return Ok(WorkerState::Idle);
        }
        let mut entries = vec![];
        for (k, v) in rows.iter() {
            let (Some(bucket), Ok(pk)) = (
                Uuid::try_from_slice(&k[..std::cmp::min(32, k.len())]),
                std::str::from_utf8(k.get(32..).unwrap_or(&[])),
            ) else {
                tracing::warn!("dropping a malformed counter queue entry");
                self.queue.remove(k)?;
                continue;
            };
            let Some(counts) = LocalCounts::decode(v) else {
                tracing::warn!("dropping a malformed counter queue entry");
                self.queue.remove(k)?;
                continue;
            };
            let mut values = BTreeMap::new();
            for (name, tv) in COUNTER_NAMES.iter().zip(counts.0) {
                values.insert(name.to_string(), BTreeMap::from([(self.this_node, tv)]));
            }
            entries.push(CounterEntry {
                bucket_id: bucket,
                partition_key: pk.to_string(),
                values,
            });
        }
        table.insert_many(&entries).await?;
        // One transaction for the whole batch (a row changed meanwhile by a
        // commit stays queued for the next batch).
        let r: Result<(), TxError<()>> = self.db.transaction(|tx| {
            for (k, v) in rows.iter() {
                if tx.get(&self.queue, k)?.as_deref() == Some(v.as_slice()) {
                    tx.remove(&self.queue, k)?;
                }
            }
            Ok(())
        });
        if let Err(TxError::Db(e)) = r {
            return Err(e.into());
        }
        Ok(WorkerState::Busy)
    }
}

/// Pushes queued local counts into the counter table.
pub struct CounterPropagationWorker {
    counter: Arc<IndexCounter>,
}

#[async_trait]
impl Worker for CounterPropagationWorker {
    fn name(&self) -> String {
        "k2v index counter propagation".into()
    }
    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        self.counter
            .propagate_batch()
            .await
            .map_err(|e| e.to_string())
    }
    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = self.counter.notify.notified() => (),
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => (),
        }
        // Let a burst of writes accumulate into one batch.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::crdt::laws;
    use proptest::prelude::*;

    fn entry(vals: Vec<(u8, u8, u64, i64)>) -> CounterEntry {
        let mut e = CounterEntry {
            bucket_id: Uuid::default(),
            partition_key: "pk".into(),
            values: BTreeMap::new(),
        };
        for (name, node, ts, v) in vals {
            e.merge(&CounterEntry {
                bucket_id: Uuid::default(),
                partition_key: "pk".into(),
                values: BTreeMap::from([(
                    format!("c{name}"),
                    BTreeMap::from([(Uuid::from_bytes([node; 32]), (ts, v))]),
                )]),
            });
        }
        e
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        // Each replica receives a few per-node counter pushes, as the
        // counter worker sends them.
        fn counter_laws(
            pushes in prop::collection::vec(
                prop::collection::vec((0u8..2, 0u8..3, 0u64..4, -2i64..3), 0..6),
                1..6,
            ),
        ) {
            let entries: Vec<CounterEntry> = pushes.iter().cloned().map(entry).collect();
            let all = laws::check_all(&entries);
            // Per counter and node: the newest push (the larger value on a tie).
            for (name, node, ts, v) in pushes.iter().flatten() {
                let got = all.values[&format!("c{name}")][&Uuid::from_bytes([*node; 32])];
                prop_assert!(got >= (*ts, *v));
            }
            let enc = all.encode().expect("encode");
            prop_assert_eq!(CounterEntry::decode(&enc), Some(all));
        }
    }

    #[test]
    fn deferred_counts_are_summed_and_flushed_once() {
        let db = Db::memory();
        let c = IndexCounter::new(&db, Uuid::from_bytes([1; 32]), Clock::manual(1000))
            .expect("counter");
        let b = Uuid::from_bytes([2; 32]);
        let one = ItemCounts {
            entries: 1,
            conflicts: 0,
            values: 1,
            bytes: 5,
        };
        let r: Result<(), TxError<()>> = db.transaction(|tx| {
            let _g = c.defer();
            c.count_in_tx(tx, &b, "pk", ItemCounts::default(), one)?;
            c.count_in_tx(tx, &b, "pk", ItemCounts::default(), one)?;
            c.count_in_tx(tx, &b, "other", ItemCounts::default(), one)?;
            // nothing written before the flush
            assert!(tx.get(&c.local, &counter_key(&b, "pk"))?.is_none());
            c.flush_deferred(tx)?;
            Ok(())
        });
        r.expect("tx");
        let row = c
            .local
            .get(&counter_key(&b, "pk"))
            .expect("get")
            .expect("row");
        let counts = LocalCounts::decode(&row).expect("decode");
        assert_eq!(counts.0.map(|(_, v)| v), [2, 0, 2, 10]);
        assert_eq!(c.queue.len().expect("len"), 2);
        // after the guard, counting is immediate again
        let r: Result<(), TxError<()>> = db.transaction(|tx| {
            c.count_in_tx(tx, &b, "pk", one, ItemCounts::default())?;
            Ok(())
        });
        r.expect("tx");
        let row = c
            .local
            .get(&counter_key(&b, "pk"))
            .expect("get")
            .expect("row");
        assert_eq!(LocalCounts::decode(&row).expect("decode").0[0].1, 1);
    }

    #[test]
    fn local_counts_round_trip() {
        let c = LocalCounts([(1, -1), (u64::MAX, i64::MIN), (0, 0), (7, i64::MAX)]);
        assert_eq!(LocalCounts::decode(&c.encode()), Some(c));
        assert_eq!(LocalCounts::decode(&[0u8; 63]), None);
    }

    #[test]
    fn newer_timestamp_wins_even_with_smaller_value() {
        let mut a = entry(vec![(0, 1, 5, 10)]);
        a.merge(&entry(vec![(0, 1, 6, 3)]));
        let n = [Uuid::from_bytes([1; 32])];
        assert_eq!(a.filtered_values(&n)["c0"], 3);
        assert_eq!(a.filtered_values(&[])["c0"], 0);
    }
}
