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

    /// The bounds themselves are tested with `KeyRange`; here, the mapping
    /// of a refused range to a 400.
    #[test]
    fn a_start_outside_the_prefix_is_a_bad_request() {
        assert!(key_range(Some("a"), Some("ab"), Some("z"), false).is_ok());
        let e = key_range(Some("a"), Some("b"), None, false).expect_err("refused");
        assert_eq!(e.status(), hyper::StatusCode::BAD_REQUEST);
    }
}
