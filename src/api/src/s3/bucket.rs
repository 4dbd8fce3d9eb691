//! Service and bucket operations: ListBuckets, CreateBucket, DeleteBucket,
//! GetBucketLocation, GetBucketVersioning (HeadBucket needs no handler).
//! Buckets are the same as `garage bucket`'s: a created bucket gets a
//! global alias and its creator gets read, write and owner permissions.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};

use garage_model::helper::{is_valid_bucket_name, HelperError};
use garage_table::EmptyKey;

use super::body::S3Body;
use super::error::S3Error;
use super::xml::{iso8601, parse, CreateBucketConfiguration, Xml};
use super::{empty_response, xml_response, ReqCtx};

/// `GET /`: the buckets the key has any permission on, under each name it
/// knows them by (global aliases and its own local aliases).
pub async fn handle_list_buckets(ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    let g = &ctx.garage;
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    let params = ctx.key.params().cloned();
    if let Some(p) = params {
        for (id, perm) in p.authorized_buckets.iter() {
            if !perm.is_any() {
                continue;
            }
            let Some(b) = g.bucket_table.get_local(&EmptyKey, id)? else {
                continue;
            };
            let Some(bp) = b.params() else {
                continue;
            };
            for a in b.global_aliases() {
                names.insert(a, bp.creation_date);
            }
            for (alias, _, target) in p.local_aliases.items() {
                if *target == Some(*id) {
                    names.insert(alias.clone(), bp.creation_date);
                }
            }
        }
    }
    let mut x = Xml::new("ListAllMyBucketsResult");
    x.open("Owner")
        .elem("ID", &ctx.key.key_id)
        .elem("DisplayName", &ctx.key.name())
        .close();
    x.open("Buckets");
    for (name, created) in names {
        x.open("Bucket")
            .elem("Name", &name)
            .elem("CreationDate", &iso8601(created))
            .close();
    }
    x.close();
    Ok(xml_response(StatusCode::OK, x.finish()))
}

/// `PUT /bucket`: needs the key's create-bucket flag.
pub async fn handle_create_bucket(mut ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    let body = ctx.body.read_all(64 * 1024).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let conf: CreateBucketConfiguration = parse(&body)?;
        if let Some(loc) = conf.location_constraint.filter(|l| !l.is_empty()) {
            if loc != ctx.region {
                return Err(S3Error::InvalidArgument(format!(
                    "location constraint {loc} is not this server's region {}",
                    ctx.region
                )));
            }
        }
    }
    let name = ctx.bucket_name.clone();
    if !is_valid_bucket_name(&name) {
        return Err(S3Error::InvalidBucketName(name));
    }
    let g = &ctx.garage;
    if let Some(existing) = g.resolve_global_alias(&name).await? {
        return if ctx.key.bucket_permissions(&existing).allow_owner {
            Err(S3Error::BucketAlreadyOwnedByYou)
        } else {
            Err(S3Error::BucketAlreadyExists)
        };
    }
    let may_create = ctx
        .key
        .params()
        .map(|p| *p.allow_create_bucket.get())
        .unwrap_or(false);
    if !may_create {
        return Err(S3Error::AccessDenied(format!(
            "key {} may not create buckets (garage key allow --create-bucket)",
            ctx.key.key_id
        )));
    }
    g.create_bucket(&name).await.map_err(|e| match e {
        HelperError::Refused(_) => S3Error::BucketAlreadyExists,
        other => other.into(),
    })?;
    g.change_permissions(&name, &ctx.key.key_id, true, true, true, true)
        .await?;
    let mut r = empty_response(StatusCode::OK);
    if let Ok(v) = format!("/{name}").parse() {
        r.headers_mut().insert("location", v);
    }
    Ok(r)
}

/// `DELETE /bucket`: refused while it holds objects (409 BucketNotEmpty).
pub async fn handle_delete_bucket(ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    let id = ctx.bucket()?;
    let g = &ctx.garage;
    if g.bucket_has_objects(&id).await? || g.bucket_k2v_entries(&id).await? > 0 {
        return Err(S3Error::BucketNotEmpty);
    }
    g.delete_bucket(&ctx.bucket_name)
        .await
        .map_err(|e| match e {
            HelperError::Refused(m) => S3Error::InvalidRequest(m),
            other => other.into(),
        })?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `GET /bucket?location`: this server's region.
pub fn handle_get_bucket_location(ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LocationConstraint xmlns=\"{}\">{}</LocationConstraint>",
        super::xml::NS,
        super::xml::escape(&ctx.region)
    );
    Ok(xml_response(StatusCode::OK, body))
}

/// `GET /bucket?versioning`: versioning is never enabled (empty answer).
pub fn handle_get_bucket_versioning(_ctx: ReqCtx) -> Result<Response<S3Body>, S3Error> {
    Ok(xml_response(
        StatusCode::OK,
        Xml::new("VersioningConfiguration").finish(),
    ))
}
