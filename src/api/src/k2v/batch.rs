//! Batch endpoints: InsertBatch, ReadBatch, DeleteBatch.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use garage_model::k2v::item::{DvvsValue, K2VItem, K2VItemPartition};
use garage_model::k2v::item_table::ItemFilter;
use garage_model::k2v::rpc::InsertedItem;
use garage_table::SortRange;
use garage_util::data::Uuid;

use super::ctx::ReqCtx;
use super::item::{parse_token, values_json};
use super::range::key_range;
use crate::error::ApiError;
use crate::http::{empty, json, ResBody};

/// Most searches in one ReadBatch or DeleteBatch: each costs at least one
/// quorum read, so a body of tens of thousands of them would hold a
/// connection (and the node's storage) for minutes.
pub const MAX_BATCH_SEARCHES: usize = 1000;

/// Most items in one ReadBatch answer, all searches together: a search that
/// reaches the budget answers `more: true` and `nextStart`, as if its limit
/// had been reached, and the client continues from there.
pub const MAX_BATCH_ITEMS: u64 = 10_000;

fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn check_searches(n: usize) -> Result<(), ApiError> {
    if n > MAX_BATCH_SEARCHES {
        return Err(ApiError::BadRequest(format!(
            "too many searches in one batch: {n}, at most {MAX_BATCH_SEARCHES}"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InsertBatchItem {
    pk: String,
    sk: String,
    #[serde(default)]
    ct: Option<String>,
    #[serde(default)]
    v: Option<String>,
}

/// The inserts of an InsertBatch body, every item checked (JSON shape,
/// token, base64 value, non-empty sort key) before anything is written.
fn parse_insert_batch(
    body: &[u8],
    bucket_id: Uuid,
    now_ms: u64,
) -> Result<Vec<InsertedItem>, ApiError> {
    let items: Vec<InsertBatchItem> = parse_body(body)?;
    let mut ops = Vec::with_capacity(items.len());
    for it in items {
        let causal_context = match &it.ct {
            Some(ct) => Some(parse_token(ct, now_ms)?),
            None => None,
        };
        let value = match it.v {
            Some(v) => DvvsValue::Value(BASE64_STANDARD.decode(v.as_bytes()).map_err(|_| {
                ApiError::BadRequest(format!("invalid base64 value for {}", it.sk))
            })?),
            None => DvvsValue::Deleted,
        };
        if it.sk.is_empty() {
            return Err(ApiError::BadRequest("empty sort key in batch".into()));
        }
        ops.push(InsertedItem {
            partition: K2VItemPartition {
                bucket_id,
                partition_key: it.pk,
            },
            sort_key: it.sk,
            causal_context,
            value,
        });
    }
    Ok(ops)
}

/// InsertBatch: everything is checked before anything is written.
pub async fn handle_insert_batch(ctx: ReqCtx) -> Result<Response<ResBody>, ApiError> {
    let ops = parse_insert_batch(&ctx.body, ctx.bucket_id, ctx.garage.clock.now_ms())?;
    if !ops.is_empty() {
        ctx.garage.k2v.rpc.insert_many(ops).await?;
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadBatchQuery {
    partition_key: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    reverse: bool,
    #[serde(default)]
    single_item: bool,
    #[serde(default)]
    conflicts_only: bool,
    #[serde(default)]
    tombstones: bool,
}

/// One item in a ReadBatch or PollRange answer.
#[derive(Debug, Serialize)]
pub struct ReadBatchItem {
    sk: String,
    ct: String,
    v: Vec<Option<String>>,
}

impl ReadBatchItem {
    /// The answer form of an item.
    pub fn of(i: &K2VItem) -> Self {
        Self {
            sk: i.sort_key.clone(),
            ct: i.causal_context().serialize(),
            v: values_json(i),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadBatchResponse {
    #[serde(flatten)]
    query: ReadBatchQuery,
    items: Vec<ReadBatchItem>,
    more: bool,
    next_start: Option<String>,
}

/// Reads a range with limit and returns (items, more, next_start).
async fn read_range_limited(
    ctx: &ReqCtx,
    partition: &K2VItemPartition,
    range: SortRange,
    filter: ItemFilter,
    limit: Option<u64>,
    reverse: bool,
) -> Result<(Vec<K2VItem>, bool, Option<String>), ApiError> {
    let fetch = match limit {
        Some(l) => usize::try_from(l).unwrap_or(usize::MAX).saturating_add(1),
        None => usize::MAX,
    };
    let mut items = ctx
        .garage
        .k2v
        .rpc
        .read_range(partition, range, filter, fetch, reverse)
        .await?;
    match limit.and_then(|l| usize::try_from(l).ok()) {
        Some(l) if items.len() > l => {
            let next = items[l].sort_key.clone();
            items.truncate(l);
            Ok((items, true, Some(next)))
        }
        _ => Ok((items, false, None)),
    }
}

/// The searches of a ReadBatch body, each checked (contradictory
/// parameters, a start outside the prefix) before anything is read.
fn parse_read_batch(body: &[u8]) -> Result<Vec<ReadBatchQuery>, ApiError> {
    let queries: Vec<ReadBatchQuery> = parse_body(body)?;
    check_searches(queries.len())?;
    for q in &queries {
        if q.single_item {
            if q.prefix.is_some() || q.end.is_some() || q.limit.is_some() || q.reverse {
                return Err(ApiError::BadRequest(
                    "singleItem cannot be combined with prefix, end, limit or reverse".into(),
                ));
            }
            if q.start.is_none() {
                return Err(ApiError::BadRequest("singleItem needs start".into()));
            }
        } else {
            key_range(
                q.prefix.as_deref(),
                q.start.as_deref(),
                q.end.as_deref(),
                q.reverse,
            )?;
        }
    }
    Ok(queries)
}

/// Runs one checked search, returning at most `budget` items.
async fn read_one(
    ctx: &ReqCtx,
    q: &ReadBatchQuery,
    budget: u64,
) -> Result<ReadBatchResponse, ApiError> {
    let partition = K2VItemPartition {
        bucket_id: ctx.bucket_id,
        partition_key: q.partition_key.clone(),
    };
    let filter = ItemFilter {
        exclude_only_tombstones: !q.tombstones,
        conflicts_only: q.conflicts_only,
    };
    if q.single_item {
        let sk = q
            .start
            .clone()
            .ok_or_else(|| ApiError::BadRequest("singleItem needs start".into()))?;
        let item = ctx.garage.k2v.rpc.read_item(&partition, &sk).await?;
        let items = item
            .filter(|i| !i.values().is_empty())
            .filter(|i| {
                (q.tombstones || !i.is_tombstone()) && (!q.conflicts_only || i.values().len() > 1)
            })
            .map(|i| vec![ReadBatchItem::of(&i)])
            .unwrap_or_default();
        return Ok(ReadBatchResponse {
            query: q.clone(),
            items,
            more: false,
            next_start: None,
        });
    }
    let range = key_range(
        q.prefix.as_deref(),
        q.start.as_deref(),
        q.end.as_deref(),
        q.reverse,
    )?
    .sort_range();
    let limit = q.limit.unwrap_or(u64::MAX).min(budget);
    let (items, more, next_start) =
        read_range_limited(ctx, &partition, range, filter, Some(limit), q.reverse).await?;
    Ok(ReadBatchResponse {
        query: q.clone(),
        items: items.iter().map(ReadBatchItem::of).collect(),
        more,
        next_start,
    })
}

/// ReadBatch.
pub async fn handle_read_batch(ctx: ReqCtx) -> Result<Response<ResBody>, ApiError> {
    let queries = parse_read_batch(&ctx.body)?;
    let mut out = Vec::with_capacity(queries.len());
    let mut budget = MAX_BATCH_ITEMS;
    for q in queries.iter() {
        let r = read_one(&ctx, q, budget).await?;
        budget = budget.saturating_sub(r.items.len() as u64);
        out.push(r);
    }
    json(StatusCode::OK, &out)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteBatchQuery {
    partition_key: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    single_item: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeleteBatchResponse {
    #[serde(flatten)]
    query: DeleteBatchQuery,
    deleted_items: u64,
}

fn tombstone_for(i: &K2VItem) -> InsertedItem {
    InsertedItem {
        partition: i.partition.clone(),
        sort_key: i.sort_key.clone(),
        causal_context: Some(i.causal_context()),
        value: DvvsValue::Deleted,
    }
}

async fn delete_one(ctx: &ReqCtx, q: &DeleteBatchQuery) -> Result<u64, ApiError> {
    let partition = K2VItemPartition {
        bucket_id: ctx.bucket_id,
        partition_key: q.partition_key.clone(),
    };
    if q.single_item {
        if q.prefix.is_some() || q.end.is_some() {
            return Err(ApiError::BadRequest(
                "singleItem cannot be combined with prefix or end".into(),
            ));
        }
        let sk = q
            .start
            .clone()
            .ok_or_else(|| ApiError::BadRequest("singleItem needs start".into()))?;
        return match ctx.garage.k2v.rpc.read_item(&partition, &sk).await? {
            Some(i) if !i.is_tombstone() => {
                ctx.garage
                    .k2v
                    .rpc
                    .insert_many(vec![tombstone_for(&i)])
                    .await?;
                Ok(1)
            }
            _ => Ok(0),
        };
    }
    let mut range = key_range(
        q.prefix.as_deref(),
        q.start.as_deref(),
        q.end.as_deref(),
        false,
    )?
    .sort_range();
    let filter = ItemFilter {
        exclude_only_tombstones: true,
        conflicts_only: false,
    };
    let mut deleted = 0u64;
    const PAGE: usize = 1000;
    loop {
        let items = ctx
            .garage
            .k2v
            .rpc
            .read_range(&partition, range.clone(), filter.clone(), PAGE, false)
            .await?;
        let n = items.len();
        let Some(last) = items.last().map(|i| i.sort_key.clone()) else {
            break;
        };
        let ops: Vec<InsertedItem> = items.iter().map(tombstone_for).collect();
        deleted += ops.len() as u64;
        ctx.garage.k2v.rpc.insert_many(ops).await?;
        if n < PAGE {
            break;
        }
        range.lo = std::ops::Bound::Excluded(last.into_bytes());
    }
    Ok(deleted)
}

/// The searches of a DeleteBatch body, each checked before anything is
/// deleted.
fn parse_delete_batch(body: &[u8]) -> Result<Vec<DeleteBatchQuery>, ApiError> {
    let queries: Vec<DeleteBatchQuery> = parse_body(body)?;
    check_searches(queries.len())?;
    for q in queries.iter() {
        if q.single_item && (q.prefix.is_some() || q.end.is_some() || q.start.is_none()) {
            return Err(ApiError::BadRequest(
                "singleItem needs start and no prefix or end".into(),
            ));
        }
        key_range(
            q.prefix.as_deref(),
            q.start.as_deref(),
            q.end.as_deref(),
            false,
        )?;
    }
    Ok(queries)
}

/// DeleteBatch: tombstones with each item's context (concurrent writes survive).
pub async fn handle_delete_batch(ctx: ReqCtx) -> Result<Response<ResBody>, ApiError> {
    let queries = parse_delete_batch(&ctx.body)?;
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let deleted_items = delete_one(&ctx, &q).await?;
        out.push(DeleteBatchResponse {
            query: q,
            deleted_items,
        });
    }
    json(StatusCode::OK, &out)
}

/// Which batch body [`normalize_batch_body`] reads.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// InsertBatch.
    Insert,
    /// ReadBatch.
    Read,
    /// DeleteBatch.
    Delete,
}

/// Parses and checks a batch body exactly as its handler does, and returns
/// what was understood as canonical JSON (a body of the same kind). For the
/// fuzzers and their corpus replay: parsing the answer again must give the
/// same answer.
#[doc(hidden)]
pub fn normalize_batch_body(
    kind: BatchKind,
    body: &[u8],
    now_ms: u64,
) -> Result<serde_json::Value, ApiError> {
    let v = match kind {
        BatchKind::Insert => {
            let items = parse_insert_batch(body, Uuid::from([0u8; 32]), now_ms)?;
            let items: Vec<serde_json::Value> = items
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "pk": i.partition.partition_key,
                        "sk": i.sort_key,
                        "ct": i.causal_context.as_ref().map(|c| c.serialize()),
                        "v": match &i.value {
                            DvvsValue::Value(b) => Some(BASE64_STANDARD.encode(b)),
                            DvvsValue::Deleted => None,
                        },
                    })
                })
                .collect();
            serde_json::Value::from(items)
        }
        BatchKind::Read => serde_json::to_value(parse_read_batch(body)?)
            .map_err(|e| ApiError::Lower(Box::new(e)))?,
        BatchKind::Delete => serde_json::to_value(parse_delete_batch(body)?)
            .map_err(|e| ApiError::Lower(Box::new(e)))?,
    };
    Ok(v)
}
