//! The access key table (full copy on every node).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use garage_table::{EmptyKey, Entry, TableSchema};
use garage_util::crdt::{Crdt, Deletable, Lww, LwwMap};
use garage_util::data::Uuid;
use garage_util::encode::{Migrate, NoPrevious};

use crate::permission::BucketKeyPerm;

pub use v1::{Key, KeyParams};

mod v1 {
    use super::*;

    /// An access key: `GK` + 24 hex id and a 64-hex secret.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Key {
        /// The public id.
        pub key_id: String,
        /// Its state; once deleted it never comes back.
        pub state: Deletable<KeyParams>,
    }

    /// The mutable part of a key.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct KeyParams {
        /// The secret (never changes).
        pub secret_key: String,
        /// A human name.
        pub name: Lww<String>,
        /// May create buckets.
        pub allow_create_bucket: Lww<bool>,
        /// Permissions per bucket.
        pub authorized_buckets: BTreeMap<Uuid, BucketKeyPerm>,
        /// Bucket names private to this key.
        pub local_aliases: LwwMap<String, Option<Uuid>>,
    }

    impl Migrate for Key {
        const VERSION_MARKER: &'static [u8] = b"K2Vkey1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

impl Crdt for KeyParams {
    fn merge(&mut self, o: &Self) {
        self.name.merge(&o.name);
        self.allow_create_bucket.merge(&o.allow_create_bucket);
        for (b, p) in o.authorized_buckets.iter() {
            self.authorized_buckets
                .entry(*b)
                .and_modify(|x| x.merge(p))
                .or_insert(*p);
        }
        self.local_aliases.merge(&o.local_aliases);
        if o.secret_key > self.secret_key {
            self.secret_key = o.secret_key.clone();
        }
    }
}

impl Key {
    /// A new key with the given id, secret and name.
    pub fn new(key_id: String, secret_key: String, name: &str) -> Self {
        Self {
            key_id,
            state: Deletable::Present(KeyParams {
                secret_key,
                name: Lww::new(name.to_string()),
                allow_create_bucket: Lww::new(false),
                authorized_buckets: BTreeMap::new(),
                local_aliases: LwwMap::new(),
            }),
        }
    }

    /// The parameters, unless deleted.
    pub fn params(&self) -> Option<&KeyParams> {
        self.state.as_option()
    }

    /// The parameters mutably, unless deleted.
    pub fn params_mut(&mut self) -> Option<&mut KeyParams> {
        self.state.as_option_mut()
    }

    /// The key's name ("" if deleted).
    pub fn name(&self) -> String {
        self.params()
            .map(|p| p.name.get().clone())
            .unwrap_or_default()
    }

    /// The permission on `bucket`.
    pub fn bucket_permissions(&self, bucket: &Uuid) -> BucketKeyPerm {
        self.params()
            .and_then(|p| p.authorized_buckets.get(bucket).copied())
            .unwrap_or(BucketKeyPerm::NONE)
    }

    /// Whether the key may read `bucket`.
    pub fn allow_read(&self, bucket: &Uuid) -> bool {
        self.bucket_permissions(bucket).allow_read
    }

    /// Whether the key may write `bucket`.
    pub fn allow_write(&self, bucket: &Uuid) -> bool {
        self.bucket_permissions(bucket).allow_write
    }
}

impl Crdt for Key {
    fn merge(&mut self, other: &Self) {
        self.state.merge(&other.state);
    }
}

impl Entry<EmptyKey, String> for Key {
    fn partition_key(&self) -> &EmptyKey {
        &EmptyKey
    }
    fn sort_key(&self) -> &String {
        &self.key_id
    }
    fn is_tombstone(&self) -> bool {
        self.state.is_deleted()
    }
}

/// Filter on keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KeyFilter {
    /// Only keys not deleted.
    Live,
    /// Every key, deleted ones included.
    Any,
}

/// Schema of the key table.
pub struct KeyTable;

impl TableSchema for KeyTable {
    const TABLE_NAME: &'static str = "key";
    type P = EmptyKey;
    type S = String;
    type E = Key;
    type Filter = KeyFilter;

    fn matches_filter(entry: &Key, filter: &KeyFilter) -> bool {
        match filter {
            KeyFilter::Live => !entry.state.is_deleted(),
            KeyFilter::Any => true,
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
        Rename(u8),
        AllowCreate(bool),
        Perm(u8, bool, bool, bool),
        Alias(u8, Option<u8>),
        Delete,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..3).prop_map(Op::Rename),
            3 => any::<bool>().prop_map(Op::AllowCreate),
            3 => (0u8..3, any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(b, r, w, o)| Op::Perm(b, r, w, o)),
            3 => (0u8..3, proptest::option::of(0u8..3)).prop_map(|(a, b)| Op::Alias(a, b)),
            1 => Just(Op::Delete),
        ]
    }

    /// Replays operations on three replicas that sometimes merge, the way
    /// the CLI edits a key read from one node and writes it back.
    /// Returns the three replicas and every state seen (the base first).
    fn replay(ops: Vec<(usize, Op, Option<usize>)>) -> (Vec<Key>, Vec<Key>) {
        let base = Key::new("GK00".into(), "s".repeat(64), "k");
        let mut reps = vec![base.clone(), base.clone(), base];
        let mut seen = vec![reps[0].clone()];
        for (ts, (r, op, merge_from)) in ops.into_iter().enumerate() {
            let r = r % 3;
            let ts = ts as u64 + 10;
            if let Some(p) = reps[r].params_mut() {
                match op {
                    Op::Rename(n) => p.name = Lww::raw(ts, format!("n{n}")),
                    Op::AllowCreate(b) => p.allow_create_bucket = Lww::raw(ts, b),
                    Op::Perm(b, rd, w, o) => {
                        p.authorized_buckets.insert(
                            Uuid::from_bytes([b; 32]),
                            BucketKeyPerm {
                                timestamp: ts,
                                allow_read: rd,
                                allow_write: w,
                                allow_owner: o,
                            },
                        );
                    }
                    Op::Alias(a, b) => {
                        let m = p
                            .local_aliases
                            .update_mutator(format!("a{a}"), b.map(|b| Uuid::from_bytes([b; 32])));
                        p.local_aliases.merge(&m);
                    }
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
        fn key_merge_laws(
            ops in prop::collection::vec((0usize..3, op(), proptest::option::of(0usize..3)), 0..12),
            old in any::<prop::sample::Index>(),
        ) {
            let (mut r, seen) = replay(ops);
            // A stale replica: some state from earlier in the history.
            r.push(seen[old.index(seen.len())].clone());
            laws::check_all(&r);
            let params: Vec<KeyParams> = r.iter().filter_map(|x| x.params().cloned()).collect();
            if !params.is_empty() {
                laws::check_all(&params);
            }
            for x in &r {
                let enc = x.encode().expect("encode");
                prop_assert_eq!(Key::decode(&enc), Some(x.clone()));
            }
        }
    }
}
