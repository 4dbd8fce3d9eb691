//! Range semantics shared by ReadIndex, ReadBatch, DeleteBatch and
//! PollRange, and the PollRange endpoint.

use std::ops::Bound;
use std::time::Duration;

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use garage_model::k2v::item::K2VItemPartition;
use garage_model::k2v::rpc::PollRangeQuery;
use garage_table::{prefix_end, SortRange};

use super::batch::ReadBatchItem;
use super::item::{DEFAULT_POLL_TIMEOUT, MAX_POLL_TIMEOUT};
use super::ReqCtx;
use crate::error::ApiError;
use crate::http::{empty, json, ResBody};

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

/// The body of PollRange.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PollRangeRequest {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    seen_marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PollRangeResponse {
    seen_marker: String,
    items: Vec<ReadBatchItem>,
}

/// PollRange.
pub async fn handle_poll_range(
    ctx: ReqCtx,
    partition_key: String,
) -> Result<Response<ResBody>, ApiError> {
    let q: PollRangeRequest = serde_json::from_slice(&ctx.body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    range_bounds(
        q.prefix.as_deref(),
        q.start.as_deref(),
        q.end.as_deref(),
        false,
    )?;
    let timeout = q
        .timeout
        .unwrap_or(DEFAULT_POLL_TIMEOUT)
        .min(MAX_POLL_TIMEOUT);
    let partition = K2VItemPartition {
        bucket_id: ctx.bucket_id,
        partition_key,
    };
    let query = PollRangeQuery {
        prefix: q.prefix,
        start: q.start,
        end: q.end,
    };
    let res = ctx
        .garage
        .k2v
        .rpc
        .poll_range(
            partition,
            query,
            q.seen_marker,
            Duration::from_secs(timeout),
        )
        .await?;
    match res {
        None => Ok(empty(StatusCode::NOT_MODIFIED)),
        Some((items, marker)) => json(
            StatusCode::OK,
            &PollRangeResponse {
                seen_marker: marker,
                items: items.values().map(ReadBatchItem::of).collect(),
            },
        ),
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
