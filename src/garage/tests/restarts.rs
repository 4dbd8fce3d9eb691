//! Start-up never aborts: nodes are started and stopped many times beside a
//! running cluster (fresh nodes joining, members restarted in place, stops
//! by SIGTERM and SIGKILL), and every start must come up listening and
//! every SIGTERM must end with exit code 0.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crate::common::{self, NodeOpts};

/// Rounds of the test (each one starts a fresh node and restarts a member).
const ROUNDS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_and_stop_many_times_beside_a_cluster() {
    let opts = NodeOpts {
        rf: 3,
        ..Default::default()
    };
    let (mut nodes, creds) = common::cluster(3, opts.clone(), "bucket").await;
    let boot = format!(
        "{}@{}:{}",
        nodes[0].id(),
        nodes[0].opts.ip,
        nodes[0].rpc_port
    );
    let k2v = common::K2v::new(nodes[0].endpoint(), creds);
    for round in 0..ROUNDS {
        // A fresh node joins (it connects to the whole mesh at start).
        let mut extra = common::Node::start(NodeOpts {
            bootstrap: vec![boot.clone()],
            ..opts.clone()
        });
        tokio::time::sleep(Duration::from_millis(200 + 100 * (round as u64 % 4))).await;
        assert!(
            extra.exit_status().is_none(),
            "round {round}: joined node exited:\n{}",
            extra.log()
        );
        if round % 2 == 0 {
            let st = extra.terminate().expect("status");
            assert_eq!(
                st.code(),
                Some(0),
                "round {round}: SIGTERM exit {st:?}:\n{}",
                extra.log()
            );
        } else {
            extra.kill();
        }
        assert!(
            !extra.log().contains("panicked"),
            "round {round}: a panic in the log:\n{}",
            extra.log()
        );

        // A member restarts in place (same ports, same data) while the
        // others keep connecting to it.
        let m = 1 + round % 2;
        if round % 3 == 0 {
            nodes[m].kill();
        } else {
            let st = nodes[m].terminate().expect("status");
            assert_eq!(st.code(), Some(0), "round {round}: member SIGTERM {st:?}");
            assert_ne!(st.signal(), Some(6));
        }
        nodes[m].restart();
        assert!(
            nodes[m].exit_status().is_none(),
            "round {round}: member exited"
        );
    }
    // The cluster still serves writes with every member back.
    common::wait_mesh(&nodes).await;
    let url = format!("{}/pk?sort_key=after", k2v.b());
    common::eventually(30, || async {
        k2v.try_req("PUT", &url, &[], b"v").await.map(|r| r.status) == Ok(204)
    })
    .await;
    for n in &nodes {
        let log = n.log();
        assert!(
            !log.contains("panicked"),
            "a panic in a member's log:\n{log}"
        );
    }
}

#[test]
fn a_busy_rpc_port_is_a_clear_error_and_exit_code_1() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("garage.toml");
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{port}\"\nrpc_secret = \"{s}\"\n[s3_api]\ns3_region = \"garage\"\n",
            d = dir.path().display(),
            s = "ab".repeat(32)
        ),
    )
    .expect("config");
    let out = std::process::Command::new(common::garage_bin())
        .arg("-c")
        .arg(&config)
        .arg("server")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {stderr}", out.status);
    assert!(
        stderr.contains(&format!("cannot listen for RPC on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
