//! PollRange: waits until an item of a range changes after a seen marker.
//! Its answer items have the ReadBatch format.

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use garage_model::k2v::item::K2VItemPartition;

use super::batch::ReadBatchItem;
use super::ctx::ReqCtx;
use super::item::poll_timeout;
use super::range::key_range;
use crate::error::ApiError;
use crate::http::{empty, json, ResBody};

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
    let range = key_range(
        q.prefix.as_deref(),
        q.start.as_deref(),
        q.end.as_deref(),
        false,
    )?;
    let timeout = poll_timeout(q.timeout);
    let partition = K2VItemPartition {
        bucket_id: ctx.bucket_id,
        partition_key,
    };
    let res = ctx
        .garage
        .k2v
        .rpc
        .poll_range(partition, range, q.seen_marker, timeout)
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
