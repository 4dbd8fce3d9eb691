//! A small table schema for the crate's unit tests: entries keyed by a
//! string sort key under one partition, merged by keeping the larger value.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use garage_util::crdt::Crdt;
use garage_util::encode::{Migrate, NoPrevious};

use crate::data::TableData;
use crate::schema::{EmptyKey, Entry, TableSchema};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct E {
    pub(crate) k: String,
    pub(crate) v: u64,
}

impl Migrate for E {
    const VERSION_MARKER: &'static [u8] = b"";
    type Previous = NoPrevious;
    fn migrate(p: NoPrevious) -> Self {
        match p {}
    }
}

impl Crdt for E {
    fn merge(&mut self, o: &Self) {
        self.v = self.v.max(o.v);
    }
}

impl Entry<EmptyKey, String> for E {
    fn partition_key(&self) -> &EmptyKey {
        &EmptyKey
    }
    fn sort_key(&self) -> &String {
        &self.k
    }
}

pub(crate) struct S;

impl TableSchema for S {
    const TABLE_NAME: &'static str = "t";
    type P = EmptyKey;
    type S = String;
    type E = E;
    type Filter = ();
    fn matches_filter(_: &E, _: &()) -> bool {
        true
    }
}

/// An empty table of [`S`] in an in-memory database.
pub(crate) fn data() -> Arc<TableData<S>> {
    TableData::new(
        Arc::new(S),
        garage_db::Db::memory(),
        garage_util::time::Clock::system(),
        false,
    )
    .expect("data")
}
