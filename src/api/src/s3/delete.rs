//! DeleteObject and DeleteObjects: a delete writes a newer complete
//! version that is a delete marker; the merge then drops the older
//! versions and their blocks are released.

use hyper::{Response, StatusCode};

use garage_model::garage::Garage;
use garage_model::s3::object_table::{ObjectVersionData, ObjectVersionState};
use garage_util::data::Uuid;

use super::body::S3Body;
use super::error::S3Error;
use super::put::{next_timestamp, put_version_state};
use super::xml::{parse, DeleteRequest, Xml};
use super::{empty_response, xml_response, ReqCtx};

/// Most keys in one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

/// Deletes `key` if it holds data (deleting a missing key succeeds).
pub async fn delete_key(garage: &Garage, bucket: Uuid, key: &str) -> Result<(), S3Error> {
    let existing = garage
        .s3
        .object_table
        .get(&bucket, &key.to_string())
        .await?;
    let Some(o) = existing else {
        return Ok(());
    };
    if o.last_data().is_none() {
        return Ok(());
    }
    let ts = next_timestamp(garage, Some(&o));
    let uuid = Uuid::from_bytes(garage.rng.bytes32());
    put_version_state(
        garage,
        bucket,
        key,
        uuid,
        ts,
        ObjectVersionState::Complete(ObjectVersionData::DeleteMarker),
    )
    .await
}

/// `DELETE /bucket/key`: 204 whether or not the key existed.
pub async fn handle_delete_object(ctx: ReqCtx, key: &str) -> Result<Response<S3Body>, S3Error> {
    delete_key(&ctx.garage, ctx.bucket()?, key).await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `POST /bucket?delete`: each key deleted; `Quiet` reports errors only.
pub async fn handle_delete_objects(mut ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    let bucket = ctx.bucket()?;
    let body = ctx.body.read_all(2 << 20).await?;
    let req: DeleteRequest = parse(&body)?;
    if req.objects.len() > MAX_DELETE_KEYS {
        return Err(S3Error::MalformedXml(format!(
            "at most {MAX_DELETE_KEYS} keys per request"
        )));
    }
    let quiet = req.quiet.unwrap_or(false);
    let mut x = Xml::new("DeleteResult");
    for o in req.objects.iter() {
        match delete_key(&ctx.garage, bucket, &o.key).await {
            Ok(()) => {
                if !quiet {
                    x.open("Deleted").elem("Key", &o.key).close();
                }
            }
            Err(e) => {
                x.open("Error")
                    .elem("Key", &o.key)
                    .elem("Code", e.code())
                    .elem("Message", &e.to_string())
                    .close();
            }
        }
    }
    Ok(xml_response(StatusCode::OK, x.finish()))
}
