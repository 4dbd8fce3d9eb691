//! Replicas converge by themselves: a node that missed writes, or lost its
//! database, is brought level by anti-entropy (compared through the Merkle
//! roots of every partition, not through quorum reads that would hide a
//! gap), and tombstones are collected on every replica without a deleted
//! value coming back.

use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde_json::{json, Value};

use crate::common::{self, Creds, K2v, Node, NodeOpts};

pub(crate) fn item(k: &K2v, pk: &str, sk: &str) -> String {
    format!("{}/{}?sort_key={}", k.b(), common::enc(pk), common::enc(sk))
}

/// Three nodes, rf 3, one zone each, with a key and a bucket.
async fn cluster(extra: &str) -> (Vec<Node>, Creds) {
    let opts = NodeOpts {
        rf: 3,
        extra: extra.to_string(),
        ..Default::default()
    };
    common::cluster(3, opts, "sync-test").await
}

/// `garage debug merkle-roots` of both sharded tables on one node.
fn roots(n: &Node) -> String {
    let items = n.cli_ok(&["debug", "merkle-roots", "k2v_item"]);
    let counters = n.cli_ok(&["debug", "merkle-roots", "k2v_index_counter"]);
    format!("{items}{counters}")
}

/// (entries, tombstones) of the item table stored on one node.
pub(crate) fn entries(n: &Node) -> (u64, u64) {
    let out = n.cli_ok(&["debug", "entries", "k2v_item"]);
    let num = |label: &str| -> u64 {
        common::field(&out, label)
            .parse()
            .unwrap_or_else(|_| panic!("bad `{label}` in {out}"))
    };
    (num("entries: "), num("tombstones: "))
}

/// Waits until every live node has the same Merkle roots for every
/// partition of both sharded tables; returns how long that took.
async fn roots_converge(nodes: &[&Node], secs: u64) -> Duration {
    let start = Instant::now();
    loop {
        let all: Vec<String> = nodes.iter().map(|n| roots(n)).collect();
        if all.windows(2).all(|w| w[0] == w[1]) {
            assert!(
                all[0].lines().any(|l| !l.ends_with(" -")),
                "the tries hold something"
            );
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "Merkle roots still differ after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub(crate) async fn insert_batch(k: &K2v, pk: &str, from: usize, to: usize) {
    let items: Vec<Value> = (from..to)
        .map(|i| {
            json!({"pk": pk, "sk": format!("k{i:05}"), "ct": null,
                   "v": BASE64_STANDARD.encode(format!("v{i}"))})
        })
        .collect();
    let body = serde_json::to_vec(&items).expect("json");
    let r = k.req("POST", &k.b(), &[], &body).await;
    assert_eq!(
        r.status,
        204,
        "InsertBatch: {}",
        String::from_utf8_lossy(&r.body)
    );
}

async fn delete_prefix(k: &K2v, pk: &str, prefix: &str) -> u64 {
    let body = serde_json::to_vec(&json!([{"partitionKey": pk, "prefix": prefix}])).expect("json");
    let r = k
        .req("POST", &format!("{}?delete", k.b()), &[], &body)
        .await;
    assert_eq!(
        r.status,
        200,
        "DeleteBatch: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()[0]["deletedItems"].as_u64().expect("deletedItems")
}

/// Every value of an item, as text, through one node (None: 404, or
/// deleted: only tombstones).
pub(crate) async fn values(k: &K2v, pk: &str, sk: &str) -> Option<Vec<String>> {
    read_values(k, pk, sk, 25).await
}

/// Like [`values`], but any answer other than 200 or 404 fails at once.
pub(crate) async fn values_strict(k: &K2v, pk: &str, sk: &str) -> Option<Vec<String>> {
    read_values(k, pk, sk, 0).await
}

/// A 503 right after a node was killed or restarted (a peer's connection
/// to it not yet seen dead) is retried `retries` times, 200 ms apart: it
/// says nothing about the data.
async fn read_values(k: &K2v, pk: &str, sk: &str, retries: usize) -> Option<Vec<String>> {
    let path = item(k, pk, sk);
    let accept = [("accept", "application/json")];
    let mut r = k.req("GET", &path, &accept, b"").await;
    for _ in 0..retries {
        if r.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = k.req("GET", &path, &accept, b"").await;
    }
    match r.status {
        404 => None,
        200 => Some(
            r.json()
                .as_array()
                .expect("array")
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) => {
                        String::from_utf8(BASE64_STANDARD.decode(s).expect("base64")).expect("utf8")
                    }
                    None => "<deleted>".into(),
                })
                .collect::<Vec<String>>(),
        )
        .filter(|v| v.iter().any(|x| x != "<deleted>")),
        s => panic!(
            "ReadItem {pk}/{sk}: {s} {}",
            String::from_utf8_lossy(&r.body)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up() {
    // A long interval: the catch-up must come from the restart, not from a
    // periodic pass.
    let (mut nodes, creds) = cluster("sync_interval_secs = 3600").await;
    let k1 = K2v::new(nodes[0].endpoint(), creds.clone());
    insert_batch(&k1, "p", 0, 200).await;
    nodes[2].kill();
    insert_batch(&k1, "p", 200, 600).await;
    insert_batch(&k1, "q", 0, 100).await;
    assert_eq!(delete_prefix(&k1, "p", "k000").await, 100);
    nodes[2].restart();
    let took = {
        let live: Vec<&Node> = nodes.iter().collect();
        roots_converge(&live, 60).await
    };
    eprintln!("restarted node caught up on 400 items in {took:?}");
    // The workers behind it, as an operator sees them.
    let workers = nodes[2].cli_ok(&["worker", "list"]);
    for w in [
        "k2v committer",
        "k2v_item Merkle updater",
        "k2v_item anti-entropy",
        "k2v_item GC",
        "k2v_index_counter anti-entropy",
        "k2v index counter propagation",
        "key full-copy sync",
        "layout trackers",
    ] {
        assert!(workers.contains(w), "no `{w}` in:\n{workers}");
    }
    assert!(workers.contains("queue 0"), "{workers}");
    let out = nodes[2].cli(&["repair", "tables"]);
    assert!(!out.status.success(), "repair needs --yes");
    let out = nodes[2].cli_ok(&["repair", "--yes", "tables"]);
    assert!(out.contains("Repair launched"), "{out}");
    let e: Vec<(u64, u64)> = nodes.iter().map(entries).collect();
    assert!(e.iter().all(|x| *x == e[0]), "{e:?}");
    assert_eq!(
        e[0].0, 700,
        "every item (tombstones included) on every node"
    );
    // Read through the restarted node with node 1 down: its own copy and
    // node 2's must both hold everything.
    nodes[0].kill();
    let k3 = K2v::new(nodes[2].endpoint(), creds.clone());
    assert_eq!(values(&k3, "p", "k00599").await, Some(vec!["v599".into()]));
    assert_eq!(values(&k3, "p", "k00050").await, None, "deleted");
    assert_eq!(values(&k3, "q", "k00099").await, Some(vec!["v99".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_is_refilled() {
    let (mut nodes, creds) = cluster("sync_interval_secs = 3600").await;
    let k: Vec<K2v> = nodes
        .iter()
        .map(|n| K2v::new(n.endpoint(), creds.clone()))
        .collect();
    insert_batch(&k[0], "p", 0, 300).await;
    // Two concurrent values, and one value written by node 3 itself.
    for (i, kk) in k.iter().take(2).enumerate() {
        let r = kk
            .req(
                "PUT",
                &item(kk, "c", "both"),
                &[],
                format!("c{i}").as_bytes(),
            )
            .await;
        assert_eq!(r.status, 204);
    }
    let r = k[2]
        .req("PUT", &item(&k[2], "c", "mine"), &[], b"old")
        .await;
    assert_eq!(r.status, 204);
    let before = entries(&nodes[0]);

    nodes[2].kill();
    let db = nodes[2].dir.path().join("meta").join("db");
    if db.is_dir() {
        std::fs::remove_dir_all(&db).expect("wipe db");
    } else {
        std::fs::remove_file(&db).expect("wipe db");
    }
    assert!(nodes[2].dir.path().join("meta").join("node_key").exists());
    nodes[2].restart();
    let took = {
        let live: Vec<&Node> = nodes.iter().collect();
        roots_converge(&live, 60).await
    };
    eprintln!("wiped node refilled in {took:?}");
    assert_eq!(entries(&nodes[2]), before, "refilled with every item");

    // Nothing lost, nothing revived: the concurrent values are both there,
    // through the refilled node with another replica down.
    nodes[1].kill();
    let mut both = values(&k[2], "c", "both").await.expect("present");
    both.sort();
    assert_eq!(both, vec!["c0", "c1"]);
    assert_eq!(
        values(&k[2], "p", "k00123").await,
        Some(vec!["v123".into()])
    );
    // The refilled node writes under a new K2V node id: a write without a
    // token is concurrent with the one it made before the wipe, not taken
    // for an older or newer version of it.
    let r = k[2]
        .req("PUT", &item(&k[2], "c", "mine"), &[], b"new")
        .await;
    assert_eq!(r.status, 204);
    let mut mine = values(&k[2], "c", "mine").await.expect("present");
    mine.sort();
    assert_eq!(mine, vec!["new", "old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_collected_everywhere() {
    let (mut nodes, creds) =
        cluster("tombstone_gc_delay_secs = 2\nsync_interval_secs = 3600").await;
    let k1 = K2v::new(nodes[0].endpoint(), creds.clone());
    insert_batch(&k1, "p", 0, 60).await;
    // Node 3 misses the delete: collection must wait for it.
    nodes[2].kill();
    assert_eq!(delete_prefix(&k1, "p", "k0000").await, 10);
    assert_eq!(delete_prefix(&k1, "p", "k0001").await, 10);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (n, t) = entries(&nodes[0]);
    assert_eq!(
        (n, t),
        (60, 20),
        "nothing collected while a replica is down"
    );
    nodes[2].restart();
    let start = Instant::now();
    loop {
        let e: Vec<(u64, u64)> = nodes.iter().map(entries).collect();
        if e.iter().all(|x| *x == (40, 0)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tombstones not collected everywhere: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "tombstones collected on every replica {:?} after restart",
        start.elapsed()
    );
    // Deleted items stay deleted through every node, also with the node
    // that missed the delete in every read quorum.
    let check = |k: K2v| async move {
        for i in 0..60 {
            let v = values(&k, "p", &format!("k{i:05}")).await;
            if i < 20 {
                assert_eq!(v, None, "k{i:05} came back");
            } else {
                assert_eq!(v, Some(vec![format!("v{i}")]));
            }
        }
    };
    for n in &nodes {
        check(K2v::new(n.endpoint(), creds.clone())).await;
    }
    nodes[0].kill();
    check(K2v::new(nodes[2].endpoint(), creds.clone())).await;
    check(K2v::new(nodes[1].endpoint(), creds.clone())).await;
    // The reads' repairs may still be on their way to the other replica.
    roots_converge(&[&nodes[1], &nodes[2]], 10).await;
}
