//! The handles other crates use: [`Db`], [`Tree`] and [`Transaction`].
//!
//! A `Db` is a cheap, clonable handle on one open engine; a `Tree` is a named,
//! ordered byte-key map inside it and keeps the engine open as long as it
//! lives. Calls are synchronous and may come from any thread. Reads outside a
//! transaction each see one committed snapshot; autocommit writes and
//! transactions are acknowledged only once committed with the durability the
//! database was opened with (see `doc/storage.md`).

use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::{IDb, ITx, RangeQuery, TreeRef};
use crate::error::{Error, Result, TxError, TxResult};
use crate::options::{Engine, OpenOptions};
use crate::Value;

/// Gives each opened database an identity, so that a transaction can refuse
/// trees of another database.
static NEXT_DB_ID: AtomicU64 = AtomicU64::new(1);

/// A handle on an open database. Cloning is cheap; the engine closes when the
/// last `Db` and [`Tree`] handle is dropped.
#[derive(Clone)]
pub struct Db {
    id: u64,
    engine: Arc<dyn IDb>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("engine", &self.engine.engine())
            .finish_non_exhaustive()
    }
}

impl Db {
    pub(crate) fn from_engine(engine: Arc<dyn IDb>) -> Db {
        Db {
            id: NEXT_DB_ID.fetch_add(1, Ordering::Relaxed),
            engine,
        }
    }

    /// Opens (creating if needed) the database described by `opts`.
    ///
    /// Fails with [`Error::Config`] for sled with `fsync = true`, and with
    /// [`Error::EngineNotCompiled`] for an engine whose feature is off.
    pub fn open(opts: &OpenOptions) -> Result<Db> {
        match opts.engine {
            Engine::Memory => {
                if opts.fsync {
                    tracing::warn!(
                        engine = "memory",
                        "fsync requested for the memory engine, which keeps nothing on disk"
                    );
                }
                Ok(Db::memory())
            }
            Engine::Redb => open_redb(opts),
            Engine::Sled => open_sled(opts),
        }
    }

    /// A new, empty in-memory database.
    pub fn memory() -> Db {
        Db::from_engine(Arc::new(crate::memory::MemoryDb::new()))
    }

    /// Name of the engine behind this handle: `redb`, `sled` or `memory`.
    pub fn engine(&self) -> &'static str {
        self.engine.engine()
    }

    /// Opens the tree called `name`, creating it if absent. The same name
    /// always gives the same tree.
    pub fn open_tree(&self, name: &str) -> Result<Tree> {
        let idx = self.engine.open_tree(name)?;
        Ok(Tree(Arc::new(TreeInner {
            db: self.clone(),
            idx,
            name: name.to_owned(),
        })))
    }

    /// Names of all trees in the database, sorted.
    pub fn list_trees(&self) -> Result<Vec<String>> {
        self.engine.list_trees()
    }

    /// Runs `f` in one atomic write transaction over any trees of this
    /// database. If `f` returns `Ok`, all its writes commit together (durably
    /// per the fsync setting) before this returns; if it returns an error,
    /// nothing it wrote is kept.
    ///
    /// Transactions are serializable: they run one at a time, so `f` may
    /// read-modify-write safely. `f` may be called more than once on engines
    /// that retry on conflict, so it must have no side effects besides its
    /// writes. Inside `f`, use only the [`Transaction`]: calling an autocommit
    /// write or another transaction of the same database deadlocks.
    pub fn transaction<R, E>(
        &self,
        f: impl Fn(&mut Transaction<'_>) -> TxResult<R, E>,
    ) -> TxResult<R, E> {
        let mut outcome: Option<TxResult<R, E>> = None;
        let engine_result = self.engine.transaction(&mut |itx| {
            let mut tx = Transaction {
                db_id: self.id,
                tx: itx,
            };
            let result = f(&mut tx);
            let commit = result.is_ok();
            outcome = Some(result);
            commit
        });
        match (engine_result, outcome) {
            (Ok(()), Some(result)) => result,
            // Rolling back after an abort failed: the caller's reason matters
            // more, the engine error is logged.
            (Err(e), Some(Err(abort))) => {
                tracing::warn!(engine = self.engine(), error = %e, "transaction rollback failed");
                Err(abort)
            }
            // Begin or commit failed.
            (Err(e), _) => Err(TxError::Db(e)),
            (Ok(()), None) => Err(TxError::Db(Error::Engine {
                engine: self.engine(),
                message: "transaction committed without running its body".into(),
            })),
        }
    }
}

fn open_redb(opts: &OpenOptions) -> Result<Db> {
    #[cfg(feature = "redb")]
    {
        let engine = crate::redb_adapter::RedbDb::open(&opts.path, opts.fsync)?;
        Ok(Db::from_engine(Arc::new(engine)))
    }
    #[cfg(not(feature = "redb"))]
    {
        let _ = opts;
        Err(Error::EngineNotCompiled {
            engine: "redb",
            feature: "redb",
        })
    }
}

fn open_sled(opts: &OpenOptions) -> Result<Db> {
    #[cfg(feature = "sled")]
    {
        let engine = crate::sled_adapter::SledDb::open(&opts.path, opts.fsync)?;
        Ok(Db::from_engine(Arc::new(engine)))
    }
    #[cfg(not(feature = "sled"))]
    {
        let _ = opts;
        Err(Error::EngineNotCompiled {
            engine: "sled",
            feature: "sled",
        })
    }
}

/// A named, ordered map from byte keys to byte values. Cloning is cheap.
#[derive(Clone)]
pub struct Tree(Arc<TreeInner>);

struct TreeInner {
    db: Db,
    idx: usize,
    name: String,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("name", &self.0.name)
            .field("engine", &self.0.db.engine())
            .finish_non_exhaustive()
    }
}

impl Tree {
    fn tree_ref(&self) -> TreeRef<'_> {
        TreeRef {
            idx: self.0.idx,
            name: &self.0.name,
        }
    }

    fn engine(&self) -> &dyn IDb {
        &*self.0.db.engine
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.engine().get(self.tree_ref(), key)
    }

    /// Number of keys (linear time on sled).
    pub fn len(&self) -> Result<usize> {
        self.engine().len(self.tree_ref())
    }

    /// Whether the tree holds no key.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.first()?.is_none())
    }

    /// Sets `key` to `value` and commits.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.engine().insert(self.tree_ref(), key, value)
    }

    /// Removes `key` (nothing happens if absent) and commits.
    pub fn remove(&self, key: &[u8]) -> Result<()> {
        self.engine().remove(self.tree_ref(), key)
    }

    /// The entries whose keys are within `start..end`, in ascending key order,
    /// or descending when `reverse` (the same keys, walked from the high end),
    /// at most `limit` of them. Bounds that select nothing (start above end)
    /// give an empty result.
    pub fn range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
        limit: Option<usize>,
    ) -> Result<Vec<(Value, Value)>> {
        let q = RangeQuery {
            start,
            end,
            reverse,
            limit,
        };
        if q.is_empty() {
            return Ok(Vec::new());
        }
        self.engine().range(self.tree_ref(), &q)
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Result<Option<(Value, Value)>> {
        let mut v = self.range(Bound::Unbounded, Bound::Unbounded, false, Some(1))?;
        Ok(v.pop())
    }
}

/// An open write transaction, given to the closure of [`Db::transaction`].
/// Reads see the transaction's own writes.
pub struct Transaction<'a> {
    db_id: u64,
    tx: &'a mut dyn ITx,
}

impl Transaction<'_> {
    fn tree_ref<'t>(&self, tree: &'t Tree) -> Result<TreeRef<'t>> {
        if tree.0.db.id != self.db_id {
            return Err(Error::ForeignTree {
                tree: tree.0.name.clone(),
            });
        }
        Ok(tree.tree_ref())
    }

    /// The value of `key` in `tree`, including this transaction's writes.
    pub fn get(&self, tree: &Tree, key: &[u8]) -> Result<Option<Value>> {
        let t = self.tree_ref(tree)?;
        self.tx.get(t, key)
    }

    /// Sets `key` to `value` in `tree` when the transaction commits.
    pub fn insert(&mut self, tree: &Tree, key: &[u8], value: &[u8]) -> Result<()> {
        let t = self.tree_ref(tree)?;
        self.tx.insert(t, key, value)
    }

    /// Removes `key` from `tree` when the transaction commits.
    pub fn remove(&mut self, tree: &Tree, key: &[u8]) -> Result<()> {
        let t = self.tree_ref(tree)?;
        self.tx.remove(t, key)
    }

    /// Like [`Tree::range`], including this transaction's writes.
    pub fn range(
        &self,
        tree: &Tree,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
        limit: Option<usize>,
    ) -> Result<Vec<(Value, Value)>> {
        let t = self.tree_ref(tree)?;
        let q = RangeQuery {
            start,
            end,
            reverse,
            limit,
        };
        if q.is_empty() {
            return Ok(Vec::new());
        }
        self.tx.range(t, &q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_sync() {
        assert_send_sync::<Db>();
        assert_send_sync::<Tree>();
    }

    #[test]
    fn foreign_trees_are_refused() {
        let (a, b) = (Db::memory(), Db::memory());
        let tb = b.open_tree("t").expect("open");
        let r: TxResult<(), ()> = a.transaction(|tx| {
            tx.insert(&tb, b"k", b"v")?;
            Ok(())
        });
        assert!(matches!(r, Err(TxError::Db(Error::ForeignTree { .. }))));
        assert_eq!(tb.get(b"k").expect("get"), None);
    }

    #[test]
    fn disabled_engines_are_reported() {
        let dir = std::env::temp_dir();
        let engines = [
            (Engine::Redb, cfg!(feature = "redb")),
            (Engine::Sled, cfg!(feature = "sled")),
        ];
        for (engine, compiled) in engines {
            if !compiled {
                let r = Db::open(&OpenOptions::new(engine, &dir));
                assert!(matches!(r, Err(Error::EngineNotCompiled { .. })));
            }
        }
    }
}
