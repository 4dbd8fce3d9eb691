//! The bucket table (full copy on every node).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use garage_table::{EmptyKey, Entry, TableSchema};
use garage_util::crdt::{Crdt, Deletable, LwwMap};
use garage_util::data::Uuid;
use garage_util::encode::{Migrate, NoPrevious};

use crate::permission::BucketKeyPerm;

pub use v1::{Bucket, BucketParams};

mod v1 {
    use super::*;

    /// A bucket, identified by a random 32-byte id; names are aliases.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Bucket {
        /// The id.
        pub id: Uuid,
        /// Its state; once deleted it never comes back.
        pub state: Deletable<BucketParams>,
    }

    /// The mutable part of a bucket.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct BucketParams {
        /// Creation time (ms).
        pub creation_date: u64,
        /// Permissions per access key id.
        pub authorized_keys: BTreeMap<String, BucketKeyPerm>,
        /// Global names pointing here (true = active).
        pub aliases: LwwMap<String, bool>,
        /// Key-local names pointing here: (key id, alias).
        pub local_aliases: LwwMap<(String, String), bool>,
    }

    impl Migrate for Bucket {
        const VERSION_MARKER: &'static [u8] = b"K2Vbkt1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

impl Crdt for BucketParams {
    fn merge(&mut self, o: &Self) {
        self.creation_date = std::cmp::min(self.creation_date, o.creation_date);
        for (k, p) in o.authorized_keys.iter() {
            self.authorized_keys
                .entry(k.clone())
                .and_modify(|x| x.merge(p))
                .or_insert(*p);
        }
        self.aliases.merge(&o.aliases);
        self.local_aliases.merge(&o.local_aliases);
    }
}

impl Bucket {
    /// A new bucket.
    pub fn new(id: Uuid, now_ms: u64) -> Self {
        Self {
            id,
            state: Deletable::Present(BucketParams {
                creation_date: now_ms,
                authorized_keys: BTreeMap::new(),
                aliases: LwwMap::new(),
                local_aliases: LwwMap::new(),
            }),
        }
    }

    /// The parameters, unless deleted.
    pub fn params(&self) -> Option<&BucketParams> {
        self.state.as_option()
    }

    /// The parameters mutably, unless deleted.
    pub fn params_mut(&mut self) -> Option<&mut BucketParams> {
        self.state.as_option_mut()
    }

    /// Active global aliases.
    pub fn global_aliases(&self) -> Vec<String> {
        self.params()
            .map(|p| {
                p.aliases
                    .items()
                    .iter()
                    .filter(|(_, _, active)| *active)
                    .map(|(n, _, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Active local aliases: (key id, alias).
    pub fn local_aliases(&self) -> Vec<(String, String)> {
        self.params()
            .map(|p| {
                p.local_aliases
                    .items()
                    .iter()
                    .filter(|(_, _, active)| *active)
                    .map(|(k, _, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Crdt for Bucket {
    fn merge(&mut self, other: &Self) {
        self.state.merge(&other.state);
    }
}

impl Entry<EmptyKey, Uuid> for Bucket {
    fn partition_key(&self) -> &EmptyKey {
        &EmptyKey
    }
    fn sort_key(&self) -> &Uuid {
        &self.id
    }
    fn is_tombstone(&self) -> bool {
        self.state.is_deleted()
    }
}

/// Filter on buckets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BucketFilter {
    /// Only buckets not deleted.
    Live,
}

/// Schema of the bucket table.
pub struct BucketTable;

impl TableSchema for BucketTable {
    const TABLE_NAME: &'static str = "bucket";
    type P = EmptyKey;
    type S = Uuid;
    type E = Bucket;
    type Filter = BucketFilter;

    fn matches_filter(entry: &Bucket, filter: &BucketFilter) -> bool {
        match filter {
            BucketFilter::Live => !entry.state.is_deleted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::crdt::laws;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Perm(u8, bool, bool, bool),
        Alias(u8, bool),
        LocalAlias(u8, u8, bool),
        Delete,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..3, any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(k, r, w, o)| Op::Perm(k, r, w, o)),
            3 => (0u8..3, any::<bool>()).prop_map(|(a, b)| Op::Alias(a, b)),
            3 => (0u8..2, 0u8..2, any::<bool>()).prop_map(|(k, a, b)| Op::LocalAlias(k, a, b)),
            1 => Just(Op::Delete),
        ]
    }

    /// Returns the three replicas and every state seen (the base first).
    fn replay(ops: Vec<(usize, Op, Option<usize>)>) -> (Vec<Bucket>, Vec<Bucket>) {
        let base = Bucket::new(Uuid::from_bytes([9; 32]), 1000);
        let mut reps = vec![base.clone(), base.clone(), base];
        let mut seen = vec![reps[0].clone()];
        for (ts, (r, op, merge_from)) in ops.into_iter().enumerate() {
            let r = r % 3;
            let ts = ts as u64 + 10;
            if let Some(p) = reps[r].params_mut() {
                match op {
                    Op::Perm(k, rd, w, o) => {
                        p.authorized_keys.insert(
                            format!("GK{k}"),
                            BucketKeyPerm {
                                timestamp: ts,
                                allow_read: rd,
                                allow_write: w,
                                allow_owner: o,
                            },
                        );
                    }
                    Op::Alias(a, on) => p.aliases.update_in_place(format!("b{a}"), on),
                    Op::LocalAlias(k, a, on) => p
                        .local_aliases
                        .update_in_place((format!("GK{k}"), format!("l{a}")), on),
                    Op::Delete => reps[r].state = Deletable::Deleted,
                }
            }
            if let Some(m) = merge_from {
                let other = reps[m % 3].clone();
                reps[r].merge(&other);
            }
            seen.push(reps[r].clone());
        }
        (reps, seen)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn bucket_merge_laws(
            ops in prop::collection::vec((0usize..3, op(), proptest::option::of(0usize..3)), 0..12),
            old in any::<prop::sample::Index>(),
        ) {
            let (mut r, seen) = replay(ops);
            // A stale replica: some state from earlier in the history.
            r.push(seen[old.index(seen.len())].clone());
            laws::check_all(&r);
            let params: Vec<BucketParams> = r.iter().filter_map(|x| x.params().cloned()).collect();
            if !params.is_empty() {
                laws::check_all(&params);
            }
            for x in &r {
                let enc = x.encode().expect("encode");
                prop_assert_eq!(Bucket::decode(&enc), Some(x.clone()));
            }
        }
    }
}
