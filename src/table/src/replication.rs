//! Where a table's entries live.

use std::sync::Arc;

use garage_rpc::system::System;
use garage_util::data::{Hash, Uuid};

/// Placement and quorums of a table.
pub trait TableReplication: Send + Sync + 'static {
    /// Nodes to read from, in order of preference.
    fn read_nodes(&self, hash: &Hash) -> Vec<Uuid>;
    /// Answers needed for a read.
    fn read_quorum(&self) -> usize;
    /// The sets of nodes to write to; a write must reach the quorum in each.
    fn write_sets(&self, hash: &Hash) -> Vec<Vec<Uuid>>;
    /// Acknowledgements needed in each write set.
    fn write_quorum(&self) -> usize;
    /// Whether this table is split into partitions (else one partition).
    fn sharded(&self) -> bool;
    /// Every node storing the partition of `hash` in any active version.
    fn storage_nodes(&self, hash: &Hash) -> Vec<Uuid>;
    /// Nodes that stored the partition in a retired version and may still
    /// hold entries of it to hand off (none for full-copy tables).
    fn former_storage_nodes(&self, _hash: &Hash) -> Vec<Uuid> {
        vec![]
    }
}

/// Sharded: each partition on `rf` nodes chosen by the layout.
pub struct TableShardedReplication {
    /// Membership and layout.
    pub system: Arc<System>,
}

impl TableReplication for TableShardedReplication {
    fn read_nodes(&self, hash: &Hash) -> Vec<Uuid> {
        let mut nodes = self.system.read_nodes_of(hash);
        self.system.sort_by_preference(&mut nodes);
        nodes
    }
    fn read_quorum(&self) -> usize {
        self.system.quorums.read
    }
    fn write_sets(&self, hash: &Hash) -> Vec<Vec<Uuid>> {
        self.system.write_sets_of(hash)
    }
    fn write_quorum(&self) -> usize {
        self.system.quorums.write
    }
    fn sharded(&self) -> bool {
        true
    }
    fn storage_nodes(&self, hash: &Hash) -> Vec<Uuid> {
        self.system.storage_nodes_of(hash)
    }
    fn former_storage_nodes(&self, hash: &Hash) -> Vec<Uuid> {
        self.system.former_storage_nodes_of(hash)
    }
}

/// Full copy: every node of the layout holds everything (keys, buckets).
pub struct TableFullReplication {
    /// Membership and layout.
    pub system: Arc<System>,
}

impl TableFullReplication {
    fn all_nodes(&self) -> Vec<Uuid> {
        let mut nodes = self.system.layout().current().all_nodes().to_vec();
        if !nodes.contains(&self.system.id) {
            nodes.push(self.system.id);
        }
        nodes
    }
}

impl TableReplication for TableFullReplication {
    fn read_nodes(&self, _hash: &Hash) -> Vec<Uuid> {
        vec![self.system.id]
    }
    fn read_quorum(&self) -> usize {
        1
    }
    fn write_sets(&self, _hash: &Hash) -> Vec<Vec<Uuid>> {
        vec![self.all_nodes()]
    }
    fn write_quorum(&self) -> usize {
        let n = self.all_nodes().len();
        if n > 1 {
            n - 1
        } else {
            1
        }
    }
    fn sharded(&self) -> bool {
        false
    }
    fn storage_nodes(&self, _hash: &Hash) -> Vec<Uuid> {
        self.all_nodes()
    }
}
