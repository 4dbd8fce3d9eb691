//! Cluster membership: who we are, who our peers are, their status, and
//! the cluster layout every node converges to.
//!
//! Every few seconds each node sends its status (hostname, layout digest,
//! disk space) to all peers. A node that sees a peer with a different
//! layout digest pulls that peer's layout history and merges it (the layout
//! is a CRDT), then pushes the result to everyone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use garage_util::background::{Worker, WorkerState};
use garage_util::data::{Hash, Uuid};
use garage_util::encode::Migrate;

use crate::error::SystemError;
use crate::layout::{LayoutDigest, LayoutError, LayoutHistory};
use crate::net::{Endpoint, Handler, RpcMessage, Transport};

/// How often status is exchanged. Sending it is also how a dead peer is
/// noticed quickly: the transport only sees a closed connection on a write.
pub const STATUS_EXCHANGE_INTERVAL: Duration = Duration::from_secs(3);

/// What a node tells its peers about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Host name.
    pub hostname: String,
    /// Its replication factor (must match ours).
    pub replication_factor: usize,
    /// Its RPC address as it advertises it.
    pub rpc_public_addr: Option<SocketAddr>,
    /// Digest of its layout.
    pub layout_digest: LayoutDigest,
    /// (available, total) bytes on the metadata disk.
    pub meta_disk: Option<(u64, u64)>,
}

/// A node as `garage status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KnownNode {
    /// Its id.
    pub id: Uuid,
    /// Its address.
    pub addr: Option<SocketAddr>,
    /// Whether it is connected.
    pub is_up: bool,
    /// Seconds since last seen.
    pub last_seen_secs_ago: Option<u64>,
    /// Its last status.
    pub status: Option<NodeStatus>,
}

/// Messages of the membership protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SystemRpc {
    /// Generic success.
    Ok,
    /// Connect to `<hex id>@<host:port>`.
    Connect(String),
    /// A node's status.
    AdvertiseStatus(NodeStatus),
    /// Ask for the layout history.
    PullLayout,
    /// A layout history to merge.
    AdvertiseLayout(LayoutHistory),
    /// Ask for the known nodes.
    GetKnownNodes,
    /// Answer to `GetKnownNodes`.
    KnownNodes(Vec<KnownNode>),
}

impl RpcMessage for SystemRpc {
    type Response = SystemRpc;
}

/// Read and write quorums for a replication factor and consistency mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorums {
    /// Copies of each partition.
    pub rf: usize,
    /// Answers needed for a read.
    pub read: usize,
    /// Acknowledgements needed for a write.
    pub write: usize,
}

impl Quorums {
    /// Quorums per the consistency mode (`consistent`, `degraded`, `dangerous`).
    pub fn new(rf: usize, consistency: &str) -> Self {
        let half = rf.div_ceil(2);
        let (read, write) = match consistency {
            "degraded" => (1, rf + 1 - half),
            "dangerous" => (1, 1),
            _ => (half, rf + 1 - half),
        };
        Self { rf, read, write }
    }
}

/// Static parameters of a node's membership.
pub struct SystemConfig {
    /// Where the layout and peer list are kept.
    pub metadata_dir: PathBuf,
    /// Replication factor of the cluster.
    pub rf: usize,
    /// Consistency mode.
    pub consistency: String,
    /// Timeout of one RPC.
    pub rpc_timeout: Duration,
    /// Our advertised address.
    pub rpc_public_addr: Option<SocketAddr>,
}

/// The membership manager of one node.
pub struct System {
    /// This node's id.
    pub id: Uuid,
    /// The transport to peers.
    pub transport: Arc<dyn Transport>,
    /// Quorums.
    pub quorums: Quorums,
    /// Timeout of one RPC.
    pub rpc_timeout: Duration,
    hostname: String,
    config: SystemConfig,
    endpoint: Endpoint<SystemRpc>,
    layout: RwLock<Arc<LayoutHistory>>,
    layout_watch: watch::Sender<u64>,
    statuses: RwLock<BTreeMap<Uuid, (NodeStatus, Instant)>>,
    status_now: Notify,
    /// Average ping of each peer, refreshed with every status exchange.
    pings: RwLock<BTreeMap<Uuid, Duration>>,
    /// Writes in flight, by the layout version current when they started.
    inflight: Mutex<BTreeMap<u64, u64>>,
    /// The layout version each sharded table last completed a full sync
    /// pass for (None: registered, no pass completed yet).
    table_sync: Mutex<BTreeMap<&'static str, Option<u64>>>,
    /// Wakes the tracker worker (a write finished, a sync pass completed).
    trackers_changed: Notify,
    /// The last disk-space reading and when it was taken: `df` is a
    /// process spawn, too costly for every status exchange.
    disk_cache: Mutex<Option<(tokio::time::Instant, DiskSpace)>>,
}

/// (available, total) bytes on the metadata disk, if known.
type DiskSpace = Option<(u64, u64)>;

/// How long a disk-space reading is reused.
const DISK_SPACE_TTL: Duration = Duration::from_secs(60);

/// Held by a write while it uses the write sets of the layout: this node
/// does not acknowledge a newer layout version (its `ack_map` entry) while
/// writes that started under an older one are in flight.
pub struct WriteGuard<'a> {
    system: &'a System,
    version: u64,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut m = self
            .system
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.version) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.version);
                drop(m);
                self.system.trackers_changed.notify_one();
            }
        }
    }
}

const LAYOUT_FILE: &str = "cluster_layout";
const PEER_LIST_FILE: &str = "peer_list";

impl System {
    /// Builds the manager, loading the persisted layout (or starting empty).
    pub fn new(
        transport: Arc<dyn Transport>,
        config: SystemConfig,
    ) -> Result<Arc<Self>, SystemError> {
        let layout_path = config.metadata_dir.join(LAYOUT_FILE);
        let layout = match std::fs::read(&layout_path) {
            Ok(bytes) => {
                let l = LayoutHistory::decode(&bytes).ok_or_else(|| SystemError::LayoutDecode {
                    path: layout_path.display().to_string(),
                })?;
                if l.current().replication_factor != config.rf {
                    return Err(SystemError::StoredReplicationFactor {
                        stored: l.current().replication_factor,
                        config: config.rf,
                        path: layout_path.display().to_string(),
                    });
                }
                l
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LayoutHistory::new(config.rf),
            Err(e) => {
                return Err(SystemError::Io {
                    action: "read",
                    path: layout_path.display().to_string(),
                    source: e,
                })
            }
        };
        let hostname = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into());
        let endpoint = Endpoint::new(transport.clone(), "system");
        let (layout_watch, _) = watch::channel(layout.current().version);
        let sys = Arc::new(Self {
            id: transport.local_id(),
            quorums: Quorums::new(config.rf, &config.consistency),
            rpc_timeout: config.rpc_timeout,
            transport,
            hostname,
            config,
            endpoint,
            layout: RwLock::new(Arc::new(layout)),
            layout_watch,
            statuses: RwLock::new(BTreeMap::new()),
            status_now: Notify::new(),
            pings: RwLock::new(BTreeMap::new()),
            inflight: Mutex::new(BTreeMap::new()),
            table_sync: Mutex::new(BTreeMap::new()),
            trackers_changed: Notify::new(),
            disk_cache: Mutex::new(None),
        });
        sys.endpoint.set_handler(sys.clone());
        Ok(sys)
    }

    /// Peers saved by a previous run, to reconnect to at start.
    pub fn saved_peers(metadata_dir: &std::path::Path) -> Vec<(Uuid, SocketAddr)> {
        let Ok(text) = std::fs::read_to_string(metadata_dir.join(PEER_LIST_FILE)) else {
            return vec![];
        };
        text.lines().filter_map(|l| parse_peer(l).ok()).collect()
    }

    fn save_peers(&self) {
        let mut lines: Vec<String> = self
            .transport
            .peers()
            .into_iter()
            .filter(|p| p.id != self.id)
            .filter_map(|p| p.addr.map(|a| format!("{}@{}", p.id.to_hex(), a)))
            .collect();
        lines.sort();
        let path = self.config.metadata_dir.join(PEER_LIST_FILE);
        let text = lines.join("\n");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if let Err(e) = std::fs::write(&path, text) {
                tracing::warn!(error = %e, "cannot save the peer list");
            }
        }
    }

    /// The current layout history.
    pub fn layout(&self) -> Arc<LayoutHistory> {
        self.layout
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Watches the current layout version.
    pub fn layout_watch(&self) -> watch::Receiver<u64> {
        self.layout_watch.subscribe()
    }

    /// Sorts `nodes` in the order requests should try them: this node
    /// first, then nodes of its zone, then by lowest measured ping (unknown
    /// pings last), then by id.
    pub fn sort_by_preference(&self, nodes: &mut [Uuid]) {
        if nodes.len() <= 1 {
            return;
        }
        let layout = self.layout();
        let cur = layout.current();
        let zone_of = |n: &Uuid| cur.node_role(n).map(|r| r.zone.clone());
        let my_zone = zone_of(&self.id);
        let pings = self.pings.read().unwrap_or_else(|e| e.into_inner());
        nodes.sort_by_cached_key(|n| {
            (
                *n != self.id,
                my_zone.is_none() || zone_of(n) != my_zone,
                pings.get(n).copied().unwrap_or(Duration::MAX),
                *n,
            )
        });
    }

    /// The nodes holding the partition of `hash` in the current layout.
    pub fn nodes_of(&self, hash: &Hash) -> Vec<Uuid> {
        self.layout().current().nodes_of(hash)
    }

    /// The nodes to read the partition of `hash` from: those of the newest
    /// layout version that a write quorum of the older owners has synced
    /// into (the current version when only one is active).
    pub fn read_nodes_of(&self, hash: &Hash) -> Vec<Uuid> {
        let l = self.layout();
        let v = l.sync_map_min(self.quorums.write);
        l.versions
            .iter()
            .find(|x| x.version == v)
            .unwrap_or_else(|| l.current())
            .nodes_of(hash)
    }

    /// One node set per active layout version: a write must reach the
    /// write quorum in each.
    pub fn write_sets_of(&self, hash: &Hash) -> Vec<Vec<Uuid>> {
        self.layout().write_sets_of(hash)
    }

    /// Every node that stores the partition of `hash` in any active version.
    pub fn storage_nodes_of(&self, hash: &Hash) -> Vec<Uuid> {
        let mut all: Vec<Uuid> = self.write_sets_of(hash).into_iter().flatten().collect();
        all.sort();
        all.dedup();
        all
    }

    /// Former storage nodes of the partition of `hash` that may still hold
    /// entries to hand off (see [`LayoutHistory::former_storage_nodes_of`]).
    pub fn former_storage_nodes_of(&self, hash: &Hash) -> Vec<Uuid> {
        self.layout().former_storage_nodes_of(hash)
    }

    /// Marks a write in flight under the current layout version until the
    /// guard is dropped. Take it before computing the write sets.
    pub fn write_guard(&self) -> WriteGuard<'_> {
        let version = self.layout().current().version;
        *self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(version)
            .or_insert(0) += 1;
        WriteGuard {
            system: self,
            version,
        }
    }

    /// Declares a sharded table whose full sync passes this node's
    /// `sync_map` entry waits for.
    pub fn register_sync_table(&self, table: &'static str) {
        self.table_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(table)
            .or_insert(None);
    }

    /// Records that `table` completed a full sync pass with every node
    /// sharing its partitions, started when `ack_map_min` was `version`.
    pub fn report_table_synced(&self, table: &'static str, version: u64) {
        let mut m = self.table_sync.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(table).or_insert(None);
        if e.is_none_or(|v| v < version) {
            *e = Some(version);
        }
        drop(m);
        self.trackers_changed.notify_one();
    }

    /// Raises this node's trackers as far as its state allows: `ack` to the
    /// oldest version with writes in flight (else the current one), `sync`
    /// to the oldest version every sharded table has synced for; then the
    /// usual refresh (`sync_ack`, retirement). Persists and spreads the
    /// layout if anything changed.
    pub async fn update_own_trackers(&self) -> Result<bool, SystemError> {
        let new = {
            let mut guard = self.layout.write().unwrap_or_else(|e| e.into_inner());
            if guard.current().version == 0 {
                return Ok(false);
            }
            let ack = {
                let m = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                m.keys().next().copied()
            }
            .unwrap_or(guard.current().version)
            .min(guard.current().version);
            let sync = {
                let m = self.table_sync.lock().unwrap_or_else(|e| e.into_inner());
                m.values()
                    .map(|v| v.unwrap_or(0))
                    .min()
                    .unwrap_or(guard.current().version)
            };
            let mut l = (**guard).clone();
            let mut changed = l.update_trackers.ack_map.set_max(self.id, ack);
            changed |= l.update_trackers.sync_map.set_max(self.id, sync);
            changed |= l.refresh_trackers(self.id, self.quorums.write);
            if !changed {
                return Ok(false);
            }
            let l = Arc::new(l);
            *guard = l.clone();
            l
        };
        self.persist_layout(&new)?;
        self.layout_watch.send_replace(new.current().version);
        self.broadcast_layout(new).await;
        Ok(true)
    }

    /// The worker keeping this node's transition trackers current.
    pub fn tracker_worker(self: &Arc<Self>) -> TrackerWorker {
        TrackerWorker {
            system: self.clone(),
        }
    }

    /// Merges a layout history into ours; persists and spreads it if it changed.
    pub async fn merge_layout(&self, other: &LayoutHistory) -> Result<bool, SystemError> {
        let new = {
            let mut guard = self.layout.write().unwrap_or_else(|e| e.into_inner());
            let Some(merged) = merge_received_layout(
                &guard,
                other,
                self.config.rf,
                self.id,
                self.quorums.write,
                self.config.consistency == "consistent",
            )?
            else {
                return Ok(false);
            };
            let merged = Arc::new(merged);
            *guard = merged.clone();
            merged
        };
        self.persist_layout(&new)?;
        self.layout_watch.send_replace(new.current().version);
        tracing::info!(version = new.current().version, "layout updated");
        self.broadcast_layout(new).await;
        Ok(true)
    }

    fn persist_layout(&self, l: &LayoutHistory) -> Result<(), SystemError> {
        let bytes = l.encode()?;
        let path = self.config.metadata_dir.join(LAYOUT_FILE);
        let tmp = self.config.metadata_dir.join("cluster_layout.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| SystemError::Io {
                action: "write",
                path: path.display().to_string(),
                source: e,
            })
    }

    async fn broadcast_layout(&self, l: Arc<LayoutHistory>) {
        let msg = SystemRpc::AdvertiseLayout((*l).clone());
        let peers = self.up_peers();
        let calls = peers
            .iter()
            .map(|p| self.endpoint.call(*p, &msg, self.rpc_timeout));
        for r in futures::future::join_all(calls).await {
            if let Err(e) = r {
                tracing::debug!(error = %e, "layout push failed");
            }
        }
    }

    fn up_peers(&self) -> Vec<Uuid> {
        self.transport
            .peers()
            .into_iter()
            .filter(|p| p.is_up && p.id != self.id)
            .map(|p| p.id)
            .collect()
    }

    fn local_status(&self) -> NodeStatus {
        NodeStatus {
            hostname: self.hostname.clone(),
            replication_factor: self.config.rf,
            rpc_public_addr: self.config.rpc_public_addr,
            layout_digest: self.layout().digest(),
            meta_disk: self.cached_disk_space(),
        }
    }

    fn cached_disk_space(&self) -> DiskSpace {
        let mut c = self.disk_cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        match *c {
            Some((at, v)) if now.duration_since(at) < DISK_SPACE_TTL => v,
            _ => {
                let v = disk_space(&self.config.metadata_dir);
                *c = Some((now, v));
                v
            }
        }
    }

    /// Every node we know of, with its state (ourself included).
    pub fn known_nodes(&self) -> Vec<KnownNode> {
        let statuses = self.statuses.read().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<Uuid, KnownNode> = BTreeMap::new();
        for p in self.transport.peers() {
            out.insert(
                p.id,
                KnownNode {
                    id: p.id,
                    addr: p.addr,
                    is_up: p.is_up || p.id == self.id,
                    last_seen_secs_ago: p.last_seen_secs,
                    status: statuses.get(&p.id).map(|s| s.0.clone()),
                },
            );
        }
        for (id, (st, seen)) in statuses.iter() {
            out.entry(*id).or_insert_with(|| KnownNode {
                id: *id,
                addr: st.rpc_public_addr,
                is_up: false,
                last_seen_secs_ago: Some(seen.elapsed().as_secs()),
                status: Some(st.clone()),
            });
        }
        out.insert(
            self.id,
            KnownNode {
                id: self.id,
                addr: self.config.rpc_public_addr,
                is_up: true,
                last_seen_secs_ago: Some(0),
                status: Some(self.local_status()),
            },
        );
        out.into_values().collect()
    }

    /// Connects to `<hex id>@<host:port>`.
    pub async fn connect(&self, peer: &str) -> Result<(), SystemError> {
        let (id, addr) = parse_peer(peer)?;
        self.transport
            .connect(id, addr)
            .await
            .map_err(|e| SystemError::Connect {
                peer: peer.to_string(),
                source: e,
            })?;
        self.status_now.notify_one();
        Ok(())
    }

    async fn exchange_status(&self) {
        let status = self.local_status();
        let msg = SystemRpc::AdvertiseStatus(status);
        let peers = self.up_peers();
        let calls = peers
            .iter()
            .map(|p| self.endpoint.call(*p, &msg, self.rpc_timeout));
        futures::future::join_all(calls).await;
        self.save_peers();
        let pings: BTreeMap<Uuid, Duration> = self
            .transport
            .peers()
            .into_iter()
            .filter_map(|p| Some((p.id, p.avg_ping?)))
            .collect();
        *self.pings.write().unwrap_or_else(|e| e.into_inner()) = pings;
    }

    async fn handle_status(&self, from: Uuid, st: NodeStatus) -> Result<(), SystemError> {
        if st.replication_factor != self.config.rf {
            tracing::error!(
                peer = ?from,
                theirs = st.replication_factor,
                ours = self.config.rf,
                "peer has a different replication factor"
            );
        }
        // A peer that talks to us but that we consider down (it restarted
        // while our reconnection was backing off): connect back now.
        if let Some(addr) = st.rpc_public_addr {
            let known_up = self
                .transport
                .peers()
                .iter()
                .any(|p| p.id == from && p.is_up);
            if !known_up {
                let t = self.transport.clone();
                tokio::spawn(async move {
                    if let Err(e) = t.connect(from, addr).await {
                        tracing::debug!(error = %e, "cannot connect back to a peer");
                    }
                });
            }
        }
        let ours = self.layout().digest();
        let differs = st.layout_digest != ours;
        self.statuses
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(from, (st, Instant::now()));
        if differs {
            match self
                .endpoint
                .call(from, &SystemRpc::PullLayout, self.rpc_timeout)
                .await
            {
                Ok(SystemRpc::AdvertiseLayout(l)) => {
                    self.merge_layout(&l).await?;
                }
                Ok(_) => return Err(SystemError::UnexpectedAnswer("PullLayout")),
                Err(e) => tracing::debug!(error = %e, "cannot pull layout"),
            }
        }
        Ok(())
    }

    /// The background worker exchanging status with peers.
    pub fn status_worker(self: &Arc<Self>) -> StatusExchangeWorker {
        StatusExchangeWorker {
            system: self.clone(),
            first: true,
        }
    }

    /// Calls `SystemRpc` on a node (used by the CLI).
    pub fn endpoint(&self) -> &Endpoint<SystemRpc> {
        &self.endpoint
    }
}

#[async_trait]
impl Handler<SystemRpc> for System {
    async fn handle(&self, msg: SystemRpc, from: Uuid) -> Result<SystemRpc, String> {
        match msg {
            SystemRpc::Connect(peer) => {
                self.connect(&peer).await.map_err(|e| e.to_string())?;
                Ok(SystemRpc::Ok)
            }
            SystemRpc::AdvertiseStatus(st) => {
                self.handle_status(from, st)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(SystemRpc::Ok)
            }
            SystemRpc::PullLayout => Ok(SystemRpc::AdvertiseLayout((*self.layout()).clone())),
            SystemRpc::AdvertiseLayout(l) => {
                self.merge_layout(&l).await.map_err(|e| e.to_string())?;
                Ok(SystemRpc::Ok)
            }
            SystemRpc::GetKnownNodes => Ok(SystemRpc::KnownNodes(self.known_nodes())),
            SystemRpc::Ok | SystemRpc::KnownNodes(_) => Err("unexpected message".into()),
        }
    }
}

/// Raises this node's `ack` / `sync` / `sync_ack` trackers when its writes
/// and sync passes allow, and spreads them.
pub struct TrackerWorker {
    system: Arc<System>,
}

#[async_trait]
impl Worker for TrackerWorker {
    fn name(&self) -> String {
        "layout trackers".into()
    }

    fn status(&self) -> String {
        let l = self.system.layout();
        let t = &l.update_trackers;
        let min = l.min_stored();
        let me = self.system.id;
        format!(
            "live versions {}..={}, own ack #{} sync #{} sync_ack #{}",
            min,
            l.current().version,
            t.ack_map.get(&me, min),
            t.sync_map.get(&me, min),
            t.sync_ack_map.get(&me, min)
        )
    }

    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        self.system
            .update_own_trackers()
            .await
            .map_err(|e| e.to_string())?;
        Ok(WorkerState::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => (),
            _ = self.system.trackers_changed.notified() => (),
        }
    }
}

/// Sends our status to every peer periodically.
pub struct StatusExchangeWorker {
    system: Arc<System>,
    first: bool,
}

#[async_trait]
impl Worker for StatusExchangeWorker {
    fn name(&self) -> String {
        "status exchange".into()
    }
    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        self.system.exchange_status().await;
        Ok(WorkerState::Idle)
    }
    async fn wait_for_work(&mut self) {
        let d = if self.first {
            self.first = false;
            Duration::from_secs(1)
        } else {
            STATUS_EXCHANGE_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(d) => (),
            _ = self.system.status_now.notified() => (),
        }
    }
}

/// Parses `<64 hex>@<host:port>`.
pub fn parse_peer(s: &str) -> Result<(Uuid, SocketAddr), SystemError> {
    let bad = |reason: String| SystemError::BadPeer {
        peer: s.to_string(),
        reason,
    };
    let (id, addr) = s
        .trim()
        .split_once('@')
        .ok_or_else(|| bad("expected <node id>@<host>:<port>".into()))?;
    let id = Uuid::from_hex(id).ok_or_else(|| bad(format!("`{id}` is not a 64-hex node id")))?;
    use std::net::ToSocketAddrs;
    let addr = addr
        .to_socket_addrs()
        .map_err(|e| bad(format!("`{addr}`: {e}")))?
        .next()
        .ok_or_else(|| bad(format!("`{addr}` has no address")))?;
    Ok((id, addr))
}

fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    // statvfs without libc: read it through `df`-like information is not
    // portable; report None when unavailable.
    let out = std::process::Command::new("df")
        .arg("-P")
        .arg("-B1")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().nth(1)?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    let total = cols.get(1)?.parse().ok()?;
    let avail = cols.get(3)?.parse().ok()?;
    Some((avail, total))
}

/// What a node does with a layout history received from a peer: refuses a
/// history without any version or with another replication factor, merges
/// it into `ours`, does the tracker bookkeeping, and refuses a result that
/// fails its checks (unless `ours` failed them already). `None` when the
/// merge changes nothing. A pure function of its inputs, so the fuzzers
/// can drive it with hostile histories.
pub fn merge_received_layout(
    ours: &LayoutHistory,
    other: &LayoutHistory,
    rf: usize,
    local: Uuid,
    write_quorum: usize,
    consistent: bool,
) -> Result<Option<LayoutHistory>, SystemError> {
    // A decoded history may hold no version at all: `current()` would
    // then fail its invariant.
    let Some(theirs) = other.versions.last() else {
        return Err(SystemError::InvalidLayout(LayoutError::CheckFailed {
            reason: "the received history has no version".into(),
        }));
    };
    if theirs.replication_factor != rf && theirs.version > 0 {
        return Err(SystemError::ReplicationFactor {
            theirs: theirs.replication_factor,
            ours: rf,
        });
    }
    let mut merged = ours.clone();
    if !merged.merge(other) {
        return Ok(None);
    }
    merged.refresh_trackers(local, write_quorum);
    if !consistent {
        merged.keep_only_current();
    }
    if let Err(e) = merged.check() {
        if ours.check().is_ok() {
            return Err(SystemError::InvalidLayout(e));
        }
    }
    Ok(Some(merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a peer's history decoded with no version at all made
    /// `merge_layout` hit the invariant of `current()` (a panic, so an
    /// abort of the node).
    #[test]
    fn a_received_history_without_versions_is_refused() {
        let ours = LayoutHistory::new(3);
        let mut empty = LayoutHistory::new(3);
        empty.versions.clear();
        for consistent in [true, false] {
            let r = merge_received_layout(&ours, &empty, 3, Uuid::from([1u8; 32]), 2, consistent);
            assert!(matches!(r, Err(SystemError::InvalidLayout(_))), "{r:?}");
        }
        // The node's own history is unchanged, and a sane one still merges.
        let mut theirs = LayoutHistory::new(3);
        theirs.versions[0].version = 0;
        assert!(merge_received_layout(&ours, &theirs, 3, Uuid::from([1u8; 32]), 2, true).is_ok());
    }

    #[test]
    fn quorums_per_mode() {
        let q = |rf, m| {
            let q = Quorums::new(rf, m);
            (q.write, q.read)
        };
        assert_eq!(q(1, "consistent"), (1, 1));
        assert_eq!(q(2, "consistent"), (2, 1));
        assert_eq!(q(3, "consistent"), (2, 2));
        assert_eq!(q(5, "consistent"), (3, 3));
        assert_eq!(q(3, "degraded"), (2, 1));
        assert_eq!(q(3, "dangerous"), (1, 1));
    }

    #[test]
    fn peers_parse() {
        let id = Uuid::from_bytes([7; 32]);
        let (i, a) = parse_peer(&format!("{}@127.0.0.1:3901", id.to_hex())).expect("parse");
        assert_eq!((i, a.port()), (id, 3901));
        assert!(parse_peer("nope").is_err());
        assert!(parse_peer("abcd@127.0.0.1:1").is_err());
    }
}
