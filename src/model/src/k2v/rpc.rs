//! K2V RPC: inserts are forwarded to ONE replica of the item's partition
//! (so vector clocks stay as small as the replica set), which applies the
//! DVVS update in a local transaction and then replicates the new state;
//! polls wait on every replica.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::{broadcast, mpsc, watch};

use garage_util::background::{Worker, WorkerState};

use garage_db::{Db, Tree};
use garage_rpc::system::System;
use garage_rpc::{Endpoint, Handler, RpcError, RpcMessage};
use garage_table::{SortRange, Table, TableShardedReplication};
use garage_util::crdt::Crdt;
use garage_util::data::Uuid;
use garage_util::encode::Migrate;
use garage_util::time::Clock;

use super::causality::{CausalContext, K2VNodeId};
use super::item::{DvvsValue, K2VItem, K2VItemPartition};
use super::item_table::{ItemFilter, K2VItemTable};
use super::range::KeyRange;
use super::seen::RangeSeenMarker;
use super::sub::SubscriptionManager;

/// The item table type.
pub type ItemTable = Table<K2VItemTable, TableShardedReplication>;

/// One insert (or delete, with a tombstone) as the API hands it over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InsertedItem {
    /// Bucket and partition key.
    pub partition: K2VItemPartition,
    /// Sort key.
    pub sort_key: String,
    /// The context the client read (from its causality token).
    pub causal_context: Option<CausalContext>,
    /// The new value.
    pub value: DvvsValue,
}

/// K2V messages between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub enum K2VRpc {
    /// Success.
    Ok,
    /// Apply these inserts here, then replicate.
    InsertMany(Vec<InsertedItem>),
    /// Answer to `InsertMany` when the inserts were committed on the
    /// answering node but did not reach the write quorum: the new item
    /// states, for the caller to replicate (never to apply again, which
    /// would store the same value twice under two K2V node ids).
    InsertIncomplete {
        /// The committed items.
        items: Vec<ByteBuf>,
        /// Why replication failed.
        error: String,
    },
    /// Wait until the item is newer than the context.
    PollItem {
        /// Partition.
        partition: K2VItemPartition,
        /// Sort key.
        sort_key: String,
        /// The context the client has.
        causal_context: CausalContext,
        /// How long to wait.
        timeout_msec: u64,
    },
    /// Answer to `PollItem`.
    PollItemResponse(Option<ByteBuf>),
    /// Wait for items of the range newer than the marker.
    PollRange {
        /// Partition.
        partition: K2VItemPartition,
        /// Range.
        range: KeyRange,
        /// Encoded seen marker.
        seen_str: Option<String>,
        /// How long to wait.
        timeout_msec: u64,
    },
    /// Answer to `PollRange`.
    PollRangeResponse {
        /// The K2V id of the answering node.
        node: K2VNodeId,
        /// Items.
        items: Vec<ByteBuf>,
    },
}

impl RpcMessage for K2VRpc {
    type Response = K2VRpc;
}

/// Errors of K2V operations.
#[derive(Debug, thiserror::Error)]
pub enum K2VError {
    /// A seen marker could not be parsed.
    #[error("invalid seen marker")]
    InvalidSeenMarker,
    /// Storage or replication failed.
    #[error(transparent)]
    Table(#[from] garage_table::Error),
    /// RPC failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] garage_db::Error),
    /// A forwarded insert failed before anything was committed.
    #[error("{NOT_APPLIED}: {0}")]
    NotApplied(String),
    /// A grouped commit failed.
    #[error("commit failed: {message}")]
    Commit {
        /// The cause.
        message: String,
    },
}

const LOCAL_TREE: &str = "k2v_local";
const NODE_ID_KEY: &[u8] = b"node_id";
const TIMESTAMP_KEY: &[u8] = b"timestamp";

/// Handles K2V inserts and polls on this node.
pub struct K2VRpcHandler {
    system: Arc<System>,
    /// The item table.
    pub item_table: Arc<ItemTable>,
    subscriptions: Arc<SubscriptionManager>,
    endpoint: Endpoint<K2VRpc>,
    local: Tree,
    node_id: K2VNodeId,
    clock: Clock,
    committer: mpsc::UnboundedSender<PendingInsert>,
    /// The committer's end of the queue, until [`Self::committer_worker`]
    /// takes it.
    committer_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<PendingInsert>>>,
}

/// How a replica's error message starts when it applied nothing of a
/// forwarded insert (so that another replica may take it).
const NOT_APPLIED: &str = "insert not applied";

/// Most inserts committed in one transaction.
const MAX_GROUP_ITEMS: usize = 4096;

/// The committer: waits for an insert, takes every other waiting one, and
/// commits them together in one transaction (group commit) on a blocking
/// thread, so the runtime keeps receiving requests meanwhile and groups
/// grow with the load.
pub struct CommitterWorker {
    handler: std::sync::Weak<K2VRpcHandler>,
    rx: mpsc::UnboundedReceiver<PendingInsert>,
    groups: u64,
    items: u64,
}

#[async_trait]
impl Worker for CommitterWorker {
    fn name(&self) -> String {
        "k2v committer".into()
    }

    fn status(&self) -> String {
        format!(
            "{} groups, {} items committed, {} waiting",
            self.groups,
            self.items,
            self.rx.len()
        )
    }

    async fn work(&mut self, stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        let first = tokio::select! {
            p = self.rx.recv() => p,
            _ = stop.changed() => None,
        };
        let Some(first) = first else {
            return Ok(WorkerState::Done);
        };
        let mut n = first.items.len();
        let mut batch = vec![first];
        while n < MAX_GROUP_ITEMS {
            match self.rx.try_recv() {
                Ok(p) => {
                    n += p.items.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let Some(h) = self.handler.upgrade() else {
            return Ok(WorkerState::Done);
        };
        garage_util::background::spawn_blocking(move || h.commit_group(batch))
            .await
            .map_err(|e| format!("grouped commit failed to run: {e}"))?;
        self.groups += 1;
        self.items += n as u64;
        Ok(WorkerState::Busy)
    }

    async fn wait_for_work(&mut self) {}
}

/// Inserts waiting for the next grouped commit.
struct PendingInsert {
    items: Vec<InsertedItem>,
    done: tokio::sync::oneshot::Sender<Result<Vec<K2VItem>, String>>,
}

/// Reads this database's K2V node id, creating a random one with a new
/// database (so a wiped node never reuses a history that restarted).
pub fn k2v_node_id(db: &Db, random: u64) -> Result<K2VNodeId, garage_db::Error> {
    let t = db.open_tree(LOCAL_TREE)?;
    if let Some(b) = t.get(NODE_ID_KEY)? {
        if let Ok(a) = <[u8; 8]>::try_from(b.as_slice()) {
            return Ok(u64::from_be_bytes(a));
        }
    }
    let id = random.max(1);
    t.insert(NODE_ID_KEY, &id.to_be_bytes())?;
    Ok(id)
}

impl K2VRpcHandler {
    /// Builds the handler and registers it.
    pub fn new(
        system: Arc<System>,
        db: Db,
        item_table: Arc<ItemTable>,
        subscriptions: Arc<SubscriptionManager>,
        node_id: K2VNodeId,
        clock: Clock,
    ) -> Result<Arc<Self>, garage_db::Error> {
        let local = db.open_tree(LOCAL_TREE)?;
        let endpoint = Endpoint::new(system.transport.clone(), "k2v/rpc");
        let (committer, rx) = mpsc::unbounded_channel();
        let h = Arc::new(Self {
            system,
            item_table,
            subscriptions,
            endpoint,
            local,
            node_id,
            clock,
            committer,
            committer_rx: std::sync::Mutex::new(Some(rx)),
        });
        h.endpoint.set_handler(h.clone());
        Ok(h)
    }

    /// The worker committing this node's inserts (once: later calls return
    /// None). Inserts wait until it runs.
    pub fn committer_worker(self: &Arc<Self>) -> Option<CommitterWorker> {
        let rx = self
            .committer_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(CommitterWorker {
            handler: Arc::downgrade(self),
            rx,
            groups: 0,
            items: 0,
        })
    }

    /// This node's K2V id.
    pub fn node_id(&self) -> K2VNodeId {
        self.node_id
    }

    /// The nodes storing the partition in any active layout version, in
    /// the order to try them (self, same zone, lowest ping).
    fn storage_nodes(&self, p: &K2VItemPartition) -> Vec<Uuid> {
        let mut nodes = self.system.storage_nodes_of(&p.hash());
        self.system.sort_by_preference(&mut nodes);
        nodes
    }

    /// Inserts items (grouped by partition, each group to one replica).
    ///
    /// The DVVS update of an insert must be applied by exactly one replica:
    /// applied twice (on two replicas) it would keep the value twice, under
    /// two K2V node ids. So a group moves on to the next replica only when
    /// the previous one surely applied nothing (it was not connected, or
    /// its commit failed); a replica that committed but could not replicate
    /// hands back its result, which is then replicated from here; an
    /// answer that never came (timeout) is an error, not a retry.
    pub async fn insert_many(&self, items: Vec<InsertedItem>) -> Result<(), K2VError> {
        let mut groups: BTreeMap<Vec<Uuid>, Vec<InsertedItem>> = BTreeMap::new();
        for it in items {
            groups
                .entry(self.storage_nodes(&it.partition))
                .or_default()
                .push(it);
        }
        let calls = groups
            .into_iter()
            .map(|(nodes, batch)| self.insert_group(nodes, batch));
        for r in futures::future::join_all(calls).await {
            r?;
        }
        Ok(())
    }

    async fn insert_group(
        &self,
        nodes: Vec<Uuid>,
        batch: Vec<InsertedItem>,
    ) -> Result<(), K2VError> {
        if nodes.is_empty() {
            return Err(K2VError::Rpc(RpcError::NoNodes {
                reason: "the cluster layout is not ready (no layout applied)".into(),
            }));
        }
        let mut last_err: Option<K2VError> = None;
        for node in nodes.iter() {
            if *node == self.system.id {
                // The local replica takes the insert without a round trip.
                match self.apply_local(batch.clone()).await {
                    Ok(new) => return Ok(self.item_table.replicate_stored(&new).await?),
                    Err(e) => {
                        tracing::warn!(error = %e, "local insert failed, trying another replica");
                        last_err = Some(e);
                        continue;
                    }
                }
            }
            let msg = K2VRpc::InsertMany(batch.clone());
            match self
                .endpoint
                .call(*node, &msg, self.system.rpc_timeout)
                .await
            {
                Ok(K2VRpc::Ok) => return Ok(()),
                Ok(K2VRpc::InsertIncomplete { items, error }) => {
                    tracing::debug!(%error, "replica committed without quorum; replicating its result");
                    let items = items
                        .iter()
                        .map(|b| {
                            K2VItem::decode(b)
                                .ok_or(garage_table::Error::Corrupted { table: "k2v_item" })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(self.item_table.insert_many(&items).await?);
                }
                Ok(_) => {
                    return Err(RpcError::Remote {
                        message: "unexpected answer to an insert".into(),
                    }
                    .into())
                }
                Err(e @ RpcError::NotConnected { .. }) => last_err = Some(e.into()),
                Err(RpcError::Remote { message }) if message.starts_with(NOT_APPLIED) => {
                    last_err = Some(K2VError::NotApplied(message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            RpcError::NoNodes {
                reason: "no replica of the partition could take the insert".into(),
            }
            .into()
        }))
    }

    /// Applies inserts locally through the committer worker, which groups
    /// whatever inserts are waiting into one transaction and hands each
    /// caller its new items.
    async fn apply_local(&self, items: Vec<InsertedItem>) -> Result<Vec<K2VItem>, K2VError> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.committer
            .send(PendingInsert { items, done })
            .map_err(|_| K2VError::Commit {
                message: "the committer has stopped".into(),
            })?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(message)) => Err(K2VError::Commit { message }),
            Err(_) => Err(K2VError::Commit {
                message: "the grouped commit was abandoned".into(),
            }),
        }
    }

    /// Commits a group of inserts and answers each caller.
    fn commit_group(&self, batch: Vec<PendingInsert>) {
        let all_items: Vec<InsertedItem> =
            batch.iter().flat_map(|p| p.items.iter().cloned()).collect();
        match self.commit_parsed(&all_items) {
            Ok(mut new) => {
                for p in batch.into_iter().rev() {
                    let mine = new.split_off(new.len() - p.items.len());
                    let _ = p.done.send(Ok(mine));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for p in batch {
                    let _ = p.done.send(Err(msg.clone()));
                }
            }
        }
    }

    /// Applies a group of inserts in ONE transaction of the item table:
    /// the DVVS update of each item with this node's K2V id and persisted
    /// clock, the index counters (summed per partition key) and the clock.
    fn commit_parsed(&self, items: &[InsertedItem]) -> Result<Vec<K2VItem>, K2VError> {
        let counter = &self.item_table.schema().counter;
        let ((), written) = self.item_table.transact(|t| {
            // Items of a group often share partition keys: sum their counter
            // changes and write each counter row once.
            let _deferred = counter.defer();
            let mut ts = t
                .tx()
                .get(&self.local, TIMESTAMP_KEY)?
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            for it in items.iter() {
                let old = t.get(&it.partition, &it.sort_key)?;
                let mut new = old.clone().unwrap_or_else(|| {
                    K2VItem::new(
                        it.partition.bucket_id,
                        it.partition.partition_key.clone(),
                        it.sort_key.clone(),
                    )
                });
                let node_ts = std::cmp::max(ts, self.clock.now_ms());
                let ctx = it.causal_context.as_ref();
                ts = new.update(self.node_id, ctx, it.value.clone(), node_ts);
                t.put(old, new)?;
            }
            counter.flush_deferred(t.tx())?;
            t.tx()
                .insert(&self.local, TIMESTAMP_KEY, &ts.to_be_bytes())?;
            Ok(())
        })?;
        Ok(written)
    }

    /// Applies a forwarded insert. An error before the commit starts with
    /// [`NOT_APPLIED`] (the caller may try another replica); once committed,
    /// a replication failure is answered with the committed items.
    async fn handle_insert_many(&self, items: Vec<InsertedItem>) -> Result<K2VRpc, K2VError> {
        let new = self
            .apply_local(items)
            .await
            .map_err(|e| K2VError::NotApplied(e.to_string()))?;
        match self.item_table.replicate_stored(&new).await {
            Ok(()) => Ok(K2VRpc::Ok),
            Err(e) => {
                let mut enc = Vec::with_capacity(new.len());
                for i in new.iter() {
                    enc.push(ByteBuf::from(i.encode().map_err(|e| {
                        garage_table::Error::Encode {
                            table: "k2v_item",
                            message: e.to_string(),
                        }
                    })?));
                }
                Ok(K2VRpc::InsertIncomplete {
                    items: enc,
                    error: e.to_string(),
                })
            }
        }
    }

    /// Waits until the item holds a value newer than `ctx`, at most
    /// `timeout`; `None` on timeout.
    pub async fn poll_item(
        &self,
        partition: K2VItemPartition,
        sort_key: String,
        ctx: CausalContext,
        timeout: Duration,
    ) -> Result<Option<K2VItem>, K2VError> {
        let nodes = self.storage_nodes(&partition);
        let quorum = self.system.quorums.read;
        let msg = K2VRpc::PollItem {
            partition,
            sort_key,
            causal_context: ctx,
            timeout_msec: timeout.as_millis() as u64,
        };
        let answers = garage_rpc::quorum::call_quorum(
            &self.endpoint,
            &nodes,
            msg,
            quorum,
            timeout + self.system.rpc_timeout,
        )
        .await?;
        let mut merged: Option<K2VItem> = None;
        for (_, a) in answers {
            if let K2VRpc::PollItemResponse(Some(b)) = a {
                let item = K2VItem::decode(&b)
                    .ok_or(garage_table::Error::Corrupted { table: "k2v_item" })?;
                match &mut merged {
                    Some(m) => m.merge(&item),
                    None => merged = Some(item),
                }
            }
        }
        Ok(merged)
    }

    async fn handle_poll_item(
        &self,
        partition: K2VItemPartition,
        sort_key: String,
        ctx: CausalContext,
        timeout: Duration,
    ) -> Result<Option<K2VItem>, K2VError> {
        let mut rx = self.subscriptions.subscribe_item(&partition, &sort_key);
        let deadline = tokio::time::Instant::now() + timeout;
        let newer = |i: &K2VItem| i.causal_context().is_newer_than(&ctx);
        if let Some(i) = self.item_table.get_local(&partition, &sort_key)? {
            if newer(&i) {
                return Ok(Some(i));
            }
        }
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Ok(None),
                Ok(Ok(i)) if newer(&i) => return Ok(Some(i)),
                Ok(Ok(_)) => (),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if let Some(i) = self.item_table.get_local(&partition, &sort_key)? {
                        if newer(&i) {
                            return Ok(Some(i));
                        }
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(None),
            }
        }
    }

    /// Polls a range: without a marker returns the whole range at once;
    /// with one, waits for items newer than it. `None` on timeout.
    pub async fn poll_range(
        &self,
        partition: K2VItemPartition,
        range: KeyRange,
        seen_str: Option<String>,
        timeout: Duration,
    ) -> Result<Option<(BTreeMap<String, K2VItem>, String)>, K2VError> {
        let mut seen = match &seen_str {
            Some(s) => RangeSeenMarker::decode(s).map_err(|_| K2VError::InvalidSeenMarker)?,
            None => RangeSeenMarker::new(),
        };
        seen.restrict(&range);
        let nodes = self.storage_nodes(&partition);
        if nodes.is_empty() {
            return Err(RpcError::NoNodes {
                reason: "the cluster layout is not ready".into(),
            }
            .into());
        }
        let quorum = self.system.quorums.read;
        let msg = Arc::new(K2VRpc::PollRange {
            partition,
            range,
            seen_str: Some(seen.encode()).filter(|_| seen_str.is_some()),
            timeout_msec: timeout.as_millis() as u64,
        });
        let rpc_timeout = timeout + self.system.rpc_timeout;
        let mut calls: FuturesUnordered<_> = nodes
            .iter()
            .map(|n| {
                let (ep, msg, n) = (self.endpoint.clone(), msg.clone(), *n);
                async move { (n, ep.call(n, &msg, rpc_timeout).await) }
            })
            .collect();
        let mut answers = vec![];
        let mut errors = vec![];
        let mut grace: Option<tokio::time::Instant> = None;
        loop {
            let next = match grace {
                Some(g) => match tokio::time::timeout_at(g, calls.next()).await {
                    Ok(x) => x,
                    Err(_) => break,
                },
                None => calls.next().await,
            };
            let Some((_, r)) = next else { break };
            match r {
                Ok(K2VRpc::PollRangeResponse { node, items }) => answers.push((node, items)),
                Ok(_) => errors.push("unexpected answer".to_string()),
                Err(e) => errors.push(e.to_string()),
            }
            if answers.len() >= quorum && grace.is_none() {
                grace = Some(tokio::time::Instant::now() + Duration::from_millis(200));
            }
            if errors.len() > nodes.len().saturating_sub(quorum) {
                return Err(RpcError::Quorum {
                    needed: quorum,
                    succeeded: answers.len(),
                    errors,
                }
                .into());
            }
        }
        if answers.len() < quorum {
            return Err(RpcError::Quorum {
                needed: quorum,
                succeeded: answers.len(),
                errors,
            }
            .into());
        }
        let mut items: BTreeMap<String, K2VItem> = BTreeMap::new();
        for (node, list) in answers {
            let mut decoded = Vec::with_capacity(list.len());
            for b in list {
                decoded.push(
                    K2VItem::decode(&b)
                        .ok_or(garage_table::Error::Corrupted { table: "k2v_item" })?,
                );
            }
            seen.mark_seen_node_items(node, decoded.iter());
            for it in decoded {
                match items.get_mut(&it.sort_key) {
                    Some(m) => m.merge(&it),
                    None => {
                        items.insert(it.sort_key.clone(), it);
                    }
                }
            }
        }
        seen.canonicalize();
        if seen_str.is_some() && items.is_empty() {
            return Ok(None);
        }
        Ok(Some((items, seen.encode())))
    }

    async fn handle_poll_range(
        &self,
        partition: K2VItemPartition,
        range: KeyRange,
        seen_str: Option<String>,
        timeout: Duration,
    ) -> Result<Vec<K2VItem>, K2VError> {
        let mut rx = self.subscriptions.subscribe_partition(&partition);
        let sort_range = range.sort_range();
        let read_all = || {
            self.item_table
                .read_range_local(&partition, &sort_range, None, usize::MAX, false)
        };
        let all = read_all()?;
        let Some(seen_str) = seen_str else {
            return Ok(all);
        };
        let seen = RangeSeenMarker::decode(&seen_str).map_err(|_| K2VError::InvalidSeenMarker)?;
        let new: Vec<K2VItem> = all.into_iter().filter(|i| seen.is_new_item(i)).collect();
        if !new.is_empty() {
            return Ok(new);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Ok(vec![]),
                Ok(Ok(i)) if range.contains(&i.sort_key) && seen.is_new_item(&i) => {
                    // Answer with EVERY new item of the range, not only the
                    // one notified: the coordinator raises the marker's clock
                    // for this node to the largest time returned, which claims
                    // all of this node's earlier writes. Notifications are
                    // sent after commit, outside the transaction, so a write
                    // with a larger time can be notified before an earlier
                    // one; re-reading (every write up to `i` is committed)
                    // keeps that earlier write from being marked seen unsent.
                    let mut new: Vec<K2VItem> = read_all()?
                        .into_iter()
                        .filter(|x| seen.is_new_item(x))
                        .collect();
                    if !new.iter().any(|x| x.sort_key == i.sort_key) {
                        new.push(i);
                    }
                    return Ok(new);
                }
                Ok(Ok(_)) => (),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let new: Vec<K2VItem> = read_all()?
                        .into_iter()
                        .filter(|i| seen.is_new_item(i))
                        .collect();
                    if !new.is_empty() {
                        return Ok(new);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(vec![]),
            }
        }
    }

    async fn dispatch(&self, msg: K2VRpc) -> Result<K2VRpc, K2VError> {
        match msg {
            K2VRpc::InsertMany(items) => self.handle_insert_many(items).await,
            K2VRpc::PollItem {
                partition,
                sort_key,
                causal_context,
                timeout_msec,
            } => {
                let t = Duration::from_millis(timeout_msec.min(600_000));
                let r = self
                    .handle_poll_item(partition, sort_key, causal_context, t)
                    .await?;
                let enc = match r {
                    Some(i) => Some(ByteBuf::from(i.encode().map_err(|e| {
                        garage_table::Error::Encode {
                            table: "k2v_item",
                            message: e.to_string(),
                        }
                    })?)),
                    None => None,
                };
                Ok(K2VRpc::PollItemResponse(enc))
            }
            K2VRpc::PollRange {
                partition,
                range,
                seen_str,
                timeout_msec,
            } => {
                let t = Duration::from_millis(timeout_msec.min(600_000));
                let items = self
                    .handle_poll_range(partition, range, seen_str, t)
                    .await?;
                let mut enc = Vec::with_capacity(items.len());
                for i in items {
                    enc.push(ByteBuf::from(i.encode().map_err(|e| {
                        garage_table::Error::Encode {
                            table: "k2v_item",
                            message: e.to_string(),
                        }
                    })?));
                }
                Ok(K2VRpc::PollRangeResponse {
                    node: self.node_id,
                    items: enc,
                })
            }
            K2VRpc::Ok
            | K2VRpc::InsertIncomplete { .. }
            | K2VRpc::PollItemResponse(_)
            | K2VRpc::PollRangeResponse { .. } => Err(RpcError::Remote {
                message: "unexpected K2V message".into(),
            }
            .into()),
        }
    }

    /// Reads one item from a read quorum.
    pub async fn read_item(
        &self,
        partition: &K2VItemPartition,
        sort_key: &String,
    ) -> Result<Option<K2VItem>, K2VError> {
        Ok(self.item_table.get(partition, sort_key).await?)
    }

    /// Reads items of a partition (range read through the table).
    pub async fn read_range(
        &self,
        partition: &K2VItemPartition,
        range: SortRange,
        filter: ItemFilter,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<K2VItem>, K2VError> {
        Ok(self
            .item_table
            .get_range(partition, range, Some(filter), limit, reverse)
            .await?)
    }
}

#[async_trait]
impl Handler<K2VRpc> for K2VRpcHandler {
    async fn handle(&self, msg: K2VRpc, _from: Uuid) -> Result<K2VRpc, String> {
        self.dispatch(msg).await.map_err(|e| e.to_string())
    }
}
