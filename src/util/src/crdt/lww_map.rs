//! A map of last-writer-wins registers.

use serde::{Deserialize, Serialize};

use super::Crdt;
use crate::time::system_now_ms;

/// A map whose entries are merged one by one as [`super::Lww`] registers.
/// Entries are kept sorted by key; entries are never removed (store a
/// tombstone value such as `None` or `Deleted` instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwMap<K, V> {
    vals: Vec<(K, u64, V)>,
}

impl<K: Ord + Clone, V: Crdt + Clone> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone, V: Crdt + Clone> LwwMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self { vals: vec![] }
    }
    /// A one-entry map that, merged into `self`, sets `k` to `v` with a
    /// timestamp above the current entry's.
    pub fn update_mutator(&self, k: K, v: V) -> Self {
        let ts = match self.vals.binary_search_by(|(k2, _, _)| k2.cmp(&k)) {
            Ok(i) => std::cmp::max(self.vals[i].1 + 1, system_now_ms()),
            Err(_) => system_now_ms(),
        };
        Self {
            vals: vec![(k, ts, v)],
        }
    }
    /// Sets `k` to `v` (same as merging `update_mutator(k, v)`).
    pub fn update_in_place(&mut self, k: K, v: V) {
        let m = self.update_mutator(k, v);
        self.merge(&m);
    }
    /// The value at `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.vals
            .binary_search_by(|(k2, _, _)| k2.cmp(k))
            .ok()
            .map(|i| &self.vals[i].2)
    }
    /// The timestamp of the entry at `k`.
    pub fn get_timestamp(&self, k: &K) -> u64 {
        self.vals
            .binary_search_by(|(k2, _, _)| k2.cmp(k))
            .map(|i| self.vals[i].1)
            .unwrap_or(0)
    }
    /// All entries, sorted by key: (key, timestamp, value).
    pub fn items(&self) -> &[(K, u64, V)] {
        &self.vals
    }
    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.vals.len()
    }
}

impl<K: Ord + Clone, V: Crdt + Clone> Crdt for LwwMap<K, V> {
    fn merge(&mut self, other: &Self) {
        for (k, ts2, v2) in other.vals.iter() {
            match self.vals.binary_search_by(|(k1, _, _)| k1.cmp(k)) {
                Ok(i) => {
                    let (_, ts1, v1) = &mut self.vals[i];
                    if ts2 > ts1 {
                        *ts1 = *ts2;
                        *v1 = v2.clone();
                    } else if ts2 == ts1 {
                        v1.merge(v2);
                    }
                }
                Err(i) => self.vals.insert(i, (k.clone(), *ts2, v2.clone())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::laws;
    use proptest::prelude::*;

    fn map_of(entries: Vec<(u8, u64, u64)>) -> LwwMap<u8, u64> {
        let mut m = LwwMap::new();
        for (k, ts, v) in entries {
            m.merge(&LwwMap {
                vals: vec![(k, ts, v)],
            });
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn lww_map_laws(
            maps in prop::collection::vec(prop::collection::vec((0u8..4, 0u64..4, 0u64..4), 0..6), 1..6),
        ) {
            let maps: Vec<LwwMap<u8, u64>> = maps.into_iter().map(map_of).collect();
            let all = laws::check_all(&maps);
            // Every key any replica wrote is there, with its newest entry.
            for m in &maps {
                for (k, ts, v) in m.items() {
                    prop_assert!((all.get_timestamp(k), all.get(k)) >= (*ts, Some(v)));
                }
            }
        }
    }

    #[test]
    fn mutator_supersedes() {
        let mut m: LwwMap<String, u64> = LwwMap::new();
        m.update_in_place("a".into(), 1);
        let t1 = m.get_timestamp(&"a".to_string());
        m.update_in_place("a".into(), 0);
        assert_eq!(m.get(&"a".to_string()), Some(&0));
        assert!(m.get_timestamp(&"a".to_string()) > t1);
    }
}
