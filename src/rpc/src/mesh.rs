//! The production transport: a full mesh of TCP connections between nodes,
//! authenticated and encrypted.
//!
//! - Authentication: the secret handshake of kuska-handshake. Both sides
//!   prove they hold the cluster's 32-byte network key, the caller proves
//!   its ed25519 node key and checks the callee's (the node id is the
//!   public key), so a node only talks to nodes of its cluster.
//! - Encryption: the box stream built from that handshake (4 KiB boxes,
//!   one key and nonce sequence per direction).
//! - Each node opens one connection to every peer it knows and sends its
//!   requests there; it answers requests on the connections peers opened to
//!   it. Requests are multiplexed on a connection by a 32-bit id, so many
//!   are in flight at once, and the writer sends every frame queued at the
//!   time in one write, with `TCP_NODELAY`: concurrent small messages to
//!   one peer share a system call and a packet, and none waits for an ACK.
//! - The listener is bound by the caller and handed to [`MeshTransport::run`]
//!   (bound once: no window in which another process can take the port).
//! - Peering: peers come from the bootstrap list, from `connect`, from peers
//!   that connect to us (with the address they announce), and from the peer
//!   lists peers exchange. Lost connections are retried with a backoff of
//!   1 s doubling to 10 s; every connection is pinged every 10 s (the
//!   average of the last pings orders replicas), and three failed pings in
//!   a row close it.
//!
//! Frames, inside the box stream, after an 8-byte version tag each way (and
//! the caller's announced address):
//! `u32 length | u8 kind | u32 id | payload`, the length counting the kind,
//! the id and the payload. A request's payload is `u16 path length | path |
//! body`; a response's is the body (kind 1) or an error message (kind 2).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use kuska_handshake::async_std::{handshake_client, handshake_server, BoxStream};
use sodiumoxide::crypto::auth;
use sodiumoxide::crypto::sign::ed25519;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use garage_util::data::Uuid;

use crate::error::RpcError;
use crate::net::{HandlerRegistry, PeerState, Transport};
use crate::node_key::NodeSecret;

/// Sent by both sides after the handshake: nodes of another protocol
/// version (or another program with the same key) are refused.
const VERSION_TAG: [u8; 8] = 0x6b32_7673_0002_0000u64.to_be_bytes();
/// Largest frame accepted (a block is 1 MiB; sync batches are smaller).
pub const MAX_FRAME: usize = 256 << 20;
/// Paths of the transport's own requests (not in the handler registry).
const PING_PATH: &str = "mesh/ping";
const PEERS_PATH: &str = "mesh/peers";

const KIND_REQUEST: u8 = 0;
const KIND_OK: u8 = 1;
const KIND_ERR: u8 = 2;

/// Timing of the mesh; [`MeshTiming::default`] in production.
#[derive(Debug, Clone, Copy)]
pub struct MeshTiming {
    /// Interval between two pings of a connected peer.
    pub ping_interval: Duration,
    /// Interval between two peer-list exchanges.
    pub peer_list_interval: Duration,
    /// Longest wait between two connection attempts to a known peer.
    pub max_backoff: Duration,
    /// Timeout of connecting and of the handshake.
    pub connect_timeout: Duration,
}

impl Default for MeshTiming {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(10),
            peer_list_interval: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

const FAILED_PINGS_TO_CLOSE: u32 = 3;
const PINGS_AVERAGED: usize = 10;
/// The writer gathers queued frames up to this many bytes per write.
const WRITE_BATCH: usize = 1 << 20;

/// Builds the network key from the shared 32-byte secret.
pub fn network_key(secret: &[u8; 32]) -> auth::Key {
    auth::Key(*secret)
}

fn pk_of(id: &Uuid) -> Option<ed25519::PublicKey> {
    ed25519::PublicKey::from_slice(id.as_slice())
}

fn id_of(pk: &ed25519::PublicKey) -> Uuid {
    Uuid::try_from_slice(pk.as_ref()).unwrap_or_default()
}

/// The mesh transport (see the module documentation).
pub struct MeshTransport {
    inner: Arc<Inner>,
}

struct Inner {
    netid: auth::Key,
    pk: ed25519::PublicKey,
    sk: ed25519::SecretKey,
    id: Uuid,
    /// The address we announce to peers we connect to (`None`: a client
    /// that does not listen). An unspecified IP is replaced by the IP the
    /// peer sees us connect from.
    announce: Option<SocketAddr>,
    timing: MeshTiming,
    registry: HandlerRegistry,
    peers: Mutex<HashMap<Uuid, Peer>>,
    epoch: std::time::Instant,
}

#[derive(Default)]
struct Peer {
    addr: Option<SocketAddr>,
    conn: Option<Arc<Conn>>,
    connecting: bool,
    failures: u32,
    next_try: Option<Instant>,
    pings: VecDeque<Duration>,
    failed_pings: u32,
    last_ping: Option<Instant>,
}

type Waiter = oneshot::Sender<Result<Vec<u8>, String>>;

/// One connection we opened (requests go out, answers come back).
struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    inflight: Mutex<HashMap<u32, Waiter>>,
    next_id: AtomicU32,
    /// Milliseconds since the transport's epoch of the last frame received.
    last_seen_ms: AtomicU64,
    closed: AtomicBool,
    close: watch::Sender<bool>,
}

impl Conn {
    fn shut(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.close.send(true);
        lock(&self.inflight).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn frame(kind: u8, id: u32, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = 5 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut f = Vec::with_capacity(4 + len);
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.push(kind);
    f.extend_from_slice(&id.to_be_bytes());
    for p in parts {
        f.extend_from_slice(p);
    }
    f
}

fn request_frame(id: u32, path: &str, body: &[u8]) -> Vec<u8> {
    let plen = (path.len() as u16).to_be_bytes();
    frame(KIND_REQUEST, id, &[&plen, path.as_bytes(), body])
}

fn io_invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads one frame: `(kind, id, payload)`; `None` at a clean end of stream.
async fn read_frame<R: futures::io::AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<(u8, u32, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => (),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(5..=MAX_FRAME).contains(&len) {
        return Err(io_invalid(format!("bad frame length {len}")));
    }
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await?;
    let mut payload = vec![0u8; len - 5];
    r.read_exact(&mut payload).await?;
    let id = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    Ok(Some((head[0], id, payload)))
}

/// Splits a request payload into path and body.
fn parse_request(payload: &[u8]) -> Result<(&str, &[u8]), String> {
    if payload.len() < 2 {
        return Err("truncated request".into());
    }
    let plen = u16::from_be_bytes([payload[0], payload[1]]) as usize;
    let path = payload
        .get(2..2 + plen)
        .ok_or_else(|| "truncated request path".to_string())?;
    let path = std::str::from_utf8(path).map_err(|_| "request path is not UTF-8".to_string())?;
    Ok((path, &payload[2 + plen..]))
}

fn encode_addr(a: Option<SocketAddr>) -> Vec<u8> {
    match a {
        None => vec![0],
        Some(SocketAddr::V4(v4)) => {
            let mut v = vec![4];
            v.extend_from_slice(&v4.ip().octets());
            v.extend_from_slice(&v4.port().to_be_bytes());
            v
        }
        Some(SocketAddr::V6(v6)) => {
            let mut v = vec![6];
            v.extend_from_slice(&v6.ip().octets());
            v.extend_from_slice(&v6.port().to_be_bytes());
            v
        }
    }
}

async fn read_addr<R: futures::io::AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<SocketAddr>> {
    let mut fam = [0u8; 1];
    r.read_exact(&mut fam).await?;
    let ip: IpAddr = match fam[0] {
        0 => return Ok(None),
        4 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).await?;
            b.into()
        }
        6 => {
            let mut b = [0u8; 16];
            r.read_exact(&mut b).await?;
            b.into()
        }
        f => return Err(io_invalid(format!("bad address family {f}"))),
    };
    let mut port = [0u8; 2];
    r.read_exact(&mut port).await?;
    Ok(Some(SocketAddr::new(ip, u16::from_be_bytes(port))))
}

/// tokio's I/O traits seen as the `futures` ones the box stream uses.
struct Compat<T>(T);

impl<T: tokio::io::AsyncRead + Unpin> futures::io::AsyncRead for Compat<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> futures::io::AsyncWrite for Compat<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

type ReadSide =
    kuska_handshake::async_std::BoxStreamRead<BufReader<Compat<tokio::net::tcp::OwnedReadHalf>>>;
type WriteSide =
    kuska_handshake::async_std::BoxStreamWrite<BufWriter<Compat<tokio::net::tcp::OwnedWriteHalf>>>;

fn split_boxed(socket: TcpStream, hs: kuska_handshake::HandshakeComplete) -> (ReadSide, WriteSide) {
    let (r, w) = socket.into_split();
    let r = BufReader::with_capacity(64 << 10, Compat(r));
    let w = BufWriter::with_capacity(64 << 10, Compat(w));
    BoxStream::from_handshake(r, w, hs, 0x8000).split_read_write()
}

/// Sends queued frames, as many per write as are waiting, until the queue
/// closes or `close` fires; then says goodbye.
async fn write_loop(
    mut w: WriteSide,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut close: watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        let first = tokio::select! {
            f = rx.recv() => f,
            _ = close.wait_for(|c| *c) => None,
        };
        let Some(first) = first else { break };
        let mut size = first.len();
        w.write_all(&first).await?;
        while size < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => {
                    size += f.len();
                    w.write_all(&f).await?;
                }
                Err(_) => break,
            }
        }
        w.flush().await?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), w.close()).await;
    Ok(())
}

impl MeshTransport {
    /// A node: it will listen (see [`MeshTransport::run`]) and announce
    /// `announce` to the peers it connects to, and it starts from the
    /// `bootstrap` peers.
    pub fn new_node(
        secret: &[u8; 32],
        key: &NodeSecret,
        bootstrap: Vec<(Uuid, SocketAddr)>,
        announce: SocketAddr,
        timing: MeshTiming,
    ) -> Arc<Self> {
        let t = Self::build(secret, key.0.clone(), Some(announce), timing);
        {
            let mut peers = lock(&t.inner.peers);
            for (id, addr) in bootstrap {
                if id != t.inner.id {
                    peers.entry(id).or_default().addr = Some(addr);
                }
            }
        }
        t
    }

    /// A client (the CLI): a throwaway key, no listener, no peering.
    pub fn new_client(secret: &[u8; 32]) -> Arc<Self> {
        let _ = sodiumoxide::init();
        let (_pk, sk) = ed25519::gen_keypair();
        Self::build(secret, sk, None, MeshTiming::default())
    }

    fn build(
        secret: &[u8; 32],
        sk: ed25519::SecretKey,
        announce: Option<SocketAddr>,
        timing: MeshTiming,
    ) -> Arc<Self> {
        let _ = sodiumoxide::init();
        let pk = sk.public_key();
        Arc::new(Self {
            inner: Arc::new(Inner {
                netid: network_key(secret),
                id: id_of(&pk),
                pk,
                sk,
                announce,
                timing,
                registry: HandlerRegistry::default(),
                peers: Mutex::new(HashMap::new()),
                epoch: std::time::Instant::now(),
            }),
        })
    }

    /// Serves `listener` and keeps the mesh connected until `stop` fires;
    /// then closes every connection.
    pub async fn run(&self, listener: TcpListener, stop: watch::Receiver<bool>) {
        let inner = self.inner.clone();
        let accept = tokio::spawn(inner.clone().accept_loop(listener, stop.clone()));
        inner.clone().peering_loop(stop).await;
        let _ = accept.await;
        let conns: Vec<Arc<Conn>> = lock(&inner.peers)
            .values_mut()
            .filter_map(|p| p.conn.take())
            .collect();
        for c in conns {
            c.shut();
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.wait_for(|s| *s) => break,
            };
            match accepted {
                Ok((socket, from)) => {
                    let me = self.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.serve(socket, from, stop).await {
                            tracing::debug!(peer = %from, error = %e, "incoming RPC connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little.
                    tracing::warn!(error = %e, "cannot accept an RPC connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Answers the requests of a peer that connected to us.
    async fn serve(
        self: Arc<Self>,
        mut socket: TcpStream,
        from: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let _ = socket.set_nodelay(true);
        let setup = async {
            let hs = handshake_server(
                &mut Compat(&mut socket),
                self.netid.clone(),
                self.pk,
                self.sk.clone(),
            )
            .await
            .map_err(|e| io_invalid(format!("handshake: {e}")))?;
            let peer = id_of(&hs.peer_pk);
            let (mut r, mut w) = split_boxed(socket, hs);
            w.write_all(&VERSION_TAG).await?;
            w.flush().await?;
            let mut tag = [0u8; 8];
            r.read_exact(&mut tag).await?;
            if tag != VERSION_TAG {
                return Err(io_invalid("different protocol version"));
            }
            let announced = read_addr(&mut r).await?;
            Ok::<_, std::io::Error>((peer, r, w, announced))
        };
        let (peer, mut r, w, announced) = tokio::time::timeout(self.timing.connect_timeout, setup)
            .await
            .map_err(|_| io_invalid("handshake timed out"))??;
        if let Some(mut a) = announced {
            if a.ip().is_unspecified() {
                a.set_ip(from.ip());
            }
            self.learn(peer, a);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (close_tx, close_rx) = watch::channel(false);
        let writer = tokio::spawn(write_loop(w, rx, close_rx));
        let result = loop {
            let f = tokio::select! {
                f = read_frame(&mut r) => f,
                _ = stop.wait_for(|s| *s) => break Ok(()),
            };
            let (kind, id, payload) = match f {
                Ok(Some(f)) => f,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if kind != KIND_REQUEST {
                break Err(io_invalid(format!("unexpected frame kind {kind}")));
            }
            let me = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let answer = match parse_request(&payload) {
                    Ok((path, body)) => me.dispatch(peer, path, body).await,
                    Err(e) => Err(e),
                };
                let f = match answer {
                    Ok(b) => frame(KIND_OK, id, &[&b]),
                    Err(m) => frame(KIND_ERR, id, &[m.as_bytes()]),
                };
                let _ = tx.send(f);
            });
        };
        drop(tx);
        let _ = close_tx.send(true);
        let _ = writer.await;
        result
    }

    async fn dispatch(&self, from: Uuid, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        match path {
            PING_PATH => Ok(vec![]),
            PEERS_PATH => {
                let list: Vec<(Uuid, SocketAddr)> = lock(&self.peers)
                    .iter()
                    .filter_map(|(id, p)| Some((*id, p.addr?)))
                    .chain(
                        self.announce
                            .filter(|a| !a.ip().is_unspecified())
                            .map(|a| (self.id, a)),
                    )
                    .collect();
                rmp_serde::to_vec(&list).map_err(|e| e.to_string())
            }
            _ => self.registry.dispatch(from, path, body).await,
        }
    }

    /// Records `addr` as the address of `id` (a peer connecting to us, or
    /// found in a peer list); a new peer is connected to by the peering loop.
    fn learn(&self, id: Uuid, addr: SocketAddr) {
        if id == self.id || self.announce.is_none() {
            return;
        }
        let mut peers = lock(&self.peers);
        let p = peers.entry(id).or_default();
        if p.addr != Some(addr) {
            p.addr = Some(addr);
            p.next_try = None;
            p.failures = 0;
        }
    }

    fn conn_of(&self, id: &Uuid) -> Option<Arc<Conn>> {
        lock(&self.peers)
            .get(id)
            .and_then(|p| p.conn.clone())
            .filter(|c| !c.closed.load(Ordering::Acquire))
    }

    /// Opens a connection to `id` at `addr` (nothing if one is open).
    async fn connect(self: &Arc<Self>, id: Uuid, addr: SocketAddr) -> Result<(), RpcError> {
        if id == self.id || self.conn_of(&id).is_some() {
            return Ok(());
        }
        let net_err = |message: String| RpcError::Network { node: id, message };
        let server_pk = pk_of(&id).ok_or_else(|| net_err("invalid node id".into()))?;
        let setup = async {
            let mut socket = TcpStream::connect(addr)
                .await
                .map_err(|e| net_err(format!("cannot connect to {addr}: {e}")))?;
            let _ = socket.set_nodelay(true);
            let hs = handshake_client(
                &mut Compat(&mut socket),
                self.netid.clone(),
                self.pk,
                self.sk.clone(),
                server_pk,
            )
            .await
            .map_err(|e| {
                net_err(format!(
                    "handshake with {addr} failed ({e}): wrong node id or RPC secret?"
                ))
            })?;
            let (mut r, mut w) = split_boxed(socket, hs);
            let mut hello = VERSION_TAG.to_vec();
            hello.extend(encode_addr(self.announce));
            let io = |e: std::io::Error| net_err(e.to_string());
            w.write_all(&hello).await.map_err(io)?;
            w.flush().await.map_err(io)?;
            let mut tag = [0u8; 8];
            r.read_exact(&mut tag).await.map_err(io)?;
            if tag != VERSION_TAG {
                return Err(net_err(format!("{addr} speaks another protocol version")));
            }
            Ok((r, w))
        };
        let (r, w) = tokio::time::timeout(self.timing.connect_timeout, setup)
            .await
            .map_err(|_| RpcError::Timeout { node: id })??;

        let (tx, rx) = mpsc::unbounded_channel();
        let (close_tx, close_rx) = watch::channel(false);
        let conn = Arc::new(Conn {
            out: tx,
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            last_seen_ms: AtomicU64::new(self.now_ms()),
            closed: AtomicBool::new(false),
            close: close_tx,
        });
        {
            let mut peers = lock(&self.peers);
            let p = peers.entry(id).or_default();
            if p.conn
                .as_ref()
                .is_some_and(|c| !c.closed.load(Ordering::Acquire))
            {
                // Another attempt won the race: keep its connection (this
                // one's socket closes as `r` and `w` drop).
                return Ok(());
            }
            if self.announce.is_some() {
                p.addr = Some(addr);
            }
            p.conn = Some(conn.clone());
            p.failures = 0;
            p.next_try = None;
            p.failed_pings = 0;
            p.pings.clear();
        }
        tracing::info!(peer = %id.to_hex(), %addr, "connected");
        tokio::spawn(write_loop(w, rx, close_rx.clone()));
        let me = self.clone();
        tokio::spawn(async move {
            let e = me.read_answers(&conn, r, close_rx).await;
            conn.shut();
            let mut peers = lock(&me.peers);
            if let Some(p) = peers.get_mut(&id) {
                if p.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                    p.conn = None;
                    p.next_try = Some(Instant::now() + Duration::from_secs(1));
                    p.failures = 1;
                }
            }
            drop(peers);
            tracing::info!(peer = %id.to_hex(), reason = %e, "disconnected");
        });
        if self.announce.is_some() {
            let me = self.clone();
            tokio::spawn(async move { me.exchange_peers(id).await });
        }
        Ok(())
    }

    /// Hands the answers arriving on `conn` to their callers; returns why
    /// the connection ended.
    async fn read_answers(
        &self,
        conn: &Conn,
        mut r: ReadSide,
        mut close: watch::Receiver<bool>,
    ) -> String {
        loop {
            let f = tokio::select! {
                f = read_frame(&mut r) => f,
                _ = close.wait_for(|c| *c) => return "closed".into(),
            };
            let (kind, id, payload) = match f {
                Ok(Some(f)) => f,
                Ok(None) => return "closed by the peer".into(),
                Err(e) => return e.to_string(),
            };
            conn.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
            let answer = match kind {
                KIND_OK => Ok(payload),
                KIND_ERR => Err(String::from_utf8_lossy(&payload).into_owned()),
                k => return format!("unexpected frame kind {k}"),
            };
            if let Some(w) = lock(&conn.inflight).remove(&id) {
                let _ = w.send(answer);
            }
        }
    }

    async fn call(
        &self,
        to: Uuid,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if path.len() > u16::MAX as usize || body.len() + path.len() + 7 > MAX_FRAME {
            return Err(RpcError::Encoding {
                message: format!("message of {} bytes is too large", body.len()),
            });
        }
        let conn = self
            .conn_of(&to)
            .ok_or(RpcError::NotConnected { node: to })?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&conn.inflight).insert(id, tx);
        if conn.out.send(request_frame(id, path, body)).is_err() {
            lock(&conn.inflight).remove(&id);
            return Err(RpcError::NotConnected { node: to });
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                lock(&conn.inflight).remove(&id);
                Err(RpcError::Timeout { node: to })
            }
            Ok(Err(_)) => Err(RpcError::Network {
                node: to,
                message: "connection closed".into(),
            }),
            Ok(Ok(Ok(b))) => Ok(b),
            Ok(Ok(Err(message))) => Err(RpcError::Remote { message }),
        }
    }

    /// Asks `id` for the peers it knows and learns the new ones.
    async fn exchange_peers(&self, id: Uuid) {
        match self
            .call(id, PEERS_PATH, &[], self.timing.connect_timeout)
            .await
        {
            Ok(b) => match rmp_serde::from_slice::<Vec<(Uuid, SocketAddr)>>(&b) {
                Ok(list) => {
                    for (pid, addr) in list {
                        let known = lock(&self.peers)
                            .get(&pid)
                            .is_some_and(|p| p.addr.is_some());
                        if !known {
                            self.learn(pid, addr);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "bad peer list"),
            },
            Err(e) => tracing::debug!(error = %e, "cannot get a peer list"),
        }
    }

    async fn ping(self: Arc<Self>, id: Uuid) {
        let started = Instant::now();
        let r = self
            .call(id, PING_PATH, &[], self.timing.ping_interval)
            .await;
        let mut peers = lock(&self.peers);
        let Some(p) = peers.get_mut(&id) else { return };
        match r {
            Ok(_) => {
                p.failed_pings = 0;
                p.pings.push_back(started.elapsed());
                while p.pings.len() > PINGS_AVERAGED {
                    p.pings.pop_front();
                }
            }
            Err(RpcError::NotConnected { .. }) => (),
            Err(e) => {
                p.failed_pings += 1;
                tracing::debug!(peer = %id.to_hex(), error = %e, failed = p.failed_pings, "ping failed");
                if p.failed_pings >= FAILED_PINGS_TO_CLOSE {
                    if let Some(c) = p.conn.take() {
                        c.shut();
                    }
                    p.failed_pings = 0;
                    p.next_try = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
    }

    /// Connects to known peers, pings connected ones and exchanges peer
    /// lists, once a second, until `stop` fires.
    async fn peering_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_exchange = Instant::now();
        loop {
            let now = Instant::now();
            let mut to_connect = vec![];
            let mut to_ping = vec![];
            {
                let mut peers = lock(&self.peers);
                for (id, p) in peers.iter_mut() {
                    let live = p
                        .conn
                        .as_ref()
                        .is_some_and(|c| !c.closed.load(Ordering::Acquire));
                    if live {
                        if p.last_ping
                            .is_none_or(|t| now >= t + self.timing.ping_interval)
                        {
                            p.last_ping = Some(now);
                            to_ping.push(*id);
                        }
                    } else if let (Some(addr), false) = (p.addr, p.connecting) {
                        if p.next_try.is_none_or(|t| now >= t) {
                            p.connecting = true;
                            to_connect.push((*id, addr));
                        }
                    }
                }
            }
            for (id, addr) in to_connect {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = me.connect(id, addr).await;
                    let mut peers = lock(&me.peers);
                    if let Some(p) = peers.get_mut(&id) {
                        p.connecting = false;
                        if let Err(e) = r {
                            tracing::debug!(peer = %id.to_hex(), %addr, error = %e, "cannot connect");
                            p.failures = p.failures.saturating_add(1);
                            let wait = Duration::from_secs(1 << p.failures.min(6))
                                .min(me.timing.max_backoff);
                            p.next_try = Some(Instant::now() + wait);
                        }
                    }
                });
            }
            for id in to_ping {
                tokio::spawn(self.clone().ping(id));
            }
            if now >= last_exchange + self.timing.peer_list_interval {
                last_exchange = now;
                let up: Vec<Uuid> = lock(&self.peers)
                    .iter()
                    .filter(|(_, p)| p.conn.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                for id in up {
                    let me = self.clone();
                    tokio::spawn(async move { me.exchange_peers(id).await });
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => (),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

#[async_trait]
impl Transport for MeshTransport {
    fn local_id(&self) -> Uuid {
        self.inner.id
    }

    async fn call_raw(
        &self,
        to: Uuid,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if to == self.inner.id {
            return self.inner.registry.call_local(to, path, &body).await;
        }
        self.inner.call(to, path, &body, timeout).await
    }

    fn handlers(&self) -> &HandlerRegistry {
        &self.inner.registry
    }

    fn peers(&self) -> Vec<PeerState> {
        let now_ms = self.inner.now_ms();
        lock(&self.inner.peers)
            .iter()
            .map(|(id, p)| {
                let conn = p
                    .conn
                    .as_ref()
                    .filter(|c| !c.closed.load(Ordering::Acquire));
                let avg_ping = (!p.pings.is_empty())
                    .then(|| p.pings.iter().sum::<Duration>() / p.pings.len() as u32);
                PeerState {
                    id: *id,
                    addr: p.addr,
                    is_up: conn.is_some(),
                    last_seen_secs: conn.map(|c| {
                        now_ms.saturating_sub(c.last_seen_ms.load(Ordering::Relaxed)) / 1000
                    }),
                    avg_ping,
                }
            })
            .collect()
    }

    async fn connect(&self, id: Uuid, addr: SocketAddr) -> Result<(), RpcError> {
        self.inner.connect(id, addr).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn node(
        secret: [u8; 32],
        bootstrap: Vec<(Uuid, SocketAddr)>,
    ) -> (
        Arc<MeshTransport>,
        SocketAddr,
        watch::Sender<bool>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let key = crate::node_key::read_or_create(dir.path()).expect("key");
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let timing = MeshTiming {
            ping_interval: Duration::from_secs(1),
            peer_list_interval: Duration::from_secs(1),
            ..MeshTiming::default()
        };
        let t = MeshTransport::new_node(&secret, &key, bootstrap, addr, timing);
        let (stop_tx, stop) = watch::channel(false);
        let t2 = t.clone();
        tokio::spawn(async move { t2.run(l, stop).await });
        (t, addr, stop_tx, dir)
    }

    struct Echo;
    #[async_trait]
    impl crate::net::RawHandler for Echo {
        async fn handle_raw(&self, _from: Uuid, body: &[u8]) -> Result<Vec<u8>, String> {
            if body == b"fail" {
                return Err("asked to fail".into());
            }
            Ok(body.iter().rev().copied().collect())
        }
    }

    /// Waits up to 5 s for `t`'s view of peer `id` to satisfy `cond`.
    async fn wait_peer(t: &MeshTransport, id: Uuid, what: &str, cond: impl Fn(&PeerState) -> bool) {
        for _ in 0..100 {
            if t.peers().iter().any(|p| p.id == id && cond(p)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("peer never {what}");
    }

    async fn call(
        t: &MeshTransport,
        to: Uuid,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, RpcError> {
        t.call_raw(to, path, body.to_vec(), Duration::from_secs(10))
            .await
    }

    async fn wait_up(t: &MeshTransport, id: Uuid) {
        wait_peer(t, id, "came up", |p| p.is_up).await;
    }

    #[tokio::test]
    async fn requests_and_errors_cross_and_peers_are_learnt() {
        let (a, a_addr, _sa, _da) = node([1; 32], vec![]).await;
        let (b, _b_addr, _sb, _db) = node([1; 32], vec![(a.local_id(), a_addr)]).await;
        let (c, _c_addr, _sc, _dc) = node([1; 32], vec![(a.local_id(), a_addr)]).await;
        a.handlers().set("echo", Arc::new(Echo));
        wait_up(&b, a.local_id()).await;
        let r = call(&b, a.local_id(), "echo", b"abc").await.expect("call");
        assert_eq!(r, b"cba");
        let e = call(&b, a.local_id(), "echo", b"fail")
            .await
            .expect_err("remote error");
        assert!(matches!(e, RpcError::Remote { ref message } if message == "asked to fail"));
        let e = call(&b, a.local_id(), "nothing", &[])
            .await
            .expect_err("no handler");
        assert!(matches!(e, RpcError::Remote { .. }), "{e:?}");
        // Many concurrent calls, one large, on the same connection.
        let big = vec![7u8; 3 << 20];
        let a_id = a.local_id();
        let calls = (0..200u32).map(|i| {
            let b = b.clone();
            let body = if i == 100 {
                big.clone()
            } else {
                i.to_be_bytes().to_vec()
            };
            async move {
                let r = b
                    .call_raw(a_id, "echo", body.clone(), Duration::from_secs(10))
                    .await
                    .expect("call");
                assert_eq!(r, body.iter().rev().copied().collect::<Vec<_>>());
            }
        });
        futures::future::join_all(calls).await;
        // a learnt b and c from their connections; b and c learn each
        // other through a's peer list, and all end connected.
        wait_up(&a, b.local_id()).await;
        wait_up(&a, c.local_id()).await;
        wait_up(&b, c.local_id()).await;
        wait_up(&c, b.local_id()).await;
        wait_peer(&b, a.local_id(), "measured a ping", |p| {
            p.avg_ping.is_some()
        })
        .await;
    }

    #[tokio::test]
    async fn a_wrong_secret_or_id_is_refused_and_a_restarted_peer_is_reconnected() {
        let (a, a_addr, stop_a, _da) = node([1; 32], vec![]).await;
        let client = MeshTransport::new_client(&[2; 32]);
        let e = client
            .connect(a.local_id(), a_addr)
            .await
            .expect_err("wrong secret");
        assert!(e.to_string().contains("handshake"), "{e}");
        let client = MeshTransport::new_client(&[1; 32]);
        let e = client
            .connect(Uuid::try_from_slice(&[3; 32]).expect("id"), a_addr)
            .await
            .expect_err("wrong id");
        assert!(e.to_string().contains("handshake"), "{e}");
        client
            .connect(a.local_id(), a_addr)
            .await
            .expect("right secret and id");
        // Garbage on the port: the connection is dropped, the node serves on.
        let mut s = TcpStream::connect(a_addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut s, &[0u8; 200])
            .await
            .expect("write");
        drop(s);
        a.handlers().set("echo", Arc::new(Echo));
        let r = call(&client, a.local_id(), "echo", b"xy")
            .await
            .expect("call");
        assert_eq!(r, b"yx");

        // b follows a through a restart on the same port.
        let (b, _b, _sb, _db) = node([1; 32], vec![(a.local_id(), a_addr)]).await;
        wait_up(&b, a.local_id()).await;
        let a_key_dir = _da.path().to_path_buf();
        stop_a.send(true).expect("stop");
        wait_peer(&b, a.local_id(), "went down", |p| !p.is_up).await;
        let key = crate::node_key::read(&a_key_dir).expect("key");
        let l = TcpListener::bind(a_addr).await.expect("rebind");
        let a2 = MeshTransport::new_node(&[1; 32], &key, vec![], a_addr, MeshTiming::default());
        let (_stop2, stop) = watch::channel(false);
        let a3 = a2.clone();
        tokio::spawn(async move { a3.run(l, stop).await });
        wait_up(&b, a.local_id()).await;
    }
}
