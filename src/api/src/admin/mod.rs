//! The admin HTTP API (Garage's v1, spec/cluster.md §4.4).
//!
//! Layout: [`router`] turns method, path and query into an
//! [`router::Endpoint`]; [`auth`] checks its bearer token; this module reads
//! the body and dispatches to the handlers: [`health`] (`/health`,
//! `/v1/health`), [`cluster`] (status, connect), [`layout`], [`key`] and
//! [`bucket`]. Handlers share [`ctx`] (the node, JSON helpers) and
//! [`error`], and never import this module; among themselves `cluster`
//! uses `layout`'s role type and `bucket` uses `key`'s lookup.
//!
//! `/health`, `/check` and `OPTIONS` (CORS preflight) need no token; every
//! answer carries `Access-Control-Allow-Origin: *`. Every `/v1/` endpoint needs the
//! admin token and is refused while none is configured. `/metrics`
//! ([`metrics`]) needs the metrics token when one is configured, and is
//! open otherwise.

mod auth;
mod bucket;
mod cluster;
mod ctx;
mod error;
mod health;
mod key;
mod layout;
mod metrics;
mod router;

pub use auth::AdminTokens;
pub use ctx::BuildInfo;
pub use health::{cluster_health, ClusterHealth, HealthStatus};

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW,
};
use hyper::{Request, Response};
use tracing::Instrument;

use garage_model::garage::Garage;

use crate::http::{read_body, ResBody};
use ctx::{no_content, AdminCtx};
use error::AdminError;
use router::Endpoint;

/// Largest accepted admin request body (they are small JSON documents).
const MAX_BODY: u64 = 1 << 20;

/// The methods the admin API answers to, for CORS preflights.
const CORS_METHODS: &str = "OPTIONS, GET, POST, PUT, DELETE";

/// The admin API server of one node.
pub struct AdminApiServer {
    ctx: AdminCtx,
    tokens: AdminTokens,
}

impl AdminApiServer {
    /// A server for `garage` with the resolved tokens and build info.
    pub fn new(garage: Arc<Garage>, tokens: AdminTokens, build: BuildInfo) -> Arc<Self> {
        if !tokens.admin_enabled() {
            tracing::info!("no admin token configured: the admin API v1 is disabled");
        }
        Arc::new(Self {
            ctx: AdminCtx { garage, build },
            tokens,
        })
    }

    /// Handles one request, mapping every error to its JSON answer.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResBody> {
        let path = req.uri().path().to_string();
        let span = tracing::debug_span!("admin", method = %req.method(), path = %path);
        let mut resp = match self.handle_inner(req).instrument(span).await {
            Ok(r) => r,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(error = %e, path = %path, "admin request failed");
                } else {
                    tracing::debug!(error = %e, path = %path, "admin request refused");
                }
                e.response(&self.ctx.garage.config.s3_api.s3_region, &path)
            }
        };
        // As Garage: browser front-ends may call the admin API directly.
        resp.headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        resp
    }

    async fn handle_inner(&self, req: Request<Incoming>) -> Result<Response<ResBody>, AdminError> {
        let endpoint = Endpoint::parse(req.method(), req.uri().path(), req.uri().query())?;
        self.tokens.check(endpoint.authorization(), req.headers())?;
        let body = if endpoint.has_body() {
            let (parts, body) = req.into_parts();
            read_body(&parts.headers, body, MAX_BODY).await?
        } else {
            Bytes::new()
        };
        tracing::debug!(endpoint = endpoint.name(), "admin request");
        let ctx = &self.ctx;
        match endpoint {
            Endpoint::Options => {
                let mut r = no_content();
                let h = r.headers_mut();
                h.insert(ALLOW, HeaderValue::from_static(CORS_METHODS));
                h.insert(
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(CORS_METHODS),
                );
                h.insert(
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                );
                Ok(r)
            }
            Endpoint::Health => Ok(health::handle_health(&ctx.garage)),
            Endpoint::Metrics => metrics::handle_metrics(ctx).await,
            Endpoint::GetClusterHealth => health::handle_get_cluster_health(ctx),
            Endpoint::GetClusterStatus => cluster::handle_get_cluster_status(ctx),
            Endpoint::ConnectClusterNodes => {
                cluster::handle_connect_cluster_nodes(ctx, &body).await
            }
            Endpoint::GetClusterLayout => layout::handle_get_cluster_layout(ctx),
            Endpoint::UpdateClusterLayout => layout::handle_update_cluster_layout(ctx, &body).await,
            Endpoint::ApplyClusterLayout => layout::handle_apply_cluster_layout(ctx, &body).await,
            Endpoint::RevertClusterLayout => layout::handle_revert_cluster_layout(ctx).await,
            Endpoint::ListKeys => key::handle_list_keys(ctx).await,
            Endpoint::GetKeyInfo { key, show_secret } => {
                key::handle_get_key_info(ctx, key, show_secret).await
            }
            Endpoint::CreateKey => key::handle_create_key(ctx, &body).await,
            Endpoint::ImportKey => key::handle_import_key(ctx, &body).await,
            Endpoint::UpdateKey { id } => key::handle_update_key(ctx, &id, &body).await,
            Endpoint::DeleteKey { id } => key::handle_delete_key(ctx, &id).await,
            Endpoint::ListBuckets => bucket::handle_list_buckets(ctx).await,
            Endpoint::GetBucketInfo { bucket } => bucket::handle_get_bucket_info(ctx, bucket).await,
            Endpoint::CreateBucket => bucket::handle_create_bucket(ctx, &body).await,
            Endpoint::UpdateBucket { id } => bucket::handle_update_bucket(ctx, &id, &body).await,
            Endpoint::DeleteBucket { id } => bucket::handle_delete_bucket(ctx, &id).await,
            Endpoint::BucketAllowKey => {
                bucket::handle_bucket_change_key_perm(ctx, &body, true).await
            }
            Endpoint::BucketDenyKey => {
                bucket::handle_bucket_change_key_perm(ctx, &body, false).await
            }
            Endpoint::GlobalAliasBucket { id, alias } => {
                bucket::handle_global_alias(ctx, &id, &alias).await
            }
            Endpoint::GlobalUnaliasBucket { id, alias } => {
                bucket::handle_global_unalias(ctx, &id, &alias).await
            }
            Endpoint::LocalAliasBucket {
                id,
                access_key_id,
                alias,
            } => bucket::handle_local_alias(ctx, &id, &access_key_id, &alias).await,
            Endpoint::LocalUnaliasBucket {
                id,
                access_key_id,
                alias,
            } => bucket::handle_local_unalias(ctx, &id, &access_key_id, &alias).await,
        }
    }
}
