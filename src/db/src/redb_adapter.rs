//! The redb engine: one redb file (`db.redb`), one table per tree.
//!
//! Durability: every commit, autocommit writes included, is a redb
//! `Durability::Immediate` commit, which writes all its pages and the new
//! header to the storage backend and then calls `sync_data`. The backend is
//! redb's own file backend wrapped in [`GatedBackend`], whose `sync_data` only
//! reaches the disk when the database was opened with fsync. Without fsync, a
//! returned commit has been `pwrite`n into the OS page cache: it survives a
//! crash of the process (SIGKILL, panic, OOM kill) but not a power loss. With
//! fsync it is on stable storage before the commit returns.
//!
//! `Durability::None` is never used: redb keeps such commits in its own
//! memory until a later durable commit, so a process crash would lose them.
//!
//! Concurrency: redb runs one write transaction at a time (others wait in
//! `begin_write`) and reads use their own snapshot, so the engine needs no
//! lock of its own except for the tree index.

/// Bytes of redb page cache: the server's memory grows to about this much
/// under load, then stays flat.
pub const CACHE_SIZE: usize = 256 << 20;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use redb::backends::FileBackend;
use redb::{
    BackendError, Builder, Database, Durability, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageBackend, TableDefinition, TableHandle, WriteTransaction,
};

use crate::engine::{collect_range, lock, read, write, IDb, ITx, RangeQuery, TreeIndex, TreeRef};
use crate::error::{Error, Result};
use crate::Value;

const ENGINE: &str = "redb";
/// Name of the database file inside the configured directory.
pub(crate) const FILE_NAME: &str = "db.redb";

type Def<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;

fn def(name: &str) -> Def<'_> {
    TableDefinition::new(name)
}

/// Converts a redb error, keeping corruption apart from other failures.
fn err(op: &'static str) -> impl FnOnce(redb::Error) -> Error {
    move |e| match e {
        redb::Error::Corrupted(message) => Error::Corrupted {
            engine: ENGINE,
            message: format!("{op}: {message}"),
        },
        e => Error::Engine {
            engine: ENGINE,
            message: format!("{op}: {e}"),
        },
    }
}

/// Shorthand: `.map_err(e("op"))` for any error convertible to `redb::Error`.
fn e<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> Error {
    move |x| err(op)(x.into())
}

/// A storage backend whose `sync_data` reaches the inner backend only when
/// fsync is on. Every other call, locks included, is passed through, so
/// writes still leave the process as soon as redb issues them.
#[derive(Debug)]
pub(crate) struct GatedBackend<B> {
    inner: B,
    fsync: bool,
}

impl<B: StorageBackend> GatedBackend<B> {
    pub fn new(inner: B, fsync: bool) -> GatedBackend<B> {
        GatedBackend { inner, fsync }
    }
}

type LockResult<T> = std::result::Result<T, BackendError>;

impl<B: StorageBackend> StorageBackend for GatedBackend<B> {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        if self.fsync {
            self.inner.sync_data()
        } else {
            Ok(())
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.inner.query_lock_range(start, end)
    }
}

/// The redb engine.
pub(crate) struct RedbDb {
    db: Database,
    index: RwLock<TreeIndex>,
    /// Serializes tree creation, so that two threads opening the same new
    /// tree get the same index.
    creating: Mutex<()>,
}

impl RedbDb {
    /// Opens or creates `dir/db.redb`.
    pub fn open(dir: &Path, fsync: bool) -> Result<RedbDb> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        if fsync && !existed {
            // Make the new file's directory entry durable too.
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        let backend = FileBackend::new(file).map_err(e("open"))?;
        let db = RedbDb::with_backend(GatedBackend::new(backend, fsync))?;
        tracing::debug!(engine = ENGINE, path = %path.display(), fsync, "database opened");
        Ok(db)
    }

    /// Opens or creates a database on any backend (used by the simulated disk).
    ///
    /// The page cache is bounded by [`CACHE_SIZE`] (redb's own default is
    /// 1 GiB, which shows up as a server RSS growing to that size).
    pub fn with_backend(backend: impl StorageBackend) -> Result<RedbDb> {
        let db = Builder::new()
            .set_cache_size(CACHE_SIZE)
            .create_with_backend(backend)
            .map_err(e("open"))?;
        let mut index = TreeIndex::default();
        {
            let rtx = db.begin_read().map_err(e("begin_read"))?;
            for table in rtx.list_tables().map_err(e("list_tables"))? {
                index.push(table.name());
            }
        }
        Ok(RedbDb {
            db,
            index: RwLock::new(index),
            creating: Mutex::new(()),
        })
    }

    fn begin_write(&self) -> Result<WriteTransaction> {
        let mut wtx = self.db.begin_write().map_err(e("begin_write"))?;
        // The default, set explicitly: durability rests on it.
        wtx.set_durability(Durability::Immediate)
            .map_err(|x| Error::Engine {
                engine: ENGINE,
                message: format!("set_durability: {x}"),
            })?;
        Ok(wtx)
    }

    /// Runs `op` in its own durable write transaction.
    fn autocommit(&self, op: impl FnOnce(&WriteTransaction) -> Result<()>) -> Result<()> {
        let wtx = self.begin_write()?;
        op(&wtx)?;
        wtx.commit().map_err(e("commit"))
    }
}

fn table_range<T>(t: &T, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
{
    let iter = t.range::<&[u8]>(q.bounds()).map_err(e("range"))?;
    let iter = iter.map(|r| r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())));
    collect_range(iter, q).map_err(e("range"))
}

impl IDb for RedbDb {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn open_tree(&self, name: &str) -> Result<usize> {
        if let Some(idx) = read(&self.index).get(name) {
            return Ok(idx);
        }
        let _creating = lock(&self.creating);
        if let Some(idx) = read(&self.index).get(name) {
            return Ok(idx);
        }
        self.autocommit(|wtx| {
            wtx.open_table(def(name)).map_err(e("open_table"))?;
            Ok(())
        })?;
        Ok(write(&self.index).push(name))
    }

    fn list_trees(&self) -> Result<Vec<String>> {
        let rtx = self.db.begin_read().map_err(e("begin_read"))?;
        let tables = rtx.list_tables().map_err(e("list_tables"))?;
        let mut names: Vec<String> = tables.map(|t| t.name().to_owned()).collect();
        names.sort();
        Ok(names)
    }

    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>> {
        let rtx = self.db.begin_read().map_err(e("begin_read"))?;
        let t = rtx.open_table(def(tree.name)).map_err(e("open_table"))?;
        let v = t.get(key).map_err(e("get"))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    fn len(&self, tree: TreeRef<'_>) -> Result<usize> {
        let rtx = self.db.begin_read().map_err(e("begin_read"))?;
        let t = rtx.open_table(def(tree.name)).map_err(e("open_table"))?;
        let n = t.len().map_err(e("len"))?;
        usize::try_from(n).map_err(|_| Error::Corrupted {
            engine: ENGINE,
            message: format!("table length {n} does not fit in memory"),
        })
    }

    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>> {
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let rtx = self.db.begin_read().map_err(e("begin_read"))?;
        let t = rtx.open_table(def(tree.name)).map_err(e("open_table"))?;
        table_range(&t, q)
    }

    fn insert(&self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        self.autocommit(|wtx| RedbTx::new(wtx).insert(tree, key, value))
    }

    fn remove(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<()> {
        self.autocommit(|wtx| RedbTx::new(wtx).remove(tree, key))
    }

    fn transaction(&self, body: &mut dyn FnMut(&mut dyn ITx) -> bool) -> Result<()> {
        let wtx = self.begin_write()?;
        let commit = body(&mut RedbTx::new(&wtx));
        if commit {
            wtx.commit().map_err(e("commit"))
        } else {
            wtx.abort().map_err(e("abort"))
        }
    }
}

/// A table of byte keys and values, open in a write transaction.
type BytesTable<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;

/// A redb write transaction. Each table is opened once per transaction and
/// kept open until the transaction ends (redb allows one open handle per
/// table and transaction; opening and closing it on every operation would
/// rewrite the table's root entry each time).
struct RedbTx<'a> {
    wtx: &'a WriteTransaction,
    open: RefCell<HashMap<String, BytesTable<'a>>>,
}

impl<'a> RedbTx<'a> {
    fn new(wtx: &'a WriteTransaction) -> Self {
        Self {
            wtx,
            open: RefCell::new(HashMap::new()),
        }
    }

    fn with_table<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut BytesTable<'a>) -> Result<R>,
    ) -> Result<R> {
        let mut open = self.open.borrow_mut();
        if let Some(t) = open.get_mut(name) {
            return f(t);
        }
        let mut t = self.wtx.open_table(def(name)).map_err(e("open_table"))?;
        let r = f(&mut t);
        open.insert(name.to_string(), t);
        r
    }
}

impl ITx for RedbTx<'_> {
    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>> {
        self.with_table(tree.name, |t| {
            let v = t.get(key).map_err(e("get"))?;
            Ok(v.map(|v| v.value().to_vec()))
        })
    }

    fn insert(&mut self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        self.with_table(tree.name, |t| {
            t.insert(key, value).map_err(e("insert"))?;
            Ok(())
        })
    }

    fn remove(&mut self, tree: TreeRef<'_>, key: &[u8]) -> Result<()> {
        self.with_table(tree.name, |t| {
            t.remove(key).map_err(e("remove"))?;
            Ok(())
        })
    }

    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>> {
        self.with_table(tree.name, |t| table_range(&*t, q))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Db, Engine, Error, OpenOptions};

    #[test]
    fn a_second_open_of_the_same_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = OpenOptions::new(Engine::Redb, dir.path());
        let db = Db::open(&opts).expect("first open");
        assert_eq!(db.engine(), "redb");
        assert!(dir.path().join(super::FILE_NAME).is_file());
        let second = Db::open(&opts);
        assert!(
            matches!(second, Err(Error::Engine { engine: "redb", .. })),
            "{second:?}"
        );
        drop(db);
        Db::open(&opts).expect("open after the first handle is gone");
    }

    #[test]
    fn fsync_mode_opens_and_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = OpenOptions {
            fsync: true,
            ..OpenOptions::new(Engine::Redb, dir.path().join("nested"))
        };
        let t = Db::open(&opts).expect("open").open_tree("t").expect("tree");
        t.insert(b"k", b"v").expect("insert");
        assert_eq!(t.get(b"k").expect("get"), Some(b"v".to_vec()));
    }

    #[test]
    fn a_file_in_the_way_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("file");
        std::fs::write(&path, b"not a directory").expect("write");
        let r = Db::open(&OpenOptions::new(Engine::Redb, &path));
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    }
}
