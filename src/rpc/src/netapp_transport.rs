//! The production transport: netapp 0.10, a full mesh of authenticated,
//! encrypted connections keyed by ed25519 node ids and a shared network
//! secret. All our messages travel through one netapp endpoint carrying a
//! path and an opaque body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use netapp::endpoint::{Endpoint as NaEndpoint, EndpointHandler};
use netapp::message::Message;
use netapp::peering::fullmesh::FullMeshPeeringStrategy;
use netapp::{NetApp, NetworkKey, NodeID};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use garage_util::data::Uuid;

use crate::error::RpcError;
use crate::net::{HandlerRegistry, PeerState, Transport};
use crate::node_key::NodeSecret;

/// Version tag of our protocol, checked at handshake.
const APP_VERSION_TAG: u64 = 0x6b32_7673_0001_0000;
const PATH: &str = "k2v/rpc";

#[derive(Serialize, Deserialize)]
struct Envelope {
    path: String,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct EnvelopeResp(Result<serde_bytes::ByteBuf, String>);

impl Message for Envelope {
    type Response = EnvelopeResp;
}

fn to_uuid(id: &NodeID) -> Uuid {
    Uuid::try_from_slice(id.as_ref()).unwrap_or_default()
}

fn to_node_id(id: &Uuid) -> Option<NodeID> {
    NodeID::from_slice(id.as_slice())
}

/// The netapp-backed transport.
pub struct NetappTransport {
    netapp: Arc<NetApp>,
    endpoint: Arc<NaEndpoint<Envelope, Dispatcher>>,
    peering: Option<Arc<FullMeshPeeringStrategy>>,
    dispatcher: Arc<Dispatcher>,
}

struct Dispatcher {
    registry: HandlerRegistry,
}

#[async_trait]
impl EndpointHandler<Envelope> for Dispatcher {
    async fn handle(self: &Arc<Self>, m: &Envelope, from: NodeID) -> EnvelopeResp {
        let r = self
            .registry
            .dispatch(to_uuid(&from), &m.path, &m.body)
            .await;
        EnvelopeResp(r.map(serde_bytes::ByteBuf::from))
    }
}

/// Builds the 32-byte network key from the shared secret.
pub fn network_key(secret: &[u8; 32]) -> NetworkKey {
    sodiumoxide::crypto::auth::Key(*secret)
}

impl NetappTransport {
    /// A node that will listen and peer with `bootstrap` nodes.
    pub fn new_node(
        secret: &[u8; 32],
        key: &NodeSecret,
        bootstrap: Vec<(Uuid, SocketAddr)>,
        public_addr: Option<SocketAddr>,
    ) -> Arc<Self> {
        let netapp = NetApp::new(APP_VERSION_TAG, network_key(secret), key.0.clone());
        let bootstrap = bootstrap
            .into_iter()
            .filter_map(|(id, a)| to_node_id(&id).map(|n| (n, a)))
            .collect();
        let peering = FullMeshPeeringStrategy::new(netapp.clone(), bootstrap, public_addr);
        Self::build(netapp, Some(peering))
    }

    /// A passive client (the CLI), with a throwaway key.
    pub fn new_client(secret: &[u8; 32]) -> Arc<Self> {
        let (_pk, sk) = sodiumoxide::crypto::sign::ed25519::gen_keypair();
        let netapp = NetApp::new(APP_VERSION_TAG, network_key(secret), sk);
        Self::build(netapp, None)
    }

    fn build(netapp: Arc<NetApp>, peering: Option<Arc<FullMeshPeeringStrategy>>) -> Arc<Self> {
        let dispatcher = Arc::new(Dispatcher {
            registry: HandlerRegistry::default(),
        });
        let endpoint = netapp.endpoint::<Envelope, Dispatcher>(PATH.into());
        endpoint.set_handler(dispatcher.clone());
        Arc::new(Self {
            netapp,
            endpoint,
            peering,
            dispatcher,
        })
    }

    /// Listens on `bind` and runs the peering loop until `stop` fires.
    /// The address is bound first so a busy port is a clear error.
    pub async fn run(
        self: Arc<Self>,
        bind: SocketAddr,
        public_ip: Option<std::net::IpAddr>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), std::io::Error> {
        drop(std::net::TcpListener::bind(bind)?);
        let listen = self.netapp.clone().listen(bind, public_ip, stop.clone());
        match &self.peering {
            Some(p) => {
                let peering = p.clone().run(stop);
                futures::join!(listen, peering);
            }
            None => listen.await,
        }
        Ok(())
    }
}

#[async_trait]
impl Transport for NetappTransport {
    fn local_id(&self) -> Uuid {
        to_uuid(&self.netapp.id)
    }

    async fn call_raw(
        &self,
        to: Uuid,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if to == self.local_id() {
            return self
                .dispatcher
                .registry
                .dispatch(to, path, &body)
                .await
                .map_err(|message| RpcError::Remote { message });
        }
        let node = to_node_id(&to).ok_or(RpcError::NotConnected { node: to })?;
        let env = Envelope {
            path: path.to_string(),
            body,
        };
        let fut = self.endpoint.call(&node, env, netapp::message::PRIO_NORMAL);
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(RpcError::Timeout { node: to }),
            Ok(Err(e)) => {
                let message = e.to_string();
                if message.starts_with("Not connected") {
                    Err(RpcError::NotConnected { node: to })
                } else {
                    Err(RpcError::Network { node: to, message })
                }
            }
            Ok(Ok(EnvelopeResp(Ok(b)))) => Ok(b.into_vec()),
            Ok(Ok(EnvelopeResp(Err(message)))) => Err(RpcError::Remote { message }),
        }
    }

    fn handlers(&self) -> &HandlerRegistry {
        &self.dispatcher.registry
    }

    fn peers(&self) -> Vec<PeerState> {
        let Some(p) = &self.peering else {
            return vec![];
        };
        p.get_peer_list()
            .iter()
            .map(|pi| PeerState {
                id: to_uuid(&pi.id),
                addr: Some(pi.addr),
                is_up: pi.is_up(),
                last_seen_secs: pi.last_seen.map(|t| t.elapsed().as_secs()),
                avg_ping: pi.avg_ping,
            })
            .collect()
    }

    async fn connect(&self, id: Uuid, addr: SocketAddr) -> Result<(), RpcError> {
        let node = to_node_id(&id).ok_or(RpcError::NotConnected { node: id })?;
        self.netapp
            .clone()
            .try_connect(addr, node)
            .await
            .map_err(|e| RpcError::Network {
                node: id,
                message: e.to_string(),
            })
    }
}
