//! Global bucket names (full copy on every node).

use serde::{Deserialize, Serialize};

use garage_table::{EmptyKey, Entry, TableSchema};
use garage_util::crdt::{Crdt, Lww};
use garage_util::data::Uuid;
use garage_util::encode::{Migrate, NoPrevious};

pub use v1::BucketAlias;

mod v1 {
    use super::*;

    /// A global bucket name and the bucket it points to (None = unused).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct BucketAlias {
        /// The name.
        pub name: String,
        /// The bucket.
        pub state: Lww<Option<Uuid>>,
    }

    impl Migrate for BucketAlias {
        const VERSION_MARKER: &'static [u8] = b"K2Vbal1";
        type Previous = NoPrevious;
        fn migrate(p: NoPrevious) -> Self {
            match p {}
        }
    }
}

impl BucketAlias {
    /// The bucket this name points to.
    pub fn bucket(&self) -> Option<Uuid> {
        *self.state.get()
    }
}

impl Crdt for BucketAlias {
    fn merge(&mut self, other: &Self) {
        self.state.merge(&other.state);
    }
}

impl Entry<EmptyKey, String> for BucketAlias {
    fn partition_key(&self) -> &EmptyKey {
        &EmptyKey
    }
    fn sort_key(&self) -> &String {
        &self.name
    }
    fn is_tombstone(&self) -> bool {
        self.state.get().is_none()
    }
}

/// Schema of the alias table.
pub struct BucketAliasTable;

impl TableSchema for BucketAliasTable {
    const TABLE_NAME: &'static str = "bucket_alias";
    type P = EmptyKey;
    type S = String;
    type E = BucketAlias;
    type Filter = ();

    fn matches_filter(entry: &BucketAlias, _filter: &()) -> bool {
        entry.bucket().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::crdt::laws;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// One step on one of three replicas of the alias `name`.
    #[derive(Clone, Debug)]
    enum Op {
        /// Points the name at a bucket (`None` = frees the name), the way
        /// the helper does it: a new entry, or an update of the one it read.
        Set(Option<u8>),
        /// Receiving another replica's entry (table insert, sync, repair).
        MergeFrom(usize),
    }

    fn op() -> impl Strategy<Value = (usize, Op)> {
        (
            0usize..3,
            prop_oneof![
                (prop::option::of(0u8..3)).prop_map(Op::Set),
                (0usize..3).prop_map(Op::MergeFrom),
            ],
        )
    }

    /// Replays `ops` on replicas that start without the entry; returns the
    /// replicas that have it and every state seen. Replica `r`'s clock reads
    /// `step + skew[r]`, so different replicas often write the same
    /// timestamp.
    fn replay(ops: &[(usize, Op)], skew: [u64; 3]) -> (Vec<BucketAlias>, Vec<BucketAlias>) {
        let mut reps: Vec<Option<BucketAlias>> = vec![None, None, None];
        let mut seen = vec![];
        for (step, (r, op)) in ops.iter().enumerate() {
            let now = step as u64 + skew[*r];
            match op {
                Op::Set(b) => {
                    let target = b.map(|b| Uuid::from([b; 32]));
                    let ts = match &reps[*r] {
                        // `Lww::update`, with this replica's clock.
                        Some(a) => std::cmp::max(a.state.timestamp() + 1, now),
                        None => now,
                    };
                    reps[*r] = Some(BucketAlias {
                        name: "default".into(),
                        state: Lww::raw(ts, target),
                    });
                }
                Op::MergeFrom(from) => match (reps[*from].clone(), &mut reps[*r]) {
                    (Some(other), Some(mine)) => mine.merge(&other),
                    (Some(other), mine @ None) => *mine = Some(other),
                    (None, _) => (),
                },
            }
            if let Some(a) = &reps[*r] {
                seen.push(a.clone());
            }
        }
        (reps.into_iter().flatten().collect(), seen)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn alias_merge_laws(
            ops in prop::collection::vec(op(), 0..16),
            skew in prop::array::uniform3(0u64..3),
            old in any::<Index>(),
        ) {
            let (mut states, seen) = replay(&ops, skew);
            if seen.is_empty() {
                // Only merges of nothing: no state to check.
                return Ok(());
            }
            states.push(seen[old.index(seen.len())].clone());
            let all = laws::check_all(&states);
            // The newest write wins (the larger bucket id on a tie).
            let newest = seen.iter().map(|a| (a.state.timestamp(), a.bucket())).max();
            prop_assert_eq!(Some((all.state.timestamp(), all.bucket())), newest);
            for a in &states {
                prop_assert_eq!(BucketAlias::decode(&a.encode().expect("encode")), Some(a.clone()));
            }
        }
    }
}
