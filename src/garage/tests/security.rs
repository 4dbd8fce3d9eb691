//! Security checks: permissions per endpoint, replayed signatures, the
//! `rpc_secret` of nodes and of the CLI, and secrets kept out of the logs.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// Creates a key allowed only `perm` (`--read` or `--write`) on `bucket`.
fn key_with(node: &Node, name: &str, bucket: &str, perm: &str) -> Creds {
    let out = node.cli_ok(&["key", "create", name]);
    let key_id = field(&out, "Key ID: ");
    let secret = field(&out, "Secret key: ");
    node.cli_ok(&["bucket", "allow", perm, bucket, "--key", &key_id]);
    Creds {
        key_id,
        secret,
        bucket: bucket.into(),
    }
}

/// The request of every K2V endpoint, as (name, method, path+query, body).
fn endpoints(k2v: &K2v, token: &str) -> Vec<(&'static str, String, String, Vec<u8>)> {
    let b = k2v.b();
    let t = enc(token);
    vec![
        (
            "InsertItem",
            "PUT".into(),
            format!("{b}/pk?sort_key=a"),
            b"new".to_vec(),
        ),
        (
            "DeleteItem",
            "DELETE".into(),
            format!("{b}/pk?sort_key=a"),
            vec![],
        ),
        (
            "InsertBatch",
            "POST".into(),
            b.clone(),
            json!([{"pk": "pk", "sk": "b", "ct": null, "v": "eA=="}])
                .to_string()
                .into_bytes(),
        ),
        (
            "DeleteBatch",
            "POST".into(),
            format!("{b}?delete"),
            json!([{"partitionKey": "pk"}]).to_string().into_bytes(),
        ),
        (
            "ReadItem",
            "GET".into(),
            format!("{b}/pk?sort_key=a"),
            vec![],
        ),
        ("ReadIndex", "GET".into(), b.clone(), vec![]),
        (
            "ReadBatch",
            "POST".into(),
            format!("{b}?search"),
            json!([{"partitionKey": "pk"}]).to_string().into_bytes(),
        ),
        (
            "PollItem",
            "GET".into(),
            format!("{b}/pk?sort_key=a&causality_token={t}&timeout=1"),
            vec![],
        ),
        (
            "PollRange",
            "POST".into(),
            format!("{b}/pk?poll_range"),
            json!({"timeout": 1}).to_string().into_bytes(),
        ),
    ]
}

const WRITES: &[&str] = &["InsertItem", "DeleteItem", "InsertBatch", "DeleteBatch"];

#[tokio::test]
async fn read_only_and_write_only_keys() {
    let (node, owner) = single_node(NodeOpts::default());
    let p = format!("{}/pk?sort_key=a", owner.b());
    assert_eq!(owner.req("PUT", &p, &[], b"v").await.status, 204);
    let token = owner.req("GET", &p, &[], b"").await.ct();

    let ro = K2v::new(node.endpoint(), key_with(&node, "ro", "bucket", "--read"));
    let wo = K2v::new(node.endpoint(), key_with(&node, "wo", "bucket", "--write"));
    let tok = ("x-garage-causality-token", token.as_str());
    // The key that lacks the permission: 403 AccessDenied, on every one.
    for (name, method, path, body) in endpoints(&owner, &token) {
        let denied = if WRITES.contains(&name) { &ro } else { &wo };
        let r = denied.req(&method, &path, &[tok], &body).await;
        assert_eq!(r.status, 403, "{name} with the wrong key: {r:?}");
        assert_eq!(r.json()["code"], "AccessDenied", "{name}");
    }
    // Nothing the read-only key tried was done.
    let r = owner.req("GET", &p, &[], b"").await;
    assert_eq!((r.status, r.ct()), (200, token.clone()));
    let pb = format!("{}/pk?sort_key=b", owner.b());
    assert_eq!(owner.req("GET", &pb, &[], b"").await.status, 404);
    // The key that has the permission gets through.
    for (name, method, path, body) in endpoints(&owner, &token) {
        let allowed = if WRITES.contains(&name) { &wo } else { &ro };
        let r = allowed.req(&method, &path, &[tok], &body).await;
        assert!(
            r.status != 403 && r.status < 500,
            "{name} with the right key: {r:?}"
        );
    }
    // A key with no permission at all is refused everywhere.
    let none = K2v::new(node.endpoint(), {
        let out = node.cli_ok(&["key", "create", "none"]);
        Creds {
            key_id: field(&out, "Key ID: "),
            secret: field(&out, "Secret key: "),
            bucket: "bucket".into(),
        }
    });
    for (name, method, path, body) in endpoints(&owner, &token) {
        let r = none.req(&method, &path, &[tok], &body).await;
        assert_eq!(r.status, 403, "{name} without permission: {r:?}");
    }
}

#[tokio::test]
async fn replayed_signature_outside_the_window() {
    let (_node, k2v) = single_node(NodeOpts::default());
    let p = format!("{}/pk?sort_key=a", k2v.b());
    let sign_at = |ms: u64| CustomSign {
        payload: None,
        now_ms: Some(ms),
    };
    // 16 minutes ago, and 16 minutes ahead: 403 RequestTimeTooSkewed.
    for at in [now_ms() - 16 * 60 * 1000, now_ms() + 16 * 60 * 1000] {
        for m in ["PUT", "GET"] {
            let r = k2v.send_custom(m, &p, &[], b"v", sign_at(at)).await;
            assert_eq!(r.status, 403, "{m}: {r:?}");
            assert_eq!(r.json()["code"], "RequestTimeTooSkewed", "{m}");
        }
    }
    assert_eq!(
        k2v.req("GET", &p, &[], b"").await.status,
        404,
        "nothing written"
    );
    // 14 minutes ago is still inside the window.
    let r = k2v
        .send_custom("PUT", &p, &[], b"v", sign_at(now_ms() - 14 * 60 * 1000))
        .await;
    assert_eq!(r.status, 204);
    // The same signed request sent twice inside the window is accepted
    // (SigV4 has no nonce): the window is what bounds a replay.
    let presigned = k2v.presign("GET", &p, 60, now_ms() - 2 * 60 * 1000);
    let r = k2v.send("GET", &presigned, &[], b"", Sign::None).await;
    assert_eq!(r.status, 403, "a presigned URL past its expiry");
}

/// Runs `garage -c <config> args…` with `GARAGE_RPC_SECRET` set.
fn cli_with_secret(node: &Node, secret: &str, args: &[&str]) -> std::process::Output {
    Command::new(garage_bin())
        .arg("-c")
        .arg(&node.config)
        .args(args)
        .env("GARAGE_RPC_SECRET", secret)
        .stdin(Stdio::null())
        .output()
        .expect("run garage cli")
}

const WRONG_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000001";

#[tokio::test]
async fn wrong_rpc_secret_cannot_join_or_act() {
    let a = start_node(NodeOpts::default());
    let a_id = a.id();
    let boot = format!("{a_id}@{}:{}", a.opts.ip, a.rpc_port);
    let b = start_node(NodeOpts {
        secret: WRONG_SECRET.into(),
        bootstrap: vec![boot.clone()],
        ..NodeOpts::default()
    });
    let b_id = b.id();
    // B also tries an explicit connect, with its own (wrong) secret.
    let out = b.cli(&["node", "connect", &boot]);
    assert!(
        !out.status.success(),
        "connect with the wrong secret succeeded"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sa = a.cli_ok(&["status"]);
    let sb = b.cli_ok(&["status"]);
    assert!(!sa.contains(&b_id[..16]), "A lists B:\n{sa}");
    assert!(!sb.contains(&a_id[..16]), "B lists A:\n{sb}");
    // A cannot be asked to lay B out as a known node either.
    let out = a.cli(&["layout", "assign", &b_id[..16], "-z", "dc1", "-c", "1G"]);
    assert!(!out.status.success(), "A assigned a node it never saw");

    // The CLI with a wrong secret cannot act on A: non-zero exit, a clear
    // error, and nothing done.
    for args in [
        &["status"][..],
        &["key", "create", "intruder"][..],
        &["bucket", "create", "intruder"][..],
    ] {
        let out = cli_with_secret(&a, WRONG_SECRET, args);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "garage {args:?} succeeded");
        assert!(
            err.contains("rpc") || err.contains("connect") || err.contains("secret"),
            "garage {args:?}: unclear error: {err}"
        );
    }
    let keys = a.cli_ok(&["key", "list"]);
    assert!(!keys.contains("intruder"), "{keys}");
    let buckets = a.cli_ok(&["bucket", "list"]);
    assert!(!buckets.contains("intruder"), "{buckets}");
    // And a malformed secret is a clear error before any connection.
    let out = cli_with_secret(&a, "not-hex", &["status"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rpc_secret"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn secrets_stay_out_of_the_logs() {
    const ADMIN_TOKEN: &str = "adm1n-t0ken-that-must-not-leak-4b2f";
    let opts = NodeOpts {
        rust_log: "debug".into(),
        admin_extra: format!("admin_token = \"{ADMIN_TOKEN}\""),
        ..NodeOpts::default()
    };
    let rpc_secret = opts.secret.clone();
    let (node, k2v) = single_node(opts);
    let secret = k2v.creds.secret.clone();

    // A session: CLI verbs, K2V requests (good and badly signed), admin API.
    node.cli_ok(&["key", "info", &k2v.creds.key_id]);
    node.cli_ok(&["key", "info", "--show-secret", &k2v.creds.key_id]);
    node.cli_ok(&["bucket", "info", "bucket"]);
    node.cli_ok(&["status"]);
    let b = k2v.b();
    assert_eq!(
        k2v.req("PUT", &format!("{b}/pk?sort_key=a"), &[], b"v")
            .await
            .status,
        204
    );
    k2v.req("GET", &format!("{b}/pk?sort_key=a"), &[], b"")
        .await;
    k2v.req(
        "POST",
        &format!("{b}?search"),
        &[],
        b"[{\"partitionKey\":\"pk\"}]",
    )
    .await;
    let mut bad = K2v::new(node.endpoint(), k2v.creds.clone());
    bad.creds.secret = format!("{secret}-wrong");
    assert_eq!(bad.req("GET", &b, &[], b"").await.status, 403);
    let admin = K2v::new(
        format!("http://{}:{}", node.opts.ip, node.admin_port),
        k2v.creds.clone(),
    );
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for path in ["/v1/status", "/v1/key", "/v1/bucket"] {
        let r = admin
            .send("GET", path, &[("authorization", &auth)], b"", Sign::None)
            .await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
    let r = admin
        .send(
            "GET",
            "/v1/status",
            &[("authorization", "Bearer wrong-token")],
            b"",
            Sign::None,
        )
        .await;
    assert_eq!(r.status, 403);
    let key_info = admin
        .send(
            "GET",
            &format!("/v1/key?id={}&showSecretKey=true", k2v.creds.key_id),
            &[("authorization", &auth)],
            b"",
            Sign::None,
        )
        .await;
    assert_eq!(key_info.status, 200);
    // The CLI itself at debug level.
    let cli = Command::new(garage_bin())
        .arg("-c")
        .arg(&node.config)
        .args(["key", "list"])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .expect("cli");
    assert!(cli.status.success());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = node.log();
    assert!(log.contains("DEBUG"), "the node did not log at debug level");
    let cli_log = String::from_utf8_lossy(&cli.stderr).into_owned();
    for (what, s) in [
        ("key secret", secret.as_str()),
        ("rpc_secret", rpc_secret.as_str()),
        ("admin token", ADMIN_TOKEN),
    ] {
        assert!(!log.contains(s), "the {what} appears in the node's log");
        assert!(!cli_log.contains(s), "the {what} appears in the CLI's log");
    }
}
