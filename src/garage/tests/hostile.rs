//! Hostile input over HTTP: oversized heads and bodies, clients that stall,
//! invalid UTF-8 keys, deeply nested JSON, huge batches, limits and poll
//! timeouts, thousands of concurrent long polls. Each must get a 4xx or a
//! bounded answer, and the node must keep serving ordinary requests.

use std::time::{Duration, Instant};

use garage_api::signature::PayloadHash;
use serde_json::{json, Value};

use crate::common::*;

/// Short timeouts and a small body limit, so the tests run in seconds.
fn hostile_opts() -> NodeOpts {
    NodeOpts {
        k2v_extra: "max_body_size = \"64KiB\"\nheader_read_timeout_secs = 2\n\
                    body_read_timeout_secs = 2"
            .into(),
        ..NodeOpts::default()
    }
}

/// An ordinary signed write then read answers normally and quickly.
async fn still_serves(k2v: &K2v, sk: &str) {
    let started = Instant::now();
    let p = format!("{}/alive?sort_key={sk}", k2v.b());
    assert_eq!(k2v.req("PUT", &p, &[], b"ok").await.status, 204);
    let r = k2v
        .req("GET", &p, &[("accept", "application/octet-stream")], b"")
        .await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an ordinary request took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn oversized_head_and_body() {
    let (mut node, k2v) = single_node(hostile_opts());

    // A 100 KiB header: 431, and the connection is closed.
    let big = "a".repeat(100 << 10);
    let req = format!(
        "GET {}/pk?sort_key=a HTTP/1.1\r\nhost: {}\r\nx-big: {big}\r\n\r\n",
        k2v.b(),
        k2v.addr()
    );
    let r = raw_exchange(&k2v.addr(), req.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(r.status, Some(431), "{}", r.text);
    assert!(r.closed, "connection left open after a 431");
    // A 100 KiB request line (a huge sort key) too.
    let req = format!(
        "GET {}/pk?sort_key={big} HTTP/1.1\r\nhost: {}\r\n\r\n",
        k2v.b(),
        k2v.addr()
    );
    let r = raw_exchange(&k2v.addr(), req.as_bytes(), Duration::from_secs(10)).await;
    assert!(
        matches!(r.status, Some(431) | Some(414) | Some(400)),
        "{}",
        r.text
    );
    assert!(r.closed);

    // A body announced above the limit: 413 at once, nothing sent.
    let p = format!("{}/pk?sort_key=big", k2v.b());
    let head = k2v.signed_head(
        "PUT",
        &p,
        &[("content-length", "10000000"), ("connection", "close")],
        PayloadHash::Unsigned,
    );
    let r = raw_exchange(&k2v.addr(), head.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(r.status, Some(413), "{}", r.text);
    assert!(r.text.contains("EntityTooLarge"), "{}", r.text);
    assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
    // A chunked body that passes the limit: 413 too.
    let head = k2v.signed_head(
        "PUT",
        &p,
        &[("transfer-encoding", "chunked"), ("connection", "close")],
        PayloadHash::Unsigned,
    );
    let mut req = head.into_bytes();
    for _ in 0..80 {
        req.extend_from_slice(format!("400\r\n{}\r\n", "x".repeat(1024)).as_bytes());
    }
    let r = raw_exchange(&k2v.addr(), &req, Duration::from_secs(5)).await;
    assert_eq!(r.status, Some(413), "{}", r.text);
    // Nothing was written.
    assert_eq!(k2v.req("GET", &p, &[], b"").await.status, 404);

    assert!(node.is_running());
    still_serves(&k2v, "after-oversized").await;
}

#[tokio::test]
async fn slow_clients_are_cut() {
    let (mut node, k2v) = single_node(hostile_opts());

    // Half a head, then silence: the server closes within its 2 s header
    // read timeout (plus slack), without answering a request.
    let half = format!("GET {}/pk?sort_key=a HTTP/1.1\r\nhost: ", k2v.b());
    let r = raw_exchange(&k2v.addr(), half.as_bytes(), Duration::from_secs(10)).await;
    assert!(r.closed, "a stalled head kept the connection: {r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(1500) && r.elapsed < Duration::from_secs(6),
        "closed after {:?}",
        r.elapsed
    );
    assert!(r.status.is_none() || r.status == Some(408), "{}", r.text);

    // A connection that sends nothing at all is closed as well.
    let r = raw_exchange(&k2v.addr(), b"", Duration::from_secs(10)).await;
    assert!(r.closed && r.elapsed < Duration::from_secs(6), "{r:?}");

    // A body that stalls: 408 after the 2 s body read timeout.
    let p = format!("{}/pk?sort_key=slow", k2v.b());
    let head = k2v.signed_head(
        "PUT",
        &p,
        &[("content-length", "100"), ("connection", "close")],
        PayloadHash::Unsigned,
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(&[b'x'; 10]);
    let r = raw_exchange(&k2v.addr(), &req, Duration::from_secs(10)).await;
    assert_eq!(r.status, Some(408), "{}", r.text);
    assert!(r.text.contains("RequestTimeout"), "{}", r.text);
    assert!(r.elapsed < Duration::from_secs(6), "{:?}", r.elapsed);
    assert_eq!(k2v.req("GET", &p, &[], b"").await.status, 404);

    // 50 stalled clients at once do not stop the others.
    let mut stalled = vec![];
    for _ in 0..50 {
        let a = k2v.addr();
        let h = half.clone();
        stalled.push(tokio::spawn(async move {
            raw_exchange(&a, h.as_bytes(), Duration::from_secs(10)).await
        }));
    }
    still_serves(&k2v, "beside-stalled").await;
    for s in stalled {
        assert!(s.await.expect("join").closed);
    }
    assert!(node.is_running());
}

#[tokio::test]
async fn invalid_keys_and_nested_json() {
    // The default body limit: the nested bodies are 100 kB.
    let (mut node, k2v) = single_node(NodeOpts::default());
    let b = k2v.b();

    // Invalid UTF-8 (percent-encoded) in a partition key, a sort key, or a
    // query parameter: 400.
    for p in [
        format!("{b}/%FF%FE?sort_key=a"),
        format!("{b}/pk?sort_key=%C3%28"),
        format!("{b}/pk?sort_key=%80"),
        format!("{b}?prefix=%ED%A0%80"),
        format!("{b}/%C0%AF?sort_key=a"),
    ] {
        for m in ["GET", "PUT", "DELETE"] {
            let r = k2v.req(m, &p, &[], b"").await;
            assert_eq!(r.status, 400, "{m} {p}: {r:?}");
            assert_eq!(r.json()["code"], "InvalidRequest", "{m} {p}");
        }
    }

    // Invalid UTF-8 inside JSON keys: serde refuses it.
    let r = k2v
        .req(
            "POST",
            &b,
            &[],
            b"[{\"pk\":\"\xff\",\"sk\":\"a\",\"v\":null}]",
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    // 100,000 nested brackets in every JSON body: 400, no stack overflow.
    let deep = "[".repeat(100_000);
    for p in [
        b.clone(),
        format!("{b}?search"),
        format!("{b}?delete"),
        format!("{b}/pk?poll_range"),
    ] {
        let r = k2v.req("POST", &p, &[], deep.as_bytes()).await;
        assert_eq!(r.status, 400, "{p}: {r:?}");
        // Refused while parsing (the recursion limit, or a sequence where
        // an object was expected), never by a crash.
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("invalid JSON body"), "{p}: {msg}");
    }
    let nested_obj = format!("[{}", "{\"a\":".repeat(50_000));
    let r = k2v
        .req("POST", &format!("{b}?search"), &[], nested_obj.as_bytes())
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    assert!(node.is_running());
    still_serves(&k2v, "after-json").await;
}

#[tokio::test]
async fn huge_batches_limits_and_timeouts() {
    let (mut node, k2v) = single_node(NodeOpts::default());
    let b = k2v.b();

    // 10,050 items in one InsertBatch.
    let items: Vec<Value> = (0..10_050)
        .map(|i| json!({"pk": "many", "sk": format!("k{i:05}"), "v": "eA=="}))
        .collect();
    let r = k2v
        .req("POST", &b, &[], &serde_json::to_vec(&items).expect("json"))
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    // Tens of thousands of searches in one ReadBatch (and DeleteBatch):
    // refused with a 400 naming the limit, quickly.
    let searches: Vec<Value> = (0..20_000)
        .map(|i| json!({"partitionKey": format!("p{i}")}))
        .collect();
    let body = serde_json::to_vec(&searches).expect("json");
    for p in [format!("{b}?search"), format!("{b}?delete")] {
        let started = Instant::now();
        let r = k2v.req("POST", &p, &[], &body).await;
        assert_eq!(r.status, 400, "{p}: {r:?}");
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("at most 1000"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // 1,000 searches (the limit) are served in bounded time, and the items
    // of one answer are capped at 10,000 in all: the search that reaches the
    // cap says `more` and where to continue.
    let mut searches: Vec<Value> = vec![json!({"partitionKey": "many"})];
    searches.extend((1..1000).map(|i| json!({"partitionKey": format!("p{i}")})));
    let started = Instant::now();
    let r = k2v
        .req(
            "POST",
            &format!("{b}?search"),
            &[],
            &serde_json::to_vec(&searches).expect("json"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(30));
    let j = r.json();
    assert_eq!(j.as_array().map(Vec::len), Some(1000));
    assert_eq!(j[0]["items"].as_array().map(Vec::len), Some(10_000));
    assert_eq!(
        (&j[0]["more"], &j[0]["nextStart"]),
        (&json!(true), &json!("k10000"))
    );

    // A huge limit is capped the same way, and answers normally.
    for limit in [u64::MAX, 99_999_999_999] {
        let s = json!([{"partitionKey": "many", "limit": limit}]);
        let r = k2v
            .req(
                "POST",
                &format!("{b}?search"),
                &[],
                s.to_string().as_bytes(),
            )
            .await;
        assert_eq!(r.status, 200);
        let j = r.json();
        assert_eq!(j[0]["items"].as_array().map(Vec::len), Some(10_000));
        assert_eq!(j[0]["limit"], json!(limit));
        assert_eq!(j[0]["more"], json!(true));
        let r = k2v
            .req("GET", &format!("{b}?limit={limit}"), &[], b"")
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["more"], json!(false));
    }
    // A limit beyond u64: 400.
    let r = k2v
        .req(
            "GET",
            &format!("{b}?limit=99999999999999999999999"),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 400);
    let r = k2v
        .req(
            "POST",
            &format!("{b}?search"),
            &[],
            br#"[{"partitionKey":"many","limit":1e30}]"#,
        )
        .await;
    assert_eq!(r.status, 400);

    // Absurd poll timeouts are accepted (capped at 600 s, see the unit
    // test of `poll_timeout`): the poll still answers as soon as the item
    // changes.
    let p = format!("{b}/poll?sort_key=a");
    assert_eq!(k2v.req("PUT", &p, &[], b"1").await.status, 204);
    let tok = k2v.req("GET", &p, &[], b"").await.ct();
    let q = format!("{p}&causality_token={}&timeout=99999999", enc(&tok));
    let waiter = {
        let k = K2v::new(k2v.endpoint.clone(), k2v.creds.clone());
        tokio::spawn(async move { k.req("GET", &q, &[], b"").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(k2v.req("PUT", &p, &[], b"2").await.status, 204);
    let r = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the poll answered")
        .expect("join");
    assert_eq!(r.status, 200);
    let r = k2v
        .req(
            "POST",
            &format!("{b}/poll?poll_range"),
            &[],
            br#"{"timeout": 99999999}"#,
        )
        .await;
    assert_eq!(r.status, 200, "a first PollRange answers at once");
    let r = k2v
        .req(
            "GET",
            &format!(
                "{p}&causality_token={}&timeout=99999999999999999999",
                enc(&tok)
            ),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 400);

    assert!(node.is_running());
}

#[tokio::test]
async fn thousands_of_long_polls() {
    let (mut node, k2v) = single_node(NodeOpts::default());
    let b = k2v.b();
    let p = format!("{b}/polled?sort_key=a");
    assert_eq!(k2v.req("PUT", &p, &[], b"v").await.status, 204);
    let tok = k2v.req("GET", &p, &[], b"").await.ct();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = node.rss_kib().expect("rss");

    // 2,000 connections, each a PollItem waiting up to 20 s.
    const POLLS: usize = 2000;
    let q = format!("{p}&causality_token={}&timeout=20", enc(&tok));
    let mut polls = vec![];
    for _ in 0..POLLS {
        let head = k2v.signed_head(
            "GET",
            &q,
            &[("connection", "close")],
            PayloadHash::of_body(b""),
        );
        let a = k2v.addr();
        polls.push(tokio::spawn(async move {
            raw_exchange(&a, head.as_bytes(), Duration::from_secs(40)).await
        }));
    }
    // While they wait, the node serves ordinary requests (other keys).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..5 {
        still_serves(&k2v, &format!("during-{i}")).await;
    }
    let rss_during = node.rss_kib().expect("rss");
    assert!(
        rss_during < rss_before + 200 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB with {POLLS} polls"
    );
    // One write wakes every poll, each answering 200.
    let started = Instant::now();
    assert_eq!(k2v.req("PUT", &p, &[], b"w").await.status, 204);
    let mut ok = 0;
    for h in polls {
        let r = h.await.expect("join");
        if r.status == Some(200) {
            ok += 1;
        }
    }
    assert_eq!(ok, POLLS, "every poll answers the write");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    eprintln!(
        "{POLLS} long polls: RSS {rss_before} KiB before, {rss_during} KiB during, \
         all woken in {:?}",
        started.elapsed()
    );
    assert!(node.is_running());
    still_serves(&k2v, "after-polls").await;
}
