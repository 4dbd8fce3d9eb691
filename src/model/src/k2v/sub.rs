//! Subscriptions: pollers wait on broadcast channels fed after each local
//! change of an item (per item, and per partition for range polls).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use garage_util::data::Hash;

use super::item::{K2VItem, K2VItemPartition};

const CHANNEL_CAPACITY: usize = 16;

/// The channels of pollers currently waiting on this node.
#[derive(Default)]
pub struct SubscriptionManager {
    items: Mutex<HashMap<(Hash, String), broadcast::Sender<K2VItem>>>,
    partitions: Mutex<HashMap<Hash, broadcast::Sender<K2VItem>>>,
}

impl SubscriptionManager {
    /// No subscription yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Receives every new state of one item.
    pub fn subscribe_item(
        &self,
        p: &K2VItemPartition,
        sort_key: &str,
    ) -> broadcast::Receiver<K2VItem> {
        let mut m = self.items.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((p.hash(), sort_key.to_string()))
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Receives every new item state of one partition.
    pub fn subscribe_partition(&self, p: &K2VItemPartition) -> broadcast::Receiver<K2VItem> {
        let mut m = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(p.hash())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Announces a new item state; drops channels nobody listens to.
    pub fn notify(&self, item: &K2VItem) {
        let h = item.partition.hash();
        {
            let mut m = self.items.lock().unwrap_or_else(|e| e.into_inner());
            let key = (h, item.sort_key.clone());
            if let Some(tx) = m.get(&key) {
                if tx.send(item.clone()).is_err() {
                    m.remove(&key);
                }
            }
        }
        let mut m = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = m.get(&h) {
            if tx.send(item.clone()).is_err() {
                m.remove(&h);
            }
        }
    }
}
