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
    ///
    /// netapp binds the address itself and unwraps the result: a port
    /// taken between our check and its bind would panic inside its listener
    /// (and the binary's panic hook aborts on panics). The listener is run
    /// under [`contained`], so such a panic comes back here as an error:
    /// the bind is retried for [`LISTEN_RETRY`], then reported.
    pub async fn run(
        self: Arc<Self>,
        bind: SocketAddr,
        public_ip: Option<std::net::IpAddr>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), std::io::Error> {
        let peering = self.peering.clone().map(|p| {
            let stop = stop.clone();
            tokio::spawn(async move { p.run(stop).await })
        });
        let deadline = tokio::time::Instant::now() + LISTEN_RETRY;
        let result = loop {
            let listen = self.netapp.clone().listen(bind, public_ip, stop.clone());
            match contained(listen).await {
                Ok(()) => break Ok(()),
                Err(msg) if *stop.borrow() => break Err(listen_error(bind, &msg)),
                Err(msg) if tokio::time::Instant::now() >= deadline => {
                    break Err(listen_error(bind, &msg))
                }
                Err(msg) => {
                    tracing::warn!(addr = %bind, error = %msg, "RPC listener failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => (),
                        _ = stop.changed() => (),
                    }
                }
            }
        };
        if let Some(p) = peering {
            if result.is_err() {
                p.abort();
            }
            let _ = p.await;
        }
        result
    }
}

/// How long a failing RPC listener is retried before the node gives up.
pub const LISTEN_RETRY: Duration = Duration::from_secs(5);

fn listen_error(bind: SocketAddr, msg: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("cannot listen for RPC on {bind}: {msg}"),
    )
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is polling a [`contained`] future: a panic
/// raised there is turned into an error by its caller, so a panic hook
/// that aborts the process should let it unwind instead.
pub fn panic_is_contained() -> bool {
    CONTAINED.with(|c| c.get())
}

/// Runs `fut`, turning a panic inside it into `Err(message)`.
pub async fn contained<F: std::future::Future<Output = ()>>(fut: F) -> Result<(), String> {
    use futures::FutureExt;
    let guarded = Contained {
        inner: Box::pin(fut),
    };
    std::panic::AssertUnwindSafe(guarded)
        .catch_unwind()
        .await
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        })
}

struct Contained<F> {
    inner: std::pin::Pin<Box<F>>,
}

/// Resets the thread's flag when a poll ends, by return or by unwinding.
struct ContainGuard(bool);

impl Drop for ContainGuard {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(self.0));
    }
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Contained<F> {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let _guard = ContainGuard(CONTAINED.with(|c| c.replace(true)));
        self.inner.as_mut().poll(cx)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_contained_future_is_an_error() {
        assert!(!panic_is_contained());
        let r = contained(async {
            assert!(panic_is_contained());
            tokio::task::yield_now().await;
            panic!("listener broke");
        })
        .await;
        assert_eq!(r, Err("listener broke".to_string()));
        assert!(!panic_is_contained(), "the flag is reset after unwinding");
        assert_eq!(contained(async {}).await, Ok(()));
    }

    #[tokio::test]
    async fn a_taken_rpc_port_is_an_error_not_an_abort() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("tmp");
        let key = crate::node_key::read_or_create(dir.path()).expect("key");
        let t = NetappTransport::new_node(&[7; 32], &key, vec![], None);
        let (_stop_tx, stop) = watch::channel(false);
        let started = std::time::Instant::now();
        let err = t.run(addr, None, stop).await.expect_err("port is taken");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(
            started.elapsed() >= LISTEN_RETRY,
            "retried before giving up"
        );
    }
}
