//! The in-memory engine: one `BTreeMap` per tree behind a lock.
//!
//! Readers take the read lock for one call, so each call sees a snapshot.
//! Writers (autocommit writes and transactions) are serialized by a separate
//! mutex; a transaction stages its writes (see [`StagedTx`]) and applies them
//! under the write lock at the end, so readers never see half of it and are
//! never blocked while a transaction's closure runs. Nothing is persisted.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use crate::engine::{
    collect_range, lock, read, write, IDb, ITx, RangeQuery, StagedTx, StagedWrites, TreeIndex,
    TreeRef,
};
use crate::error::Result;
use crate::Value;

const ENGINE: &str = "memory";

/// The in-memory engine.
pub(crate) struct MemoryDb {
    /// Held by every writer for its whole duration.
    writer: Mutex<()>,
    state: RwLock<MemState>,
}

#[derive(Default)]
struct MemState {
    index: TreeIndex,
    trees: Vec<BTreeMap<Value, Value>>,
}

impl MemoryDb {
    pub fn new() -> MemoryDb {
        MemoryDb {
            writer: Mutex::new(()),
            state: RwLock::new(MemState::default()),
        }
    }

    fn apply(&self, writes: StagedWrites) {
        let mut state = write(&self.state);
        for (idx, staged) in writes {
            let Some(tree) = state.trees.get_mut(idx) else {
                // Indexes only come from open_tree on this engine (checked by
                // Transaction), and trees are never dropped.
                continue;
            };
            for (k, v) in staged {
                match v {
                    Some(v) => tree.insert(k, v),
                    None => tree.remove(&k),
                };
            }
        }
    }
}

impl IDb for MemoryDb {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn open_tree(&self, name: &str) -> Result<usize> {
        let mut state = write(&self.state);
        if let Some(idx) = state.index.get(name) {
            return Ok(idx);
        }
        state.trees.push(BTreeMap::new());
        Ok(state.index.push(name))
    }

    fn list_trees(&self) -> Result<Vec<String>> {
        let state = read(&self.state);
        let mut names: Vec<String> = state.index.names().to_vec();
        names.sort();
        Ok(names)
    }

    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>> {
        let state = read(&self.state);
        Ok(state.trees.get(tree.idx).and_then(|t| t.get(key).cloned()))
    }

    fn len(&self, tree: TreeRef<'_>) -> Result<usize> {
        Ok(read(&self.state)
            .trees
            .get(tree.idx)
            .map_or(0, BTreeMap::len))
    }

    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>> {
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let state = read(&self.state);
        let Some(t) = state.trees.get(tree.idx) else {
            return Ok(Vec::new());
        };
        let iter = t
            .range::<[u8], _>(q.bounds())
            .map(|(k, v)| Ok::<_, std::convert::Infallible>((k.clone(), v.clone())));
        match collect_range(iter, q) {
            Ok(v) => Ok(v),
            Err(never) => match never {},
        }
    }

    fn insert(&self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        let _w = lock(&self.writer);
        if let Some(t) = write(&self.state).trees.get_mut(tree.idx) {
            t.insert(key.to_vec(), value.to_vec());
        }
        Ok(())
    }

    fn remove(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<()> {
        let _w = lock(&self.writer);
        if let Some(t) = write(&self.state).trees.get_mut(tree.idx) {
            t.remove(key);
        }
        Ok(())
    }

    fn transaction(&self, body: &mut dyn FnMut(&mut dyn ITx) -> bool) -> Result<()> {
        let _w = lock(&self.writer);
        let mut tx = StagedTx::new(self);
        if body(&mut tx) {
            self.apply(tx.into_writes());
        }
        Ok(())
    }
}
