//! PutObject, and the block writer shared with UploadPart and the copies.
//!
//! A small body (up to [`INLINE_THRESHOLD`]) is stored in the object entry.
//! A larger one gets a version: the object first records it as
//! `Uploading` (not readable), then the body is cut into blocks, each one
//! referenced (block ref, then version entry) before it is stored, a few
//! blocks in flight at once; only when every block is stored and the body
//! checked against its signature does the object entry become `Complete`.
//! On any failure the version is marked `Aborted`, which releases its
//! blocks. A crash leaves an `Uploading` version that is never readable.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Response, StatusCode};
use md5::{Digest as _, Md5};
use serde_bytes::ByteBuf;

use garage_block::BlockRef;
use garage_model::garage::Garage;
use garage_model::s3::object_table::{
    Object, ObjectMeta, ObjectVersion, ObjectVersionData, ObjectVersionState, INLINE_THRESHOLD,
};
use garage_model::s3::version_table::{Version, VersionBlock, VersionBlockKey};
use garage_util::data::{blake2sum, Hash, Uuid};

use super::body::{Chunker, S3Body};
use super::error::S3Error;
use super::{empty_response, ReqCtx};

/// Blocks being stored at once by one upload.
const BLOCKS_IN_FLIGHT: usize = 3;

/// Headers stored with an object and returned by GET/HEAD.
const STORED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
];

/// The headers of a request to store with the object.
pub fn stored_headers(h: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = h
        .iter()
        .filter(|(n, _)| {
            STORED_HEADERS.contains(&n.as_str()) || n.as_str().starts_with("x-amz-meta-")
        })
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    out.sort();
    out
}

/// A new version's timestamp: now, but after every version already known,
/// so that the new one is the newest.
pub fn next_timestamp(garage: &Garage, existing: Option<&Object>) -> u64 {
    let now = garage.clock.now_ms();
    let last = existing
        .and_then(|o| o.versions.iter().map(|v| v.timestamp).max())
        .unwrap_or(0);
    now.max(last + 1)
}

/// Writes one object version state.
pub async fn put_version_state(
    garage: &Garage,
    bucket_id: Uuid,
    key: &str,
    uuid: Uuid,
    timestamp: u64,
    state: ObjectVersionState,
) -> Result<(), S3Error> {
    let o = Object::new(
        bucket_id,
        key.to_string(),
        vec![ObjectVersion {
            timestamp,
            uuid,
            state,
        }],
    );
    garage.s3.object_table.insert(&o).await?;
    Ok(())
}

/// What [`write_blocks`] stored.
pub struct Written {
    /// Bytes.
    pub size: u64,
    /// MD5 of the data.
    pub md5: [u8; 16],
    /// Hash of the first block.
    pub first: Option<Hash>,
}

/// References and stores one block of `version` at `at`.
async fn store_block(
    garage: Arc<Garage>,
    version: Version,
    at: VersionBlockKey,
    data: Bytes,
) -> Result<(), S3Error> {
    let hash = blake2sum(&data);
    let bm = &garage.block_manager;
    bm.block_ref_table()
        .insert(&BlockRef {
            block: hash,
            version: version.uuid,
            deleted: false,
        })
        .await?;
    let mut v = version;
    v.blocks.push((
        at,
        VersionBlock {
            hash,
            size: data.len() as u64,
        },
    ));
    garage.s3.version_table.insert(&v).await?;
    bm.put(hash, data).await?;
    Ok(())
}

/// Cuts what `chunker` yields into blocks of `version`'s part
/// (`part_number`, `attempt`), storing a few at once. Returns once every
/// block is stored and the body was checked.
pub async fn write_blocks(
    garage: &Arc<Garage>,
    version: &Version,
    part_number: u64,
    attempt: u64,
    chunker: &mut Chunker<'_>,
) -> Result<Written, S3Error> {
    let mut md5 = Md5::new();
    let mut offset = 0u64;
    let mut first = None;
    let mut inflight: VecDeque<tokio::task::JoinHandle<Result<(), S3Error>>> = VecDeque::new();
    let template = Version::new(version.uuid, version.bucket_id, version.key.clone());
    let res: Result<(), S3Error> = async {
        while let Some(block) = chunker.next().await? {
            md5.update(&block);
            if first.is_none() {
                first = Some(blake2sum(&block));
            }
            let at = VersionBlockKey {
                part_number,
                attempt,
                offset,
            };
            offset += block.len() as u64;
            while inflight.len() >= BLOCKS_IN_FLIGHT {
                if let Some(h) = inflight.pop_front() {
                    join(h).await?;
                }
            }
            inflight.push_back(tokio::spawn(store_block(
                garage.clone(),
                template.clone(),
                at,
                block,
            )));
        }
        while let Some(h) = inflight.pop_front() {
            join(h).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        // Let the stores already started finish or fail before the caller
        // aborts the version (so no reference is added after the abort).
        for h in inflight {
            let _ = h.await;
        }
        return Err(e);
    }
    Ok(Written {
        size: offset,
        md5: md5.finalize().into(),
        first,
    })
}

async fn join(h: tokio::task::JoinHandle<Result<(), S3Error>>) -> Result<(), S3Error> {
    h.await
        .map_err(|e| S3Error::Internal(format!("block store task: {e}")))?
}

/// Checks the `Content-MD5` header, if any, against the data's MD5.
pub fn check_content_md5(headers: &HeaderMap, md5: &[u8; 16]) -> Result<(), S3Error> {
    let Some(v) = headers.get("content-md5") else {
        return Ok(());
    };
    let given = v
        .to_str()
        .ok()
        .and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        })
        .ok_or_else(|| S3Error::InvalidArgument("Content-MD5 is not base64".into()))?;
    if given.as_slice() == md5 {
        Ok(())
    } else {
        Err(S3Error::BadDigest)
    }
}

/// Reads the body until it has more than `limit` bytes or ends; returns
/// the bytes and whether it ended.
async fn read_head(ctx: &mut ReqCtx, limit: usize) -> Result<(BytesMut, bool), S3Error> {
    let mut buf = BytesMut::new();
    while buf.len() <= limit {
        match ctx.body.next().await? {
            Some(d) => buf.extend_from_slice(&d),
            None => return Ok((buf, true)),
        }
    }
    Ok((buf, false))
}

/// An ETag header value.
pub fn etag_header(etag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{etag}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// `PUT /bucket/key`.
pub async fn handle_put_object(mut ctx: ReqCtx, key: &str) -> Result<Response<S3Body>, S3Error> {
    let bucket_id = ctx.bucket()?;
    let garage = ctx.garage.clone();
    let headers = stored_headers(&ctx.headers);
    let existing = garage
        .s3
        .object_table
        .get(&bucket_id, &key.to_string())
        .await?;
    let timestamp = next_timestamp(&garage, existing.as_ref());
    let uuid = Uuid::from_bytes(garage.rng.bytes32());

    let (head, ended) = read_head(&mut ctx, INLINE_THRESHOLD).await?;
    if ended {
        let md5: [u8; 16] = Md5::digest(&head).into();
        check_content_md5(&ctx.headers, &md5)?;
        let done = Completed {
            bucket_id,
            key,
            uuid,
            timestamp,
        };
        let (size, body) = (head.len() as u64, ByteBuf::from(head.to_vec()));
        return done
            .store(&garage, size, hex::encode(md5), headers, |meta| {
                ObjectVersionData::Inline(meta, body)
            })
            .await;
    }

    put_version_state(
        &garage,
        bucket_id,
        key,
        uuid,
        timestamp,
        ObjectVersionState::Uploading {
            multipart: false,
            meta: ObjectMeta {
                headers: headers.clone(),
                ..Default::default()
            },
        },
    )
    .await?;
    // The version entry is written with its first block (write_blocks).
    let version = Version::new(uuid, bucket_id, key.to_string());
    let content_headers = ctx.headers.clone();
    let mut chunker = Chunker::new(&mut ctx.body, ctx.block_size, head);
    let res = async {
        let w = write_blocks(&garage, &version, 0, 0, &mut chunker).await?;
        check_content_md5(&content_headers, &w.md5)?;
        Ok::<_, S3Error>(w)
    }
    .await;
    let w = match res {
        Ok(w) => w,
        Err(e) => {
            let _ = put_version_state(
                &garage,
                bucket_id,
                key,
                uuid,
                timestamp,
                ObjectVersionState::Aborted,
            )
            .await;
            return Err(e);
        }
    };
    let first = w
        .first
        .ok_or_else(|| S3Error::Internal("a large object without blocks".into()))?;
    let done = Completed {
        bucket_id,
        key,
        uuid,
        timestamp,
    };
    done.store(&garage, w.size, hex::encode(w.md5), headers, |meta| {
        ObjectVersionData::FirstBlock(meta, first)
    })
    .await
}

/// The version a PutObject completes.
struct Completed<'a> {
    bucket_id: Uuid,
    key: &'a str,
    uuid: Uuid,
    timestamp: u64,
}

impl Completed<'_> {
    /// Stores the version as complete (its data built from its metadata)
    /// and answers 200 with its ETag.
    async fn store(
        self,
        garage: &Garage,
        size: u64,
        etag: String,
        headers: Vec<(String, String)>,
        data: impl FnOnce(ObjectMeta) -> ObjectVersionData,
    ) -> Result<Response<S3Body>, S3Error> {
        let meta = ObjectMeta {
            size,
            etag: etag.clone(),
            headers,
            parts: vec![],
        };
        put_version_state(
            garage,
            self.bucket_id,
            self.key,
            self.uuid,
            self.timestamp,
            ObjectVersionState::Complete(data(meta)),
        )
        .await?;
        let mut r = empty_response(StatusCode::OK);
        r.headers_mut().insert("etag", etag_header(&etag));
        Ok(r)
    }
}
