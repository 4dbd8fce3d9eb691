//! One keep-alive HTTP/1.1 connection (hyper 1 `client::conn::http1`) that signs every
//! request with the SigV4 signer of `garage_api`. Reconnects after a transport error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use garage_api::signature::{sign_request, PayloadHash, SigningParams};

/// Where and as whom to send requests.
pub struct Target {
    pub addr: SocketAddr,
    /// `host[:port]`, the value of the `Host` header.
    pub authority: String,
    pub region: String,
    pub key_id: String,
    pub secret: String,
    pub timeout: Duration,
    /// Sign the body hash (`false`: `UNSIGNED-PAYLOAD`).
    pub sign_body: bool,
}

/// An answer: status, headers, body.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A failed exchange (no HTTP status): the label is used as the error key.
#[derive(Debug)]
pub struct TransportError(pub &'static str, pub String);

/// One connection.
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, TransportError> {
        if self.sender.as_ref().map(|s| s.is_closed()).unwrap_or(true) {
            let stream = match tokio::time::timeout(
                self.target.timeout,
                TcpStream::connect(self.target.addr),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    // Do not spin on a server that is down.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Err(TransportError("connect", e.to_string()));
                }
                Err(_) => {
                    return Err(TransportError(
                        "connect_timeout",
                        "connect timed out".into(),
                    ))
                }
            };
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| TransportError("handshake", e.to_string()))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("set above"))
    }

    /// Sends a signed request. `path_query` is already percent-encoded and starts with `/`.
    pub async fn request(
        &mut self,
        method: Method,
        path_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Resp, TransportError> {
        let res = tokio::time::timeout(
            self.target.timeout,
            self.request_inner(method, path_query, headers, body),
        )
        .await;
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(TransportError("timeout", "request timed out".into()))
            }
        }
    }

    async fn request_inner(
        &mut self,
        method: Method,
        path_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Resp, TransportError> {
        let target = self.target.clone();
        let uri: Uri = path_query
            .parse()
            .map_err(|e: http::uri::InvalidUri| TransportError("bad_uri", e.to_string()))?;
        let mut hm = HeaderMap::with_capacity(8);
        hm.insert(
            HOST,
            HeaderValue::from_str(&target.authority)
                .map_err(|e| TransportError("bad_host", e.to_string()))?,
        );
        for (k, v) in headers {
            hm.append(k.clone(), v.clone());
        }
        let payload = if target.sign_body {
            PayloadHash::of_body(&body)
        } else {
            PayloadHash::Unsigned
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let params = SigningParams {
            key_id: &target.key_id,
            secret: &target.secret,
            region: &target.region,
            service: "k2v",
            now_ms,
        };
        sign_request(&method, &uri, &mut hm, &payload, &params)
            .map_err(|e| TransportError("sign", e.to_string()))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| TransportError("bad_request", e.to_string()))?;
        *req.headers_mut() = hm;

        let sender = self.connect().await?;
        sender
            .ready()
            .await
            .map_err(|e| TransportError("conn_closed", e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| TransportError("http", e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| TransportError("body", e.to_string()))?
            .to_bytes();
        Ok(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
