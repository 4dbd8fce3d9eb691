//! One Merkle trie per partition, kept from the table's "todo" queue.
//!
//! Every change to an entry marks its storage key dirty in `merkle_todo`
//! (in the change's own transaction). The updater takes dirty keys in
//! batches and, in one transaction per batch, rehashes the stored value
//! and rewrites the path of the trie down to the key's leaf.
//!
//! The trie of a partition is addressed by the bytes of `blake2(key)`: the
//! node at `partition ‖ prefix` covers every key whose hash starts with
//! `prefix`. A node is empty (absent), a leaf (one key and the hash of its
//! value), or an intermediate node listing its non-empty children with
//! their hashes. Two replicas hold the same entries of a partition exactly
//! when their root hashes are equal, and they find where they differ by
//! walking down the children whose hashes differ.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::watch;

use garage_db::{Transaction, Tree, TxError};
use garage_util::background::{Worker, WorkerState};
use garage_util::data::{blake2sum, Hash};

use crate::data::TableData;
use crate::error::Error;
use crate::schema::TableSchema;

/// A node of a partition's trie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerkleNode {
    /// No key under this prefix.
    Empty,
    /// Children by the next byte of the key hash, ascending, none empty.
    Intermediate(Vec<(u8, Hash)>),
    /// The only key under this prefix, and the hash of its stored value.
    Leaf(ByteBuf, Hash),
}

impl MerkleNode {
    fn decode(b: &[u8]) -> Option<Self> {
        rmp_serde::from_slice(b).ok()
    }

    fn encode(&self) -> Vec<u8> {
        // Plain data: encoding cannot fail; an empty vector would read back
        // as a corrupt node and be rebuilt.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// The node's hash (None for the empty node).
    pub fn hash(&self) -> Option<Hash> {
        match self {
            MerkleNode::Empty => None,
            n => Some(blake2sum(&n.encode())),
        }
    }
}

/// The storage key of the node at `prefix` in `partition`'s trie.
pub fn node_key(partition: u16, prefix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + prefix.len());
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(prefix);
    k
}

/// The trie nodes a batch of updates read and wrote, kept in memory until
/// the batch ends.
struct NodeBatch<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    cache: HashMap<Vec<u8>, MerkleNode>,
    dirty: BTreeSet<Vec<u8>>,
}

/// The tries of one table, and their updater.
pub struct MerkleTrie<F: TableSchema> {
    data: Arc<TableData<F>>,
    /// Nodes by `partition ‖ prefix`.
    tree: Tree,
    sharded: bool,
}

/// Most dirty keys handled in one transaction. Small: the database has one
/// writer, and inserts wait for the updater's transaction to end (p99 of
/// InsertItem at 64 clients on one node: 21-25 ms with 256, 15 ms with 64,
/// 12 ms with 16, at the same rate; doc/benchmarks.md).
const UPDATE_BATCH: usize = 16;

impl<F: TableSchema> MerkleTrie<F> {
    /// Opens the trie tree of `data`'s table. `sharded`: one trie per
    /// partition (else a single trie, partition 0).
    pub fn new(data: Arc<TableData<F>>, sharded: bool) -> Result<Arc<Self>, Error> {
        let tree = data
            .db
            .open_tree(&format!("{}:merkle_tree", F::TABLE_NAME))?;
        Ok(Arc::new(Self {
            data,
            tree,
            sharded,
        }))
    }

    /// The trie partition of a storage key.
    pub fn partition_of(&self, key: &[u8]) -> u16 {
        if self.sharded {
            key.first().copied().unwrap_or(0) as u16
        } else {
            0
        }
    }

    /// The node at `prefix` of `partition`'s trie.
    pub fn node(&self, partition: u16, prefix: &[u8]) -> Result<MerkleNode, Error> {
        match self.tree.get(&node_key(partition, prefix))? {
            None => Ok(MerkleNode::Empty),
            Some(b) => MerkleNode::decode(&b).ok_or(Error::Corrupted {
                table: F::TABLE_NAME,
            }),
        }
    }

    /// The root hash of `partition`'s trie (None when it is empty).
    pub fn root(&self, partition: u16) -> Result<Option<Hash>, Error> {
        Ok(self.node(partition, &[])?.hash())
    }

    /// Number of keys waiting to be hashed into the tries.
    pub fn todo_len(&self) -> Result<usize, Error> {
        Ok(self.data.merkle_todo.len()?)
    }

    /// Hashes up to one batch of dirty keys into the tries; returns how
    /// many keys were handled (0 when nothing was dirty).
    pub fn update_batch(&self) -> Result<usize, Error> {
        let dirty = self.data.merkle_todo.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            false,
            Some(UPDATE_BATCH),
        )?;
        if dirty.is_empty() {
            return Ok(0);
        }
        let n = dirty.len();
        let res = self.data.db.transaction(|tx| {
            // Nodes near the root are shared by most keys of a batch: they
            // are read once, updated in memory, and written once.
            let mut b = NodeBatch {
                tx,
                cache: HashMap::new(),
                dirty: BTreeSet::new(),
            };
            for (key, _) in dirty.iter() {
                let value = b.tx.get(&self.data.store, key)?;
                let vhash = value.map(|v| blake2sum(&v));
                let khash = blake2sum(key);
                let p = self.partition_of(key);
                self.update_node(&mut b, p, &[], key, khash.as_slice(), vhash)?;
                b.tx.remove(&self.data.merkle_todo, key)?;
            }
            let NodeBatch {
                tx,
                mut cache,
                dirty,
            } = b;
            let mut keys: Vec<Vec<u8>> = dirty.into_iter().collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
            let mut hashes: HashMap<Vec<u8>, Option<Hash>> = HashMap::new();
            for k in keys {
                let Some(node) = cache.get_mut(&k) else {
                    continue;
                };
                if let MerkleNode::Intermediate(children) = node {
                    for (c, h) in children.iter_mut() {
                        let mut ck = k.clone();
                        ck.push(*c);
                        if let Some(Some(ch)) = hashes.get(&ck) {
                            *h = *ch;
                        }
                    }
                }
                hashes.insert(k.clone(), node.hash());
                match node {
                    MerkleNode::Empty => tx.remove(&self.tree, &k)?,
                    n => tx.insert(&self.tree, &k, &n.encode())?,
                }
            }
            Ok(())
        });
        match res {
            Ok(()) => Ok(n),
            Err(TxError::Abort(e)) => Err(e),
            Err(TxError::Db(e)) => Err(e.into()),
        }
    }

    fn read_tx(
        &self,
        b: &mut NodeBatch<'_, '_>,
        partition: u16,
        prefix: &[u8],
    ) -> Result<MerkleNode, TxError<Error>> {
        let k = node_key(partition, prefix);
        if let Some(n) = b.cache.get(&k) {
            return Ok(n.clone());
        }
        let n = match b.tx.get(&self.tree, &k)? {
            None => MerkleNode::Empty,
            // A node that does not decode is treated as empty: the keys
            // under it are re-added as they change, and sync repairs the rest.
            Some(v) => MerkleNode::decode(&v).unwrap_or(MerkleNode::Empty),
        };
        b.cache.insert(k, n.clone());
        Ok(n)
    }

    fn write_tx(
        &self,
        b: &mut NodeBatch<'_, '_>,
        partition: u16,
        prefix: &[u8],
        node: &MerkleNode,
    ) -> Result<Option<Hash>, TxError<Error>> {
        let k = node_key(partition, prefix);
        // Hashes of written nodes are computed once, when the batch ends
        // (deepest first): until then a parent holds a placeholder for the
        // hash of a written child.
        let h = match node {
            MerkleNode::Empty => None,
            _ => Some(Hash::default()),
        };
        b.dirty.insert(k.clone());
        b.cache.insert(k, node.clone());
        Ok(h)
    }

    /// Sets (`Some`) or removes (`None`) the leaf of `key` under the node at
    /// `prefix`, rewriting that node; returns the node's new hash.
    fn update_node(
        &self,
        b: &mut NodeBatch<'_, '_>,
        partition: u16,
        prefix: &[u8],
        key: &[u8],
        khash: &[u8],
        vhash: Option<Hash>,
    ) -> Result<Option<Hash>, TxError<Error>> {
        let depth = prefix.len();
        let node = self.read_tx(b, partition, prefix)?;
        let new = match node {
            MerkleNode::Empty => match vhash {
                Some(h) => MerkleNode::Leaf(ByteBuf::from(key.to_vec()), h),
                None => return Ok(None),
            },
            MerkleNode::Leaf(k2, h2) if k2.as_slice() == key => match vhash {
                Some(h) if h == h2 => return Ok(MerkleNode::Leaf(k2, h2).hash()),
                Some(h) => MerkleNode::Leaf(k2, h),
                None => MerkleNode::Empty,
            },
            MerkleNode::Leaf(k2, h2) => {
                let leaf = MerkleNode::Leaf(k2.clone(), h2);
                if vhash.is_none() {
                    return Ok(leaf.hash());
                }
                // Two keys under one prefix: push the old leaf one level
                // down, then insert the new key as into an intermediate node.
                let k2hash = blake2sum(&k2);
                let Some(&c2) = k2hash.as_slice().get(depth) else {
                    return Err(TxError::Abort(Error::Corrupted {
                        table: F::TABLE_NAME,
                    }));
                };
                let mut child = prefix.to_vec();
                child.push(c2);
                let h = self.write_tx(b, partition, &child, &leaf)?;
                let children = h.map(|h| vec![(c2, h)]).unwrap_or_default();
                self.update_children(b, partition, prefix, children, key, khash, vhash)?
            }
            MerkleNode::Intermediate(children) => {
                self.update_children(b, partition, prefix, children, key, khash, vhash)?
            }
        };
        self.write_tx(b, partition, prefix, &new)
    }

    /// The new intermediate node at `prefix` after updating `key` in its
    /// child; collapses to a leaf (or empty) when one leaf (or none) is left.
    #[allow(clippy::too_many_arguments)]
    fn update_children(
        &self,
        b: &mut NodeBatch<'_, '_>,
        partition: u16,
        prefix: &[u8],
        mut children: Vec<(u8, Hash)>,
        key: &[u8],
        khash: &[u8],
        vhash: Option<Hash>,
    ) -> Result<MerkleNode, TxError<Error>> {
        let Some(&c) = khash.get(prefix.len()) else {
            return Err(TxError::Abort(Error::Corrupted {
                table: F::TABLE_NAME,
            }));
        };
        let mut child = prefix.to_vec();
        child.push(c);
        let h = self.update_node(b, partition, &child, key, khash, vhash)?;
        match (children.binary_search_by_key(&c, |x| x.0), h) {
            (Ok(i), Some(h)) => children[i].1 = h,
            (Ok(i), None) => {
                children.remove(i);
            }
            (Err(i), Some(h)) => children.insert(i, (c, h)),
            (Err(_), None) => (),
        }
        match children.as_slice() {
            [] => Ok(MerkleNode::Empty),
            [(only, _)] => {
                let mut p = prefix.to_vec();
                p.push(*only);
                match self.read_tx(b, partition, &p)? {
                    leaf @ MerkleNode::Leaf(..) => {
                        self.write_tx(b, partition, &p, &MerkleNode::Empty)?;
                        Ok(leaf)
                    }
                    _ => Ok(MerkleNode::Intermediate(children)),
                }
            }
            _ => Ok(MerkleNode::Intermediate(children)),
        }
    }
}

/// The background worker hashing dirty keys into the tries.
pub struct MerkleWorker<F: TableSchema> {
    trie: Arc<MerkleTrie<F>>,
    done: u64,
}

impl<F: TableSchema> MerkleWorker<F> {
    /// A worker for `trie`.
    pub fn new(trie: Arc<MerkleTrie<F>>) -> Self {
        Self { trie, done: 0 }
    }
}

#[async_trait]
impl<F: TableSchema> Worker for MerkleWorker<F> {
    fn name(&self) -> String {
        format!("{} Merkle updater", F::TABLE_NAME)
    }

    fn status(&self) -> String {
        let q = self.trie.todo_len().map(|n| n.to_string());
        format!(
            "queue {}, {} keys hashed",
            q.unwrap_or_else(|e| e.to_string()),
            self.done
        )
    }

    async fn work(&mut self, _stop: &mut watch::Receiver<bool>) -> Result<WorkerState, String> {
        let trie = self.trie.clone();
        let n = garage_util::background::spawn_blocking(move || trie.update_batch())
            .await?
            .map_err(|e| e.to_string())?;
        self.done += n as u64;
        Ok(if n > 0 {
            WorkerState::Busy
        } else {
            WorkerState::Idle
        })
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_schema::{E, S};

    fn trie() -> Arc<MerkleTrie<S>> {
        MerkleTrie::new(crate::test_schema::data(), false).expect("trie")
    }

    fn put(t: &MerkleTrie<S>, k: &str, v: u64) {
        t.data.update_entry(&E { k: k.into(), v }).expect("update");
        while t.update_batch().expect("merkle") > 0 {}
    }

    /// Every intermediate node holds the true hashes of its children, and
    /// no child of a node is missing or empty; returns the number of leaves.
    fn check_consistent(t: &MerkleTrie<S>, prefix: &[u8]) -> usize {
        match t.node(0, prefix).expect("node") {
            MerkleNode::Empty => 0,
            MerkleNode::Leaf(..) => 1,
            MerkleNode::Intermediate(children) => {
                assert!(!children.is_empty());
                let mut n = 0;
                for (c, h) in children {
                    let mut p = prefix.to_vec();
                    p.push(c);
                    assert_eq!(t.node(0, &p).expect("child").hash(), Some(h), "at {p:?}");
                    n += check_consistent(t, &p);
                }
                n
            }
        }
    }

    /// One key per batch or all keys in one batch: the same trie.
    #[test]
    fn batches_of_any_size_give_the_same_trie() {
        let a = trie();
        let b = trie();
        for i in 0..200u64 {
            put(&a, &format!("k{i}"), i);
            b.data
                .update_entry(&E {
                    k: format!("k{i}"),
                    v: i,
                })
                .expect("update");
        }
        while b.update_batch().expect("merkle") > 0 {}
        assert_eq!(a.root(0).expect("root"), b.root(0).expect("root"));
        assert_eq!(check_consistent(&a, &[]), 200);
        assert_eq!(check_consistent(&b, &[]), 200);
        // Updates and deletes mixed in one batch.
        for i in 0..100u64 {
            b.data
                .update_entry(&E {
                    k: format!("k{i}"),
                    v: i + 1000,
                })
                .expect("update");
            put(&a, &format!("k{i}"), i + 1000);
        }
        while b.update_batch().expect("merkle") > 0 {}
        assert_eq!(a.root(0).expect("root"), b.root(0).expect("root"));
        assert_eq!(check_consistent(&b, &[]), 200);
    }

    /// Tries built from the same entries in any order and through any
    /// history of deletes end with the same root, and a trie emptied of
    /// every key has no node left.
    #[test]
    fn same_content_same_root_whatever_the_history() {
        let a = trie();
        let b = trie();
        for i in 0..300u64 {
            put(&a, &format!("k{i}"), i);
        }
        for i in (0..300u64).rev() {
            put(&b, &format!("k{i}"), i);
        }
        put(&b, "extra", 1);
        assert_ne!(a.root(0).expect("root"), b.root(0).expect("root"));
        // Deleting the extra key in b's store brings the roots together.
        let key = crate::data::tree_key(&garage_util::data::Hash::from([0u8; 32]), b"extra");
        b.data.store.remove(&key).expect("remove");
        b.data.merkle_todo.insert(&key, &[]).expect("todo");
        while b.update_batch().expect("merkle") > 0 {}
        assert_eq!(a.root(0).expect("root"), b.root(0).expect("root"));
        assert!(a.root(0).expect("root").is_some());
        // A changed value changes the root.
        put(&a, "k7", 1000);
        assert_ne!(a.root(0).expect("root"), b.root(0).expect("root"));
        // Emptying the table leaves an empty trie.
        for (k, _) in a
            .data
            .store
            .range(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
                None,
            )
            .expect("scan")
        {
            a.data.store.remove(&k).expect("remove");
            a.data.merkle_todo.insert(&k, &[]).expect("todo");
        }
        while a.update_batch().expect("merkle") > 0 {}
        assert_eq!(a.root(0).expect("root"), None);
        assert_eq!(a.tree.len().expect("len"), 0, "no node left behind");
    }
}
