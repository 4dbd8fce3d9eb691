//! Single-item endpoints: ReadItem, PollItem, InsertItem, DeleteItem.

use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use garage_model::k2v::causality::CausalContext;
use garage_model::k2v::item::{DvvsValue, K2VItem, K2VItemPartition};
use garage_model::k2v::rpc::InsertedItem;

use super::ctx::ReqCtx;
use crate::error::ApiError;
use crate::http::{empty, ResBody};

/// The header carrying causality tokens.
pub const CAUSALITY_TOKEN_HEADER: &str = "x-garage-causality-token";

/// Default and maximum PollItem / PollRange timeouts (seconds).
pub const DEFAULT_POLL_TIMEOUT: u64 = 300;
/// Largest accepted poll timeout (seconds).
pub const MAX_POLL_TIMEOUT: u64 = 600;

/// The wait of a PollItem or PollRange: `timeout` seconds (default
/// [`DEFAULT_POLL_TIMEOUT`]), never more than [`MAX_POLL_TIMEOUT`], so an
/// absurd timeout cannot pin a connection for days.
pub fn poll_timeout(timeout: Option<u64>) -> Duration {
    Duration::from_secs(
        timeout
            .unwrap_or(DEFAULT_POLL_TIMEOUT)
            .min(MAX_POLL_TIMEOUT),
    )
}

/// Which formats the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    /// `application/json`.
    pub json: bool,
    /// `application/octet-stream`.
    pub binary: bool,
}

/// Parses the Accept header: comma-separated, trimmed, parameters ignored,
/// `*/*` = both; no header = JSON.
pub fn parse_accept(headers: &hyper::HeaderMap) -> Accepts {
    let values: Vec<&HeaderValue> = headers.get_all(ACCEPT).iter().collect();
    if values.is_empty() {
        return Accepts {
            json: true,
            binary: false,
        };
    }
    let mut a = Accepts {
        json: false,
        binary: false,
    };
    for v in values {
        for t in v.to_str().unwrap_or("").split(',') {
            let t = t
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match t.as_str() {
                "application/json" => a.json = true,
                "application/octet-stream" => a.binary = true,
                "*/*" => {
                    a.json = true;
                    a.binary = true
                }
                _ => (),
            }
        }
    }
    a
}

/// Values as JSON: standard base64, `null` for a tombstone.
pub fn values_json(item: &K2VItem) -> Vec<Option<String>> {
    item.values()
        .into_iter()
        .map(|v| match v {
            DvvsValue::Value(b) => Some(BASE64_STANDARD.encode(b)),
            DvvsValue::Deleted => None,
        })
        .collect()
}

fn token_header(r: &mut Response<ResBody>, item: &K2VItem) -> Result<(), ApiError> {
    let ct = item.causal_context().serialize();
    let hv = HeaderValue::from_str(&ct).map_err(|e| ApiError::Lower(Box::new(e)))?;
    r.headers_mut().insert(CAUSALITY_TOKEN_HEADER, hv);
    Ok(())
}

/// Formats an item as ReadItem answers it.
pub fn item_response(item: &K2VItem, accept: Accepts) -> Result<Response<ResBody>, ApiError> {
    let values = item.values();
    let mut r = match (accept.json, accept.binary) {
        (false, false) => {
            return Err(ApiError::NotAcceptable(
                "accept application/json or application/octet-stream".into(),
            ))
        }
        (_, true) if values.len() == 1 => {
            let mut r = match values[0] {
                DvvsValue::Value(b) => Response::new(Full::new(Bytes::from(b.clone()))),
                DvvsValue::Deleted => empty(StatusCode::NO_CONTENT),
            };
            // Garage's clients read the raw answer by its type, the empty
            // 204 of a tombstone included.
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        (false, true) => empty(StatusCode::CONFLICT),
        (true, _) => crate::http::json(StatusCode::OK, &values_json(item))?,
    };
    token_header(&mut r, item)?;
    Ok(r)
}

fn partition(ctx: &ReqCtx, partition_key: String) -> K2VItemPartition {
    K2VItemPartition {
        bucket_id: ctx.bucket_id,
        partition_key,
    }
}

/// How far in the future a token's times may be: times are write
/// timestamps in milliseconds, so a token far ahead of the clock is forged
/// and would push the node's clock forward for good.
const MAX_TOKEN_AHEAD_MS: u64 = 24 * 3600 * 1000;

/// Parses a causality token: well-formed, and no time absurdly ahead of
/// now. The parsed context is what travels to the store.
pub fn parse_token(s: &str, now_ms: u64) -> Result<CausalContext, ApiError> {
    let ctx = CausalContext::parse(s).map_err(|_| ApiError::InvalidCausalityToken)?;
    let limit = now_ms.saturating_add(MAX_TOKEN_AHEAD_MS);
    if ctx.vector_clock.values().any(|t| *t > limit) {
        return Err(ApiError::InvalidCausalityToken);
    }
    Ok(ctx)
}

fn token_from_header(ctx: &ReqCtx) -> Result<Option<CausalContext>, ApiError> {
    match ctx.headers.get(CAUSALITY_TOKEN_HEADER) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| ApiError::InvalidCausalityToken)?;
            Ok(Some(parse_token(s, ctx.garage.clock.now_ms())?))
        }
    }
}

/// ReadItem.
pub async fn handle_read_item(
    ctx: ReqCtx,
    partition_key: String,
    sort_key: String,
) -> Result<Response<ResBody>, ApiError> {
    let accept = parse_accept(&ctx.headers);
    let p = partition(&ctx, partition_key);
    let item = ctx.garage.k2v.rpc.read_item(&p, &sort_key).await?;
    match item {
        Some(i) if !i.values().is_empty() => item_response(&i, accept),
        _ => Err(ApiError::NoSuchKey),
    }
}

/// PollItem.
pub async fn handle_poll_item(
    ctx: ReqCtx,
    partition_key: String,
    sort_key: String,
    causality_token: String,
    timeout: Option<u64>,
) -> Result<Response<ResBody>, ApiError> {
    let accept = parse_accept(&ctx.headers);
    if !accept.json && !accept.binary {
        return Err(ApiError::NotAcceptable(
            "accept application/json or application/octet-stream".into(),
        ));
    }
    let causal_context = parse_token(&causality_token, ctx.garage.clock.now_ms())?;
    let p = partition(&ctx, partition_key);
    let item = ctx
        .garage
        .k2v
        .rpc
        .poll_item(p, sort_key, causal_context, poll_timeout(timeout))
        .await?;
    match item {
        Some(i) => item_response(&i, accept),
        None => Ok(empty(StatusCode::NOT_MODIFIED)),
    }
}

/// InsertItem.
pub async fn handle_insert_item(
    ctx: ReqCtx,
    partition_key: String,
    sort_key: String,
) -> Result<Response<ResBody>, ApiError> {
    let causal_context = token_from_header(&ctx)?;
    let value = DvvsValue::Value(ctx.body.to_vec());
    let it = InsertedItem {
        partition: partition(&ctx, partition_key),
        sort_key,
        causal_context,
        value,
    };
    ctx.garage.k2v.rpc.insert_many(vec![it]).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// DeleteItem (the causality token is mandatory).
pub async fn handle_delete_item(
    ctx: ReqCtx,
    partition_key: String,
    sort_key: String,
) -> Result<Response<ResBody>, ApiError> {
    let causal_context = token_from_header(&ctx)?.ok_or_else(|| {
        ApiError::BadRequest("DeleteItem needs the X-Garage-Causality-Token header".into())
    })?;
    let it = InsertedItem {
        partition: partition(&ctx, partition_key),
        sort_key,
        causal_context: Some(causal_context),
        value: DvvsValue::Deleted,
    };
    ctx.garage.k2v.rpc.insert_many(vec![it]).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(v: Option<&str>) -> Accepts {
        let mut h = hyper::HeaderMap::new();
        if let Some(v) = v {
            h.insert(ACCEPT, HeaderValue::from_str(v).expect("hv"));
        }
        parse_accept(&h)
    }

    #[test]
    fn forged_future_tokens_are_refused() {
        let now = 1_800_000_000_000u64;
        let tok = |t: u64| {
            CausalContext {
                vector_clock: [(7u64, t)].into_iter().collect(),
            }
            .serialize()
        };
        assert!(parse_token(&tok(now - 5), now).is_ok());
        assert!(parse_token(&tok(now + 60_000), now).is_ok());
        assert!(matches!(
            parse_token(&tok(u64::MAX), now),
            Err(ApiError::InvalidCausalityToken)
        ));
        assert!(parse_token("not a token!", now).is_err());
    }

    #[test]
    fn poll_timeouts_are_capped() {
        assert_eq!(
            poll_timeout(None),
            Duration::from_secs(DEFAULT_POLL_TIMEOUT)
        );
        assert_eq!(poll_timeout(Some(5)), Duration::from_secs(5));
        assert_eq!(poll_timeout(Some(99_999_999)), Duration::from_secs(600));
        assert_eq!(poll_timeout(Some(u64::MAX)), Duration::from_secs(600));
    }

    #[test]
    fn accept_header() {
        let j = |json, binary| Accepts { json, binary };
        assert_eq!(acc(None), j(true, false));
        assert_eq!(acc(Some("application/json")), j(true, false));
        assert_eq!(acc(Some("application/octet-stream")), j(false, true));
        assert_eq!(
            acc(Some("application/octet-stream, application/json")),
            j(true, true)
        );
        assert_eq!(acc(Some("*/*")), j(true, true));
        assert_eq!(acc(Some("text/plain")), j(false, false));
        assert_eq!(
            acc(Some("application/json;q=0.9 , text/html")),
            j(true, false)
        );
    }
}
