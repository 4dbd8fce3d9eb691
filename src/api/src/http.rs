//! Body types, the JSON error response and body limits, shared by the
//! router, the handlers and the server.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::error::ApiError;

/// The response body of every API.
pub type ResBody = Full<Bytes>;

/// An empty response with a status.
pub fn empty(status: StatusCode) -> Response<ResBody> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Result<Response<ResBody>, ApiError> {
    let body = serde_json::to_vec(v).map_err(|e| ApiError::Lower(Box::new(e)))?;
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// The JSON error body `{code, message, region, path}`.
pub fn error_response(e: &ApiError, region: &str, path: &str) -> Response<ResBody> {
    let body = serde_json::json!({
        "code": e.code(),
        "message": e.to_string(),
        "region": region,
        "path": path,
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = e.status();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// How long a body may stall (no byte received) before the request is
/// refused with a 408, unless the server sets another value.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads a whole body, refusing (413) one larger than `limit` before
/// buffering it: a declared Content-Length above the limit is refused at
/// once, and a streamed body is cut as soon as it passes the limit. A body
/// that stalls longer than [`DEFAULT_BODY_READ_TIMEOUT`] is a 408.
pub async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
    limit: u64,
) -> Result<Bytes, ApiError> {
    read_body_with_timeout(headers, body, limit, DEFAULT_BODY_READ_TIMEOUT).await
}

/// [`read_body`] where the body may stall at most `stall` between two
/// chunks.
pub async fn read_body_with_timeout(
    headers: &hyper::HeaderMap,
    body: Incoming,
    limit: u64,
    stall: Duration,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::BadRequest("invalid Content-Length".into()))?;
        if len > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Limited::new(body, limit_usize);
    let mut out = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => {
                return Err(ApiError::RequestTimeout {
                    secs: stall.as_secs(),
                })
            }
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(f)) => f,
        };
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Err(e) => {
                return if e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Err(ApiError::PayloadTooLarge { limit })
                } else {
                    Err(ApiError::BadRequest(format!("cannot read body: {e}")))
                }
            }
        }
    }
}
