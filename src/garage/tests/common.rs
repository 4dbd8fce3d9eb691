//! The test harness: start nodes, run the CLI, send signed K2V requests.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use garage_api::signature::{sign_request, PayloadHash, SigningParams};

/// A free TCP port on 127.0.0.1, picked below the kernel's ephemeral range
/// (usually 32768 and up) so that outgoing connections of other tests cannot
/// take it between this probe and the node's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = 15_000 + (std::process::id() % 1000) as u16 * 10;
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    loop {
        let p = NEXT.fetch_add(1, Ordering::Relaxed);
        if p >= 32_000 {
            NEXT.store(15_000, Ordering::Relaxed);
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// The `garage` binary under test.
pub fn garage_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_garage"))
}

/// Options of a test node.
#[derive(Clone)]
pub struct NodeOpts {
    /// Replication factor.
    pub rf: usize,
    /// Shared secret (hex).
    pub secret: String,
    /// Extra lines appended to the top level of the config.
    pub extra: String,
    /// Extra lines in `[k2v_api]`.
    pub k2v_extra: String,
    /// Extra lines in `[admin]` (e.g. `admin_token = "..."`).
    pub admin_extra: String,
    /// Extra lines in `[s3_api]` (e.g. `root_domain = "..."`).
    pub s3_extra: String,
    /// Bootstrap peers.
    pub bootstrap: Vec<String>,
    /// Loopback address (127.0.0.x).
    pub ip: String,
    /// `rpc_timeout_msec` of the config.
    pub rpc_timeout_msec: u64,
    /// `RUST_LOG` of the server process.
    pub rust_log: String,
}

impl Default for NodeOpts {
    fn default() -> Self {
        Self {
            rf: 1,
            secret: "4f1c2ee3d5b8a0c7e6d9f2b1a3c5e7f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
            extra: String::new(),
            k2v_extra: String::new(),
            admin_extra: String::new(),
            s3_extra: String::new(),
            bootstrap: vec![],
            ip: "127.0.0.1".into(),
            rpc_timeout_msec: 5000,
            rust_log: "info,garage_table=debug".into(),
        }
    }
}

/// A running `garage server` process.
pub struct Node {
    child: Option<Child>,
    /// Its directory (config, metadata, log).
    pub dir: tempfile::TempDir,
    /// Config file.
    pub config: PathBuf,
    /// Ports.
    pub rpc_port: u16,
    /// K2V API port.
    pub k2v_port: u16,
    /// Admin API port.
    pub admin_port: u16,
    /// S3 API port.
    pub s3_port: u16,
    /// Options it was started with.
    pub opts: NodeOpts,
}

impl Node {
    /// Writes a config and starts the node; waits until its APIs answer.
    pub fn start(opts: NodeOpts) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let rpc_port = free_port();
        let k2v_port = free_port();
        let admin_port = free_port();
        let s3_port = free_port();
        let config = dir.path().join("garage.toml");
        let peers: Vec<String> = opts.bootstrap.iter().map(|p| format!("\"{p}\"")).collect();
        let text = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
replication_factor = {rf}
rpc_bind_addr = "{ip}:{rpc_port}"
rpc_public_addr = "{ip}:{rpc_port}"
rpc_secret = "{secret}"
rpc_timeout_msec = {rpc_timeout_msec}
bootstrap_peers = [{peers}]
{extra}

[s3_api]
s3_region = "garage"
api_bind_addr = "{ip}:{s3_port}"
{s3_extra}

[k2v_api]
api_bind_addr = "{ip}:{k2v_port}"
{k2v_extra}

[admin]
api_bind_addr = "{ip}:{admin_port}"
{admin_extra}
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            rf = opts.rf,
            ip = opts.ip,
            secret = opts.secret,
            peers = peers.join(", "),
            extra = opts.extra,
            k2v_extra = opts.k2v_extra,
            admin_extra = opts.admin_extra,
            s3_extra = opts.s3_extra,
            rpc_timeout_msec = opts.rpc_timeout_msec,
        );
        std::fs::write(&config, text).expect("write config");
        let mut node = Node {
            child: None,
            dir,
            config,
            rpc_port,
            k2v_port,
            admin_port,
            s3_port,
            opts,
        };
        node.restart();
        node
    }

    /// (Re)starts the process on the same directory and ports and waits
    /// until its K2V and RPC ports answer. A node that exits instead is a
    /// failure (with its log): start-up must never abort.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log.txt"))
            .expect("log file");
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", &self.opts.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn garage");
        self.child = Some(child);
        if let Err(e) = self
            .wait_port(self.k2v_port)
            .and_then(|_| self.wait_port(self.rpc_port))
        {
            panic!("{e}:\n{}", self.log());
        }
    }

    /// Whether the process has exited, and how.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the process with SIGTERM and waits for it; returns its status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let c = self.child.take()?;
        let mut c = c;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_port(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect((self.opts.ip.as_str(), port)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("garage exited early ({st})"));
            }
            if Instant::now() > deadline {
                return Err(format!("garage did not listen on {port} in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the process, if running.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Resident memory of the process in KiB (`VmRSS` of /proc), if running.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// True while the process runs (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the process (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("log.txt")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs `garage -c <config> args…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage cli")
    }

    /// Runs the CLI and returns stdout, panicking on failure.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The node's full id.
    pub fn id(&self) -> String {
        let line = self.cli_ok(&["node", "id", "-q"]);
        line.trim().split('@').next().unwrap_or("").to_string()
    }

    /// The K2V endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.opts.ip, self.k2v_port)
    }

    /// The S3 endpoint URL.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}:{}", self.opts.ip, self.s3_port)
    }

    /// Lays out this single node, creates key + bucket with all rights.
    pub fn setup_single(&self, bucket: &str) -> Creds {
        let id = self.id();
        self.cli_ok(&["layout", "assign", &id[..16], "-z", "dc1", "-c", "1G"]);
        self.cli_ok(&["layout", "apply", "--version", "1"]);
        self.create_key_bucket(bucket)
    }

    /// Creates a key and a bucket it may read, write and own.
    pub fn create_key_bucket(&self, bucket: &str) -> Creds {
        let out = self.cli_ok(&["key", "create", &format!("{bucket}-key")]);
        let key_id = field(&out, "Key ID: ");
        let secret = field(&out, "Secret key: ");
        self.cli_ok(&["bucket", "create", bucket]);
        self.cli_ok(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", &key_id,
        ]);
        Creds {
            key_id,
            secret,
            bucket: bucket.into(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- log of node in {} ----\n{}",
                self.dir.path().display(),
                self.log()
            );
        }
    }
}

/// The value of a `Label: value` line.
pub fn field(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"))
        .trim()
        .to_string()
}

/// Credentials and bucket for K2V requests.
#[derive(Clone, Debug)]
pub struct Creds {
    /// Key id.
    pub key_id: String,
    /// Secret.
    pub secret: String,
    /// Bucket name.
    pub bucket: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
    /// The causality token header.
    pub fn ct(&self) -> String {
        self.header("x-garage-causality-token")
            .unwrap_or_else(|| panic!("no causality token: {self:?}"))
    }
}

/// How to sign a test request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Normal header signature with the body hash.
    Header,
    /// Header signature with `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// No signature at all.
    None,
}

/// A raw K2V (or S3, see [`K2v::s3`]) HTTP client signing with our SigV4
/// signer.
pub struct K2v {
    /// Endpoint, e.g. `http://127.0.0.1:1234`.
    pub endpoint: String,
    /// Credentials.
    pub creds: Creds,
    /// Region.
    pub region: String,
    /// The SigV4 service: `k2v`, or `s3` (single-encoded paths).
    pub service: &'static str,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl K2v {
    /// A client for `node` with `creds`.
    pub fn new(endpoint: String, creds: Creds) -> Self {
        Self {
            endpoint,
            creds,
            region: "garage".into(),
            service: "k2v",
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A client of the S3 API of a node (signs for the `s3` service).
    pub fn s3(endpoint: String, creds: Creds) -> Self {
        Self {
            service: "s3",
            ..Self::new(endpoint, creds)
        }
    }

    /// Sends a request to `path_query` (already percent-encoded, starting
    /// with `/`), signing it as asked.
    pub async fn send(
        &self,
        method: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        sign: Sign,
    ) -> Resp {
        let (method, uri, hm) = self.prepare(method, path_query, headers, body, sign);
        self.send_prepared(method, uri, hm, body).await
    }

    /// Like [`Self::req`], but a transport failure (a node stopped or
    /// restarted under the request) is an `Err`, not a panic.
    pub async fn try_req(
        &self,
        method: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp, String> {
        let (method, uri, hm) = self.prepare(method, path_query, headers, body, Sign::Header);
        self.try_send_prepared(method, uri, hm, body).await
    }

    /// The method, URI and (signed) headers of a request.
    fn prepare(
        &self,
        method: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        sign: Sign,
    ) -> (http::Method, http::Uri, http::HeaderMap) {
        let uri: http::Uri = format!("{}{}", self.endpoint, path_query)
            .parse()
            .expect("uri");
        let mut hm = http::HeaderMap::new();
        let host = uri.authority().expect("authority").to_string();
        hm.insert("host", host.parse().expect("host"));
        for (k, v) in headers {
            hm.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        if sign != Sign::None {
            let payload = if sign == Sign::Unsigned {
                PayloadHash::Unsigned
            } else {
                PayloadHash::of_body(body)
            };
            let params = SigningParams {
                key_id: &self.creds.key_id,
                secret: &self.creds.secret,
                region: &self.region,
                service: self.service,
                now_ms: now_ms(),
            };
            let path_uri: http::Uri = path_query.parse().expect("path uri");
            sign_request(&method, &path_uri, &mut hm, &payload, &params).expect("sign");
        }
        (method, uri, hm)
    }

    /// Signed request with the body hash.
    pub async fn req(
        &self,
        method: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.send(method, path_query, headers, body, Sign::Header)
            .await
    }

    /// Path of the bucket.
    pub fn b(&self) -> String {
        format!("/{}", self.creds.bucket)
    }
}

/// Waits until `f` returns true, at most `secs`.
pub async fn eventually<F, Fut>(secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The path of a file next to the test sources.
pub fn here(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// What [`K2v::send_custom`] signs: the announced payload hash and the
/// signing time can differ from the real body and clock.
#[derive(Clone, Copy)]
pub struct CustomSign {
    /// Hash announced in `x-amz-content-sha256` (None: the body's hash).
    pub payload: Option<PayloadHash>,
    /// Signing time in ms since the epoch (None: now).
    pub now_ms: Option<u64>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as u64
}

impl K2v {
    /// Sends a header-signed request whose announced payload hash and signing
    /// time may be chosen (to test `InvalidDigest` and clock skew).
    pub async fn send_custom(
        &self,
        method: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        custom: CustomSign,
    ) -> Resp {
        let uri: http::Uri = format!("{}{}", self.endpoint, path_query)
            .parse()
            .expect("uri");
        let mut hm = http::HeaderMap::new();
        let host = uri.authority().expect("authority").to_string();
        hm.insert("host", host.parse().expect("host"));
        for (k, v) in headers {
            hm.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        let payload = custom.payload.unwrap_or_else(|| PayloadHash::of_body(body));
        let params = SigningParams {
            key_id: &self.creds.key_id,
            secret: &self.creds.secret,
            region: &self.region,
            service: self.service,
            now_ms: custom.now_ms.unwrap_or_else(now_ms),
        };
        let path_uri: http::Uri = path_query.parse().expect("path uri");
        sign_request(&method, &path_uri, &mut hm, &payload, &params).expect("sign");
        self.send_prepared(method, uri, hm, body).await
    }

    /// Sends a request with exactly these headers (nothing added or signed).
    pub async fn send_prepared(
        &self,
        method: http::Method,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: &[u8],
    ) -> Resp {
        self.try_send_prepared(method, uri, headers, body)
            .await
            .expect("http request")
    }

    async fn try_send_prepared(
        &self,
        method: http::Method,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: &[u8],
    ) -> Result<Resp, String> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(Bytes::from(body.to_vec())))
            .expect("request");
        *req.headers_mut() = headers;
        let res = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// A presigned URL path+query (`X-Amz-*` parameters appended) for
    /// `path_query`, signed at `now_ms` and valid `expires_secs`.
    pub fn presign(
        &self,
        method: &str,
        path_query: &str,
        expires_secs: u64,
        now_ms: u64,
    ) -> String {
        let uri: http::Uri = format!("{}{}", self.endpoint, path_query)
            .parse()
            .expect("uri");
        let mut hm = http::HeaderMap::new();
        let host = uri.authority().expect("authority").to_string();
        hm.insert("host", host.parse().expect("host"));
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        let params = SigningParams {
            key_id: &self.creds.key_id,
            secret: &self.creds.secret,
            region: &self.region,
            service: self.service,
            now_ms,
        };
        let path_uri: http::Uri = path_query.parse().expect("path uri");
        let q =
            garage_api::signature::presign_query(&method, &path_uri, &hm, expires_secs, &params)
                .expect("presign");
        format!("{}?{q}", path_uri.path())
    }
}

impl K2v {
    /// The head (request line and headers, ending with the blank line) of
    /// a request signed with `payload`, as raw HTTP/1.1 text, for tests
    /// that write to the socket themselves (stalls, oversized heads).
    pub fn signed_head(
        &self,
        method: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        payload: PayloadHash,
    ) -> String {
        let uri: http::Uri = format!("{}{}", self.endpoint, path_query)
            .parse()
            .expect("uri");
        let mut hm = http::HeaderMap::new();
        let host = uri.authority().expect("authority").to_string();
        hm.insert("host", host.parse().expect("host"));
        for (k, v) in headers {
            hm.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        let params = SigningParams {
            key_id: &self.creds.key_id,
            secret: &self.creds.secret,
            region: &self.region,
            service: "k2v",
            now_ms: now_ms(),
        };
        let path_uri: http::Uri = path_query.parse().expect("path uri");
        sign_request(&method, &path_uri, &mut hm, &payload, &params).expect("sign");
        let mut head = format!("{method} {path_query} HTTP/1.1\r\n");
        for (k, v) in &hm {
            head.push_str(&format!(
                "{}: {}\r\n",
                k.as_str(),
                v.to_str().expect("ascii header")
            ));
        }
        head.push_str("\r\n");
        head
    }

    /// The `host:port` of the endpoint.
    pub fn addr(&self) -> String {
        self.endpoint.trim_start_matches("http://").to_string()
    }
}

/// What a raw exchange on a socket gave.
#[derive(Debug)]
pub struct RawExchange {
    /// Status of the first answer, if one came.
    pub status: Option<u16>,
    /// Everything read.
    pub text: String,
    /// True if the server closed the connection (or reset it) before
    /// `wait` ran out.
    pub closed: bool,
    /// Time from the end of the write to the close (or to `wait`).
    pub elapsed: Duration,
}

/// Connects to `addr`, writes `bytes`, and reads until the server closes
/// the connection or `wait` passes.
pub async fn raw_exchange(addr: &str, bytes: &[u8], wait: Duration) -> RawExchange {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // A server that refuses early may close while we still write: keep
    // what was written and read the answer anyway.
    let _ = s.write_all(bytes).await;
    let started = Instant::now();
    let mut buf = vec![];
    let mut closed = false;
    let deadline = started + wait;
    loop {
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok());
    RawExchange {
        status,
        text,
        closed,
        elapsed: started.elapsed(),
    }
}

/// Percent-encodes a key for a path segment or a query value (every byte
/// but the unreserved ones, `/` included).
pub fn enc(s: &str) -> String {
    garage_api::signature::uri_encode(s.as_bytes(), false)
}

/// Starts a node (see [`Node::start`]).
pub fn start_node(opts: NodeOpts) -> Node {
    Node::start(opts)
}

/// Starts a single node with a bucket `bucket` and a K2V client for it.
pub fn single_node(opts: NodeOpts) -> (Node, K2v) {
    let node = start_node(opts);
    let creds = node.setup_single("bucket");
    let k2v = K2v::new(node.endpoint(), creds);
    (node, k2v)
}

/// Waits until every node's `garage status` lists every node of `nodes` as
/// healthy (a complete mesh, not only links to the bootstrap node: a node
/// that reached only its bootstrap peer would miss write quorums).
pub async fn wait_mesh(nodes: &[Node]) {
    let ids: Vec<String> = nodes.iter().map(|n| n.id()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        loop {
            let status = node.cli_ok(&["status"]);
            let healthy = status.split("==== FAILED NODES ====").next().unwrap_or("");
            if ids.iter().all(|id| healthy.contains(&id[..16])) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not connect:\n{status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Starts `n` nodes with `opts` (the first is everyone's bootstrap peer),
/// waits until the first sees them all, lays them out one zone each
/// (`dc1`, `dc2`…, 1 GB), creates a key and `bucket`, and waits until every
/// node serves signed requests with them.
pub async fn cluster(n: usize, opts: NodeOpts, bucket: &str) -> (Vec<Node>, Creds) {
    let first = start_node(opts.clone());
    let boot = format!("{}@{}:{}", first.id(), first.opts.ip, first.rpc_port);
    let mut nodes = vec![first];
    for _ in 1..n {
        nodes.push(start_node(NodeOpts {
            bootstrap: vec![boot.clone()],
            ..opts.clone()
        }));
    }
    wait_mesh(&nodes).await;
    let ids: Vec<String> = nodes.iter().map(|n| n.id()).collect();
    for (i, id) in ids.iter().enumerate() {
        let zone = format!("dc{}", i + 1);
        nodes[0].cli_ok(&["layout", "assign", &id[..16], "-z", &zone, "-c", "1G"]);
    }
    nodes[0].cli_ok(&["layout", "apply", "--version", "1"]);
    let creds = nodes[0].create_key_bucket(bucket);
    for node in &nodes {
        let k = K2v::new(node.endpoint(), creds.clone());
        let probe = format!("{}/probe?sort_key=probe", k.b());
        eventually(30, || async {
            k.req("GET", &probe, &[], b"").await.status == 404
        })
        .await;
    }
    (nodes, creds)
}

/// The ReadIndex answer's `partitionKeys` as (pk, entries, conflicts, values, bytes).
pub fn index_rows(j: &serde_json::Value) -> Vec<(String, i64, i64, i64, i64)> {
    j["partitionKeys"]
        .as_array()
        .unwrap_or_else(|| panic!("no partitionKeys: {j}"))
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_i64().unwrap_or_else(|| panic!("no {k} in {p}"));
            (
                p["pk"].as_str().expect("pk").to_string(),
                n("entries"),
                n("conflicts"),
                n("values"),
                n("bytes"),
            )
        })
        .collect()
}

/// The values of an item: bytes, or `None` for a tombstone.
pub type Values = Vec<Option<Vec<u8>>>;

/// A JSON array of base64 strings / nulls.
pub fn decode_values(j: &serde_json::Value) -> Values {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    j.as_array()
        .unwrap_or_else(|| panic!("not an array: {j}"))
        .iter()
        .map(|v| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(BASE64_STANDARD.decode(s).expect("base64 value")),
            o => panic!("bad value {o}"),
        })
        .collect()
}
