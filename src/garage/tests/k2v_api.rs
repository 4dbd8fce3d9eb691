//! K2V endpoints with our own signed requests.
//!
//! Each test starts one real node (single-node layout, bucket `bucket`) and
//! groups the checks of one endpoint family, so a failure names the family and
//! the suite stays fast.

use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
use serde_json::{json, Value};

use garage_api::signature::PayloadHash;

use crate::common::{
    self, decode_values, enc, field, index_rows, now_ms, single_node, Creds, CustomSign, K2v,
    NodeOpts, Resp, Sign, Values,
};

const TOKEN: &str = "x-garage-causality-token";

/// Items of a range answer: (sort key, values).
type Items = Vec<(String, Values)>;

fn b64(v: &[u8]) -> String {
    BASE64_STANDARD.encode(v)
}

/// `/bucket/{pk}?sort_key={sk}`, both percent-encoded.
fn item(k2v: &K2v, pk: &str, sk: &str) -> String {
    format!("{}/{}?sort_key={}", k2v.b(), enc(pk), enc(sk))
}

/// Body as text, for assertion messages.
fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Asserts a JSON error answer: status, code, and the four fields.
#[track_caller]
fn assert_err(r: &Resp, status: u16, code: &str) {
    assert_eq!(
        r.status,
        status,
        "expected {status} {code}, got {r:?} {}",
        text(r)
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "{r:?}"
    );
    let j = r.json();
    assert_eq!(j["code"], code, "{j}");
    assert!(j["message"].is_string(), "{j}");
    assert!(j["region"].is_string(), "{j}");
    assert!(j["path"].is_string(), "{j}");
    let mut keys: Vec<&str> = j
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "path", "region"], "{j}");
}

/// Asserts a 400 (any code).
#[track_caller]
fn assert_400(r: &Resp) {
    assert_eq!(r.status, 400, "{r:?} {}", text(r));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
}

async fn put(k2v: &K2v, pk: &str, sk: &str, v: &[u8], ct: Option<&str>) {
    let h: Vec<(&str, &str)> = ct.map(|c| vec![(TOKEN, c)]).unwrap_or_default();
    let r = k2v.req("PUT", &item(k2v, pk, sk), &h, v).await;
    assert_eq!(r.status, 204, "insert {pk}/{sk}: {r:?} {}", text(&r));
    assert!(r.body.is_empty());
}

async fn del(k2v: &K2v, pk: &str, sk: &str, ct: &str) {
    let r = k2v
        .req("DELETE", &item(k2v, pk, sk), &[(TOKEN, ct)], b"")
        .await;
    assert_eq!(r.status, 204, "delete {pk}/{sk}: {r:?} {}", text(&r));
}

/// ReadItem without Accept: (values, token); panics unless 200.
async fn get(k2v: &K2v, pk: &str, sk: &str) -> (Values, String) {
    let r = k2v.req("GET", &item(k2v, pk, sk), &[], b"").await;
    assert_eq!(r.status, 200, "read {pk}/{sk}: {r:?} {}", text(&r));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    (decode_values(&r.json()), r.ct())
}

fn vals(v: &[Option<&str>]) -> Values {
    v.iter().map(|x| x.map(|s| s.as_bytes().to_vec())).collect()
}

/// The token with one bit of its checksum flipped.
fn bad_checksum(tok: &str) -> String {
    let mut b = BASE64_URL_SAFE_NO_PAD.decode(tok).expect("token b64");
    b[7] ^= 1;
    BASE64_URL_SAFE_NO_PAD.encode(b)
}

/// The token without its last byte (bad length).
fn truncated(tok: &str) -> String {
    let b = BASE64_URL_SAFE_NO_PAD.decode(tok).expect("token b64");
    BASE64_URL_SAFE_NO_PAD.encode(&b[..b.len() - 1])
}

async fn post_json(k2v: &K2v, path: &str, body: &Value) -> Resp {
    k2v.req("POST", path, &[], body.to_string().as_bytes())
        .await
}

/// Sends raw HTTP/1.1 bytes (the head is signed with UNSIGNED-PAYLOAD plus
/// `extra` headers that are not signed) and returns the status code.
async fn raw_request(
    k2v: &K2v,
    method: &str,
    path: &str,
    extra: &[(&str, &[u8])],
    body: &[u8],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = k2v.endpoint.trim_start_matches("http://").to_string();
    let mut hm = http::HeaderMap::new();
    hm.insert("host", authority.parse().expect("host"));
    let m = http::Method::from_bytes(method.as_bytes()).expect("method");
    let params = garage_api::signature::SigningParams {
        key_id: &k2v.creds.key_id,
        secret: &k2v.creds.secret,
        region: &k2v.region,
        service: "k2v",
        now_ms: now_ms(),
    };
    let uri: http::Uri = path.parse().expect("uri");
    garage_api::signature::sign_request(&m, &uri, &mut hm, &PayloadHash::Unsigned, &params)
        .expect("sign");
    let mut head = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for (k, v) in hm.iter() {
        head.extend_from_slice(k.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (k, v) in extra {
        head.extend_from_slice(k.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    let mut sock = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    sock.write_all(&head).await.expect("write head");
    // The server may answer (and close) before the whole body is sent.
    let _ = sock.write_all(body).await;
    let mut out = vec![];
    let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
    let line = String::from_utf8_lossy(&out);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

/// A chunked body of `n` bytes.
fn chunked(n: usize) -> Vec<u8> {
    let mut out = vec![];
    for chunk in vec![b'z'; n].chunks(300) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn read_item_formats_and_accept() {
    let (_node, k2v) = single_node(NodeOpts::default());
    let p = item(&k2v, "pk", "one");

    // InsertItem: 204, empty body.
    put(&k2v, "pk", "one", b"hello", None).await;

    // No Accept: JSON array of base64.
    let r = k2v.req("GET", &p, &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json(), json!([b64(b"hello")]));
    let tok = r.ct();
    assert!(!tok.is_empty());
    assert!(BASE64_URL_SAFE_NO_PAD.decode(&tok).is_ok(), "token {tok}");

    // Every Accept variant on one value.
    let raw_cases = [
        "application/octet-stream",
        "application/octet-stream, application/json",
        "application/json,application/octet-stream",
        "*/*",
        " text/html , */* ",
    ];
    for a in raw_cases {
        let r = k2v.req("GET", &p, &[("accept", a)], b"").await;
        assert_eq!(r.status, 200, "accept {a}: {r:?}");
        assert_eq!(r.body, b"hello", "accept {a}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/octet-stream"),
            "accept {a}"
        );
        assert_eq!(r.ct(), tok, "accept {a}");
    }
    let json_cases = [
        "application/json",
        "application/json;q=0.9",
        "application/json; charset=utf-8, text/html",
        "text/html, application/json;q=0.5",
    ];
    for a in json_cases {
        let r = k2v.req("GET", &p, &[("accept", a)], b"").await;
        assert_eq!(r.status, 200, "accept {a}: {r:?}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(r.json(), json!([b64(b"hello")]), "accept {a}");
        assert_eq!(r.ct(), tok);
    }
    // Several Accept header lines are one list.
    let r = k2v
        .req(
            "GET",
            &p,
            &[
                ("accept", "text/plain"),
                ("accept", "application/octet-stream"),
            ],
            b"",
        )
        .await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    for a in ["text/plain", "image/png, text/html"] {
        let r = k2v.req("GET", &p, &[("accept", a)], b"").await;
        assert_err(&r, 406, "NotAcceptable");
    }

    // Binary values and an empty value round-trip.
    let bin: Vec<u8> = (0..=255u8).collect();
    put(&k2v, "pk", "bin", &bin, None).await;
    let r = k2v
        .req(
            "GET",
            &item(&k2v, "pk", "bin"),
            &[("accept", "application/octet-stream")],
            b"",
        )
        .await;
    assert_eq!((r.status, &r.body), (200, &bin));
    assert_eq!(get(&k2v, "pk", "bin").await.0, vec![Some(bin.clone())]);
    put(&k2v, "pk", "empty", b"", None).await;
    assert_eq!(get(&k2v, "pk", "empty").await.0, vec![Some(vec![])]);
    let r = k2v
        .req(
            "GET",
            &item(&k2v, "pk", "empty"),
            &[("accept", "application/octet-stream")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/octet-stream")
    );

    // Several values.
    put(&k2v, "pk", "two", b"v1", None).await;
    put(&k2v, "pk", "two", b"v2", None).await;
    let p2 = item(&k2v, "pk", "two");
    let r = k2v.req("GET", &p2, &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([b64(b"v1"), b64(b"v2")]));
    let tok2 = r.ct();
    let r = k2v
        .req("GET", &p2, &[("accept", "application/octet-stream")], b"")
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.is_empty(), "409 body: {}", text(&r));
    assert_eq!(r.ct(), tok2);
    for a in [
        "application/octet-stream, application/json",
        "*/*",
        "application/json",
    ] {
        let r = k2v.req("GET", &p2, &[("accept", a)], b"").await;
        assert_eq!(r.status, 200, "accept {a}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(r.json(), json!([b64(b"v1"), b64(b"v2")]));
        assert_eq!(r.ct(), tok2);
    }
    let r = k2v.req("GET", &p2, &[("accept", "text/plain")], b"").await;
    assert_err(&r, 406, "NotAcceptable");

    // A tombstone.
    put(&k2v, "pk", "gone", b"x", None).await;
    let (_, t) = get(&k2v, "pk", "gone").await;
    del(&k2v, "pk", "gone", &t).await;
    let pg = item(&k2v, "pk", "gone");
    let r = k2v.req("GET", &pg, &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([null]));
    let tomb_tok = r.ct();
    assert_ne!(tomb_tok, t);
    for a in [
        "application/octet-stream",
        "application/octet-stream, application/json",
        "*/*",
    ] {
        let r = k2v.req("GET", &pg, &[("accept", a)], b"").await;
        assert_eq!(r.status, 204, "accept {a}: {r:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.ct(), tomb_tok, "accept {a}");
        // Regression: the 204 of a tombstone carries the raw type too.
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/octet-stream"),
            "accept {a}"
        );
    }

    // Missing items: 404 NoSuchKey, JSON error body.
    for (pk, sk) in [("pk", "missing"), ("nopk", "one")] {
        let r = k2v.req("GET", &item(&k2v, pk, sk), &[], b"").await;
        assert_err(&r, 404, "NoSuchKey");
        assert!(r.header(TOKEN).is_none());
        let j = r.json();
        assert_eq!(j["region"], "garage");
        assert_eq!(j["path"], format!("/bucket/{pk}"));
        let r = k2v
            .req(
                "GET",
                &item(&k2v, pk, sk),
                &[("accept", "application/octet-stream")],
                b"",
            )
            .await;
        assert_err(&r, 404, "NoSuchKey");
    }
}

#[tokio::test]
async fn causality_and_tokens() {
    let (_node, k2v) = single_node(NodeOpts::default());

    // Two inserts without a token: both values, in insertion order.
    put(&k2v, "c", "k", b"first", None).await;
    put(&k2v, "c", "k", b"second", None).await;
    let (v, t1) = get(&k2v, "c", "k").await;
    assert_eq!(v, vals(&[Some("first"), Some("second")]));

    // Insert with the token read: supersedes both.
    put(&k2v, "c", "k", b"third", Some(&t1)).await;
    let (v, t2) = get(&k2v, "c", "k").await;
    assert_eq!(v, vals(&[Some("third")]));
    assert_ne!(t1, t2);

    // A write with an older token is concurrent to what it did not see.
    put(&k2v, "c", "k", b"fourth", Some(&t1)).await;
    let (v, t3) = get(&k2v, "c", "k").await;
    assert_eq!(v, vals(&[Some("third"), Some("fourth")]));

    // Delete with the token: reads [null].
    del(&k2v, "c", "k", &t3).await;
    let (v, t4) = get(&k2v, "c", "k").await;
    assert_eq!(v, vec![None]);
    // And a write with the tombstone's token replaces it.
    put(&k2v, "c", "k", b"reborn", Some(&t4)).await;
    assert_eq!(get(&k2v, "c", "k").await.0, vals(&[Some("reborn")]));

    // Value then concurrent delete (older token): [value, null].
    put(&k2v, "c", "vd", b"a", None).await;
    let (_, ta) = get(&k2v, "c", "vd").await;
    put(&k2v, "c", "vd", b"b", Some(&ta)).await;
    assert_eq!(get(&k2v, "c", "vd").await.0, vals(&[Some("b")]));
    del(&k2v, "c", "vd", &ta).await;
    assert_eq!(get(&k2v, "c", "vd").await.0, vals(&[Some("b"), None]));
    // Two concurrent deletes are one tombstone.
    del(&k2v, "c", "vd", &ta).await;
    assert_eq!(get(&k2v, "c", "vd").await.0, vals(&[Some("b"), None]));

    // Equal concurrent values are deduplicated.
    put(&k2v, "c", "same", b"eq", None).await;
    put(&k2v, "c", "same", b"eq", None).await;
    put(&k2v, "c", "same", b"other", None).await;
    put(&k2v, "c", "same", b"eq", None).await;
    assert_eq!(
        get(&k2v, "c", "same").await.0,
        vals(&[Some("eq"), Some("other")])
    );

    // DeleteItem without a token: 400, nothing changed.
    let before = get(&k2v, "c", "same").await;
    let r = k2v.req("DELETE", &item(&k2v, "c", "same"), &[], b"").await;
    assert_err(&r, 400, "InvalidRequest");
    assert_eq!(get(&k2v, "c", "same").await, before);

    // Invalid tokens on insert, delete and poll: 400 CausalityToken.
    let bad = [
        "!!!not base64!!!".to_string(),
        "abc=".to_string(),
        bad_checksum(&before.1),
        truncated(&before.1),
        String::new(),
        "AAAAAAAAAAAAAAAAAAAAAA".to_string(), // 16 bytes: bad length
    ];
    for b in bad.iter() {
        let h = [(TOKEN, b.as_str())];
        let r = k2v.req("PUT", &item(&k2v, "c", "same"), &h, b"nope").await;
        assert_err(&r, 400, "CausalityToken");
        let r = k2v.req("PUT", &item(&k2v, "c", "fresh"), &h, b"nope").await;
        assert_err(&r, 400, "CausalityToken");
        let r = k2v.req("DELETE", &item(&k2v, "c", "same"), &h, b"").await;
        assert_err(&r, 400, "CausalityToken");
        let q = format!(
            "{}&causality_token={}&timeout=1",
            item(&k2v, "c", "same"),
            enc(b)
        );
        let r = k2v.req("GET", &q, &[], b"").await;
        assert_err(&r, 400, "CausalityToken");
        let body = json!([{"pk": "c", "sk": "fresh", "ct": b, "v": b64(b"nope")}]);
        let r = post_json(&k2v, &k2v.b(), &body).await;
        assert_err(&r, 400, "CausalityToken");
    }
    assert_eq!(get(&k2v, "c", "same").await, before);
    let r = k2v.req("GET", &item(&k2v, "c", "fresh"), &[], b"").await;
    assert_err(&r, 404, "NoSuchKey");

    // The empty context (8 zero bytes: checksum 0, no entry) is valid and
    // supersedes nothing.
    put(&k2v, "c", "same", b"more", Some("AAAAAAAAAAA")).await;
    assert_eq!(
        get(&k2v, "c", "same").await.0,
        vals(&[Some("eq"), Some("other"), Some("more")])
    );
}

#[tokio::test]
async fn poll_item() {
    let (node, k2v) = single_node(NodeOpts::default());
    put(&k2v, "p", "k", b"v1", None).await;
    let (_, t1) = get(&k2v, "p", "k").await;
    put(&k2v, "p", "k", b"v2", Some(&t1)).await;
    let poll = |tok: &str, timeout: u64| {
        format!(
            "{}&causality_token={}&timeout={timeout}",
            item(&k2v, "p", "k"),
            enc(tok)
        )
    };

    // The item is already newer than t1: answers at once, in ReadItem form.
    let t0 = Instant::now();
    let r = k2v.req("GET", &poll(&t1, 10), &[], b"").await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(decode_values(&r.json()), vals(&[Some("v2")]));
    let t2 = r.ct();
    assert_eq!(get(&k2v, "p", "k").await.1, t2);
    let r = k2v
        .req(
            "GET",
            &poll(&t1, 10),
            &[("accept", "application/octet-stream")],
            b"",
        )
        .await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v2"[..]));
    assert_eq!(r.ct(), t2);
    let r = k2v
        .req("GET", &poll(&t1, 10), &[("accept", "text/plain")], b"")
        .await;
    assert_err(&r, 406, "NotAcceptable");

    // Up to date: blocks until another client inserts.
    let (endpoint, creds) = (node.endpoint(), k2v.creds.clone());
    let t2c = t2.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = K2v::new(endpoint, creds);
        let r = w
            .req("PUT", &item(&w, "p", "k"), &[(TOKEN, t2c.as_str())], b"v3")
            .await;
        assert_eq!(r.status, 204);
    });
    let t0 = Instant::now();
    let r = k2v.req("GET", &poll(&t2, 20), &[], b"").await;
    let waited = t0.elapsed();
    writer.await.expect("writer");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        waited >= Duration::from_millis(250),
        "returned after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "returned after {waited:?}"
    );
    assert_eq!(decode_values(&r.json()), vals(&[Some("v3")]));
    let t3 = r.ct();
    assert_ne!(t3, t2);

    // A concurrent write (no token) also wakes the poller.
    let (endpoint, creds) = (node.endpoint(), k2v.creds.clone());
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = K2v::new(endpoint, creds);
        assert_eq!(
            w.req("PUT", &item(&w, "p", "k"), &[], b"v4").await.status,
            204
        );
    });
    let r = k2v.req("GET", &poll(&t3, 20), &[], b"").await;
    writer.await.expect("writer");
    assert_eq!(r.status, 200);
    assert_eq!(decode_values(&r.json()), vals(&[Some("v3"), Some("v4")]));
    let t4 = r.ct();
    // Several values + binary only: 409 with the token.
    let r = k2v
        .req(
            "GET",
            &poll(&t3, 5),
            &[("accept", "application/octet-stream")],
            b"",
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.ct(), t4);

    // Nothing new: 304 after the timeout.
    let t0 = Instant::now();
    let r = k2v.req("GET", &poll(&t4, 1), &[], b"").await;
    let waited = t0.elapsed();
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.body.is_empty());
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");

    // Missing item: the poll waits for its creation (or times out).
    let q = format!(
        "{}&causality_token={}&timeout=1",
        item(&k2v, "p", "absent"),
        enc(&t4)
    );
    assert_eq!(k2v.req("GET", &q, &[], b"").await.status, 304);

    // A tombstone counts as new.
    del(&k2v, "p", "k", &t4).await;
    let r = k2v.req("GET", &poll(&t4, 5), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([null]));
    let r = k2v
        .req(
            "GET",
            &poll(&t4, 5),
            &[("accept", "application/octet-stream")],
            b"",
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.header(TOKEN).is_some());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/octet-stream")
    );

    // Bad timeout: 400.
    let q = format!(
        "{}&causality_token={}&timeout=soon",
        item(&k2v, "p", "k"),
        enc(&t4)
    );
    assert_400(&k2v.req("GET", &q, &[], b"").await);
}

fn pks(j: &Value) -> Vec<String> {
    index_rows(j).into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn read_index() {
    let (_node, k2v) = single_node(NodeOpts::default());

    // a: two plain items (3 + 5 bytes).
    put(&k2v, "a", "s1", b"abc", None).await;
    put(&k2v, "a", "s2", b"hello", None).await;
    // b: one item with two concurrent values.
    put(&k2v, "b", "s1", b"xx", None).await;
    put(&k2v, "b", "s1", b"yyy", None).await;
    // c: an item then deleted (0 entries: not listed).
    put(&k2v, "c", "s1", b"zz", None).await;
    let (_, t) = get(&k2v, "c", "s1").await;
    del(&k2v, "c", "s1", &t).await;
    // e: a value and a concurrent tombstone.
    put(&k2v, "e", "s1", b"q", None).await;
    let (_, t) = get(&k2v, "e", "s1").await;
    put(&k2v, "e", "s1", b"r", Some(&t)).await;
    del(&k2v, "e", "s1", &t).await;
    // f: equal concurrent values count once.
    put(&k2v, "f", "s1", b"same", None).await;
    put(&k2v, "f", "s1", b"same", None).await;
    // p1..p3, one item each; z: only a tombstone written by a batch.
    for pk in ["p1", "p2", "p3"] {
        put(&k2v, pk, "s", b"1234", None).await;
    }
    let r = post_json(
        &k2v,
        &k2v.b(),
        &json!([{"pk": "z", "sk": "t", "ct": null, "v": null}]),
    )
    .await;
    assert_eq!(r.status, 204);

    let expected: Vec<(String, i64, i64, i64, i64)> = vec![
        ("a".into(), 2, 0, 2, 8),
        ("b".into(), 1, 1, 2, 5),
        ("e".into(), 1, 1, 1, 1),
        ("f".into(), 1, 0, 1, 4),
        ("p1".into(), 1, 0, 1, 4),
        ("p2".into(), 1, 0, 1, 4),
        ("p3".into(), 1, 0, 1, 4),
    ];
    common::eventually(20, || {
        let k2v = &k2v;
        let expected = &expected;
        async move {
            let r = k2v.req("GET", &k2v.b(), &[], b"").await;
            assert_eq!(r.status, 200);
            index_rows(&r.json()) == *expected
        }
    })
    .await;
    let r = k2v.req("GET", &k2v.b(), &[], b"").await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.json(),
        json!({
            "prefix": null, "start": null, "end": null, "limit": null, "reverse": false,
            "partitionKeys": [
                {"pk": "a", "entries": 2, "conflicts": 0, "values": 2, "bytes": 8},
                {"pk": "b", "entries": 1, "conflicts": 1, "values": 2, "bytes": 5},
                {"pk": "e", "entries": 1, "conflicts": 1, "values": 1, "bytes": 1},
                {"pk": "f", "entries": 1, "conflicts": 0, "values": 1, "bytes": 4},
                {"pk": "p1", "entries": 1, "conflicts": 0, "values": 1, "bytes": 4},
                {"pk": "p2", "entries": 1, "conflicts": 0, "values": 1, "bytes": 4},
                {"pk": "p3", "entries": 1, "conflicts": 0, "values": 1, "bytes": 4},
            ],
            "more": false, "nextStart": null,
        })
    );

    let idx = |q: &'static str| {
        let k2v = &k2v;
        async move {
            let r = k2v.req("GET", &format!("{}?{q}", k2v.b()), &[], b"").await;
            assert_eq!(r.status, 200, "{q}: {}", text(&r));
            r.json()
        }
    };
    let j = idx("prefix=p").await;
    assert_eq!(pks(&j), ["p1", "p2", "p3"]);
    assert_eq!(
        (&j["prefix"], &j["more"], &j["nextStart"]),
        (&json!("p"), &json!(false), &Value::Null)
    );
    let j = idx("prefix=p&limit=2").await;
    assert_eq!(pks(&j), ["p1", "p2"]);
    assert_eq!(
        (&j["limit"], &j["more"], &j["nextStart"]),
        (&json!(2), &json!(true), &json!("p3"))
    );
    let j = idx("prefix=p&limit=3").await;
    assert_eq!(pks(&j), ["p1", "p2", "p3"]);
    assert_eq!((&j["more"], &j["nextStart"]), (&json!(false), &Value::Null));
    let j = idx("start=b&end=p2").await;
    assert_eq!(pks(&j), ["b", "e", "f", "p1"]);
    assert_eq!((&j["start"], &j["end"]), (&json!("b"), &json!("p2")));
    // Stops exactly at end: more false.
    let j = idx("start=b&end=p1&limit=3").await;
    assert_eq!(pks(&j), ["b", "e", "f"]);
    assert_eq!(j["more"], false);
    // Deleted partitions (c) do not use up the limit, nor count for nextStart.
    let j = idx("start=b&limit=2").await;
    assert_eq!(pks(&j), ["b", "e"]);
    assert_eq!((&j["more"], &j["nextStart"]), (&json!(true), &json!("f")));
    let j = idx("limit=2&start=e").await;
    assert_eq!(pks(&j), ["e", "f"]);
    assert_eq!(j["nextStart"], "p1");
    let j = idx("reverse=true&limit=2").await;
    assert_eq!(pks(&j), ["p3", "p2"]);
    assert_eq!(
        (&j["reverse"], &j["more"], &j["nextStart"]),
        (&json!(true), &json!(true), &json!("p1"))
    );
    let j = idx("reverse=true&start=p2&end=b").await;
    assert_eq!(pks(&j), ["p2", "p1", "f", "e"]);
    let j = idx("prefix=p&reverse=true").await;
    assert_eq!(pks(&j), ["p3", "p2", "p1"]);
    let j = idx("prefix=p&start=p2&reverse=true").await;
    assert_eq!(pks(&j), ["p2", "p1"]);
    let j = idx("prefix=p&start=p2").await;
    assert_eq!(pks(&j), ["p2", "p3"]);
    let j = idx("prefix=nothing").await;
    assert_eq!(pks(&j), Vec::<String>::new());
    assert_eq!(j["more"], false);
    let j = idx("reverse=false&limit=18446744073709551615").await;
    assert_eq!(pks(&j).len(), 7);

    // start outside the prefix: 400; bad numbers / booleans: 400.
    for q in ["prefix=p&start=a", "limit=x", "limit=-1", "reverse=yes"] {
        let r = k2v.req("GET", &format!("{}?{q}", k2v.b()), &[], b"").await;
        assert_err(&r, 400, "InvalidRequest");
    }

    // Counters follow deletes and conflicts.
    let (_, t) = get(&k2v, "a", "s1").await;
    del(&k2v, "a", "s1", &t).await;
    put(&k2v, "p1", "s", b"concurrent", None).await;
    common::eventually(20, || {
        let k2v = &k2v;
        async move {
            let j = k2v
                .req("GET", &format!("{}?end=p2", k2v.b()), &[], b"")
                .await
                .json();
            index_rows(&j)
                == vec![
                    ("a".to_string(), 1, 0, 1, 5),
                    ("b".to_string(), 1, 1, 2, 5),
                    ("e".to_string(), 1, 1, 1, 1),
                    ("f".to_string(), 1, 0, 1, 4),
                    ("p1".to_string(), 1, 1, 2, 14),
                ]
        }
    })
    .await;
}

#[tokio::test]
async fn insert_batch() {
    let (_node, k2v) = single_node(NodeOpts::default());
    let b = k2v.b();

    let r = post_json(
        &k2v,
        &b,
        &json!([
            {"pk": "ib", "sk": "a", "ct": null, "v": b64(b"1")},
            {"pk": "ib", "sk": "b", "v": b64(b"2")},
            {"pk": "ib 2", "sk": "c/é", "ct": null, "v": b64(&[0, 255, 1])},
            {"pk": "ib", "sk": "t", "ct": null, "v": null},
        ]),
    )
    .await;
    assert_eq!(r.status, 204, "{}", text(&r));
    assert!(r.body.is_empty());
    assert_eq!(get(&k2v, "ib", "a").await.0, vals(&[Some("1")]));
    assert_eq!(get(&k2v, "ib", "b").await.0, vals(&[Some("2")]));
    assert_eq!(
        get(&k2v, "ib 2", "c/é").await.0,
        vec![Some(vec![0, 255, 1])]
    );
    assert_eq!(get(&k2v, "ib", "t").await.0, vec![None]);

    // With ct: supersedes; v null + ct: deletes; no ct: concurrent.
    let (_, ta) = get(&k2v, "ib", "a").await;
    let (_, tb) = get(&k2v, "ib", "b").await;
    let r = post_json(
        &k2v,
        &b,
        &json!([
            {"pk": "ib", "sk": "a", "ct": ta, "v": b64(b"3")},
            {"pk": "ib", "sk": "b", "ct": tb, "v": null},
            {"pk": "ib 2", "sk": "c/é", "ct": null, "v": b64(b"x")},
        ]),
    )
    .await;
    assert_eq!(r.status, 204, "{}", text(&r));
    assert_eq!(get(&k2v, "ib", "a").await.0, vals(&[Some("3")]));
    assert_eq!(get(&k2v, "ib", "b").await.0, vec![None]);
    assert_eq!(
        get(&k2v, "ib 2", "c/é").await.0,
        vec![Some(vec![0, 255, 1]), Some(b"x".to_vec())]
    );

    // Empty list: 204.
    assert_eq!(post_json(&k2v, &b, &json!([])).await.status, 204);

    // Malformed batches: 400 and nothing inserted (the good first item neither).
    let good = json!({"pk": "bad", "sk": "good", "ct": null, "v": b64(b"g")});
    let bodies: Vec<Vec<u8>> = vec![
        json!([good, {"pk": "bad", "sk": "x", "ct": null, "v": "!!!not base64"}])
            .to_string()
            .into(),
        json!([good, {"pk": "bad", "sk": "x", "ct": null, "v": "YQ"}])
            .to_string()
            .into(),
        json!([good, {"pk": "bad", "sk": "x", "v": b64(b"1"), "extra": 1}])
            .to_string()
            .into(),
        json!([good, {"pk": "bad", "v": b64(b"1")}])
            .to_string()
            .into(),
        json!([good, {"sk": "x", "v": b64(b"1")}])
            .to_string()
            .into(),
        json!([good, {"pk": "bad", "sk": "", "v": b64(b"1")}])
            .to_string()
            .into(),
        json!([good, {"pk": "bad", "sk": "x", "v": 12}])
            .to_string()
            .into(),
        json!([good, {"pk": 1, "sk": "x", "v": null}])
            .to_string()
            .into(),
        json!(good).to_string().into(),
        json!({"items": [good]}).to_string().into(),
        b"[{\"pk\": \"bad\", \"sk\": \"good\", ".to_vec(),
        b"".to_vec(),
        b"not json".to_vec(),
        b"[\xff]".to_vec(),
    ];
    for body in &bodies {
        let r = k2v.req("POST", &b, &[], body).await;
        assert_err(&r, 400, "InvalidRequest");
    }
    let r = post_json(
        &k2v,
        &b,
        &json!([good, {"pk": "bad", "sk": "x", "ct": "zz!", "v": null}]),
    )
    .await;
    assert_err(&r, 400, "CausalityToken");
    for sk in ["good", "x"] {
        let r = k2v.req("GET", &item(&k2v, "bad", sk), &[], b"").await;
        assert_err(&r, 404, "NoSuchKey");
    }
}

/// The `items` of one ReadBatch result as (sk, values).
fn batch_items(res: &Value) -> Items {
    res["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {res}"))
        .iter()
        .map(|i| {
            assert!(i["ct"].is_string(), "{i}");
            let mut keys: Vec<&str> = i
                .as_object()
                .expect("obj")
                .keys()
                .map(|k| k.as_str())
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, ["ct", "sk", "v"], "{i}");
            (
                i["sk"].as_str().expect("sk").to_string(),
                decode_values(&i["v"]),
            )
        })
        .collect()
}

fn sks(res: &Value) -> Vec<String> {
    batch_items(res).into_iter().map(|(s, _)| s).collect()
}

#[tokio::test]
async fn read_batch() {
    let (_node, k2v) = single_node(NodeOpts::default());
    for (sk, v) in [
        ("a", "A"),
        ("b", "B"),
        ("c", "C1"),
        ("c", "C2"),
        ("d", "D"),
        ("e", "E"),
    ] {
        put(&k2v, "rb", sk, v.as_bytes(), None).await;
    }
    for sk in ["x1", "x2", "y1"] {
        put(&k2v, "rb", sk, sk.as_bytes(), None).await;
    }
    let (_, td) = get(&k2v, "rb", "d").await;
    del(&k2v, "rb", "d", &td).await;
    let (_, tc) = get(&k2v, "rb", "c").await;

    let queries = json!([
        {"partitionKey": "rb"},
        {"partitionKey": "rb", "start": "b", "end": "e"},
        {"partitionKey": "rb", "start": "b", "end": "e", "tombstones": true},
        {"partitionKey": "rb", "limit": 2},
        {"partitionKey": "rb", "prefix": "x"},
        {"partitionKey": "rb", "prefix": "x", "limit": 2},
        {"partitionKey": "rb", "reverse": true, "limit": 3},
        {"partitionKey": "rb", "reverse": true, "start": "c", "end": "a"},
        {"partitionKey": "rb", "prefix": "x", "reverse": true},
        {"partitionKey": "rb", "conflictsOnly": true},
        {"partitionKey": "rb", "singleItem": true, "start": "c"},
        {"partitionKey": "rb", "singleItem": true, "start": "d"},
        {"partitionKey": "rb", "singleItem": true, "start": "d", "tombstones": true},
        {"partitionKey": "rb", "singleItem": true, "start": "zz"},
        {"partitionKey": "nothing here"},
        {"partitionKey": "rb", "prefix": "x", "start": "x2"},
        {"partitionKey": "rb", "limit": 4},
        {"partitionKey": "rb", "start": "c", "limit": 3, "tombstones": true},
        {"partitionKey": "rb", "end": "c", "limit": 2},
        {"partitionKey": "rb", "prefix": "x", "start": "x1", "reverse": true},
        {"partitionKey": "rb", "start": "x", "limit": 18446744073709551615u64},
        {"partitionKey": "rb", "conflictsOnly": true, "singleItem": true, "start": "a"},
        {"partitionKey": "rb", "start": "c", "end": "c"},
    ]);
    let r = k2v
        .req(
            "POST",
            &format!("{}?search", k2v.b()),
            &[],
            queries.to_string().as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let res = r.json();
    let res = res.as_array().expect("array");
    assert_eq!(res.len(), queries.as_array().expect("q").len());

    // Every result repeats its query's fields and adds items/more/nextStart.
    for (q, r) in queries.as_array().expect("q").iter().zip(res.iter()) {
        let mut keys: Vec<&str> = r
            .as_object()
            .expect("obj")
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "conflictsOnly",
                "end",
                "items",
                "limit",
                "more",
                "nextStart",
                "partitionKey",
                "prefix",
                "reverse",
                "singleItem",
                "start",
                "tombstones"
            ],
            "{r}"
        );
        for f in ["partitionKey", "prefix", "start", "end", "limit"] {
            assert_eq!(r[f], q.get(f).cloned().unwrap_or(Value::Null), "{f} in {r}");
        }
        for f in ["reverse", "singleItem", "conflictsOnly", "tombstones"] {
            assert_eq!(
                r[f],
                q.get(f).cloned().unwrap_or(json!(false)),
                "{f} in {r}"
            );
        }
    }
    let s = |i: usize| sks(&res[i]);
    let more = |i: usize| (res[i]["more"].clone(), res[i]["nextStart"].clone());
    let no_more = (json!(false), Value::Null);

    assert_eq!(s(0), ["a", "b", "c", "e", "x1", "x2", "y1"]);
    assert_eq!(more(0), no_more);
    assert_eq!(
        batch_items(&res[0])[..3],
        [
            ("a".to_string(), vals(&[Some("A")])),
            ("b".to_string(), vals(&[Some("B")])),
            ("c".to_string(), vals(&[Some("C1"), Some("C2")])),
        ]
    );
    assert_eq!(res[0]["items"][2]["ct"], tc.as_str());
    assert_eq!(s(1), ["b", "c"]);
    assert_eq!(
        batch_items(&res[2]),
        vec![
            ("b".to_string(), vals(&[Some("B")])),
            ("c".to_string(), vals(&[Some("C1"), Some("C2")])),
            ("d".to_string(), vec![None]),
        ]
    );
    assert_eq!(s(3), ["a", "b"]);
    assert_eq!(more(3), (json!(true), json!("c")));
    assert_eq!(s(4), ["x1", "x2"]);
    assert_eq!(s(5), ["x1", "x2"]);
    assert_eq!(more(5), no_more, "limit equal to the keys left");
    assert_eq!(s(6), ["y1", "x2", "x1"]);
    assert_eq!(more(6), (json!(true), json!("e")));
    assert_eq!(s(7), ["c", "b"]);
    assert_eq!(more(7), no_more);
    assert_eq!(s(8), ["x2", "x1"]);
    assert_eq!(
        batch_items(&res[9]),
        vec![("c".to_string(), vals(&[Some("C1"), Some("C2")]))]
    );
    assert_eq!(
        batch_items(&res[10]),
        vec![("c".to_string(), vals(&[Some("C1"), Some("C2")]))]
    );
    assert_eq!(res[10]["items"][0]["ct"], tc.as_str());
    assert_eq!(more(10), no_more);
    assert_eq!(s(11), Vec::<String>::new());
    assert_eq!(batch_items(&res[12]), vec![("d".to_string(), vec![None])]);
    assert_eq!(s(13), Vec::<String>::new());
    assert_eq!(s(14), Vec::<String>::new());
    assert_eq!(more(14), no_more);
    assert_eq!(s(15), ["x2"]);
    assert_eq!(s(16), ["a", "b", "c", "e"]);
    assert_eq!(more(16), (json!(true), json!("x1")));
    assert_eq!(s(17), ["c", "d", "e"]);
    assert_eq!(more(17), (json!(true), json!("x1")));
    assert_eq!(s(18), ["a", "b"]);
    assert_eq!(more(18), no_more, "stops exactly at end");
    assert_eq!(s(19), ["x1"]);
    assert_eq!(s(20), ["x1", "x2", "y1"]);
    assert_eq!(more(20), no_more);
    assert_eq!(s(21), Vec::<String>::new());
    assert_eq!(s(22), Vec::<String>::new());

    // SEARCH /bucket: same answer.
    let r2 = k2v
        .req("SEARCH", &k2v.b(), &[], queries.to_string().as_bytes())
        .await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.json(), Value::Array(res.clone()));
    // Paging with nextStart walks everything.
    let mut start: Option<String> = None;
    let mut all = vec![];
    loop {
        let mut q = json!({"partitionKey": "rb", "limit": 2});
        if let Some(s) = &start {
            q["start"] = json!(s);
        }
        let r = k2v
            .req("SEARCH", &k2v.b(), &[], json!([q]).to_string().as_bytes())
            .await;
        let j = r.json();
        all.extend(sks(&j[0]));
        match j[0]["nextStart"].as_str() {
            Some(n) => {
                assert_eq!(j[0]["more"], true);
                start = Some(n.to_string());
            }
            None => break,
        }
    }
    assert_eq!(all, ["a", "b", "c", "e", "x1", "x2", "y1"]);
    // An empty list of searches.
    let r = k2v.req("SEARCH", &k2v.b(), &[], b"[]").await;
    assert_eq!((r.status, r.json()), (200, json!([])));

    // Invalid searches: 400.
    let bad = [
        json!([{"partitionKey": "rb", "singleItem": true, "start": "a", "prefix": "a"}]),
        json!([{"partitionKey": "rb", "singleItem": true, "start": "a", "end": "b"}]),
        json!([{"partitionKey": "rb", "singleItem": true, "start": "a", "limit": 1}]),
        json!([{"partitionKey": "rb", "singleItem": true, "start": "a", "reverse": true}]),
        json!([{"partitionKey": "rb", "singleItem": true}]),
        json!([{"prefix": "a"}]),
        json!([{"partitionKey": "rb"}, {}]),
        json!([{"partitionKey": "rb", "prefix": "x", "start": "a"}]),
        json!([{"partitionKey": "rb", "unknown": 1}]),
        json!([{"partitionKey": "rb", "limit": -1}]),
        json!([{"partitionKey": "rb", "reverse": "yes"}]),
        json!({"partitionKey": "rb"}),
    ];
    for q in &bad {
        for (m, p) in [("POST", format!("{}?search", k2v.b())), ("SEARCH", k2v.b())] {
            let r = k2v.req(m, &p, &[], q.to_string().as_bytes()).await;
            assert_err(&r, 400, "InvalidRequest");
        }
    }
    for body in [&b"[{"[..], b"", b"null"] {
        let r = k2v.req("SEARCH", &k2v.b(), &[], body).await;
        assert_err(&r, 400, "InvalidRequest");
    }
}

#[tokio::test]
async fn delete_batch() {
    let (_node, k2v) = single_node(NodeOpts::default());
    for sk in ["a", "b", "c", "d", "x1", "x2"] {
        put(&k2v, "db", sk, sk.as_bytes(), None).await;
    }
    put(&k2v, "db", "c", b"c-concurrent", None).await;
    put(&k2v, "db2", "a", b"a", None).await;
    put(&k2v, "db2", "b", b"b", None).await;
    let del_path = format!("{}?delete", k2v.b());

    // Validation comes first: a bad search anywhere deletes nothing.
    let bad = [
        json!([{"partitionKey": "db"}, {"partitionKey": "db", "limit": 1}]),
        json!([{"partitionKey": "db"}, {"partitionKey": "db", "reverse": true}]),
        json!([{"partitionKey": "db"}, {"partitionKey": "db", "singleItem": true}]),
        json!([{"partitionKey": "db"}, {"partitionKey": "db", "singleItem": true, "start": "a", "prefix": "a"}]),
        json!([{"partitionKey": "db"}, {"partitionKey": "db", "singleItem": true, "start": "a", "end": "b"}]),
        json!([{"partitionKey": "db"}, {"partitionKey": "db", "prefix": "x", "start": "a"}]),
        json!([{"partitionKey": "db"}, {"prefix": "x"}]),
        json!({"partitionKey": "db"}),
    ];
    for q in &bad {
        let r = post_json(&k2v, &del_path, q).await;
        assert_err(&r, 400, "InvalidRequest");
    }
    assert_eq!(
        post_json(&k2v, &del_path, &json!([])).await.json(),
        json!([])
    );
    assert_eq!(get(&k2v, "db", "a").await.0, vals(&[Some("a")]));

    let r = post_json(
        &k2v,
        &del_path,
        &json!([
            {"partitionKey": "db", "start": "b", "end": "d"},
            {"partitionKey": "db", "prefix": "x"},
            {"partitionKey": "db2", "singleItem": true, "start": "a"},
            {"partitionKey": "db", "singleItem": true, "start": "nope"},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.json(),
        json!([
            {"partitionKey": "db", "prefix": null, "start": "b", "end": "d", "singleItem": false, "deletedItems": 2},
            {"partitionKey": "db", "prefix": "x", "start": null, "end": null, "singleItem": false, "deletedItems": 2},
            {"partitionKey": "db2", "prefix": null, "start": "a", "end": null, "singleItem": true, "deletedItems": 1},
            {"partitionKey": "db", "prefix": null, "start": "nope", "end": null, "singleItem": true, "deletedItems": 0},
        ])
    );
    // Deleted items read as tombstones (the conflicting one too: the
    // tombstone's context covered both values); the others are intact.
    for sk in ["b", "c", "x1", "x2"] {
        assert_eq!(get(&k2v, "db", sk).await.0, vec![None], "{sk}");
    }
    assert_eq!(get(&k2v, "db2", "a").await.0, vec![None]);
    assert_eq!(get(&k2v, "db", "a").await.0, vals(&[Some("a")]));
    assert_eq!(get(&k2v, "db", "d").await.0, vals(&[Some("d")]));
    assert_eq!(get(&k2v, "db2", "b").await.0, vals(&[Some("b")]));
    let r = k2v
        .req(
            "SEARCH",
            &k2v.b(),
            &[],
            json!([{"partitionKey": "db", "tombstones": true}, {"partitionKey": "db"}])
                .to_string()
                .as_bytes(),
        )
        .await;
    let j = r.json();
    assert_eq!(sks(&j[0]), ["a", "b", "c", "d", "x1", "x2"]);
    assert_eq!(sks(&j[1]), ["a", "d"]);

    // A write after the delete is not affected; deleting again counts only live items.
    let (_, tb) = get(&k2v, "db", "b").await;
    put(&k2v, "db", "b", b"back", Some(&tb)).await;
    let r = post_json(
        &k2v,
        &del_path,
        &json!([{"partitionKey": "db", "start": "b", "end": "d"}]),
    )
    .await;
    assert_eq!(r.json()[0]["deletedItems"], 1);
    let r = post_json(
        &k2v,
        &del_path,
        &json!([{"partitionKey": "db", "start": "b", "end": "d"}]),
    )
    .await;
    assert_eq!(r.json()[0]["deletedItems"], 0);
    // Whole partition.
    let r = post_json(&k2v, &del_path, &json!([{"partitionKey": "db"}])).await;
    assert_eq!(r.json()[0]["deletedItems"], 2);
    let r = k2v
        .req(
            "SEARCH",
            &k2v.b(),
            &[],
            json!([{"partitionKey": "db"}]).to_string().as_bytes(),
        )
        .await;
    assert_eq!(sks(&r.json()[0]), Vec::<String>::new());
    // Deleted partitions disappear from the index.
    common::eventually(20, || {
        let k2v = &k2v;
        async move {
            let j = k2v.req("GET", &k2v.b(), &[], b"").await.json();
            pks(&j) == ["db2"]
        }
    })
    .await;
}

/// PollRange answer: (items as (sk, values), marker).
fn poll_items(r: &Resp) -> (Items, String) {
    assert_eq!(r.status, 200, "{r:?} {}", text(r));
    let j = r.json();
    let mut keys: Vec<&str> = j
        .as_object()
        .expect("obj")
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["items", "seenMarker"], "{j}");
    (
        batch_items(&j),
        j["seenMarker"].as_str().expect("marker").to_string(),
    )
}

#[tokio::test]
async fn poll_range() {
    let (node, k2v) = single_node(NodeOpts::default());
    for sk in ["a1", "a2", "b1", "b2"] {
        put(&k2v, "pr", sk, sk.as_bytes(), None).await;
    }
    put(&k2v, "other", "b1", b"elsewhere", None).await;
    let pr = format!("{}/pr?poll_range", k2v.b());

    // No marker: the whole range at once.
    let r = post_json(&k2v, &pr, &json!({})).await;
    let (items, m0) = poll_items(&r);
    assert_eq!(
        items,
        vec![
            ("a1".to_string(), vals(&[Some("a1")])),
            ("a2".to_string(), vals(&[Some("a2")])),
            ("b1".to_string(), vals(&[Some("b1")])),
            ("b2".to_string(), vals(&[Some("b2")])),
        ]
    );
    assert!(!m0.is_empty());
    let (_, ta1) = get(&k2v, "pr", "a1").await;
    assert_eq!(r.json()["items"][0]["ct"], ta1.as_str());
    // Prefix with keys sorting before it: the whole prefix content.
    let r = post_json(&k2v, &pr, &json!({"prefix": "b", "timeout": 5})).await;
    let (items, _) = poll_items(&r);
    assert_eq!(
        items.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
        ["b1", "b2"]
    );
    let r = post_json(&k2v, &pr, &json!({"start": "a2", "end": "b2"})).await;
    assert_eq!(
        poll_items(&r)
            .0
            .iter()
            .map(|i| i.0.as_str())
            .collect::<Vec<_>>(),
        ["a2", "b1"]
    );
    // SEARCH works too; nulls are accepted for absent fields.
    let r = k2v
        .req(
            "SEARCH",
            &pr,
            &[],
            json!({"prefix": null, "start": null, "end": null, "seenMarker": null, "timeout": 1})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(poll_items(&r).0.len(), 4);
    // An empty range: empty items and a marker.
    let r = post_json(&k2v, &format!("{}/empty?poll_range", k2v.b()), &json!({})).await;
    let (items, m_empty) = poll_items(&r);
    assert!(items.is_empty());

    // With the marker, nothing new: 304 after the timeout.
    let t0 = Instant::now();
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m0, "timeout": 1})).await;
    assert_eq!(r.status, 304, "{r:?} {}", text(&r));
    assert!(r.body.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(900));

    // With the marker: waits for a new item and returns only it.
    let spawn_put = |pk: &'static str, sk: &'static str, v: &'static [u8], ct: Option<String>| {
        let (endpoint, creds) = (node.endpoint(), k2v.creds.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let w = K2v::new(endpoint, creds);
            let h: Vec<(&str, &str)> = ct.as_deref().map(|c| vec![(TOKEN, c)]).unwrap_or_default();
            let r = w.req("PUT", &item(&w, pk, sk), &h, v).await;
            assert_eq!(r.status, 204);
        })
    };
    let w = spawn_put("pr", "a3", b"new", None);
    let t0 = Instant::now();
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m0, "timeout": 20})).await;
    let waited = t0.elapsed();
    w.await.expect("writer");
    let (items, m1) = poll_items(&r);
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(items, vec![("a3".to_string(), vals(&[Some("new")]))]);
    assert_ne!(m1, m0);
    // The old marker still sees a3 as new (at once); the new one does not.
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m0, "timeout": 5})).await;
    assert_eq!(
        poll_items(&r)
            .0
            .iter()
            .map(|i| i.0.as_str())
            .collect::<Vec<_>>(),
        ["a3"]
    );

    // An update of an existing item, watched through a sub-range of the marker.
    let (_, tb1) = get(&k2v, "pr", "b1").await;
    let w = spawn_put("pr", "b1", b"b1-v2", Some(tb1));
    let r = post_json(
        &k2v,
        &pr,
        &json!({"prefix": "b", "seenMarker": m1, "timeout": 20}),
    )
    .await;
    w.await.expect("writer");
    let (items, m2) = poll_items(&r);
    assert_eq!(items, vec![("b1".to_string(), vals(&[Some("b1-v2")]))]);
    // Changes outside the polled range are not reported, changes in it are.
    put(&k2v, "pr", "a1", b"a1-concurrent", None).await;
    put(&k2v, "other", "b2", b"other partition", None).await;
    let r = post_json(
        &k2v,
        &pr,
        &json!({"prefix": "b", "seenMarker": m2, "timeout": 1}),
    )
    .await;
    assert_eq!(r.status, 304, "{}", text(&r));
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m1, "timeout": 5})).await;
    let (items, m3) = poll_items(&r);
    assert_eq!(
        items.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
        ["a1", "b1"]
    );
    assert_eq!(items[0].1, vals(&[Some("a1"), Some("a1-concurrent")]));
    // A deletion is a change, reported as a tombstone.
    let (_, ta2) = get(&k2v, "pr", "a2").await;
    del(&k2v, "pr", "a2", &ta2).await;
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m3, "timeout": 5})).await;
    let (items, _) = poll_items(&r);
    assert_eq!(items, vec![("a2".to_string(), vec![None])]);
    // The marker of an empty range sees a first insert.
    let w = spawn_put("empty", "first", b"1", None);
    let r = post_json(
        &k2v,
        &format!("{}/empty?poll_range", k2v.b()),
        &json!({"seenMarker": m_empty, "timeout": 20}),
    )
    .await;
    w.await.expect("writer");
    assert_eq!(
        poll_items(&r).0,
        vec![("first".to_string(), vals(&[Some("1")]))]
    );

    // Items written together (one InsertBatch) wake a waiting poll together:
    // the answer holds every new item, not only the first one notified.
    let r = post_json(&k2v, &pr, &json!({})).await;
    let (_, m4) = poll_items(&r);
    let (endpoint, creds) = (node.endpoint(), k2v.creds.clone());
    let w = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = K2v::new(endpoint, creds);
        let body = json!([
            {"pk": "pr", "sk": "c1", "ct": null, "v": b64(b"1")},
            {"pk": "pr", "sk": "c2", "ct": null, "v": b64(b"2")},
            {"pk": "pr", "sk": "c3", "ct": null, "v": b64(b"3")},
        ]);
        assert_eq!(post_json(&w, &w.b(), &body).await.status, 204);
    });
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m4, "timeout": 20})).await;
    w.await.expect("writer");
    let (items, m5) = poll_items(&r);
    assert_eq!(
        items.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(),
        ["c1", "c2", "c3"],
        "a poll woken by a batch must return the whole batch"
    );
    let r = post_json(&k2v, &pr, &json!({"seenMarker": m5, "timeout": 1})).await;
    assert_eq!(r.status, 304, "{}", text(&r));

    // Malformed requests: 400.
    let bad = [
        json!({"seenMarker": "!!!", "timeout": 1}),
        json!({"seenMarker": "aGVsbG8gd29ybGQ=", "timeout": 1}),
        json!({"seenMarker": "", "timeout": 1}),
        json!({"seenMarker": 12}),
        json!({"prefix": "b", "start": "a"}),
        json!({"limit": 1}),
        json!({"timeout": -1}),
        json!("{}"),
    ];
    for body in &bad {
        let r = post_json(&k2v, &pr, body).await;
        assert_eq!(r.status, 400, "{body}: {}", text(&r));
        assert_err(&r, 400, "InvalidRequest");
    }
    for body in [&b"{"[..], b"", b"null"] {
        let r = k2v.req("POST", &pr, &[], body).await;
        assert_err(&r, 400, "InvalidRequest");
    }
}

#[tokio::test]
async fn auth_and_keys() {
    let (node, k2v) = single_node(NodeOpts::default());
    put(&k2v, "pk", "sk", b"v", None).await;
    let p = item(&k2v, "pk", "sk");

    // Unsigned: 403 AccessDenied.
    for (m, path) in [("GET", p.as_str()), ("PUT", p.as_str()), ("GET", "/bucket")] {
        let r = k2v.send(m, path, &[], b"x", Sign::None).await;
        assert_err(&r, 403, "AccessDenied");
    }
    // Wrong secret, unknown key id.
    let mut wrong = k2v.creds.clone();
    wrong.secret = format!("{}x", &wrong.secret[..wrong.secret.len() - 1]);
    let r = K2v::new(node.endpoint(), wrong)
        .req("GET", &p, &[], b"")
        .await;
    assert_err(&r, 403, "AccessDenied");
    let unknown = Creds {
        key_id: "GK0123456789abcdef01234567".into(),
        ..k2v.creds.clone()
    };
    let r = K2v::new(node.endpoint(), unknown)
        .req("GET", &p, &[], b"")
        .await;
    assert_err(&r, 403, "AccessDenied");
    // Unknown bucket: 404 NoSuchBucket.
    let r = k2v.req("GET", "/nobucket/pk?sort_key=sk", &[], b"").await;
    assert_err(&r, 404, "NoSuchBucket");
    let r = k2v.req("GET", "/nobucket", &[], b"").await;
    assert_err(&r, 404, "NoSuchBucket");
    // Wrong region in the scope: 400 AuthorizationHeaderMalformed.
    let mut other = K2v::new(node.endpoint(), k2v.creds.clone());
    other.region = "other".into();
    let r = other.req("GET", &p, &[], b"").await;
    assert_err(&r, 400, "AuthorizationHeaderMalformed");
    // Payload hash not matching the body: 400 InvalidDigest, nothing written.
    let r = k2v
        .send_custom(
            "PUT",
            &item(&k2v, "pk", "digest"),
            &[],
            b"actual body",
            CustomSign {
                payload: Some(PayloadHash::of_body(b"announced body")),
                now_ms: None,
            },
        )
        .await;
    assert_err(&r, 400, "InvalidDigest");
    assert_err(
        &k2v.req("GET", &item(&k2v, "pk", "digest"), &[], b"").await,
        404,
        "NoSuchKey",
    );
    // Clock skew beyond 15 minutes: 403 RequestTimeTooSkewed.
    for skew in [-20i64, 20] {
        let t = (now_ms() as i64 + skew * 60_000) as u64;
        let r = k2v
            .send_custom(
                "GET",
                &p,
                &[],
                b"",
                CustomSign {
                    payload: None,
                    now_ms: Some(t),
                },
            )
            .await;
        assert_err(&r, 403, "RequestTimeTooSkewed");
    }
    let t = now_ms() - 5 * 60_000;
    let r = k2v
        .send_custom(
            "GET",
            &p,
            &[],
            b"",
            CustomSign {
                payload: None,
                now_ms: Some(t),
            },
        )
        .await;
    assert_eq!(r.status, 200);
    // UNSIGNED-PAYLOAD is accepted.
    let r = k2v
        .send(
            "PUT",
            &item(&k2v, "pk", "unsigned"),
            &[],
            b"u",
            Sign::Unsigned,
        )
        .await;
    assert_eq!(r.status, 204, "{}", text(&r));
    assert_eq!(get(&k2v, "pk", "unsigned").await.0, vals(&[Some("u")]));
    let r = k2v
        .send(
            "POST",
            &format!("{}?search", k2v.b()),
            &[],
            br#"[{"partitionKey":"pk"}]"#,
            Sign::Unsigned,
        )
        .await;
    assert_eq!(r.status, 200);

    // Presigned URLs: valid, expired, not yet valid.
    let url = k2v.presign("GET", &p, 300, now_ms());
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let r = k2v.send("GET", &url, &[], b"", Sign::None).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json(), json!([b64(b"v")]));
    let url = k2v.presign("PUT", &item(&k2v, "pk", "presigned"), 300, now_ms());
    let r = k2v.send("PUT", &url, &[], b"pre", Sign::None).await;
    assert_eq!(r.status, 204, "{}", text(&r));
    assert_eq!(get(&k2v, "pk", "presigned").await.0, vals(&[Some("pre")]));
    let url = k2v.presign("GET", &p, 60, now_ms() - 3_600_000);
    let r = k2v.send("GET", &url, &[], b"", Sign::None).await;
    assert_err(&r, 403, "AccessDenied");
    let url = k2v.presign("GET", &p, 60, now_ms() + 3_600_000);
    let r = k2v.send("GET", &url, &[], b"", Sign::None).await;
    assert_eq!(r.status, 403, "{}", text(&r));
    // A presigned URL for another path or method does not work.
    let url = k2v.presign("GET", &p, 300, now_ms());
    let r = k2v.send("DELETE", &url, &[], b"", Sign::None).await;
    assert_err(&r, 403, "AccessDenied");
    let tampered = url.replace("sort_key=sk", "sort_key=other");
    assert_err(
        &k2v.send("GET", &tampered, &[], b"", Sign::None).await,
        403,
        "AccessDenied",
    );

    // A second key: no permission, then read-only.
    let out = node.cli_ok(&["key", "create", "k2"]);
    let k2 = K2v::new(
        node.endpoint(),
        Creds {
            key_id: field(&out, "Key ID: "),
            secret: field(&out, "Secret key: "),
            bucket: "bucket".into(),
        },
    );
    let search = format!("{}?search", k2v.b());
    let delete = format!("{}?delete", k2v.b());
    let poll = format!("{}/pk?poll_range", k2v.b());
    let q_pk = br#"[{"partitionKey":"pk"}]"#;
    let reads: Vec<(&str, String, Vec<u8>)> = vec![
        ("GET", p.clone(), vec![]),
        ("GET", k2v.b(), vec![]),
        ("POST", search.clone(), q_pk.to_vec()),
        ("SEARCH", k2v.b(), q_pk.to_vec()),
        ("POST", poll.clone(), b"{}".to_vec()),
    ];
    let writes: Vec<(&str, String, Vec<u8>)> = vec![
        ("PUT", p.clone(), b"k2".to_vec()),
        (
            "POST",
            k2v.b(),
            br#"[{"pk":"pk","sk":"sk","ct":null,"v":"YQ=="}]"#.to_vec(),
        ),
        ("POST", delete.clone(), q_pk.to_vec()),
    ];
    for (m, path, body) in reads.iter().chain(writes.iter()) {
        let r = k2.req(m, path, &[], body).await;
        assert_err(&r, 403, "AccessDenied");
    }
    let (_, tok) = get(&k2v, "pk", "sk").await;
    let r = k2.req("DELETE", &p, &[(TOKEN, tok.as_str())], b"").await;
    assert_err(&r, 403, "AccessDenied");
    node.cli_ok(&[
        "bucket",
        "allow",
        "--read",
        "bucket",
        "--key",
        &k2.creds.key_id,
    ]);
    for (m, path, body) in reads.iter() {
        let r = k2.req(m, path, &[], body).await;
        assert_eq!(r.status, 200, "{m} {path}: {}", text(&r));
    }
    for (m, path, body) in writes.iter() {
        let r = k2.req(m, path, &[], body).await;
        assert_err(&r, 403, "AccessDenied");
    }
    let r = k2.req("DELETE", &p, &[(TOKEN, tok.as_str())], b"").await;
    assert_err(&r, 403, "AccessDenied");
    assert_eq!(get(&k2v, "pk", "sk").await.0, vals(&[Some("v")]));

    // Keys with spaces, unicode, `/`, `%`, `+`, `&`, `=`, `?`, `#` round-trip.
    let keys = [
        ("my pk", "my sk"),
        ("ünï/cødé", "日本語 キー"),
        ("100% / 50%", "a%2Fb"),
        ("plus+and&eq=", "q?x=1&y#z+ /"),
        ("emoji 🦀", "~._-!*'()"),
    ];
    for (i, (pk, sk)) in keys.iter().enumerate() {
        let v = format!("value {i}");
        put(&k2v, pk, sk, v.as_bytes(), None).await;
        let (got, _) = get(&k2v, pk, sk).await;
        assert_eq!(got, vec![Some(v.clone().into_bytes())], "{pk} / {sk}");
        let r = k2v
            .req(
                "SEARCH",
                &k2v.b(),
                &[],
                json!([{"partitionKey": pk}]).to_string().as_bytes(),
            )
            .await;
        assert_eq!(sks(&r.json()[0]), [sk.to_string()], "{pk}");
    }
    // A `/` in the partition key may also be sent unencoded.
    let r = k2v.req("GET", "/bucket/%C3%BCn%C3%AF/c%C3%B8d%C3%A9?sort_key=%E6%97%A5%E6%9C%AC%E8%AA%9E%20%E3%82%AD%E3%83%BC", &[], b"").await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json(), json!([b64(b"value 1")]));
    common::eventually(20, || {
        let k2v = &k2v;
        async move {
            let j = k2v.req("GET", &k2v.b(), &[], b"").await.json();
            let all = pks(&j);
            keys.iter().all(|(pk, _)| all.iter().any(|a| a == pk))
        }
    })
    .await;
}

#[tokio::test]
async fn body_size_limit() {
    let (_node, k2v) = single_node(NodeOpts {
        k2v_extra: "max_body_size = \"1KiB\"".into(),
        ..Default::default()
    });
    let r = k2v
        .req("PUT", &item(&k2v, "pk", "big"), &[], &[7u8; 2048])
        .await;
    assert_err(&r, 413, "EntityTooLarge");
    let r = k2v
        .send(
            "PUT",
            &item(&k2v, "pk", "big"),
            &[],
            &[7u8; 1025],
            Sign::Unsigned,
        )
        .await;
    assert_err(&r, 413, "EntityTooLarge");
    assert_err(
        &k2v.req("GET", &item(&k2v, "pk", "big"), &[], b"").await,
        404,
        "NoSuchKey",
    );
    put(&k2v, "pk", "ok", &[7u8; 1024], None).await;
    assert_eq!(get(&k2v, "pk", "ok").await.0, vec![Some(vec![7u8; 1024])]);
    // A streamed (chunked) body without Content-Length is cut at the limit.
    let te: &[(&str, &[u8])] = &[("transfer-encoding", b"chunked")];
    let path = item(&k2v, "pk", "chunked");
    assert_eq!(
        raw_request(&k2v, "PUT", &path, te, &chunked(64 * 1024)).await,
        413
    );
    assert_err(&k2v.req("GET", &path, &[], b"").await, 404, "NoSuchKey");
    assert_eq!(
        raw_request(&k2v, "PUT", &path, te, &chunked(1000)).await,
        204
    );
    assert_eq!(
        get(&k2v, "pk", "chunked").await.0,
        vec![Some(vec![b'z'; 1000])]
    );
    let big_batch: Vec<Value> = (0..40)
        .map(|i| json!({"pk": "pk", "sk": format!("k{i}"), "ct": null, "v": b64(b"0123456789")}))
        .collect();
    let r = post_json(&k2v, &k2v.b(), &Value::Array(big_batch)).await;
    assert_err(&r, 413, "EntityTooLarge");
}

#[tokio::test]
async fn bad_input_never_breaks_the_server() {
    let (node, k2v) = single_node(NodeOpts::default());
    put(&k2v, "pk", "sk", b"before", None).await;
    let b = k2v.b();
    let deep = "[".repeat(100_000);

    // (method, path, body, expected status)
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("POST", b.clone(), b"{".to_vec(), 400),
        ("POST", b.clone(), deep.clone().into_bytes(), 400),
        (
            "POST",
            format!("{b}?search"),
            deep.clone().into_bytes(),
            400,
        ),
        ("POST", format!("{b}?delete"), b"[1,2,3]".to_vec(), 400),
        ("POST", format!("{b}/pk?poll_range"), deep.into_bytes(), 400),
        (
            "POST",
            format!("{b}?search"),
            br#"[{"partitionKey":"pk","limit":18446744073709551615}]"#.to_vec(),
            200,
        ),
        (
            "POST",
            format!("{b}?search"),
            br#"[{"partitionKey":"pk","limit":18446744073709551616}]"#.to_vec(),
            400,
        ),
        (
            "POST",
            format!("{b}?search"),
            br#"[{"partitionKey":"pk","limit":0}]"#.to_vec(),
            200,
        ),
        (
            "POST",
            format!("{b}?search"),
            br#"[{"partitionKey":"pk","start":"z","end":"a"}]"#.to_vec(),
            200,
        ),
        (
            "POST",
            format!("{b}?search"),
            br#"[{"partitionKey":"pk","start":"a","end":"z","reverse":true}]"#.to_vec(),
            200,
        ),
        (
            "POST",
            format!("{b}?search"),
            br#"[{"partitionKey":"pk","prefix":"\u00ff\u00ff"}]"#.to_vec(),
            200,
        ),
        (
            "POST",
            format!("{b}?delete"),
            br#"[{"partitionKey":"pk","start":"z","end":"a"}]"#.to_vec(),
            200,
        ),
        (
            "POST",
            format!("{b}/pk?poll_range"),
            br#"{"start":"z","end":"a"}"#.to_vec(),
            200,
        ),
        (
            "GET",
            format!("{b}?limit=18446744073709551615"),
            vec![],
            200,
        ),
        (
            "GET",
            format!("{b}?limit=99999999999999999999999"),
            vec![],
            400,
        ),
        ("GET", format!("{b}?limit=0"), vec![], 200),
        ("GET", format!("{b}?start=z&end=a"), vec![], 200),
        (
            "GET",
            format!("{b}?start=a&end=z&reverse=true"),
            vec![],
            200,
        ),
        ("GET", format!("{b}?prefix=%FF"), vec![], 400),
        ("GET", format!("{b}/%FF%FE?sort_key=a"), vec![], 400),
        ("GET", format!("{b}/pk?sort_key=%C3"), vec![], 400),
        ("PUT", format!("{b}/pk?sort_key=%80"), b"x".to_vec(), 400),
        ("GET", format!("{b}/pk?sort_key=%zz"), vec![], 404),
        ("GET", format!("{b}/pk?sort_key="), vec![], 400),
        ("GET", format!("{b}/pk"), vec![], 400),
        ("PUT", format!("{b}/pk?sort_key="), b"x".to_vec(), 400),
        ("DELETE", format!("{b}/pk"), vec![], 400),
        ("PUT", b.clone(), b"x".to_vec(), 400),
        ("DELETE", b.clone(), vec![], 400),
        ("SEARCH", format!("{b}/pk"), b"{}".to_vec(), 400),
        ("POST", format!("{b}/pk"), b"{}".to_vec(), 400),
        ("POST", format!("{b}/pk?search"), b"[]".to_vec(), 400),
        (
            "GET",
            format!("{b}/pk?sort_key=sk&causality_token=x&timeout=-3"),
            vec![],
            400,
        ),
        ("GET", format!("{b}?reverse=1"), vec![], 400),
        ("PATCH", format!("{b}/pk?sort_key=sk"), vec![], 405),
        ("FOO", format!("{b}/pk?sort_key=sk"), vec![], 405),
        ("PATCH", b.clone(), vec![], 405),
        ("GET", "/".to_string(), vec![], 400),
        ("GET", "/%FF".to_string(), vec![], 400),
    ];
    for (m, path, body, status) in &cases {
        let r = k2v.req(m, path, &[], body).await;
        assert_eq!(r.status, *status, "{m} {path}: {}", text(&r));
        if r.status >= 400 {
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/json"),
                "{m} {path}"
            );
            let j = r.json();
            assert!(j["code"].is_string(), "{m} {path}: {j}");
        }
    }
    // Unsigned garbage too.
    for (m, path) in [
        ("GET", "/%FF/%FF"),
        ("BREW", "/bucket"),
        ("GET", "/bucket/pk?sort_key=a&&&=&=x"),
    ] {
        let r = k2v.send(m, path, &[], b"", Sign::None).await;
        assert!((400..500).contains(&r.status), "{m} {path}: {r:?}");
    }
    // Malformed Authorization headers.
    for auth in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=zz",
        "Basic dXNlcjpwYXNz",
    ] {
        let r = k2v
            .send(
                "GET",
                "/bucket/pk?sort_key=sk",
                &[("authorization", auth)],
                b"",
                Sign::None,
            )
            .await;
        assert!(matches!(r.status, 400 | 403), "{auth}: {r:?}");
    }

    // Raw requests: a causality token that is not ASCII, a header-signed
    // request without x-amz-content-sha256, a bad Content-Length.
    let p = item(&k2v, "pk", "sk");
    let r = raw_request(
        &k2v,
        "PUT",
        &p,
        &[(TOKEN, b"\xff\xfe"), ("content-length", b"1")],
        b"x",
    )
    .await;
    assert_eq!(r, 400);
    let mut hm = http::HeaderMap::new();
    hm.insert(
        "host",
        k2v.endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("host"),
    );
    let params = garage_api::signature::SigningParams {
        key_id: &k2v.creds.key_id,
        secret: &k2v.creds.secret,
        region: &k2v.region,
        service: "k2v",
        now_ms: now_ms(),
    };
    garage_api::signature::sign_request(
        &http::Method::GET,
        &p.parse().expect("uri"),
        &mut hm,
        &PayloadHash::of_body(b""),
        &params,
    )
    .expect("sign");
    hm.remove("x-amz-content-sha256");
    let uri: http::Uri = format!("{}{p}", k2v.endpoint).parse().expect("uri");
    let r = k2v.send_prepared(http::Method::GET, uri, hm, b"").await;
    assert_eq!(r.status, 400, "{}", text(&r));

    // OPTIONS preflight: 200 with CORS headers.
    for path in ["/bucket", "/bucket/pk?sort_key=sk", "/nobucket/x"] {
        let r = k2v
            .send(
                "OPTIONS",
                path,
                &[
                    ("origin", "https://example.com"),
                    ("access-control-request-method", "PUT"),
                ],
                b"",
                Sign::None,
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(
            r.header("access-control-allow-origin").is_some(),
            "{path}: {r:?}"
        );
    }
    let r = k2v
        .send(
            "OPTIONS",
            "/bucket/pk?sort_key=sk",
            &[
                ("origin", "https://example.com"),
                ("access-control-request-method", "PUT"),
            ],
            b"",
            Sign::None,
        )
        .await;
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("PUT"), "{methods}");

    // The node still answers normally and never panicked.
    let (v, t) = get(&k2v, "pk", "sk").await;
    assert_eq!(v, vals(&[Some("before")]));
    put(&k2v, "pk", "sk", b"after", Some(&t)).await;
    assert_eq!(get(&k2v, "pk", "sk").await.0, vals(&[Some("after")]));
    let log = node.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poll_range_misses_nothing_under_concurrent_writes() {
    // Several pollers chain their markers while writers insert concurrently:
    // every poller must eventually see every key (a marker must never claim
    // an item it did not deliver).
    let (node, k2v) = single_node(NodeOpts::default());
    let pr = format!("{}/stress?poll_range", k2v.b());
    const WRITERS: usize = 12;
    const PER_WRITER: usize = 20;
    const POLLERS: usize = 6;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let mut pollers = vec![];
    for _ in 0..POLLERS {
        let (endpoint, creds, done, pr) =
            (node.endpoint(), k2v.creds.clone(), done.clone(), pr.clone());
        let r = post_json(&k2v, &pr, &json!({})).await;
        let (items, mut marker) = poll_items(&r);
        assert!(items.is_empty());
        pollers.push(tokio::spawn(async move {
            let c = K2v::new(endpoint, creds);
            let mut seen = std::collections::BTreeSet::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                let r = post_json(&c, &pr, &json!({"seenMarker": marker, "timeout": 1})).await;
                if r.status == 304 {
                    if finished {
                        return seen;
                    }
                    continue;
                }
                let (items, m) = poll_items(&r);
                seen.extend(items.into_iter().map(|i| i.0));
                marker = m;
            }
        }));
    }
    let mut writers = vec![];
    for w in 0..WRITERS {
        let (endpoint, creds, done) = (node.endpoint(), k2v.creds.clone(), done.clone());
        writers.push(tokio::spawn(async move {
            let c = K2v::new(endpoint, creds);
            for j in 0..PER_WRITER {
                let r = c
                    .req(
                        "PUT",
                        &item(&c, "stress", &format!("w{w:02}-{j:03}")),
                        &[],
                        b"x",
                    )
                    .await;
                assert_eq!(r.status, 204);
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let expected: std::collections::BTreeSet<String> = (0..WRITERS)
        .flat_map(|w| (0..PER_WRITER).map(move |j| format!("w{w:02}-{j:03}")))
        .collect();
    for p in pollers {
        let seen = p.await.expect("poller");
        let missing: Vec<&String> = expected.difference(&seen).collect();
        assert!(
            missing.is_empty(),
            "PollRange never reported {} items: {missing:?}",
            missing.len()
        );
    }
}

#[tokio::test]
async fn large_ranges_page_correctly() {
    // More than the server's internal pages (1000 rows) in one partition and
    // across partitions: limits, nextStart, reverse and DeleteBatch still exact.
    let (_node, k2v) = single_node(NodeOpts::default());
    let items: Vec<Value> = (0..2100)
        .map(|i| json!({"pk": "big", "sk": format!("k{i:05}"), "ct": null, "v": b64(b"v")}))
        .chain(
            (0..1100)
                .map(|i| json!({"pk": format!("p{i:05}"), "sk": "s", "ct": null, "v": b64(b"xy")})),
        )
        .collect();
    let r = post_json(&k2v, &k2v.b(), &Value::Array(items)).await;
    assert_eq!(r.status, 204, "{}", text(&r));

    let search = |q: Value| {
        let k2v = &k2v;
        async move {
            let r = k2v
                .req("SEARCH", &k2v.b(), &[], json!([q]).to_string().as_bytes())
                .await;
            assert_eq!(r.status, 200, "{}", text(&r));
            r.json()[0].clone()
        }
    };
    let j = search(json!({"partitionKey": "big"})).await;
    assert_eq!(sks(&j).len(), 2100);
    let j = search(json!({"partitionKey": "big", "limit": 1500})).await;
    let s = sks(&j);
    assert_eq!((s.len(), s[1499].as_str()), (1500, "k01499"));
    assert_eq!(
        (&j["more"], &j["nextStart"]),
        (&json!(true), &json!("k01500"))
    );
    let j = search(json!({"partitionKey": "big", "limit": 1100, "start": "k01000"})).await;
    assert_eq!(sks(&j).len(), 1100);
    assert_eq!((&j["more"], &j["nextStart"]), (&json!(false), &Value::Null));
    let j = search(json!({"partitionKey": "big", "limit": 1200, "reverse": true})).await;
    let s = sks(&j);
    assert_eq!((s[0].as_str(), s[1199].as_str()), ("k02099", "k00900"));
    assert_eq!(j["nextStart"], "k00899");

    // ReadIndex across more than one internal page.
    common::eventually(30, || {
        let k2v = &k2v;
        async move {
            let j = k2v
                .req("GET", &format!("{}?prefix=p", k2v.b()), &[], b"")
                .await
                .json();
            pks(&j).len() == 1100
        }
    })
    .await;
    let j = k2v
        .req("GET", &format!("{}?prefix=p&limit=1050", k2v.b()), &[], b"")
        .await
        .json();
    assert_eq!(pks(&j).len(), 1050);
    assert_eq!(
        (&j["more"], &j["nextStart"]),
        (&json!(true), &json!("p01050"))
    );
    let j = k2v
        .req(
            "GET",
            &format!("{}?start=p00050&limit=1050", k2v.b()),
            &[],
            b"",
        )
        .await
        .json();
    assert_eq!(pks(&j).len(), 1050);
    assert_eq!((&j["more"], &j["nextStart"]), (&json!(false), &Value::Null));
    let j = k2v
        .req(
            "GET",
            &format!("{}?reverse=true&limit=1001", k2v.b()),
            &[],
            b"",
        )
        .await
        .json();
    let p = pks(&j);
    assert_eq!((p[0].as_str(), p[1000].as_str()), ("p01099", "p00099"));
    assert_eq!(j["nextStart"], "p00098");
    let big = index_rows(
        &k2v.req("GET", &format!("{}?end=c", k2v.b()), &[], b"")
            .await
            .json(),
    );
    assert_eq!(big, vec![("big".to_string(), 2100, 0, 2100, 2100)]);

    // DeleteBatch over more than one internal page.
    let r = post_json(
        &k2v,
        &format!("{}?delete", k2v.b()),
        &json!([{"partitionKey": "big", "start": "k00050"}]),
    )
    .await;
    assert_eq!(r.json()[0]["deletedItems"], 2050);
    let j = search(json!({"partitionKey": "big"})).await;
    assert_eq!(sks(&j).len(), 50);
    let j = search(json!({"partitionKey": "big", "tombstones": true, "limit": 3000})).await;
    assert_eq!(sks(&j).len(), 2100);
}

/// The (K2V node id, time) pairs of a causality token.
fn token_entries(tok: &str) -> Vec<(u64, u64)> {
    let b = BASE64_URL_SAFE_NO_PAD.decode(tok).expect("token b64");
    assert_eq!(b.len() % 16, 8, "token length");
    b[8..]
        .chunks(16)
        .map(|c| {
            let w = |s: &[u8]| u64::from_be_bytes(s.try_into().expect("8 bytes"));
            (w(&c[..8]), w(&c[8..]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes() {
    // rf = 3 on three nodes: every node is a replica and handles its own
    // writes; values come back ordered by K2V node id; counters are not
    // tripled; polls see writes made through other nodes; quorum loss is 503.
    let opts = NodeOpts {
        rf: 3,
        ..Default::default()
    };
    let n1 = common::start_node(opts.clone());
    let id1 = n1.id();
    let boot = format!("{id1}@127.0.0.1:{}", n1.rpc_port);
    let mut n2 = common::start_node(NodeOpts {
        bootstrap: vec![boot.clone()],
        ..opts.clone()
    });
    let mut n3 = common::start_node(NodeOpts {
        bootstrap: vec![boot],
        ..opts
    });
    let ids = [id1, n2.id(), n3.id()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ids
        .iter()
        .all(|id| n1.cli_ok(&["status"]).contains(&id[..16]))
    {
        assert!(Instant::now() < deadline, "nodes did not connect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, id) in ids.iter().enumerate() {
        n1.cli_ok(&[
            "layout",
            "assign",
            &id[..16],
            "-z",
            &format!("dc{i}"),
            "-c",
            "1G",
        ]);
    }
    n1.cli_ok(&["layout", "apply", "--version", "1"]);
    let creds = n1.create_key_bucket("bucket");
    let c: Vec<K2v> = [&n1, &n2, &n3]
        .iter()
        .map(|n| K2v::new(n.endpoint(), creds.clone()))
        .collect();
    // Every node knows the layout, the key and the bucket.
    for k in &c {
        common::eventually(30, || async {
            k.req("GET", &item(k, "pk", "probe"), &[], b"").await.status == 404
        })
        .await;
    }

    // Each node's K2V id, from the token of an item only it wrote.
    let mut kid = vec![];
    for (i, k) in c.iter().enumerate() {
        let sk = format!("id{i}");
        put(k, "pk", &sk, b"x", None).await;
        let e = token_entries(&get(k, "pk", &sk).await.1);
        assert_eq!(e.len(), 1, "one writer: {e:?}");
        kid.push(e[0].0);
    }
    kid.iter().for_each(|k| assert_ne!(*k, 0));
    assert!(
        kid[0] != kid[1] && kid[1] != kid[2] && kid[0] != kid[2],
        "{kid:?}"
    );

    // Concurrent writes through the three nodes: ordered by K2V node id,
    // whatever the insertion order, the same through every node.
    for (i, k) in c.iter().enumerate().rev() {
        put(k, "pk", "conc", format!("from{i}").as_bytes(), None).await;
    }
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by_key(|i| kid[*i]);
    let expected: Values = order
        .iter()
        .map(|i| Some(format!("from{i}").into_bytes()))
        .collect();
    let mut tok = String::new();
    for k in &c {
        let (v, t) = get(k, "pk", "conc").await;
        assert_eq!(v, expected);
        let mut e: Vec<u64> = token_entries(&t).into_iter().map(|x| x.0).collect();
        e.sort_unstable();
        let mut all = kid.clone();
        all.sort_unstable();
        assert_eq!(e, all, "the vector clock names the three writers");
        tok = t;
    }
    // A write with the token through node 2 supersedes all three.
    put(&c[1], "pk", "conc", b"merged", Some(&tok)).await;
    for k in &c {
        assert_eq!(get(k, "pk", "conc").await.0, vals(&[Some("merged")]));
    }

    // Counters: max over the replicas, not their sum.
    for k in &c {
        common::eventually(20, || async {
            let j = k.req("GET", &k.b(), &[], b"").await.json();
            index_rows(&j) == vec![("pk".to_string(), 4, 0, 4, 9)]
        })
        .await;
    }

    // PollItem through node 1 sees a write made through node 3.
    let (_, t) = get(&c[0], "pk", "conc").await;
    let (ep3, cr) = (n3.endpoint(), creds.clone());
    let t2 = t.clone();
    let w = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let k = K2v::new(ep3, cr);
        put(&k, "pk", "conc", b"via3", Some(&t2)).await;
    });
    let q = format!(
        "{}&causality_token={}&timeout=20",
        item(&c[0], "pk", "conc"),
        enc(&t)
    );
    let r = c[0].req("GET", &q, &[], b"").await;
    w.await.expect("writer");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(decode_values(&r.json()), vals(&[Some("via3")]));

    // PollRange through node 2 sees a write made through node 1, only it.
    let pr = format!("{}/pk?poll_range", c[1].b());
    let (items, marker) = poll_items(&post_json(&c[1], &pr, &json!({})).await);
    assert_eq!(items.len(), 4);
    let (ep1, cr) = (n1.endpoint(), creds.clone());
    let w = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        put(&K2v::new(ep1, cr), "pk", "fresh", b"f", None).await;
    });
    let r = post_json(&c[1], &pr, &json!({"seenMarker": marker, "timeout": 20})).await;
    w.await.expect("writer");
    let (items, marker) = poll_items(&r);
    assert_eq!(items, vec![("fresh".to_string(), vals(&[Some("f")]))]);
    let r = post_json(&c[1], &pr, &json!({"seenMarker": marker, "timeout": 1})).await;
    assert_eq!(r.status, 304, "{}", text(&r));

    // One node down: quorums still reached.
    n3.kill();
    put(&c[0], "pk", "one-down", b"ok", None).await;
    assert_eq!(get(&c[1], "pk", "one-down").await.0, vals(&[Some("ok")]));
    // Two nodes down: 503 ServiceUnavailable, never a 500.
    n2.kill();
    let r = c[0]
        .req("PUT", &item(&c[0], "pk", "two-down"), &[], b"no")
        .await;
    assert_err(&r, 503, "ServiceUnavailable");
    let r = c[0]
        .req("GET", &item(&c[0], "pk", "one-down"), &[], b"")
        .await;
    assert_err(&r, 503, "ServiceUnavailable");
    let r = c[0]
        .req(
            "SEARCH",
            &c[0].b(),
            &[],
            json!([{"partitionKey": "pk"}]).to_string().as_bytes(),
        )
        .await;
    assert_err(&r, 503, "ServiceUnavailable");
    let r = post_json(
        &c[0],
        &format!("{}?delete", c[0].b()),
        &json!([{"partitionKey": "pk"}]),
    )
    .await;
    assert_err(&r, 503, "ServiceUnavailable");
    let r = post_json(&c[0], &pr, &json!({})).await;
    assert_err(&r, 503, "ServiceUnavailable");
    let q = format!(
        "{}&causality_token={}&timeout=1",
        item(&c[0], "pk", "conc"),
        enc(&t)
    );
    let r = c[0].req("GET", &q, &[], b"").await;
    assert_err(&r, 503, "ServiceUnavailable");
}

#[tokio::test]
async fn k2v_node_id_persists_with_the_database() {
    // The K2V node id lives in the metadata database: kept across restarts,
    // new when the database is wiped even though the node key is kept.
    let (mut node, k2v) = single_node(NodeOpts::default());
    put(&k2v, "r", "k", b"v1", None).await;
    let (_, t1) = get(&k2v, "r", "k").await;
    let e1 = token_entries(&t1);
    assert_eq!(e1.len(), 1);
    let id = node.id();

    node.kill();
    node.restart();
    // A new client: the old one's pooled connection died with the process.
    let k2v = K2v::new(node.endpoint(), k2v.creds.clone());
    let (v, t) = get(&k2v, "r", "k").await;
    assert_eq!((v, &t), (vals(&[Some("v1")]), &t1));
    put(&k2v, "r", "k", b"v2", None).await;
    let (v, t2) = get(&k2v, "r", "k").await;
    assert_eq!(v, vals(&[Some("v1"), Some("v2")]));
    let e2 = token_entries(&t2);
    assert_eq!(e2.len(), 1, "same writer after a restart: {e2:?}");
    assert_eq!(e2[0].0, e1[0].0);
    assert!(e2[0].1 > e1[0].1);

    node.kill();
    std::fs::remove_dir_all(node.dir.path().join("meta").join("db")).expect("wipe db");
    node.restart();
    assert_eq!(node.id(), id, "the node key is kept");
    let creds = node.create_key_bucket("bucket");
    let k2v = K2v::new(node.endpoint(), creds);
    common::eventually(20, || async {
        k2v.req("GET", &item(&k2v, "r", "k"), &[], b"").await.status == 404
    })
    .await;
    put(&k2v, "r", "k", b"v3", None).await;
    let (v, t3) = get(&k2v, "r", "k").await;
    assert_eq!(v, vals(&[Some("v3")]));
    let e3 = token_entries(&t3);
    assert_eq!(e3.len(), 1);
    assert_ne!(
        e3[0].0, e1[0].0,
        "a new database must get a new K2V node id"
    );
}
