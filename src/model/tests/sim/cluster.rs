//! The simulated cluster: nodes over a [`MemoryNetwork`], each on its own
//! simulated disk (redb over `SimDisk`), that can crash and restart.
//!
//! A crash drops the node's in-memory state (its `Garage`, workers and
//! in-flight handlers) and fences its database; a restart rebuilds `System`
//! and `Garage` over what the disk kept: everything committed after a
//! process crash, everything synced after a power loss (only simulated on
//! nodes running with `metadata_fsync`, where every commit is synced).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use garage_db::sim_disk::{PowerLoss, SimDisk};
use garage_db::Db;
use garage_model::garage::Garage;
use garage_rpc::layout::{LayoutHistory, NodeRole};
use garage_rpc::memory_transport::MemoryNetwork;
use garage_rpc::system::{System, SystemConfig};
use garage_util::background::BackgroundRunner;
use garage_util::config::Config;
use garage_util::data::Uuid;
use garage_util::rng::Rng;
use garage_util::time::Clock;

/// RPC timeout of every node.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(2);

fn config(dir: &std::path::Path, fsync: bool, gc_delay_secs: u64) -> Config {
    let text = format!(
        "metadata_dir = \"{d}\"\ndata_dir = \"{d}\"\nreplication_factor = 3\n\
         metadata_fsync = {fsync}\nsync_interval_secs = 30\ntombstone_gc_delay_secs = {gc_delay_secs}\n\
         rpc_bind_addr = \"127.0.0.1:1\"\nrpc_secret = \"{s}\"\n[s3_api]\ns3_region = \"garage\"\n",
        d = dir.display(),
        s = "00".repeat(32)
    );
    Config::parse(&text, std::path::Path::new("sim.toml"))
        .expect("sim config")
        .0
}

struct Live {
    garage: Arc<Garage>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// One node: its identity and disk survive crashes.
pub struct Node {
    /// Its id.
    pub id: Uuid,
    dir: tempfile::TempDir,
    /// The simulated disk, or None for the in-memory engine (faster; it
    /// keeps every committed transaction across a restart, as a process
    /// crash does, and cannot lose power).
    disk: Option<SimDisk>,
    memdb: Db,
    fsync: bool,
    clock: Clock,
    starts: u64,
    live: Option<Live>,
}

/// The nodes of one simulation.
pub struct Cluster {
    /// The network between them.
    pub net: Arc<MemoryNetwork>,
    nodes: Mutex<Vec<Node>>,
    seed: u64,
    gc_delay_secs: u64,
}

impl Cluster {
    /// An empty cluster.
    pub fn new(seed: u64, gc_delay_secs: u64) -> Arc<Self> {
        let net = MemoryNetwork::new();
        net.set_no_duplicate_prefixes(&["k2v/rpc"]);
        Arc::new(Self {
            net,
            nodes: Mutex::new(vec![]),
            seed,
            gc_delay_secs,
        })
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds and starts a node, on a simulated disk or not; `skew_ms`
    /// shifts its clock.
    pub fn add_node(&self, on_disk: bool, fsync: bool, skew_ms: u64) -> usize {
        let mut nodes = self.nodes();
        let i = nodes.len();
        let b = u8::try_from(i + 1).expect("fewer than 255 nodes");
        nodes.push(Node {
            id: Uuid::from_bytes([b; 32]),
            dir: tempfile::tempdir().expect("tmp dir"),
            disk: on_disk.then(SimDisk::new),
            memdb: Db::memory(),
            fsync,
            clock: Clock::tokio(1_700_000_000_000 + skew_ms),
            starts: 0,
            live: None,
        });
        drop(nodes);
        self.start(i);
        i
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes().len()
    }

    /// Node ids, by index.
    pub fn ids(&self) -> Vec<Uuid> {
        self.nodes().iter().map(|n| n.id).collect()
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes()[i].live.is_some()
    }

    /// Whether node `i` can lose power: it runs on a simulated disk and
    /// syncs every commit (without fsync a power loss loses acknowledged
    /// writes by design).
    pub fn can_lose_power(&self, i: usize) -> bool {
        let n = &self.nodes()[i];
        n.disk.is_some() && n.fsync
    }

    /// The running state of node `i`.
    pub fn garage(&self, i: usize) -> Option<Arc<Garage>> {
        self.nodes()[i].live.as_ref().map(|l| l.garage.clone())
    }

    /// Every running node.
    pub fn running(&self) -> Vec<(usize, Arc<Garage>)> {
        self.nodes()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.live.as_ref().map(|l| (i, l.garage.clone())))
            .collect()
    }

    /// (Re)starts node `i` over its disk.
    pub fn start(&self, i: usize) {
        let mut nodes = self.nodes();
        let n = &mut nodes[i];
        if n.live.is_some() {
            return;
        }
        n.starts += 1;
        let t = self.net.add_node(n.id);
        let system = System::new(
            t,
            SystemConfig {
                metadata_dir: n.dir.path().to_path_buf(),
                rf: 3,
                consistency: "consistent".into(),
                rpc_timeout: RPC_TIMEOUT,
                rpc_public_addr: None,
            },
        )
        .expect("system over the surviving metadata dir");
        let db = match &n.disk {
            Some(disk) => Db::open_sim(disk, n.fsync).expect("db over the surviving disk"),
            None => n.memdb.clone(),
        };
        let rng = Rng::seeded(
            self.seed
                .wrapping_mul(1000)
                .wrapping_add(n.starts * 16 + i as u64),
        );
        let g = Garage::new(
            config(n.dir.path(), n.fsync, self.gc_delay_secs),
            db,
            system,
            n.clock.clone(),
            rng,
        )
        .expect("garage over the surviving disk");
        let (stop, rx) = tokio::sync::watch::channel(false);
        let bg = BackgroundRunner::new(rx);
        g.spawn_workers(&bg);
        n.live = Some(Live { garage: g, stop });
    }

    /// Crashes node `i`: a process crash keeps every write that reached
    /// the OS, a power loss only what was synced.
    pub fn crash(&self, i: usize, power_loss: bool) {
        let mut nodes = self.nodes();
        let n = &mut nodes[i];
        let Some(live) = n.live.take() else { return };
        self.net.crash(n.id);
        let _ = live.stop.send(true);
        if let Some(disk) = &n.disk {
            if power_loss {
                disk.power_loss(PowerLoss::DropUnsynced);
            } else {
                disk.crash();
            }
        }
    }

    /// Stops everything (breaks the reference cycles through handlers).
    pub fn shutdown(&self) {
        let mut nodes = self.nodes();
        for n in nodes.iter_mut() {
            if let Some(l) = n.live.take() {
                let _ = l.stop.send(true);
            }
        }
        self.net.shutdown();
    }

    /// Stages `roles` (None: remove the node) on node `on`'s layout,
    /// applies them as the next
    /// version and merges the result there (it spreads from there) and on
    /// every node in `also`.
    pub async fn apply_layout(
        &self,
        on: usize,
        roles: &[(Uuid, Option<NodeRole>)],
        also: &[usize],
    ) -> Result<u64, String> {
        let g = self.garage(on).ok_or("layout node down")?;
        let mut l: LayoutHistory = (*g.system.layout()).clone();
        for (id, role) in roles {
            match role {
                Some(r) => l.stage_assign(*id, r.clone()).map_err(|e| e.to_string())?,
                None => l.stage_remove(*id),
            }
        }
        let v = l.current().version + 1;
        let (applied, _) = l.apply_staged_changes(Some(v)).map_err(|e| e.to_string())?;
        g.system
            .merge_layout(&applied)
            .await
            .map_err(|e| e.to_string())?;
        for i in also {
            if let Some(o) = self.garage(*i) {
                o.system
                    .merge_layout(&applied)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(v)
    }
}
