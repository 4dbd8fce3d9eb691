//! [`ReqCtx`]: what the S3 server hands each handler. It lives below both,
//! so the handlers never import the module that dispatches to them.

use std::sync::Arc;

use hyper::HeaderMap;

use garage_model::garage::Garage;
use garage_model::key_table::Key;
use garage_util::data::Uuid;

use super::body::BodyReader;
use super::router::Query;

/// What a handler gets.
pub struct ReqCtx {
    /// The node.
    pub garage: Arc<Garage>,
    /// The authenticated key.
    pub key: Arc<Key>,
    /// The bucket's id (None for service-level requests and CreateBucket).
    pub bucket_id: Option<Uuid>,
    /// The bucket name as requested.
    pub bucket_name: String,
    /// The region of this server.
    pub region: String,
    /// Size of data blocks.
    pub block_size: usize,
    /// Request headers.
    pub headers: HeaderMap,
    /// Decoded query parameters.
    pub query: Query,
    /// The body, checked against its signature as it is read.
    pub body: BodyReader,
}

impl ReqCtx {
    /// The bucket id of a bucket-level request.
    pub fn bucket(&self) -> Result<Uuid, super::error::S3Error> {
        self.bucket_id
            .ok_or_else(|| super::error::S3Error::NoSuchBucket(self.bucket_name.clone()))
    }

    /// A header as a string, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
