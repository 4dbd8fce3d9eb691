//! The checks behind the fuzz targets of `fuzz/` and their corpus replay
//! (`tests/fuzz_corpus.rs`): one function per target, taking raw bytes.
//!
//! Each function feeds the bytes to the parser under test the way the
//! network would, and asserts what must hold besides "no panic": what
//! parses re-encodes to something that parses back to the same value,
//! refusals are 4xx (never a 500), and a request signed by our signer
//! passes our verifier. A failed assertion panics, which is what the
//! fuzzer reports. They live in this crate, the lowest one that sees every
//! parser (api depends on model, table, rpc and util), so the fuzz crate and
//! the replay test call the very same code. Not part of the API.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use garage_util::config::{format_size, parse_size, Config};
use garage_util::encode::{from_msgpack, to_msgpack};

use crate::signature::{
    parse_request, presign_query, sign_request, uri_encode, verify, PayloadHash, SigningKeyCache,
    SigningParams,
};

/// The server clock the targets use (a fixed time: runs are reproducible).
pub const NOW_MS: u64 = 1_780_000_000_000;

/// Splits fuzz input into at most `n` fields separated by newlines (the
/// last field takes the rest, newlines included).
fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == b'\n').collect()
}

fn field<'a>(f: &[&'a [u8]], i: usize) -> &'a [u8] {
    f.get(i).copied().unwrap_or_default()
}

/// Header lines `name: value`; lines that are not valid headers are skipped.
fn headers_of(lines: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value),
        ) {
            h.append(n, v);
        }
    }
    h
}

#[cfg(feature = "k2v")]
fn assert_client_error(e: &crate::error::ApiError, what: &str) {
    assert!(
        e.status().is_client_error(),
        "{what}: refused with {} ({e}), not a 4xx",
        e.status()
    );
}

/// Causality tokens: as strings (parse, re-serialize, parse again: the same
/// context) and as raw words (two contexts built from them round-trip, and
/// their merge covers both).
#[cfg(feature = "k2v")]
pub fn causality_token(data: &[u8]) {
    use garage_model::k2v::causality::CausalContext;

    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(ctx) = CausalContext::parse(s) {
            let again = CausalContext::parse(&ctx.serialize()).expect("a serialized token parses");
            assert_eq!(again, ctx, "token round trip");
            assert!(
                !ctx.is_newer_than(&ctx),
                "a context is not newer than itself"
            );
        }
        match crate::k2v::item::parse_token(s, NOW_MS) {
            Ok(ctx) => assert!(
                ctx.vector_clock
                    .values()
                    .all(|t| *t <= NOW_MS + 24 * 3600 * 1000),
                "a token far in the future was accepted"
            ),
            Err(e) => assert_client_error(&e, "causality token"),
        }
    }
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_be_bytes(w)
        })
        .collect();
    let half = words.len() / 2;
    let ctx_of = |ws: &[u64]| CausalContext {
        vector_clock: ws.chunks_exact(2).map(|p| (p[0] % 8, p[1])).collect(),
    };
    let (a, b) = (ctx_of(&words[..half]), ctx_of(&words[half..]));
    for c in [&a, &b] {
        let parsed = CausalContext::parse(&c.serialize()).expect("a serialized token parses");
        assert_eq!(&parsed, c, "context round trip");
    }
    let mut m = a.clone();
    m.merge_max(&b);
    assert!(
        !a.is_newer_than(&m) && !b.is_newer_than(&m),
        "merge covers both"
    );
    assert_eq!(
        m.is_newer_than(&a),
        b.is_newer_than(&a),
        "merge adds only b"
    );
}

/// Seen markers: decoded from the string and from base64 of the raw bytes;
/// what decodes re-encodes to the same marker, canonicalisation is
/// idempotent and changes no answer of `is_new_item`.
#[cfg(feature = "k2v")]
pub fn seen_marker(data: &[u8]) {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    use garage_model::k2v::item::{DvvsValue, K2VItem};
    use garage_model::k2v::seen::RangeSeenMarker;

    let mut markers = vec![];
    if let Ok(s) = std::str::from_utf8(data) {
        markers.extend(RangeSeenMarker::decode(s).ok());
    }
    markers.extend(RangeSeenMarker::decode(&BASE64_STANDARD.encode(data)).ok());
    for m in markers {
        let again = RangeSeenMarker::decode(&m.encode()).expect("an encoded marker decodes");
        assert_eq!(again, m, "marker round trip");
        let mut c = m.clone();
        c.canonicalize();
        let mut c2 = c.clone();
        c2.canonicalize();
        assert_eq!(c, c2, "canonicalize is idempotent");
        // Items with the marker's keys (and one more), written by the
        // marker's nodes at times around the marker's.
        let mut keys: Vec<String> = m.items.keys().take(8).cloned().collect();
        keys.push(String::new());
        let times: Vec<(u64, u64)> = m
            .vector_clock
            .iter()
            .chain(m.items.values().flatten())
            .take(8)
            .map(|(n, t)| (*n, *t))
            .collect();
        for sk in keys {
            for (i, (node, t)) in times.iter().enumerate() {
                let mut item = K2VItem::new([0u8; 32].into(), "pk".into(), sk.clone());
                let ts = match i % 3 {
                    0 => t.saturating_sub(2),
                    1 => t.saturating_sub(1),
                    _ => *t,
                };
                item.update(*node, None, DvvsValue::Value(vec![1]), ts);
                assert_eq!(
                    m.is_new_item(&item),
                    c.is_new_item(&item),
                    "canonicalize changed is_new_item"
                );
            }
        }
    }
}

/// SigV4: hostile requests (method, URI, header lines) are refused with a
/// 4xx or parse; and a request built from the input, signed by our signer
/// (header and presigned), passes our verifier with the secret, fails with
/// another secret, and a header signature 16 minutes old is refused.
pub fn sigv4(data: &[u8]) {
    let f = fields(data, 6);
    // Hostile: the whole input as a request.
    if let (Ok(method), Ok(uri)) = (
        Method::from_bytes(field(&f, 0)),
        Uri::try_from(field(&f, 1)),
    ) {
        let headers =
            headers_of(&data[data.len().min(field(&f, 0).len() + field(&f, 1).len() + 2)..]);
        match parse_request(&method, &uri, &headers, "garage", "k2v", NOW_MS) {
            Ok(Some(auth)) => {
                let _ = verify(&auth, "secret", &SigningKeyCache::new());
                let _ = auth.payload_hash();
            }
            Ok(None) => (),
            Err(e) => assert!(
                e.status() == 400 || e.status() == 403,
                "signature refused with {}",
                e.status()
            ),
        }
    }
    // Round trip: key id, secret, path, query and a header from the input.
    let key_id = format!(
        "GK{}",
        hex::encode(field(&f, 0).get(..12).unwrap_or_default())
    );
    let secret = String::from_utf8_lossy(field(&f, 1)).into_owned();
    let path = format!("/{}", uri_encode(field(&f, 2), true));
    let query: Vec<String> = field(&f, 3)
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|b| *b == b'=') {
            Some(i) => format!(
                "{}={}",
                uri_encode(&p[..i], false),
                uri_encode(&p[i + 1..], false)
            ),
            None => uri_encode(p, false),
        })
        .collect();
    let target = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let Ok(uri) = Uri::try_from(target.as_str()) else {
        return;
    };
    let method = match field(&f, 4).first().copied().unwrap_or(0) % 4 {
        0 => Method::GET,
        1 => Method::PUT,
        2 => Method::POST,
        _ => Method::DELETE,
    };
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:3904"));
    // The signer refuses (InvalidRequest) to sign a header that is not
    // UTF-8: only such values are added.
    if let Ok(v) = std::str::from_utf8(field(&f, 5).trim_ascii()) {
        if let (false, Ok(v)) = (v.is_empty(), HeaderValue::from_str(v)) {
            headers.insert("x-amz-meta-fuzz", v);
        }
    }
    let params = SigningParams {
        key_id: &key_id,
        secret: &secret,
        region: "garage",
        service: "k2v",
        now_ms: NOW_MS,
    };
    let body = field(&f, 5);
    let cache = SigningKeyCache::new();
    // A query holding presigning parameters cannot be header-signed or
    // presigned: both signers refuse it, consistently with the verifier.
    // (Each key was percent-encoded whole, so it decodes to its raw bytes.)
    let presigning = field(&f, 3)
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split(|b| *b == b'=').next().unwrap_or_default())
        .any(|k| {
            [
                &b"X-Amz-Algorithm"[..],
                b"X-Amz-Credential",
                b"X-Amz-Signature",
            ]
            .contains(&k)
        });
    let mut signed = headers.clone();
    let r = sign_request(
        &method,
        &uri,
        &mut signed,
        &PayloadHash::of_body(body),
        &params,
    );
    if presigning {
        assert!(
            r.is_err(),
            "a query with presigning parameters was header-signed"
        );
        let p = presign_query(&method, &uri, &headers, 60, &params);
        assert!(
            p.is_err(),
            "a query with presigning parameters was presigned"
        );
        return;
    }
    r.expect("signing a valid request");
    let auth = parse_request(&method, &uri, &signed, "garage", "k2v", NOW_MS)
        .expect("our own signature parses")
        .expect("and is not anonymous");
    assert_eq!(auth.key_id(), key_id);
    verify(&auth, &secret, &cache).expect("our own signature verifies");
    assert!(
        verify(&auth, &format!("{secret}x"), &cache).is_err(),
        "another secret verifies"
    );
    crate::signature::check_body(auth.payload_hash(), body).expect("the signed body matches");
    let late = parse_request(
        &method,
        &uri,
        &signed,
        "garage",
        "k2v",
        NOW_MS + 16 * 60 * 1000,
    );
    assert!(
        matches!(&late, Err(e) if e.status() == 403),
        "a 16-minute-old signature was not refused with 403"
    );

    let expires = 1 + u64::from(field(&f, 4).get(1).copied().unwrap_or(0)) * 60;
    let r = presign_query(&method, &uri, &headers, expires, &params);
    // The presigner refuses any `X-Amz-*` parameter already in the query
    // (it adds its own), as documented.
    let amz = field(&f, 3)
        .split(|b| *b == b'&')
        .any(|p| p.starts_with(b"X-Amz-"));
    if amz {
        assert!(r.is_err(), "a query with X-Amz-* parameters was presigned");
        return;
    }
    let q = r.expect("presigning a valid request");
    let presigned = Uri::try_from(format!("{}?{q}", uri.path())).expect("a presigned URI parses");
    let auth = parse_request(&method, &presigned, &headers, "garage", "k2v", NOW_MS)
        .expect("our presigned URL parses")
        .expect("and is not anonymous");
    assert!(auth.is_presigned());
    verify(&auth, &secret, &cache).expect("our presigned URL verifies");
    let expired = parse_request(
        &method,
        &presigned,
        &headers,
        "garage",
        "k2v",
        NOW_MS + (expires + 1) * 1000,
    );
    assert!(expired.is_err(), "an expired presigned URL was accepted");
}

/// JSON batch bodies (first byte: InsertBatch, ReadBatch or DeleteBatch;
/// the rest: the body): refused with a 400, or understood, and what was
/// understood, sent again, is understood the same way.
#[cfg(feature = "k2v")]
pub fn batch_json(data: &[u8]) {
    use crate::k2v::batch::{normalize_batch_body, BatchKind};

    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let kind = match k % 3 {
        0 => BatchKind::Insert,
        1 => BatchKind::Read,
        _ => BatchKind::Delete,
    };
    match normalize_batch_body(kind, body, NOW_MS) {
        Ok(v) => {
            let again = serde_json::to_vec(&v).expect("a JSON value serializes");
            let v2 = normalize_batch_body(kind, &again, NOW_MS)
                .expect("a normalized batch is accepted again");
            assert_eq!(v2, v, "batch round trip");
        }
        Err(e) => assert_client_error(&e, "batch body"),
    }
}

/// The K2V router (method line, URI line, then header lines): a request is
/// refused with a 4xx or routed to an endpoint whose permission matches its
/// kind, and the endpoint written back as a request routes to itself.
#[cfg(feature = "k2v")]
pub fn router(data: &[u8]) {
    use crate::k2v::item::parse_accept;
    use crate::k2v::router::{parse_path, parse_query, Authorization, Endpoint};

    let f = fields(data, 3);
    let headers = headers_of(field(&f, 2));
    let _ = parse_accept(&headers);
    let (Ok(method), Ok(uri)) = (
        Method::from_bytes(field(&f, 0)),
        Uri::try_from(field(&f, 1)),
    ) else {
        return;
    };
    let routed = parse_path(uri.path()).and_then(|(bucket, pk)| {
        let q = parse_query(uri.query())?;
        Ok((bucket, Endpoint::parse(&method, pk, &q)?))
    });
    let (bucket, ep) = match routed {
        Ok(x) => x,
        Err(e) => return assert_client_error(&e, "router"),
    };
    let want = match ep.name() {
        "Options" => Authorization::None,
        "ReadItem" | "PollItem" | "ReadIndex" | "ReadBatch" | "PollRange" => Authorization::Read,
        _ => Authorization::Write,
    };
    assert_eq!(ep.authorization(), want, "{} permission", ep.name());
    if ep == Endpoint::Options {
        return;
    }
    let (m, target) = write_endpoint(&bucket, &ep);
    let uri2 = Uri::try_from(target.as_str()).expect("a written endpoint is a valid URI");
    let (bucket2, pk2) = parse_path(uri2.path()).expect("a written path parses");
    let q2 = parse_query(uri2.query()).expect("a written query parses");
    let ep2 = Endpoint::parse(&m, pk2, &q2).expect("a written endpoint routes");
    assert_eq!((bucket2, ep2), (bucket, ep), "router round trip");
}

/// The method and target of a request for `ep` (the router's inverse).
#[cfg(feature = "k2v")]
fn write_endpoint(bucket: &str, ep: &crate::k2v::router::Endpoint) -> (Method, String) {
    use crate::k2v::router::Endpoint;

    let enc = |s: &str| uri_encode(s.as_bytes(), false);
    let mut path = format!("/{}", enc(bucket));
    let mut q: Vec<String> = vec![];
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    };
    let method = match ep {
        Endpoint::Options => Method::OPTIONS,
        Endpoint::ReadItem {
            partition_key,
            sort_key,
        } => {
            path = format!("{path}/{}", enc(partition_key));
            add("sort_key", &Some(sort_key.clone()));
            Method::GET
        }
        Endpoint::PollItem {
            partition_key,
            sort_key,
            causality_token,
            timeout,
        } => {
            path = format!("{path}/{}", enc(partition_key));
            add("sort_key", &Some(sort_key.clone()));
            add("causality_token", &Some(causality_token.clone()));
            add("timeout", &timeout.map(|t| t.to_string()));
            Method::GET
        }
        Endpoint::InsertItem {
            partition_key,
            sort_key,
        }
        | Endpoint::DeleteItem {
            partition_key,
            sort_key,
        } => {
            path = format!("{path}/{}", enc(partition_key));
            add("sort_key", &Some(sort_key.clone()));
            if matches!(ep, Endpoint::InsertItem { .. }) {
                Method::PUT
            } else {
                Method::DELETE
            }
        }
        Endpoint::ReadIndex {
            prefix,
            start,
            end,
            limit,
            reverse,
        } => {
            add("prefix", prefix);
            add("start", start);
            add("end", end);
            add("limit", &limit.map(|l| l.to_string()));
            add("reverse", &Some(reverse.to_string()));
            Method::GET
        }
        Endpoint::InsertBatch => Method::POST,
        Endpoint::ReadBatch => {
            q.push("search".into());
            Method::POST
        }
        Endpoint::DeleteBatch => {
            q.push("delete".into());
            Method::POST
        }
        Endpoint::PollRange { partition_key } => {
            path = format!("{path}/{}", enc(partition_key));
            q.push("poll_range".into());
            Method::POST
        }
    };
    if q.is_empty() {
        (method, path)
    } else {
        (method, format!("{path}?{}", q.join("&")))
    }
}

/// The config loader and the size parser: a config that parses has a
/// replication factor of at least 1 and a known consistency mode, parses the
/// same way twice, and its inline `rpc_secret` is 32 bytes or an error; a
/// size that parses formats and parses back within the rounding of one
/// decimal.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((cfg, _notices)) = Config::parse(text, std::path::Path::new("fuzz.toml")) {
        assert!(cfg.rf() >= 1, "replication factor 0 accepted");
        assert!(
            ["consistent", "degraded", "dangerous"].contains(&cfg.consistency()),
            "unknown consistency mode accepted"
        );
        let again = Config::parse(text, std::path::Path::new("fuzz.toml"))
            .expect("a config that parsed parses again");
        assert_eq!(format!("{:?}", again.0), format!("{cfg:?}"));
        if cfg.rpc_secret.is_some() {
            let _ = cfg.rpc_secret_bytes();
        }
    }
    if let Ok(n) = parse_size(text) {
        if text.trim().bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(exact) = text.trim().parse::<u64>() {
                if exact < (1 << 53) {
                    assert_eq!(n, exact, "a plain byte count");
                }
            }
        }
        if n < 1_000_000_000_000_000_000 {
            let shown = format_size(n);
            let back = parse_size(&shown).expect("a formatted size parses");
            assert!(
                back.abs_diff(n) <= n / 20 + 1,
                "{n} formats as {shown}, which parses as {back}"
            );
        }
    }
}

/// RPC message decoding (first byte: which message type; the rest: the
/// MessagePack bytes a peer sent): what decodes re-encodes to bytes that
/// decode and re-encode to the same bytes; stored K2V items decode, read and
/// merge without panicking (merge is idempotent once merged); a received
/// layout history goes through the same checks and merge as the node's.
pub fn rpc_decode(data: &[u8]) {
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    match k % 4 {
        0 => round_trip::<garage_rpc::system::SystemRpc>(body),
        1 => round_trip::<garage_table::TableRpc>(body),
        #[cfg(feature = "k2v")]
        2 => round_trip::<garage_model::k2v::rpc::K2VRpc>(body),
        #[cfg(feature = "k2v")]
        _ => k2v_item(body),
        #[cfg(not(feature = "k2v"))]
        _ => (),
    }
    if let Some(garage_rpc::system::SystemRpc::AdvertiseLayout(l)) = from_msgpack(body) {
        received_layout(&l);
    }
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(body: &[u8]) {
    let Some(m) = from_msgpack::<T>(body) else {
        return;
    };
    let e1 = to_msgpack(&m).expect("a decoded message encodes");
    let m2: T = from_msgpack(&e1).expect("an encoded message decodes");
    let e2 = to_msgpack(&m2).expect("a decoded message encodes");
    assert_eq!(e1, e2, "message round trip");
}

#[cfg(feature = "k2v")]
fn k2v_item(body: &[u8]) {
    use garage_model::k2v::item::K2VItem;
    use garage_util::crdt::Crdt;
    use garage_util::encode::Migrate;

    let mut framed = K2VItem::VERSION_MARKER.to_vec();
    framed.extend_from_slice(body);
    for bytes in [body, &framed[..]] {
        let Some(item) = K2VItem::decode(bytes) else {
            continue;
        };
        let again = K2VItem::decode(&item.encode().expect("an item encodes"))
            .expect("an encoded item decodes");
        assert_eq!(again, item, "item round trip");
        let _ = (item.values(), item.counts(), item.causal_context());
        let mut m = item.clone();
        m.merge(&item);
        let mut m2 = m.clone();
        m2.merge(&m);
        assert_eq!(m2, m, "merge is idempotent on a merged item");
    }
}

/// A layout history from a peer, through the node's own acceptance path.
fn received_layout(l: &garage_rpc::layout::LayoutHistory) {
    use garage_rpc::system::merge_received_layout;

    let ours = garage_rpc::layout::LayoutHistory::new(3);
    for consistent in [true, false] {
        // Twice: once into a fresh node, once more into what it became.
        if let Ok(Some(merged)) =
            merge_received_layout(&ours, l, 3, [7u8; 32].into(), 2, consistent)
        {
            let _ = merged.digest();
            let _ = merge_received_layout(&merged, l, 3, [7u8; 32].into(), 2, consistent);
        }
    }
}
