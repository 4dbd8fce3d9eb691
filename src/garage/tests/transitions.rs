//! Layout changes under load: data moves to its new owners, every
//! acknowledged item stays readable during and after the move, counters
//! stay exact, the transition ends by itself and a removed node ends empty.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::anti_entropy::{entries, insert_batch, item, values, values_strict};
use crate::common::{self, Creds, K2v, Node, NodeOpts};

const PKS: usize = 8;

fn rf3() -> NodeOpts {
    NodeOpts {
        rf: 3,
        ..Default::default()
    }
}

/// Live layout versions, from `garage layout history` (rows `#N current`
/// or `#N draining`).
fn live_versions(n: &Node) -> Vec<String> {
    n.cli_ok(&["layout", "history"])
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter(|l| l.contains("current") || l.contains("draining"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Waits until `n` shows a single live layout version; returns the time.
async fn transition_ends(n: &Node, secs: u64) -> Duration {
    let start = Instant::now();
    loop {
        let live = live_versions(n);
        if live.len() == 1 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "transition still running after {secs} s: live {live:?}\n{}\n{}",
            n.cli_ok(&["layout", "history"]),
            n.cli_ok(&["worker", "list"])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes items `w{n}` (partition key `p{n % PKS}`) through `k` until
/// `stop`; returns the acknowledged ones.
fn writer(k: K2v, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(String, String)>> {
    tokio::spawn(async move {
        let mut acked = vec![];
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let (pk, sk) = (format!("p{}", n % PKS as u64), format!("w{n:06}"));
            let r = k.req("PUT", &item(&k, &pk, &sk), &[], sk.as_bytes()).await;
            match r.status {
                204 => acked.push((pk, sk)),
                503 => tokio::time::sleep(Duration::from_millis(50)).await,
                s => panic!(
                    "InsertItem {pk}/{sk}: {s} {}",
                    String::from_utf8_lossy(&r.body)
                ),
            }
            n += 1;
        }
        acked
    })
}

/// Every item of `expected` reads back exactly through `k` (ReadBatch of
/// each partition key), and ReadIndex counts exactly them.
async fn check_all(k: &K2v, expected: &BTreeMap<String, Vec<String>>, what: &str) {
    for (pk, sks) in expected {
        let body = serde_json::to_vec(&serde_json::json!([{"partitionKey": pk}])).expect("json");
        let r = k
            .req("POST", &format!("{}?search", k.b()), &[], &body)
            .await;
        assert_eq!(r.status, 200, "{what}: ReadBatch {pk}");
        let got: Vec<String> = r.json()[0]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["sk"].as_str().expect("sk").to_string())
            .collect();
        assert_eq!(&got, sks, "{what}: items of {pk}");
    }
    // Counters are pushed in the background: they converge within seconds.
    let want: BTreeMap<String, i64> = expected
        .iter()
        .map(|(pk, v)| (pk.clone(), v.len() as i64))
        .collect();
    let start = Instant::now();
    loop {
        let r = k.req("GET", &k.b(), &[], b"").await;
        assert_eq!(r.status, 200, "{what}: ReadIndex");
        let got: BTreeMap<String, i64> = r.json()["partitionKeys"]
            .as_array()
            .expect("partitionKeys")
            .iter()
            .map(|p| {
                (
                    p["pk"].as_str().expect("pk").to_string(),
                    p["entries"].as_i64().expect("entries"),
                )
            })
            .collect();
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: ReadIndex {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn by_pk(items: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (pk, sk) in items {
        m.entry(pk.clone()).or_default().push(sk.clone());
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

async fn join_fourth(nodes: &mut Vec<Node>, opts: NodeOpts, creds: &Creds) {
    let boot = format!("{}@127.0.0.1:{}", nodes[0].id(), nodes[0].rpc_port);
    nodes.push(common::start_node(NodeOpts {
        bootstrap: vec![boot],
        ..opts
    }));
    common::wait_mesh(nodes).await;
    let k4 = K2v::new(nodes[3].endpoint(), creds.clone());
    let probe = item(&k4, "probe", "probe");
    common::eventually(30, || async {
        k4.req("GET", &probe, &[], b"").await.status == 404
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_fourth_node_and_remove_the_first_under_writes() {
    let (mut nodes, creds) = common::cluster(3, rf3(), "moving").await;
    let k2 = K2v::new(nodes[1].endpoint(), creds.clone());
    let mut before = vec![];
    for p in 0..PKS {
        let pk = format!("p{p}");
        insert_batch(&k2, &pk, 0, 250).await;
        before.extend((0..250).map(|i| (pk.clone(), format!("k{i:05}"))));
    }
    join_fourth(&mut nodes, rf3(), &creds).await;

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(K2v::new(nodes[1].endpoint(), creds.clone()), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id1 = nodes[0].id();
    let id4 = nodes[3].id();
    nodes[1].cli_ok(&["layout", "assign", &id4[..16], "-z", "dc1", "-c", "1G"]);
    nodes[1].cli_ok(&["layout", "remove", &id1[..16]]);
    nodes[1].cli_ok(&["layout", "apply", "--version", "2"]);
    let status = nodes[1].cli_ok(&["status"]);
    eprintln!("{status}");
    let took = transition_ends(&nodes[1], 120).await;
    eprintln!("transition of {} items ended in {took:?}", before.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = w.await.expect("writer");
    assert!(
        acked.len() > 20,
        "the writer made progress: {}",
        acked.len()
    );

    // The removed node hands everything off and ends empty.
    let start = Instant::now();
    while entries(&nodes[0]).0 > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node 1 still holds {:?}\n{}",
            entries(&nodes[0]),
            nodes[0].cli_ok(&["worker", "list"])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = nodes[1].cli_ok(&["status"]);
    assert!(!status.contains("Transition to layout"), "{status}");

    let mut all = before;
    all.extend(acked);
    let expected = by_pk(&all);
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let k = K2v::new(n.endpoint(), creds.clone());
        check_all(&k, &expected, &format!("through node {}", i + 1)).await;
    }
    // With node 1 gone for good, the others still hold everything.
    nodes[0].kill();
    let k4 = K2v::new(nodes[3].endpoint(), creds.clone());
    check_all(&k4, &expected, "through node 4, node 1 stopped").await;
    assert_eq!(
        values(&k4, "p3", "k00249").await,
        Some(vec!["v249".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_changes_under_reads_and_writes() {
    let (nodes, creds) = common::cluster(4, rf3(), "resizing").await;
    let k3 = K2v::new(nodes[2].endpoint(), creds.clone());
    for p in 0..PKS {
        insert_batch(&k3, &format!("p{p}"), 0, 100).await;
    }
    // The writer records what was acknowledged; the reader reads those
    // items back through another node all along.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(vec![]));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let writer = {
        let (k, acked, stop) = (
            K2v::new(nodes[2].endpoint(), creds.clone()),
            acked.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (pk, sk) = (format!("p{}", n % PKS as u64), format!("w{n:06}"));
                let r = k.req("PUT", &item(&k, &pk, &sk), &[], sk.as_bytes()).await;
                assert_eq!(r.status, 204, "InsertItem {pk}/{sk}");
                acked.lock().expect("lock").push((pk, sk));
                n += 1;
            }
        })
    };
    let reader = {
        let (k, acked, stop, reads) = (
            K2v::new(nodes[3].endpoint(), creds.clone()),
            acked.clone(),
            stop.clone(),
            reads.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let pick: Option<(String, String)> = {
                    let a = acked.lock().expect("lock");
                    if a.is_empty() {
                        None
                    } else {
                        // The newest item and an older one in turn.
                        let j = if i.is_multiple_of(2) {
                            a.len() - 1
                        } else {
                            (i * 7919) % a.len()
                        };
                        Some(a[j].clone())
                    }
                };
                i += 1;
                let Some((pk, sk)) = pick else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let v = values_strict(&k, &pk, &sk).await;
                assert_eq!(
                    v,
                    Some(vec![sk.clone()]),
                    "acknowledged {pk}/{sk} not read back"
                );
                let v = values_strict(&k, &pk, "k00042").await;
                assert_eq!(v, Some(vec!["v42".to_string()]), "{pk}/k00042");
                reads.fetch_add(2, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids: Vec<String> = nodes.iter().map(|n| n.id()).collect();
    nodes[0].cli_ok(&["layout", "assign", &ids[0][..16], "-c", "3G"]);
    nodes[0].cli_ok(&["layout", "assign", &ids[1][..16], "-c", "500M"]);
    nodes[0].cli_ok(&["layout", "apply", "--version", "2"]);
    let took = transition_ends(&nodes[0], 120).await;
    eprintln!("capacity transition ended in {took:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer: every write acknowledged");
    reader
        .await
        .expect("reader: every acknowledged item read back");
    let n_reads = reads.load(Ordering::Relaxed);
    assert!(n_reads > 20, "the reader made progress: {n_reads}");
    eprintln!("{n_reads} reads of acknowledged items, none failed");

    let mut all: Vec<(String, String)> = (0..PKS)
        .flat_map(|p| (0..100).map(move |i| (format!("p{p}"), format!("k{i:05}"))))
        .collect();
    all.extend(acked.lock().expect("lock").iter().cloned());
    let expected = by_pk(&all);
    for (i, n) in nodes.iter().enumerate() {
        let k = K2v::new(n.endpoint(), creds.clone());
        check_all(&k, &expected, &format!("through node {}", i + 1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_dead_nodes_lets_a_transition_finish_without_a_dead_node() {
    let (mut nodes, creds) = common::cluster(3, rf3(), "replacing").await;
    let k2 = K2v::new(nodes[1].endpoint(), creds.clone());
    for p in 0..PKS {
        insert_batch(&k2, &format!("p{p}"), 0, 50).await;
    }
    join_fourth(&mut nodes, rf3(), &creds).await;
    // Node 1 dies for good; node 4 replaces it.
    let id1 = nodes[0].id();
    let id4 = nodes[3].id();
    nodes[0].kill();
    let out = nodes[1].cli(&["layout", "skip-dead-nodes", "--version", "1"]);
    assert!(!out.status.success(), "no transition to force yet");
    nodes[1].cli_ok(&["layout", "assign", &id4[..16], "-z", "dc1", "-c", "1G"]);
    nodes[1].cli_ok(&["layout", "remove", &id1[..16]]);
    nodes[1].cli_ok(&["layout", "apply", "--version", "2"]);
    // The dead node never acks version 2: the transition waits for it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(live_versions(&nodes[1]).len(), 2);
    let history = nodes[1].cli_ok(&["layout", "history"]);
    assert!(history.contains("skip-dead-nodes --version 2"), "{history}");
    // Reads and writes keep working meanwhile.
    let r = k2.req("PUT", &item(&k2, "p0", "during"), &[], b"d").await;
    assert_eq!(r.status, 204);
    let out = nodes[1].cli(&["layout", "skip-dead-nodes", "--version", "3"]);
    assert!(
        !out.status.success(),
        "a version above the current one is refused"
    );
    let out = nodes[1].cli_ok(&["layout", "skip-dead-nodes", "--version", "2"]);
    assert!(
        out.contains(&format!("{}: ack raised to #2", &id1[..16])),
        "{out}"
    );
    let took = transition_ends(&nodes[1], 60).await;
    eprintln!("transition finished {took:?} after skip-dead-nodes");
    let mut all: Vec<(String, String)> = (0..PKS)
        .flat_map(|p| (0..50).map(move |i| (format!("p{p}"), format!("k{i:05}"))))
        .collect();
    all.push(("p0".into(), "during".into()));
    let expected = by_pk(&all);
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let k = K2v::new(n.endpoint(), creds.clone());
        check_all(&k, &expected, &format!("through node {}", i + 1)).await;
    }
}
