//! Range semantics shared by ReadIndex, ReadBatch, DeleteBatch and
//! PollRange. It imports no handler, so every handler can use it.

use garage_model::k2v::range::KeyRange;

use crate::error::ApiError;

/// The checked range of a request's `prefix`, `start`, `end` and `reverse`
/// (a start outside the prefix is a 400).
pub fn key_range(
    prefix: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    reverse: bool,
) -> Result<KeyRange, ApiError> {
    KeyRange::new(
        prefix.map(str::to_string),
        start.map(str::to_string),
        end.map(str::to_string),
        reverse,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Bound;

    fn inc(s: &str) -> Bound<Vec<u8>> {
        Bound::Included(s.as_bytes().to_vec())
    }
    fn exc(s: &str) -> Bound<Vec<u8>> {
        Bound::Excluded(s.as_bytes().to_vec())
    }

    #[test]
    fn bounds() {
        let r = key_range(Some("a"), None, None, false)
            .expect("r")
            .sort_range();
        assert_eq!((r.lo, r.hi), (inc("a"), exc("b")));
        let r = key_range(Some("a"), Some("ab"), Some("z"), false)
            .expect("r")
            .sort_range();
        assert_eq!((r.lo, r.hi), (inc("ab"), exc("b")));
        let r = key_range(None, Some("m"), Some("c"), true)
            .expect("r")
            .sort_range();
        assert_eq!((r.lo, r.hi), (exc("c"), inc("m")));
        let r = key_range(Some("a"), None, None, true)
            .expect("r")
            .sort_range();
        assert_eq!((r.lo, r.hi), (inc("a"), exc("b")));
        assert!(key_range(Some("a"), Some("b"), None, false).is_err());
    }
}
