//! The K2V HTTP API: routing, authentication, and the handlers.
//!
//! Layout: [`router`] turns a request into an [`router::Endpoint`]; this
//! module checks the signature and the permission, resolves the bucket and
//! dispatches to the handlers: [`item`] (one item), [`batch`], [`index`]
//! (ReadIndex) and [`poll_range`]. The handlers share [`ReqCtx`] and the
//! range semantics of [`range`], and never import this module. Among
//! themselves they import one way only: `batch` uses `item`, and
//! `poll_range` uses `batch` (its answer items) and `item`. The request
//! metrics (`crate::metrics`) count and time every request whose endpoint
//! was recognised.

pub mod batch;
mod ctx;
pub mod index;
pub mod item;
pub mod poll_range;
pub mod range;
pub mod router;

pub use ctx::ReqCtx;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use tracing::Instrument;

use garage_model::garage::Garage;
use garage_model::key_table::Key;
use garage_table::EmptyKey;
use garage_util::data::Uuid;

use crate::error::ApiError;
use crate::http::{error_response, read_body_with_timeout, ResBody};
use crate::metrics::{ApiMetrics, K2V};
use crate::signature::{check_body, parse_request, verify, SigningKeyCache};
use router::{parse_path, parse_query, Authorization, Endpoint};

/// Shared state of the K2V API server.
pub struct K2VApiServer {
    /// The node.
    pub garage: Arc<Garage>,
    /// The SigV4 region.
    pub region: String,
    /// Largest accepted body.
    pub max_body_size: u64,
    /// Longest stall of a request body.
    pub body_read_timeout: Duration,
    signing_keys: SigningKeyCache,
    key_cache: Mutex<HashMap<String, KeyCacheEntry>>,
    bucket_cache: Mutex<HashMap<String, BucketCacheEntry>>,
    metrics: ApiMetrics,
}

/// Key table generation and the live key it had.
type KeyCacheEntry = (u64, Option<Arc<Key>>);

/// Table generations (aliases, buckets) and the bucket a name resolved to.
type BucketCacheEntry = ((u64, u64), Option<Uuid>);

/// Entries kept in each lookup cache before it is emptied.
const CACHE_MAX: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl K2VApiServer {
    /// A server for `garage`.
    pub fn new(
        garage: Arc<Garage>,
        region: String,
        max_body_size: u64,
        body_read_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            garage,
            region,
            max_body_size,
            body_read_timeout,
            signing_keys: SigningKeyCache::new(),
            key_cache: Mutex::new(HashMap::new()),
            bucket_cache: Mutex::new(HashMap::new()),
            metrics: ApiMetrics::new(garage_util::metrics::global(), &K2V),
        })
    }

    /// Handles one request, mapping every error to its JSON answer.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResBody> {
        let path = req.uri().path().to_string();
        let span = tracing::debug_span!("k2v", method = %req.method(), path = %path);
        let started = Instant::now();
        let mut endpoint = None;
        let res = self.handle_inner(req, &mut endpoint).instrument(span).await;
        if let Some(name) = endpoint {
            let error = res.as_ref().err().map(ApiError::status);
            self.metrics.record(name, started.elapsed(), error);
        }
        match res {
            Ok(r) => r,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(error = %e, path = %path, "K2V request failed");
                } else {
                    tracing::debug!(error = %e, path = %path, "K2V request refused");
                }
                error_response(&e, &self.region, &path)
            }
        }
    }

    /// Serves one request; sets `name` once the endpoint is known (for the
    /// metrics: requests refused before that are not counted).
    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        name: &mut Option<&'static str>,
    ) -> Result<Response<ResBody>, ApiError> {
        let (bucket_name, pk) = parse_path(req.uri().path())?;
        let query = parse_query(req.uri().query())?;
        let endpoint = Endpoint::parse(req.method(), pk, &query)?;
        *name = Some(endpoint.name());
        if endpoint == Endpoint::Options {
            return self.handle_options(&bucket_name, &req).await;
        }

        let now = self.garage.clock.now_ms();
        let auth = parse_request(
            req.method(),
            req.uri(),
            req.headers(),
            &self.region,
            "k2v",
            now,
        )?
        .ok_or_else(|| ApiError::Forbidden("the request is not signed".into()))?;
        let key = self
            .cached_key(auth.key_id())?
            .ok_or_else(|| ApiError::Forbidden(format!("no such key: {}", auth.key_id())))?;
        let secret = key
            .params()
            .map(|p| p.secret_key.clone())
            .unwrap_or_default();
        verify(&auth, &secret, &self.signing_keys)?;

        let bucket_id = self.resolve_bucket(&bucket_name, &key).await?;
        let perm = key.bucket_permissions(&bucket_id);
        let allowed = match endpoint.authorization() {
            Authorization::None => true,
            Authorization::Read => perm.allow_read,
            Authorization::Write => perm.allow_write,
        };
        if !allowed {
            return Err(ApiError::Forbidden(format!(
                "key {} may not {} bucket {bucket_name}",
                key.key_id,
                if endpoint.authorization() == Authorization::Read {
                    "read"
                } else {
                    "write"
                }
            )));
        }

        let (parts, body) = req.into_parts();
        let body = read_body_with_timeout(
            &parts.headers,
            body,
            self.max_body_size,
            self.body_read_timeout,
        )
        .await?;
        check_body(auth.payload_hash(), &body)?;

        let ctx = ReqCtx {
            garage: self.garage.clone(),
            bucket_id,
            key,
            headers: parts.headers,
            body,
        };
        tracing::debug!(endpoint = endpoint.name(), bucket = %bucket_name, "K2V request");
        match endpoint {
            Endpoint::Options => Err(ApiError::Internal("unreachable options".into())),
            Endpoint::ReadItem {
                partition_key,
                sort_key,
            } => item::handle_read_item(ctx, partition_key, sort_key).await,
            Endpoint::PollItem {
                partition_key,
                sort_key,
                causality_token,
                timeout,
            } => {
                item::handle_poll_item(ctx, partition_key, sort_key, causality_token, timeout).await
            }
            Endpoint::InsertItem {
                partition_key,
                sort_key,
            } => item::handle_insert_item(ctx, partition_key, sort_key).await,
            Endpoint::DeleteItem {
                partition_key,
                sort_key,
            } => item::handle_delete_item(ctx, partition_key, sort_key).await,
            Endpoint::ReadIndex {
                prefix,
                start,
                end,
                limit,
                reverse,
            } => index::handle_read_index(ctx, prefix, start, end, limit, reverse).await,
            Endpoint::InsertBatch => batch::handle_insert_batch(ctx).await,
            Endpoint::ReadBatch => batch::handle_read_batch(ctx).await,
            Endpoint::DeleteBatch => batch::handle_delete_batch(ctx).await,
            Endpoint::PollRange { partition_key } => {
                poll_range::handle_poll_range(ctx, partition_key).await
            }
        }
    }

    /// The live key `key_id`, from a cache refreshed whenever the key table
    /// changes (its generation moves after every committed change).
    fn cached_key(&self, key_id: &str) -> Result<Option<Arc<Key>>, ApiError> {
        let gen = self.garage.key_table.generation();
        if let Some((g, k)) = lock(&self.key_cache).get(key_id) {
            if *g == gen {
                return Ok(k.clone());
            }
        }
        let k = self
            .garage
            .key_table
            .get_local(&EmptyKey, &key_id.to_string())?
            .filter(|k| !k.state.is_deleted())
            .map(Arc::new);
        let mut cache = lock(&self.key_cache);
        if cache.len() > CACHE_MAX {
            cache.clear();
        }
        cache.insert(key_id.to_string(), (gen, k.clone()));
        Ok(k)
    }

    async fn resolve_bucket(&self, name: &str, key: &Key) -> Result<Uuid, ApiError> {
        let g = &self.garage;
        if let Some(id) = key
            .params()
            .and_then(|p| p.local_aliases.get(&name.to_string()).cloned().flatten())
        {
            return Ok(id);
        }
        let generation = (
            g.bucket_alias_table.generation(),
            g.bucket_table.generation(),
        );
        if let Some((gen, id)) = lock(&self.bucket_cache).get(name) {
            if *gen == generation {
                return id.ok_or_else(|| ApiError::NoSuchBucket(name.to_string()));
            }
        }
        let alias = g
            .bucket_alias_table
            .get_local(&EmptyKey, &name.to_string())?;
        let id = match alias.and_then(|a| a.bucket()) {
            Some(id) => match g.bucket_table.get_local(&EmptyKey, &id)? {
                Some(b) if !b.state.is_deleted() => Some(id),
                _ => None,
            },
            None => None,
        };
        let mut cache = lock(&self.bucket_cache);
        if cache.len() > CACHE_MAX {
            cache.clear();
        }
        cache.insert(name.to_string(), (generation, id));
        id.ok_or_else(|| ApiError::NoSuchBucket(name.to_string()))
    }

    async fn handle_options<B>(
        &self,
        bucket: &str,
        req: &Request<B>,
    ) -> Result<Response<ResBody>, ApiError> {
        let exists = self
            .garage
            .bucket_alias_table
            .get_local(&EmptyKey, &bucket.to_string())?
            .and_then(|a| a.bucket())
            .is_some();
        let mut r = crate::http::empty(StatusCode::OK);
        let h = r.headers_mut();
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        if exists {
            h.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET, PUT, POST, DELETE, SEARCH, OPTIONS"),
            );
            let allow_headers = req
                .headers()
                .get("access-control-request-headers")
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("*"));
            h.insert("access-control-allow-headers", allow_headers);
            h.insert(
                "access-control-expose-headers",
                HeaderValue::from_static("x-garage-causality-token"),
            );
        } else {
            h.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET, OPTIONS"),
            );
        }
        Ok(r)
    }
}
