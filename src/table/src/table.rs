//! A replicated table: local data plus quorum reads and writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use garage_rpc::quorum::{call_preferred, call_quorum, call_write_sets, call_write_sets_after};
use garage_rpc::system::System;
use garage_rpc::{Endpoint, Handler, RpcMessage};
use garage_util::crdt::Crdt;
use garage_util::data::{Hash, Uuid};
use garage_util::encode::Migrate;

use garage_util::time::Clock;

use crate::data::{tree_key, SortRange, TableData};
use crate::error::Error;
use crate::merkle::{MerkleNode, MerkleTrie};
use crate::replication::TableReplication;
use crate::schema::{Entry, PartitionKey, SortKey, TableSchema};
use crate::stats::TableMetrics;
use crate::sync::SyncTrigger;

/// Messages between replicas of a table. Keys and filters travel encoded,
/// so the message type does not depend on the schema.
#[derive(Debug, Serialize, Deserialize)]
pub enum TableRpc {
    /// Success.
    Ok,
    /// Read one entry.
    ReadEntry {
        /// Partition hash.
        hash: Hash,
        /// Sort key bytes.
        sort_key: ByteBuf,
    },
    /// Answer to `ReadEntry`.
    Entry(Option<ByteBuf>),
    /// Read a range of one partition.
    ReadRange {
        /// Partition hash.
        hash: Hash,
        /// Bounds on the sort keys.
        range: SortRange,
        /// Most entries to return (tombstones included: replicas never
        /// filter, the coordinator filters after merging).
        limit: u32,
        /// Walk downward.
        reverse: bool,
    },
    /// Answer to `ReadRange`.
    Entries(Vec<ByteBuf>),
    /// Merge these entries.
    Update(Vec<ByteBuf>),
    /// Read stored entries in storage-key order, after `after`.
    ReadAll {
        /// Storage key to start after (None: from the start).
        after: Option<ByteBuf>,
        /// Most entries to return.
        limit: u32,
    },
    /// Answer to `ReadAll`: (storage key, encoded entry) pairs.
    Rows(Vec<(ByteBuf, ByteBuf)>),
    /// The Merkle root hashes of these partitions.
    GetRoots(Vec<u16>),
    /// Answer to `GetRoots`, in the same order.
    Roots(Vec<Option<Hash>>),
    /// The Merkle nodes at these (partition, prefix) positions.
    GetNodes(Vec<(u16, ByteBuf)>),
    /// Answer to `GetNodes`, in the same order.
    Nodes(Vec<MerkleNode>),
    /// Delete these (storage key, value hash) entries where the stored
    /// value still has that hash (second phase of tombstone GC).
    DeleteIfEqualHash(Vec<(ByteBuf, Hash)>),
}

impl RpcMessage for TableRpc {
    type Response = TableRpc;
}

/// Most entries in one `ReadAll` page.
const MAX_SCAN_PAGE: usize = 1000;

/// Merged entries of a range page, and the sort key the next page starts
/// after (None: the range is exhausted).
type MergedPage<F> = (Vec<<F as TableSchema>::E>, Option<Vec<u8>>);

/// Entries of one replica's answer, by storage key.
type EntriesByKey<F> = BTreeMap<Vec<u8>, <F as TableSchema>::E>;

/// A table replicated over the cluster.
pub struct Table<F: TableSchema, R: TableReplication> {
    /// Local storage.
    pub(crate) data: Arc<TableData<F>>,
    /// Placement.
    pub(crate) replication: R,
    /// Membership.
    pub(crate) system: Arc<System>,
    /// The Merkle tries of the local data.
    pub(crate) merkle: Arc<MerkleTrie<F>>,
    /// Requests for a full anti-entropy pass.
    pub(crate) sync_trigger: SyncTrigger,
    /// Request counters and durations (see `stats.rs`).
    pub(crate) metrics: TableMetrics,
    endpoint: Endpoint<TableRpc>,
}

impl<F: TableSchema, R: TableReplication> Table<F, R> {
    /// Builds the table and registers its RPC handler. Sharded tables
    /// collect their tombstones; full-copy tables (keys, buckets) keep them.
    pub fn new(
        schema: Arc<F>,
        replication: R,
        system: Arc<System>,
        db: garage_db::Db,
        clock: Clock,
    ) -> Result<Arc<Self>, Error> {
        let sharded = replication.sharded();
        let data = TableData::new(schema, db, clock, sharded)?;
        let merkle = MerkleTrie::new(data.clone(), sharded)?;
        let endpoint = Endpoint::new(
            system.transport.clone(),
            &format!("table/{}", F::TABLE_NAME),
        );
        let t = Arc::new(Self {
            data,
            replication,
            system,
            merkle,
            sync_trigger: SyncTrigger::default(),
            metrics: TableMetrics::new(F::TABLE_NAME),
            endpoint,
        });
        t.endpoint.set_handler(t.clone());
        Ok(t)
    }

    fn encode(e: &F::E) -> Result<ByteBuf, Error> {
        e.encode().map(ByteBuf::from).map_err(|err| Error::Encode {
            table: F::TABLE_NAME,
            message: err.to_string(),
        })
    }

    fn decode(b: &[u8]) -> Result<F::E, Error> {
        F::E::decode(b).ok_or(Error::Corrupted {
            table: F::TABLE_NAME,
        })
    }

    /// Writes an entry to every write set, waiting for the write quorum in
    /// each; a node in several sets gets one call.
    pub async fn insert(&self, e: &F::E) -> Result<(), Error> {
        let _timer = self.metrics.put.start();
        let _inflight = self.system.write_guard();
        let hash = e.partition_key().hash();
        let enc = Self::encode(e)?;
        let sets = self.replication.write_sets(&hash);
        call_write_sets(
            &self.endpoint,
            &sets,
            TableRpc::Update(vec![enc]),
            self.replication.write_quorum(),
            self.system.rpc_timeout,
        )
        .await?;
        Ok(())
    }

    /// Groups encoded entries by the write sets of their partitions.
    fn group_by_sets(
        &self,
        entries: &[F::E],
        skip_local_only: bool,
    ) -> Result<BTreeMap<Vec<Vec<Uuid>>, Vec<ByteBuf>>, Error> {
        let me = self.system.id;
        let mut by_sets: BTreeMap<Vec<Vec<Uuid>>, Vec<ByteBuf>> = BTreeMap::new();
        for e in entries {
            let mut sets = self.replication.write_sets(&e.partition_key().hash());
            // Nothing to send when this node is the only replica (rf 1).
            if skip_local_only && sets.iter().all(|s| s.iter().all(|n| *n == me)) {
                continue;
            }
            for s in sets.iter_mut() {
                s.sort();
            }
            by_sets.entry(sets).or_default().push(Self::encode(e)?);
        }
        Ok(by_sets)
    }

    /// Writes several entries: one call per distinct node of each group of
    /// entries sharing their write sets, groups in parallel.
    pub async fn insert_many(&self, entries: &[F::E]) -> Result<(), Error> {
        let _timer = self.metrics.put.start();
        let _inflight = self.system.write_guard();
        let by_sets = self.group_by_sets(entries, false)?;
        let w = self.replication.write_quorum();
        let timeout = self.system.rpc_timeout;
        let calls = by_sets.into_iter().map(|(sets, batch)| async move {
            call_write_sets(&self.endpoint, &sets, TableRpc::Update(batch), w, timeout).await
        });
        for r in futures::future::join_all(calls).await {
            r?;
        }
        Ok(())
    }

    /// Replicates entries that were just stored locally (by a transaction
    /// of the caller) to the other nodes of their write sets; the local copy
    /// counts as one acknowledgement in each set that holds this node.
    pub async fn replicate_stored(&self, entries: &[F::E]) -> Result<(), Error> {
        let _timer = self.metrics.put.start();
        let _inflight = self.system.write_guard();
        let by_sets = self.group_by_sets(entries, true)?;
        let me = self.system.id;
        let w = self.replication.write_quorum();
        let timeout = self.system.rpc_timeout;
        let calls = by_sets.into_iter().map(|(sets, batch)| async move {
            let msg = TableRpc::Update(batch);
            call_write_sets_after(&self.endpoint, &sets, msg, w, timeout, Some(me)).await
        });
        for r in futures::future::join_all(calls).await {
            r?;
        }
        Ok(())
    }

    /// Reads one entry from a read quorum, merging answers and repairing
    /// replicas that were behind (also those that had nothing).
    pub async fn get(&self, pk: &F::P, sk: &F::S) -> Result<Option<F::E>, Error> {
        let _timer = self.metrics.get.start();
        let hash = pk.hash();
        let nodes = self.replication.read_nodes(&hash);
        let q = self.replication.read_quorum();
        if nodes.len() == 1 && nodes[0] == self.system.id && q == 1 {
            return self.data.get(pk, sk);
        }
        let msg = TableRpc::ReadEntry {
            hash,
            sort_key: ByteBuf::from(sk.sort_key().to_vec()),
        };
        let answers =
            call_preferred(&self.endpoint, &nodes, msg, q, self.system.rpc_timeout).await?;
        let mut values: Vec<(Uuid, Option<F::E>)> = vec![];
        for (n, a) in answers {
            match a {
                TableRpc::Entry(b) => {
                    values.push((n, b.map(|b| Self::decode(&b)).transpose()?));
                }
                _ => {
                    return Err(Error::UnexpectedAnswer {
                        table: F::TABLE_NAME,
                    })
                }
            }
        }
        let mut merged: Option<F::E> = None;
        for (_, v) in values.iter() {
            if let Some(v) = v {
                match &mut merged {
                    Some(m) => m.merge(v),
                    None => merged = Some(v.clone()),
                }
            }
        }
        if let Some(m) = &merged {
            let stale: Vec<Uuid> = values
                .iter()
                .filter(|(_, v)| v.as_ref() != Some(m))
                .map(|(n, _)| *n)
                .collect();
            if !stale.is_empty() {
                self.repair(stale, vec![m.clone()]);
            }
        }
        Ok(merged)
    }

    /// Reads a range of one partition from a read quorum: entries with sort
    /// keys within `range` that pass `filter`, at most `limit`, in the
    /// requested order.
    ///
    /// Replicas answer unfiltered pages (tombstones included); the answers
    /// are merged key by key, and only then filtered, so a replica holding a
    /// newer tombstone hides the older value another replica still has.
    /// A key is used only when every answering replica's page covers it (up
    /// to the nearest last key of a full page); pages are fetched until
    /// `limit` entries passed the filter or the range is exhausted.
    /// Replicas whose copy differs from the merge are repaired.
    pub async fn get_range(
        &self,
        pk: &F::P,
        range: SortRange,
        filter: Option<F::Filter>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<F::E>, Error> {
        let _timer = self.metrics.get.start();
        let hash = pk.hash();
        let nodes = self.replication.read_nodes(&hash);
        let q = self.replication.read_quorum();
        if nodes.len() == 1 && nodes[0] == self.system.id && q == 1 {
            return self
                .data
                .read_range(&hash, &range, filter.as_ref(), limit, reverse);
        }
        let mut range = range;
        let mut out: Vec<F::E> = Vec::new();
        while out.len() < limit {
            let page = (limit - out.len()).clamp(32, 1024);
            let msg = TableRpc::ReadRange {
                hash,
                range: range.clone(),
                limit: page as u32,
                reverse,
            };
            let answers =
                call_preferred(&self.endpoint, &nodes, msg, q, self.system.rpc_timeout).await?;
            let (merged, horizon) = self.merge_pages(answers, page, reverse)?;
            for e in merged {
                if filter.as_ref().is_none_or(|f| F::matches_filter(&e, f)) {
                    out.push(e);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            let Some(h) = horizon else {
                break;
            };
            if reverse {
                range.hi = std::ops::Bound::Excluded(h);
            } else {
                range.lo = std::ops::Bound::Excluded(h);
            }
        }
        Ok(out)
    }

    /// Merges the pages of several replicas: the merged entries every
    /// replica's page covers, in order, and the sort key where the next page
    /// starts (None when no page was full: the range is exhausted). Starts
    /// read repair of the replicas that differed.
    fn merge_pages(
        &self,
        answers: Vec<(Uuid, TableRpc)>,
        page: usize,
        reverse: bool,
    ) -> Result<MergedPage<F>, Error> {
        let mut per_node: Vec<(Uuid, EntriesByKey<F>)> = vec![];
        let mut horizon: Option<Vec<u8>> = None;
        for (n, a) in answers {
            let TableRpc::Entries(list) = a else {
                return Err(Error::UnexpectedAnswer {
                    table: F::TABLE_NAME,
                });
            };
            let full = list.len() >= page;
            let mut m = BTreeMap::new();
            let mut last = None;
            for b in list {
                let e = Self::decode(&b)?;
                let k = e.sort_key().sort_key().to_vec();
                last = Some(k.clone());
                m.insert(k, e);
            }
            if let (true, Some(l)) = (full, last) {
                let nearer = match &horizon {
                    None => true,
                    Some(h) if reverse => l > *h,
                    Some(h) => l < *h,
                };
                if nearer {
                    horizon = Some(l);
                }
            }
            per_node.push((n, m));
        }
        let within = |k: &Vec<u8>| match &horizon {
            None => true,
            Some(h) if reverse => k >= h,
            Some(h) => k <= h,
        };
        let mut merged: BTreeMap<Vec<u8>, F::E> = BTreeMap::new();
        for (_, m) in per_node.iter() {
            for (k, e) in m.iter().filter(|(k, _)| within(k)) {
                match merged.get_mut(k) {
                    Some(x) => x.merge(e),
                    None => {
                        merged.insert(k.clone(), e.clone());
                    }
                }
            }
        }
        let mut to_repair: BTreeMap<Uuid, Vec<F::E>> = BTreeMap::new();
        for (k, e) in merged.iter() {
            for (n, m) in per_node.iter() {
                if m.get(k) != Some(e) {
                    to_repair.entry(*n).or_default().push(e.clone());
                }
            }
        }
        for (n, es) in to_repair {
            self.repair(vec![n], es);
        }
        let mut ordered: Vec<F::E> = merged.into_values().collect();
        if reverse {
            ordered.reverse();
        }
        Ok((ordered, horizon))
    }

    /// Pulls every entry `peer` stores and merges them here, page by page;
    /// returns how many entries were received.
    pub async fn pull_all_from(&self, peer: Uuid) -> Result<usize, Error> {
        let mut after: Option<ByteBuf> = None;
        let mut total = 0;
        loop {
            let msg = TableRpc::ReadAll {
                after: after.clone(),
                limit: MAX_SCAN_PAGE as u32,
            };
            let rows = match self
                .endpoint
                .call(peer, &msg, self.system.rpc_timeout)
                .await?
            {
                TableRpc::Rows(rows) => rows,
                _ => {
                    return Err(Error::UnexpectedAnswer {
                        table: F::TABLE_NAME,
                    })
                }
            };
            let n = rows.len();
            total += n;
            self.metrics.sync_items_received.add(n as u64);
            let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
                break;
            };
            let values: Vec<Vec<u8>> = rows.into_iter().map(|(_, v)| v.into_vec()).collect();
            self.data.update_many(&values)?;
            if n < MAX_SCAN_PAGE {
                break;
            }
            after = Some(last);
        }
        Ok(total)
    }

    fn repair(&self, nodes: Vec<Uuid>, entries: Vec<F::E>) {
        let Ok(batch) = entries
            .iter()
            .map(Self::encode)
            .collect::<Result<Vec<_>, _>>()
        else {
            return;
        };
        let ep = self.endpoint.clone();
        let timeout = self.system.rpc_timeout;
        tokio::spawn(async move {
            let n = nodes.len();
            if let Err(e) = call_quorum(&ep, &nodes, TableRpc::Update(batch), n, timeout).await {
                tracing::warn!(table = F::TABLE_NAME, error = %e, "read repair failed");
            }
        });
    }

    pub(crate) fn endpoint(&self) -> &Endpoint<TableRpc> {
        &self.endpoint
    }

    /// This node's id.
    pub fn system_id(&self) -> Uuid {
        self.system.id
    }

    /// The peers that can be reached now.
    pub fn up_peers(&self) -> Vec<Uuid> {
        self.system
            .transport
            .peers()
            .into_iter()
            .filter(|p| p.is_up)
            .map(|p| p.id)
            .collect()
    }

    /// The Merkle tries of the local data.
    pub fn merkle(&self) -> &Arc<MerkleTrie<F>> {
        &self.merkle
    }

    /// Where a request for a full anti-entropy pass goes.
    pub fn sync_trigger(&self) -> &SyncTrigger {
        &self.sync_trigger
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<F> {
        &self.data.schema
    }

    /// A counter raised by every committed local change (for caches).
    pub fn generation(&self) -> u64 {
        self.data.generation()
    }

    /// Applies a batch of local read-modify-writes in ONE transaction (see
    /// [`TableData::transact`]); the caller replicates the written entries
    /// with [`Self::replicate_stored`].
    pub fn transact<T>(
        &self,
        body: impl Fn(&mut crate::data::TableTx<'_, '_, F>) -> Result<T, garage_db::TxError<Error>>,
    ) -> Result<(T, Vec<F::E>), Error> {
        self.data.transact(body)
    }

    /// Local entries of one partition within `range` that pass `filter`
    /// (no quorum).
    pub fn read_range_local(
        &self,
        pk: &F::P,
        range: &SortRange,
        filter: Option<&F::Filter>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<F::E>, Error> {
        self.data
            .read_range(&pk.hash(), range, filter, limit, reverse)
    }

    /// Stored rows in storage-key order after `after` (no quorum).
    pub fn scan_local(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::data::StoredRow>, Error> {
        self.data.scan(after, limit)
    }

    /// Reads the local copy of one entry (no quorum).
    pub fn get_local(&self, pk: &F::P, sk: &F::S) -> Result<Option<F::E>, Error> {
        self.data.get(pk, sk)
    }

    /// The storage key of an entry.
    pub fn tree_key(pk: &F::P, sk: &F::S) -> Vec<u8> {
        tree_key(&pk.hash(), sk.sort_key())
    }

    fn handle_local(&self, msg: TableRpc) -> Result<TableRpc, Error> {
        match msg {
            TableRpc::ReadEntry { hash, sort_key } => Ok(TableRpc::Entry(
                self.data.read_entry(&hash, &sort_key)?.map(ByteBuf::from),
            )),
            TableRpc::ReadRange {
                hash,
                range,
                limit,
                reverse,
            } => {
                let es = self
                    .data
                    .read_range(&hash, &range, None, limit as usize, reverse)?;
                Ok(TableRpc::Entries(
                    es.iter().map(Self::encode).collect::<Result<_, _>>()?,
                ))
            }
            TableRpc::Update(list) => {
                let list: Vec<Vec<u8>> = list.into_iter().map(|b| b.into_vec()).collect();
                self.data.update_many(&list)?;
                Ok(TableRpc::Ok)
            }
            TableRpc::ReadAll { after, limit } => {
                let rows = self.data.scan(
                    after.as_ref().map(|b| b.as_slice()),
                    (limit as usize).min(MAX_SCAN_PAGE),
                )?;
                Ok(TableRpc::Rows(
                    rows.into_iter()
                        .map(|(k, v)| (ByteBuf::from(k), ByteBuf::from(v)))
                        .collect(),
                ))
            }
            TableRpc::GetRoots(parts) => Ok(TableRpc::Roots(
                parts
                    .iter()
                    .map(|p| self.merkle.root(*p))
                    .collect::<Result<_, _>>()?,
            )),
            TableRpc::GetNodes(list) => Ok(TableRpc::Nodes(
                list.iter()
                    .map(|(p, prefix)| self.merkle.node(*p, prefix))
                    .collect::<Result<_, _>>()?,
            )),
            TableRpc::DeleteIfEqualHash(list) => {
                let list: Vec<(Vec<u8>, Hash)> =
                    list.into_iter().map(|(k, h)| (k.into_vec(), h)).collect();
                self.data.delete_if_equal_hash(&list)?;
                Ok(TableRpc::Ok)
            }
            TableRpc::Ok
            | TableRpc::Entry(_)
            | TableRpc::Entries(_)
            | TableRpc::Rows(_)
            | TableRpc::Roots(_)
            | TableRpc::Nodes(_) => Err(Error::UnexpectedAnswer {
                table: F::TABLE_NAME,
            }),
        }
    }
}

#[async_trait]
impl<F: TableSchema, R: TableReplication> Handler<TableRpc> for Table<F, R> {
    async fn handle(&self, msg: TableRpc, from: Uuid) -> Result<TableRpc, String> {
        match msg {
            TableRpc::Update(list) if from != self.system.id => {
                self.metrics.sync_items_received.add(list.len() as u64);
                // A peer's update: grouped with those of concurrent requests.
                let list: Vec<Vec<u8>> = list.into_iter().map(|b| b.into_vec()).collect();
                self.data
                    .update_many_grouped(&list)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(TableRpc::Ok)
            }
            // This node's own copy is written at once, when the quorum call
            // first polls it, so that it is stored before the call returns
            // even when other nodes made the quorum: reads of full-copy
            // tables are local, and must see the caller's own writes.
            other => self.handle_local(other).map_err(|e| e.to_string()),
        }
    }
}
