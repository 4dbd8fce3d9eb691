//! [`ReqCtx`]: what the K2V server hands each handler. It lives below both,
//! so the handlers never import from the module that dispatches to them.

use std::sync::Arc;

use bytes::Bytes;

use garage_model::garage::Garage;
use garage_model::key_table::Key;
use garage_util::data::Uuid;

/// What a handler gets besides the body.
pub struct ReqCtx {
    /// The node.
    pub garage: Arc<Garage>,
    /// The bucket.
    pub bucket_id: Uuid,
    /// The authenticated key.
    pub key: Arc<Key>,
    /// Request headers.
    pub headers: hyper::HeaderMap,
    /// The body (empty for GET).
    pub body: Bytes,
}
