//! The contract between [`Db`](crate::Db) and the engines, and helpers the
//! engines share.
//!
//! Each engine implements [`IDb`]; its transactions implement [`ITx`]. Trees
//! are addressed by a [`TreeRef`]: the index the engine returned from
//! `open_tree` plus the tree's name, so that each engine can use whichever is
//! cheaper. Engines without native multi-tree transactions with range scans
//! (memory, sled) run transactions through [`StagedTx`]: one writer at a time,
//! writes staged in an overlay that reads consult, applied atomically at the
//! end.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::Result;
use crate::Value;

/// A tree as the engines see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeRef<'a> {
    /// Index the engine returned from [`IDb::open_tree`].
    pub idx: usize,
    /// Name of the tree (the memory engine does not need it).
    #[cfg_attr(not(any(feature = "redb", feature = "sled")), allow(dead_code))]
    pub name: &'a str,
}

/// Arguments of a range scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeQuery<'a> {
    pub start: Bound<&'a [u8]>,
    pub end: Bound<&'a [u8]>,
    pub reverse: bool,
    pub limit: Option<usize>,
}

impl RangeQuery<'_> {
    /// True when no key can be in the range: start above end, or equal bounds
    /// with one of them excluded, or a limit of zero. Engines check this first,
    /// since `BTreeMap::range` panics on inverted bounds.
    pub fn is_empty(&self) -> bool {
        if self.limit == Some(0) {
            return true;
        }
        match (self.start, self.end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
            _ => false,
        }
    }

    /// The bounds as a tuple usable with `RangeBounds` APIs.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (self.start, self.end)
    }
}

/// Takes the first `limit` items of an ordered iterator, walking it from the
/// back when `reverse`.
pub(crate) fn collect_range<I, T, E>(iter: I, q: &RangeQuery<'_>) -> std::result::Result<Vec<T>, E>
where
    I: DoubleEndedIterator<Item = std::result::Result<T, E>>,
{
    let limit = q.limit.unwrap_or(usize::MAX);
    if q.reverse {
        iter.rev().take(limit).collect()
    } else {
        iter.take(limit).collect()
    }
}

/// An engine. All methods are safe to call from many threads at once.
pub(crate) trait IDb: Send + Sync + 'static {
    /// Name of the engine (`redb`, `sled`, `memory`).
    fn engine(&self) -> &'static str;
    /// Opens or creates a tree; returns its index.
    fn open_tree(&self, name: &str) -> Result<usize>;
    /// Names of all trees, sorted.
    fn list_trees(&self) -> Result<Vec<String>>;

    /// Reads one key from the committed state.
    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>>;
    /// Number of keys in the committed state of a tree.
    fn len(&self, tree: TreeRef<'_>) -> Result<usize>;
    /// Scans the committed state; one consistent snapshot per call.
    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>>;
    /// Writes one key and commits, durably per the fsync setting.
    fn insert(&self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes one key and commits, durably per the fsync setting.
    fn remove(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<()>;

    /// Runs `body` in a write transaction: commits if it returns true, rolls
    /// back otherwise. `body` may be called again if the engine retries.
    fn transaction(&self, body: &mut dyn FnMut(&mut dyn ITx) -> bool) -> Result<()>;
}

/// A write transaction of an engine; reads see its own writes.
pub(crate) trait ITx {
    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>>;
    fn insert(&mut self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()>;
    fn remove(&mut self, tree: TreeRef<'_>, key: &[u8]) -> Result<()>;
    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>>;
}

/// Writes staged by a [`StagedTx`]: per tree index, key to new value (`None`
/// for a removal).
pub(crate) type StagedWrites = BTreeMap<usize, BTreeMap<Value, Option<Value>>>;

/// A transaction that stages its writes over an engine's committed state.
///
/// Correct only while the caller keeps every other writer out (the engines
/// hold a writer mutex around the whole transaction and every autocommit
/// write), so that the committed state it reads cannot change under it.
pub(crate) struct StagedTx<'a> {
    base: &'a dyn IDb,
    writes: StagedWrites,
}

impl<'a> StagedTx<'a> {
    pub fn new(base: &'a dyn IDb) -> StagedTx<'a> {
        StagedTx {
            base,
            writes: BTreeMap::new(),
        }
    }

    /// The writes to apply on commit.
    pub fn into_writes(self) -> StagedWrites {
        self.writes
    }
}

impl ITx for StagedTx<'_> {
    fn get(&self, tree: TreeRef<'_>, key: &[u8]) -> Result<Option<Value>> {
        match self.writes.get(&tree.idx).and_then(|w| w.get(key)) {
            Some(staged) => Ok(staged.clone()),
            None => self.base.get(tree, key),
        }
    }

    fn insert(&mut self, tree: TreeRef<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        let staged = self.writes.entry(tree.idx).or_default();
        staged.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&mut self, tree: TreeRef<'_>, key: &[u8]) -> Result<()> {
        self.writes
            .entry(tree.idx)
            .or_default()
            .insert(key.to_vec(), None);
        Ok(())
    }

    fn range(&self, tree: TreeRef<'_>, q: &RangeQuery<'_>) -> Result<Vec<(Value, Value)>> {
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let Some(staged) = self.writes.get(&tree.idx) else {
            return self.base.range(tree, q);
        };
        let mut overlay: Vec<(&Value, &Option<Value>)> =
            staged.range::<[u8], _>(q.bounds()).collect();
        if q.reverse {
            overlay.reverse();
        }
        // Each staged key hides at most one committed entry, so the first
        // `limit + overlay.len()` committed entries are enough to produce the
        // first `limit` merged ones.
        let base_q = RangeQuery {
            limit: q.limit.map(|l| l.saturating_add(overlay.len())),
            ..*q
        };
        let base = self.base.range(tree, &base_q)?;
        Ok(merge_ordered(base, overlay, q.reverse, q.limit))
    }
}

/// Merges committed entries with staged writes, both in scan order; staged
/// writes win on equal keys and staged removals drop the key.
fn merge_ordered(
    base: Vec<(Value, Value)>,
    overlay: Vec<(&Value, &Option<Value>)>,
    reverse: bool,
    limit: Option<usize>,
) -> Vec<(Value, Value)> {
    use std::cmp::Ordering;

    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut base = base.into_iter().peekable();
    let mut overlay = overlay.into_iter().peekable();
    while out.len() < limit {
        let order = match (base.peek(), overlay.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((bk, _)), Some((ok, _))) => {
                let o = bk.as_slice().cmp(ok.as_slice());
                if reverse {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        // `Less`: the committed entry comes first; otherwise the staged one
        // does (and replaces the committed entry on `Equal`).
        if order == Ordering::Less {
            out.extend(base.next());
            continue;
        }
        if order == Ordering::Equal {
            base.next();
        }
        if let Some((k, Some(v))) = overlay.next() {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Maps tree names to the indexes handed out by `open_tree`.
#[derive(Debug, Default)]
pub(crate) struct TreeIndex {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
}

impl TreeIndex {
    /// All names, in the order the trees were opened.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Records a new tree; returns its index.
    pub fn push(&mut self, name: &str) -> usize {
        let idx = self.names.len();
        self.names.push(name.to_owned());
        self.by_name.insert(name.to_owned(), idx);
        idx
    }
}

// The locks below only guard plain data that every critical section leaves
// consistent (no user code runs under them), so a poisoned lock is still
// safe to use.

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(start: Bound<&'a [u8]>, end: Bound<&'a [u8]>) -> RangeQuery<'a> {
        RangeQuery {
            start,
            end,
            reverse: false,
            limit: None,
        }
    }

    #[test]
    fn empty_ranges_are_detected() {
        use Bound::*;
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(!q(Included(a), Included(a)).is_empty());
        assert!(q(Included(a), Excluded(a)).is_empty());
        assert!(q(Excluded(a), Included(a)).is_empty());
        assert!(q(Excluded(a), Excluded(a)).is_empty());
        assert!(q(Included(b), Included(a)).is_empty());
        assert!(!q(Excluded(a), Excluded(b)).is_empty());
        assert!(!q(Unbounded, Excluded(a)).is_empty());
        assert!(RangeQuery {
            limit: Some(0),
            ..q(Unbounded, Unbounded)
        }
        .is_empty());
    }

    #[test]
    fn merge_prefers_staged_and_drops_removed() {
        let v = |s: &str| s.as_bytes().to_vec();
        let base = vec![(v("a"), v("1")), (v("b"), v("2")), (v("d"), v("4"))];
        let (kb, kc, kd) = (v("b"), v("c"), v("d"));
        let (sb, sc, sd) = (Some(v("20")), Some(v("3")), None);
        let overlay = vec![(&kb, &sb), (&kc, &sc), (&kd, &sd)];
        let got = merge_ordered(base.clone(), overlay.clone(), false, None);
        assert_eq!(
            got,
            vec![(v("a"), v("1")), (v("b"), v("20")), (v("c"), v("3"))]
        );

        let mut rbase = base;
        rbase.reverse();
        let mut roverlay = overlay;
        roverlay.reverse();
        let got = merge_ordered(rbase, roverlay, true, Some(2));
        assert_eq!(got, vec![(v("c"), v("3")), (v("b"), v("20"))]);
    }
}
