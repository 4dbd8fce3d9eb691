//! An in-process transport: several nodes in one process, no sockets.
//!
//! Besides taking nodes down ([`MemoryNetwork::set_down`]), the network can
//! cut links (a node isolated, a clean split, a one-way link), crash a node
//! ([`MemoryNetwork::crash`]: its handlers and in-flight work are dropped,
//! its peers see closed connections) and, once given a seed
//! ([`MemoryNetwork::set_faults`]), drop, delay and duplicate individual
//! messages. Every random choice comes from that one seeded generator, in
//! the order messages are sent: on a current-thread runtime with a paused
//! clock, the same seed gives the same schedule.
//!
//! What callers observe follows a real connection-oriented transport:
//! - a link cut both ways, a crashed or down peer: `NotConnected` at once
//!   (the request surely was not delivered);
//! - a lost request or answer (a dropped message, a link cut one way):
//!   `Timeout` after the caller's timeout, whether the handler ran or not;
//! - a peer that crashes while handling the request: `Network` (a closed
//!   connection: the handler may have committed part of its work).
//!
//! The handler of a delivered request runs as its own task, as on a remote
//! node: a caller that gives up does not cancel it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::AbortHandle;

use garage_util::data::Uuid;
use garage_util::rng::Rng;

use crate::error::RpcError;
use crate::net::{HandlerRegistry, PeerState, Transport};

/// Per-message fault probabilities, in parts per thousand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultConfig {
    /// A request or an answer is lost.
    pub drop_per_mille: u64,
    /// A request or an answer is delayed by up to `max_delay`.
    pub delay_per_mille: u64,
    /// Longest delay of one message.
    pub max_delay: Duration,
    /// A request is delivered twice (only on idempotent paths, see
    /// [`MemoryNetwork::set_no_duplicate_prefixes`]).
    pub duplicate_per_mille: u64,
}

/// What the network did, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests sent between two distinct nodes.
    pub messages: u64,
    /// Requests or answers dropped at random.
    pub dropped: u64,
    /// Requests or answers delayed.
    pub delayed: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Requests or answers lost on a link cut one way.
    pub lost_one_way: u64,
    /// Requests refused: peer down, crashed, or link cut both ways.
    pub refused: u64,
    /// Requests whose handler was stopped by a crash of its node.
    pub interrupted: u64,
}

struct Faults {
    config: FaultConfig,
    rng: Rng,
}

/// What happens to one message.
enum Fate {
    Deliver(Option<Duration>),
    Lost,
}

#[derive(Default)]
struct NetState {
    /// Running nodes.
    nodes: BTreeMap<Uuid, Arc<MemoryTransport>>,
    /// Every node ever added (peers keep seeing crashed ones, as down).
    known: BTreeSet<Uuid>,
    down: BTreeSet<Uuid>,
    /// Directed cut links: messages from `.0` to `.1` are lost.
    cut: BTreeSet<(Uuid, Uuid)>,
    faults: Option<Faults>,
    /// Path prefixes never duplicated (non-idempotent messages).
    no_duplicate: Vec<String>,
    stats: FaultStats,
}

impl NetState {
    fn fate(&mut self, from: Uuid, to: Uuid) -> Fate {
        if self.cut.contains(&(from, to)) {
            self.stats.lost_one_way += 1;
            return Fate::Lost;
        }
        let Some(f) = &self.faults else {
            return Fate::Deliver(None);
        };
        let roll = |n: u64| f.rng.next_u64() % 1000 < n;
        if roll(f.config.drop_per_mille) {
            self.stats.dropped += 1;
            return Fate::Lost;
        }
        if roll(f.config.delay_per_mille) {
            let max = u64::try_from(f.config.max_delay.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let d = Duration::from_millis(1 + f.rng.next_u64() % max);
            self.stats.delayed += 1;
            return Fate::Deliver(Some(d));
        }
        Fate::Deliver(None)
    }

    fn duplicate(&mut self, path: &str) -> bool {
        let Some(f) = &self.faults else {
            return false;
        };
        if self
            .no_duplicate
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            return false;
        }
        let dup = f.rng.next_u64() % 1000 < f.config.duplicate_per_mille;
        if dup {
            self.stats.duplicated += 1;
        }
        dup
    }
}

/// The shared "network" of in-memory nodes.
#[derive(Default)]
pub struct MemoryNetwork {
    state: Mutex<NetState>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a node, or starts it again after [`Self::crash`] (a new
    /// transport with an empty handler registry).
    pub fn add_node(self: &Arc<Self>, id: Uuid) -> Arc<MemoryTransport> {
        let t = Arc::new(MemoryTransport {
            id,
            net: self.clone(),
            registry: HandlerRegistry::default(),
            alive: AtomicBool::new(true),
            tasks: Mutex::new(Vec::new()),
        });
        let mut s = self.lock();
        s.known.insert(id);
        if let Some(old) = s.nodes.insert(id, t.clone()) {
            old.stop();
        }
        t
    }

    /// Makes a node unreachable (or reachable again).
    pub fn set_down(&self, id: Uuid, down: bool) {
        let mut s = self.lock();
        if down {
            s.down.insert(id);
        } else {
            s.down.remove(&id);
        }
    }

    /// Crashes a node: it leaves the network, the handlers it was running
    /// are stopped and its registry is emptied (so its state can be freed).
    /// [`Self::add_node`] brings it back with a fresh transport.
    pub fn crash(&self, id: Uuid) {
        let t = self.lock().nodes.remove(&id);
        if let Some(t) = t {
            t.stop();
        }
    }

    /// Stops every node (frees their state at the end of a simulation).
    pub fn shutdown(&self) {
        let nodes = std::mem::take(&mut self.lock().nodes);
        for t in nodes.values() {
            t.stop();
        }
    }

    /// Loses every message from `from` to `to` (a one-way cut).
    pub fn cut_one_way(&self, from: Uuid, to: Uuid) {
        self.lock().cut.insert((from, to));
    }

    /// Cuts every link between `a` and `b`, both ways (a clean split when
    /// the two groups cover the cluster; `a = [n]` isolates node `n`).
    pub fn split(&self, a: &[Uuid], b: &[Uuid]) {
        let mut s = self.lock();
        for x in a {
            for y in b {
                if x != y {
                    s.cut.insert((*x, *y));
                    s.cut.insert((*y, *x));
                }
            }
        }
    }

    /// Cuts every link of `id`.
    pub fn isolate(&self, id: Uuid) {
        let others: Vec<Uuid> = self.lock().known.iter().copied().collect();
        self.split(&[id], &others);
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// Starts (or, with `None`, stops) random per-message faults, drawn
    /// from one generator seeded with `seed`.
    pub fn set_faults(&self, config: Option<FaultConfig>, seed: u64) {
        self.lock().faults = config.map(|config| Faults {
            config,
            rng: Rng::seeded(seed),
        });
    }

    /// Requests whose path starts with one of `prefixes` are never
    /// duplicated: they are not idempotent, and the transport a real
    /// cluster uses (TCP, one answer per request id) never delivers a
    /// request twice.
    pub fn set_no_duplicate_prefixes(&self, prefixes: &[&str]) {
        self.lock().no_duplicate = prefixes.iter().map(|p| p.to_string()).collect();
    }

    /// What the network did so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    fn is_down(&self, id: &Uuid) -> bool {
        self.lock().down.contains(id)
    }

    fn get(&self, id: &Uuid) -> Option<Arc<MemoryTransport>> {
        self.lock().nodes.get(id).cloned()
    }
}

/// One node's view of a [`MemoryNetwork`].
pub struct MemoryTransport {
    id: Uuid,
    net: Arc<MemoryNetwork>,
    registry: HandlerRegistry,
    /// False once the node crashed: it neither sends nor answers.
    alive: AtomicBool,
    /// Handlers running for remote callers (stopped on a crash).
    tasks: Mutex<Vec<AbortHandle>>,
}

impl MemoryTransport {
    fn stop(&self) {
        self.alive.store(false, Ordering::SeqCst);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
        self.registry.clear();
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Runs a request's handler on this node as its own task.
    fn spawn_handler(
        self: &Arc<Self>,
        from: Uuid,
        path: &str,
        body: Vec<u8>,
    ) -> tokio::task::JoinHandle<Result<Vec<u8>, String>> {
        let me = self.clone();
        let path = path.to_string();
        let h = tokio::spawn(async move { me.registry.dispatch(from, &path, &body).await });
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(h.abort_handle());
        h
    }

    /// One request's trip: delivery, handling, answer.
    async fn exchange(&self, to: Uuid, path: &str, body: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        let from = self.id;
        let (request, duplicate) = {
            let mut s = self.net.lock();
            s.stats.messages += 1;
            let reachable = s.nodes.contains_key(&to) && !s.down.contains(&to);
            if !reachable || (s.cut.contains(&(from, to)) && s.cut.contains(&(to, from))) {
                s.stats.refused += 1;
                return Err(RpcError::NotConnected { node: to });
            }
            let fate = s.fate(from, to);
            let dup = match fate {
                Fate::Deliver(_) if s.duplicate(path) => Some(s.fate(from, to)),
                _ => None,
            };
            (fate, dup)
        };
        if let Some(Fate::Deliver(delay)) = duplicate {
            // The copy's answer goes nowhere.
            let net = self.net.clone();
            let (path, body) = (path.to_string(), body.clone());
            tokio::spawn(async move {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                if let Some(peer) = net.get(&to) {
                    let _ = peer.spawn_handler(from, &path, body).await;
                }
            });
        }
        let delay = match request {
            Fate::Lost => return std::future::pending().await,
            Fate::Deliver(d) => d,
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        // The peer may have crashed while the request travelled.
        let peer = match self.net.get(&to) {
            Some(p) if p.is_alive() && !self.net.is_down(&to) => p,
            _ => return Err(RpcError::NotConnected { node: to }),
        };
        let answer = match peer.spawn_handler(from, path, body).await {
            Ok(a) => a,
            Err(_) => {
                self.net.lock().stats.interrupted += 1;
                return Err(RpcError::Network {
                    node: to,
                    message: "connection closed: the peer stopped".into(),
                });
            }
        };
        if !self.is_alive() {
            // This node crashed meanwhile: nobody is waiting for the answer.
            return std::future::pending().await;
        }
        let fate = self.net.lock().fate(to, from);
        match fate {
            Fate::Lost => return std::future::pending().await,
            Fate::Deliver(Some(d)) => tokio::time::sleep(d).await,
            Fate::Deliver(None) => (),
        }
        answer.map_err(|message| RpcError::Remote { message })
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn local_id(&self) -> Uuid {
        self.id
    }

    async fn call_raw(
        &self,
        to: Uuid,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if !self.is_alive() {
            return Err(RpcError::NotConnected { node: to });
        }
        if to == self.id {
            return self.registry.call_local(to, path, &body).await;
        }
        if self.net.is_down(&self.id) {
            return Err(RpcError::NotConnected { node: to });
        }
        match tokio::time::timeout(timeout, self.exchange(to, path, body)).await {
            Err(_) => Err(RpcError::Timeout { node: to }),
            Ok(r) => r,
        }
    }

    fn handlers(&self) -> &HandlerRegistry {
        &self.registry
    }

    fn peers(&self) -> Vec<PeerState> {
        let s = self.net.lock();
        s.known
            .iter()
            .map(|id| {
                let both_cut = s.cut.contains(&(self.id, *id)) && s.cut.contains(&(*id, self.id));
                let up = s.nodes.contains_key(id) && !s.down.contains(id) && !both_cut;
                PeerState {
                    id: *id,
                    addr: None,
                    is_up: up || *id == self.id,
                    last_seen_secs: Some(0),
                    avg_ping: None,
                }
            })
            .collect()
    }

    async fn connect(&self, id: Uuid, _addr: SocketAddr) -> Result<(), RpcError> {
        match self.net.get(&id) {
            Some(_) => Ok(()),
            None => Err(RpcError::NotConnected { node: id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::RawHandler;

    struct Echo;
    #[async_trait]
    impl RawHandler for Echo {
        async fn handle_raw(&self, _from: Uuid, body: &[u8]) -> Result<Vec<u8>, String> {
            Ok(body.to_vec())
        }
    }

    fn two() -> (Arc<MemoryNetwork>, Arc<MemoryTransport>, Uuid) {
        let net = MemoryNetwork::new();
        let (a, b) = (Uuid::from_bytes([1; 32]), Uuid::from_bytes([2; 32]));
        let ta = net.add_node(a);
        net.add_node(b).handlers().set("echo", Arc::new(Echo));
        (net, ta, b)
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_and_crashes_are_seen_as_a_real_transport_would() {
        let (net, ta, b) = two();
        let d = Duration::from_secs(1);
        assert_eq!(ta.call_raw(b, "echo", vec![7], d).await.expect("ok"), [7]);
        net.cut_one_way(ta.local_id(), b);
        let r = ta.call_raw(b, "echo", vec![7], d).await;
        assert!(matches!(r, Err(RpcError::Timeout { .. })), "{r:?}");
        net.split(&[ta.local_id()], &[b]);
        let r = ta.call_raw(b, "echo", vec![7], d).await;
        assert!(matches!(r, Err(RpcError::NotConnected { .. })), "{r:?}");
        net.heal();
        net.crash(b);
        let r = ta.call_raw(b, "echo", vec![7], d).await;
        assert!(matches!(r, Err(RpcError::NotConnected { .. })), "{r:?}");
        assert!(!ta.peers().iter().any(|p| p.id == b && p.is_up));
        let tb = net.add_node(b);
        tb.handlers().set("echo", Arc::new(Echo));
        assert_eq!(ta.call_raw(b, "echo", vec![8], d).await.expect("ok"), [8]);
        let s = net.stats();
        assert_eq!((s.lost_one_way, s.refused), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn seeded_faults_replay() {
        let run = |seed| async move {
            let (net, ta, b) = two();
            net.set_faults(
                Some(FaultConfig {
                    drop_per_mille: 200,
                    delay_per_mille: 300,
                    max_delay: Duration::from_millis(50),
                    duplicate_per_mille: 100,
                }),
                seed,
            );
            let mut outcomes = vec![];
            for i in 0..100u8 {
                let r = ta
                    .call_raw(b, "echo", vec![i], Duration::from_secs(1))
                    .await;
                outcomes.push(r.is_ok());
            }
            (outcomes, net.stats())
        };
        let (a, sa) = run(5).await;
        let (b, sb) = run(5).await;
        assert_eq!((a, sa), (b.clone(), sb));
        assert!(
            sa.dropped > 10 && sa.delayed > 10 && sa.duplicated > 3,
            "{sa:?}"
        );
        assert!(b.iter().filter(|ok| !**ok).count() as u64 <= sa.dropped);
    }
}
