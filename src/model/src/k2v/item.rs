//! The K2V item: one `(bucket, partition key, sort key)` triple and its
//! concurrent values, kept as a dotted version vector set (DVVS).
//!
//! For each node that ever wrote the item we keep an entry
//! `(t_discard, [(t, value)…])`. Invariants, which every operation here keeps
//! on the states that real histories produce:
//! - the values of an entry have strictly increasing times, all `> t_discard`;
//! - only node `n` appends to entry `n`, with times from its own monotonic
//!   clock, so two copies of entry `n` agree on the value at any given time.
//!
//! Writes ([`K2VItem::update`]) run on the one node that handles the insert;
//! copies are reconciled with [`Crdt::merge`]. The merge is commutative,
//! associative and idempotent on reachable states only (see the property
//! tests), not on arbitrary hand-made structs.
//!
//! The stored format lives in `mod v1` and is versioned with [`Migrate`].

use std::collections::BTreeMap;

use garage_util::crdt::Crdt;
use garage_util::data::{blake2sum, Hash, Uuid};
use garage_util::encode::{Migrate, NoPrevious};

use super::causality::{CausalContext, K2VNodeId};

mod v1 {
    use std::collections::BTreeMap;

    use garage_util::data::Uuid;
    use serde::{Deserialize, Serialize};

    use super::super::causality::K2VNodeId;

    /// One value of an item: bytes, or a tombstone written by a delete.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DvvsValue {
        /// A live value.
        Value(#[serde(with = "serde_bytes")] Vec<u8>),
        /// A tombstone (`null` on the wire).
        Deleted,
    }

    /// The values one node wrote and that nobody has superseded yet.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DvvsEntry {
        /// Every value of this node with a time `<= t_discard` is superseded.
        pub t_discard: u64,
        /// `(time, value)` pairs, times strictly increasing and `> t_discard`.
        pub values: Vec<(u64, DvvsValue)>,
    }

    /// The partition an item belongs to: a bucket and a partition key.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct K2VItemPartition {
        /// The bucket.
        pub bucket_id: Uuid,
        /// The partition key (UTF-8).
        pub partition_key: String,
    }

    /// A K2V item as stored and replicated.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct K2VItem {
        /// Bucket and partition key.
        pub partition: K2VItemPartition,
        /// Sort key (UTF-8).
        pub sort_key: String,
        /// One entry per node that wrote the item (or that a context named).
        pub(crate) items: BTreeMap<K2VNodeId, DvvsEntry>,
    }
}

pub use v1::{DvvsEntry, DvvsValue, K2VItem, K2VItemPartition};

impl Migrate for K2VItem {
    const VERSION_MARKER: &'static [u8] = b"k2vitem1";
    type Previous = NoPrevious;
    fn migrate(previous: NoPrevious) -> Self {
        match previous {}
    }
}

/// The contribution of one item to the per-partition index counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    /// 1 unless the item is a tombstone.
    pub entries: i64,
    /// 1 if the item has more than one distinct value (tombstones included).
    pub conflicts: i64,
    /// Number of distinct non-tombstone values.
    pub values: i64,
    /// Sum of the lengths of those values.
    pub bytes: i64,
}

impl K2VItemPartition {
    /// The partition hash: Blake2b of `bucket_id ‖ partition_key`, truncated.
    pub fn hash(&self) -> Hash {
        let mut data = Vec::with_capacity(32 + self.partition_key.len());
        data.extend_from_slice(self.bucket_id.as_slice());
        data.extend_from_slice(self.partition_key.as_bytes());
        blake2sum(&data)
    }
}

impl DvvsEntry {
    /// The largest time this entry knows of: `t_discard` or its last value.
    pub fn max_time(&self) -> u64 {
        self.values
            .iter()
            .map(|(t, _)| *t)
            .fold(self.t_discard, u64::max)
    }

    /// Raises `t_discard` and drops the values it now covers.
    fn discard_up_to(&mut self, t: u64) {
        self.t_discard = self.t_discard.max(t);
        let t_discard = self.t_discard;
        self.values.retain(|(vt, _)| *vt > t_discard);
    }

    /// Merges another copy of the same node's entry (spec, exact merge).
    fn merge(&mut self, other: &DvvsEntry) {
        self.discard_up_to(other.t_discard);
        let t_max = self.max_time();
        self.values
            .extend(other.values.iter().filter(|(t, _)| *t > t_max).cloned());
    }
}

impl K2VItem {
    /// An item with no value (reads as a tombstone).
    pub fn new(bucket_id: Uuid, partition_key: String, sort_key: String) -> Self {
        Self {
            partition: K2VItemPartition {
                bucket_id,
                partition_key,
            },
            sort_key,
            items: BTreeMap::new(),
        }
    }

    /// The per-node entries, by node id.
    pub fn entries(&self) -> &BTreeMap<K2VNodeId, DvvsEntry> {
        &self.items
    }

    /// Applies a client write on the node `this_node` that handles it.
    ///
    /// Every value covered by `context` is discarded, then `new_value` is
    /// appended to this node's entry at `t_new = max(maxtime + 1, node_ts + 1)`
    /// where `node_ts = max(persisted local timestamp, now in ms)` is computed
    /// by the caller. Returns `t_new`, which the caller must persist as the
    /// node's local timestamp in the same transaction.
    pub fn update(
        &mut self,
        this_node: K2VNodeId,
        context: Option<&CausalContext>,
        new_value: DvvsValue,
        node_ts: u64,
    ) -> u64 {
        if let Some(context) = context {
            for (node, t) in &context.vector_clock {
                match self.items.get_mut(node) {
                    Some(entry) => entry.discard_up_to(*t),
                    // A zero time covers nothing: no need for an empty entry.
                    None if *t == 0 => {}
                    None => {
                        self.items.insert(
                            *node,
                            DvvsEntry {
                                t_discard: *t,
                                values: vec![],
                            },
                        );
                    }
                }
            }
        }
        let entry = self.items.entry(this_node).or_default();
        // Saturating: a forged token could carry u64::MAX; never panic on it.
        let t_new = entry
            .max_time()
            .saturating_add(1)
            .max(node_ts.saturating_add(1));
        entry.values.push((t_new, new_value));
        t_new
    }

    /// The causal context: for each node, the largest time known.
    pub fn causal_context(&self) -> CausalContext {
        CausalContext {
            vector_clock: self
                .items
                .iter()
                .map(|(node, entry)| (*node, entry.max_time()))
                .collect(),
        }
    }

    /// The distinct values, by node id then time; equal bytes (or two
    /// tombstones) appear once, at their first position.
    pub fn values(&self) -> Vec<&DvvsValue> {
        let mut out: Vec<&DvvsValue> = vec![];
        for (_, value) in self.items.values().flat_map(|entry| entry.values.iter()) {
            if !out.contains(&value) {
                out.push(value);
            }
        }
        out
    }

    /// True if every value is a tombstone (also when there is no value).
    pub fn is_tombstone(&self) -> bool {
        self.items
            .values()
            .flat_map(|entry| entry.values.iter())
            .all(|(_, value)| matches!(value, DvvsValue::Deleted))
    }

    /// The item's contribution to the index counters.
    pub fn counts(&self) -> ItemCounts {
        let values = self.values();
        let live = || {
            values.iter().filter_map(|v| match v {
                DvvsValue::Value(bytes) => Some(bytes.len()),
                DvvsValue::Deleted => None,
            })
        };
        ItemCounts {
            entries: i64::from(!self.is_tombstone()),
            conflicts: i64::from(values.len() > 1),
            values: to_i64(live().count()),
            bytes: to_i64(live().sum()),
        }
    }
}

impl Crdt for K2VItem {
    /// Per node id: union of the entries, merging the ones both sides hold.
    /// Both sides are expected to be copies of the same item (same keys).
    fn merge(&mut self, other: &Self) {
        for (node, other_entry) in &other.items {
            match self.items.get_mut(node) {
                Some(entry) => entry.merge(other_entry),
                None => {
                    self.items.insert(*node, other_entry.clone());
                }
            }
        }
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "item_tests.rs"]
pub(crate) mod tests;
