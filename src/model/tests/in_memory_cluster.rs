//! Three nodes in one process over the in-memory network: no sockets, a
//! layout applied by merging, K2V inserts and reads through different nodes,
//! one node cut off then back (read repair brings it up to date).

use std::sync::Arc;
use std::time::Duration;

use garage_db::Db;
use garage_model::garage::Garage;
use garage_model::k2v::causality::CausalContext;
use garage_model::k2v::item::{DvvsValue, K2VItemPartition};
use garage_model::k2v::rpc::InsertedItem;
use garage_rpc::layout::NodeRole;
use garage_rpc::memory_transport::MemoryNetwork;
use garage_rpc::system::{System, SystemConfig};
use garage_util::background::BackgroundRunner;
use garage_util::config::Config;
use garage_util::data::Uuid;
use garage_util::rng::Rng;
use garage_util::time::Clock;

fn config(dir: &std::path::Path) -> Config {
    let text = format!(
        "metadata_dir = \"{d}\"\ndata_dir = \"{d}\"\nreplication_factor = 3\n\
         rpc_bind_addr = \"127.0.0.1:1\"\nrpc_secret = \"{s}\"\n[s3_api]\ns3_region = \"garage\"\n",
        d = dir.display(),
        s = "00".repeat(32)
    );
    Config::parse(&text, std::path::Path::new("test.toml"))
        .expect("config")
        .0
}

struct Sim {
    net: Arc<MemoryNetwork>,
    nodes: Vec<Arc<Garage>>,
    _dirs: Vec<tempfile::TempDir>,
    /// Stops every node's workers when dropped.
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(n: u8) -> Sim {
    let net = MemoryNetwork::new();
    let mut nodes = vec![];
    let mut dirs = vec![];
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let bg = BackgroundRunner::new(stop_rx);
    for i in 1..=n {
        let dir = tempfile::tempdir().expect("tmp");
        let t = net.add_node(Uuid::from_bytes([i; 32]));
        let system = System::new(
            t,
            SystemConfig {
                metadata_dir: dir.path().to_path_buf(),
                rf: 3,
                consistency: "consistent".into(),
                rpc_timeout: Duration::from_secs(2),
                rpc_public_addr: None,
            },
        )
        .expect("system");
        let g = Garage::new(
            config(dir.path()),
            Db::memory(),
            system,
            Clock::system(),
            Rng::seeded(u64::from(i)),
        )
        .expect("garage");
        g.spawn_workers(&bg);
        nodes.push(g);
        dirs.push(dir);
    }
    // Stage and apply a layout on node 1, then give it to everyone.
    let mut l = (*nodes[0].system.layout()).clone();
    for (i, g) in nodes.iter().enumerate() {
        l.stage_assign(
            g.system.id,
            NodeRole {
                zone: format!("dc{i}"),
                capacity: Some(1_000_000_000),
                tags: vec![],
            },
        )
        .expect("stage");
    }
    let (applied, _) = l.apply_staged_changes(Some(1)).expect("apply");
    for g in nodes.iter() {
        g.system.merge_layout(&applied).await.expect("merge");
    }
    Sim {
        net,
        nodes,
        _dirs: dirs,
        _stop: stop,
    }
}

fn item(bucket: Uuid, sk: &str, v: &[u8], ct: Option<String>) -> InsertedItem {
    InsertedItem {
        partition: K2VItemPartition {
            bucket_id: bucket,
            partition_key: "pk".into(),
        },
        sort_key: sk.into(),
        causal_context: ct.map(|t| CausalContext::parse(&t).expect("token")),
        value: DvvsValue::Value(v.to_vec()),
    }
}

#[tokio::test]
async fn writes_and_reads_across_nodes_with_one_node_down() {
    let sim = start(3).await;
    for g in sim.nodes.iter() {
        assert_eq!(g.system.layout().current().version, 1);
    }
    let bucket = Uuid::from_bytes([42; 32]);
    let p = K2VItemPartition {
        bucket_id: bucket,
        partition_key: "pk".into(),
    };

    // Insert through node 1, read through node 2.
    sim.nodes[0]
        .k2v
        .rpc
        .insert_many(vec![item(bucket, "a", b"one", None)])
        .await
        .expect("insert");
    let got = sim.nodes[1]
        .k2v
        .rpc
        .read_item(&p, &"a".to_string())
        .await
        .expect("read")
        .expect("present");
    assert_eq!(got.values(), vec![&DvvsValue::Value(b"one".to_vec())]);

    // The third copy arrives in the background (the write quorum is 2).
    for _ in 0..100 {
        let local = sim.nodes[2].k2v.item_table.get_local(&p, &"a".to_string());
        if local.expect("local").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Node 3 cut off: quorum 2 of 3 still writes and reads.
    let id3 = sim.nodes[2].system.id;
    sim.net.set_down(id3, true);
    let ct = got.causal_context().serialize();
    sim.nodes[1]
        .k2v
        .rpc
        .insert_many(vec![item(bucket, "a", b"two", Some(ct))])
        .await
        .expect("insert with a node down");
    let got = sim.nodes[0]
        .k2v
        .rpc
        .read_item(&p, &"a".to_string())
        .await
        .expect("read")
        .expect("present");
    assert_eq!(got.values(), vec![&DvvsValue::Value(b"two".to_vec())]);

    // Node 3 is behind; after it is back, a quorum read through it merges
    // the newer copy and repairs its local copy.
    let stale = sim.nodes[2]
        .k2v
        .item_table
        .get_local(&p, &"a".to_string())
        .expect("local")
        .expect("present");
    assert_eq!(stale.values(), vec![&DvvsValue::Value(b"one".to_vec())]);
    sim.net.set_down(id3, false);
    let mut repaired = false;
    for _ in 0..50 {
        let r = sim.nodes[2]
            .k2v
            .rpc
            .read_item(&p, &"a".to_string())
            .await
            .expect("read")
            .expect("present");
        assert_eq!(r.values(), vec![&DvvsValue::Value(b"two".to_vec())]);
        let local = sim.nodes[2]
            .k2v
            .item_table
            .get_local(&p, &"a".to_string())
            .expect("local")
            .expect("present");
        if local.values() == vec![&DvvsValue::Value(b"two".to_vec())] {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(repaired, "read repair did not update node 3");

    // Two nodes down: no quorum, a clear error rather than a hang.
    sim.net.set_down(sim.nodes[1].system.id, true);
    sim.net.set_down(id3, true);
    let r = sim.nodes[0]
        .k2v
        .rpc
        .insert_many(vec![item(bucket, "b", b"x", None)])
        .await;
    assert!(r.is_err(), "a write without quorum must fail");
}

#[tokio::test]
async fn keys_and_buckets_reach_every_node() {
    let sim = start(3).await;
    let key = sim.nodes[0].create_key("k").await.expect("key");
    sim.nodes[0].create_bucket("shared").await.expect("bucket");
    // Full-copy tables: every node reads locally; the last copy may arrive
    // just after the write quorum answered.
    for g in sim.nodes.iter() {
        let mut ok = false;
        for _ in 0..100 {
            if let (Ok(k), Ok(_)) = (g.find_key(&key.key_id).await, g.find_bucket("shared").await) {
                assert_eq!(k.name(), "k");
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ok, "key or bucket missing on node {:?}", g.system.id);
    }
}
