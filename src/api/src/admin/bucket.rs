//! `/v1/bucket`: list, info, create, update and delete buckets; key
//! permissions (`/v1/bucket/allow`, `/v1/bucket/deny`); global and local
//! aliases (`/v1/bucket/alias/{global,local}`).
//!
//! Everything the model helpers of `garage bucket` do is done through them,
//! after the checks that give Garage's status codes (404 for unknown ids,
//! 409 for a taken alias). Two operations have Garage's admin API semantics,
//! which the CLI helpers do not offer, and are written here on the tables:
//! creating a bucket without a global alias, and deleting a bucket whatever
//! aliases it has (it must hold no K2V item).

use hyper::Response;
use serde::{Deserialize, Serialize};

use garage_model::bucket_table::Bucket;
use garage_model::garage::Garage;
use garage_model::helper::is_valid_bucket_name;
use garage_table::EmptyKey;
use garage_util::crdt::Deletable;
use garage_util::data::Uuid;

use super::ctx::{no_content, ok_json, parse_body, AdminCtx, ApiBucketKeyPerm};
use super::error::AdminError;
use super::key::existing_key;
use super::router::BucketSelector;
use crate::http::ResBody;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalAliasResp {
    access_key_id: String,
    alias: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BucketListItem {
    id: String,
    global_aliases: Vec<String>,
    local_aliases: Vec<LocalAliasResp>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BucketKeyResp {
    access_key_id: String,
    name: String,
    permissions: ApiBucketKeyPerm,
    bucket_local_aliases: Vec<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct QuotasResp {
    max_size: Option<u64>,
    max_objects: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebsiteConfigResp {
    index_document: String,
    error_document: Option<String>,
}

/// Garage's bucket info. This node stores no objects and serves no
/// website: the object counters are 0, `websiteAccess` is false and the
/// quotas are unset.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BucketInfoResp {
    id: String,
    global_aliases: Vec<String>,
    website_access: bool,
    website_config: Option<WebsiteConfigResp>,
    keys: Vec<BucketKeyResp>,
    objects: i64,
    bytes: i64,
    unfinished_uploads: i64,
    unfinished_multipart_uploads: i64,
    unfinished_multipart_upload_parts: i64,
    unfinished_multipart_upload_bytes: i64,
    quotas: QuotasResp,
}

fn parse_bucket_id(id: &str) -> Result<Uuid, AdminError> {
    Some(id)
        .filter(|s| s.len() == 64)
        .and_then(Uuid::from_hex)
        .ok_or_else(|| {
            AdminError::BadRequest(format!("invalid bucket id `{id}`: expected 64 hex digits"))
        })
}

async fn existing_bucket(g: &Garage, id: &Uuid) -> Result<Bucket, AdminError> {
    g.bucket_table
        .get(&EmptyKey, id)
        .await?
        .filter(|b| !b.state.is_deleted())
        .ok_or_else(|| AdminError::NoSuchBucket(id.to_hex()))
}

fn check_name(name: &str) -> Result<(), AdminError> {
    if is_valid_bucket_name(name) {
        Ok(())
    } else {
        Err(AdminError::BadRequest(format!(
            "invalid bucket name `{name}`: use 3 to 63 lower-case letters, digits, '-' or '.', \
             starting and ending with a letter or digit"
        )))
    }
}

async fn bucket_info(g: &Garage, id: &Uuid) -> Result<Response<ResBody>, AdminError> {
    let b = existing_bucket(g, id).await?;
    let (objects, bytes, uploads) = g.bucket_object_counts(id).await?;
    let p = b
        .params()
        .ok_or_else(|| AdminError::NoSuchBucket(id.to_hex()))?;
    let local = b.local_aliases();
    let mut key_ids: Vec<String> = p
        .authorized_keys
        .iter()
        .filter(|(_, perm)| perm.is_any())
        .map(|(k, _)| k.clone())
        .chain(local.iter().map(|(k, _)| k.clone()))
        .collect();
    key_ids.sort();
    key_ids.dedup();
    let mut keys = vec![];
    for key_id in key_ids {
        let Some(k) = g
            .key_table
            .get(&EmptyKey, &key_id)
            .await?
            .filter(|k| !k.state.is_deleted())
        else {
            continue;
        };
        keys.push(BucketKeyResp {
            name: k.name(),
            permissions: k.bucket_permissions(id).into(),
            bucket_local_aliases: local
                .iter()
                .filter(|(kid, _)| *kid == key_id)
                .map(|(_, a)| a.clone())
                .collect(),
            access_key_id: key_id,
        });
    }
    ok_json(&BucketInfoResp {
        id: id.to_hex(),
        global_aliases: b.global_aliases(),
        website_access: false,
        website_config: None,
        keys,
        objects: objects as i64,
        bytes: bytes as i64,
        unfinished_uploads: uploads as i64,
        unfinished_multipart_uploads: uploads as i64,
        unfinished_multipart_upload_parts: 0,
        unfinished_multipart_upload_bytes: 0,
        quotas: QuotasResp::default(),
    })
}

/// `GET /v1/bucket`: every live bucket with its aliases.
pub async fn handle_list_buckets(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    let out: Vec<BucketListItem> = ctx
        .garage
        .list_buckets()
        .await?
        .into_iter()
        .map(|b| BucketListItem {
            id: b.id.to_hex(),
            global_aliases: b.global_aliases(),
            local_aliases: b
                .local_aliases()
                .into_iter()
                .map(|(access_key_id, alias)| LocalAliasResp {
                    access_key_id,
                    alias,
                })
                .collect(),
        })
        .collect();
    ok_json(&out)
}

/// `GET /v1/bucket?id=|globalAlias=`.
pub async fn handle_get_bucket_info(
    ctx: &AdminCtx,
    bucket: BucketSelector,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let id = match bucket {
        BucketSelector::Id(id) => parse_bucket_id(&id)?,
        BucketSelector::GlobalAlias(a) => g
            .resolve_global_alias(&a)
            .await?
            .ok_or(AdminError::NoSuchBucket(a))?,
    };
    bucket_info(g, &id).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateLocalAlias {
    access_key_id: String,
    alias: String,
    #[serde(default)]
    allow: ApiBucketKeyPerm,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBucketReq {
    #[serde(default)]
    global_alias: Option<String>,
    #[serde(default)]
    local_alias: Option<CreateLocalAlias>,
}

/// `POST /v1/bucket` with `{globalAlias?, localAlias?: {accessKeyId, alias,
/// allow?: {read, write, owner}}}`. Every check runs before the bucket is
/// created.
pub async fn handle_create_bucket(
    ctx: &AdminCtx,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let req: CreateBucketReq = parse_body(body)?;
    let g = &ctx.garage;
    if let Some(name) = &req.global_alias {
        check_name(name)?;
        if g.resolve_global_alias(name).await?.is_some() {
            return Err(AdminError::BucketAlreadyExists(name.clone()));
        }
    }
    if let Some(la) = &req.local_alias {
        check_name(&la.alias)?;
        existing_key(g, &la.access_key_id).await?;
        if g.resolve_local_alias(&la.access_key_id, &la.alias)
            .await?
            .is_some()
        {
            return Err(AdminError::BucketAlreadyExists(format!(
                "local alias {} of key {}",
                la.alias, la.access_key_id
            )));
        }
    }
    let bucket = match &req.global_alias {
        Some(name) => g.create_bucket(name).await?,
        None => {
            let b = Bucket::new(Uuid::from_bytes(g.rng.bytes32()), g.clock.now_ms());
            g.bucket_table.insert(&b).await?;
            b
        }
    };
    let hex = bucket.id.to_hex();
    if let Some(la) = &req.local_alias {
        g.alias_bucket(&hex, &la.alias, Some(&la.access_key_id))
            .await?;
        let p = la.allow;
        if p.read || p.write || p.owner {
            g.change_permissions(&hex, &la.access_key_id, p.read, p.write, p.owner, true)
                .await?;
        }
    }
    tracing::info!(bucket = %hex, "admin API created a bucket");
    bucket_info(g, &bucket.id).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebsiteReq {
    enabled: bool,
    #[serde(default)]
    index_document: Option<String>,
    #[serde(default)]
    error_document: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotasReq {
    #[serde(default)]
    max_size: Option<u64>,
    #[serde(default)]
    max_objects: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBucketReq {
    #[serde(default)]
    website_access: Option<WebsiteReq>,
    #[serde(default)]
    quotas: Option<QuotasReq>,
}

/// `PUT /v1/bucket?id=` with `{websiteAccess?, quotas?}`. The body is
/// checked as Garage does, but this K2V node serves no website and stores
/// no objects to limit, so nothing is changed: the answer is the bucket
/// info as it is.
pub async fn handle_update_bucket(
    ctx: &AdminCtx,
    id: &str,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let req: UpdateBucketReq = parse_body(body)?;
    let g = &ctx.garage;
    let id = parse_bucket_id(id)?;
    existing_bucket(g, &id).await?;
    if let Some(w) = &req.website_access {
        if w.enabled && w.index_document.is_none() {
            return Err(AdminError::BadRequest(
                "indexDocument is required to enable website access".into(),
            ));
        }
    }
    if req.website_access.is_some() || req.quotas.is_some() {
        let website = req
            .website_access
            .as_ref()
            .map(|w| (w.enabled, &w.index_document, &w.error_document));
        let quotas = req.quotas.as_ref().map(|q| (q.max_size, q.max_objects));
        tracing::info!(
            bucket = %id.to_hex(),
            ?website,
            ?quotas,
            "website access and quotas are not supported by this node: update ignored"
        );
    }
    bucket_info(g, &id).await
}

/// `DELETE /v1/bucket?id=`: refused (409) while the bucket holds S3 objects or K2V items;
/// otherwise every permission is revoked, every alias (global or local)
/// is freed and the bucket is deleted.
pub async fn handle_delete_bucket(
    ctx: &AdminCtx,
    id: &str,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let id = parse_bucket_id(id)?;
    let b = existing_bucket(g, &id).await?;
    if g.bucket_has_objects(&id).await? {
        return Err(AdminError::BucketNotEmpty(format!(
            "bucket {} holds S3 objects",
            id.to_hex()
        )));
    }
    let items = g.bucket_k2v_entries(&id).await?;
    if items > 0 {
        return Err(AdminError::BucketNotEmpty(format!(
            "bucket {} holds {items} K2V item(s)",
            id.to_hex()
        )));
    }
    let hex = id.to_hex();
    let granted: Vec<String> = b
        .params()
        .map(|p| {
            p.authorized_keys
                .iter()
                .filter(|(_, perm)| perm.is_any())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    for key_id in granted {
        if existing_key(g, &key_id).await.is_ok() {
            g.change_permissions(&hex, &key_id, true, true, true, false)
                .await?;
        }
    }
    for (key_id, alias) in b.local_aliases() {
        let Some(mut k) = g.key_table.get(&EmptyKey, &key_id).await? else {
            continue;
        };
        if let Some(kp) = k.params_mut() {
            if kp.local_aliases.get(&alias) == Some(&Some(id)) {
                kp.local_aliases.update_in_place(alias, None);
                g.key_table.insert(&k).await?;
            }
        }
    }
    for alias in b.global_aliases() {
        if let Some(mut a) = g.bucket_alias_table.get(&EmptyKey, &alias).await? {
            if a.bucket() == Some(id) {
                a.state.update(None);
                g.bucket_alias_table.insert(&a).await?;
            }
        }
    }
    // Re-read: revoking permissions rewrote the entry.
    let mut b = existing_bucket(g, &id).await.unwrap_or(b);
    b.state = Deletable::Deleted;
    g.bucket_table.insert(&b).await?;
    tracing::info!(bucket = %hex, "admin API deleted a bucket");
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermReq {
    bucket_id: String,
    access_key_id: String,
    permissions: ApiBucketKeyPerm,
}

/// `POST /v1/bucket/allow` (`allow = true`: the given flags are added) and
/// `POST /v1/bucket/deny` (the given flags are removed, the others kept).
pub async fn handle_bucket_change_key_perm(
    ctx: &AdminCtx,
    body: &[u8],
    allow: bool,
) -> Result<Response<ResBody>, AdminError> {
    let req: PermReq = parse_body(body)?;
    let g = &ctx.garage;
    let id = parse_bucket_id(&req.bucket_id)?;
    existing_bucket(g, &id).await?;
    existing_key(g, &req.access_key_id).await?;
    let p = req.permissions;
    if p.read || p.write || p.owner {
        g.change_permissions(
            &id.to_hex(),
            &req.access_key_id,
            p.read,
            p.write,
            p.owner,
            allow,
        )
        .await?;
    }
    bucket_info(g, &id).await
}

/// `PUT /v1/bucket/alias/global?id=&alias=`.
pub async fn handle_global_alias(
    ctx: &AdminCtx,
    id: &str,
    alias: &str,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let id = parse_bucket_id(id)?;
    existing_bucket(g, &id).await?;
    check_name(alias)?;
    if let Some(other) = g.resolve_global_alias(alias).await? {
        if other != id {
            return Err(AdminError::BucketAlreadyExists(format!(
                "alias {alias} points to another bucket"
            )));
        }
    }
    g.alias_bucket(&id.to_hex(), alias, None).await?;
    bucket_info(g, &id).await
}

/// `DELETE /v1/bucket/alias/global?id=&alias=`: refused for the bucket's
/// last alias (delete the bucket instead).
pub async fn handle_global_unalias(
    ctx: &AdminCtx,
    id: &str,
    alias: &str,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let id = parse_bucket_id(id)?;
    existing_bucket(g, &id).await?;
    if g.resolve_global_alias(alias).await? != Some(id) {
        return Err(AdminError::NoSuchBucket(format!(
            "global alias {alias} of bucket {}",
            id.to_hex()
        )));
    }
    g.unalias_bucket(alias, None).await?;
    bucket_info(g, &id).await
}

/// `PUT /v1/bucket/alias/local?id=&accessKeyId=&alias=`.
pub async fn handle_local_alias(
    ctx: &AdminCtx,
    id: &str,
    key_id: &str,
    alias: &str,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let id = parse_bucket_id(id)?;
    existing_bucket(g, &id).await?;
    existing_key(g, key_id).await?;
    check_name(alias)?;
    if let Some(other) = g.resolve_local_alias(key_id, alias).await? {
        if other != id {
            return Err(AdminError::BucketAlreadyExists(format!(
                "local alias {alias} of key {key_id} points to another bucket"
            )));
        }
    }
    g.alias_bucket(&id.to_hex(), alias, Some(key_id)).await?;
    bucket_info(g, &id).await
}

/// `DELETE /v1/bucket/alias/local?id=&accessKeyId=&alias=`: refused for
/// the bucket's last alias.
pub async fn handle_local_unalias(
    ctx: &AdminCtx,
    id: &str,
    key_id: &str,
    alias: &str,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let id = parse_bucket_id(id)?;
    existing_bucket(g, &id).await?;
    existing_key(g, key_id).await?;
    if g.resolve_local_alias(key_id, alias).await? != Some(id) {
        return Err(AdminError::NoSuchBucket(format!(
            "local alias {alias} of key {key_id} for bucket {}",
            id.to_hex()
        )));
    }
    g.unalias_bucket(alias, Some(key_id)).await?;
    bucket_info(g, &id).await
}
