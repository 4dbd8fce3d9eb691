//! Anti-entropy of a sharded table: replicas compare Merkle tries and push
//! what the other side lacks.
//!
//! For each partition two nodes both store, the syncing node asks the
//! peer's root hashes (one call for all shared partitions), then walks down
//! the differing subtrees level by level (one call per level, up to 256
//! nodes each) and pushes the entries of its leaves that differ. The walk
//! is push-only: what the peer has and this node lacks arrives when the
//! peer syncs in turn.
//!
//! A node syncs with a peer as soon as that peer becomes reachable (which
//! covers the node's own start and a peer's restart), with every peer each
//! `interval`, when the layout changes, and when asked to (`garage repair
//! tables`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_bytes::ByteBuf;
use tokio::sync::{watch, Notify};

use garage_rpc::layout::partitions;
use garage_rpc::quorum::call_quorum;
use garage_util::background::{Worker, WorkerState};
use garage_util::data::{blake2sum, Uuid};

use crate::error::Error;
use crate::merkle::MerkleNode;
use crate::replication::TableReplication;
use crate::schema::TableSchema;
use crate::table::{Table, TableRpc};

/// Most Merkle nodes asked in one call.
const NODES_PER_CALL: usize = 256;
/// Entries pushed in one call: at most this many...
const ITEMS_PER_PUSH: usize = 256;
/// ...and about this many bytes.
const BYTES_PER_PUSH: usize = 1 << 20;

/// A request for a full sync pass, shared by a table and its worker.
#[derive(Default)]
pub struct SyncTrigger {
    requested: AtomicBool,
    notify: Notify,
}

impl SyncTrigger {
    /// Asks for a full pass as soon as possible.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether a pass was requested (and clears the request).
    pub fn take(&self) -> bool {
        self.requested.swap(false, Ordering::AcqRel)
    }

    /// Waits for the next request.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// What one sync with one peer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Partitions compared.
    pub partitions: usize,
    /// Partitions whose roots differed.
    pub differing: usize,
    /// Entries pushed to the peer.
    pub pushed: usize,
}

impl<F: TableSchema, R: TableReplication> Table<F, R> {
    /// The partitions this node and `peer` both store (in any active layout
    /// version).
    pub fn shared_partitions(&self, peer: Uuid) -> Vec<u16> {
        let me = self.system.id;
        partitions()
            .filter(|(_, h)| {
                let nodes = self.replication.storage_nodes(h);
                nodes.contains(&me) && nodes.contains(&peer)
            })
            .map(|(p, _)| p as u16)
            .collect()
    }

    /// The peers other than this node that can be reached now.
    pub fn reachable_peers(&self) -> BTreeSet<Uuid> {
        let me = self.system.id;
        self.up_peers().into_iter().filter(|p| *p != me).collect()
    }

    /// Hashes every dirty key into the Merkle tries.
    pub async fn flush_merkle(&self) -> Result<(), Error> {
        let trie = self.merkle.clone();
        garage_util::background::spawn_blocking(move || {
            while trie.update_batch()? > 0 {}
            Ok::<(), Error>(())
        })
        .await
        .map_err(Error::Task)?
    }

    /// Compares the tries of `parts` with `peer` and pushes every local
    /// entry the peer's trie lacks or holds with another value.
    pub async fn sync_with(&self, peer: Uuid, parts: &[u16]) -> Result<SyncStats, Error> {
        let mut stats = SyncStats {
            partitions: parts.len(),
            ..Default::default()
        };
        if parts.is_empty() {
            return Ok(stats);
        }
        let timeout = self.system.rpc_timeout;
        let unexpected = || Error::UnexpectedAnswer {
            table: F::TABLE_NAME,
        };
        let remote = match self
            .endpoint()
            .call(peer, &TableRpc::GetRoots(parts.to_vec()), timeout)
            .await?
        {
            TableRpc::Roots(r) if r.len() == parts.len() => r,
            _ => return Err(unexpected()),
        };
        let mut queue: VecDeque<(u16, Vec<u8>)> = VecDeque::new();
        for (p, r) in parts.iter().zip(remote) {
            if self.merkle.root(*p)? != r {
                queue.push_back((*p, vec![]));
                stats.differing += 1;
            }
        }
        let mut to_push: Vec<Vec<u8>> = vec![];
        while !queue.is_empty() {
            let n = queue.len().min(NODES_PER_CALL);
            let batch: Vec<(u16, Vec<u8>)> = queue.drain(..n).collect();
            let msg = TableRpc::GetNodes(
                batch
                    .iter()
                    .map(|(p, pre)| (*p, ByteBuf::from(pre.clone())))
                    .collect(),
            );
            let remote = match self.endpoint().call(peer, &msg, timeout).await? {
                TableRpc::Nodes(v) if v.len() == batch.len() => v,
                _ => return Err(unexpected()),
            };
            for ((p, prefix), rnode) in batch.into_iter().zip(remote) {
                match self.merkle.node(p, &prefix)? {
                    MerkleNode::Empty => (),
                    MerkleNode::Leaf(k, h) => {
                        if rnode != MerkleNode::Leaf(k.clone(), h) {
                            to_push.push(k.into_vec());
                        }
                    }
                    MerkleNode::Intermediate(children) => {
                        let theirs: &[(u8, _)] = match &rnode {
                            MerkleNode::Intermediate(c) => c,
                            _ => &[],
                        };
                        for (c, h) in children {
                            let same = theirs
                                .binary_search_by_key(&c, |x| x.0)
                                .is_ok_and(|i| theirs[i].1 == h);
                            if !same {
                                let mut child = prefix.clone();
                                child.push(c);
                                queue.push_back((p, child));
                            }
                        }
                    }
                }
            }
            if to_push.len() >= ITEMS_PER_PUSH {
                stats.pushed += self.push_keys(peer, std::mem::take(&mut to_push)).await?;
            }
        }
        stats.pushed += self.push_keys(peer, to_push).await?;
        Ok(stats)
    }

    /// Hands off a partition this node no longer stores: pushes its
    /// entries to every node storing it (all must accept), then deletes
    /// the local copies that did not change meanwhile. Returns how many
    /// entries were handed off.
    pub async fn offload_partition(&self, partition: u8) -> Result<usize, Error> {
        let mut hash = [0u8; 32];
        hash[0] = partition;
        let nodes = self
            .replication
            .storage_nodes(&garage_util::data::Hash::from(hash));
        if nodes.is_empty() || nodes.contains(&self.system.id) {
            return Ok(0);
        }
        let timeout = self.system.rpc_timeout;
        let mut done = 0;
        loop {
            let rows = self.data.scan_partition(partition, None, ITEMS_PER_PUSH)?;
            if rows.is_empty() {
                return Ok(done);
            }
            let n = rows.len();
            let msg =
                TableRpc::Update(rows.iter().map(|(_, v)| ByteBuf::from(v.clone())).collect());
            call_quorum(self.endpoint(), &nodes, msg, nodes.len(), timeout).await?;
            let keys: Vec<(Vec<u8>, garage_util::data::Hash)> =
                rows.into_iter().map(|(k, v)| (k, blake2sum(&v))).collect();
            self.data.delete_if_equal_hash(&keys)?;
            done += n;
            if n < ITEMS_PER_PUSH {
                return Ok(done);
            }
        }
    }

    /// Partitions this node holds data of but no longer stores in any
    /// active layout version.
    pub fn partitions_to_offload(&self) -> Result<Vec<u8>, Error> {
        let me = self.system.id;
        let mut out = vec![];
        for (p, h) in partitions() {
            let nodes = self.replication.storage_nodes(&h);
            if nodes.is_empty() || nodes.contains(&me) {
                continue;
            }
            if !self.data.scan_partition(p, None, 1)?.is_empty() {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Sends the stored entries at `keys` to `peer`, in batches.
    async fn push_keys(&self, peer: Uuid, keys: Vec<Vec<u8>>) -> Result<usize, Error> {
        let mut sent = 0;
        let mut batch: Vec<ByteBuf> = vec![];
        let mut bytes = 0;
        let timeout = self.system.rpc_timeout;
        for (i, k) in keys.iter().enumerate() {
            if let Some(v) = self.data.store.get(k)? {
                bytes += v.len();
                batch.push(ByteBuf::from(v));
            }
            let last = i + 1 == keys.len();
            if !batch.is_empty()
                && (last || batch.len() >= ITEMS_PER_PUSH || bytes >= BYTES_PER_PUSH)
            {
                let n = batch.len();
                let msg = TableRpc::Update(std::mem::take(&mut batch));
                self.endpoint().call(peer, &msg, timeout).await?;
                self.metrics.sync_items_sent.add(n as u64);
                sent += n;
                bytes = 0;
            }
        }
        Ok(sent)
    }
}

/// The anti-entropy worker of one sharded table.
pub struct SyncWorker<F: TableSchema, R: TableReplication> {
    table: Arc<Table<F, R>>,
    interval: Duration,
    layout: watch::Receiver<u64>,
    /// Peers synced with, and when: a peer is synced again once it left
    /// the reachable set or after [`RESYNC_PEER_AFTER`] (a peer restarted
    /// with an empty store between two polls never looks unreachable).
    synced: BTreeMap<Uuid, tokio::time::Instant>,
    next_full: tokio::time::Instant,
    passes: u64,
    pushed: u64,
    offloaded: u64,
    last_error: Option<String>,
}

impl<F: TableSchema, R: TableReplication> SyncWorker<F, R> {
    /// A worker syncing `table` with every peer each `interval`.
    pub fn new(table: Arc<Table<F, R>>, interval: Duration) -> Self {
        let layout = table.system.layout_watch();
        table.system.register_sync_table(F::TABLE_NAME);
        Self {
            table,
            interval,
            layout,
            synced: BTreeMap::new(),
            next_full: tokio::time::Instant::now() + interval,
            passes: 0,
            pushed: 0,
            offloaded: 0,
            last_error: None,
        }
    }
}

impl<F: TableSchema, R: TableReplication> SyncWorker<F, R> {
    /// Syncs the partitions shared with `peer`; true on success.
    async fn sync_peer(&mut self, peer: Uuid) -> bool {
        let parts = self.table.shared_partitions(peer);
        match self.table.sync_with(peer, &parts).await {
            Ok(st) => {
                self.pushed += st.pushed as u64;
                if st.pushed > 0 {
                    tracing::info!(
                        table = F::TABLE_NAME,
                        peer = ?peer,
                        differing = st.differing,
                        pushed = st.pushed,
                        "anti-entropy pushed entries"
                    );
                }
                self.synced.insert(peer, tokio::time::Instant::now());
                true
            }
            Err(e) => {
                tracing::debug!(table = F::TABLE_NAME, peer = ?peer, error = %e, "sync failed");
                self.last_error = Some(e.to_string());
                false
            }
        }
    }

    /// A full pass: every node sharing a partition with this one (up or
    /// not), then the hand-off of partitions this node no longer stores.
    /// It counts as complete when every live node set of every partition
    /// this node stores kept a write quorum of nodes that took part.
    /// A complete pass is reported to the layout trackers for the
    /// `ack_map_min` seen at its start; an incomplete one is retried soon.
    async fn full_pass(&mut self) -> Result<(), Error> {
        let system = self.table.system.clone();
        let me = system.id;
        let layout = system.layout();
        let ack_min = layout.ack_map_min();
        let peers: Vec<Uuid> = layout
            .all_storage_nodes()
            .into_iter()
            .filter(|n| *n != me)
            .collect();
        self.table.flush_merkle().await?;
        let mut failed: Vec<Uuid> = vec![];
        for peer in peers {
            if !self.sync_peer(peer).await {
                failed.push(peer);
            }
        }
        // Complete when, for every partition this node stores, each live
        // version's node set still has a write quorum of nodes that took
        // part (this node and the peers that answered): a dead node whose
        // ack was forced by `skip-dead-nodes` does not hold a transition.
        let w = system.quorums.write;
        let mut all_ok = partitions().all(|(_, h)| {
            let sets = layout.write_sets_of(&h);
            !sets.iter().any(|s| s.contains(&me))
                || sets.iter().all(|s| {
                    let down = s.iter().filter(|n| failed.contains(n)).count();
                    down + w <= s.len()
                })
        });
        match self.table.partitions_to_offload() {
            Ok(parts) => {
                for p in parts {
                    match self.table.offload_partition(p).await {
                        Ok(n) => {
                            self.offloaded += n as u64;
                            tracing::info!(
                                table = F::TABLE_NAME,
                                partition = p,
                                entries = n,
                                "partition handed off"
                            );
                        }
                        Err(e) => {
                            all_ok = false;
                            self.last_error = Some(format!("offload of partition {p}: {e}"));
                        }
                    }
                }
            }
            Err(e) => {
                all_ok = false;
                self.last_error = Some(e.to_string());
            }
        }
        let now = tokio::time::Instant::now();
        if all_ok {
            self.passes += 1;
            self.last_error = None;
            system.report_table_synced(F::TABLE_NAME, ack_min);
            self.next_full = now + self.interval;
        } else {
            self.next_full = now + self.interval.min(Duration::from_secs(5));
        }
        Ok(())
    }
}

/// How long a sync with a reachable peer counts: comparing Merkle roots
/// with an unchanged peer costs one small RPC per table.
const RESYNC_PEER_AFTER: Duration = Duration::from_secs(30);

#[async_trait]
impl<F: TableSchema, R: TableReplication> Worker for SyncWorker<F, R> {
    fn name(&self) -> String {
        format!("{} anti-entropy", F::TABLE_NAME)
    }

    fn status(&self) -> String {
        let mut s = format!(
            "{} full passes, {} peers synced, {} entries pushed, {} handed off",
            self.passes,
            self.synced.len(),
            self.pushed,
            self.offloaded
        );
        if let Some(e) = &self.last_error {
            s.push_str("; last error: ");
            s.push_str(e);
        }
        s
    }

    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        let up = self.table.reachable_peers();
        let now = tokio::time::Instant::now();
        self.synced
            .retain(|p, at| up.contains(p) && now.duration_since(*at) < RESYNC_PEER_AFTER);
        let layout_changed = self.layout.has_changed().unwrap_or(false);
        if layout_changed {
            self.layout.mark_unchanged();
        }
        let full = self.table.sync_trigger.take() || layout_changed || now >= self.next_full;
        if full {
            self.full_pass().await.map_err(|e| e.to_string())?;
        } else {
            let todo: Vec<Uuid> = up
                .iter()
                .filter(|p| !self.synced.contains_key(p))
                .copied()
                .collect();
            if !todo.is_empty() {
                self.table.flush_merkle().await.map_err(|e| e.to_string())?;
            }
            for peer in todo {
                self.sync_peer(peer).await;
            }
        }
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => (),
            _ = self.table.sync_trigger.notified() => (),
        }
    }
}
