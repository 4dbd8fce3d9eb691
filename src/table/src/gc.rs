//! Tombstone garbage collection of a sharded table, in two phases.
//!
//! Every replica queues each tombstone it stores. Once a tombstone is older
//! than the GC delay, the first node (by id) storing its partition (any
//! replica, for a tombstone twice that old):
//! 1. pushes the tombstone to every other node storing the partition, and
//!    to the former owners of the partition (in one of the last retired
//!    layout versions, still in the layout or removed from it) that may not
//!    have handed their copy off yet. It needs all of them to accept it:
//!    from then on no replica holds the value the tombstone deleted, so
//!    none can bring it back;
//! 2. asks each of them to delete the entry if it still holds exactly that
//!    tombstone (a newer write in between keeps the entry everywhere);
//! 3. deletes its own copy under the same condition.
//!
//! A batch that fails at any step stays queued and is retried later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_bytes::ByteBuf;
use tokio::sync::watch;

use garage_rpc::quorum::call_quorum;
use garage_util::background::{Worker, WorkerState};
use garage_util::data::{blake2sum, Hash, Uuid};

use crate::error::Error;
use crate::replication::TableReplication;
use crate::schema::TableSchema;
use crate::table::{Table, TableRpc};

/// Most tombstones handled in one round.
const GC_BATCH: usize = 1024;

/// One queued tombstone.
struct Queued {
    queue_key: Vec<u8>,
    key: Vec<u8>,
    hash: Hash,
    value: Vec<u8>,
}

impl<F: TableSchema, R: TableReplication> Table<F, R> {
    /// Runs one round of tombstone GC: tombstones queued more than `delay`
    /// ago. Returns (collected, still queued for later).
    pub async fn gc_round(&self, delay: Duration) -> Result<(usize, bool), Error> {
        let Some(queue) = &self.data.gc_todo else {
            return Ok((0, false));
        };
        let now = self.data.clock.now_ms();
        let cutoff = now.saturating_sub(delay.as_millis() as u64);
        let rows = queue.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(&cutoff.to_be_bytes()[..]),
            false,
            Some(GC_BATCH),
        )?;
        let full_page = rows.len() >= GC_BATCH;
        let stray_cutoff = now.saturating_sub(2 * delay.as_millis() as u64);
        let me = self.system.id;
        let mut groups: BTreeMap<Vec<Uuid>, Vec<Queued>> = BTreeMap::new();
        for (qk, h) in rows {
            let (Some(ts), Some(key), Some(hash)) = (
                qk.get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes),
                qk.get(8..),
                Hash::try_from_slice(&h),
            ) else {
                queue.remove(&qk)?;
                continue;
            };
            let key = key.to_vec();
            // Superseded (or already gone): nothing to collect.
            let Some(value) = self.data.store.get(&key)?.filter(|v| blake2sum(v) == hash) else {
                queue.remove(&qk)?;
                continue;
            };
            let Some(phash) = key.get(..32).and_then(Hash::try_from_slice) else {
                queue.remove(&qk)?;
                continue;
            };
            let mut nodes = self.replication.storage_nodes(&phash);
            nodes.sort();
            // The first storage node collects. Another replica collects a
            // tombstone only once it is twice as old: it is then a stray
            // (e.g. pushed back by anti-entropy after the first node's round
            // deleted the others), which would otherwise stay for good.
            if nodes.first() != Some(&me) && ts >= stray_cutoff {
                continue;
            }
            // Former owners that may not have handed the partition off yet
            // take part too: one that missed the delete would otherwise
            // hand the deleted value back once the tombstone is gone.
            let mut others: Vec<Uuid> = nodes.into_iter().filter(|n| *n != me).collect();
            for n in self.replication.former_storage_nodes(&phash) {
                if n != me && !others.contains(&n) {
                    others.push(n);
                }
            }
            groups.entry(others).or_default().push(Queued {
                queue_key: qk,
                key,
                hash,
                value,
            });
        }
        let more = full_page && !groups.is_empty();
        let mut collected = 0;
        let mut failed = None;
        for (others, batch) in groups {
            match self.gc_batch(&others, &batch).await {
                Ok(n) => collected += n,
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((collected, more)),
        }
    }

    async fn gc_batch(&self, others: &[Uuid], batch: &[Queued]) -> Result<usize, Error> {
        let timeout = self.system.rpc_timeout;
        if !others.is_empty() {
            let push = TableRpc::Update(
                batch
                    .iter()
                    .map(|q| ByteBuf::from(q.value.clone()))
                    .collect(),
            );
            call_quorum(self.endpoint(), others, push, others.len(), timeout).await?;
            let delete = TableRpc::DeleteIfEqualHash(
                batch
                    .iter()
                    .map(|q| (ByteBuf::from(q.key.clone()), q.hash))
                    .collect(),
            );
            call_quorum(self.endpoint(), others, delete, others.len(), timeout).await?;
        }
        let keys: Vec<(Vec<u8>, Hash)> = batch.iter().map(|q| (q.key.clone(), q.hash)).collect();
        let n = self.data.delete_if_equal_hash(&keys)?;
        if let Some(queue) = &self.data.gc_todo {
            for q in batch {
                queue.remove(&q.queue_key)?;
            }
        }
        Ok(n)
    }
}

/// The tombstone GC worker of one sharded table.
pub struct GcWorker<F: TableSchema, R: TableReplication> {
    table: Arc<Table<F, R>>,
    delay: Duration,
    collected: u64,
    last_error: Option<String>,
}

impl<F: TableSchema, R: TableReplication> GcWorker<F, R> {
    /// A worker collecting `table`'s tombstones older than `delay`.
    pub fn new(table: Arc<Table<F, R>>, delay: Duration) -> Self {
        Self {
            table,
            delay,
            collected: 0,
            last_error: None,
        }
    }
}

#[async_trait]
impl<F: TableSchema, R: TableReplication> Worker for GcWorker<F, R> {
    fn name(&self) -> String {
        format!("{} GC", F::TABLE_NAME)
    }

    fn status(&self) -> String {
        let queued = match &self.table.data.gc_todo {
            Some(q) => q
                .len()
                .map(|n| n.to_string())
                .unwrap_or_else(|e| e.to_string()),
            None => "0".into(),
        };
        let mut s = format!("queue {queued}, {} tombstones collected", self.collected);
        if let Some(e) = &self.last_error {
            s.push_str("; last error: ");
            s.push_str(e);
        }
        s
    }

    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        match self.table.gc_round(self.delay).await {
            Ok((n, more)) => {
                self.collected += n as u64;
                self.last_error = None;
                Ok(if more {
                    WorkerState::Busy
                } else {
                    WorkerState::Idle
                })
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                Err(e.to_string())
            }
        }
    }

    async fn wait_for_work(&mut self) {
        // Tests use delays of seconds; production waits at most a minute.
        let wait = (self.delay / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::time::sleep(wait).await;
    }
}
