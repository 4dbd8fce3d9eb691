//! Replication on several real nodes (rf 3 on loopback): deletions that must
//! survive a stale replica, a node joining the cluster, a node failing under
//! concurrent writers, the quorums of each `consistency_mode`, and racing
//! writers without causality tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};

use crate::common::{
    self, decode_values, enc, index_rows, Creds, K2v, Node, NodeOpts, Resp, Values,
};

const TOKEN: &str = "x-garage-causality-token";

/// Items of a range answer: (sort key, values).
type Items = Vec<(String, Values)>;

fn rf3() -> NodeOpts {
    NodeOpts {
        rf: 3,
        ..Default::default()
    }
}

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

/// A fresh client for `node` (a new connection pool: after a restart the
/// pooled connections of an older client are dead).
fn client(node: &Node, creds: &Creds) -> K2v {
    K2v::new(node.endpoint(), creds.clone())
}

async fn post_json(k2v: &K2v, path: &str, body: &Value) -> Resp {
    k2v.req("POST", path, &[], body.to_string().as_bytes())
        .await
}

/// ReadItem, JSON format.
async fn read(k2v: &K2v, pk: &str, sk: &str) -> Resp {
    k2v.req(
        "GET",
        &item(k2v, pk, sk),
        &[("accept", "application/json")],
        b"",
    )
    .await
}

/// InsertItem; panics unless 204.
async fn put(k2v: &K2v, pk: &str, sk: &str, v: &[u8], ct: Option<&str>) {
    let h: Vec<(&str, &str)> = ct.map(|c| vec![(TOKEN, c)]).unwrap_or_default();
    let r = k2v.req("PUT", &item(k2v, pk, sk), &h, v).await;
    assert_eq!(
        r.status,
        204,
        "insert {pk}/{sk} via {}: {r:?} {}",
        k2v.endpoint,
        text(&r)
    );
}

/// DeleteItem with a token; panics unless 204.
async fn del(k2v: &K2v, pk: &str, sk: &str, ct: &str) {
    let r = k2v
        .req("DELETE", &item(k2v, pk, sk), &[(TOKEN, ct)], b"")
        .await;
    assert_eq!(r.status, 204, "delete {pk}/{sk}: {r:?} {}", text(&r));
}

/// ReadItem: (values, token); panics unless 200.
async fn get(k2v: &K2v, pk: &str, sk: &str) -> (Values, String) {
    let r = read(k2v, pk, sk).await;
    assert_eq!(
        r.status,
        200,
        "read {pk}/{sk} via {}: {r:?} {}",
        k2v.endpoint,
        text(&r)
    );
    (decode_values(&r.json()), r.ct())
}

/// The `items` of a ReadBatch result or a PollRange answer.
fn batch_items(res: &Value) -> Items {
    res["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {res}"))
        .iter()
        .map(|i| {
            (
                i["sk"].as_str().expect("sk").to_string(),
                decode_values(&i["v"]),
            )
        })
        .collect()
}

/// One ReadBatch search, following `nextStart` until `more` is false.
async fn search_all(k2v: &K2v, query: Value, ctx: &str) -> Items {
    let mut q = query;
    let mut out = vec![];
    loop {
        let r = k2v
            .req("SEARCH", &k2v.b(), &[], json!([q]).to_string().as_bytes())
            .await;
        assert_eq!(r.status, 200, "{ctx}: ReadBatch {q}: {}", text(&r));
        let j = r.json()[0].clone();
        out.extend(batch_items(&j));
        if j["more"] == json!(true) {
            q["start"] = j["nextStart"].clone();
        } else {
            return out;
        }
    }
}

/// Waits until `f` returns Ok, at most `secs`; panics with its last error.
async fn within<F, Fut>(secs: u64, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    loop {
        match f().await {
            Ok(()) => {
                eprintln!("[{:>5.1}s] {what}", start.elapsed().as_secs_f64());
                return start.elapsed();
            }
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: not reached in {secs}s; last: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The lines of a `garage status` section.
fn section<'a>(out: &'a str, title: &str) -> &'a str {
    match out.split_once(title) {
        Some((_, rest)) => rest.split("====").next().unwrap_or(""),
        None => "",
    }
}

/// `node` lists every id of `ids` as healthy and none as failed.
fn sees_healthy(node: &Node, ids: &[String]) -> Result<(), String> {
    let out = node.cli(&["status"]);
    let st = String::from_utf8_lossy(&out.stdout);
    let healthy = section(&st, "==== HEALTHY NODES ====");
    let failed = section(&st, "==== FAILED NODES ====");
    if out.status.success()
        && ids
            .iter()
            .all(|id| healthy.contains(&id[..16]) && !failed.contains(&id[..16]))
    {
        Ok(())
    } else {
        Err(st.into_owned())
    }
}

/// Sends `fut` and waits at most `secs` for the answer.
async fn answer_within(secs: u64, what: &str, fut: impl Future<Output = Resp>) -> (Resp, Duration) {
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in {secs}s"));
    (r, t.elapsed())
}

/// Asserts a 503 `ServiceUnavailable` that came within `max`.
#[track_caller]
fn assert_503_within(r: &Resp, elapsed: Duration, max: Duration, what: &str) {
    assert_eq!(r.status, 503, "{what}: {r:?} {}", text(r));
    assert_eq!(
        r.json()["code"],
        "ServiceUnavailable",
        "{what}: {}",
        text(r)
    );
    assert!(
        elapsed <= max,
        "{what}: 503 after {elapsed:?}, more than {max:?}"
    );
    eprintln!("{what}: 503 after {elapsed:?}");
}

/// Starts three nodes with `opts` (nodes 2 and 3 bootstrapped to node 1),
/// waits until every node sees the others, lays them out in three zones,
/// creates a key and a bucket `bucket`, and waits until every node serves
/// signed requests.
async fn cluster(opts: NodeOpts) -> (Vec<Node>, Creds) {
    common::cluster(3, opts, "bucket").await
}

fn value_of(sk: &str) -> Vec<u8> {
    format!("value of {sk}").into_bytes()
}

/// Checks, through `k`, that no deleted item shows a value and that every
/// surviving item reads back whole: ReadItem, ReadBatch (plain, by prefix,
/// singleItem, with tombstones), PollRange without a marker, ReadIndex.
async fn check_deleted_stay_deleted(
    k: &K2v,
    ctx: &str,
    pk: &str,
    alive: &BTreeSet<&str>,
    deleted: &BTreeSet<&str>,
) {
    fn want<'a>(sks: impl Iterator<Item = &'a &'a str>) -> Items {
        sks.map(|sk| (sk.to_string(), vec![Some(value_of(sk))]))
            .collect()
    }

    // ReadBatch of the whole partition: exactly the surviving items.
    let got = search_all(k, json!({"partitionKey": pk}), ctx).await;
    assert_eq!(
        got,
        want(alive.iter()),
        "{ctx}: ReadBatch over the partition"
    );
    // By prefix.
    for prefix in ["p/", "q/", "b"] {
        let got = search_all(k, json!({"partitionKey": pk, "prefix": prefix}), ctx).await;
        assert_eq!(
            got,
            want(alive.iter().filter(|s| s.starts_with(prefix))),
            "{ctx}: ReadBatch prefix {prefix}"
        );
    }
    // A start/end range across deleted and surviving keys.
    let got = search_all(
        k,
        json!({"partitionKey": pk, "start": "a2", "end": "p/x3"}),
        ctx,
    )
    .await;
    assert_eq!(
        got,
        want(alive.iter().filter(|s| ("a2".."p/x3").contains(*s))),
        "{ctx}: ReadBatch start a2 end p/x3"
    );
    // singleItem of each deleted item: nothing.
    for sk in deleted {
        let got = search_all(
            k,
            json!({"partitionKey": pk, "singleItem": true, "start": sk}),
            ctx,
        )
        .await;
        assert_eq!(got, vec![], "{ctx}: ReadBatch singleItem {sk}");
    }
    // With tombstones: the deleted items come with only null values.
    let got = search_all(k, json!({"partitionKey": pk, "tombstones": true}), ctx).await;
    let got: BTreeMap<String, Values> = got.into_iter().collect();
    for sk in deleted {
        if let Some(v) = got.get(*sk) {
            assert!(
                v.iter().all(Option::is_none),
                "{ctx}: ReadBatch tombstones: deleted {sk} shows {v:?}"
            );
        }
    }
    for sk in alive {
        assert_eq!(
            got.get(*sk),
            Some(&vec![Some(value_of(sk))]),
            "{ctx}: ReadBatch tombstones: {sk}"
        );
    }

    // ReadItem: a deleted item reads as a tombstone (`[null]`, per the
    // spec; 404 is accepted too: nothing to show either way).
    for sk in deleted {
        let r = read(k, pk, sk).await;
        let ok = r.status == 404
            || (r.status == 200 && decode_values(&r.json()).iter().all(Option::is_none));
        assert!(
            ok,
            "{ctx}: ReadItem of deleted {sk}: {} {}",
            r.status,
            text(&r)
        );
    }
    for sk in alive {
        let r = read(k, pk, sk).await;
        assert_eq!(r.status, 200, "{ctx}: ReadItem {sk}: {}", text(&r));
        assert_eq!(
            decode_values(&r.json()),
            vec![Some(value_of(sk))],
            "{ctx}: ReadItem {sk}"
        );
    }

    // PollRange without a marker: deleted items at most as tombstones.
    let r = post_json(k, &format!("{}/{}?poll_range", k.b(), enc(pk)), &json!({})).await;
    assert_eq!(r.status, 200, "{ctx}: PollRange: {}", text(&r));
    let got = batch_items(&r.json());
    let mut seen = BTreeSet::new();
    for (sk, v) in &got {
        assert!(seen.insert(sk.clone()), "{ctx}: PollRange: {sk} twice");
        if deleted.contains(sk.as_str()) {
            assert!(
                v.iter().all(Option::is_none),
                "{ctx}: PollRange: deleted {sk} shows {v:?}"
            );
        } else {
            assert!(
                alive.contains(sk.as_str()),
                "{ctx}: PollRange: unknown {sk}"
            );
            assert_eq!(v, &vec![Some(value_of(sk))], "{ctx}: PollRange {sk}");
        }
    }
    for sk in alive {
        assert!(seen.contains(*sk), "{ctx}: PollRange misses {sk}");
    }

    // ReadIndex: counts of the surviving items (eventually consistent).
    let n = alive.len() as i64;
    let bytes: i64 = alive.iter().map(|sk| value_of(sk).len() as i64).sum();
    let want_row = vec![(pk.to_string(), n, 0, n, bytes)];
    let path = format!("{}?prefix={}", k.b(), enc(pk));
    within(20, &format!("{ctx}: ReadIndex counts"), || async {
        let r = k.req("GET", &path, &[], b"").await;
        if r.status != 200 {
            return Err(format!("{} {}", r.status, text(&r)));
        }
        let rows = index_rows(&r.json());
        if rows == want_row {
            Ok(())
        } else {
            Err(format!("{rows:?}, want {want_row:?}"))
        }
    })
    .await;
}

/// Waits until ReadItem of the surviving `sk` answers 200 through each of
/// `clients` (after a restart, the peers' first RPCs may still go to the
/// dead process's connection: a transient 503, not what is tested here).
async fn serving(clients: &[&K2v], pk: &str, sk: &str, ctx: &str) {
    for (i, c) in clients.iter().enumerate() {
        within(30, &format!("{ctx}: client {i} serves"), || async {
            let r = read(c, pk, sk).await;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, text(&r)))
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_items_stay_deleted_with_a_stale_replica() {
    let (mut nodes, creds) = cluster(rf3()).await;
    let ids: Vec<String> = nodes.iter().map(|n| n.id()).collect();
    let pk = "del";
    let (c1, c2) = (client(&nodes[0], &creds), client(&nodes[1], &creds));

    let single = ["a1", "a2", "a3", "keep1"];
    let batch = [
        "b1", "b2", "b3", "p/x1", "p/x2", "p/x3", "q/y1", "q/y2", "keep2",
    ];
    for sk in single {
        put(&c1, pk, sk, &value_of(sk), None).await;
    }
    let body: Vec<Value> = batch
        .iter()
        .map(|sk| json!({"pk": pk, "sk": sk, "ct": null, "v": b64(&value_of(sk))}))
        .collect();
    let r = post_json(&c1, &c1.b(), &json!(body)).await;
    assert_eq!(r.status, 204, "InsertBatch: {}", text(&r));
    let mut alive: BTreeSet<&str> = single.iter().chain(batch.iter()).copied().collect();
    let mut deleted: BTreeSet<&str> = BTreeSet::new();
    // Read back through node 2 (and node 3, then give the background
    // replication time to reach it: it must hold every value).
    for c in [&c2, &client(&nodes[2], &creds)] {
        for sk in &alive {
            assert_eq!(get(c, pk, sk).await.0, vec![Some(value_of(sk))], "{sk}");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Wave 1, node 3 down: DeleteItem (with tokens) and DeleteBatch (a
    // prefix and a singleItem) through node 1.
    nodes[2].kill();
    for sk in ["a1", "a2"] {
        let (_, t) = get(&c1, pk, sk).await;
        del(&c1, pk, sk, &t).await;
    }
    let r = post_json(
        &c1,
        &format!("{}?delete", c1.b()),
        &json!([
            {"partitionKey": pk, "prefix": "p/"},
            {"partitionKey": pk, "singleItem": true, "start": "b2"},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "DeleteBatch: {}", text(&r));
    let j = r.json();
    assert_eq!(
        (&j[0]["deletedItems"], &j[1]["deletedItems"]),
        (&json!(3), &json!(1)),
        "{j}"
    );
    for sk in ["a1", "a2", "p/x1", "p/x2", "p/x3", "b2"] {
        alive.remove(sk);
        deleted.insert(sk);
    }

    // Node 3 comes back stale (it still holds the old values). Rounds 1-6
    // read through every node, node 3 first (its reads ask itself first).
    nodes[2].restart();
    let c3 = client(&nodes[2], &creds);
    serving(&[&c3, &c2, &c1], pk, "keep1", "stale node 3 back").await;
    for round in 1..=6 {
        for (i, c) in [(3, &c3), (2, &c2), (1, &c1)] {
            let ctx = format!("round {round} (stale node 3 back), through node {i}");
            check_deleted_stay_deleted(c, &ctx, pk, &alive, &deleted).await;
        }
    }

    // Wave 2, node 3 down again: more deletions through node 1.
    nodes[2].kill();
    let (_, t) = get(&c1, pk, "a3").await;
    del(&c1, pk, "a3", &t).await;
    let r = post_json(
        &c1,
        &format!("{}?delete", c1.b()),
        &json!([
            {"partitionKey": pk, "prefix": "q/"},
            {"partitionKey": pk, "singleItem": true, "start": "b3"},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "DeleteBatch: {}", text(&r));
    let j = r.json();
    assert_eq!(
        (&j[0]["deletedItems"], &j[1]["deletedItems"]),
        (&json!(2), &json!(1)),
        "{j}"
    );
    for sk in ["a3", "q/y1", "q/y2", "b3"] {
        alive.remove(sk);
        deleted.insert(sk);
    }
    // Node 3 back (stale again), then node 1 down: every read quorum is
    // now node 2 plus the stale node 3. Rounds 7-10 through nodes 3 and 2.
    nodes[2].restart();
    for n in [&nodes[2], &nodes[1]] {
        within(30, "nodes 2 and 3 see each other", || async {
            sees_healthy(n, &ids)
        })
        .await;
    }
    nodes[0].kill();
    let c3 = client(&nodes[2], &creds);
    serving(&[&c3, &c2], pk, "keep1", "stale node 3 back, node 1 down").await;
    for round in 7..=10 {
        for (i, c) in [(3, &c3), (2, &c2)] {
            let ctx = format!("round {round} (stale node 3, node 1 down), through node {i}");
            check_deleted_stay_deleted(c, &ctx, pk, &alive, &deleted).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_node_joins_and_serves_existing_keys() {
    let (nodes, creds) = cluster(rf3()).await;
    let c1 = client(&nodes[0], &creds);
    let old: Vec<String> = (0..5).map(|i| format!("old{i}")).collect();
    for sk in &old {
        put(&c1, "j", sk, &value_of(sk), None).await;
    }

    // A fourth node, bootstrapped to node 1, without a role.
    let boot = format!(
        "{}@{}:{}",
        nodes[0].id(),
        nodes[0].opts.ip,
        nodes[0].rpc_port
    );
    let n4 = common::start_node(NodeOpts {
        bootstrap: vec![boot],
        ..rf3()
    });
    let id4 = n4.id();
    let c4 = client(&n4, &creds);
    // Within 10 s it serves signed requests with the existing key.
    let serves = |sk: &'static str| {
        let (c4, old) = (&c4, &old);
        move || async move {
            let r = c4.req("PUT", &item(c4, "j", sk), &[], &value_of(sk)).await;
            if r.status != 204 {
                return Err(format!("InsertItem {sk}: {} {}", r.status, text(&r)));
            }
            for s in old.iter().map(String::as_str).chain([sk]) {
                let r = read(c4, "j", s).await;
                if r.status != 200 {
                    return Err(format!("ReadItem {s}: {} {}", r.status, text(&r)));
                }
                let v = decode_values(&r.json());
                if v != vec![Some(value_of(s))] {
                    return Err(format!("ReadItem {s}: {v:?}"));
                }
            }
            Ok(())
        }
    };
    within(
        10,
        "node 4 (no role) serves the existing key",
        serves("new-norole"),
    )
    .await;
    for c in [&c1, &client(&nodes[2], &creds)] {
        assert_eq!(
            get(c, "j", "new-norole").await.0,
            vec![Some(value_of("new-norole"))]
        );
    }

    // Then given a role (a fourth zone) and the layout applied.
    nodes[0].cli_ok(&["layout", "assign", &id4[..16], "-z", "dc4", "-c", "1G"]);
    let out = nodes[0].cli_ok(&["layout", "apply", "--version", "2"]);
    assert!(out.contains("Optimal partition size:"), "{out}");
    within(
        10,
        "node 4 (with a role) serves the existing key",
        serves("new-role"),
    )
    .await;
    let show = n4.cli_ok(&["layout", "show"]);
    assert!(show.contains("Current cluster layout version: 2"), "{show}");
    let all: Vec<&str> = old
        .iter()
        .map(String::as_str)
        .chain(["new-norole", "new-role"])
        .collect();
    for (i, n) in nodes.iter().chain([&n4]).enumerate() {
        let c = client(n, &creds);
        for sk in &all {
            assert_eq!(
                get(&c, "j", sk).await.0,
                vec![Some(value_of(sk))],
                "node {} {sk}",
                i + 1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three_under_concurrent_writers() {
    let rpc_timeout = Duration::from_millis(3000);
    let (mut nodes, creds) = cluster(NodeOpts {
        rpc_timeout_msec: rpc_timeout.as_millis() as u64,
        ..rf3()
    })
    .await;
    let pk = "cw";

    // Four writers (two through node 1, two through node 2) for 5 s; node
    // 3 is killed after 2.5 s.
    let start = Instant::now();
    let run_for = Duration::from_secs(5);
    let mut tasks = vec![];
    for w in 0..4 {
        let k = client(&nodes[w % 2], &creds);
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (vec![], vec![]);
            let mut seq = 0;
            while start.elapsed() < run_for {
                let sk = format!("w{w}-{seq:06}");
                seq += 1;
                let path = item(&k, pk, &sk);
                let req = k.req("PUT", &path, &[], sk.as_bytes());
                match tokio::time::timeout(Duration::from_secs(15), req).await {
                    Ok(r) if r.status == 204 => acked.push((sk, start.elapsed())),
                    Ok(r) => failed.push((sk, r.status, text(&r))),
                    Err(_) => failed.push((sk, 0, "no answer in 15 s".into())),
                }
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    nodes[2].kill();
    let killed_at = start.elapsed();
    let mut acked: Vec<String> = vec![];
    let mut n503 = 0;
    for (w, t) in tasks.into_iter().enumerate() {
        let (a, f) = t.await.expect("writer task");
        let after = a.iter().filter(|(_, t)| *t > killed_at).count();
        eprintln!(
            "writer {w}: {} acknowledged ({after} after the kill), {} failed",
            a.len(),
            f.len()
        );
        assert!(
            after > 0,
            "writer {w}: no write acknowledged after the kill"
        );
        for (sk, status, body) in &f {
            assert_eq!(*status, 503, "writer {w}: {sk}: {status} {body}");
            n503 += 1;
        }
        acked.extend(a.into_iter().map(|(sk, _)| sk));
    }
    eprintln!("{} writes acknowledged, {n503} answered 503", acked.len());

    // Every acknowledged write reads back through nodes 1 and 2.
    let check_acked = |k: K2v, ctx: String| {
        let acked = &acked;
        async move {
            let got: BTreeMap<String, Values> = search_all(&k, json!({"partitionKey": pk}), &ctx)
                .await
                .into_iter()
                .collect();
            for sk in acked {
                assert_eq!(
                    got.get(sk),
                    Some(&vec![Some(sk.clone().into_bytes())]),
                    "{ctx}: acknowledged write {sk}"
                );
            }
            for (sk, v) in &got {
                assert_eq!(v, &vec![Some(sk.clone().into_bytes())], "{ctx}: {sk}");
            }
            for sk in acked.iter().step_by(25) {
                assert_eq!(
                    get(&k, pk, sk).await.0,
                    vec![Some(sk.clone().into_bytes())],
                    "{ctx}: ReadItem {sk}"
                );
            }
        }
    };
    for (i, n) in nodes[..2].iter().enumerate() {
        check_acked(
            client(n, &creds),
            format!("node 3 down, through node {}", i + 1),
        )
        .await;
    }

    // Node 2 down too: 503 through node 1, within rpc_timeout_msec + 2 s.
    nodes[1].kill();
    let c1 = client(&nodes[0], &creds);
    let max = rpc_timeout + Duration::from_secs(2);
    let (r, el) = answer_within(
        20,
        "InsertItem, two nodes down",
        c1.req("PUT", &item(&c1, pk, "two-down"), &[], b"two-down"),
    )
    .await;
    assert_503_within(&r, el, max, "InsertItem, two nodes down");
    let (r, el) = answer_within(20, "ReadItem, two nodes down", read(&c1, pk, &acked[0])).await;
    assert_503_within(&r, el, max, "ReadItem, two nodes down");

    // Nodes 2 and 3 back: service resumes through every node.
    nodes[1].restart();
    nodes[2].restart();
    for (i, n) in nodes.iter().enumerate() {
        let k = client(n, &creds);
        let sk = format!("resumed-{}", i + 1);
        within(30, &format!("node {} serves again", i + 1), || async {
            let r = k.req("PUT", &item(&k, pk, &sk), &[], sk.as_bytes()).await;
            if r.status != 204 {
                return Err(format!("InsertItem: {} {}", r.status, text(&r)));
            }
            let r = read(&k, pk, &sk).await;
            if r.status != 200 {
                return Err(format!("ReadItem: {} {}", r.status, text(&r)));
            }
            match decode_values(&r.json()) {
                v if v == vec![Some(sk.clone().into_bytes())] => Ok(()),
                v => Err(format!("ReadItem: {v:?}")),
            }
        })
        .await;
    }
    check_acked(client(&nodes[2], &creds), "all back, through node 3".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_modes_degraded_and_dangerous() {
    let rpc_timeout = Duration::from_millis(3000);
    let max = rpc_timeout + Duration::from_secs(2);
    let opts = |mode: &str| NodeOpts {
        extra: format!("consistency_mode = \"{mode}\""),
        rpc_timeout_msec: rpc_timeout.as_millis() as u64,
        ..rf3()
    };
    let batch = |sk: &str| json!([{"pk": "cm", "sk": sk, "ct": null, "v": b64(b"batch")}]);

    // degraded (rf 3): R = 1, W = 2.
    {
        let (mut nodes, creds) = cluster(opts("degraded")).await;
        let c1 = client(&nodes[0], &creds);
        put(&c1, "cm", "before", b"old", None).await;
        assert_eq!(
            get(&c1, "cm", "before").await.0,
            vec![Some(b"old".to_vec())]
        );
        nodes[1].kill();
        nodes[2].kill();
        let (r, _) = answer_within(10, "degraded ReadItem", read(&c1, "cm", "before")).await;
        assert_eq!(r.status, 200, "degraded, 2 down: ReadItem: {}", text(&r));
        assert_eq!(decode_values(&r.json()), vec![Some(b"old".to_vec())]);
        let got = search_all(&c1, json!({"partitionKey": "cm"}), "degraded, 2 down").await;
        assert_eq!(
            got,
            vec![("before".to_string(), vec![Some(b"old".to_vec())])],
            "degraded, 2 down: ReadBatch"
        );
        let (r, el) = answer_within(
            20,
            "degraded InsertItem",
            c1.req("PUT", &item(&c1, "cm", "during"), &[], b"new"),
        )
        .await;
        assert_503_within(&r, el, max, "degraded, 2 down: InsertItem");
        let (r, el) = answer_within(
            20,
            "degraded InsertBatch",
            post_json(&c1, &c1.b(), &batch("during-batch")),
        )
        .await;
        assert_503_within(&r, el, max, "degraded, 2 down: InsertBatch");
    }

    // dangerous (rf 3): R = 1, W = 1.
    {
        let (mut nodes, creds) = cluster(opts("dangerous")).await;
        let c1 = client(&nodes[0], &creds);
        put(&c1, "cm", "before", b"old", None).await;
        assert_eq!(
            get(&c1, "cm", "before").await.0,
            vec![Some(b"old".to_vec())]
        );
        nodes[1].kill();
        nodes[2].kill();
        let (r, el) = answer_within(
            20,
            "dangerous InsertItem",
            c1.req("PUT", &item(&c1, "cm", "during"), &[], b"new"),
        )
        .await;
        assert_eq!(r.status, 204, "dangerous, 2 down: InsertItem: {}", text(&r));
        eprintln!("dangerous, 2 down: InsertItem 204 after {el:?}");
        let (r, _) = answer_within(
            20,
            "dangerous InsertBatch",
            post_json(&c1, &c1.b(), &batch("during-batch")),
        )
        .await;
        assert_eq!(
            r.status,
            204,
            "dangerous, 2 down: InsertBatch: {}",
            text(&r)
        );
        for (sk, v) in [
            ("before", &b"old"[..]),
            ("during", b"new"),
            ("during-batch", b"batch"),
        ] {
            let (r, _) = answer_within(10, "dangerous ReadItem", read(&c1, "cm", sk)).await;
            assert_eq!(
                r.status,
                200,
                "dangerous, 2 down: ReadItem {sk}: {}",
                text(&r)
            );
            assert_eq!(decode_values(&r.json()), vec![Some(v.to_vec())], "{sk}");
        }
        let got = search_all(&c1, json!({"partitionKey": "cm"}), "dangerous, 2 down").await;
        assert_eq!(got.len(), 3, "dangerous, 2 down: ReadBatch {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_without_tokens_keep_every_value() {
    const N: usize = 8;
    let (nodes, creds) = cluster(rf3()).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = vec![];
    for w in 0..N {
        // Half through node 1, half through node 2.
        let k = client(&nodes[w % 2], &creds);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            // Open the connection first, so that the writes leave together.
            let r = read(&k, "race", "warm-up").await;
            assert_eq!(r.status, 404, "{}", text(&r));
            barrier.wait().await;
            let v = format!("value from writer {w}");
            let r = k
                .req("PUT", &item(&k, "race", "same"), &[], v.as_bytes())
                .await;
            (w, r.status, text(&r))
        }));
    }
    for t in tasks {
        let (w, status, body) = t.await.expect("writer task");
        assert_eq!(status, 204, "writer {w}: {body}");
    }
    let want: BTreeSet<Vec<u8>> = (0..N)
        .map(|w| format!("value from writer {w}").into_bytes())
        .collect();
    for (i, n) in nodes.iter().enumerate().rev() {
        let k = client(n, &creds);
        let (v, _) = get(&k, "race", "same").await;
        let got: BTreeSet<Vec<u8>> = v.iter().map(|x| x.clone().expect("no tombstone")).collect();
        assert_eq!(v.len(), N, "node {}: {v:?}", i + 1);
        assert_eq!(got, want, "through node {}", i + 1);
    }
}
