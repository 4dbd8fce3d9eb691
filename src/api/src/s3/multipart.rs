//! Multipart uploads: the upload id is the hex uuid of an `Uploading`
//! (multipart) version. Parts are written as blocks of that version under
//! their part number and an attempt number (a part sent again replaces the
//! previous attempt). Completion checks the list of parts (ascending,
//! uploaded, ETags equal, every part but the last at least 5 MiB), records
//! which attempts make the object and makes the version `Complete`, with
//! the ETag `md5(md5(part 1) ‖ … ‖ md5(part N))-N`.

use bytes::BytesMut;
use hyper::{Response, StatusCode};
use md5::{Digest as _, Md5};

use garage_model::garage::Garage;
use garage_model::s3::object_table::{
    Object, ObjectMeta, ObjectVersion, ObjectVersionData, ObjectVersionState,
};
use garage_model::s3::version_table::{PartMeta, Version};
use garage_util::data::Uuid;

use super::body::{Chunker, S3Body};
use super::error::S3Error;
use super::put::{
    check_content_md5, etag_header, next_timestamp, put_version_state, stored_headers, write_blocks,
};
use super::xml::{parse, CompleteRequest, Xml};
use super::{empty_response, xml_response, ReqCtx};

/// Smallest part but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// Parses an upload id.
pub fn parse_upload_id(id: &str) -> Result<Uuid, S3Error> {
    Uuid::from_hex(id).ok_or(S3Error::NoSuchUpload)
}

/// The object and the multipart version an upload id names.
pub async fn upload(
    garage: &Garage,
    bucket: Uuid,
    key: &str,
    upload_id: &str,
) -> Result<(Object, ObjectVersion), S3Error> {
    let uuid = parse_upload_id(upload_id)?;
    let o = garage
        .s3
        .object_table
        .get(&bucket, &key.to_string())
        .await?
        .ok_or(S3Error::NoSuchUpload)?;
    let v = o
        .versions
        .iter()
        .find(|v| v.uuid == uuid && v.is_uploading(true))
        .cloned()
        .ok_or(S3Error::NoSuchUpload)?;
    Ok((o, v))
}

/// `POST /bucket/key?uploads`.
pub async fn handle_create_multipart_upload(
    ctx: ReqCtx,
    key: &str,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let g = &ctx.garage;
    let existing = g.s3.object_table.get(&bucket, &key.to_string()).await?;
    let ts = next_timestamp(g, existing.as_ref());
    let uuid = Uuid::from_bytes(g.rng.bytes32());
    g.s3.version_table
        .insert(&Version::new(uuid, bucket, key.to_string()))
        .await?;
    put_version_state(
        g,
        bucket,
        key,
        uuid,
        ts,
        ObjectVersionState::Uploading {
            multipart: true,
            meta: ObjectMeta {
                headers: stored_headers(&ctx.headers),
                ..Default::default()
            },
        },
    )
    .await?;
    let mut x = Xml::new("InitiateMultipartUploadResult");
    x.elem("Bucket", &ctx.bucket_name)
        .elem("Key", key)
        .elem("UploadId", &uuid.to_hex());
    Ok(xml_response(StatusCode::OK, x.finish()))
}

/// Records a part's metadata in its version.
pub async fn record_part(
    garage: &Garage,
    version: &Version,
    part_number: u64,
    part: PartMeta,
) -> Result<(), S3Error> {
    let mut v = Version::new(version.uuid, version.bucket_id, version.key.clone());
    v.parts.push((part_number, part));
    garage.s3.version_table.insert(&v).await?;
    Ok(())
}

/// `PUT /bucket/key?partNumber=N&uploadId=U`.
pub async fn handle_upload_part(
    mut ctx: ReqCtx,
    key: &str,
    part_number: u64,
    upload_id: &str,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let garage = ctx.garage.clone();
    let (_, v) = upload(&garage, bucket, key, upload_id).await?;
    let version = Version::new(v.uuid, bucket, key.to_string());
    let attempt = garage.clock.now_ms().max(1);
    let headers = ctx.headers.clone();
    let mut chunker = Chunker::new(&mut ctx.body, ctx.block_size, BytesMut::new());
    let w = write_blocks(&garage, &version, part_number, attempt, &mut chunker).await?;
    check_content_md5(&headers, &w.md5)?;
    let etag = hex::encode(w.md5);
    record_part(
        &garage,
        &version,
        part_number,
        PartMeta {
            attempt,
            etag: etag.clone(),
            size: w.size,
        },
    )
    .await?;
    let mut r = empty_response(StatusCode::OK);
    r.headers_mut().insert("etag", etag_header(&etag));
    Ok(r)
}

/// `POST /bucket/key?uploadId=U`.
pub async fn handle_complete_multipart_upload(
    mut ctx: ReqCtx,
    key: &str,
    upload_id: &str,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let body = ctx.body.read_all(4 << 20).await?;
    let req: CompleteRequest = parse(&body)?;
    let g = &ctx.garage;
    let (_, v) = upload(g, bucket, key, upload_id).await?;
    let ObjectVersionState::Uploading { meta, .. } = &v.state else {
        return Err(S3Error::NoSuchUpload);
    };
    let version =
        g.s3.version_table
            .get(&v.uuid, &v.uuid)
            .await?
            .filter(|x| !x.deleted)
            .ok_or(S3Error::NoSuchUpload)?;
    if req.parts.is_empty() {
        return Err(S3Error::MalformedXml(
            "a CompleteMultipartUpload needs at least one part".into(),
        ));
    }
    let mut selected = vec![];
    let mut md5s = Md5::new();
    let mut size = 0u64;
    let mut prev = 0u64;
    for (i, p) in req.parts.iter().enumerate() {
        if p.part_number <= prev {
            return Err(S3Error::InvalidPartOrder);
        }
        prev = p.part_number;
        let m = version.part(p.part_number).ok_or_else(|| {
            S3Error::InvalidPart(format!("part {} was not uploaded", p.part_number))
        })?;
        if p.etag.trim().trim_matches('"') != m.etag {
            return Err(S3Error::InvalidPart(format!(
                "part {} has ETag \"{}\", not {}",
                p.part_number, m.etag, p.etag
            )));
        }
        if m.size < MIN_PART_SIZE && i + 1 < req.parts.len() {
            return Err(S3Error::EntityTooSmall);
        }
        let raw = hex::decode(&m.etag).map_err(|_| S3Error::Internal("bad stored ETag".into()))?;
        md5s.update(&raw);
        size += m.size;
        selected.push((p.part_number, m.attempt));
    }
    let blocks = version.read_blocks(&selected);
    let stored: u64 = blocks.iter().map(|b| b.size).sum();
    if stored != size {
        return Err(S3Error::Unavailable(
            "the parts' blocks are not all recorded on the replicas read".into(),
        ));
    }
    let first = blocks
        .first()
        .map(|b| b.hash)
        .ok_or_else(|| S3Error::InvalidPart("the parts hold no data".into()))?;
    let etag = format!("{}-{}", hex::encode(md5s.finalize()), req.parts.len());
    let final_meta = ObjectMeta {
        size,
        etag: etag.clone(),
        headers: meta.headers.clone(),
        parts: selected,
    };
    put_version_state(
        g,
        bucket,
        key,
        v.uuid,
        v.timestamp,
        ObjectVersionState::Complete(ObjectVersionData::FirstBlock(final_meta, first)),
    )
    .await?;
    let mut x = Xml::new("CompleteMultipartUploadResult");
    x.elem("Location", &format!("/{}/{key}", ctx.bucket_name))
        .elem("Bucket", &ctx.bucket_name)
        .elem("Key", key)
        .elem("ETag", &format!("\"{etag}\""));
    Ok(xml_response(StatusCode::OK, x.finish()))
}

/// `DELETE /bucket/key?uploadId=U`: the version is aborted and its blocks
/// released.
pub async fn handle_abort_multipart_upload(
    ctx: ReqCtx,
    key: &str,
    upload_id: &str,
) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let g = &ctx.garage;
    let (_, v) = upload(g, bucket, key, upload_id).await?;
    put_version_state(
        g,
        bucket,
        key,
        v.uuid,
        v.timestamp,
        ObjectVersionState::Aborted,
    )
    .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
