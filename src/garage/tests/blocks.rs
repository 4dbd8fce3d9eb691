//! The block store through the binary, without the S3 API: block files
//! placed by hand in `data_dir` (as a crash or an aborted upload leaves
//! them) are found by `garage repair blocks` or by the start-up scan,
//! shown by `garage block info`, and deleted once unreferenced for
//! `tombstone_gc_delay_secs`. The write and read paths are covered by the
//! in-process cluster tests of `garage_block` and by the S3 tests.

use std::path::{Path, PathBuf};

use garage_util::data::blake2sum;

use crate::common::{eventually, single_node, NodeOpts};

/// Places `content` as a block file named by `name_of`'s hash.
fn place(data_dir: &Path, name_of: &[u8], content: &[u8]) -> (String, PathBuf) {
    let hex = blake2sum(name_of).to_hex();
    let dir = data_dir.join(&hex[..2]).join(&hex[2..4]);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(&hex);
    std::fs::write(&path, content).expect("write block");
    (hex, path)
}

#[tokio::test]
async fn unreferenced_block_files_are_deleted_after_the_delay() {
    let opts = NodeOpts {
        extra: "tombstone_gc_delay_secs = 2\nblock_size = \"256KiB\"\n".into(),
        ..NodeOpts::default()
    };
    let (mut node, _k2v) = single_node(opts);
    let data_dir = node.dir.path().join("data");

    // An orphan placed while the node runs is seen by `repair blocks`.
    let (hex, path) = place(&data_dir, b"orphan one", b"orphan one");
    let info = node.cli_ok(&["block", "info", &hex]);
    assert!(info.contains(&format!("Block hash: {hex}")), "{info}");
    assert!(info.contains("Stored here by the layout: yes"), "{info}");
    assert!(info.contains(&path.display().to_string()), "{info}");
    assert!(info.contains("Reference count: none"), "{info}");

    let out = node.cli_ok(&["repair", "--yes", "blocks"]);
    assert!(out.contains("Repair launched"), "{out}");
    eventually(20, || {
        let p = path.clone();
        async move { !p.exists() }
    })
    .await;
    let info = node.cli_ok(&["block", "info", &hex]);
    assert!(info.contains("Local file: none"), "{info}");
    assert!(info.contains("Reference count: none"), "{info}");

    // One placed while the node is down (a crash between the file and its
    // reference) is seen by the start-up scan, with no repair asked.
    node.kill();
    let (_, path2) = place(&data_dir, b"orphan two", b"orphan two");
    // A file whose content does not match its name: unreferenced too.
    let (_, path3) = place(&data_dir, b"name", b"other content");
    node.restart();
    for p in [path2, path3] {
        eventually(20, || {
            let p = p.clone();
            async move { !p.exists() }
        })
        .await;
    }
    // /metrics: the block gauges and the block_ref table are exposed.
    let (status, _, body) = crate::metrics::get_metrics(&node, None).await;
    assert_eq!(status, 200, "{body}");
    for line in [
        "block_local_count 0",
        "block_local_bytes 0",
        "block_resync_errored_blocks 0",
        "block_rc_entries 0",
    ] {
        assert!(body.lines().any(|l| l == line), "no `{line}` in:\n{body}");
    }
    assert!(
        body.lines()
            .any(|l| l.starts_with("table_size{table_name=\"block_ref\"}")),
        "{body}"
    );
    let out = node.cli_ok(&["repair", "--yes", "scrub", "start"]);
    assert!(out.contains("Scrub started"), "{out}");
    let workers = node.cli_ok(&["worker", "list"]);
    assert!(workers.contains("block resync"), "{workers}");
    assert!(workers.contains("block scrub"), "{workers}");
    assert!(workers.contains("block_ref anti-entropy"), "{workers}");

    // Nothing failed; bad input is refused with a message.
    assert_eq!(
        node.cli_ok(&["block", "list-errors"]).trim(),
        "No block errors."
    );
    let out = node.cli_ok(&["block", "retry-now", "--all"]);
    assert!(out.contains("0 blocks queued"), "{out}");
    for args in [
        &["block", "info", "zz"][..],
        &["block", "retry-now"][..],
        &["block", "retry-now", "--all", &hex][..],
    ] {
        let o = node.cli(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("block hash") || err.contains("--all"),
            "{args:?}: {err}"
        );
    }
}
