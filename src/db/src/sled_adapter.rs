//! The sled engine (feature `sled`): sled 0.34 trees in `db.sled/`.
//!
//! sled's own transactions cannot scan ranges and its iterators are not
//! snapshots, so this engine adds two locks of its own:
//! - a writer mutex, held by every autocommit write and for the whole of a
//!   transaction, which therefore runs once, reads a stable committed state
//!   and stages its writes (see [`StagedTx`]);
//! - a snapshot lock: reads hold it shared for the call, and writes are
//!   applied under it exclusively, so a read never sees half a transaction.
//!
//! A transaction's staged writes are applied in one sled transaction over the
//! trees involved, which sled recovers atomically after a crash.
//!
//! Durability: every write is followed by `Db::flush`, so it has left the
//! process before it is acknowledged and survives a SIGKILL. Power-loss
//! durability (`fsync = true`) is refused: on Linux sled's flush ends with
//! `sync_file_range`, which does not flush file metadata or the drive's
//! write cache, so sled cannot promise that an acknowledged write survives a
//! power loss.

use std::path::Path;
use std::sync::{Mutex, RwLock};

use crate::engine::{
    collect_range, lock, read, write, IDb, ITx, RangeQuery, StagedTx, StagedWrites, TreeIndex,
    TreeRef,
};
use crate::error::{Error, Result};
use crate::Value;

const ENGINE: &str = "sled";
/// Name of the database directory inside the configured directory.
pub(crate) const DIR_NAME: &str = "db.sled";
/// sled's default tree, which is not one of ours.
const DEFAULT_TREE: &str = "__sled__default";

fn e(op: &'static str) -> impl FnOnce(sled::Error) -> Error {
    move |x| match x {
        sled::Error::Corruption { .. } => Error::Corrupted {
            engine: ENGINE,
            message: format!("{op}: {x}"),
        },
        x => Error::Engine {
            engine: ENGINE,
            message: format!("{op}: {x}"),
        },
    }
}

/// The sled engine.
pub(crate) struct SledDb {
    db: sled::Db,
    trees: RwLock<(TreeIndex, Vec<sled::Tree>)>,
    writer: Mutex<()>,
    snapshot: RwLock<()>,
}

impl SledDb {
    /// Opens or creates `dir/db.sled`; refuses `fsync`.
    pub fn open(dir: &Path, fsync: bool) -> Result<SledDb> {
        if fsync {
            return Err(Error::Config {
                message: "the sled engine cannot guarantee that a commit survives a power loss \
                          (its flush uses sync_file_range, not fsync): set metadata_fsync = false \
                          or use db_engine = \"redb\""
                    .into(),
            });
        }
        let path = dir.join(DIR_NAME);
        let db = sled::Config::new().path(&path).open().map_err(e("open"))?;
        let mut index = TreeIndex::default();
        let mut trees = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for raw in db.tree_names() {
            let name = String::from_utf8(raw.to_vec()).map_err(|_| Error::Corrupted {
                engine: ENGINE,
                message: format!("tree name is not UTF-8: {:?}", raw.as_ref()),
            })?;
            if name != DEFAULT_TREE {
                names.push(name);
            }
        }
        for name in names {
            trees.push(db.open_tree(&name).map_err(e("open_tree"))?);
            index.push(&name);
        }
        tracing::debug!(engine = ENGINE, path = %path.display(), "database opened");
        Ok(SledDb {
            db,
            trees: RwLock::new((index, trees)),
            writer: Mutex::new(()),
            snapshot: RwLock::new(()),
        })
    }

    fn tree(&self, tree: TreeRef<'_>) -> Result<sled::Tree> {
        read(&self.trees)
            .1
            .get(tree.idx)
            .cloned()
            .ok_or_else(|| Error::Engine {
                engine: ENGINE,
                message: format!("unknown tree index {} ({:?})", tree.idx, tree.name),
            })
    }

    /// Makes everything written so far leave the process.
    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(e("flush"))?;
        Ok(())
    }

    fn apply(&self, writes: StagedWrites) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let trees = {
            let guard = read(&self.trees);
            let mut trees = Vec::with_capacity(writes.len());
            for idx in writes.keys() {
                trees.push(guard.1.get(*idx).cloned().ok_or_else(|| Error::Engine {
                    engine: ENGINE,
                    message: format!("unknown tree index {idx}"),
                })?);
            }
            trees
        };
        let _snapshot = write(&self.snapshot);
        let res: sled::transaction::TransactionResult<(), ()> = trees[..].transaction(|views| {
            for (view, staged) in views.iter().zip(writes.values()) {
                for (k, v) in staged {
                    match v {
                        Some(v) => view.insert(k.as_slice(), v.as_slice())?,
                        None => view.remove(k.as_slice())?,
                    };
                }
            }
            Ok(())
        });
        match res {
            Ok(()) => Ok(()),
            Err(sled::transaction::TransactionError::Storage(x)) => Err(e("transaction")(x)),
            Err(sled::transaction::TransactionError::Abort(())) => Err(Error::Engine {
                engine: ENGINE,
                message: "transaction: aborted by sled".into(),
            }),
        }
    }
}

use sled::Transactional as _;

impl IDb for SledDb {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn open_tree(&self, name: &str) -> Result<usize> {
        if name == DEFAULT_TREE {
            return Err(Error::InvalidTreeName {
                name: name.into(),
                reason: "reserved by sled",
            });
        }
        if let Some(idx) = read(&self.trees).0.get(name) {
            return Ok(idx);
        }
        let mut trees = write(&self.trees);
        if let Some(idx) = trees.0.get(name) {
            return Ok(idx);
        }
        let tree = self.db.open_tree(name).map_err(e("open_tree"))?;
        self.flush()?;
        trees.1.push(tree);
        Ok(trees.0.push(name))
    }

    fn list_trees(&self) -> Result<Vec<String>> {
        let mut names = read(&self.trees).0.names().to_vec();
        names.sort();
        Ok(names)
    }

    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>> {
        let t = self.tree(tree)?;
        let _snapshot = read(&self.snapshot);
        Ok(t.get(key).map_err(e("get"))?.map(|v| v.to_vec()))
    }

    fn len(&self, tree: TreeRef<'_>) -> Result<usize> {
        let t = self.tree(tree)?;
        let _snapshot = read(&self.snapshot);
        Ok(t.len())
    }

    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>> {
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.tree(tree)?;
        let _snapshot = read(&self.snapshot);
        let iter = t
            .range::<&[u8], _>(q.bounds())
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())));
        collect_range(iter, q).map_err(e("range"))
    }

    fn insert(&self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        let t = self.tree(tree)?;
        let _w = lock(&self.writer);
        {
            let _snapshot = write(&self.snapshot);
            t.insert(key, value).map_err(e("insert"))?;
        }
        self.flush()
    }

    fn remove(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<()> {
        let t = self.tree(tree)?;
        let _w = lock(&self.writer);
        {
            let _snapshot = write(&self.snapshot);
            t.remove(key).map_err(e("remove"))?;
        }
        self.flush()
    }

    fn transaction(&self, body: &mut dyn FnMut(&mut dyn ITx) -> bool) -> Result<()> {
        let _w = lock(&self.writer);
        let mut tx = StagedTx::new(self);
        if body(&mut tx) {
            self.apply(tx.into_writes())?;
            self.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Engine, Error, OpenOptions};

    #[test]
    fn fsync_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = OpenOptions {
            fsync: true,
            ..OpenOptions::new(Engine::Sled, dir.path())
        };
        match Db::open(&opts) {
            Err(Error::Config { message }) => {
                assert!(
                    message.contains("sled") && message.contains("power loss"),
                    "{message}"
                );
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
        assert!(
            !dir.path().join(super::DIR_NAME).exists(),
            "nothing is created"
        );
    }

    #[test]
    fn the_default_tree_is_neither_listed_nor_openable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&OpenOptions::new(Engine::Sled, dir.path())).expect("open");
        assert_eq!(db.engine(), "sled");
        assert_eq!(db.list_trees().expect("list"), Vec::<String>::new());
        let r = db.open_tree(super::DEFAULT_TREE);
        assert!(matches!(r, Err(Error::InvalidTreeName { .. })), "{r:?}");
    }
}
