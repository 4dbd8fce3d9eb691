//! An in-process transport: several nodes in one process, no sockets.
//! Links can be cut to simulate partitions and crashed nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use garage_util::data::Uuid;

use crate::error::RpcError;
use crate::net::{HandlerRegistry, PeerState, Transport};

/// The shared "network" of in-memory nodes.
#[derive(Default)]
pub struct MemoryNetwork {
    nodes: Mutex<BTreeMap<Uuid, Arc<MemoryTransport>>>,
    down: Mutex<BTreeSet<Uuid>>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Adds a node.
    pub fn add_node(self: &Arc<Self>, id: Uuid) -> Arc<MemoryTransport> {
        let t = Arc::new(MemoryTransport {
            id,
            net: self.clone(),
            registry: HandlerRegistry::default(),
        });
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, t.clone());
        t
    }
    /// Makes a node unreachable (or reachable again).
    pub fn set_down(&self, id: Uuid, down: bool) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            d.insert(id);
        } else {
            d.remove(&id);
        }
    }
    fn is_down(&self, id: &Uuid) -> bool {
        self.down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }
    fn get(&self, id: &Uuid) -> Option<Arc<MemoryTransport>> {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// One node's view of a [`MemoryNetwork`].
pub struct MemoryTransport {
    id: Uuid,
    net: Arc<MemoryNetwork>,
    registry: HandlerRegistry,
}

#[async_trait]
impl Transport for MemoryTransport {
    fn local_id(&self) -> Uuid {
        self.id
    }

    async fn call_raw(
        &self,
        to: Uuid,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if to != self.id && (self.net.is_down(&to) || self.net.is_down(&self.id)) {
            return Err(RpcError::NotConnected { node: to });
        }
        let peer = self
            .net
            .get(&to)
            .ok_or(RpcError::NotConnected { node: to })?;
        let from = self.id;
        let fut = async move { peer.registry.dispatch(from, path, &body).await };
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(RpcError::Timeout { node: to }),
            Ok(r) => r.map_err(|message| RpcError::Remote { message }),
        }
    }

    fn handlers(&self) -> &HandlerRegistry {
        &self.registry
    }

    fn peers(&self) -> Vec<PeerState> {
        let ids: Vec<Uuid> = self
            .net
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        ids.into_iter()
            .map(|id| PeerState {
                id,
                addr: None,
                is_up: !self.net.is_down(&id),
                last_seen_secs: Some(0),
                avg_ping: None,
            })
            .collect()
    }

    async fn connect(&self, id: Uuid, _addr: SocketAddr) -> Result<(), RpcError> {
        match self.net.get(&id) {
            Some(_) => Ok(()),
            None => Err(RpcError::NotConnected { node: id }),
        }
    }
}
