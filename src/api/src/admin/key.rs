//! `/v1/key` and `/v1/key/import`: list, info, create, update, delete and
//! import access keys, through the same model helpers as `garage key`.

use std::collections::BTreeSet;

use hyper::Response;
use serde::{Deserialize, Serialize};

use garage_model::garage::Garage;
use garage_model::key_table::Key;
use garage_table::EmptyKey;
use garage_util::data::Uuid;

use super::ctx::{
    no_content, ok_json, parse_body, parse_body_or_default, AdminCtx, ApiBucketKeyPerm,
};
use super::error::AdminError;
use super::router::KeySelector;
use crate::http::ResBody;

#[derive(Serialize)]
struct KeyListItem {
    id: String,
    name: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyPerm {
    #[serde(default)]
    create_bucket: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyBucketResp {
    id: String,
    global_aliases: Vec<String>,
    local_aliases: Vec<String>,
    permissions: ApiBucketKeyPerm,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfoResp {
    name: String,
    access_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<String>,
    permissions: KeyPerm,
    buckets: Vec<KeyBucketResp>,
}

/// The live key with exactly this id.
pub async fn existing_key(g: &Garage, id: &str) -> Result<Key, AdminError> {
    g.key_table
        .get(&EmptyKey, &id.to_string())
        .await?
        .filter(|k| !k.state.is_deleted())
        .ok_or_else(|| AdminError::NoSuchAccessKey(id.to_string()))
}

async fn key_info(g: &Garage, k: &Key, show_secret: bool) -> Result<Response<ResBody>, AdminError> {
    let p = k
        .params()
        .ok_or_else(|| AdminError::NoSuchAccessKey(k.key_id.clone()))?;
    // Buckets the key may use, and buckets it names with a local alias.
    let mut ids: BTreeSet<Uuid> = p
        .authorized_buckets
        .iter()
        .filter(|(_, perm)| perm.is_any())
        .map(|(id, _)| *id)
        .collect();
    ids.extend(p.local_aliases.items().iter().filter_map(|(_, _, t)| *t));
    let mut buckets = vec![];
    for id in ids {
        let Some(b) = g
            .bucket_table
            .get(&EmptyKey, &id)
            .await?
            .filter(|b| !b.state.is_deleted())
        else {
            continue;
        };
        let local_aliases = b
            .local_aliases()
            .into_iter()
            .filter(|(key, _)| *key == k.key_id)
            .map(|(_, a)| a)
            .collect();
        buckets.push(KeyBucketResp {
            id: id.to_hex(),
            global_aliases: b.global_aliases(),
            local_aliases,
            permissions: k.bucket_permissions(&id).into(),
        });
    }
    ok_json(&KeyInfoResp {
        name: p.name.get().clone(),
        access_key_id: k.key_id.clone(),
        secret_access_key: show_secret.then(|| p.secret_key.clone()),
        permissions: KeyPerm {
            create_bucket: *p.allow_create_bucket.get(),
        },
        buckets,
    })
}

/// `GET /v1/key`: every live key.
pub async fn handle_list_keys(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    let keys: Vec<KeyListItem> = ctx
        .garage
        .list_keys(false)
        .await?
        .into_iter()
        .map(|k| KeyListItem {
            name: k.name(),
            id: k.key_id,
        })
        .collect();
    ok_json(&keys)
}

/// `GET /v1/key?id=|search=[&showSecretKey=true]`.
pub async fn handle_get_key_info(
    ctx: &AdminCtx,
    key: KeySelector,
    show_secret: bool,
) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let k = match key {
        KeySelector::Id(id) => existing_key(g, &id).await?,
        KeySelector::Search(pattern) => g.find_key(&pattern).await?,
    };
    key_info(g, &k, show_secret).await
}

#[derive(Default, Deserialize)]
struct CreateKeyReq {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /v1/key` with `{name}` (default "Unnamed key"); the answer shows
/// the secret.
pub async fn handle_create_key(
    ctx: &AdminCtx,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let req: CreateKeyReq = parse_body_or_default(body)?;
    let name = req.name.unwrap_or_else(|| "Unnamed key".into());
    let k = ctx.garage.create_key(&name).await?;
    tracing::info!(key = %k.key_id, "admin API created a key");
    key_info(&ctx.garage, &k, true).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportKeyReq {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /v1/key/import`: refused (409) if the id exists or ever existed.
pub async fn handle_import_key(
    ctx: &AdminCtx,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let req: ImportKeyReq = parse_body(body)?;
    let g = &ctx.garage;
    if g.key_table
        .get(&EmptyKey, &req.access_key_id)
        .await?
        .is_some()
    {
        return Err(AdminError::KeyAlreadyExists(format!(
            "{} exists or existed in this cluster: it cannot be imported",
            req.access_key_id
        )));
    }
    let name = req.name.unwrap_or_else(|| "Imported key".into());
    let k = g
        .import_key(&req.access_key_id, &req.secret_access_key, &name)
        .await?;
    tracing::info!(key = %k.key_id, "admin API imported a key");
    key_info(g, &k, true).await
}

#[derive(Default, Deserialize)]
struct UpdateKeyReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    allow: Option<KeyPerm>,
    #[serde(default)]
    deny: Option<KeyPerm>,
}

/// `POST /v1/key?id=` with `{name?, allow?: {createBucket}, deny?: {createBucket}}`.
pub async fn handle_update_key(
    ctx: &AdminCtx,
    id: &str,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let req: UpdateKeyReq = parse_body_or_default(body)?;
    let g = &ctx.garage;
    let allow = req.allow.is_some_and(|p| p.create_bucket);
    let deny = req.deny.is_some_and(|p| p.create_bucket);
    if allow && deny {
        return Err(AdminError::BadRequest(
            "createBucket cannot be both allowed and denied".into(),
        ));
    }
    let mut k = existing_key(g, id).await?;
    // The id is exact and live, so the helpers' lookups find this key.
    if let Some(name) = &req.name {
        k = g.rename_key(&k.key_id, name).await?;
    }
    if allow || deny {
        k = g.set_key_create_bucket(&k.key_id, allow).await?;
    }
    key_info(g, &k, false).await
}

/// `DELETE /v1/key?id=`: its permissions and local aliases go with it.
pub async fn handle_delete_key(ctx: &AdminCtx, id: &str) -> Result<Response<ResBody>, AdminError> {
    let k = existing_key(&ctx.garage, id).await?;
    ctx.garage.delete_key(&k.key_id).await?;
    tracing::info!(key = %k.key_id, "admin API deleted a key");
    Ok(no_content())
}
