//! Which `data_dir` directory holds a block.
//!
//! A block is written to ONE writable directory chosen by weighted
//! rendezvous hashing: each writable directory scores
//! `capacity / -ln(u)`, where `u` in (0, 1] comes from the Blake2 hash of
//! the directory's path and the block hash, and the highest score wins.
//! Each directory thus gets a share of new blocks proportional to its
//! capacity, and adding or removing a directory only moves the blocks that
//! now score highest elsewhere. Reads look in the chosen directory first,
//! then in every other one (read-only directories, and blocks written under
//! an older list of directories).

use std::path::{Path, PathBuf};

use garage_util::config::DataDir;
use garage_util::data::{blake2sum, Hash};

use crate::error::BlockError;

/// One directory of the store.
#[derive(Debug, Clone)]
pub(crate) struct Dir {
    pub(crate) path: PathBuf,
    /// Share of new blocks (None: read-only).
    weight: Option<u64>,
}

/// The directories of the store.
#[derive(Debug, Clone)]
pub(crate) struct DataLayout {
    pub(crate) dirs: Vec<Dir>,
}

impl DataLayout {
    /// The directories of a `data_dir` setting (checked).
    pub(crate) fn new(data_dir: &DataDir) -> Result<Self, BlockError> {
        let dirs = data_dir
            .dirs()?
            .into_iter()
            .map(|d| Dir {
                path: d.path,
                weight: if d.read_only {
                    None
                } else {
                    Some(d.capacity.unwrap_or(1).max(1))
                },
            })
            .collect();
        Ok(Self { dirs })
    }

    fn score(dir: &Dir, weight: u64, hash: &Hash) -> f64 {
        let mut key = dir.path.as_os_str().as_encoded_bytes().to_vec();
        key.extend_from_slice(hash.as_slice());
        let x = blake2sum(&key).prefix_u64();
        // u in (0, 1]: never 0, so the logarithm is finite.
        let u = (x as f64 + 1.0) / (u64::MAX as f64 + 1.0);
        let l = -u.ln();
        if l <= 0.0 {
            f64::INFINITY
        } else {
            weight as f64 / l
        }
    }

    /// Index of the directory new copies of `hash` are written to.
    pub(crate) fn primary(&self, hash: &Hash) -> usize {
        let mut best: Option<(f64, usize)> = None;
        for (i, d) in self.dirs.iter().enumerate() {
            let Some(w) = d.weight else { continue };
            let s = Self::score(d, w, hash);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, i));
            }
        }
        // `DataDir::dirs` guarantees a writable directory; 0 otherwise.
        best.map(|(_, i)| i).unwrap_or(0)
    }

    /// Directory indices to look for `hash` in: the primary one first.
    pub(crate) fn search_order(&self, hash: &Hash) -> Vec<usize> {
        let p = self.primary(hash);
        std::iter::once(p)
            .chain((0..self.dirs.len()).filter(|i| *i != p))
            .collect()
    }

    /// The file of `hash` in directory `dir`: `ab/cd/<64 hex>`.
    pub(crate) fn block_path(&self, dir: usize, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        let base: &Path = self
            .dirs
            .get(dir)
            .map(|d| d.path.as_path())
            .unwrap_or(Path::new("."));
        base.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi(spec: &[(&str, Option<u64>)]) -> DataLayout {
        DataLayout {
            dirs: spec
                .iter()
                .map(|(p, w)| Dir {
                    path: PathBuf::from(p),
                    weight: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn placement_follows_capacity_and_skips_read_only() {
        let l = multi(&[("/a", Some(1)), ("/b", Some(3)), ("/ro", None)]);
        let mut counts = [0usize; 3];
        for i in 0..4000u32 {
            let h = blake2sum(&i.to_be_bytes());
            counts[l.primary(&h)] += 1;
            let order = l.search_order(&h);
            assert_eq!(order.len(), 3);
            assert_eq!(order[0], l.primary(&h));
        }
        assert_eq!(counts[2], 0, "read-only directory got blocks");
        // Expected 1000 / 3000.
        assert!((800..1200).contains(&counts[0]), "{counts:?}");
        assert!((2800..3200).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn adding_a_directory_moves_only_its_share() {
        let before = multi(&[("/a", Some(1)), ("/b", Some(1))]);
        let after = multi(&[("/a", Some(1)), ("/b", Some(1)), ("/c", Some(2))]);
        let mut moved = 0;
        for i in 0..4000u32 {
            let h = blake2sum(&i.to_be_bytes());
            let (x, y) = (before.primary(&h), after.primary(&h));
            if x != y {
                assert_eq!(y, 2, "a block moved between two old directories");
                moved += 1;
            }
        }
        // Expected half of the blocks.
        assert!((1800..2200).contains(&moved), "{moved}");
    }

    #[test]
    fn block_paths_fan_out_by_hex_prefix() {
        let l = multi(&[("/data", Some(1))]);
        let h = Hash::from_bytes([0xab; 32]);
        let p = l.block_path(0, &h);
        assert_eq!(
            p,
            PathBuf::from("/data/ab/ab").join("ab".repeat(32)),
            "{}",
            p.display()
        );
    }
}
