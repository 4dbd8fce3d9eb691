//! CopyObject and UploadPartCopy.
//!
//! CopyObject never copies data: the new version lists the source's
//! blocks and takes its own references on them (an inline source is copied
//! inline). `x-amz-metadata-directive: REPLACE` takes the request's
//! headers instead of the source's. UploadPartCopy reads the source range
//! (`x-amz-copy-source-range`, or all of it) and writes it as new blocks of
//! the part.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hyper::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_bytes::ByteBuf;

use garage_block::BlockRef;
use garage_model::s3::object_table::{
    ObjectMeta, ObjectVersion, ObjectVersionData, ObjectVersionState,
};
use garage_model::s3::version_table::{PartMeta, Version, VersionBlockKey};
use garage_util::data::Uuid;

use super::body::{ChunkSource, Chunker, S3Body};
use super::error::S3Error;
use super::get::{check_conditions, current_version, version_blocks};
use super::multipart::{record_part, upload};
use super::put::{next_timestamp, put_version_state, stored_headers, write_blocks};
use super::xml::{iso8601, Xml};
use super::{xml_response, ReqCtx};

/// The source bucket (readable by the key) and key of `x-amz-copy-source`.
async fn copy_source(ctx: &ReqCtx) -> Result<(Uuid, String, ObjectVersion), S3Error> {
    let raw = ctx
        .header("x-amz-copy-source")
        .ok_or_else(|| S3Error::InvalidArgument("x-amz-copy-source is missing".into()))?;
    let raw = raw.split_once('?').map_or(raw, |(p, _)| p);
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| S3Error::InvalidArgument("x-amz-copy-source is not UTF-8".into()))?;
    let path = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = path
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| S3Error::InvalidArgument("x-amz-copy-source must be bucket/key".into()))?;
    let g = &ctx.garage;
    let local = ctx
        .key
        .params()
        .and_then(|p| p.local_aliases.get(&bucket.to_string()).cloned().flatten());
    let id = match local {
        Some(id) => id,
        None => g
            .resolve_global_alias(bucket)
            .await?
            .ok_or_else(|| S3Error::NoSuchBucket(bucket.to_string()))?,
    };
    if !ctx.key.allow_read(&id) {
        return Err(S3Error::AccessDenied(format!(
            "key {} may not read bucket {bucket}",
            ctx.key.key_id
        )));
    }
    let v = current_version(g, &id, key).await?;
    if let Some(meta) = v.meta() {
        let mut conds = hyper::HeaderMap::new();
        for (from, to) in [
            ("x-amz-copy-source-if-match", "if-match"),
            ("x-amz-copy-source-if-none-match", "if-none-match"),
            ("x-amz-copy-source-if-modified-since", "if-modified-since"),
            (
                "x-amz-copy-source-if-unmodified-since",
                "if-unmodified-since",
            ),
        ] {
            if let Some(val) = ctx.headers.get(from) {
                conds.insert(to, val.clone());
            }
        }
        check_conditions(&conds, &meta.etag, v.timestamp).map_err(|e| match e {
            S3Error::NotModified => S3Error::PreconditionFailed,
            e => e,
        })?;
    }
    Ok((id, key.to_string(), v))
}

/// `PUT /bucket/key` with `x-amz-copy-source`.
pub async fn handle_copy_object(ctx: ReqCtx, key: &str) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let g = ctx.garage.clone();
    let (_, _, src) = copy_source(&ctx).await?;
    let src_meta = src.meta().cloned().ok_or(S3Error::NoSuchKey)?;
    let replace = ctx
        .header("x-amz-metadata-directive")
        .is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    let headers = if replace {
        stored_headers(&ctx.headers)
    } else {
        src_meta.headers.clone()
    };
    let existing = g.s3.object_table.get(&bucket, &key.to_string()).await?;
    let ts = next_timestamp(&g, existing.as_ref());
    let uuid = Uuid::from_bytes(g.rng.bytes32());
    let meta = ObjectMeta {
        size: src_meta.size,
        etag: src_meta.etag.clone(),
        headers,
        parts: vec![],
    };
    match &src.state {
        ObjectVersionState::Complete(ObjectVersionData::Inline(_, bytes)) => {
            put_version_state(
                &g,
                bucket,
                key,
                uuid,
                ts,
                ObjectVersionState::Complete(ObjectVersionData::Inline(
                    meta.clone(),
                    ByteBuf::from(bytes.to_vec()),
                )),
            )
            .await?;
        }
        ObjectVersionState::Complete(ObjectVersionData::FirstBlock(_, first)) => {
            let blocks = version_blocks(&g, &src, &src_meta).await?;
            put_version_state(
                &g,
                bucket,
                key,
                uuid,
                ts,
                ObjectVersionState::Uploading {
                    multipart: false,
                    meta: meta.clone(),
                },
            )
            .await?;
            let refs: Vec<BlockRef> = blocks
                .iter()
                .map(|b| BlockRef {
                    block: b.hash,
                    version: uuid,
                    deleted: false,
                })
                .collect();
            let mut v = Version::new(uuid, bucket, key.to_string());
            let mut offset = 0;
            for b in blocks.iter() {
                v.blocks.push((
                    VersionBlockKey {
                        part_number: 0,
                        attempt: 0,
                        offset,
                    },
                    *b,
                ));
                offset += b.size;
            }
            let res = async {
                g.block_manager.block_ref_table().insert_many(&refs).await?;
                g.s3.version_table.insert(&v).await?;
                Ok::<_, S3Error>(())
            }
            .await;
            let state = match res {
                Ok(()) => ObjectVersionState::Complete(ObjectVersionData::FirstBlock(
                    meta.clone(),
                    *first,
                )),
                Err(e) => {
                    let _ =
                        put_version_state(&g, bucket, key, uuid, ts, ObjectVersionState::Aborted)
                            .await;
                    return Err(e);
                }
            };
            put_version_state(&g, bucket, key, uuid, ts, state).await?;
        }
        _ => return Err(S3Error::NoSuchKey),
    }
    let mut x = Xml::new("CopyObjectResult");
    x.elem("ETag", &format!("\"{}\"", meta.etag))
        .elem("LastModified", &iso8601(ts));
    Ok(xml_response(StatusCode::OK, x.finish()))
}

/// Parses `x-amz-copy-source-range: bytes=a-b` into [a, b+1).
fn copy_range(ctx: &ReqCtx, size: u64) -> Result<(u64, u64), S3Error> {
    let Some(r) = ctx.header("x-amz-copy-source-range") else {
        return Ok((0, size));
    };
    let bad = || S3Error::InvalidArgument(format!("invalid x-amz-copy-source-range {r}"));
    let (a, b) = r
        .trim()
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a > b || b >= size {
        return Err(S3Error::InvalidRange { size });
    }
    Ok((a, b + 1))
}

/// `PUT /bucket/key?partNumber=N&uploadId=U` with `x-amz-copy-source`.
pub async fn handle_upload_part_copy(
    ctx: ReqCtx,
    key: &str,
    part_number: u64,
    upload_id: &str,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let g = ctx.garage.clone();
    let (_, v) = upload(&g, bucket, key, upload_id).await?;
    let (_, _, src) = copy_source(&ctx).await?;
    let src_meta = src.meta().cloned().ok_or(S3Error::NoSuchKey)?;
    let (start, end) = copy_range(&ctx, src_meta.size)?;
    let stream: futures::stream::BoxStream<'_, Result<Bytes, S3Error>> = match &src.state {
        ObjectVersionState::Complete(ObjectVersionData::Inline(_, bytes)) => {
            let b = Bytes::from(bytes.to_vec()).slice(start as usize..end as usize);
            futures::stream::once(async move { Ok(b) }).boxed()
        }
        ObjectVersionState::Complete(ObjectVersionData::FirstBlock(..)) => {
            let blocks = version_blocks(&g, &src, &src_meta).await?;
            let mut plan = vec![];
            let mut pos = 0u64;
            for b in blocks {
                let (bs, be) = (pos, pos + b.size);
                pos = be;
                if be > start && bs < end {
                    plan.push((
                        b,
                        start.saturating_sub(bs) as usize,
                        (end.min(be) - bs) as usize,
                    ));
                }
            }
            let g2 = g.clone();
            futures::stream::iter(plan)
                .map(move |(b, from, to)| {
                    let g = g2.clone();
                    async move {
                        let data = g.block_manager.get(&b.hash).await?;
                        if data.len() < to {
                            return Err(S3Error::Internal(
                                "a block is shorter than recorded".into(),
                            ));
                        }
                        Ok(data.slice(from..to))
                    }
                })
                .buffered(2)
                .boxed()
        }
        _ => return Err(S3Error::NoSuchKey),
    };
    let version = Version::new(v.uuid, bucket, key.to_string());
    let attempt = g.clock.now_ms().max(1);
    let mut chunker =
        Chunker::from_source(ChunkSource::Stream(stream), ctx.block_size, BytesMut::new());
    let w = write_blocks(&g, &version, part_number, attempt, &mut chunker).await?;
    let etag = hex::encode(w.md5);
    record_part(
        &g,
        &version,
        part_number,
        PartMeta {
            attempt,
            etag: etag.clone(),
            size: w.size,
        },
    )
    .await?;
    let mut x = Xml::new("CopyPartResult");
    x.elem("ETag", &format!("\"{etag}\""))
        .elem("LastModified", &iso8601(attempt));
    Ok(xml_response(StatusCode::OK, x.finish()))
}
