//! GetObject and HeadObject: conditional requests (If-Match,
//! If-None-Match, If-Modified-Since, If-Unmodified-Since), one byte range,
//! the stored headers, and a body streamed block after block (the next
//! block fetched while the current one is sent).

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Response, StatusCode};

use garage_model::garage::Garage;
use garage_model::s3::object_table::{
    ObjectMeta, ObjectVersion, ObjectVersionData, ObjectVersionState,
};
use garage_model::s3::version_table::VersionBlock;
use std::sync::Arc;

use super::body::{full, S3Body};
use super::error::S3Error;
use super::put::etag_header;
use super::ReqCtx;

/// Blocks fetched ahead of the one being sent.
const PREFETCH: usize = 2;

/// Seconds since the epoch of an HTTP date header.
fn http_date(h: &HeaderMap, name: &str) -> Option<u64> {
    let v = h.get(name)?.to_str().ok()?;
    let t = httpdate::parse_http_date(v).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Whether an If-Match / If-None-Match list names this ETag (or `*`).
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == etag)
}

/// The RFC 7232 evaluation order: If-Match, If-Unmodified-Since,
/// If-None-Match, If-Modified-Since.
pub fn check_conditions(h: &HeaderMap, etag: &str, modified_ms: u64) -> Result<(), S3Error> {
    let modified = modified_ms / 1000;
    let if_match = h.get("if-match").and_then(|v| v.to_str().ok());
    if let Some(l) = if_match {
        if !etag_matches(l, etag) {
            return Err(S3Error::PreconditionFailed);
        }
    } else if let Some(t) = http_date(h, "if-unmodified-since") {
        if modified > t {
            return Err(S3Error::PreconditionFailed);
        }
    }
    if let Some(l) = h.get("if-none-match").and_then(|v| v.to_str().ok()) {
        if etag_matches(l, etag) {
            return Err(S3Error::NotModified);
        }
    } else if let Some(t) = http_date(h, "if-modified-since") {
        if modified <= t {
            return Err(S3Error::NotModified);
        }
    }
    Ok(())
}

/// Parses `Range: bytes=a-b | a- | -n` for an object of `size` bytes into
/// [start, end). None: no (usable) Range header. Several ranges are not
/// supported: the whole object is returned, as S3 does.
pub fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(v) = h.get("range").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(S3Error::InvalidRange { size })?;
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().map_err(|_| S3Error::InvalidRange { size });
    let (start, end) = if a.is_empty() {
        let n = parse(b)?;
        if n == 0 {
            return Err(S3Error::InvalidRange { size });
        }
        (size.saturating_sub(n), size)
    } else {
        let start = parse(a)?;
        let end = if b.is_empty() {
            size
        } else {
            let e = parse(b)?;
            if e < start {
                return Err(S3Error::InvalidRange { size });
            }
            (e + 1).min(size)
        };
        (start, end)
    };
    if start >= size {
        return Err(S3Error::InvalidRange { size });
    }
    Ok(Some((start, end)))
}

/// Headers of a GET/HEAD answer.
fn object_headers(r: &mut Response<S3Body>, v: &ObjectVersion, meta: &ObjectMeta, len: u64) {
    let h = r.headers_mut();
    h.insert("etag", etag_header(&meta.etag));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    h.insert("content-length", HeaderValue::from(len));
    let lm = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(v.timestamp),
    );
    if let Ok(lm) = HeaderValue::from_str(&lm) {
        h.insert("last-modified", lm);
    }
    let mut has_ct = false;
    for (n, val) in meta.headers.iter() {
        let (Ok(n), Ok(val)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(val),
        ) else {
            continue;
        };
        has_ct |= n == hyper::header::CONTENT_TYPE;
        h.insert(n, val);
    }
    if !has_ct {
        h.insert(
            "content-type",
            HeaderValue::from_static("binary/octet-stream"),
        );
    }
}

/// The blocks covering [start, end) and the slice of each to send.
fn plan(blocks: &[VersionBlock], start: u64, end: u64) -> Vec<(VersionBlock, usize, usize)> {
    let mut out = vec![];
    let mut pos = 0u64;
    for b in blocks {
        let (bs, be) = (pos, pos + b.size);
        pos = be;
        if be <= start || bs >= end {
            continue;
        }
        let from = start.saturating_sub(bs) as usize;
        let to = (end.min(be) - bs) as usize;
        out.push((*b, from, to));
    }
    out
}

/// A body streaming `plan`'s slices; a block that cannot be read ends the
/// body early (the client sees a short read, never wrong bytes).
pub fn block_stream(garage: Arc<Garage>, plan: Vec<(VersionBlock, usize, usize)>) -> S3Body {
    let s = futures::stream::iter(plan)
        .map(move |(b, from, to)| {
            let g = garage.clone();
            async move {
                let data = g
                    .block_manager
                    .get(&b.hash)
                    .await
                    .map_err(std::io::Error::other)?;
                if data.len() < to || from > to {
                    return Err(std::io::Error::other("a block is shorter than recorded"));
                }
                Ok::<_, std::io::Error>(Frame::data(data.slice(from..to)))
            }
        })
        .buffered(PREFETCH);
    StreamBody::new(s).boxed_unsync()
}

/// The readable version of an object, or NoSuchKey.
pub async fn current_version(
    garage: &Garage,
    bucket: &garage_util::data::Uuid,
    key: &str,
) -> Result<ObjectVersion, S3Error> {
    let o = garage
        .s3
        .object_table
        .get(bucket, &key.to_string())
        .await?
        .ok_or(S3Error::NoSuchKey)?;
    o.last_data().cloned().ok_or(S3Error::NoSuchKey)
}

/// The blocks of a complete block-stored version.
pub async fn version_blocks(
    garage: &Garage,
    v: &ObjectVersion,
    meta: &ObjectMeta,
) -> Result<Vec<VersionBlock>, S3Error> {
    let ver = garage
        .s3
        .version_table
        .get(&v.uuid, &v.uuid)
        .await?
        .filter(|ver| !ver.deleted)
        .ok_or(S3Error::NoSuchKey)?;
    let blocks = ver.read_blocks(&meta.parts);
    let total: u64 = blocks.iter().map(|b| b.size).sum();
    if total != meta.size {
        return Err(S3Error::Unavailable(
            "the version's block list is not complete on the replicas read".into(),
        ));
    }
    Ok(blocks)
}

/// `GET|HEAD /bucket/key`.
pub async fn handle_get_object(
    ctx: ReqCtx,
    key: &str,
    head: bool,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let v = current_version(&ctx.garage, &bucket, key).await?;
    let meta = v.meta().cloned().ok_or(S3Error::NoSuchKey)?;
    check_conditions(&ctx.headers, &meta.etag, v.timestamp)?;
    let range = parse_range(&ctx.headers, meta.size)?;
    let (start, end) = range.unwrap_or((0, meta.size));
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body = if head {
        full(Bytes::new())
    } else {
        match &v.state {
            ObjectVersionState::Complete(ObjectVersionData::Inline(_, bytes)) => {
                let b = Bytes::from(bytes.to_vec());
                let (s, e) = (start as usize, (end as usize).min(b.len()));
                full(b.slice(s.min(e)..e))
            }
            ObjectVersionState::Complete(ObjectVersionData::FirstBlock(..)) => {
                let blocks = version_blocks(&ctx.garage, &v, &meta).await?;
                block_stream(ctx.garage.clone(), plan(&blocks, start, end))
            }
            _ => return Err(S3Error::NoSuchKey),
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    object_headers(&mut r, &v, &meta, end - start);
    if range.is_some() {
        if let Ok(cr) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{}",
            end.saturating_sub(1),
            meta.size
        )) {
            r.headers_mut().insert("content-range", cr);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, v.parse().expect("value"));
        m
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range(&h("range", "bytes=0-9"), 100).ok(),
            Some(Some((0, 10)))
        );
        assert_eq!(
            parse_range(&h("range", "bytes=90-"), 100).ok(),
            Some(Some((90, 100)))
        );
        assert_eq!(
            parse_range(&h("range", "bytes=-10"), 100).ok(),
            Some(Some((90, 100)))
        );
        assert_eq!(
            parse_range(&h("range", "bytes=50-500"), 100).ok(),
            Some(Some((50, 100)))
        );
        assert!(matches!(
            parse_range(&h("range", "bytes=100-"), 100),
            Err(S3Error::InvalidRange { size: 100 })
        ));
        assert!(matches!(
            parse_range(&h("range", "bytes=5-2"), 100),
            Err(S3Error::InvalidRange { .. })
        ));
        assert_eq!(parse_range(&HeaderMap::new(), 100).ok(), Some(None));
    }

    #[test]
    fn plans() {
        let b = |n: u8, size| VersionBlock {
            hash: garage_util::data::Hash::from([n; 32]),
            size,
        };
        let blocks = [b(1, 10), b(2, 10), b(3, 5)];
        let p = plan(&blocks, 5, 22);
        let got: Vec<_> = p.iter().map(|(bl, f, t)| (bl.size, *f, *t)).collect();
        assert_eq!(got, vec![(10, 5, 10), (10, 0, 10), (5, 0, 2)]);
        assert_eq!(plan(&blocks, 0, 25).len(), 3);
    }

    #[test]
    fn conditions() {
        let t = 1_700_000_000_000;
        assert!(check_conditions(&HeaderMap::new(), "abc", t).is_ok());
        assert!(matches!(
            check_conditions(&h("if-none-match", "\"abc\""), "abc", t),
            Err(S3Error::NotModified)
        ));
        assert!(check_conditions(&h("if-none-match", "\"x\""), "abc", t).is_ok());
        assert!(matches!(
            check_conditions(&h("if-match", "\"x\""), "abc", t),
            Err(S3Error::PreconditionFailed)
        ));
        let later = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
        );
        assert!(matches!(
            check_conditions(&h("if-modified-since", &later), "abc", t),
            Err(S3Error::NotModified)
        ));
        let earlier = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000),
        );
        assert!(matches!(
            check_conditions(&h("if-unmodified-since", &earlier), "abc", t),
            Err(S3Error::PreconditionFailed)
        ));
        assert!(check_conditions(&h("if-modified-since", &earlier), "abc", t).is_ok());
    }
}
