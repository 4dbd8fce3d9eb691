//! Range semantics shared by ReadIndex, ReadBatch, DeleteBatch and
//! PollRange. It imports no handler, so every handler can use it.

use std::ops::Bound;

use garage_table::{prefix_end, SortRange};

use crate::error::ApiError;

/// The table bounds of a range query: `start` inclusive, `end` exclusive,
/// keys restricted to `prefix`; when `reverse`, the walk goes down from
/// `start` (or from the last key of the prefix).
pub fn range_bounds(
    prefix: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    reverse: bool,
) -> Result<SortRange, ApiError> {
    if let (Some(p), Some(s)) = (prefix, start) {
        if !s.starts_with(p) {
            return Err(ApiError::BadRequest(format!(
                "start `{s}` does not start with prefix `{p}`"
            )));
        }
    }
    let b = |s: &str| s.as_bytes().to_vec();
    let prefix_hi = prefix.and_then(|p| prefix_end(p.as_bytes()));
    if !reverse {
        let lo = match (start, prefix) {
            (Some(s), _) => Bound::Included(b(s)),
            (None, Some(p)) => Bound::Included(b(p)),
            (None, None) => Bound::Unbounded,
        };
        let hi = match (end, prefix_hi) {
            (Some(e), Some(ph)) if ph.as_slice() < e.as_bytes() => Bound::Excluded(ph),
            (Some(e), _) => Bound::Excluded(b(e)),
            (None, Some(ph)) => Bound::Excluded(ph),
            (None, None) => Bound::Unbounded,
        };
        Ok(SortRange { lo, hi })
    } else {
        let hi = match (start, prefix_hi) {
            (Some(s), _) => Bound::Included(b(s)),
            (None, Some(ph)) => Bound::Excluded(ph),
            (None, None) => match prefix {
                // a prefix of only 0xff bytes has no end: walk from the top
                Some(_) | None => Bound::Unbounded,
            },
        };
        let lo = match (end, prefix) {
            (Some(e), Some(p)) if e.as_bytes() < p.as_bytes() => Bound::Included(b(p)),
            (Some(e), _) => Bound::Excluded(b(e)),
            (None, Some(p)) => Bound::Included(b(p)),
            (None, None) => Bound::Unbounded,
        };
        Ok(SortRange { lo, hi })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(s: &str) -> Bound<Vec<u8>> {
        Bound::Included(s.as_bytes().to_vec())
    }
    fn exc(s: &str) -> Bound<Vec<u8>> {
        Bound::Excluded(s.as_bytes().to_vec())
    }

    #[test]
    fn bounds() {
        let r = range_bounds(Some("a"), None, None, false).expect("r");
        assert_eq!((r.lo, r.hi), (inc("a"), exc("b")));
        let r = range_bounds(Some("a"), Some("ab"), Some("z"), false).expect("r");
        assert_eq!((r.lo, r.hi), (inc("ab"), exc("b")));
        let r = range_bounds(None, Some("m"), Some("c"), true).expect("r");
        assert_eq!((r.lo, r.hi), (exc("c"), inc("m")));
        let r = range_bounds(Some("a"), None, None, true).expect("r");
        assert_eq!((r.lo, r.hi), (inc("a"), exc("b")));
        assert!(range_bounds(Some("a"), Some("b"), None, false).is_err());
    }
}
