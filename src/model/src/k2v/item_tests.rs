//! DVVS tests. States are produced the way the system produces them: random
//! histories of writes (each applied on the writer's own replica, with a
//! per-node monotonic clock) and merges between replicas. The simulator is
//! shared with the seen-marker tests.

use std::collections::{BTreeMap, BTreeSet};

use garage_util::crdt::{laws, Crdt};
use garage_util::data::{blake2sum, Uuid};
use garage_util::encode::Migrate;
use proptest::prelude::*;
use proptest::sample::Index;

use super::super::causality::{CausalContext, K2VNodeId};
use super::*;

/// Node ids of the simulated replicas; not in replica order, so "by node id"
/// and "by replica" orders differ.
pub(crate) const NODES: [K2VNodeId; 4] = [42, 7, 1 << 40, 3];
/// Sort keys of the simulated items.
pub(crate) const KEYS: [&str; 4] = ["a", "ab", "b", "c"];

pub(crate) fn bucket() -> Uuid {
    Uuid::from([9u8; 32])
}

/// Where a write's causality token comes from.
#[derive(Debug, Clone)]
pub(crate) enum CtxChoice {
    /// No token: the write must become a concurrent value.
    None,
    /// Read just now from this replica.
    Fresh(usize),
    /// A token some client read earlier (if any was read for that key).
    Old(Index),
}

/// One step of a history.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// A client write handled by the node owning `replica`.
    Write {
        replica: usize,
        key: usize,
        ctx: CtxChoice,
        /// `None` writes a tombstone.
        value: Option<u8>,
        /// Wall-clock milliseconds elapsed before this step.
        tick: u64,
    },
    /// Replication / anti-entropy: `to` merges the state of `from`.
    Merge { from: usize, to: usize, key: usize },
}

/// A history: number of replicas, per-node clock skews, steps.
#[derive(Debug, Clone)]
pub(crate) struct History {
    pub n: usize,
    pub skew: Vec<u64>,
    pub ops: Vec<Op>,
}

pub(crate) fn value_of(v: Option<u8>) -> DvvsValue {
    match v {
        // A small alphabet so that equal values get written concurrently.
        Some(k) => DvvsValue::Value(vec![b'a' + k % 4; usize::from(k % 3)]),
        None => DvvsValue::Deleted,
    }
}

fn op_strategy(n: usize, keys: usize) -> impl Strategy<Value = Op> {
    let ctx = prop_oneof![
        1 => Just(CtxChoice::None),
        2 => (0..n).prop_map(CtxChoice::Fresh),
        1 => any::<Index>().prop_map(CtxChoice::Old),
    ];
    prop_oneof![
        3 => (0..n, 0..keys, ctx, prop::option::weighted(0.8, 0u8..6), 0u64..3).prop_map(
            |(replica, key, ctx, value, tick)| Op::Write { replica, key, ctx, value, tick }
        ),
        2 => (0..n, 0..n, 0..keys).prop_map(|(from, to, key)| Op::Merge { from, to, key }),
    ]
}

pub(crate) fn history_strategy(keys: usize, max_ops: usize) -> impl Strategy<Value = History> {
    (2usize..=4).prop_flat_map(move |n| {
        (
            prop::collection::vec(0u64..5, n),
            prop::collection::vec(op_strategy(n, keys), 0..max_ops),
        )
            .prop_map(move |(skew, ops)| History { n, skew, ops })
    })
}

/// Replicas of `keys` items, replayed through a history.
#[derive(Debug, Clone)]
pub(crate) struct Sim {
    /// `replicas[r][k]`: replica `r`'s copy of item `KEYS[k]`.
    pub replicas: Vec<Vec<K2VItem>>,
    /// Persisted local timestamp of each node.
    pub local_ts: Vec<u64>,
    skew: Vec<u64>,
    now: u64,
    /// Tokens clients have read so far, per key.
    tokens: Vec<Vec<CausalContext>>,
    /// Every state any replica went through, per key.
    pub snapshots: Vec<Vec<K2VItem>>,
}

impl Sim {
    pub fn new(n: usize, keys: usize, skew: Vec<u64>) -> Self {
        let items: Vec<K2VItem> = (0..keys)
            .map(|k| K2VItem::new(bucket(), "pk".into(), KEYS[k].into()))
            .collect();
        Self {
            replicas: vec![items.clone(); n],
            local_ts: vec![0; n],
            skew,
            now: 1000,
            tokens: vec![vec![]; keys],
            snapshots: items.into_iter().map(|i| vec![i]).collect(),
        }
    }

    pub fn run(h: &History, keys: usize) -> Self {
        let mut sim = Self::new(h.n, keys, h.skew.clone());
        for op in &h.ops {
            sim.apply(op);
        }
        sim
    }

    /// A client write through node `replica`; returns the new value's time.
    pub fn write(
        &mut self,
        replica: usize,
        key: usize,
        ctx: Option<&CausalContext>,
        value: DvvsValue,
    ) -> u64 {
        let node_ts = self.local_ts[replica].max(self.now + self.skew[replica]);
        let t = self.replicas[replica][key].update(NODES[replica], ctx, value, node_ts);
        assert!(t > node_ts);
        self.local_ts[replica] = t;
        self.snapshots[key].push(self.replicas[replica][key].clone());
        t
    }

    pub fn merge(&mut self, from: usize, to: usize, key: usize) {
        let other = self.replicas[from][key].clone();
        self.replicas[to][key].merge(&other);
        self.snapshots[key].push(self.replicas[to][key].clone());
    }

    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Write {
                replica,
                key,
                ctx,
                value,
                tick,
            } => {
                self.now += tick;
                let ctx = match ctx {
                    CtxChoice::None => None,
                    CtxChoice::Fresh(r) => {
                        let c = self.replicas[*r][*key].causal_context();
                        self.tokens[*key].push(c.clone());
                        Some(c)
                    }
                    CtxChoice::Old(i) if !self.tokens[*key].is_empty() => {
                        Some(self.tokens[*key][i.index(self.tokens[*key].len())].clone())
                    }
                    CtxChoice::Old(_) => None,
                };
                self.write(*replica, *key, ctx.as_ref(), value_of(*value));
            }
            Op::Merge { from, to, key } => self.merge(*from, *to, *key),
        }
    }

    /// Every replica merges every other one (twice round, so all converge).
    pub fn full_sync(&mut self) {
        let n = self.replicas.len();
        for key in 0..self.replicas[0].len() {
            for _ in 0..2 {
                for from in 0..n {
                    for to in 0..n {
                        self.merge(from, to, key);
                    }
                }
            }
        }
    }
}

/// The `(node, time)` identifiers ("dots") of the values an item holds.
pub(crate) fn dots(item: &K2VItem) -> BTreeSet<(K2VNodeId, u64)> {
    item.entries()
        .iter()
        .flat_map(|(node, e)| e.values.iter().map(move |(t, _)| (*node, *t)))
        .collect()
}

fn value_at(item: &K2VItem, dot: (K2VNodeId, u64)) -> Option<&DvvsValue> {
    item.entries()
        .get(&dot.0)?
        .values
        .iter()
        .find(|(t, _)| *t == dot.1)
        .map(|(_, v)| v)
}

fn check_invariants(item: &K2VItem) {
    for entry in item.entries().values() {
        let mut last = entry.t_discard;
        for (t, _) in &entry.values {
            assert!(
                *t > last,
                "times must increase and exceed t_discard: {item:?}"
            );
            last = *t;
        }
    }
}

/// The expected read: all values sorted by (node id, time), first copy kept.
fn expected_values(item: &K2VItem) -> Vec<DvvsValue> {
    let mut all: Vec<(K2VNodeId, u64, DvvsValue)> = vec![];
    for (node, entry) in item.entries() {
        for (t, v) in &entry.values {
            all.push((*node, *t, v.clone()));
        }
    }
    all.sort_by_key(|(n, t, _)| (*n, *t));
    let mut out: Vec<DvvsValue> = vec![];
    for (_, _, v) in all {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn owned(values: Vec<&DvvsValue>) -> Vec<DvvsValue> {
    values.into_iter().cloned().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn crdt_laws_on_reachable_states(
        h in history_strategy(1, 50),
        a in any::<Index>(), b in any::<Index>(), c in any::<Index>(),
    ) {
        let sim = Sim::run(&h, 1);
        let snaps = &sim.snapshots[0];
        let pick = |i: &Index| &snaps[i.index(snaps.len())];
        laws::check(pick(&a), pick(&b), pick(&c));
        let finals: Vec<&K2VItem> = sim.replicas.iter().map(|r| &r[0]).collect();
        laws::check(finals[0], finals[1], finals[finals.len() - 1]);
        laws::check(finals[finals.len() - 1], pick(&a), finals[0]);
    }

    #[test]
    fn replicas_converge_in_any_merge_order(h in history_strategy(1, 50), old in any::<Index>()) {
        let mut sim = Sim::run(&h, 1);
        let snaps = &sim.snapshots[0];
        let mut states: Vec<K2VItem> = sim.replicas.iter().map(|r| r[0].clone()).collect();
        states.push(snaps[old.index(snaps.len())].clone());
        let first = laws::converge(&states);
        check_invariants(&first);
        // Anti-entropy among the replicas reaches that same state (the old
        // snapshot adds nothing they do not already know).
        sim.full_sync();
        for r in &sim.replicas {
            prop_assert_eq!(&r[0], &first);
        }
    }

    #[test]
    fn write_with_fresh_token_supersedes_what_was_read(
        h in history_strategy(1, 50),
        reader in any::<Index>(), writer in any::<Index>(), v in prop::option::of(0u8..6),
    ) {
        let mut sim = Sim::run(&h, 1);
        let (r, w) = (reader.index(h.n), writer.index(h.n));

        // Read and write through the same node: only the new value remains.
        let mut same = sim.clone();
        let token = same.replicas[w][0].causal_context();
        let t = same.write(w, 0, Some(&token), value_of(v));
        prop_assert_eq!(dots(&same.replicas[w][0]), BTreeSet::from([(NODES[w], t)]));
        prop_assert_eq!(owned(same.replicas[w][0].values()), vec![value_of(v)]);

        // Read from r, write through w: what was read is gone; what w holds
        // beyond the token (concurrent writes) survives.
        let read = sim.replicas[r][0].clone();
        let token = read.causal_context();
        let before = dots(&sim.replicas[w][0]);
        let t = sim.write(w, 0, Some(&token), value_of(v));
        let covered = |d: &(K2VNodeId, u64)| d.1 <= token.vector_clock.get(&d.0).copied().unwrap_or(0);
        let mut expected: BTreeSet<_> = before.iter().copied().filter(|d| !covered(d)).collect();
        expected.insert((NODES[w], t));
        prop_assert_eq!(dots(&sim.replicas[w][0]), expected);
        if before.iter().all(|d| dots(&read).contains(d)) {
            prop_assert_eq!(owned(sim.replicas[w][0].values()), vec![value_of(v)]);
        }

        // After convergence: exactly the values that neither our token nor
        // an earlier discard covers remain; so nothing read survives and the
        // concurrent values are kept.
        let mut discard = token.vector_clock.clone();
        let mut all_dots = BTreeSet::new();
        for x in &sim.replicas {
            all_dots.extend(dots(&x[0]));
            for (node, e) in x[0].entries() {
                let d = discard.entry(*node).or_insert(0);
                *d = (*d).max(e.t_discard);
            }
        }
        let expected: BTreeSet<_> = all_dots
            .into_iter()
            .filter(|d| d.1 > discard.get(&d.0).copied().unwrap_or(0))
            .collect();
        sim.full_sync();
        let after = dots(&sim.replicas[0][0]);
        prop_assert!(after.contains(&(NODES[w], t)));
        for d in dots(&read) {
            prop_assert!(!after.contains(&d));
        }
        prop_assert_eq!(after, expected);
    }

    #[test]
    fn write_without_token_never_overwrites(
        h in history_strategy(1, 50), writer in any::<Index>(), v in prop::option::of(0u8..6),
    ) {
        let mut sim = Sim::run(&h, 1);
        let w = writer.index(h.n);
        let before = sim.replicas[w][0].clone();
        let t = sim.write(w, 0, None, value_of(v));
        let after = &sim.replicas[w][0];
        let mut expected = dots(&before);
        expected.insert((NODES[w], t));
        prop_assert_eq!(dots(after), expected);
        for old in before.values() {
            prop_assert!(after.values().contains(&old));
        }
        prop_assert!(after.values().contains(&&value_of(v)));
        prop_assert!(after.causal_context().is_newer_than(&before.causal_context()));
    }

    #[test]
    fn values_are_deduplicated_in_node_then_time_order(h in history_strategy(1, 50)) {
        let mut sim = Sim::run(&h, 1);
        // A dot names one write: every copy holding it holds the same value.
        let mut by_dot: BTreeMap<(K2VNodeId, u64), &DvvsValue> = BTreeMap::new();
        for item in &sim.snapshots[0] {
            for d in dots(item) {
                let v = value_at(item, d).expect("dot of this item");
                prop_assert_eq!(*by_dot.entry(d).or_insert(v), v);
            }
        }
        for item in &sim.snapshots[0] {
            check_invariants(item);
            prop_assert_eq!(owned(item.values()), expected_values(item));
            let counts = item.counts();
            let values = item.values();
            prop_assert_eq!(counts.entries, i64::from(!item.is_tombstone()));
            prop_assert_eq!(
                item.is_tombstone(),
                values.iter().all(|v| **v == DvvsValue::Deleted)
            );
            prop_assert_eq!(counts.conflicts, i64::from(values.len() > 1));
            let live: Vec<usize> = values.iter().filter_map(|v| match v {
                DvvsValue::Value(b) => Some(b.len()),
                DvvsValue::Deleted => None,
            }).collect();
            prop_assert_eq!(counts.values as usize, live.len());
            prop_assert_eq!(counts.bytes as usize, live.iter().sum::<usize>());
        }
        // Converged replicas read the same values in the same order.
        sim.full_sync();
        for r in &sim.replicas {
            prop_assert_eq!(r[0].values(), sim.replicas[0][0].values());
        }
    }

    #[test]
    fn item_and_token_encodings_round_trip(h in history_strategy(1, 30)) {
        let sim = Sim::run(&h, 1);
        for item in &sim.snapshots[0] {
            let bytes = item.encode().expect("encode");
            prop_assert_eq!(K2VItem::decode(&bytes), Some(item.clone()));
            let ctx = item.causal_context();
            prop_assert_eq!(CausalContext::parse(&ctx.serialize()), Ok(ctx));
        }
    }

    #[test]
    fn item_decoding_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = K2VItem::decode(&b);
        let mut marked = K2VItem::VERSION_MARKER.to_vec();
        marked.extend(b);
        let _ = K2VItem::decode(&marked);
    }
}

// ---- Examples of the spec ----

const N1: K2VNodeId = 11;
const N2: K2VNodeId = 22;

fn item() -> K2VItem {
    K2VItem::new(bucket(), "pk".into(), "sk".into())
}

fn val(s: &str) -> DvvsValue {
    DvvsValue::Value(s.as_bytes().to_vec())
}

#[test]
fn new_item_is_an_empty_tombstone() {
    let i = item();
    assert!(i.is_tombstone());
    assert!(i.values().is_empty());
    assert_eq!(i.causal_context(), CausalContext::default());
    assert_eq!(i.counts(), ItemCounts::default());
}

#[test]
fn insert_without_token_keeps_both_values() {
    let mut i = item();
    let t1 = i.update(N1, None, val("a"), 100);
    let t2 = i.update(N1, None, val("b"), 100);
    assert_eq!((t1, t2), (101, 102));
    assert_eq!(owned(i.values()), vec![val("a"), val("b")]);
    assert_eq!(
        i.counts(),
        ItemCounts {
            entries: 1,
            conflicts: 1,
            values: 2,
            bytes: 2
        }
    );
}

#[test]
fn insert_with_token_replaces_the_value() {
    let mut i = item();
    i.update(N1, None, val("a"), 100);
    let token = CausalContext::parse(&i.causal_context().serialize()).expect("own token");
    i.update(N1, Some(&token), val("b"), 100);
    assert_eq!(owned(i.values()), vec![val("b")]);
    assert_eq!(i.counts().conflicts, 0);
}

#[test]
fn later_concurrent_delete_reads_value_then_null() {
    let mut i = item();
    // A client read the item while it was still empty...
    let stale = i.causal_context();
    i.update(N1, None, val("x"), 100);
    // ...and deletes with that token: the delete does not cover "x".
    i.update(N1, Some(&stale), DvvsValue::Deleted, 100);
    assert_eq!(owned(i.values()), vec![val("x"), DvvsValue::Deleted]);
    assert!(!i.is_tombstone());
    assert_eq!(
        i.counts(),
        ItemCounts {
            entries: 1,
            conflicts: 1,
            values: 1,
            bytes: 1
        }
    );
    // A delete that saw everything makes it a tombstone, read as [null].
    let token = i.causal_context();
    i.update(N1, Some(&token), DvvsValue::Deleted, 100);
    assert_eq!(owned(i.values()), vec![DvvsValue::Deleted]);
    assert!(i.is_tombstone());
    assert_eq!(i.counts(), ItemCounts::default());
}

#[test]
fn equal_concurrent_values_are_deduplicated() {
    let mut a = item();
    let mut b = item();
    a.update(N2, None, val("same"), 500);
    b.update(N1, None, val("same"), 100);
    b.update(N1, None, DvvsValue::Deleted, 100);
    a.update(N2, None, DvvsValue::Deleted, 500);
    let mut ab = a.clone();
    ab.merge(&b);
    let mut ba = b.clone();
    ba.merge(&a);
    assert_eq!(ab, ba);
    assert_eq!(dots(&ab).len(), 4);
    // N1 < N2: N1's values come first; duplicates appear once.
    assert_eq!(owned(ab.values()), vec![val("same"), DvvsValue::Deleted]);
    assert_eq!(
        ab.counts(),
        ItemCounts {
            entries: 1,
            conflicts: 1,
            values: 1,
            bytes: 4
        }
    );
}

#[test]
fn two_node_history_by_hand() {
    // N1 writes a; N2 (after replication) overwrites it with its token while
    // N1 concurrently writes c without one.
    let mut r1 = item();
    let mut r2 = item();
    let t_a = r1.update(N1, None, val("a"), 1000);
    r2.merge(&r1);
    let token = r2.causal_context();
    assert_eq!(token.vector_clock, BTreeMap::from([(N1, t_a)]));
    let t_b = r2.update(N2, Some(&token), val("b"), 900);
    assert_eq!(t_b, 901);
    let t_c = r1.update(N1, None, val("c"), 1000);
    assert_eq!(t_c, t_a + 1);
    r1.merge(&r2);
    r2.merge(&r1);
    assert_eq!(r1, r2);
    assert_eq!(owned(r1.values()), vec![val("c"), val("b")]);
    assert_eq!(
        r1.causal_context().vector_clock,
        BTreeMap::from([(N1, t_c), (N2, t_b)])
    );
    assert_eq!(r1.entries()[&N1].t_discard, t_a);
}

#[test]
fn time_follows_clock_and_entry() {
    let mut i = item();
    assert_eq!(i.update(N1, None, val("a"), 50), 51);
    // A clock behind the entry still moves forward.
    assert_eq!(i.update(N1, None, val("b"), 10), 52);
    // A token naming this node beyond its values raises t_discard.
    let token = CausalContext {
        vector_clock: BTreeMap::from([(N1, 70), (N2, 5)]),
    };
    assert_eq!(i.update(N1, Some(&token), val("c"), 10), 71);
    assert_eq!(owned(i.values()), vec![val("c")]);
    assert_eq!(i.entries()[&N2].t_discard, 5);
    assert!(i.entries()[&N2].values.is_empty());
}

#[test]
fn zero_times_in_token_create_no_entry() {
    let mut i = item();
    let token = CausalContext {
        vector_clock: BTreeMap::from([(N2, 0)]),
    };
    i.update(N1, Some(&token), val("a"), 1);
    assert_eq!(i.entries().keys().copied().collect::<Vec<_>>(), vec![N1]);
}

#[test]
fn forged_huge_times_do_not_panic() {
    let mut i = item();
    let token = CausalContext {
        vector_clock: BTreeMap::from([(N1, u64::MAX)]),
    };
    assert_eq!(i.update(N1, Some(&token), val("a"), 5), u64::MAX);
    assert_eq!(i.update(N1, None, val("b"), u64::MAX), u64::MAX);
    let mut j = item();
    j.merge(&i);
    let _ = j.values();
    let _ = j.causal_context().serialize();
}

#[test]
fn partition_hash_is_blake2_of_bucket_and_key() {
    let i = item();
    let mut data = bucket().as_slice().to_vec();
    data.extend_from_slice(b"pk");
    assert_eq!(i.partition.hash(), blake2sum(&data));
}

/// The v1 stored form, pinned: a change here needs a `mod v2` and `migrate()`.
#[test]
fn stored_format_v1_is_stable() {
    let mut i = item();
    i.update(N1, None, val("a"), 100);
    i.update(N2, None, DvvsValue::Deleted, 200);
    let encoded = i.encode().expect("encode");
    assert_eq!(hex_of(&encoded), V1_BLOB);
    assert_eq!(K2VItem::decode(&hex_to_bytes(V1_BLOB)), Some(i));
}

const V1_BLOB: &str = concat!(
    "6b32766974656d3183a9706172746974696f6e82a96275636b65745f6964c4200909090909090909",
    "090909090909090909090909090909090909090909090909ad706172746974696f6e5f6b6579a270",
    "6ba8736f72745f6b6579a2736ba56974656d73820b82a9745f6469736361726400a676616c756573",
    "91926581a556616c7565c401611682a9745f6469736361726400a676616c7565739192ccc9a74465",
    "6c65746564",
);

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_to_bytes(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}
