//! The S3 API: routing, authentication, and the handlers.
//!
//! Layout: [`router`] turns a request into an [`router::Endpoint`]; this
//! module checks the signature (SigV4 headers, presigned URLs, signed
//! aws-chunked bodies) and the key's permission on the bucket, resolves the
//! bucket and dispatches to the handlers: [`bucket`] (service and bucket
//! operations), [`put`] (PutObject and the block writer shared with
//! multipart and copy), [`get`] (GetObject, HeadObject), [`delete`],
//! [`copy`], [`list`] and [`multipart`]. Handlers share [`ReqCtx`],
//! [`body`] (streamed request bodies, the response body type), [`xml`] and
//! [`error`], and never import this module.

pub mod body;
pub mod bucket;
pub mod copy;
mod ctx;
pub mod delete;
pub mod error;
pub mod get;
pub mod list;
pub mod multipart;
pub mod put;
pub mod router;
pub mod xml;

pub use ctx::ReqCtx;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use garage_model::garage::Garage;
use garage_model::key_table::Key;
use garage_table::EmptyKey;
use garage_util::data::Uuid;

use crate::metrics::{ApiMetrics, S3};
use crate::signature::{parse_request, verify, PayloadHash, SigningKeyCache};
use body::{full, BodyReader, S3Body};
use error::S3Error;
use router::{parse_bucket_key, parse_query, Authorization, Endpoint};

/// Shared state of the S3 API server.
pub struct S3ApiServer {
    /// The node.
    pub garage: Arc<Garage>,
    /// The SigV4 region (`s3_region`).
    pub region: String,
    /// Virtual-hosted bucket domain (`root_domain`).
    pub root_domain: Option<String>,
    /// Data block size.
    pub block_size: usize,
    signing_keys: SigningKeyCache,
    metrics: ApiMetrics,
}

/// An XML response.
pub fn xml_response(status: StatusCode, body: String) -> Response<S3Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}

/// An empty response.
pub fn empty_response(status: StatusCode) -> Response<S3Body> {
    let mut r = Response::new(full(bytes::Bytes::new()));
    *r.status_mut() = status;
    r
}

impl S3ApiServer {
    /// A server for `garage`.
    pub fn new(
        garage: Arc<Garage>,
        region: String,
        root_domain: Option<String>,
        block_size: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            garage,
            region,
            root_domain,
            block_size,
            signing_keys: SigningKeyCache::new(),
            metrics: ApiMetrics::new(garage_util::metrics::global(), &S3),
        })
    }

    /// Handles one request, mapping every error to its XML answer.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<S3Body> {
        let path = req.uri().path().to_string();
        let is_head = req.method() == Method::HEAD;
        let span = tracing::debug_span!("s3", method = %req.method(), path = %path);
        let started = std::time::Instant::now();
        let mut endpoint = None;
        let res = self.handle_inner(req, &mut endpoint).instrument(span).await;
        if let Some(name) = endpoint {
            let error = res.as_ref().err().map(S3Error::status);
            self.metrics.record(name, started.elapsed(), error);
        }
        match res {
            Ok(r) => r,
            Err(e) => {
                if e.status().is_server_error() && !matches!(e, S3Error::NotImplemented(_)) {
                    tracing::warn!(error = %e, path = %path, "S3 request failed");
                } else {
                    tracing::debug!(error = %e, path = %path, "S3 request refused");
                }
                let mut r = if is_head || matches!(e, S3Error::NotModified) {
                    empty_response(e.status())
                } else {
                    let id = hex::encode(&self.garage.rng.bytes32()[..8]);
                    xml_response(e.status(), xml::error_body(&e, &path, &id))
                };
                *r.status_mut() = e.status();
                if let S3Error::InvalidRange { size } = e {
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                        r.headers_mut().insert("content-range", v);
                    }
                }
                r
            }
        }
    }

    /// Serves one request; sets `name` once the endpoint is known (for the
    /// metrics: requests refused before that are not counted). A streamed
    /// GetObject is counted when its headers are ready.
    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        name: &mut Option<&'static str>,
    ) -> Result<Response<S3Body>, S3Error> {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let (bucket_name, key) = parse_bucket_key(
            req.uri().path(),
            host.as_deref(),
            self.root_domain.as_deref(),
        )?;
        let query = parse_query(req.uri().query())?;
        let endpoint = Endpoint::parse(
            req.method(),
            bucket_name.as_deref(),
            key,
            &query,
            req.headers(),
        )?;
        *name = Some(endpoint.name());

        let now = self.garage.clock.now_ms();
        let auth = parse_request(
            req.method(),
            req.uri(),
            req.headers(),
            &self.region,
            "s3",
            now,
        )?
        .ok_or_else(|| S3Error::AccessDenied("anonymous requests are not accepted".into()))?;
        let api_key = self.live_key(auth.key_id())?.ok_or_else(|| {
            S3Error::AccessDenied(format!("no such access key: {}", auth.key_id()))
        })?;
        let secret = api_key
            .params()
            .map(|p| p.secret_key.clone())
            .unwrap_or_default();
        verify(&auth, &secret, &self.signing_keys)?;

        let bucket_name = bucket_name.unwrap_or_default();
        let bucket_id = match endpoint {
            Endpoint::ListBuckets | Endpoint::CreateBucket => None,
            _ => Some(self.resolve_bucket(&bucket_name, &api_key)?),
        };
        if let Some(id) = bucket_id {
            let perm = api_key.bucket_permissions(&id);
            let allowed = match endpoint.authorization() {
                Authorization::None => true,
                Authorization::Read => perm.allow_read,
                Authorization::Write => perm.allow_write,
                Authorization::Owner => perm.allow_owner,
            };
            if !allowed {
                return Err(S3Error::AccessDenied(format!(
                    "key {} may not do {} on bucket {bucket_name}",
                    api_key.key_id,
                    endpoint.name()
                )));
            }
        }

        let signer = match auth.payload_hash() {
            PayloadHash::StreamingSigned => Some(auth.chunk_verifier(&secret, &self.signing_keys)),
            _ => None,
        };
        let (parts, body) = req.into_parts();
        let decoded_length = match parts.headers.get("x-amz-decoded-content-length") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        S3Error::InvalidArgument("invalid x-amz-decoded-content-length".into())
                    })?,
            ),
        };
        let body = BodyReader::new(body, auth.payload_hash(), signer, decoded_length)?;
        let ctx = ReqCtx {
            garage: self.garage.clone(),
            key: api_key,
            bucket_id,
            bucket_name,
            region: self.region.clone(),
            block_size: self.block_size,
            headers: parts.headers,
            query,
            body,
        };
        tracing::debug!(endpoint = endpoint.name(), bucket = %ctx.bucket_name, "S3 request");
        match endpoint {
            Endpoint::ListBuckets => bucket::handle_list_buckets(ctx).await,
            Endpoint::CreateBucket => bucket::handle_create_bucket(ctx).await,
            Endpoint::DeleteBucket => bucket::handle_delete_bucket(ctx).await,
            Endpoint::HeadBucket => Ok(empty_response(StatusCode::OK)),
            Endpoint::GetBucketLocation => bucket::handle_get_bucket_location(ctx),
            Endpoint::GetBucketVersioning => bucket::handle_get_bucket_versioning(ctx),
            Endpoint::ListObjectsV2 => list::handle_list_objects(ctx, true).await,
            Endpoint::ListObjects => list::handle_list_objects(ctx, false).await,
            Endpoint::ListMultipartUploads => list::handle_list_multipart_uploads(ctx).await,
            Endpoint::DeleteObjects => delete::handle_delete_objects(ctx).await,
            Endpoint::GetObject { key } => get::handle_get_object(ctx, &key, false).await,
            Endpoint::HeadObject { key } => get::handle_get_object(ctx, &key, true).await,
            Endpoint::PutObject { key } => put::handle_put_object(ctx, &key).await,
            Endpoint::CopyObject { key } => copy::handle_copy_object(ctx, &key).await,
            Endpoint::DeleteObject { key } => delete::handle_delete_object(ctx, &key).await,
            Endpoint::CreateMultipartUpload { key } => {
                multipart::handle_create_multipart_upload(ctx, &key).await
            }
            Endpoint::UploadPart {
                key,
                part_number,
                upload_id,
            } => multipart::handle_upload_part(ctx, &key, part_number, &upload_id).await,
            Endpoint::UploadPartCopy {
                key,
                part_number,
                upload_id,
            } => copy::handle_upload_part_copy(ctx, &key, part_number, &upload_id).await,
            Endpoint::CompleteMultipartUpload { key, upload_id } => {
                multipart::handle_complete_multipart_upload(ctx, &key, &upload_id).await
            }
            Endpoint::AbortMultipartUpload { key, upload_id } => {
                multipart::handle_abort_multipart_upload(ctx, &key, &upload_id).await
            }
            Endpoint::ListParts { key, upload_id } => {
                list::handle_list_parts(ctx, &key, &upload_id).await
            }
        }
    }

    /// The live key `key_id` (local read of the full-copy key table).
    fn live_key(&self, key_id: &str) -> Result<Option<Arc<Key>>, S3Error> {
        Ok(self
            .garage
            .key_table
            .get_local(&EmptyKey, &key_id.to_string())?
            .filter(|k| !k.state.is_deleted())
            .map(Arc::new))
    }

    /// The bucket a name designates for `key`: its local alias, else the
    /// global alias.
    fn resolve_bucket(&self, name: &str, key: &Key) -> Result<Uuid, S3Error> {
        let g = &self.garage;
        let id = match key
            .params()
            .and_then(|p| p.local_aliases.get(&name.to_string()).cloned().flatten())
        {
            Some(id) => Some(id),
            None => g
                .bucket_alias_table
                .get_local(&EmptyKey, &name.to_string())?
                .and_then(|a| a.bucket()),
        };
        match id {
            Some(id) => match g.bucket_table.get_local(&EmptyKey, &id)? {
                Some(b) if !b.state.is_deleted() => Ok(id),
                _ => Err(S3Error::NoSuchBucket(name.to_string())),
            },
            None => Err(S3Error::NoSuchBucket(name.to_string())),
        }
    }
}
