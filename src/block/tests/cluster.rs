//! Block stores of several nodes in one process, over the in-memory
//! network: writes with a node down and its catch-up through anti-entropy
//! plus resync, reads from other nodes, a corrupt file replaced, deletion
//! after the delay, and the hand-off of blocks after a layout change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use garage_block::{BlockManager, BlockRef};
use garage_db::Db;
use garage_rpc::layout::{LayoutHistory, NodeRole};
use garage_rpc::memory_transport::MemoryNetwork;
use garage_rpc::system::{System, SystemConfig};
use garage_util::background::BackgroundRunner;
use garage_util::config::Config;
use garage_util::data::{blake2sum, Hash, Uuid};
use garage_util::time::Clock;

/// Seconds an unreferenced block is kept in these tests.
const DELAY_SECS: u64 = 1;

fn config(meta: &Path, data: &Path, rf: usize) -> Config {
    let text = format!(
        "metadata_dir = \"{m}\"\ndata_dir = \"{d}\"\nreplication_factor = {rf}\n\
         rpc_bind_addr = \"127.0.0.1:1\"\nrpc_secret = \"{s}\"\n\
         tombstone_gc_delay_secs = {DELAY_SECS}\nsync_interval_secs = 2\n\
         [s3_api]\ns3_region = \"garage\"\n",
        m = meta.display(),
        d = data.display(),
        s = "00".repeat(32)
    );
    Config::parse(&text, Path::new("test.toml"))
        .expect("config")
        .0
}

struct Node {
    system: Arc<System>,
    blocks: Arc<BlockManager>,
    data: PathBuf,
}

struct Sim {
    net: Arc<MemoryNetwork>,
    nodes: Vec<Node>,
    _dirs: Vec<tempfile::TempDir>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(n: u8, rf: usize) -> Sim {
    let net = MemoryNetwork::new();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let bg = BackgroundRunner::new(stop_rx);
    let mut nodes = vec![];
    let mut dirs = vec![];
    for i in 1..=n {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        let t = net.add_node(Uuid::from_bytes([i; 32]));
        let system = System::new(
            t,
            SystemConfig {
                metadata_dir: dir.path().to_path_buf(),
                rf,
                consistency: "consistent".into(),
                rpc_timeout: Duration::from_secs(2),
                rpc_public_addr: None,
            },
        )
        .expect("system");
        let cfg = config(dir.path(), &data, rf);
        let blocks = BlockManager::new(&cfg, Db::memory(), system.clone(), Clock::system())
            .expect("block manager");
        bg.spawn_worker(system.status_worker());
        bg.spawn_worker(system.tracker_worker());
        blocks.spawn_workers(&bg);
        nodes.push(Node {
            system,
            blocks,
            data,
        });
        dirs.push(dir);
    }
    Sim {
        net,
        nodes,
        _dirs: dirs,
        _stop: stop,
    }
}

/// Stages `roles` (node index → capacity; None: no role) on node 0's
/// layout, applies it and gives it to every node.
async fn apply_layout(sim: &Sim, roles: &[(usize, bool)]) -> LayoutHistory {
    let mut l = (*sim.nodes[0].system.layout()).clone();
    for (i, present) in roles {
        let id = sim.nodes[*i].system.id;
        if *present {
            l.stage_assign(
                id,
                NodeRole {
                    zone: format!("dc{i}"),
                    capacity: Some(1_000_000_000),
                    tags: vec![],
                },
            )
            .expect("stage");
        } else {
            l.stage_remove(id);
        }
    }
    let next = l.current().version + 1;
    let (applied, _) = l.apply_staged_changes(Some(next)).expect("apply");
    for n in sim.nodes.iter() {
        n.system.merge_layout(&applied).await.expect("merge");
    }
    applied
}

fn block(seed: u8, len: usize) -> (Hash, Bytes) {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
    (blake2sum(&data), Bytes::from(data))
}

fn file_of(data_dir: &Path, h: &Hash) -> PathBuf {
    let hex = h.to_hex();
    data_dir.join(&hex[..2]).join(&hex[2..4]).join(hex)
}

async fn reference(node: &Node, h: Hash, version: u8, deleted: bool) {
    node.blocks
        .block_ref_table()
        .insert_many(&[BlockRef {
            block: h,
            version: Uuid::from_bytes([version; 32]),
            deleted,
        }])
        .await
        .expect("insert ref");
}

/// Waits up to `secs` for `cond`.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..(secs * 20) {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_catch_up_corruption_and_deletion() {
    let sim = start(3, 3).await;
    apply_layout(&sim, &[(0, true), (1, true), (2, true)]).await;
    let (h, data) = block(7, 100_000);

    // Node 3 is down during the write: the write quorum (2 of 3) is met.
    let id3 = sim.nodes[2].system.id;
    sim.net.set_down(id3, true);
    reference(&sim.nodes[0], h, 1, false).await;
    sim.nodes[0].blocks.put(h, data.clone()).await.expect("put");
    for n in &sim.nodes[..2] {
        assert!(file_of(&n.data, &h).is_file(), "missing on a live node");
    }
    assert!(!file_of(&sim.nodes[2].data, &h).exists());

    // Read through node 2 (local) and node 3 while it is cut off: fails.
    assert_eq!(sim.nodes[1].blocks.get(&h).await.expect("get"), data);
    assert!(sim.nodes[2].blocks.get(&h).await.is_err());

    // Node 3 back: anti-entropy of block_ref brings the reference, the
    // hook queues a check, the resync worker fetches the block.
    sim.net.set_down(id3, false);
    let f3 = file_of(&sim.nodes[2].data, &h);
    eventually(20, "node 3 fetches the block it missed", || f3.is_file()).await;
    assert_eq!(std::fs::read(&f3).expect("read"), data.to_vec());

    // A corrupt copy on node 1 is detected on read, served from another
    // node, and rewritten.
    let f1 = file_of(&sim.nodes[0].data, &h);
    std::fs::write(&f1, b"garbage").expect("corrupt");
    assert_eq!(sim.nodes[0].blocks.get(&h).await.expect("get"), data);
    assert_eq!(std::fs::read(&f1).expect("reread"), data.to_vec());
    assert!(f1.with_extension("corrupted").is_file());

    // A block put with a wrong hash is refused by every node.
    let (h2, _) = block(9, 10);
    let err = sim.nodes[0].blocks.put(h2, data.clone()).await;
    assert!(
        err.is_err(),
        "a block whose data does not match its hash was stored"
    );
    assert!(!file_of(&sim.nodes[0].data, &h2).exists());

    let s = sim.nodes[0].blocks.stats();
    eventually(10, "start-up count", || sim.nodes[0].blocks.stats().counted).await;
    assert_eq!(s.rc_entries, 1);

    // The only reference deleted: after the delay every node deletes it.
    reference(&sim.nodes[1], h, 1, true).await;
    for n in &sim.nodes {
        let f = file_of(&n.data, &h);
        eventually(30, "unreferenced block deleted", || !f.exists()).await;
    }
    eventually(10, "rc state forgotten", || {
        sim.nodes.iter().all(|n| n.blocks.stats().rc_entries == 0)
    })
    .await;
    assert_eq!(sim.nodes[0].blocks.stats().blocks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_block_is_deleted_and_live_one_kept() {
    let sim = start(1, 1).await;
    apply_layout(&sim, &[(0, true)]).await;
    let n = &sim.nodes[0];
    let (kept, kept_data) = block(3, 5000);
    let (orphan, orphan_data) = block(5, 5000);
    reference(n, kept, 1, false).await;
    n.blocks.put(kept, kept_data.clone()).await.expect("put");
    // Written with no reference (an aborted upload).
    n.blocks.put(orphan, orphan_data).await.expect("put");
    let fo = file_of(&n.data, &orphan);
    assert!(fo.is_file());
    eventually(30, "orphan deleted", || !fo.exists()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        file_of(&n.data, &kept).is_file(),
        "referenced block deleted"
    );
    assert_eq!(n.blocks.get(&kept).await.expect("get"), kept_data);
    assert!(n.blocks.get(&orphan).await.is_err());
    let s = n.blocks.stats();
    assert_eq!((s.blocks, s.bytes), (1, 5000), "{s:?}");

    // `repair blocks` with a lost file: nothing to fetch from (rf 1), the
    // check fails and is retried; the error is counted.
    std::fs::remove_file(file_of(&n.data, &kept)).expect("rm");
    n.blocks.launch_repair();
    eventually(20, "failing block recorded", || {
        n.blocks.stats().resync_errors == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_change_hands_blocks_off() {
    // rf 1: node 1 alone stores everything, then node 2 replaces it.
    let sim = start(2, 1).await;
    apply_layout(&sim, &[(0, true)]).await;
    let mut hashes = vec![];
    for i in 0..8u8 {
        let (h, d) = block(i + 11, 3000);
        reference(&sim.nodes[0], h, i, false).await;
        sim.nodes[0].blocks.put(h, d).await.expect("put");
        hashes.push(h);
    }
    assert!(hashes
        .iter()
        .all(|h| file_of(&sim.nodes[0].data, h).is_file()));
    apply_layout(&sim, &[(0, false), (1, true)]).await;
    for h in hashes.iter() {
        let f = file_of(&sim.nodes[1].data, h);
        eventually(60, "new holder gets the block", || f.is_file()).await;
    }
    for h in hashes.iter() {
        let f = file_of(&sim.nodes[0].data, h);
        eventually(60, "old holder deletes the block", || !f.exists()).await;
        assert_eq!(
            sim.nodes[1]
                .blocks
                .get(h)
                .await
                .expect("get from new holder")
                .len(),
            3000
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_answers_and_repair_refetches_a_lost_file() {
    use garage_block::rpc::BLOCK_RPC_PATH;
    use garage_block::BlockRpc;
    use garage_rpc::Endpoint;

    let sim = start(3, 3).await;
    apply_layout(&sim, &[(0, true), (1, true), (2, true)]).await;
    let (h, data) = block(21, 50_000);
    reference(&sim.nodes[0], h, 1, false).await;
    sim.nodes[0].blocks.put(h, data.clone()).await.expect("put");
    let f2 = file_of(&sim.nodes[1].data, &h);
    let f3 = file_of(&sim.nodes[2].data, &h);
    eventually(10, "third copy", || f3.is_file()).await;

    // The disk of node 2 loses the file.
    std::fs::remove_file(&f2).expect("rm");
    let ep: Endpoint<BlockRpc> =
        Endpoint::new(sim.nodes[0].system.transport.clone(), BLOCK_RPC_PATH);
    let (id1, id2) = (sim.nodes[0].system.id, sim.nodes[1].system.id);
    let t = Duration::from_secs(2);
    let need = |r: BlockRpc| match r {
        BlockRpc::Need(b) => b,
        other => panic!("unexpected {other:?}"),
    };
    let ask = BlockRpc::NeedBlock { hash: h };
    assert!(need(ep.call(id2, &ask, t).await.expect("need")));
    assert!(!need(ep.call(id1, &ask, t).await.expect("need")));
    let (unknown, _) = block(99, 10);
    let ask_unknown = BlockRpc::NeedBlock { hash: unknown };
    assert!(!need(ep.call(id2, &ask_unknown, t).await.expect("need")));
    let got = ep.call(id2, &BlockRpc::GetBlock { hash: h }, t).await;
    assert!(matches!(got, Ok(BlockRpc::NotFound)), "{got:?}");
    let got = ep.call(id1, &BlockRpc::GetBlock { hash: h }, t).await;
    assert!(matches!(got, Ok(BlockRpc::Block { ref data }) if data.len() == 50_000));
    // Data that does not match its hash is refused.
    let bad = BlockRpc::PutBlock {
        hash: unknown,
        data: serde_bytes::ByteBuf::from(vec![1u8; 10]),
    };
    assert!(ep.call(id2, &bad, t).await.is_err());
    // A request that is an answer is refused too.
    assert!(ep.call(id2, &BlockRpc::NotFound, t).await.is_err());

    // Reads through node 2 still work (from another node) and keep a copy.
    assert_eq!(sim.nodes[1].blocks.get(&h).await.expect("get"), data);
    assert!(
        f2.is_file(),
        "a node holding the block keeps what it fetched"
    );

    // Lost again: `repair blocks` finds and refetches it.
    std::fs::remove_file(&f2).expect("rm");
    sim.nodes[1].blocks.launch_repair();
    eventually(20, "repair refetches the lost file", || f2.is_file()).await;
    assert_eq!(std::fs::read(&f2).expect("read"), data.to_vec());
}
