//! Several nodes on one machine: membership, layout staging through one
//! node, showing through another, applying through a third; failure and
//! rejoin.

use std::time::{Duration, Instant};

use crate::common::{Node, NodeOpts};

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("[{:>5.1}s] {what}", start.elapsed().as_secs_f64());
}

fn section<'a>(out: &'a str, title: &str) -> &'a str {
    match out.split_once(title) {
        Some((_, rest)) => rest.split("====").next().unwrap_or(""),
        None => "",
    }
}

#[test]
fn three_nodes_three_zones_layout_and_failure() {
    let n1 = Node::start(NodeOpts {
        rf: 3,
        ..Default::default()
    });
    let id1 = n1.id();
    let boot = format!("{id1}@127.0.0.1:{}", n1.rpc_port);
    let n2 = Node::start(NodeOpts {
        rf: 3,
        bootstrap: vec![boot.clone()],
        ..Default::default()
    });
    let mut n3 = Node::start(NodeOpts {
        rf: 3,
        bootstrap: vec![boot],
        ..Default::default()
    });
    let (id2, id3) = (n2.id(), n3.id());

    // Everyone sees everyone (n2 and n3 learn about each other through n1).
    for n in [&n1, &n2, &n3] {
        wait_until(30, "3 healthy nodes", || {
            let st = n.cli_ok(&["status"]);
            let healthy = section(&st, "==== HEALTHY NODES ====");
            [&id1, &id2, &id3]
                .iter()
                .all(|id| healthy.contains(&id[..16]))
        });
    }

    // Stage through node 1.
    n1.cli_ok(&[
        "layout",
        "assign",
        &id1[..10],
        "-z",
        "dc1",
        "-c",
        "1G",
        "-t",
        "a",
    ]);
    n1.cli_ok(&["layout", "assign", &id2[..10], "-z", "dc2", "-c", "2G"]);
    n1.cli_ok(&["layout", "assign", &id3[..10], "-z", "dc3", "-c", "1GB"]);
    // Shown through node 2.
    wait_until(30, "staged changes visible on node 2", || {
        let show = n2.cli_ok(&["layout", "show"]);
        show.contains("==== STAGED ROLE CHANGES ====")
            && [&id1, &id2, &id3].iter().all(|id| show.contains(&id[..16]))
            && show.contains("garage layout apply --version 1")
    });
    // Applied through node 3 (once it has the staged changes too).
    wait_until(30, "staged changes visible on node 3", || {
        n3.cli_ok(&["layout", "show"])
            .contains("garage layout apply --version 1")
    });
    let out = n3.cli_ok(&["layout", "apply", "--version", "1"]);
    assert!(out.contains("Optimal partition size:"), "{out}");
    assert!(
        out.contains("Partitions are replicated 3 times on at least 3 distinct zones."),
        "{out}"
    );
    for n in [&n1, &n2, &n3] {
        wait_until(30, "layout version 1 everywhere", || {
            let show = n.cli_ok(&["layout", "show"]);
            show.contains("Current cluster layout version: 1")
                && !show.contains("STAGED ROLE CHANGES")
        });
    }
    let hist = n2.cli_ok(&["layout", "history"]);
    assert!(hist.contains("#1") && hist.contains("current"), "{hist}");
    // Applying an already used version number is refused.
    assert!(!n1
        .cli(&["layout", "apply", "--version", "1"])
        .status
        .success());

    // Kill node 3: it shows under FAILED NODES.
    n3.kill();
    wait_until(30, "node 3 failed", || {
        let st = n1.cli_ok(&["status"]);
        section(&st, "==== FAILED NODES ====").contains(&id3[..16])
    });

    // Restarted, it rejoins without help.
    n3.restart();
    wait_until(60, "node 3 back", || {
        let st = n1.cli_ok(&["status"]);
        !st.contains("==== FAILED NODES ====")
            && section(&st, "==== HEALTHY NODES ====").contains(&id3[..16])
    });
    let show = n3.cli_ok(&["layout", "show"]);
    assert!(show.contains("Current cluster layout version: 1"), "{show}");
}
