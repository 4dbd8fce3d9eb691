//! The S3 API through real `garage` processes, signed with our own SigV4
//! code: a chunk-signed streaming upload (`STREAMING-AWS4-HMAC-SHA256-
//! PAYLOAD`, which boto3 only sends over https), three nodes at rf 3
//! (written through one node, read through another, one node down, a
//! restarted node catching up on the blocks it missed), kill -9 during
//! uploads, of a single node and of the node coordinating them in a
//! 3-node cluster (every acknowledged upload intact, nothing half-written
//! visible), virtual-hosted buckets, block references released by
//! overwrites, deletions and aborts, and the S3 metrics.

use std::time::{Duration, Instant};

use garage_api::signature::{
    sign_request, signing_key, ChunkSigner, PayloadHash, SigningParams, STREAMING_SIGNED,
};
use garage_util::data::blake2sum;

use crate::common::*;

/// `n` deterministic pseudo-random bytes.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn md5_hex(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(b))
}

/// A request retried while the cluster answers 503 or the connection
/// fails (a peer not yet seen down or up again), at most 20 s.
async fn req_retry(c: &K2v, method: &str, path: &str, body: &[u8]) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.try_req(method, path, &[], body).await {
            Ok(r) if r.status != 503 => return r,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "{method} {path} kept failing: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Sends `body` as a chunk-signed aws-chunked PutObject in chunks of
/// `chunk` bytes; `tamper` flips a byte of the last data chunk after signing
/// (the last, so that the server has read the body when it refuses it and
/// its answer is not raced by the client still sending).
async fn put_chunk_signed(c: &K2v, path: &str, body: &[u8], chunk: usize, tamper: bool) -> Resp {
    put_chunk_signed_with(c, path, body, chunk, tamper, body.len()).await
}

/// [`put_chunk_signed`] announcing `decoded` bytes.
async fn put_chunk_signed_len(
    c: &K2v,
    path: &str,
    body: &[u8],
    chunk: usize,
    decoded: usize,
) -> Resp {
    put_chunk_signed_with(c, path, body, chunk, false, decoded).await
}

async fn put_chunk_signed_with(
    c: &K2v,
    path: &str,
    body: &[u8],
    chunk: usize,
    tamper: bool,
    decoded: usize,
) -> Resp {
    let uri: http::Uri = format!("{}{path}", c.endpoint).parse().expect("uri");
    let mut hm = http::HeaderMap::new();
    hm.insert(
        "host",
        uri.authority()
            .expect("authority")
            .as_str()
            .parse()
            .expect("host"),
    );
    hm.insert("content-encoding", "aws-chunked".parse().expect("value"));
    hm.insert(
        "x-amz-decoded-content-length",
        decoded.to_string().parse().expect("value"),
    );
    let now = now_ms();
    let params = SigningParams {
        key_id: &c.creds.key_id,
        secret: &c.creds.secret,
        region: &c.region,
        service: "s3",
        now_ms: now,
    };
    let method = http::Method::PUT;
    let path_uri: http::Uri = path.parse().expect("path");
    sign_request(
        &method,
        &path_uri,
        &mut hm,
        &PayloadHash::StreamingSigned,
        &params,
    )
    .expect("sign");
    assert_eq!(hm["x-amz-content-sha256"], STREAMING_SIGNED);
    let auth = hm["authorization"].to_str().expect("ascii").to_string();
    let seed_hex = auth.rsplit("Signature=").next().expect("signature");
    let mut seed = [0u8; 32];
    hex::decode_to_slice(seed_hex, &mut seed).expect("hex");
    let datetime = hm["x-amz-date"].to_str().expect("ascii").to_string();
    let date8 = &datetime[..8];
    let mut signer = ChunkSigner::new(
        signing_key(&c.creds.secret, date8, &c.region, "s3"),
        &datetime,
        &format!("{date8}/{}/s3/aws4_request", c.region),
        seed,
    );
    let mut wire = Vec::new();
    let last = body.len().div_ceil(chunk).saturating_sub(1);
    for (i, piece) in body
        .chunks(chunk)
        .chain(std::iter::once(&[][..]))
        .enumerate()
    {
        let sig = hex::encode(signer.sign(piece));
        wire.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        let start = wire.len();
        wire.extend_from_slice(piece);
        if tamper && i == last {
            wire[start] ^= 1;
        }
        wire.extend_from_slice(b"\r\n");
    }
    c.send_prepared(method, uri, hm, &wire).await
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_chunk_signed_streaming_upload() {
    let (node, k) = single_node(NodeOpts::default());
    let s3 = K2v::s3(node.s3_endpoint(), k.creds.clone());
    let b = s3.b();
    let body = data(2_600_000, 1);
    let r = put_chunk_signed(&s3, &format!("{b}/streamed"), &body, 65536, false).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", md5_hex(&body))));
    let g = s3.req("GET", &format!("{b}/streamed"), &[], b"").await;
    assert_eq!(g.status, 200);
    assert!(g.body == body, "the streamed object reads back");

    // A small body in one chunk is stored inline the same way.
    let r = put_chunk_signed(&s3, &format!("{b}/small"), b"hello chunks", 8192, false).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s3.req("GET", &format!("{b}/small"), &[], b"").await.body,
        b"hello chunks"
    );

    // A chunk altered after signing fails the upload, and nothing is stored.
    let r = put_chunk_signed(&s3, &format!("{b}/tampered"), &body, 65536, true).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("<Code>SignatureDoesNotMatch</Code>"));
    let g = s3.req("GET", &format!("{b}/tampered"), &[], b"").await;
    assert_eq!(g.status, 404);
    assert!(String::from_utf8_lossy(&g.body).contains("<Code>NoSuchKey</Code>"));

    // A decoded length that is not the body's.
    let r = put_chunk_signed_len(&s3, &format!("{b}/short"), &body, 65536, body.len() + 1).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        s3.req("GET", &format!("{b}/short"), &[], b"").await.status,
        404
    );

    // A signed body that is not what its x-amz-content-sha256 said.
    let r = s3
        .send_custom(
            "PUT",
            &format!("{b}/liar"),
            &[],
            &body,
            CustomSign {
                payload: Some(PayloadHash::of_body(b"something else")),
                now_ms: None,
            },
        )
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        s3.req("GET", &format!("{b}/liar"), &[], b"").await.status,
        404
    );
}

/// The file of a block in a node's data directory.
fn block_file(node: &Node, block: &[u8]) -> std::path::PathBuf {
    let hex = blake2sum(block).to_hex();
    node.dir
        .path()
        .join("data")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex)
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_three_nodes() {
    let opts = NodeOpts {
        rf: 3,
        extra: "sync_interval_secs = 2".into(),
        ..NodeOpts::default()
    };
    let (mut nodes, creds) = cluster(3, opts, "bucket").await;
    let c: Vec<K2v> = nodes
        .iter()
        .map(|n| K2v::s3(n.s3_endpoint(), creds.clone()))
        .collect();
    let b = c[0].b();

    // Written through node 1, read through node 3 (a multi-block object and
    // an inline one).
    let big = data(3_500_000, 2);
    let r = c[0].req("PUT", &format!("{b}/big"), &[], &big).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = c[0].req("PUT", &format!("{b}/small"), &[], b"small").await;
    assert_eq!(r.status, 200);
    let g = c[2].req("GET", &format!("{b}/big"), &[], b"").await;
    assert_eq!(g.status, 200);
    assert!(g.body == big, "node 3 reads what node 1 wrote");
    assert_eq!(
        c[2].req("GET", &format!("{b}/small"), &[], b"").await.body,
        b"small"
    );
    for chunk in big.chunks(1 << 20) {
        for n in &nodes {
            assert!(
                block_file(n, chunk).exists(),
                "every replica holds every block"
            );
        }
    }

    // Node 2 down: writes and reads go on through the others.
    nodes[1].kill();
    let missed = data(3_000_000, 3);
    let r = req_retry(&c[0], "PUT", &format!("{b}/while-down"), &missed).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let g = req_retry(&c[2], "GET", &format!("{b}/while-down"), b"").await;
    assert!(
        g.status == 200 && g.body == missed,
        "read with one node down"
    );
    let g = req_retry(&c[2], "GET", &format!("{b}/big"), b"").await;
    assert!(g.status == 200 && g.body == big);
    let r = req_retry(&c[2], "DELETE", &format!("{b}/small"), b"").await;
    assert_eq!(r.status, 204);
    let l = req_retry(&c[0], "GET", &format!("{b}?list-type=2"), b"").await;
    let listing = String::from_utf8_lossy(&l.body).to_string();
    assert!(
        listing.contains("<Key>big</Key>")
            && listing.contains("<Key>while-down</Key>")
            && !listing.contains("<Key>small</Key>"),
        "{listing}"
    );
    for chunk in missed.chunks(1 << 20) {
        assert!(!block_file(&nodes[1], chunk).exists());
    }

    // Node 2 back: it fetches the blocks it missed.
    nodes[1].restart();
    eventually(60, || async {
        missed
            .chunks(1 << 20)
            .all(|chunk| block_file(&nodes[1], chunk).exists())
    })
    .await;
    let g = req_retry(&c[1], "GET", &format!("{b}/while-down"), b"").await;
    assert!(
        g.status == 200 && g.body == missed,
        "node 2 serves the object it missed"
    );
}

/// Four writers upload multi-block objects through `writer` until it is
/// killed (SIGKILL) 2.5 s in; returns (acknowledged, cut) uploads as
/// (key, seed, length).
async fn uploads_until_killed(
    writer: &mut Node,
    creds: &Creds,
) -> (Vec<(String, u64, usize)>, Vec<(String, u64, usize)>) {
    let s3 = std::sync::Arc::new(K2v::s3(writer.s3_endpoint(), creds.clone()));
    let b = s3.b();
    let mut tasks = vec![];
    for w in 0..4u64 {
        let s3 = s3.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = vec![];
            let mut failed = vec![];
            for i in 0..1000u64 {
                let key = format!("w{w}/o{i}");
                let body = data(1_500_000 + (i as usize % 3) * 700_000, w * 1000 + i);
                match s3.try_req("PUT", &format!("{b}/{key}"), &[], &body).await {
                    Ok(r) if r.status == 200 => acked.push((key, w * 1000 + i, body.len())),
                    _ => {
                        failed.push((key, w * 1000 + i, body.len()));
                        break;
                    }
                }
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    writer.kill();
    let mut acked = vec![];
    let mut failed = vec![];
    for t in tasks {
        let (a, f) = t.await.expect("writer");
        acked.extend(a);
        failed.extend(f);
    }
    assert!(!acked.is_empty(), "some uploads completed before the kill");
    assert!(!failed.is_empty(), "some uploads were cut by the kill");
    (acked, failed)
}

/// Through `reader`: every acknowledged upload reads back intact, every cut
/// one is absent or whole, and the listing shows the acknowledged ones.
async fn check_after_kill(
    reader: &K2v,
    acked: &[(String, u64, usize)],
    failed: &[(String, u64, usize)],
) {
    let b = reader.b();
    for (key, seed, len) in acked.iter() {
        let g = req_retry(reader, "GET", &format!("{b}/{key}"), b"").await;
        assert_eq!(g.status, 200, "acknowledged {key} lost");
        assert!(g.body == data(*len, *seed), "acknowledged {key} corrupt");
    }
    for (key, seed, len) in failed.iter() {
        let g = req_retry(reader, "GET", &format!("{b}/{key}"), b"").await;
        assert!(
            g.status == 404 || (g.status == 200 && g.body == data(*len, *seed)),
            "cut upload {key} visible half-written: {} with {} bytes",
            g.status,
            g.body.len()
        );
    }
    let l = req_retry(reader, "GET", &format!("{b}?list-type=2"), b"").await;
    let listing = String::from_utf8_lossy(&l.body).to_string();
    for (key, _, _) in acked.iter() {
        assert!(
            listing.contains(&format!("<Key>{key}</Key>")),
            "{key} not listed"
        );
    }
    eprintln!(
        "kill -9 during uploads: {} acknowledged, {} cut",
        acked.len(),
        failed.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_kill_during_uploads() {
    let (mut node, k) = single_node(NodeOpts::default());
    let (acked, failed) = uploads_until_killed(&mut node, &k.creds).await;
    node.restart();
    let s3 = K2v::s3(node.s3_endpoint(), k.creds.clone());
    check_after_kill(&s3, &acked, &failed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_kill_the_coordinator_of_uploads() {
    let opts = NodeOpts {
        rf: 3,
        ..NodeOpts::default()
    };
    let (mut nodes, creds) = cluster(3, opts, "bucket").await;
    // The node the clients write through dies; the two others answer.
    let (acked, failed) = uploads_until_killed(&mut nodes[0], &creds).await;
    let reader = K2v::s3(nodes[2].s3_endpoint(), creds.clone());
    check_after_kill(&reader, &acked, &failed).await;
    // Back up, the killed node reads the same.
    nodes[0].restart();
    let again = K2v::s3(nodes[0].s3_endpoint(), creds.clone());
    check_after_kill(&again, &acked, &failed).await;
}

/// `Reference count: …` of `garage block info` for the block `content`.
fn refcount(node: &Node, content: &[u8]) -> String {
    let out = node.cli_ok(&["block", "info", &blake2sum(content).to_hex()]);
    field(&out, "Reference count: ")
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_versions_release_their_blocks() {
    let (node, k) = single_node(NodeOpts::default());
    let s3 = K2v::s3(node.s3_endpoint(), k.creds.clone());
    let b = s3.b();
    let big = data(1_500_000, 7);
    let first = &big[..1 << 20];
    assert_eq!(
        s3.req("PUT", &format!("{b}/a"), &[], &big).await.status,
        200
    );
    assert_eq!(refcount(&node, first), "1");
    // A copy takes its own reference (no data copied).
    let r = s3
        .req(
            "PUT",
            &format!("{b}/copy"),
            &[("x-amz-copy-source", &format!("{}/a", k.creds.bucket))],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(refcount(&node, first), "2");
    // Overwriting drops the old version, deleting drops the copy.
    assert_eq!(
        s3.req("PUT", &format!("{b}/a"), &[], b"now small")
            .await
            .status,
        200
    );
    eventually(10, || async { refcount(&node, first) == "1" }).await;
    assert_eq!(
        s3.req("DELETE", &format!("{b}/copy"), &[], b"")
            .await
            .status,
        204
    );
    eventually(10, || async { refcount(&node, first).starts_with("0 ") }).await;

    // An aborted multipart upload releases its parts.
    let r = s3.req("POST", &format!("{b}/mpu?uploads"), &[], b"").await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    let id = text
        .split("<UploadId>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap_or_else(|| panic!("no UploadId in {text}"))
        .to_string();
    let part = data(1_100_000, 8);
    let r = s3
        .req(
            "PUT",
            &format!("{b}/mpu?partNumber=1&uploadId={id}"),
            &[],
            &part,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(refcount(&node, &part[..1 << 20]), "1");
    let r = s3
        .req("DELETE", &format!("{b}/mpu?uploadId={id}"), &[], b"")
        .await;
    assert_eq!(r.status, 204);
    eventually(10, || async {
        refcount(&node, &part[..1 << 20]).starts_with("0 ")
    })
    .await;
    let r = s3
        .req("GET", &format!("{b}/mpu?uploadId={id}"), &[], b"")
        .await;
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("<Code>NoSuchUpload</Code>"));

    // The operator sees the S3 tables and the release worker.
    let entries = node.cli_ok(&["debug", "entries", "version"]);
    assert!(entries.contains("entries: "), "{entries}");
    let workers = node.cli_ok(&["worker", "list"]);
    assert!(
        workers.contains("S3 version and block release"),
        "{workers}"
    );
    assert!(workers.contains("object anti-entropy"), "{workers}");

    // Every request above was counted under Garage's S3 metric names.
    let (status, _, text) = crate::metrics::get_metrics(&node, None).await;
    assert_eq!(status, 200, "{text}");
    let value = |line: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in /metrics"))
    };
    assert_eq!(
        value(r#"api_s3_request_counter{api_endpoint="PutObject"} "#),
        2
    );
    assert_eq!(
        value(r#"api_s3_request_counter{api_endpoint="UploadPart"} "#),
        1
    );
    assert_eq!(
        value(r#"api_s3_request_counter{api_endpoint="CopyObject"} "#),
        1
    );
    assert_eq!(
        value(r#"api_s3_error_counter{api_endpoint="ListParts",status_code="404"} "#),
        1
    );
}

/// A request signed for `host` (any name) but sent to `c`'s address.
async fn send_with_host(c: &K2v, host: &str, method: &str, path: &str, body: &[u8]) -> Resp {
    let uri: http::Uri = format!("{}{path}", c.endpoint).parse().expect("uri");
    let mut hm = http::HeaderMap::new();
    hm.insert("host", host.parse().expect("host"));
    let params = SigningParams {
        key_id: &c.creds.key_id,
        secret: &c.creds.secret,
        region: &c.region,
        service: "s3",
        now_ms: now_ms(),
    };
    let method = http::Method::from_bytes(method.as_bytes()).expect("method");
    let path_uri: http::Uri = path.parse().expect("path");
    sign_request(
        &method,
        &path_uri,
        &mut hm,
        &PayloadHash::of_body(body),
        &params,
    )
    .expect("sign");
    c.send_prepared(method, uri, hm, body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_virtual_hosted_buckets() {
    let (node, k) = single_node(NodeOpts {
        s3_extra: "root_domain = \".s3.test\"".into(),
        ..NodeOpts::default()
    });
    let s3 = K2v::s3(node.s3_endpoint(), k.creds.clone());
    let host = format!("{}.s3.test:{}", k.creds.bucket, node.s3_port);
    let r = send_with_host(&s3, &host, "PUT", "/dir/obj%20one", b"virtual").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The same object path-style, and listed through the virtual host.
    let g = s3
        .req("GET", &format!("{}/dir/obj%20one", s3.b()), &[], b"")
        .await;
    assert_eq!((g.status, g.body.as_slice()), (200, &b"virtual"[..]));
    let l = send_with_host(&s3, &host, "GET", "/?list-type=2&prefix=dir%2F", b"").await;
    assert_eq!(l.status, 200);
    assert!(String::from_utf8_lossy(&l.body).contains("<Key>dir/obj one</Key>"));
    // An unknown bucket under the domain.
    let r = send_with_host(
        &s3,
        &format!("nope.s3.test:{}", node.s3_port),
        "GET",
        "/x",
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("<Code>NoSuchBucket</Code>"));
}
