//! The block files of this node.
//!
//! A block lives in `<dir>/ab/cd/<64 hex>` (see `layout`). A new file is
//! written as `<64 hex>.tmp<n>` in the same directory, optionally fsynced,
//! then renamed over the final name (and the directory fsynced): a reader
//! never sees a half-written block, and a crash leaves at most a temporary
//! file, which the start-up scan removes. A file whose content does not
//! match its name is renamed to `<64 hex>.corrupted` and no longer served.
//!
//! Every function here does blocking file I/O: callers run them on a
//! blocking thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use garage_util::data::{blake2sum, Hash};

use crate::error::BlockError;
use crate::layout::DataLayout;

/// Temporary files older than this are left-overs of a crash.
const STALE_TMP_SECS: u64 = 3600;

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BlockError + 'a {
    move |source| BlockError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What reading a local block found.
#[derive(Debug)]
pub(crate) enum LocalRead {
    /// The block, its hash checked.
    Ok(Vec<u8>),
    /// No file.
    Missing,
    /// A file that did not match its hash; it was moved aside. Holds its
    /// size.
    Corrupt(u64),
}

/// The block files under the `data_dir` directories.
pub(crate) struct LocalStore {
    pub(crate) layout: DataLayout,
    fsync: bool,
    tmp_counter: AtomicU64,
}

impl LocalStore {
    pub(crate) fn new(layout: DataLayout, fsync: bool) -> Result<Self, BlockError> {
        for d in layout.dirs.iter() {
            std::fs::create_dir_all(&d.path).map_err(io("create", &d.path))?;
        }
        Ok(Self {
            layout,
            fsync,
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The file holding `hash`, if any (primary directory first).
    pub(crate) fn find(&self, hash: &Hash) -> Option<PathBuf> {
        self.layout
            .search_order(hash)
            .into_iter()
            .map(|d| self.layout.block_path(d, hash))
            .find(|p| p.is_file())
    }

    /// Whether a file of `hash` exists.
    pub(crate) fn exists(&self, hash: &Hash) -> bool {
        self.find(hash).is_some()
    }

    /// Reads `hash`, checking the content against the hash; a mismatching
    /// file is moved aside.
    pub(crate) fn read(&self, hash: &Hash) -> Result<LocalRead, BlockError> {
        let Some(path) = self.find(hash) else {
            return Ok(LocalRead::Missing);
        };
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            // Deleted between `find` and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LocalRead::Missing),
            Err(e) => return Err(io("read", &path)(e)),
        };
        if blake2sum(&data) == *hash {
            return Ok(LocalRead::Ok(data));
        }
        tracing::error!(block = %hash, path = %path.display(), "corrupted block file, moved aside");
        let aside = path.with_extension("corrupted");
        std::fs::rename(&path, &aside).map_err(io("rename", &path))?;
        Ok(LocalRead::Corrupt(data.len() as u64))
    }

    /// Writes `data` (whose hash the caller checked) as block `hash`,
    /// unless a file of it already exists. Returns whether a new file was
    /// written.
    pub(crate) fn write(&self, hash: &Hash, data: &[u8]) -> Result<bool, BlockError> {
        if self.exists(hash) {
            return Ok(false);
        }
        let path = self.layout.block_path(self.layout.primary(hash), hash);
        let dir = path
            .parent()
            .ok_or_else(|| BlockError::Task(format!("no parent for {}", path.display())))?;
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{n}"));
        let written = (|| -> Result<(), BlockError> {
            let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
            f.write_all(data).map_err(io("write", &tmp))?;
            if self.fsync {
                f.sync_all().map_err(io("fsync", &tmp))?;
            }
            drop(f);
            std::fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
            if self.fsync {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io("fsync", dir))?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map(|()| true)
    }

    /// Deletes every file of `hash`; returns the bytes freed (None: there
    /// was no file).
    pub(crate) fn delete(&self, hash: &Hash) -> Result<Option<u64>, BlockError> {
        let mut freed = None;
        for d in 0..self.layout.dirs.len() {
            let path = self.layout.block_path(d, hash);
            let len = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("stat", &path)(e)),
            };
            match std::fs::remove_file(&path) {
                Ok(()) => *freed.get_or_insert(0) += len,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (),
                Err(e) => return Err(io("delete", &path)(e)),
            }
        }
        Ok(freed)
    }

    /// Lists the blocks whose hash starts with byte `prefix`, in every
    /// directory: (hash, size) once per hash. Removes temporary files
    /// older than an hour on the way.
    pub(crate) fn scan_prefix(&self, prefix: u8) -> Result<Vec<(Hash, u64)>, BlockError> {
        let mut out: Vec<(Hash, u64)> = vec![];
        let top = hex::encode([prefix]);
        for d in self.layout.dirs.iter() {
            let top_dir = d.path.join(&top);
            let subs = match std::fs::read_dir(&top_dir) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &top_dir)(e)),
            };
            for sub in subs {
                let sub = sub.map_err(io("list", &top_dir))?;
                let sub_path = sub.path();
                if !sub_path.is_dir() {
                    continue;
                }
                let files = std::fs::read_dir(&sub_path).map_err(io("list", &sub_path))?;
                for f in files {
                    let f = f.map_err(io("list", &sub_path))?;
                    let name = f.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if name.contains(".tmp") {
                        remove_if_stale(&f.path());
                        continue;
                    }
                    let Some(hash) = Hash::from_hex(name).filter(|h| h.as_slice()[0] == prefix)
                    else {
                        continue;
                    };
                    let Ok(meta) = f.metadata() else { continue };
                    if !meta.is_file() || out.iter().any(|(h, _)| *h == hash) {
                        continue;
                    }
                    out.push((hash, meta.len()));
                }
            }
        }
        Ok(out)
    }
}

fn remove_if_stale(path: &Path) {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > STALE_TMP_SECS);
    if old {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary block file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garage_util::config::DataDir;

    fn store(dir: &Path) -> LocalStore {
        let layout = DataLayout::new(&DataDir::Single(dir.to_path_buf())).expect("layout");
        LocalStore::new(layout, true).expect("store")
    }

    #[test]
    fn write_read_delete() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = store(tmp.path());
        let data = b"hello block".to_vec();
        let h = blake2sum(&data);
        assert!(matches!(s.read(&h).expect("read"), LocalRead::Missing));
        assert!(s.write(&h, &data).expect("write"));
        assert!(
            !s.write(&h, &data).expect("rewrite"),
            "second write is a no-op"
        );
        let path = s.find(&h).expect("file");
        let hex = h.to_hex();
        assert!(path.ends_with(format!("{}/{}/{}", &hex[..2], &hex[2..4], hex)));
        match s.read(&h).expect("read") {
            LocalRead::Ok(d) => assert_eq!(d, data),
            other => panic!("unexpected {other:?}"),
        }
        // No temporary file left next to it.
        let siblings: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(siblings.len(), 1);
        assert_eq!(s.scan_prefix(h.as_slice()[0]).expect("scan"), vec![(h, 11)]);
        assert_eq!(s.delete(&h).expect("delete"), Some(11));
        assert_eq!(s.delete(&h).expect("delete again"), None);
        assert!(!s.exists(&h));
    }

    #[test]
    fn corrupt_file_is_detected_and_moved_aside() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = store(tmp.path());
        let data = b"original".to_vec();
        let h = blake2sum(&data);
        s.write(&h, &data).expect("write");
        let path = s.find(&h).expect("file");
        std::fs::write(&path, b"bit rot!").expect("corrupt");
        assert!(matches!(s.read(&h).expect("read"), LocalRead::Corrupt(8)));
        assert!(!s.exists(&h), "corrupt file still served");
        assert!(path.with_extension("corrupted").is_file());
        // The scan ignores the moved-aside file; a fresh write replaces it.
        assert!(s.scan_prefix(h.as_slice()[0]).expect("scan").is_empty());
        assert!(s.write(&h, &data).expect("rewrite"));
        assert!(matches!(s.read(&h).expect("read"), LocalRead::Ok(_)));
    }

    #[test]
    fn read_only_directory_is_read_not_written() {
        let a = tempfile::tempdir().expect("tmp");
        let ro = tempfile::tempdir().expect("tmp");
        let mut t1 = toml::Table::new();
        t1.insert("path".into(), a.path().display().to_string().into());
        t1.insert("capacity".into(), "1G".into());
        let mut t2 = toml::Table::new();
        t2.insert("path".into(), ro.path().display().to_string().into());
        t2.insert("read_only".into(), true.into());
        let layout = DataLayout::new(&DataDir::Multiple(vec![t1, t2])).expect("layout");
        let s = LocalStore::new(layout, false).expect("store");
        // A block placed in the read-only directory by an older setup.
        let old = b"old block".to_vec();
        let h_old = blake2sum(&old);
        let p = s.layout.block_path(1, &h_old);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &old).expect("place");
        assert!(matches!(s.read(&h_old).expect("read"), LocalRead::Ok(d) if d == old));
        assert!(!s.write(&h_old, &old).expect("present"));
        // New blocks all go to the writable directory.
        for i in 0..20u8 {
            let d = vec![i; 10];
            let h = blake2sum(&d);
            s.write(&h, &d).expect("write");
            assert!(s.find(&h).expect("file").starts_with(a.path()));
        }
    }
}
