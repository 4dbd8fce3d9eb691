//! The traits that describe a table.
//!
//! Invariants every schema must keep:
//! - an entry's partition key and sort key never change once created;
//! - `merge` (from [`Crdt`]) is commutative, associative and idempotent on
//!   every state the system can produce;
//! - the `updated` hook only writes through the transaction it is given.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use garage_db::Transaction;
use garage_util::crdt::Crdt;
use garage_util::data::{blake2sum, Hash, Uuid};
use garage_util::encode::Migrate;

/// What places an entry on nodes: its hash picks the partition.
pub trait PartitionKey {
    /// The 32-byte hash whose first byte is the partition.
    fn hash(&self) -> Hash;
}

impl PartitionKey for String {
    fn hash(&self) -> Hash {
        blake2sum(self.as_bytes())
    }
}

impl PartitionKey for Uuid {
    fn hash(&self) -> Hash {
        *self
    }
}

/// The partition key of tables kept in full on every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EmptyKey;

impl PartitionKey for EmptyKey {
    fn hash(&self) -> Hash {
        Hash::default()
    }
}

/// What orders entries inside a partition.
pub trait SortKey {
    /// The bytes entries are ordered by.
    fn sort_key(&self) -> &[u8];
}

impl SortKey for String {
    fn sort_key(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl SortKey for Uuid {
    fn sort_key(&self) -> &[u8] {
        self.as_slice()
    }
}

impl SortKey for EmptyKey {
    fn sort_key(&self) -> &[u8] {
        &[]
    }
}

/// One stored entry: a CRDT with its keys.
pub trait Entry<P: PartitionKey, S: SortKey>:
    Crdt + PartialEq + Clone + Migrate + Send + Sync + std::fmt::Debug
{
    /// Its partition key.
    fn partition_key(&self) -> &P;
    /// Its sort key.
    fn sort_key(&self) -> &S;
    /// Whether it only records a deletion.
    fn is_tombstone(&self) -> bool {
        false
    }
}

/// A table's description.
pub trait TableSchema: Send + Sync + 'static {
    /// Name of the table (prefix of its storage trees and RPC path).
    const TABLE_NAME: &'static str;
    /// Partition key type.
    type P: PartitionKey + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// Sort key type.
    type S: SortKey + Clone + Serialize + DeserializeOwned + Send + Sync;
    /// Entry type.
    type E: Entry<Self::P, Self::S>;
    /// Filter of range reads.
    type Filter: Clone + Serialize + DeserializeOwned + Send + Sync;

    /// Whether `entry` passes `filter`.
    fn matches_filter(entry: &Self::E, filter: &Self::Filter) -> bool;

    /// Runs in the same transaction as every local change of an entry.
    fn updated(
        &self,
        _tx: &mut Transaction<'_>,
        _old: Option<&Self::E>,
        _new: Option<&Self::E>,
    ) -> Result<(), garage_db::Error> {
        Ok(())
    }

    /// Runs after the transaction of a change committed (notifications).
    fn committed(&self, _old: Option<&Self::E>, _new: &Self::E) {}
}
