//! [`BlockManager`]: the block store of one node.
//!
//! Writes go to every node storing the block's partition in each active
//! layout version, and succeed when each version's node set has the write
//! quorum (as table writes do). Reads are served locally when the file is
//! there and matches its hash, else from the first node (by preference)
//! that returns a matching block (read quorum 1: a block's content is fixed
//! by its hash, any copy is as good as another).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_bytes::ByteBuf;
use tokio::sync::{Mutex, Notify};

use garage_db::Db;
use garage_rpc::quorum::call_write_sets;
use garage_rpc::system::System;
use garage_rpc::{Endpoint, Handler};
use garage_table::{GcWorker, MerkleWorker, SyncWorker, Table, TableShardedReplication};
use garage_util::background::BackgroundRunner;
use garage_util::config::Config;
use garage_util::data::{blake2sum, Hash, Uuid};
use garage_util::time::Clock;

use crate::block_ref_table::{BlockRef, BlockRefTable};
use crate::error::BlockError;
use crate::layout::DataLayout;
use crate::metrics::BlockMetrics;
use crate::rc::{BlockRc, Rc};
use crate::resync::ResyncQueue;
use crate::rpc::{BlockRpc, BLOCK_RPC_PATH};
use crate::scrub::{ScrubStore, ScrubWorker};
use crate::store::{LocalRead, LocalStore};
use crate::worker::{ResyncWorker, ScanWorker};

/// Longest wait before a block that gained its first reference is
/// checked: the write that follows the reference usually brings it.
const LIVE_CHECK_DELAY_MS: u64 = 10_000;

/// What `stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Block files stored on this node.
    pub blocks: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Whether the start-up count of the files finished (before that,
    /// `blocks` and `bytes` only cover the part counted so far).
    pub counted: bool,
    /// Blocks with a reference count entry here (referenced, or waiting
    /// for their deletion delay).
    pub rc_entries: u64,
    /// Entries of the resync queue.
    pub resync_queue_len: u64,
    /// Blocks whose last resync check failed (retried later).
    pub resync_errors: u64,
}

/// The reference state of a block on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefCount {
    /// No state: never referenced here, or forgotten after deletion.
    Absent,
    /// This many live references.
    Live(u64),
    /// No live reference since this time (ms since the epoch).
    ZeroSince(u64),
}

/// What this node knows of one block (`garage block info`).
#[derive(Debug, Clone)]
pub struct BlockInfo {
    /// The block.
    pub hash: Hash,
    /// Its local file, if any.
    pub path: Option<std::path::PathBuf>,
    /// The file's size.
    pub size: Option<u64>,
    /// The local reference count.
    pub refcount: RefCount,
    /// The references stored here (at most 1000), deleted ones included.
    pub refs: Vec<BlockRef>,
    /// Failed resync checks in a row, and when the next try is due (ms).
    pub errors: Option<(u64, u64)>,
    /// Whether this node stores the block's partition.
    pub stored_here: bool,
}

/// A block whose last resync check failed (`garage block list-errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockErrorInfo {
    /// The block.
    pub hash: Hash,
    /// Failed checks in a row.
    pub failures: u64,
    /// When the next check is due (ms since the epoch).
    pub next_try: u64,
}

/// The files counted per first hash byte.
pub(crate) struct Counts {
    pub(crate) blocks: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Per first byte: whether the start-up scan counted it (later changes
    /// are counted as they happen only for counted prefixes).
    pub(crate) scanned: Vec<AtomicBool>,
}

impl Counts {
    fn new() -> Self {
        Self {
            blocks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            scanned: (0..256).map(|_| AtomicBool::new(false)).collect(),
        }
    }
    fn is_scanned(&self, hash: &Hash) -> bool {
        self.scanned[usize::from(hash.as_slice()[0])].load(Ordering::Acquire)
    }
    pub(crate) fn add(&self, blocks: u64, bytes: u64) {
        self.blocks.fetch_add(blocks, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }
    fn sub(&self, blocks: u64, bytes: u64) {
        let _ = self
            .blocks
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(blocks))
            });
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(bytes))
            });
    }
}

/// The block store of a node: local files, the reference table and the
/// resync machinery.
pub struct BlockManager {
    pub(crate) system: Arc<System>,
    pub(crate) db: Db,
    pub(crate) clock: Clock,
    pub(crate) store: Arc<LocalStore>,
    pub(crate) rc: Arc<BlockRc>,
    pub(crate) resync: Arc<ResyncQueue>,
    table: Arc<Table<BlockRefTable, TableShardedReplication>>,
    endpoint: Endpoint<BlockRpc>,
    /// How long an unreferenced block is kept (ms).
    pub(crate) delete_delay_ms: u64,
    sync_interval: Duration,
    block_size: u64,
    /// One lock per first hash byte, held while a file of that prefix is
    /// written or deleted, or while the prefix is counted.
    pub(crate) locks: Vec<Mutex<()>>,
    pub(crate) counts: Counts,
    /// Set by `launch_repair`, consumed by the scan worker.
    pub(crate) repair_requested: AtomicBool,
    pub(crate) repair_notify: Notify,
    /// Set by `launch_scrub`, consumed by the scrub worker.
    pub(crate) scrub_requested: AtomicBool,
    pub(crate) scrub_notify: Notify,
    /// `disable_scrub`.
    disable_scrub: bool,
    /// The scrub's persisted progress.
    scrub: ScrubStore,
    pub(crate) metrics: BlockMetrics,
}

impl BlockManager {
    /// Opens the store under `config.data_dir` (a single path, or a list of
    /// `{path, capacity}` / `{path, read_only = true}`), registers its RPC
    /// endpoint on `system`'s transport and builds the `block_ref` table on
    /// `db`. Unreferenced blocks are kept `tombstone_gc_delay_secs` (at
    /// least one second).
    pub fn new(
        config: &Config,
        db: Db,
        system: Arc<System>,
        clock: Clock,
    ) -> Result<Arc<Self>, BlockError> {
        let layout = DataLayout::new(&config.data_dir)?;
        let store = Arc::new(LocalStore::new(layout, config.data_fsync)?);
        let rc = Arc::new(BlockRc::new(&db)?);
        let resync = Arc::new(ResyncQueue::new(&db)?);
        let scrub = ScrubStore::new(&db)?;
        // At least a second: a block that arrives just before its
        // reference must not be deleted at once.
        let delete_delay_ms = config.tombstone_gc_delay_secs.max(1).saturating_mul(1000);
        let schema = Arc::new(BlockRefTable {
            rc: rc.clone(),
            resync: resync.clone(),
            clock: clock.clone(),
            delete_delay_ms,
            live_check_delay_ms: LIVE_CHECK_DELAY_MS.min(delete_delay_ms),
        });
        let table = Table::new(
            schema,
            TableShardedReplication {
                system: system.clone(),
            },
            system.clone(),
            db.clone(),
            clock.clone(),
        )?;
        let endpoint = Endpoint::new(system.transport.clone(), BLOCK_RPC_PATH);
        let m = Arc::new(Self {
            system,
            db,
            clock,
            store,
            rc,
            resync,
            table,
            endpoint,
            delete_delay_ms,
            sync_interval: Duration::from_secs(config.sync_interval_secs.max(1)),
            block_size: config.block_size,
            locks: (0..256).map(|_| Mutex::new(())).collect(),
            counts: Counts::new(),
            repair_requested: AtomicBool::new(false),
            repair_notify: Notify::new(),
            scrub_requested: AtomicBool::new(false),
            scrub_notify: Notify::new(),
            disable_scrub: config.disable_scrub,
            scrub,
            metrics: BlockMetrics::new(),
        });
        m.endpoint.set_handler(m.clone());
        Ok(m)
    }

    /// The reference table: which object versions use which block.
    pub fn block_ref_table(&self) -> &Arc<Table<BlockRefTable, TableShardedReplication>> {
        &self.table
    }

    /// The configured block size (`block_size`), in bytes.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Starts the workers: resync, file scan, scrub, and the Merkle,
    /// anti-entropy and tombstone GC workers of the reference table.
    pub fn spawn_workers(self: &Arc<Self>, bg: &BackgroundRunner) {
        bg.spawn_worker(ResyncWorker::new(self.clone()));
        bg.spawn_worker(ScanWorker::new(self.clone()));
        bg.spawn_worker(ScrubWorker::new(
            self.clone(),
            self.scrub.clone(),
            self.disable_scrub,
        ));
        bg.spawn_worker(MerkleWorker::new(self.table.merkle().clone()));
        bg.spawn_worker(SyncWorker::new(self.table.clone(), self.sync_interval));
        bg.spawn_worker(GcWorker::new(
            self.table.clone(),
            Duration::from_millis(self.delete_delay_ms),
        ));
    }

    /// Numbers for `garage` commands, the admin API and `/metrics`.
    pub fn stats(&self) -> BlockStats {
        BlockStats {
            blocks: self.counts.blocks.load(Ordering::Acquire),
            bytes: self.counts.bytes.load(Ordering::Acquire),
            counted: self
                .counts
                .scanned
                .iter()
                .all(|s| s.load(Ordering::Acquire)),
            rc_entries: self.rc.tree.len().unwrap_or(0) as u64,
            resync_queue_len: self.resync.len().unwrap_or(0) as u64,
            resync_errors: self.resync.errors_len().unwrap_or(0) as u64,
        }
    }

    /// Queues every block this node references or stores for a check
    /// (`garage repair blocks`); the scan runs in the background.
    pub fn launch_repair(&self) {
        self.repair_requested.store(true, Ordering::Release);
        self.repair_notify.notify_one();
    }

    /// What this node knows of block `hash`.
    pub async fn info(&self, hash: &Hash) -> Result<BlockInfo, BlockError> {
        let store = self.store.clone();
        let h = *hash;
        let (path, size) = tokio::task::spawn_blocking(move || {
            let path = store.find(&h);
            let size = path
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len());
            (path, size)
        })
        .await?;
        let refcount = match self.rc.get(hash)? {
            None => RefCount::Absent,
            Some(Rc::Live(n)) => RefCount::Live(n),
            Some(Rc::ZeroSince(t)) => RefCount::ZeroSince(t),
        };
        let refs = self.table.read_range_local(
            hash,
            &garage_table::SortRange::all(),
            None,
            1000,
            false,
        )?;
        Ok(BlockInfo {
            hash: *hash,
            path,
            size,
            refcount,
            refs,
            errors: self.resync.error_of(hash)?,
            stored_here: self.system.storage_nodes_of(hash).contains(&self.system.id),
        })
    }

    /// The blocks whose last resync check failed (at most `limit`).
    pub fn list_errors(&self, limit: usize) -> Result<Vec<BlockErrorInfo>, BlockError> {
        Ok(self
            .resync
            .list_errors(limit)?
            .into_iter()
            .map(|(hash, failures, next_try)| BlockErrorInfo {
                hash,
                failures,
                next_try,
            })
            .collect())
    }

    /// Checks these blocks now (all failing blocks when `hashes` is
    /// empty); returns how many were queued.
    pub fn retry_now(&self, hashes: &[Hash]) -> Result<usize, BlockError> {
        let now = self.clock.now_ms();
        let list: Vec<Hash> = if hashes.is_empty() {
            self.resync
                .list_errors(usize::MAX)?
                .into_iter()
                .map(|(h, _, _)| h)
                .collect()
        } else {
            hashes.to_vec()
        };
        for h in list.iter() {
            self.resync.clear_error(h)?;
            self.resync.put(now, h)?;
        }
        Ok(list.len())
    }

    /// Reads back every stored block now and checks it against its hash
    /// (`garage repair scrub`); corrupt copies are replaced from other
    /// nodes.
    pub fn launch_scrub(&self) {
        self.scrub_requested.store(true, Ordering::Release);
        self.scrub_notify.notify_one();
    }

    /// Stores `data`, whose Blake2 hash is `hash`, on the nodes storing
    /// the hash's partition: returns once each active layout version's node
    /// set has the write quorum.
    pub async fn put(&self, hash: Hash, data: Bytes) -> Result<(), BlockError> {
        let _inflight = self.system.write_guard();
        let sets = self.system.write_sets_of(&hash);
        if sets.iter().all(|s| s.is_empty()) {
            return Err(BlockError::NoNodes { hash });
        }
        let msg = BlockRpc::PutBlock {
            hash,
            data: ByteBuf::from(data.to_vec()),
        };
        call_write_sets(
            &self.endpoint,
            &sets,
            msg,
            self.system.quorums.write,
            self.system.rpc_timeout,
        )
        .await?;
        Ok(())
    }

    /// Reads block `hash`: the local file if present and intact, else from
    /// the other nodes that may hold it, by preference. A corrupt local
    /// file is moved aside and replaced by a good copy.
    pub async fn get(&self, hash: &Hash) -> Result<Bytes, BlockError> {
        if let LocalRead::Ok(d) = self.read_local(hash).await? {
            return Ok(Bytes::from(d));
        }
        let data = self.fetch_remote(hash).await?;
        if self.should_hold(hash)? {
            if let Err(e) = self.write_local(*hash, data.clone(), false).await {
                tracing::warn!(block = %hash, error = %e, "cannot keep a fetched block");
            }
        }
        Ok(Bytes::from(data))
    }

    /// Whether this node should hold `hash`: it stores the partition and
    /// has a live reference.
    fn should_hold(&self, hash: &Hash) -> Result<bool, BlockError> {
        Ok(self.system.storage_nodes_of(hash).contains(&self.system.id)
            && self.rc.get(hash)?.is_some_and(|r| r.is_live()))
    }

    fn lock_of(&self, hash: &Hash) -> &Mutex<()> {
        &self.locks[usize::from(hash.as_slice()[0])]
    }

    /// Reads the local file of `hash` (checked). A corrupt file is moved
    /// aside, counted, and the block queued for a check.
    pub(crate) async fn read_local(&self, hash: &Hash) -> Result<LocalRead, BlockError> {
        let store = self.store.clone();
        let h = *hash;
        let r = tokio::task::spawn_blocking(move || store.read(&h)).await??;
        match &r {
            LocalRead::Ok(d) => self.metrics.bytes_read.add(d.len() as u64),
            LocalRead::Corrupt(len) => {
                self.metrics.corruptions.inc();
                if self.counts.is_scanned(hash) {
                    self.counts.sub(1, *len);
                }
                self.resync.put(self.clock.now_ms(), hash)?;
            }
            LocalRead::Missing => (),
        }
        Ok(r)
    }

    /// Writes a block locally (checking its hash first when `verify`). A
    /// block with no reference count yet is recorded as unreferenced since
    /// now, so it is deleted after the delay unless a reference arrives.
    pub(crate) async fn write_local(
        &self,
        hash: Hash,
        data: Vec<u8>,
        verify: bool,
    ) -> Result<(), BlockError> {
        let guard = self.lock_of(&hash).lock().await;
        let store = self.store.clone();
        let len = data.len() as u64;
        let written = tokio::task::spawn_blocking(move || {
            if verify && blake2sum(&data) != hash {
                return Err(BlockError::Corrupt { hash });
            }
            store.write(&hash, &data)
        })
        .await??;
        if written {
            self.metrics.bytes_written.add(len);
            if self.counts.is_scanned(&hash) {
                self.counts.add(1, len);
            }
        }
        drop(guard);
        self.mark_if_unreferenced(&hash)?;
        Ok(())
    }

    /// Records a present block without reference state as unreferenced
    /// since now, queued for a check after the delay.
    pub(crate) fn mark_if_unreferenced(&self, hash: &Hash) -> Result<(), BlockError> {
        // The usual case (the reference came first) needs no write.
        if self.rc.get(hash)?.is_some() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let when = now.saturating_add(self.delete_delay_ms);
        let r: garage_db::TxResult<bool, garage_db::Error> = self.db.transaction(|tx| {
            if self.rc.mark_unreferenced_tx(tx, hash, now)? {
                self.resync.put_tx(tx, when, hash)?;
                Ok(true)
            } else {
                Ok(false)
            }
        });
        if r.map_err(garage_db::Error::from)? {
            self.resync.notify.notify_one();
        }
        Ok(())
    }

    /// Every node that may hold `hash`: the storage nodes of all active
    /// layout versions and of the retired ones still remembered, except
    /// this node, by preference.
    fn holders(&self, hash: &Hash) -> Vec<Uuid> {
        let layout = self.system.layout();
        let mut nodes = self.system.storage_nodes_of(hash);
        for v in layout.old_versions.iter().rev() {
            for n in v.nodes_of(hash) {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        nodes.retain(|n| *n != self.system.id);
        self.system.sort_by_preference(&mut nodes);
        nodes
    }

    /// Fetches `hash` from the first other node that returns it intact.
    pub(crate) async fn fetch_remote(&self, hash: &Hash) -> Result<Vec<u8>, BlockError> {
        let nodes = self.holders(hash);
        let mut errors = vec![];
        let msg = BlockRpc::GetBlock { hash: *hash };
        for n in nodes.iter() {
            match self.endpoint.call(*n, &msg, self.system.rpc_timeout).await {
                Ok(BlockRpc::Block { data }) => {
                    let data = data.into_vec();
                    let ok = {
                        let h = *hash;
                        tokio::task::spawn_blocking(move || (blake2sum(&data) == h, data)).await?
                    };
                    match ok {
                        (true, data) => return Ok(data),
                        (false, _) => errors.push(format!("{n:?}: data does not match the hash")),
                    }
                }
                Ok(BlockRpc::NotFound) => (),
                Ok(_) => errors.push(format!("{n:?}: unexpected answer")),
                Err(e) => errors.push(format!("{n:?}: {e}")),
            }
        }
        Err(BlockError::NotFound {
            hash: *hash,
            tried: nodes.len(),
            errors,
        })
    }

    /// Gives `hash` to the other storage nodes of its partition that
    /// reference it without holding it. With `strict`, every node must
    /// answer (this node may hold the last copy); otherwise unreachable
    /// nodes are skipped.
    pub(crate) async fn offer(&self, hash: &Hash, strict: bool) -> Result<(), BlockError> {
        let me = self.system.id;
        let mut nodes = self.system.storage_nodes_of(hash);
        nodes.retain(|n| *n != me);
        if nodes.is_empty() {
            return if strict {
                Err(BlockError::NoNodes { hash: *hash })
            } else {
                Ok(())
            };
        }
        let timeout = self.system.rpc_timeout;
        let mut data: Option<Vec<u8>> = None;
        let mut errors = vec![];
        for n in nodes {
            match self
                .endpoint
                .call(n, &BlockRpc::NeedBlock { hash: *hash }, timeout)
                .await
            {
                Ok(BlockRpc::Need(true)) => (),
                Ok(BlockRpc::Need(false)) => continue,
                Ok(_) => {
                    errors.push(format!("{n:?}: unexpected answer"));
                    continue;
                }
                Err(e) => {
                    errors.push(format!("{n:?}: {e}"));
                    continue;
                }
            }
            if data.is_none() {
                match self.read_local(hash).await? {
                    LocalRead::Ok(d) => data = Some(d),
                    // Nothing (good) to give.
                    LocalRead::Missing | LocalRead::Corrupt(_) => return Ok(()),
                }
            }
            let msg = BlockRpc::PutBlock {
                hash: *hash,
                data: ByteBuf::from(data.clone().unwrap_or_default()),
            };
            match self.endpoint.call(n, &msg, timeout).await {
                Ok(_) => self.metrics.resync_sent.inc(),
                Err(e) => errors.push(format!("{n:?}: {e}")),
            }
        }
        if strict && !errors.is_empty() {
            return Err(BlockError::HandOff {
                hash: *hash,
                errors,
            });
        }
        Ok(())
    }

    /// One resync check of `hash` (see `doc/blocks.md`):
    /// - referenced here: fetch it if this node stores its partition and
    ///   lacks it; offer it to the storage nodes if this node no longer
    ///   stores the partition;
    /// - unreferenced for less than the delay: check again when it ends;
    /// - unreferenced for longer: offer it to storage nodes that still
    ///   need it, then delete the file and forget the count.
    pub(crate) async fn check(&self, hash: &Hash) -> Result<(), BlockError> {
        let rc = self.rc.get(hash)?;
        let stores_here = self.system.storage_nodes_of(hash).contains(&self.system.id);
        let exists = {
            let store = self.store.clone();
            let h = *hash;
            tokio::task::spawn_blocking(move || store.exists(&h)).await?
        };
        let now = self.clock.now_ms();
        match rc {
            Some(r) if r.is_live() => {
                if stores_here && !exists {
                    let data = self.fetch_remote(hash).await?;
                    self.write_local(*hash, data, false).await?;
                    self.metrics.resync_received.inc();
                } else if !stores_here && exists {
                    self.offer(hash, true).await?;
                }
                Ok(())
            }
            Some(Rc::ZeroSince(t)) if now < t.saturating_add(self.delete_delay_ms) => {
                self.resync
                    .put(t.saturating_add(self.delete_delay_ms), hash)?;
                Ok(())
            }
            Some(zero @ Rc::ZeroSince(_)) => {
                if exists {
                    self.offer(hash, !stores_here).await?;
                    let _g = self.lock_of(hash).lock().await;
                    // A reference may have arrived meanwhile.
                    if self.rc.get(hash)? != Some(zero) {
                        return Ok(());
                    }
                    let store = self.store.clone();
                    let h = *hash;
                    let freed = tokio::task::spawn_blocking(move || store.delete(&h)).await??;
                    if let Some(bytes) = freed {
                        self.metrics.deleted.inc();
                        if self.counts.is_scanned(hash) {
                            self.counts.sub(1, bytes);
                        }
                    }
                }
                self.rc.clear_if(&self.db, hash, zero)?;
                Ok(())
            }
            // No state (or a zero count never written by this code): a
            // present file is an orphan, kept for the delay.
            Some(Rc::Live(_)) | None => {
                if exists {
                    self.mark_if_unreferenced(hash)?;
                }
                Ok(())
            }
        }
    }

    /// Whether this node references `hash` without holding it.
    async fn needs(&self, hash: &Hash) -> Result<bool, BlockError> {
        if !self.rc.get(hash)?.is_some_and(|r| r.is_live()) {
            return Ok(false);
        }
        let store = self.store.clone();
        let h = *hash;
        Ok(!tokio::task::spawn_blocking(move || store.exists(&h)).await?)
    }

    async fn handle_local(&self, msg: BlockRpc) -> Result<BlockRpc, BlockError> {
        match msg {
            BlockRpc::PutBlock { hash, data } => {
                self.write_local(hash, data.into_vec(), true).await?;
                Ok(BlockRpc::Ok)
            }
            BlockRpc::GetBlock { hash } => match self.read_local(&hash).await? {
                LocalRead::Ok(d) => Ok(BlockRpc::Block {
                    data: ByteBuf::from(d),
                }),
                LocalRead::Missing | LocalRead::Corrupt(_) => Ok(BlockRpc::NotFound),
            },
            BlockRpc::NeedBlock { hash } => Ok(BlockRpc::Need(self.needs(&hash).await?)),
            BlockRpc::Ok | BlockRpc::Block { .. } | BlockRpc::NotFound | BlockRpc::Need(_) => {
                Err(BlockError::UnexpectedAnswer("a block request"))
            }
        }
    }
}

#[async_trait]
impl Handler<BlockRpc> for BlockManager {
    async fn handle(&self, msg: BlockRpc, _from: Uuid) -> Result<BlockRpc, String> {
        self.handle_local(msg).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use garage_rpc::memory_transport::MemoryNetwork;
    use garage_rpc::system::SystemConfig;

    /// A block manager on its own in-memory transport node `i`.
    pub(crate) fn node(
        net: &Arc<MemoryNetwork>,
        i: u8,
        dir: &std::path::Path,
    ) -> Arc<BlockManager> {
        let system = System::new(
            net.add_node(Uuid::from_bytes([i; 32])),
            SystemConfig {
                metadata_dir: dir.to_path_buf(),
                rf: 1,
                consistency: "consistent".into(),
                rpc_timeout: Duration::from_secs(2),
                rpc_public_addr: None,
            },
        )
        .expect("system");
        let text = format!(
            "metadata_dir = \"{d}\"\ndata_dir = \"{d}/data\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:1\"\ntombstone_gc_delay_secs = 60\n\
             [s3_api]\ns3_region = \"garage\"\n",
            d = dir.display()
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml"))
            .expect("config")
            .0;
        BlockManager::new(&cfg, Db::memory(), system, Clock::system()).expect("manager")
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::node;
    use super::*;
    use crate::block_ref_table::BlockRef;
    use garage_rpc::layout::NodeRole;
    use garage_rpc::memory_transport::MemoryNetwork;

    /// Gives every node a layout where only `holder` stores data, with no
    /// older version kept active.
    async fn only(nodes: &[&Arc<BlockManager>], holder: &Arc<BlockManager>) {
        let mut l = (*nodes[0].system.layout()).clone();
        for n in nodes {
            if n.system.id == holder.system.id {
                l.stage_assign(
                    n.system.id,
                    NodeRole {
                        zone: "z".into(),
                        capacity: Some(1 << 30),
                        tags: vec![],
                    },
                )
                .expect("assign");
            } else {
                l.stage_remove(n.system.id);
            }
        }
        let next = l.current().version + 1;
        let (mut applied, _) = l.apply_staged_changes(Some(next)).expect("apply");
        applied.keep_only_current();
        for n in nodes {
            n.system.merge_layout(&applied).await.expect("merge");
        }
    }

    #[tokio::test]
    async fn a_former_holder_offers_referenced_blocks_to_the_new_one() {
        let net = MemoryNetwork::new();
        let (da, db) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let a = node(&net, 1, da.path());
        let b = node(&net, 2, db.path());
        only(&[&a, &b], &a).await;
        let data = vec![5u8; 4000];
        let h = blake2sum(&data);
        let r = BlockRef {
            block: h,
            version: Uuid::from_bytes([9; 32]),
            deleted: false,
        };
        a.block_ref_table().insert(&r).await.expect("ref");
        a.put(h, Bytes::from(data.clone())).await.expect("put");
        assert!(a.store.exists(&h) && !b.store.exists(&h));

        // B now stores everything; it got the reference (as anti-entropy
        // would bring it) but not the block. A still references it.
        only(&[&a, &b], &b).await;
        b.block_ref_table().insert(&r).await.expect("ref on b");
        assert!(b.needs(&h).await.expect("needs"));
        assert!(!a.needs(&h).await.expect("needs"));

        // A's check hands it over, and keeps its copy while referenced.
        a.check(&h).await.expect("check");
        assert!(b.store.exists(&h), "block not handed off");
        assert!(a.store.exists(&h));
        assert!(!b.needs(&h).await.expect("needs"));
        assert_eq!(b.get(&h).await.expect("get"), data);

        // With B unreachable, a hand-off cannot complete: the check fails
        // (to be retried), and nothing is deleted.
        net.set_down(b.system.id, true);
        let other = vec![6u8; 10];
        let h2 = blake2sum(&other);
        a.write_local(h2, other, true).await.expect("local");
        let tx: garage_db::TxResult<(), garage_db::Error> = a.db.transaction(|tx| {
            a.rc.add_tx(tx, &h2, 1, 0)?;
            Ok(())
        });
        tx.expect("rc");
        assert!(a.check(&h2).await.is_err());
        assert!(a.store.exists(&h2));
    }
}

#[cfg(test)]
mod scrub_tests {
    use super::*;
    use garage_rpc::memory_transport::MemoryNetwork;
    use garage_util::background::{Worker, WorkerState};

    #[tokio::test]
    async fn scrub_moves_a_corrupt_file_aside_and_queues_it() {
        let net = MemoryNetwork::new();
        let dir = tempfile::tempdir().expect("dir");
        let m = tests_support::node(&net, 1, dir.path());
        let data = vec![8u8; 3000];
        let h = blake2sum(&data);
        m.write_local(h, data, true).await.expect("write");
        let good = blake2sum(b"good");
        m.write_local(good, b"good".to_vec(), true)
            .await
            .expect("write");
        let path = m.store.find(&h).expect("file");
        std::fs::write(&path, b"rotten").expect("corrupt");

        let mut w = ScrubWorker::new(m.clone(), m.scrub.clone(), true);
        let (_tx, mut rx) = tokio::sync::watch::channel(false);
        // Disabled and not asked: nothing to do.
        assert_eq!(w.work(&mut rx).await.expect("step"), WorkerState::Idle);
        m.launch_scrub();
        let mut steps = 0;
        while w.work(&mut rx).await.expect("step") == WorkerState::Busy {
            steps += 1;
        }
        assert_eq!(steps, 256, "one step per first hash byte");
        assert!(!path.exists() && path.with_extension("corrupted").is_file());
        assert!(m.store.exists(&good), "an intact file was touched");
        assert!(
            w.status().contains("files checked: 2, corrupt: 1"),
            "{}",
            w.status()
        );
        // The corrupt block is queued for a check (which would refetch it).
        let due = m.resync.due_batch(u64::MAX, 10).expect("due");
        assert!(due.iter().any(|d| d.hash == h));
        // The progress was saved as finished.
        let s = m.scrub.load(0).expect("state");
        assert_eq!(s.next, 256);
    }
}
