//! The transport seam: peers are reached only through [`Transport`].
//!
//! Messages are MessagePack-encoded by typed [`Endpoint`]s; a transport only
//! moves bytes between named handlers. A handler's error crosses the wire
//! as text and comes back as [`RpcError::Remote`].

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use garage_util::data::Uuid;

use crate::error::RpcError;
use crate::metrics::RpcMetrics;

/// A peer as the transport sees it.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// Its id.
    pub id: Uuid,
    /// Its address.
    pub addr: Option<std::net::SocketAddr>,
    /// Whether requests can be sent now.
    pub is_up: bool,
    /// Seconds since it was last seen, if ever.
    pub last_seen_secs: Option<u64>,
    /// Average ping, if known.
    pub avg_ping: Option<Duration>,
}

/// A raw request handler registered under a path.
#[async_trait]
pub trait RawHandler: Send + Sync {
    /// Handles one request; an `Err` is sent back as a remote error.
    async fn handle_raw(&self, from: Uuid, body: &[u8]) -> Result<Vec<u8>, String>;
}

/// Moves requests between nodes.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// This node's id.
    fn local_id(&self) -> Uuid;
    /// Sends `body` to the handler at `path` on node `to`.
    async fn call_raw(
        &self,
        to: Uuid,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError>;
    /// The registry of local handlers (shared by all endpoints).
    fn handlers(&self) -> &HandlerRegistry;
    /// Known peers and their state.
    fn peers(&self) -> Vec<PeerState>;
    /// Opens a connection to a peer.
    async fn connect(&self, id: Uuid, addr: std::net::SocketAddr) -> Result<(), RpcError>;
}

/// Local handlers by path.
#[derive(Default)]
pub struct HandlerRegistry {
    map: RwLock<HashMap<String, Arc<dyn RawHandler>>>,
}

impl HandlerRegistry {
    /// Registers (or replaces) the handler of `path`.
    pub fn set(&self, path: &str, h: Arc<dyn RawHandler>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), h);
    }
    /// The handler of `path`.
    pub fn get(&self, path: &str) -> Option<Arc<dyn RawHandler>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned()
    }
    /// Drops every handler (a stopped node: handlers hold the node's state,
    /// which holds the transport, which holds this registry).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
    /// A call a node makes to itself: no network, the handler's error as
    /// [`RpcError::Remote`] as if it had crossed the wire.
    pub async fn call_local(&self, me: Uuid, path: &str, body: &[u8]) -> Result<Vec<u8>, RpcError> {
        self.dispatch(me, path, body)
            .await
            .map_err(|message| RpcError::Remote { message })
    }

    /// Dispatches a request to the handler of `path`.
    pub async fn dispatch(&self, from: Uuid, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        match self.get(path) {
            Some(h) => h.handle_raw(from, body).await,
            None => Err(format!("no handler for {path}")),
        }
    }
}

/// A message type with its response type.
pub trait RpcMessage: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The response.
    type Response: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// The typed handler of one message type.
#[async_trait]
pub trait Handler<M: RpcMessage>: Send + Sync + 'static {
    /// Handles `msg` from node `from`.
    async fn handle(&self, msg: M, from: Uuid) -> Result<M::Response, String>;
}

struct TypedHandler<M, H> {
    handler: Arc<H>,
    _m: PhantomData<fn(M)>,
}

#[async_trait]
impl<M: RpcMessage, H: Handler<M>> RawHandler for TypedHandler<M, H> {
    async fn handle_raw(&self, from: Uuid, body: &[u8]) -> Result<Vec<u8>, String> {
        let msg: M = rmp_serde::from_slice(body).map_err(|e| format!("bad request: {e}"))?;
        let resp = self.handler.handle(msg, from).await;
        rmp_serde::to_vec_named(&resp).map_err(|e| format!("cannot encode response: {e}"))
    }
}

/// A typed endpoint: a path plus the message type sent there.
pub struct Endpoint<M: RpcMessage> {
    transport: Arc<dyn Transport>,
    path: String,
    metrics: Arc<RpcMetrics>,
    _m: PhantomData<fn(M)>,
}

impl<M: RpcMessage> Clone for Endpoint<M> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            path: self.path.clone(),
            metrics: self.metrics.clone(),
            _m: PhantomData,
        }
    }
}

impl<M: RpcMessage> Endpoint<M> {
    /// An endpoint at `path` on `transport`.
    pub fn new(transport: Arc<dyn Transport>, path: &str) -> Self {
        Self {
            transport,
            path: path.to_string(),
            metrics: Arc::new(RpcMetrics::new(path)),
            _m: PhantomData,
        }
    }
    /// Registers the local handler.
    pub fn set_handler<H: Handler<M>>(&self, h: Arc<H>) {
        self.transport.handlers().set(
            &self.path,
            Arc::new(TypedHandler::<M, H> {
                handler: h,
                _m: PhantomData,
            }),
        );
    }
    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }
    /// Calls node `to` (counted and timed in the endpoint's metrics).
    pub async fn call(
        &self,
        to: Uuid,
        msg: &M,
        timeout: Duration,
    ) -> Result<M::Response, RpcError> {
        self.metrics.started();
        let started = Instant::now();
        let r = self.call_unmetered(to, msg, timeout).await;
        self.metrics.finished(started.elapsed(), r.as_ref().err());
        r
    }

    async fn call_unmetered(
        &self,
        to: Uuid,
        msg: &M,
        timeout: Duration,
    ) -> Result<M::Response, RpcError> {
        let body = rmp_serde::to_vec_named(msg).map_err(|e| RpcError::Encoding {
            message: e.to_string(),
        })?;
        let resp = self
            .transport
            .call_raw(to, &self.path, body, timeout)
            .await?;
        let resp: Result<M::Response, String> =
            rmp_serde::from_slice(&resp).map_err(|e| RpcError::Encoding {
                message: e.to_string(),
            })?;
        resp.map_err(|message| RpcError::Remote { message })
    }
}
