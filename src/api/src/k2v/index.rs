//! ReadIndex: the partition keys of a bucket with their counters.

use hyper::{Response, StatusCode};
use serde::Serialize;

use super::ctx::ReqCtx;
use super::range::key_range;
use crate::error::ApiError;
use crate::http::{json, ResBody};

#[derive(Serialize)]
struct PartitionInfo {
    pk: String,
    entries: i64,
    conflicts: i64,
    values: i64,
    bytes: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadIndexResponse {
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<u64>,
    reverse: bool,
    partition_keys: Vec<PartitionInfo>,
    more: bool,
    next_start: Option<String>,
}

/// Most partition keys in one ReadIndex answer, whatever the `limit`.
pub const MAX_INDEX_KEYS: u64 = 10_000;

/// ReadIndex.
pub async fn handle_read_index(
    ctx: ReqCtx,
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<u64>,
    reverse: bool,
) -> Result<Response<ResBody>, ApiError> {
    let mut range =
        key_range(prefix.as_deref(), start.as_deref(), end.as_deref(), reverse)?.sort_range();
    // Storage nodes of every active layout version: during a transition
    // the old owners still count items the new ones have not received.
    let nodes = ctx.garage.system.layout().all_storage_nodes();
    // A missing or huge limit is capped: the answer says `more` and
    // `nextStart`, and the client continues from there.
    let cap = limit.unwrap_or(MAX_INDEX_KEYS).min(MAX_INDEX_KEYS);
    let want = usize::try_from(cap).unwrap_or(usize::MAX).saturating_add(1);
    let mut found: Vec<PartitionInfo> = vec![];
    const PAGE: usize = 1000;
    while found.len() < want {
        let page = ctx
            .garage
            .k2v
            .counter_table
            .get_range(&ctx.bucket_id, range.clone(), None, PAGE, reverse)
            .await?;
        let n = page.len();
        for e in page.iter() {
            let v = e.filtered_values(&nodes);
            let get = |k: &str| *v.get(k).unwrap_or(&0);
            if get("entries") > 0 {
                found.push(PartitionInfo {
                    pk: e.partition_key.clone(),
                    entries: get("entries"),
                    conflicts: get("conflicts"),
                    values: get("values"),
                    bytes: get("bytes"),
                });
                if found.len() >= want {
                    break;
                }
            }
        }
        match page.last() {
            Some(last) if n == PAGE => {
                let b = std::ops::Bound::Excluded(last.partition_key.clone().into_bytes());
                if reverse {
                    range.hi = b;
                } else {
                    range.lo = b;
                }
            }
            _ => break,
        }
    }
    let (more, next_start) = match usize::try_from(cap) {
        Ok(l) if found.len() > l => {
            let next = found[l].pk.clone();
            found.truncate(l);
            (true, Some(next))
        }
        _ => (false, None),
    };
    json(
        StatusCode::OK,
        &ReadIndexResponse {
            prefix,
            start,
            end,
            limit,
            reverse,
            partition_keys: found,
            more,
            next_start,
        },
    )
}
