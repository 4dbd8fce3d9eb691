//! Listings: ListObjects (v1) and ListObjectsV2, with prefix, delimiter
//! (CommonPrefixes), max-keys (at most 1000), marker / start-after /
//! continuation-token and `encoding-type=url`; ListMultipartUploads and
//! ListParts.
//!
//! The objects of a bucket are one partition of the object table, in key
//! order, so a listing is a walk over a range of it. When a key falls under
//! a common prefix, the walk jumps past every key with that prefix. The
//! continuation token is the marker, base64-encoded: a marker that is a
//! common prefix resumes after all of its keys.

use base64::Engine as _;
use hyper::{Response, StatusCode};

use garage_model::s3::object_table::{Object, ObjectFilter};
use garage_table::{prefix_end, SortRange};

use super::body::S3Body;
use super::error::S3Error;
use super::multipart::upload;
use super::xml::{iso8601, Xml};
use super::{xml_response, ReqCtx};
use crate::signature::uri_encode;

/// Most keys (and common prefixes) in one answer.
const MAX_KEYS: usize = 1000;

/// Entries read from the table per page.
const PAGE: usize = 1000;

/// What one listing walk found.
struct Walk {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    /// The last key or common prefix returned, when more follow.
    next_marker: Option<String>,
}

/// Walks the objects passing `filter` under `prefix`, after `marker`,
/// grouping by `delimiter`, until `max` results.
async fn walk(
    ctx: &ReqCtx,
    filter: ObjectFilter,
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    max: usize,
) -> Result<Walk, S3Error> {
    let bucket = ctx.bucket()?;
    let start_after = |m: &str| -> std::ops::Bound<Vec<u8>> {
        // A common prefix as marker: resume after all of its keys.
        let is_cp = delimiter.is_some_and(|d| {
            m.strip_prefix(prefix)
                .is_some_and(|rest| !d.is_empty() && rest.ends_with(d))
        });
        match (is_cp, prefix_end(m.as_bytes())) {
            (true, Some(end)) => std::ops::Bound::Included(end),
            _ => std::ops::Bound::Excluded(m.as_bytes().to_vec()),
        }
    };
    let mut range = SortRange {
        lo: std::ops::Bound::Included(prefix.as_bytes().to_vec()),
        hi: match prefix_end(prefix.as_bytes()) {
            Some(e) if !prefix.is_empty() => std::ops::Bound::Excluded(e),
            _ => std::ops::Bound::Unbounded,
        },
    };
    if let Some(m) = marker.filter(|m| m.as_bytes() >= prefix.as_bytes()) {
        range.lo = start_after(m);
    }
    let mut out = Walk {
        objects: vec![],
        prefixes: vec![],
        next_marker: None,
    };
    let mut last: Option<String> = None;
    let count = |w: &Walk| w.objects.len() + w.prefixes.len();
    'pages: loop {
        let page = ctx
            .garage
            .s3
            .object_table
            .get_range(&bucket, range.clone(), Some(filter.clone()), PAGE, false)
            .await?;
        let full = page.len() >= PAGE;
        for o in page {
            if !o.key.starts_with(prefix) {
                break 'pages;
            }
            let cp = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                o.key[prefix.len()..]
                    .find(d)
                    .map(|i| o.key[..prefix.len() + i + d.len()].to_string())
            });
            if count(&out) >= max {
                out.next_marker = last;
                return Ok(out);
            }
            match cp {
                Some(cp) => {
                    out.prefixes.push(cp.clone());
                    range.lo = match prefix_end(cp.as_bytes()) {
                        Some(e) => std::ops::Bound::Included(e),
                        None => break 'pages,
                    };
                    last = Some(cp);
                    continue 'pages;
                }
                None => {
                    range.lo = std::ops::Bound::Excluded(o.key.as_bytes().to_vec());
                    last = Some(o.key.clone());
                    out.objects.push(o);
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// `max-keys` / `max-uploads` / `max-parts`, at most 1000.
fn max_param(ctx: &ReqCtx, name: &str) -> Result<usize, S3Error> {
    match ctx.query.get(name) {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(MAX_KEYS))
            .map_err(|_| S3Error::InvalidArgument(format!("{name} must be a number"))),
    }
}

/// `GET /bucket` (v1) and `GET /bucket?list-type=2` (v2).
pub async fn handle_list_objects(ctx: ReqCtx, v2: bool) -> Result<Response<S3Body>, S3Error> {
    let q = &ctx.query;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().filter(|d| !d.is_empty());
    let max = max_param(&ctx, "max-keys")?;
    let url = match q.get("encoding-type").map(String::as_str) {
        None => false,
        Some("url") => true,
        Some(other) => {
            return Err(S3Error::InvalidArgument(format!(
                "unknown encoding-type {other}"
            )))
        }
    };
    let enc = |s: &str| {
        if url {
            uri_encode(s.as_bytes(), true)
        } else {
            s.to_string()
        }
    };
    let token = q.get("continuation-token").cloned();
    let marker = if v2 {
        match &token {
            Some(t) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| S3Error::InvalidArgument("invalid continuation-token".into()))?,
            ),
            None => q.get("start-after").cloned(),
        }
    } else {
        q.get("marker").cloned()
    };
    let w = walk(
        &ctx,
        ObjectFilter::IsData,
        &prefix,
        delimiter.as_deref(),
        marker.as_deref(),
        max,
    )
    .await?;
    let mut x = Xml::new("ListBucketResult");
    x.elem("Name", &ctx.bucket_name)
        .elem("Prefix", &enc(&prefix))
        .elem("MaxKeys", &max.to_string())
        .bool_elem("IsTruncated", w.next_marker.is_some());
    if let Some(d) = &delimiter {
        x.elem("Delimiter", &enc(d));
    }
    if url {
        x.elem("EncodingType", "url");
    }
    if v2 {
        x.elem(
            "KeyCount",
            &(w.objects.len() + w.prefixes.len()).to_string(),
        );
        if let Some(t) = &token {
            x.elem("ContinuationToken", t);
        }
        if let Some(s) = q.get("start-after") {
            x.elem("StartAfter", &enc(s));
        }
        if let Some(m) = &w.next_marker {
            x.elem(
                "NextContinuationToken",
                &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.as_bytes()),
            );
        }
    } else {
        x.elem("Marker", &enc(marker.as_deref().unwrap_or("")));
        if let Some(m) = &w.next_marker {
            x.elem("NextMarker", &enc(m));
        }
    }
    for o in w.objects.iter() {
        let Some(v) = o.last_data() else {
            continue;
        };
        let Some(meta) = v.meta() else {
            continue;
        };
        x.open("Contents")
            .elem("Key", &enc(&o.key))
            .elem("LastModified", &iso8601(v.timestamp))
            .elem("ETag", &format!("\"{}\"", meta.etag))
            .elem("Size", &meta.size.to_string())
            .elem("StorageClass", "STANDARD")
            .close();
    }
    for p in w.prefixes.iter() {
        x.open("CommonPrefixes").elem("Prefix", &enc(p)).close();
    }
    Ok(xml_response(StatusCode::OK, x.finish()))
}

/// `GET /bucket?uploads`: multipart uploads in progress, by key then
/// start time (prefix, delimiter, key-marker, max-uploads).
pub async fn handle_list_multipart_uploads(ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    let q = &ctx.query;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().filter(|d| !d.is_empty());
    let max = max_param(&ctx, "max-uploads")?;
    let marker = q.get("key-marker").cloned();
    let w = walk(
        &ctx,
        ObjectFilter::IsUploading {
            multipart_only: true,
        },
        &prefix,
        delimiter.as_deref(),
        marker.as_deref(),
        max,
    )
    .await?;
    let mut x = Xml::new("ListMultipartUploadsResult");
    x.elem("Bucket", &ctx.bucket_name)
        .elem("KeyMarker", marker.as_deref().unwrap_or(""))
        .elem("UploadIdMarker", "")
        .elem("Prefix", &prefix)
        .elem("MaxUploads", &max.to_string())
        .bool_elem("IsTruncated", w.next_marker.is_some());
    if let Some(d) = &delimiter {
        x.elem("Delimiter", d);
    }
    if let Some(m) = &w.next_marker {
        x.elem("NextKeyMarker", m).elem("NextUploadIdMarker", "");
    }
    for o in w.objects.iter() {
        for v in o.versions.iter().filter(|v| v.is_uploading(true)) {
            x.open("Upload")
                .elem("Key", &o.key)
                .elem("UploadId", &v.uuid.to_hex())
                .elem("Initiated", &iso8601(v.timestamp))
                .elem("StorageClass", "STANDARD")
                .close();
        }
    }
    for p in w.prefixes.iter() {
        x.open("CommonPrefixes").elem("Prefix", p).close();
    }
    Ok(xml_response(StatusCode::OK, x.finish()))
}

/// `GET /bucket/key?uploadId=U`: the parts uploaded so far (newest attempt
/// of each), after `part-number-marker`, at most `max-parts`.
pub async fn handle_list_parts(
    ctx: ReqCtx,
    key: &str,
    upload_id: &str,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let (_, v) = upload(&ctx.garage, bucket, key, upload_id).await?;
    let max = max_param(&ctx, "max-parts")?;
    let after: u64 = match ctx.query.get("part-number-marker") {
        None => 0,
        Some(m) => m
            .parse()
            .map_err(|_| S3Error::InvalidArgument("invalid part-number-marker".into()))?,
    };
    let version = ctx
        .garage
        .s3
        .version_table
        .get(&v.uuid, &v.uuid)
        .await?
        .filter(|x| !x.deleted)
        .ok_or(S3Error::NoSuchUpload)?;
    let parts: Vec<_> = version.parts.iter().filter(|(n, _)| *n > after).collect();
    let truncated = parts.len() > max;
    let shown = &parts[..parts.len().min(max)];
    let mut x = Xml::new("ListPartsResult");
    x.elem("Bucket", &ctx.bucket_name)
        .elem("Key", key)
        .elem("UploadId", upload_id)
        .elem("PartNumberMarker", &after.to_string())
        .elem("MaxParts", &max.to_string())
        .bool_elem("IsTruncated", truncated)
        .elem("StorageClass", "STANDARD");
    if let (true, Some((n, _))) = (truncated, shown.last()) {
        x.elem("NextPartNumberMarker", &n.to_string());
    }
    for (n, p) in shown {
        x.open("Part")
            .elem("PartNumber", &n.to_string())
            .elem("LastModified", &iso8601(p.attempt))
            .elem("ETag", &format!("\"{}\"", p.etag))
            .elem("Size", &p.size.to_string())
            .close();
    }
    Ok(xml_response(StatusCode::OK, x.finish()))
}
