//! Body types, the JSON error response and body limits, shared by the
//! router, the handlers and the server.

use bytes::Bytes;
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

/// Reads a whole body, refusing (413) one larger than `limit` before
/// buffering it: a declared Content-Length above the limit is refused at
/// once, and a streamed body is cut as soon as it passes the limit.
pub async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
    limit: u64,
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
    match Limited::new(body, limit_usize).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::PayloadTooLarge { limit })
            } else {
                Err(ApiError::BadRequest(format!("cannot read body: {e}")))
            }
        }
    }
}
