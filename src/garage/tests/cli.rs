//! The operator CLI against a real node: the output lines scripts parse,
//! errors that change nothing, config loading, identity, durability.

use crate::common::{field, garage_bin, K2v, Node, NodeOpts};

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn node_id_status_and_connection_errors() {
    let node = Node::start(NodeOpts::default());

    let out = node.cli_ok(&["node", "id", "-q"]);
    let line = out.trim();
    let (id, addr) = line.split_once('@').expect("id@addr");
    assert!(is_hex(id, 64), "{line}");
    assert_eq!(addr, format!("127.0.0.1:{}", node.rpc_port));

    // Without rpc_public_addr: the bare id (read from metadata_dir, daemon not needed).
    let cfg = std::fs::read_to_string(&node.config).expect("config");
    let no_pub: String = cfg
        .lines()
        .filter(|l| !l.starts_with("rpc_public_addr"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg2 = node.dir.path().join("nopub.toml");
    std::fs::write(&cfg2, no_pub).expect("write");
    let o = std::process::Command::new(garage_bin())
        .arg("-c")
        .arg(&cfg2)
        .args(["node", "id", "-q"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);

    // Status reaches the daemon over RPC.
    let st = node.cli_ok(&["status"]);
    assert!(st.contains("==== HEALTHY NODES ===="), "{st}");
    assert!(st.contains(&id[..16]), "{st}");
    assert!(st.contains("NO ROLE ASSIGNED"), "{st}");

    // -h / -s as in Garage: explicit host, and a wrong secret fails clearly.
    let host = format!("{id}@127.0.0.1:{}", node.rpc_port);
    let ok = node.cli(&["-h", &host, "status"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let bad = node.cli(&[
        "-s",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "status",
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("cannot reach"), "{}", stderr(&bad));
    // --help still works (clap's -h is --rpc-host here).
    let help = node.cli(&["--help"]);
    assert!(help.status.success());

    // Node down: non-zero exit with a message.
    let mut node = node;
    node.kill();
    let down = node.cli(&["status"]);
    assert!(!down.status.success());
    assert!(!stderr(&down).is_empty());
}

#[test]
fn garage_config_loads_and_bad_configs_are_clear_errors() {
    // A config written for Garage, with keys we do not use and lmdb.
    let node = Node::start(NodeOpts {
        extra: "db_engine = \"lmdb\"\nblock_size = \"1M\"\ncompression_level = 2\nmetdata_fsync = false\n\n[s3_web]\nbind_addr = \"127.0.0.1:1\"\nroot_domain = \".web\"".into(),
        ..Default::default()
    });
    assert!(node.cli(&["status"]).status.success());
    let log = node.log();
    assert!(
        log.contains("compression_level"),
        "unused key not logged:\n{log}"
    );
    assert!(
        log.contains("metadata_fsync"),
        "no suggestion for the typo:\n{log}"
    );
    assert!(
        log.contains("not built in"),
        "lmdb fallback not logged:\n{log}"
    );

    // Missing required key / wrong type: clear error naming the key.
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    let cfg = std::fs::read_to_string(&node.config).expect("cfg");
    for (from, to, key) in [
        ("rpc_bind_addr", "# rpc_bind_addr", "rpc_bind_addr"),
        (
            "replication_factor = 1",
            "replication_factor = \"one\"",
            "replication_factor",
        ),
        ("s3_region = \"garage\"", "", "s3_region"),
    ] {
        std::fs::write(&bad, cfg.replace(from, to)).expect("write");
        let o = std::process::Command::new(garage_bin())
            .arg("-c")
            .arg(&bad)
            .arg("server")
            .output()
            .expect("run");
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(key),
            "error does not name {key}: {}",
            stderr(&o)
        );
    }
    let o = std::process::Command::new(garage_bin())
        .args(["-c", "/nonexistent/garage.toml", "server"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/garage.toml"));
}

#[test]
fn key_and_bucket_verbs() {
    let node = Node::start(NodeOpts::default());
    let id = node.id();
    // The one-node layout.
    let bad = node.cli(&["layout", "apply"]);
    assert!(!bad.status.success());
    node.cli_ok(&["layout", "assign", &id[..8], "-z", "dc1", "-c", "1G"]);
    let show = node.cli_ok(&["layout", "show"]);
    assert!(show.contains("garage layout apply --version 1"), "{show}");
    let wrong = node.cli(&["layout", "apply", "--version", "2"]);
    assert!(!wrong.status.success());
    node.cli_ok(&["layout", "apply", "--version", "1"]);

    // key create prints the lines scripts parse.
    let out = node.cli_ok(&["key", "create", "alice"]);
    let key_id = field(&out, "Key ID: ");
    let secret = field(&out, "Secret key: ");
    assert!(
        key_id.starts_with("GK") && is_hex(&key_id[2..], 24),
        "{out}"
    );
    assert!(is_hex(&secret, 64), "{out}");
    assert_eq!(field(&out, "Key name: "), "alice");

    let list = node.cli_ok(&["key", "list"]);
    assert!(list.starts_with("List of keys:"), "{list}");
    assert!(list.contains(&key_id) && list.contains("alice"));

    let info = node.cli_ok(&["key", "info", "alice"]);
    assert_eq!(field(&info, "Secret key: "), "(redacted)");
    let info = node.cli_ok(&["key", "info", &key_id[..8], "--show-secret"]);
    assert_eq!(field(&info, "Secret key: "), secret);
    assert_eq!(field(&info, "Can create buckets: "), "false");
    let info = node.cli_ok(&["key", "allow", "alice", "--create-bucket"]);
    assert_eq!(field(&info, "Can create buckets: "), "true");
    node.cli_ok(&["key", "deny", "alice", "--create-bucket"]);
    let info = node.cli_ok(&["key", "rename", "alice", "alice2"]);
    assert_eq!(field(&info, "Key name: "), "alice2");

    // Errors change nothing.
    assert!(!node.cli(&["key", "info", "nobody"]).status.success());
    node.cli_ok(&["key", "create", "bob"]);
    let amb = node.cli(&["key", "info", "GK"]);
    assert!(!amb.status.success());
    assert!(stderr(&amb).contains("several"), "{}", stderr(&amb));
    assert!(!node.cli(&["key", "delete", "bob"]).status.success());
    assert!(node.cli_ok(&["key", "list"]).contains("bob"));

    // Import: a new id works once, an existing id is refused.
    let imp_id = "GK0123456789abcdef01234567";
    let imp_secret = "ab".repeat(32);
    let out = node.cli_ok(&["key", "import", imp_id, &imp_secret, "-n", "imp", "--yes"]);
    assert_eq!(field(&out, "Key ID: "), imp_id);
    assert!(!node
        .cli(&["key", "import", imp_id, &imp_secret, "--yes"])
        .status
        .success());
    assert!(!node
        .cli(&["key", "import", "GKbad", &imp_secret, "--yes"])
        .status
        .success());

    // Buckets.
    let out = node.cli_ok(&["bucket", "create", "photos"]);
    assert_eq!(out.trim(), "Bucket photos was created.");
    assert!(!node.cli(&["bucket", "create", "photos"]).status.success());
    assert!(!node.cli(&["bucket", "create", "Bad_Name"]).status.success());
    let out = node.cli_ok(&[
        "bucket", "allow", "--read", "--write", "photos", "--key", "alice2",
    ]);
    assert_eq!(
        out.trim(),
        format!("New permissions for {key_id} on photos: read true, write true, owner false.")
    );
    let out = node.cli_ok(&["bucket", "deny", "--write", "photos", "--key", &key_id]);
    assert_eq!(
        out.trim(),
        format!("New permissions for {key_id} on photos: read true, write false, owner false.")
    );
    assert!(!node
        .cli(&["bucket", "allow", "--read", "photos", "--key", "nobody"])
        .status
        .success());
    let list = node.cli_ok(&["bucket", "list"]);
    assert!(
        list.starts_with("List of buckets:") && list.contains("photos"),
        "{list}"
    );
    let info = node.cli_ok(&["bucket", "info", "photos"]);
    assert!(info.contains("Bucket: "), "{info}");
    assert!(info.contains(&key_id), "{info}");
    let info = node.cli_ok(&["key", "info", &key_id]);
    assert!(info.contains("R  ") && info.contains("photos"), "{info}");

    // Aliases.
    node.cli_ok(&["bucket", "alias", "photos", "pics"]);
    node.cli_ok(&["bucket", "info", "pics"]);
    node.cli_ok(&["bucket", "alias", "photos", "mine", "--local", &key_id]);
    // Delete refused while other aliases exist.
    assert!(!node
        .cli(&["bucket", "delete", "photos", "--yes"])
        .status
        .success());
    node.cli_ok(&["bucket", "unalias", "pics"]);
    node.cli_ok(&["bucket", "unalias", "mine", "--local", &key_id]);
    // The last alias cannot be removed.
    assert!(!node.cli(&["bucket", "unalias", "photos"]).status.success());
    assert!(!node.cli(&["bucket", "delete", "photos"]).status.success());
    node.cli_ok(&["bucket", "delete", "photos", "--yes"]);
    assert!(!node.cli(&["bucket", "info", "photos"]).status.success());

    let out = node.cli_ok(&["key", "delete", "bob", "--yes"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(!node.cli_ok(&["key", "list"]).contains("bob"));
}

#[tokio::test]
async fn bucket_with_k2v_items_cannot_be_deleted_and_acked_writes_survive_sigkill() {
    let mut node = Node::start(NodeOpts::default());
    let creds = node.setup_single("k2vdata");
    let k2v = K2v::new(node.endpoint(), creds.clone());
    for i in 0..50 {
        let r = k2v
            .req(
                "PUT",
                &format!("/k2vdata/pk{}?sort_key=sk{i}", i % 5),
                &[],
                format!("v{i}").as_bytes(),
            )
            .await;
        assert_eq!(r.status, 204);
    }
    // The counters reach the index, then delete is refused.
    crate::common::eventually(20, || async {
        let r = k2v.req("GET", "/k2vdata", &[], b"").await;
        r.json()["partitionKeys"].as_array().map(|a| a.len()) == Some(5)
    })
    .await;
    let o = node.cli(&["bucket", "delete", "k2vdata", "--yes"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));

    // SIGKILL, restart: every acknowledged write is there.
    node.kill();
    node.restart();
    let k2v = K2v::new(node.endpoint(), creds);
    for i in 0..50 {
        let r = k2v
            .req(
                "GET",
                &format!("/k2vdata/pk{}?sort_key=sk{i}", i % 5),
                &[("accept", "application/octet-stream")],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "item {i} lost after SIGKILL");
        assert_eq!(r.body, format!("v{i}").as_bytes());
    }
}

#[test]
fn single_node_mode_bootstraps_and_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("garage.toml");
    let rpc = crate::common::free_port();
    let k2v = crate::common::free_port();
    let admin = crate::common::free_port();
    std::fs::write(
        &cfg,
        format!(
            "metadata_dir = \"{m}\"\ndata_dir = \"{d}\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{s}\"\n[s3_api]\ns3_region = \"garage\"\n\
             [k2v_api]\napi_bind_addr = \"127.0.0.1:{k2v}\"\n[admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
            m = dir.path().join("meta").display(),
            d = dir.path().join("data").display(),
            s = "11".repeat(32),
        ),
    )
    .expect("write");
    let run = || {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(garage_bin())
            .arg("-c")
            .arg(&cfg)
            .args(["server", "--single-node"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut key = String::new();
        let mut secret = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(k) = line.strip_prefix("Key ID: ") {
                key = k.to_string();
            }
            if let Some(s) = line.strip_prefix("Secret key: ") {
                secret = s.to_string();
            }
            if line.contains("curl --aws-sigv4") {
                break;
            }
        }
        (child, key, secret)
    };
    let (mut child, key1, secret1) = run();
    assert!(key1.starts_with("GK"), "no key printed");
    let st = std::process::Command::new(garage_bin())
        .arg("-c")
        .arg(&cfg)
        .arg("status")
        .output()
        .expect("status");
    assert!(String::from_utf8_lossy(&st.stdout).contains("==== HEALTHY NODES ===="));
    let _ = child.kill();
    let _ = child.wait();
    // Restart: the same key is reused, not a new one.
    let (mut child, key2, secret2) = run();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((key1, secret1), (key2, secret2));
}
