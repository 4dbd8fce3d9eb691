//! What `/metrics` reports about a table: request counters and durations
//! kept as the table serves (Garage's `table_*` names, label `table_name`),
//! and the sizes read when scraped ([`Table::stats`]).

use garage_util::metrics::{global, Counter, RequestMetrics};

use crate::error::Error;
use crate::replication::TableReplication;
use crate::schema::TableSchema;
use crate::table::Table;

/// The metric handles of one table, registered when the table is built.
pub(crate) struct TableMetrics {
    /// Quorum reads: `get` and `get_range`.
    pub(crate) get: RequestMetrics,
    /// Quorum writes: `insert`, `insert_many`, `replicate_stored`.
    pub(crate) put: RequestMetrics,
    /// Entries pushed to a peer by anti-entropy.
    pub(crate) sync_items_sent: Counter,
    /// Entries received from other nodes to merge here: `Update` calls
    /// (their writes, read repairs, anti-entropy pushes, hand-offs) and
    /// full-copy pulls. The wire does not tell a sync push from a write.
    pub(crate) sync_items_received: Counter,
}

impl TableMetrics {
    pub(crate) fn new(table: &'static str) -> Self {
        let r = global();
        let l = [("table_name", table)];
        Self {
            get: r.requests(
                (
                    "table_get_request_counter",
                    "Number of get/get_range requests internally made on this table",
                ),
                (
                    "table_get_request_duration",
                    "Duration of get/get_range requests internally made on this table",
                ),
                &l,
            ),
            put: r.requests(
                (
                    "table_put_request_counter",
                    "Number of insert/insert_many requests internally made on this table",
                ),
                (
                    "table_put_request_duration",
                    "Duration of insert/insert_many requests internally made on this table",
                ),
                &l,
            ),
            sync_items_sent: r.counter(
                "table_sync_items_sent",
                "Number of data items sent to other nodes during resync procedures",
                &l,
            ),
            sync_items_received: r.counter(
                "table_sync_items_received",
                "Number of data items received from other nodes (writes, repairs, resync)",
                &l,
            ),
        }
    }
}

/// Sizes of a table's local trees, read when `/metrics` is scraped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    /// The table's name (`table_name` label).
    pub name: &'static str,
    /// Entries stored here (tombstones included).
    pub entries: usize,
    /// Keys waiting for the Merkle updater.
    pub merkle_todo: usize,
    /// Tombstones queued for garbage collection (0 for full-copy tables,
    /// which keep theirs).
    pub gc_todo: usize,
}

impl<F: TableSchema, R: TableReplication> Table<F, R> {
    /// The sizes of the local trees (one `len` per tree: constant time with
    /// redb, a scan with sled).
    pub fn stats(&self) -> Result<TableStats, Error> {
        let gc_todo = match &self.data.gc_todo {
            Some(t) => t.len()?,
            None => 0,
        };
        Ok(TableStats {
            name: F::TABLE_NAME,
            entries: self.data.store.len()?,
            merkle_todo: self.merkle.todo_len()?,
            gc_todo,
        })
    }
}
