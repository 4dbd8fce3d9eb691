//! The K2V item table: schema glue between [`K2VItem`] and the table layer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use garage_db::Transaction;
use garage_table::{Entry, PartitionKey, TableSchema};
use garage_util::data::Hash;

use super::counter_table::IndexCounter;
use super::item::{K2VItem, K2VItemPartition};
use super::sub::SubscriptionManager;

impl PartitionKey for K2VItemPartition {
    fn hash(&self) -> Hash {
        K2VItemPartition::hash(self)
    }
}

impl Entry<K2VItemPartition, String> for K2VItem {
    fn partition_key(&self) -> &K2VItemPartition {
        &self.partition
    }
    fn sort_key(&self) -> &String {
        &self.sort_key
    }
    fn is_tombstone(&self) -> bool {
        K2VItem::is_tombstone(self)
    }
}

/// Filter of range reads on items.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ItemFilter {
    /// Skip items whose values are all tombstones.
    pub exclude_only_tombstones: bool,
    /// Keep only items with several distinct values.
    pub conflicts_only: bool,
}

/// Schema of the K2V item table.
pub struct K2VItemTable {
    /// Local counters, updated in the item's transaction.
    pub counter: Arc<IndexCounter>,
    /// Pollers waiting on items.
    pub subscriptions: Arc<SubscriptionManager>,
}

impl TableSchema for K2VItemTable {
    const TABLE_NAME: &'static str = "k2v_item";
    type P = K2VItemPartition;
    type S = String;
    type E = K2VItem;
    type Filter = ItemFilter;

    fn matches_filter(item: &K2VItem, filter: &ItemFilter) -> bool {
        (!filter.exclude_only_tombstones || !K2VItem::is_tombstone(item))
            && (!filter.conflicts_only || item.values().len() > 1)
    }

    fn updated(
        &self,
        tx: &mut Transaction<'_>,
        old: Option<&K2VItem>,
        new: Option<&K2VItem>,
    ) -> Result<(), garage_db::Error> {
        let Some(item) = new.or(old) else {
            return Ok(());
        };
        let before = old.map(|i| i.counts()).unwrap_or_default();
        let after = new.map(|i| i.counts()).unwrap_or_default();
        self.counter.count_in_tx(
            tx,
            &item.partition.bucket_id,
            &item.partition.partition_key,
            before,
            after,
        )
    }

    fn committed(&self, _old: Option<&K2VItem>, new: &K2VItem) {
        self.subscriptions.notify(new);
        self.counter.wake();
    }
}
