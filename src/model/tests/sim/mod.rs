//! One seeded simulation run: a cluster, a fault schedule, a workload, then
//! healing, anti-entropy and the checker.
//!
//! Every choice (cluster size, faults, their times, the operations and the
//! nodes they go through) comes from generators seeded with the run's seed;
//! the run is a single-threaded tokio runtime on a paused clock with
//! blocking work inlined, so a seed replays the same run.

pub mod checker;
pub mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};

use garage_model::garage::Garage;
use garage_model::k2v::causality::CausalContext;
use garage_model::k2v::counter_table::COUNTER_NAMES;
use garage_model::k2v::item::{DvvsValue, K2VItem, K2VItemPartition};
use garage_model::k2v::item_table::ItemFilter;
use garage_model::k2v::rpc::InsertedItem;
use garage_rpc::layout::{partitions, NodeRole};
use garage_rpc::memory_transport::{FaultConfig, FaultStats};
use garage_table::{PartitionKey, SortRange};
use garage_util::data::Uuid;

use checker::{Counts, FinalItem, Key, Outcome, ReadRec, Verdict, WriteRec};
use cluster::Cluster;

const BUCKET: Uuid = Uuid::from_bytes([42; 32]);
const PKS: [&str; 2] = ["p0", "p1"];
const SKS: [&str; 3] = ["a", "b", "c"];

/// Faults a schedule injected, by kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Injected {
    /// One node cut off from all others.
    pub isolate: u64,
    /// The cluster split in two groups.
    pub split: u64,
    /// A link losing messages in one direction.
    pub one_way: u64,
    /// A node killed and restarted (writes that reached the OS survive).
    pub crash: u64,
    /// A node losing power and restarting (only synced writes survive).
    pub power_loss: u64,
    /// A layout change applied mid-run (node added or capacity changed).
    pub layout_change: u64,
}

/// What one run did and found.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Nodes at the end.
    pub nodes: usize,
    /// Faults injected by the schedule.
    pub injected: Injected,
    /// What the network did to single messages.
    pub net: FaultStats,
    /// Write operations acknowledged / of unknown outcome.
    pub acked: usize,
    /// Writes whose outcome is unknown.
    pub unknown: usize,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// A digest of the whole run (history, final state, network stats),
    /// equal for two runs of one seed.
    pub digest: u64,
}

type Shared<T> = Arc<Mutex<T>>;

/// Prints a line of the run's trace when `SIM_TRACE` is set.
fn trace(msg: impl FnOnce() -> String) {
    if std::env::var_os("SIM_TRACE").is_some() {
        eprintln!("[{:?}] {}", tokio::time::Instant::now(), msg());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn partition(pk: &str) -> K2VItemPartition {
    K2VItemPartition {
        bucket_id: BUCKET,
        partition_key: pk.to_string(),
    }
}

fn live_values(i: &K2VItem) -> BTreeSet<Vec<u8>> {
    i.values()
        .into_iter()
        .filter_map(|v| match v {
            DvvsValue::Value(b) => Some(b.clone()),
            DvvsValue::Deleted => None,
        })
        .collect()
}

/// One planned write of an operation.
struct Planned {
    key: Key,
    value: Option<Vec<u8>>,
    ctx: Option<(CausalContext, BTreeSet<Vec<u8>>)>,
}

/// Where a client records its successful reads.
struct Reads<'a> {
    log: &'a Shared<Vec<ReadRec>>,
    base: tokio::time::Instant,
}

impl Reads<'_> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn record(&self, key: Key, started_ms: u64, seen: BTreeSet<Vec<u8>>) {
        lock(self.log).push(ReadRec {
            key,
            started_ms,
            seen,
        });
    }
}

/// Reads an item to write it back with its token.
async fn read_token(
    g: &Garage,
    reads: &Reads<'_>,
    key: &Key,
) -> Option<(CausalContext, BTreeSet<Vec<u8>>, bool)> {
    let started = reads.now_ms();
    let item = g.k2v.rpc.read_item(&partition(&key.0), &key.1).await.ok()?;
    let r = match item {
        Some(i) => (i.causal_context(), live_values(&i), i.is_tombstone()),
        None => (CausalContext::new(), BTreeSet::new(), true),
    };
    reads.record(key.clone(), started, r.1.clone());
    Some(r)
}

/// Runs one client operation; returns the writes it attempted.
async fn client_op(
    g: &Garage,
    reads: &Reads<'_>,
    rng: &Shared<StdRng>,
    client: usize,
    n: usize,
) -> Vec<Planned> {
    let (kind, keys, tokens) = {
        let mut r = lock(rng);
        let kind = r.gen_range(0..10u8);
        let count = if kind >= 7 { r.gen_range(2..=4) } else { 1 };
        let keys: Vec<Key> = (0..count)
            .map(|_| {
                (
                    PKS[r.gen_range(0..PKS.len())].to_string(),
                    SKS[r.gen_range(0..SKS.len())].to_string(),
                )
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tokens: Vec<bool> = keys.iter().map(|_| r.gen_bool(0.6)).collect();
        (kind, keys, tokens)
    };
    let value = |j: usize| Some(format!("c{client}-{n}-{j}").into_bytes());
    let mut planned = vec![];
    match kind {
        // InsertItem, blind.
        0..=1 => planned.push(Planned {
            key: keys[0].clone(),
            value: value(0),
            ctx: None,
        }),
        // InsertItem with the token of a read.
        2..=4 => {
            if let Some((ctx, seen, _)) = read_token(g, reads, &keys[0]).await {
                planned.push(Planned {
                    key: keys[0].clone(),
                    value: value(0),
                    ctx: Some((ctx, seen)),
                });
            }
        }
        // DeleteItem: needs a token; nothing to delete on a tombstone.
        5..=6 => {
            if let Some((ctx, seen, tomb)) = read_token(g, reads, &keys[0]).await {
                if !tomb {
                    planned.push(Planned {
                        key: keys[0].clone(),
                        value: None,
                        ctx: Some((ctx, seen)),
                    });
                }
            }
        }
        // InsertBatch, some items with tokens.
        7..=8 => {
            for (j, (key, tok)) in keys.iter().zip(tokens).enumerate() {
                let ctx = if tok {
                    match read_token(g, reads, key).await {
                        Some((c, s, _)) => Some((c, s)),
                        None => continue,
                    }
                } else {
                    None
                };
                planned.push(Planned {
                    key: key.clone(),
                    value: value(j),
                    ctx,
                });
            }
        }
        // DeleteBatch of a whole partition: read the range, delete each
        // live item with its own token.
        _ => {
            let pk = keys[0].0.clone();
            let filter = ItemFilter {
                exclude_only_tombstones: true,
                conflicts_only: false,
            };
            let started = reads.now_ms();
            if let Ok(items) = g
                .k2v
                .rpc
                .read_range(&partition(&pk), SortRange::all(), filter, 1000, false)
                .await
            {
                // The range covers every sort key: a key it did not return
                // has no live value.
                for sk in SKS {
                    let seen = items
                        .iter()
                        .find(|i| i.sort_key == sk)
                        .map(live_values)
                        .unwrap_or_default();
                    reads.record((pk.clone(), sk.to_string()), started, seen);
                }
                for i in items {
                    planned.push(Planned {
                        key: (pk.clone(), i.sort_key.clone()),
                        value: None,
                        ctx: Some((i.causal_context(), live_values(&i))),
                    });
                }
            }
        }
    }
    planned
}

async fn run_client(
    cluster: Arc<Cluster>,
    rng: Shared<StdRng>,
    history: Shared<Vec<WriteRec>>,
    reads: Shared<Vec<ReadRec>>,
    base: tokio::time::Instant,
    client: usize,
    ops: usize,
) {
    let reads = Reads { log: &reads, base };
    for n in 0..ops {
        let (pause, attached) = {
            let mut r = lock(&rng);
            (r.gen_range(0..2500u64), r.gen_range(0..3usize))
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let up = cluster.running();
        let Some((_, g)) = up
            .iter()
            .find(|(i, _)| *i == (client + attached) % up.len().max(1))
            .or(up.first())
            .cloned()
        else {
            continue;
        };
        // The reads behind tokens come first: a timeout there attempted
        // nothing. The writes are recorded before they are sent.
        let planned = match tokio::time::timeout(
            Duration::from_secs(60),
            client_op(&g, &reads, &rng, client, n),
        )
        .await
        {
            Ok(p) if !p.is_empty() => p,
            _ => continue,
        };
        let n_items = planned.len();
        let items: Vec<InsertedItem> = planned
            .iter()
            .map(|p| InsertedItem {
                partition: partition(&p.key.0),
                sort_key: p.key.1.clone(),
                causal_context: p.ctx.as_ref().map(|(c, _)| c.clone()),
                value: match &p.value {
                    Some(v) => DvvsValue::Value(v.clone()),
                    None => DvvsValue::Deleted,
                },
            })
            .collect();
        let first = {
            let mut h = lock(&history);
            let first = h.len();
            for p in planned {
                h.push(WriteRec {
                    key: p.key,
                    value: p.value,
                    seen: p.ctx.map(|(_, s)| s),
                    outcome: Outcome::Unknown,
                    acked_ms: None,
                });
            }
            first
        };
        trace(|| {
            format!(
                "client {client} op {n} via {:?}: {:?}",
                g.system.id,
                items
                    .iter()
                    .map(|i| (
                        &i.partition.partition_key,
                        &i.sort_key,
                        &i.value,
                        &i.causal_context
                    ))
                    .collect::<Vec<_>>()
            )
        });
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(60), g.k2v.rpc.insert_many(items)).await,
            Ok(Ok(()))
        );
        trace(|| format!("client {client} op {n}: ok {ok}"));
        if ok {
            let at = reads.now_ms();
            for w in lock(&history)[first..first + n_items].iter_mut() {
                w.outcome = Outcome::Acked;
                w.acked_ms = Some(at);
            }
        }
    }
}

/// The fault schedule: a few faults one after the other.
async fn run_faults(
    cluster: Arc<Cluster>,
    rng: Shared<StdRng>,
    events: usize,
    layout_changed: Arc<std::sync::atomic::AtomicBool>,
) -> Injected {
    use std::sync::atomic::Ordering;
    let mut inj = Injected::default();
    for _ in 0..events {
        let (wait, kind, dur) = {
            let mut r = lock(&rng);
            (
                r.gen_range(1000..12_000u64),
                r.gen_range(0..6u8),
                r.gen_range(1000..20_000u64),
            )
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let ids = cluster.ids();
        let n = ids.len();
        let pick = |r: &mut StdRng| r.gen_range(0..n);
        let dur = Duration::from_millis(dur);
        match kind {
            0 => {
                let i = pick(&mut lock(&rng));
                trace(|| format!("isolate {i}"));
                cluster.net.isolate(ids[i]);
                inj.isolate += 1;
                tokio::time::sleep(dur).await;
                trace(|| "heal".into());
                cluster.net.heal();
            }
            1 => {
                let (a, b): (Vec<Uuid>, Vec<Uuid>) = {
                    let mut r = lock(&rng);
                    let k = r.gen_range(1..n);
                    let mut order: Vec<Uuid> = ids.clone();
                    for i in (1..order.len()).rev() {
                        order.swap(i, r.gen_range(0..=i));
                    }
                    let b = order.split_off(k);
                    (order, b)
                };
                trace(|| format!("split {a:?} / {b:?}"));
                cluster.net.split(&a, &b);
                inj.split += 1;
                tokio::time::sleep(dur).await;
                trace(|| "heal".into());
                cluster.net.heal();
            }
            2 => {
                let (a, b) = {
                    let mut r = lock(&rng);
                    let a = r.gen_range(0..n);
                    (a, (a + r.gen_range(1..n)) % n)
                };
                trace(|| format!("one-way cut {a} -> {b}"));
                cluster.net.cut_one_way(ids[a], ids[b]);
                inj.one_way += 1;
                tokio::time::sleep(dur).await;
                trace(|| "heal".into());
                cluster.net.heal();
            }
            3 | 4 => {
                let (i, power) = {
                    let mut r = lock(&rng);
                    let i = r.gen_range(0..n);
                    (i, r.gen_bool(0.5))
                };
                if !cluster.is_up(i) {
                    continue;
                }
                let power = power && cluster.can_lose_power(i);
                trace(|| format!("crash {i} power {power}"));
                cluster.crash(i, power);
                if power {
                    inj.power_loss += 1;
                } else {
                    inj.crash += 1;
                }
                tokio::time::sleep(dur).await;
                trace(|| format!("restart {i}"));
                cluster.start(i);
            }
            _ if !layout_changed.load(Ordering::SeqCst) => {
                let (action, on, disk, fsync, skew) = {
                    let mut r = lock(&rng);
                    (
                        r.gen_range(0..3u8),
                        r.gen_range(0..n),
                        r.gen_bool(0.4),
                        r.gen_bool(0.5),
                        r.gen_range(0..3000u64),
                    )
                };
                let Some(g) = cluster.garage(on) else {
                    continue;
                };
                // As an operator must: on a node that has the newest
                // layout, one change at a time. (Two nodes applying
                // different changes under the same version number fork the
                // layout, and the layout digest does not tell the forks
                // apart: see doc/reliability.md.)
                let newest = cluster
                    .running()
                    .iter()
                    .map(|(_, o)| o.system.layout().current().version)
                    .max()
                    .unwrap_or(0);
                if g.system.layout().current().version < newest
                    || layout_changed.swap(true, Ordering::SeqCst)
                {
                    continue;
                }
                let storage = g.system.layout().current().storage_nodes().to_vec();
                let role = |i: usize, cap: u64| {
                    Some(NodeRole {
                        zone: format!("dc{i}"),
                        capacity: Some(cap),
                        tags: vec![],
                    })
                };
                // Add a node, remove one (it keeps running, as a node does
                // until its operator stops it), or change a capacity.
                let (roles, also) = match action {
                    0 if n < 5 => {
                        let i = cluster.add_node(disk, fsync, skew);
                        (vec![(cluster.ids()[i], role(i, 1_000_000_000))], vec![i])
                    }
                    1 if storage.len() >= 4 => {
                        let victim = storage[skew as usize % storage.len()];
                        (vec![(victim, None)], vec![])
                    }
                    _ => (vec![(ids[on], role(on, 3_000_000_000))], vec![]),
                };
                trace(|| format!("layout change on {on}: {roles:?}"));
                match cluster.apply_layout(on, &roles, &also).await {
                    Ok(_) => inj.layout_change += 1,
                    Err(_) => layout_changed.store(false, Ordering::SeqCst),
                }
            }
            _ => (),
        }
    }
    inj
}

/// The state every node should converge to, read from the first storage
/// node of each partition key, plus the counter table's values.
fn final_state(cluster: &Cluster) -> (BTreeMap<Key, FinalItem>, BTreeMap<String, Counts>) {
    let running = cluster.running();
    let ids = cluster.ids();
    let by_id = |id: &Uuid| {
        let i = ids.iter().position(|x| x == id)?;
        running
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, g)| g.clone())
    };
    let mut state = BTreeMap::new();
    let mut counters = BTreeMap::new();
    let Some((_, any)) = running.first() else {
        return (state, counters);
    };
    let layout = any.system.layout();
    for pk in PKS {
        let p = partition(pk);
        let nodes = any.system.storage_nodes_of(&p.hash());
        let Some(g) = nodes.first().and_then(by_id) else {
            continue;
        };
        let items = g
            .k2v
            .item_table
            .read_range_local(&p, &SortRange::all(), None, usize::MAX, false)
            .unwrap_or_default();
        for i in items {
            let vals: FinalItem = i
                .values()
                .into_iter()
                .map(|v| match v {
                    DvvsValue::Value(b) => Some(b.clone()),
                    DvvsValue::Deleted => None,
                })
                .collect();
            state.insert((pk.to_string(), i.sort_key.clone()), vals);
        }
        let cnodes = any.system.storage_nodes_of(&PartitionKey::hash(&BUCKET));
        let Some(cg) = cnodes.first().and_then(by_id) else {
            continue;
        };
        if let Ok(Some(e)) = cg.k2v.counter_table.get_local(&BUCKET, &pk.to_string()) {
            let v = e.filtered_values(&layout.all_storage_nodes());
            let get = |k: &str| *v.get(k).unwrap_or(&0);
            let c = Counts {
                entries: get(COUNTER_NAMES[0]),
                conflicts: get(COUNTER_NAMES[1]),
                values: get(COUNTER_NAMES[2]),
                bytes: get(COUNTER_NAMES[3]),
            };
            if c != Counts::default() {
                counters.insert(pk.to_string(), c);
            }
        }
    }
    (state, counters)
}

/// Why the cluster has not converged yet (None once it has).
async fn divergence(cluster: &Cluster) -> Option<String> {
    let running = cluster.running();
    if running.len() != cluster.len() {
        return Some("a node is down".into());
    }
    let ids = cluster.ids();
    let (_, first) = &running[0];
    let layout = first.system.layout();
    for (i, g) in running.iter() {
        let l = g.system.layout();
        if l.digest() != layout.digest() {
            return Some(format!("node {i} has another layout"));
        }
        if l.min_stored() != l.current().version {
            return Some(format!(
                "node {i}: layout transition {}..{} not finished",
                l.min_stored(),
                l.current().version
            ));
        }
        for r in [
            g.k2v.item_table.flush_merkle().await,
            g.k2v.counter_table.flush_merkle().await,
        ] {
            if let Err(e) = r {
                return Some(format!("node {i}: Merkle flush failed: {e}"));
            }
        }
    }
    for (p, hash) in partitions() {
        let nodes = first.system.storage_nodes_of(&hash);
        let mut roots = BTreeSet::new();
        let mut per_node = vec![];
        for id in nodes.iter() {
            let Some(i) = ids.iter().position(|x| x == id) else {
                return Some(format!("unknown storage node {id:?}"));
            };
            let g = &running[i].1;
            let item = g.k2v.item_table.merkle().root(u16::from(p));
            let counter = g.k2v.counter_table.merkle().root(u16::from(p));
            match (item, counter) {
                (Ok(a), Ok(b)) => {
                    roots.insert((a, b));
                    per_node.push((i, a.is_some(), b.is_some()));
                }
                _ => return Some(format!("node {i}: cannot read Merkle roots")),
            };
        }
        if roots.len() > 1 {
            return Some(format!(
                "partition {p}: replicas differ (node, has items, has counters): {per_node:?}"
            ));
        }
    }
    let (state, counters) = final_state(cluster);
    if let Some(m) = checker::counter_mismatches(&state, &counters).pop() {
        return Some(format!("index counters not settled: {m}"));
    }
    None
}

/// Runs the simulation of `seed` to the end and checks it.
pub async fn run(seed: u64) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let n0 = rng.gen_range(3..=4usize);
    let gc_delay = if rng.gen_bool(0.5) { 20 } else { 86_400 };
    let cluster = Cluster::new(seed, gc_delay);
    for _ in 0..n0 {
        let (disk, fsync, skew) = (
            rng.gen_bool(0.4),
            rng.gen_bool(0.5),
            rng.gen_range(0..3000u64),
        );
        cluster.add_node(disk, fsync, skew);
    }
    let ids = cluster.ids();
    let roles: Vec<(Uuid, Option<NodeRole>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                *id,
                Some(NodeRole {
                    zone: format!("dc{i}"),
                    capacity: Some(1_000_000_000),
                    tags: vec![],
                }),
            )
        })
        .collect();
    let all: Vec<usize> = (0..n0).collect();
    cluster
        .apply_layout(0, &roles, &all)
        .await
        .expect("initial layout");

    // One seed in four is rough: many more messages lost.
    let rough = rng.gen_bool(0.25);
    let faults = FaultConfig {
        drop_per_mille: rng.gen_range(0..if rough { 150 } else { 30 }),
        delay_per_mille: rng.gen_range(0..300),
        max_delay: Duration::from_millis(rng.gen_range(1..500)),
        duplicate_per_mille: rng.gen_range(0..30),
    };
    cluster.net.set_faults(Some(faults), rng.gen());
    let events = rng.gen_range(2..=5);
    let clients = 3;
    let ops = rng.gen_range(15..=40);
    let shared = Arc::new(Mutex::new(StdRng::seed_from_u64(rng.gen())));
    let history: Shared<Vec<WriteRec>> = Arc::new(Mutex::new(vec![]));
    let reads: Shared<Vec<ReadRec>> = Arc::new(Mutex::new(vec![]));

    // One or two fault lanes: with two, faults overlap (a crash during a
    // partition; a heal ends both lanes' cuts).
    let lanes = rng.gen_range(1..=2usize);
    let layout_changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fault_tasks: Vec<_> = (0..lanes)
        .map(|_| {
            tokio::spawn(run_faults(
                cluster.clone(),
                shared.clone(),
                events,
                layout_changed.clone(),
            ))
        })
        .collect();
    let base = tokio::time::Instant::now();
    let client_tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(run_client(
                cluster.clone(),
                shared.clone(),
                history.clone(),
                reads.clone(),
                base,
                c,
                ops,
            ))
        })
        .collect();
    for t in client_tasks {
        t.await.expect("client task");
    }
    let mut injected = Injected::default();
    for t in fault_tasks {
        let i = t.await.expect("fault task");
        injected.isolate += i.isolate;
        injected.split += i.split;
        injected.one_way += i.one_way;
        injected.crash += i.crash;
        injected.power_loss += i.power_loss;
        injected.layout_change += i.layout_change;
    }

    // Heal: no more faults, every node up, then let anti-entropy settle.
    cluster.net.set_faults(None, 0);
    cluster.net.heal();
    for i in 0..cluster.len() {
        cluster.start(i);
    }
    let mut stuck = None;
    for _ in 0..60 {
        for (_, g) in cluster.running() {
            g.k2v.item_table.sync_trigger().request();
            g.k2v.counter_table.sync_trigger().request();
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        stuck = divergence(&cluster).await;
        if stuck.is_none() {
            break;
        }
    }

    let history = lock(&history).clone();
    let reads = lock(&reads).clone();
    let (state, counters) = final_state(&cluster);
    let mut verdict = checker::check(&history, &reads, &state, &counters);
    if let Some(why) = stuck {
        verdict
            .violations
            .push(format!("no convergence after 5 simulated minutes: {why}"));
    }
    if std::env::var_os("SIM_TRACE").is_some() {
        for (i, g) in cluster.running() {
            for pk in PKS {
                let items = g
                    .k2v
                    .item_table
                    .read_range_local(&partition(pk), &SortRange::all(), None, usize::MAX, false)
                    .unwrap_or_default();
                for it in items {
                    eprintln!("final node {i} {pk}/{}: {:?}", it.sort_key, it.entries());
                }
            }
            eprintln!("node {i} k2v id {}", g.k2v.rpc.node_id());
        }
    }
    let net = cluster.net.stats();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    history.hash(&mut h);
    reads.hash(&mut h);
    state.hash(&mut h);
    std::hash::Hash::hash(&format!("{net:?}"), &mut h);
    let report = Report {
        seed,
        nodes: cluster.len(),
        injected,
        net,
        acked: history
            .iter()
            .filter(|w| w.outcome == Outcome::Acked)
            .count(),
        unknown: history
            .iter()
            .filter(|w| w.outcome == Outcome::Unknown)
            .count(),
        verdict,
        digest: h.finish(),
    };
    cluster.shutdown();
    report
}

/// Runs `seed` on its own single-threaded runtime with a paused clock and
/// blocking work inlined (the deterministic setting).
pub fn run_seed(seed: u64) -> Report {
    garage_util::background::set_inline_blocking(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let r = rt.block_on(run(seed));
    drop(rt);
    r
}
