//! The one description of a K2V key range (ReadIndex, ReadBatch,
//! DeleteBatch, PollRange): a prefix, an inclusive start, an exclusive end,
//! and a direction. It gives both the storage bounds of a range read and
//! the membership test of a poll.

use std::ops::Bound;

use garage_table::{prefix_end, SortRange};

/// A range of sort keys (or of partition keys, for ReadIndex).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    /// Keys must start with this.
    pub prefix: Option<String>,
    /// First key (inclusive); with `reverse`, the key the walk starts from.
    pub start: Option<String>,
    /// Where the walk stops (exclusive).
    pub end: Option<String>,
    /// Walk downward.
    pub reverse: bool,
}

/// Why a range is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `start` lies outside `prefix`.
    #[error("start `{start}` does not start with prefix `{prefix}`")]
    StartOutsidePrefix {
        /// The start.
        start: String,
        /// The prefix.
        prefix: String,
    },
}

impl KeyRange {
    /// A checked range.
    pub fn new(
        prefix: Option<String>,
        start: Option<String>,
        end: Option<String>,
        reverse: bool,
    ) -> Result<Self, RangeError> {
        if let (Some(p), Some(s)) = (&prefix, &start) {
            if !s.starts_with(p.as_str()) {
                return Err(RangeError::StartOutsidePrefix {
                    start: s.clone(),
                    prefix: p.clone(),
                });
            }
        }
        Ok(Self {
            prefix,
            start,
            end,
            reverse,
        })
    }

    /// Whether `key` is in the range (as a set: the direction only changes
    /// which side `start` and `end` bound).
    pub fn contains(&self, key: &str) -> bool {
        let in_prefix = self.prefix.as_deref().is_none_or(|p| key.starts_with(p));
        let (from_start, before_end) = if self.reverse {
            (
                self.start.as_deref().is_none_or(|s| key <= s),
                self.end.as_deref().is_none_or(|e| key > e),
            )
        } else {
            (
                self.start.as_deref().is_none_or(|s| key >= s),
                self.end.as_deref().is_none_or(|e| key < e),
            )
        };
        in_prefix && from_start && before_end
    }

    /// The storage bounds of the range (`lo` ≤ `hi` in byte order, whatever
    /// the direction).
    pub fn sort_range(&self) -> SortRange {
        let b = |s: &str| s.as_bytes().to_vec();
        let prefix = self.prefix.as_deref();
        let prefix_hi = prefix.and_then(|p| prefix_end(p.as_bytes()));
        let (start, end) = (self.start.as_deref(), self.end.as_deref());
        if !self.reverse {
            let lo = match (start, prefix) {
                (Some(s), _) => Bound::Included(b(s)),
                (None, Some(p)) => Bound::Included(b(p)),
                (None, None) => Bound::Unbounded,
            };
            let hi = match (end, prefix_hi) {
                (Some(e), Some(ph)) if ph.as_slice() < e.as_bytes() => Bound::Excluded(ph),
                (Some(e), _) => Bound::Excluded(b(e)),
                (None, Some(ph)) => Bound::Excluded(ph),
                // No end, or a prefix of only 0xff bytes (no end either).
                (None, None) => Bound::Unbounded,
            };
            SortRange { lo, hi }
        } else {
            let hi = match (start, prefix_hi) {
                (Some(s), _) => Bound::Included(b(s)),
                (None, Some(ph)) => Bound::Excluded(ph),
                (None, None) => Bound::Unbounded,
            };
            let lo = match (end, prefix) {
                (Some(e), Some(p)) if e.as_bytes() < p.as_bytes() => Bound::Included(b(p)),
                (Some(e), _) => Bound::Excluded(b(e)),
                (None, Some(p)) => Bound::Included(b(p)),
                (None, None) => Bound::Unbounded,
            };
            SortRange { lo, hi }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inc(s: &str) -> Bound<Vec<u8>> {
        Bound::Included(s.as_bytes().to_vec())
    }
    fn exc(s: &str) -> Bound<Vec<u8>> {
        Bound::Excluded(s.as_bytes().to_vec())
    }
    fn r(p: Option<&str>, s: Option<&str>, e: Option<&str>, rev: bool) -> KeyRange {
        KeyRange::new(
            p.map(str::to_string),
            s.map(str::to_string),
            e.map(str::to_string),
            rev,
        )
        .expect("valid")
    }

    #[test]
    fn bounds() {
        let x = r(Some("a"), None, None, false).sort_range();
        assert_eq!((x.lo, x.hi), (inc("a"), exc("b")));
        let x = r(Some("a"), Some("ab"), Some("z"), false).sort_range();
        assert_eq!((x.lo, x.hi), (inc("ab"), exc("b")));
        let x = r(None, Some("m"), Some("c"), true).sort_range();
        assert_eq!((x.lo, x.hi), (exc("c"), inc("m")));
        let x = r(Some("a"), None, None, true).sort_range();
        assert_eq!((x.lo, x.hi), (inc("a"), exc("b")));
        assert!(KeyRange::new(Some("b".into()), Some("a".into()), None, false).is_err());
    }

    fn within(b: &SortRange, k: &[u8]) -> bool {
        let lo = match &b.lo {
            Bound::Included(x) => k >= x.as_slice(),
            Bound::Excluded(x) => k > x.as_slice(),
            Bound::Unbounded => true,
        };
        let hi = match &b.hi {
            Bound::Included(x) => k <= x.as_slice(),
            Bound::Excluded(x) => k < x.as_slice(),
            Bound::Unbounded => true,
        };
        lo && hi
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The storage bounds hold exactly the keys `contains` accepts.
        #[test]
        fn bounds_and_membership_agree(
            p in proptest::option::of("[ab]{0,2}"),
            s in proptest::option::of("[ab]{0,3}"),
            e in proptest::option::of("[ab]{0,3}"),
            rev in any::<bool>(),
            keys in proptest::collection::vec("[ab]{0,3}", 0..20),
        ) {
            let Ok(range) = KeyRange::new(p, s, e, rev) else { return Ok(()); };
            let b = range.sort_range();
            for k in keys {
                prop_assert_eq!(within(&b, k.as_bytes()), range.contains(&k), "key {:?} in {:?}", k, range);
            }
        }
    }
}
