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
