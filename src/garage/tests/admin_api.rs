//! The admin HTTP API v1 against real nodes: every endpoint's happy path,
//! missing and wrong tokens (403, nothing changes), bad bodies and unknown
//! ids (4xx, nothing changes); status, connect and layout on three nodes.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::common::{self, Creds, K2v, Node, NodeOpts, Resp};

const TOKEN: &str = "admin-token-for-tests";

fn opts() -> NodeOpts {
    NodeOpts {
        admin_extra: format!("admin_token = \"{TOKEN}\""),
        ..Default::default()
    }
}

/// A plain HTTP client for one node's admin port.
struct Admin {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Admin {
    fn new(node: &Node, token: Option<&str>) -> Self {
        Self {
            base: format!("http://{}:{}", node.opts.ip, node.admin_port),
            token: token.map(String::from),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `method path_query` with a raw body and the token (if any).
    async fn raw(&self, method: &str, path_query: &str, body: &str) -> Resp {
        let mut b = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(format!("{}{}", self.base, path_query));
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let res = self.client.request(req).await.expect("http request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path_query: &str) -> Resp {
        self.raw("GET", path_query, "").await
    }

    async fn send(&self, method: &str, path_query: &str, body: Value) -> Resp {
        self.raw(method, path_query, &body.to_string()).await
    }

    /// A call that must answer 200 with JSON.
    async fn ok(&self, method: &str, path_query: &str, body: Option<Value>) -> Value {
        let r = match body {
            Some(b) => self.send(method, path_query, b).await,
            None => self.raw(method, path_query, "").await,
        };
        assert_eq!(r.status, 200, "{method} {path_query}: {}", text(&r));
        r.json()
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A 4xx/5xx with the JSON error shape; returns its code.
fn err_code(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "{}", text(r));
    let v = r.json();
    assert!(v["message"].is_string(), "{v}");
    assert!(v["path"].is_string(), "{v}");
    v["code"].as_str().expect("code").to_string()
}

fn ids_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|x| x[field].as_str().expect("id").to_string())
        .collect()
}

/// Lays a single node out through the API.
async fn layout_single(admin: &Admin) -> String {
    let st = admin.ok("GET", "/v1/status", None).await;
    let id = st["node"].as_str().expect("node").to_string();
    admin
        .ok(
            "POST",
            "/v1/layout",
            Some(json!([{"id": id, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": ["t1"]}])),
        )
        .await;
    admin
        .ok("POST", "/v1/layout/apply", Some(json!({"version": 1})))
        .await;
    id
}

#[tokio::test]
async fn auth_health_status_and_single_node_layout() {
    let node = common::start_node(opts());
    let admin = Admin::new(&node, Some(TOKEN));
    let anon = Admin::new(&node, None);
    let wrong = Admin::new(&node, Some("not-the-token"));

    // No layout yet: /health (no token) says so, /v1/health is unavailable.
    let r = anon.get("/health").await;
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(anon.get("/check").await.status, 503);
    let h = admin.ok("GET", "/v1/health", None).await;
    assert_eq!(h["status"], "unavailable", "{h}");
    assert_eq!(h["partitions"], 256);
    assert_eq!(h["partitionsQuorum"], 0);
    assert_eq!(h["knownNodes"], 1);
    assert_eq!(h["connectedNodes"], 1);

    // Missing, wrong and malformed tokens: 403 with a JSON body.
    for (who, path) in [
        (&anon, "/v1/status"),
        (&wrong, "/v1/status"),
        (&anon, "/v1/health"),
        (&wrong, "/v1/key"),
        (&wrong, "/v1/layout"),
    ] {
        assert_eq!(err_code(&who.get(path).await, 403), "AccessDenied");
    }
    let r = admin
        .client
        .request(
            http::Request::builder()
                .uri(format!("{}/v1/status", admin.base))
                .header("authorization", format!("Basic {TOKEN}"))
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("basic");
    assert_eq!(r.status(), 403);

    // A refused write changes nothing.
    let r = wrong
        .send("POST", "/v1/key", json!({"name": "intruder"}))
        .await;
    assert_eq!(err_code(&r, 403), "AccessDenied");
    let r = anon
        .send(
            "POST",
            "/v1/layout",
            json!([{"id": "ab".repeat(32), "zone": "x", "capacity": 1, "tags": []}]),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(admin.ok("GET", "/v1/key", None).await, json!([]));
    let l = admin.ok("GET", "/v1/layout", None).await;
    assert_eq!(l["stagedRoleChanges"], json!([]), "{l}");

    // Status.
    let st = admin.ok("GET", "/v1/status", None).await;
    let id = st["node"].as_str().expect("node").to_string();
    assert_eq!(id.len(), 64);
    assert!(st["garageVersion"].as_str().expect("v").starts_with('v'));
    assert!(st["garageFeatures"]
        .as_array()
        .expect("features")
        .contains(&json!("k2v")));
    assert!(st["rustVersion"].is_string());
    assert!(!st["dbEngine"].as_str().expect("engine").is_empty());
    assert_eq!(st["layoutVersion"], 0);
    let me = &st["nodes"][0];
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["isUp"], true);
    assert_eq!(me["role"], Value::Null);
    assert_eq!(me["draining"], false);
    assert!(me["hostname"].is_string(), "{me}");
    assert_eq!(
        me["addr"],
        format!("{}:{}", node.opts.ip, node.rpc_port).as_str()
    );
    assert!(me["metadataPartition"]["total"].as_u64().expect("total") > 0);

    // Layout: stage, show, bad changes, apply.
    let l = admin
        .ok(
            "POST",
            "/v1/layout",
            Some(json!([{"id": id, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": ["t1"]}])),
        )
        .await;
    assert_eq!(l["version"], 0);
    assert_eq!(
        l["stagedRoleChanges"],
        json!([{"id": id, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": ["t1"]}])
    );
    for bad in [
        "not json",
        "{\"id\": 1}",
        "[{\"id\": \"abcd\", \"remove\": true}]",
        "[{\"id\": \"ID\", \"zone\": \"dc1\", \"tags\": []}]",
        "[{\"id\": \"ID\", \"zone\": \"dc1\", \"capacity\": 0, \"tags\": []}]",
        "[{\"id\": \"ID\", \"zone\": \"dc1\", \"capacity\": \"1G\", \"tags\": []}]",
        "[{\"id\": \"ID\", \"remove\": false}]",
        // A valid change followed by an invalid one: neither is staged.
        "[{\"id\": \"OTHER\", \"zone\": \"dc9\", \"capacity\": null, \"tags\": []}, {\"id\": \"ID\"}]",
    ] {
        let body = bad.replace("OTHER", &"cd".repeat(32)).replace("ID", &id);
        let r = admin.raw("POST", "/v1/layout", &body).await;
        assert_eq!(err_code(&r, 400), "InvalidRequest", "{bad}");
    }
    assert_eq!(admin.ok("GET", "/v1/layout", None).await, l);
    // Removing a node that has no role is refused.
    let r = admin
        .send(
            "POST",
            "/v1/layout",
            json!([{"id": "ef".repeat(32), "remove": true}]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", text(&r));

    for bad in [
        "",
        "{}",
        "{\"version\": \"1\"}",
        "{\"version\": 2}",
        "{\"version\": 0}",
    ] {
        let r = admin.raw("POST", "/v1/layout/apply", bad).await;
        assert_eq!(err_code(&r, 400), "InvalidRequest", "{bad}");
    }
    let a = admin
        .ok("POST", "/v1/layout/apply", Some(json!({"version": 1})))
        .await;
    let msg: Vec<&str> = a["message"]
        .as_array()
        .expect("message")
        .iter()
        .map(|l| l.as_str().expect("line"))
        .collect();
    assert!(
        msg.iter().any(|l| l.starts_with("Optimal partition size:")),
        "{msg:?}"
    );
    assert_eq!(a["layout"]["version"], 1);
    assert_eq!(
        a["layout"]["roles"],
        json!([{"id": id, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": ["t1"]}])
    );
    assert_eq!(a["layout"]["stagedRoleChanges"], json!([]));
    // The same version again is refused.
    let r = admin
        .send("POST", "/v1/layout/apply", json!({"version": 1}))
        .await;
    assert_eq!(r.status, 400);

    // Healthy now.
    let r = anon.get("/health").await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let h = admin.ok("GET", "/v1/health", None).await;
    assert_eq!(
        h,
        json!({"status": "healthy", "knownNodes": 1, "connectedNodes": 1, "storageNodes": 1,
               "storageNodesOk": 1, "partitions": 256, "partitionsQuorum": 256,
               "partitionsAllOk": 256})
    );
    let st = admin.ok("GET", "/v1/status", None).await;
    assert_eq!(st["layoutVersion"], 1);
    assert_eq!(
        st["nodes"][0]["role"],
        json!({"id": id, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": ["t1"]})
    );

    // Stage a gateway change and a removal of it, then revert.
    let gw = "cd".repeat(32);
    admin
        .ok(
            "POST",
            "/v1/layout",
            Some(json!([{"id": gw, "zone": "dc2", "capacity": null, "tags": []}])),
        )
        .await;
    let l = admin
        .ok(
            "POST",
            "/v1/layout",
            Some(json!([{"id": gw, "remove": true}])),
        )
        .await;
    // A removal staged over a staged (never applied) role shows as a removal.
    assert_eq!(l["stagedRoleChanges"], json!([{"id": gw, "remove": true}]));
    let l = admin
        .ok(
            "POST",
            "/v1/layout",
            Some(json!([{"id": id, "remove": true}])),
        )
        .await;
    assert!(l["stagedRoleChanges"]
        .as_array()
        .expect("staged")
        .contains(&json!({"id": id, "remove": true})));
    let l = admin
        .ok("POST", "/v1/layout/revert", Some(json!({"version": 2})))
        .await;
    assert_eq!(l["version"], 1);
    assert_eq!(l["stagedRoleChanges"], json!([]));
    assert_eq!(l["roles"].as_array().expect("roles").len(), 1);

    // Routing errors.
    assert_eq!(
        err_code(&admin.get("/v1/nothing").await, 404),
        "NoSuchEndpoint"
    );
    assert_eq!(
        err_code(&admin.get("/v0/status").await, 404),
        "NoSuchEndpoint"
    );
    let r = admin.raw("DELETE", "/v1/layout", "").await;
    assert_eq!(err_code(&r, 405), "MethodNotAllowed");
    let r = admin
        .raw("POST", "/v1/connect", "{\"not\": \"a list\"}")
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");

    // CORS preflight without a token.
    let r = anon.raw("OPTIONS", "/v1/bucket?id=x", "").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(r
        .header("access-control-allow-methods")
        .expect("methods")
        .contains("DELETE"));

    // /metrics: open without a metrics token (its content: tests/metrics.rs).
    let r = anon.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(text(&r).contains("# TYPE cluster_healthy gauge"));
}

#[tokio::test]
async fn without_admin_token_the_api_is_disabled_and_metrics_token_guards_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metrics-token");
    std::fs::write(&file, "m-token\n").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let node = common::start_node(NodeOpts {
        admin_extra: format!("metrics_token_file = \"{}\"", file.display()),
        ..Default::default()
    });
    for token in [None, Some("anything"), Some("m-token")] {
        let a = Admin::new(&node, token);
        let r = a.get("/v1/status").await;
        assert_eq!(err_code(&r, 403), "AccessDenied");
        assert!(r.json()["message"]
            .as_str()
            .expect("msg")
            .contains("disabled"));
    }
    assert_eq!(Admin::new(&node, None).get("/health").await.status, 503);
    assert_eq!(Admin::new(&node, None).get("/metrics").await.status, 403);
    assert_eq!(
        Admin::new(&node, Some("x")).get("/metrics").await.status,
        403
    );
    // The token file's trailing newline is not part of the token.
    assert_eq!(
        Admin::new(&node, Some("m-token"))
            .get("/metrics")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn admin_token_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "file-token\n").expect("write");
    // World-readable: refused unless allowed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let node = common::start_node(NodeOpts {
        admin_extra: format!("admin_token_file = \"{}\"", file.display()),
        extra: "allow_world_readable_secrets = true".into(),
        ..Default::default()
    });
    assert_eq!(
        Admin::new(&node, Some("file-token"))
            .get("/v1/status")
            .await
            .status,
        200
    );
    assert_eq!(
        Admin::new(&node, Some(TOKEN))
            .get("/v1/status")
            .await
            .status,
        403
    );
}

/// A `garage server` started by hand (the harness passes no flags), killed
/// on drop.
struct Server(std::process::Child);

impl Server {
    fn start(node: &Node, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(node.dir.path().join("log-manual.txt")).expect("log");
        let child = std::process::Command::new(common::garage_bin())
            .arg("-c")
            .arg(&node.config)
            .args(args)
            .arg("server")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn garage");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the node's admin API answers `/health`.
async fn wait_admin(node: &Node) {
    let anon = Admin::new(node, None);
    let base = anon.base.clone();
    common::eventually(30, || {
        let anon = &anon;
        let uri = format!("{base}/health");
        async move {
            let req = http::Request::builder()
                .uri(uri)
                .body(Full::new(Bytes::new()))
                .expect("req");
            anon.client.request(req).await.is_ok()
        }
    })
    .await;
}

#[tokio::test]
async fn cli_flag_and_environment_replace_the_config_token() {
    let mut node = common::start_node(opts());
    assert_eq!(
        Admin::new(&node, Some(TOKEN))
            .get("/v1/status")
            .await
            .status,
        200
    );
    node.kill();

    let status = |token: &'static str| {
        let a = Admin::new(&node, Some(token));
        async move { a.get("/v1/status").await.status }
    };
    {
        let _s = Server::start(&node, &["--admin-token", "from-cli"], &[]);
        wait_admin(&node).await;
        assert_eq!(status("from-cli").await, 200);
        assert_eq!(status(TOKEN).await, 403);
    }
    {
        let _s = Server::start(&node, &[], &[("GARAGE_ADMIN_TOKEN", "from-env")]);
        wait_admin(&node).await;
        assert_eq!(status("from-env").await, 200);
        assert_eq!(status(TOKEN).await, 403);
    }
    {
        let _s = Server::start(&node, &["--metrics-token", "m"], &[]);
        wait_admin(&node).await;
        assert_eq!(Admin::new(&node, None).get("/metrics").await.status, 403);
        assert_eq!(
            Admin::new(&node, Some("m")).get("/metrics").await.status,
            200
        );
        assert_eq!(status(TOKEN).await, 200);
    }
}

#[tokio::test]
async fn keys() {
    let node = common::start_node(opts());
    let admin = Admin::new(&node, Some(TOKEN));
    layout_single(&admin).await;

    // Create.
    let k = admin
        .ok("POST", "/v1/key", Some(json!({"name": "first"})))
        .await;
    let id = k["accessKeyId"].as_str().expect("id").to_string();
    let secret = k["secretAccessKey"].as_str().expect("secret").to_string();
    assert!(id.starts_with("GK") && id.len() == 26, "{k}");
    assert_eq!(secret.len(), 64);
    assert_eq!(k["name"], "first");
    assert_eq!(k["permissions"], json!({"createBucket": false}));
    assert_eq!(k["buckets"], json!([]));
    let unnamed = admin.ok("POST", "/v1/key", None).await;
    assert_eq!(unnamed["name"], "Unnamed key");
    let unnamed_id = unnamed["accessKeyId"].as_str().expect("id").to_string();

    // List and info.
    let list = admin.ok("GET", "/v1/key", None).await;
    let mut ids = ids_of(&list, "id");
    ids.sort();
    let mut want = vec![id.clone(), unnamed_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(list
        .as_array()
        .expect("list")
        .contains(&json!({"id": id, "name": "first"})));
    let info = admin.ok("GET", &format!("/v1/key?id={id}"), None).await;
    assert_eq!(info["accessKeyId"], id.as_str());
    assert!(info.get("secretAccessKey").is_none(), "{info}");
    let info = admin
        .ok("GET", &format!("/v1/key?id={id}&showSecretKey=true"), None)
        .await;
    assert_eq!(info["secretAccessKey"], secret.as_str());
    let by_name = admin.ok("GET", "/v1/key?search=first", None).await;
    assert_eq!(by_name["accessKeyId"], id.as_str());
    let by_prefix = admin
        .ok(
            "GET",
            &format!("/v1/key?search={}", &id[..12].to_lowercase()),
            None,
        )
        .await;
    assert_eq!(by_prefix["accessKeyId"], id.as_str());
    assert_eq!(
        err_code(
            &admin.get("/v1/key?id=GK000000000000000000000000").await,
            404
        ),
        "NoSuchAccessKey"
    );
    assert_eq!(
        err_code(&admin.get("/v1/key?search=nobody").await, 404),
        "NoSuchAccessKey"
    );
    assert_eq!(
        err_code(
            &admin.get(&format!("/v1/key?id={id}&search=first")).await,
            400
        ),
        "InvalidRequest"
    );

    // Update: rename, allow and deny bucket creation.
    let u = admin
        .ok(
            "POST",
            &format!("/v1/key?id={id}"),
            Some(json!({"name": "renamed", "allow": {"createBucket": true}})),
        )
        .await;
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["permissions"]["createBucket"], true);
    assert!(u.get("secretAccessKey").is_none());
    let u = admin
        .ok(
            "POST",
            &format!("/v1/key?id={id}"),
            Some(json!({"deny": {"createBucket": true}})),
        )
        .await;
    assert_eq!(u["name"], "renamed");
    assert_eq!(u["permissions"]["createBucket"], false);
    // Bad bodies and unknown ids change nothing.
    for bad in [
        "{",
        "{\"name\": 5}",
        "{\"allow\": {\"createBucket\": \"yes\"}}",
        "[1]",
        "{\"allow\": {\"createBucket\": true}, \"deny\": {\"createBucket\": true}}",
    ] {
        let r = admin.raw("POST", &format!("/v1/key?id={id}"), bad).await;
        assert_eq!(err_code(&r, 400), "InvalidRequest", "{bad}");
    }
    let r = admin
        .send(
            "POST",
            "/v1/key?id=GK000000000000000000000000",
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchAccessKey");
    let r = admin.raw("POST", "/v1/key", "{\"name\": [1]}").await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let info = admin.ok("GET", &format!("/v1/key?id={id}"), None).await;
    assert_eq!(info["name"], "renamed");
    assert_eq!(info["permissions"]["createBucket"], false);
    assert_eq!(
        admin
            .ok("GET", "/v1/key", None)
            .await
            .as_array()
            .expect("l")
            .len(),
        2
    );

    // Import.
    let imp_id = "GK0123456789abcdef01234567";
    let imp_secret = "ab".repeat(32);
    let imp = admin
        .ok(
            "POST",
            "/v1/key/import",
            Some(json!({"accessKeyId": imp_id, "secretAccessKey": imp_secret, "name": "imported"})),
        )
        .await;
    assert_eq!(imp["accessKeyId"], imp_id);
    assert_eq!(imp["secretAccessKey"], imp_secret.as_str());
    assert_eq!(imp["name"], "imported");
    let r = admin
        .send(
            "POST",
            "/v1/key/import",
            json!({"accessKeyId": imp_id, "secretAccessKey": imp_secret, "name": "again"}),
        )
        .await;
    assert_eq!(err_code(&r, 409), "KeyAlreadyExists");
    for bad in [
        json!({"accessKeyId": "GK12", "secretAccessKey": imp_secret, "name": "x"}),
        json!({"accessKeyId": "GK1123456789abcdef01234567", "secretAccessKey": "short", "name": "x"}),
        json!({"accessKeyId": "GK1123456789abcdef01234567"}),
    ] {
        let r = admin.send("POST", "/v1/key/import", bad.clone()).await;
        assert_eq!(err_code(&r, 400), "InvalidRequest", "{bad}");
    }

    // The imported key signs K2V requests once it may use a bucket.
    let b = admin
        .ok(
            "POST",
            "/v1/bucket",
            Some(json!({"globalAlias": "kbucket", "localAlias": {"accessKeyId": imp_id, "alias": "kb-local",
                        "allow": {"read": true, "write": true}}})),
        )
        .await;
    let k2v = K2v::new(
        node.endpoint(),
        Creds {
            key_id: imp_id.into(),
            secret: imp_secret.clone(),
            bucket: "kb-local".into(),
        },
    );
    let r = k2v.req("PUT", "/kb-local/pk?sort_key=sk", &[], b"v").await;
    assert_eq!(r.status, 204, "{}", text(&r));
    let info = admin.ok("GET", &format!("/v1/key?id={imp_id}"), None).await;
    assert_eq!(
        info["buckets"],
        json!([{"id": b["id"], "globalAliases": ["kbucket"], "localAliases": ["kb-local"],
                "permissions": {"read": true, "write": true, "owner": false}}])
    );

    // Delete: the key no longer signs, its local alias is gone.
    let r = admin
        .raw("DELETE", &format!("/v1/key?id={imp_id}"), "")
        .await;
    assert_eq!(r.status, 204, "{}", text(&r));
    assert_eq!(
        err_code(&admin.get(&format!("/v1/key?id={imp_id}")).await, 404),
        "NoSuchAccessKey"
    );
    let r = admin
        .raw("DELETE", &format!("/v1/key?id={imp_id}"), "")
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchAccessKey");
    let r = k2v.req("GET", "/kb-local/pk?sort_key=sk", &[], b"").await;
    assert_eq!(r.status, 403, "{}", text(&r));
    let binfo = admin
        .ok(
            "GET",
            &format!("/v1/bucket?id={}", b["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(binfo["keys"], json!([]), "{binfo}");
    assert_eq!(
        err_code(&admin.raw("DELETE", "/v1/key", "").await, 400),
        "InvalidRequest"
    );
    // An imported id that was deleted can never be imported again.
    let r = admin
        .send(
            "POST",
            "/v1/key/import",
            json!({"accessKeyId": imp_id, "secretAccessKey": imp_secret}),
        )
        .await;
    assert_eq!(err_code(&r, 409), "KeyAlreadyExists");
}

#[tokio::test]
async fn buckets_permissions_and_aliases() {
    let node = common::start_node(opts());
    let admin = Admin::new(&node, Some(TOKEN));
    let wrong = Admin::new(&node, Some("nope"));
    layout_single(&admin).await;
    let k = admin
        .ok("POST", "/v1/key", Some(json!({"name": "owner"})))
        .await;
    let key_id = k["accessKeyId"].as_str().expect("id").to_string();
    let secret = k["secretAccessKey"].as_str().expect("secret").to_string();

    // Create with a global alias.
    let b = admin
        .ok("POST", "/v1/bucket", Some(json!({"globalAlias": "photos"})))
        .await;
    let id = b["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(b["globalAliases"], json!(["photos"]));
    assert_eq!(b["websiteAccess"], false);
    assert_eq!(b["websiteConfig"], Value::Null);
    assert_eq!(b["keys"], json!([]));
    assert_eq!(b["objects"], 0);
    assert_eq!(b["bytes"], 0);
    assert_eq!(b["unfinishedUploads"], 0);
    assert_eq!(b["quotas"], json!({"maxSize": null, "maxObjects": null}));
    assert_eq!(
        admin.ok("GET", &format!("/v1/bucket?id={id}"), None).await,
        b
    );
    assert_eq!(
        admin.ok("GET", "/v1/bucket?globalAlias=photos", None).await,
        b
    );

    // Refused creations change nothing.
    let r = admin
        .send("POST", "/v1/bucket", json!({"globalAlias": "photos"}))
        .await;
    assert_eq!(err_code(&r, 409), "BucketAlreadyExists");
    let r = admin
        .send("POST", "/v1/bucket", json!({"globalAlias": "Bad_Name"}))
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = admin
        .send(
            "POST",
            "/v1/bucket",
            json!({"globalAlias": "fresh", "localAlias": {"accessKeyId": "GK000000000000000000000000", "alias": "x1x"}}),
        )
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchAccessKey");
    for bad in [
        "",
        "nope",
        "{\"globalAlias\": 3}",
        "{\"localAlias\": {\"alias\": \"abc\"}}",
    ] {
        let r = admin.raw("POST", "/v1/bucket", bad).await;
        assert_eq!(err_code(&r, 400), "InvalidRequest", "{bad}");
    }
    let r = wrong
        .send("POST", "/v1/bucket", json!({"globalAlias": "stolen"}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        err_code(&admin.get("/v1/bucket?globalAlias=fresh").await, 404),
        "NoSuchBucket"
    );
    assert_eq!(
        err_code(&admin.get("/v1/bucket?globalAlias=stolen").await, 404),
        "NoSuchBucket"
    );
    let list = admin.ok("GET", "/v1/bucket", None).await;
    assert_eq!(
        list,
        json!([{"id": id, "globalAliases": ["photos"], "localAliases": []}])
    );

    // Create with only a local alias and permissions for its key.
    let lb = admin
        .ok(
            "POST",
            "/v1/bucket",
            Some(
                json!({"localAlias": {"accessKeyId": key_id, "alias": "mine",
                                       "allow": {"read": true, "write": true}}}),
            ),
        )
        .await;
    let lid = lb["id"].as_str().expect("id").to_string();
    assert_eq!(lb["globalAliases"], json!([]));
    assert_eq!(
        lb["keys"],
        json!([{"accessKeyId": key_id, "name": "owner",
                "permissions": {"read": true, "write": true, "owner": false},
                "bucketLocalAliases": ["mine"]}])
    );
    let r = admin
        .send(
            "POST",
            "/v1/bucket",
            json!({"localAlias": {"accessKeyId": key_id, "alias": "mine"}}),
        )
        .await;
    assert_eq!(err_code(&r, 409), "BucketAlreadyExists");
    let list = admin.ok("GET", "/v1/bucket", None).await;
    assert_eq!(list.as_array().expect("list").len(), 2);
    assert!(list.as_array().expect("list").contains(
        &json!({"id": lid, "globalAliases": [], "localAliases": [{"accessKeyId": key_id, "alias": "mine"}]})
    ));

    // Allow and deny on the global bucket.
    let perm = |bucket: &str, p: Value| json!({"bucketId": bucket, "accessKeyId": key_id, "permissions": p});
    let r = admin
        .ok(
            "POST",
            "/v1/bucket/allow",
            Some(perm(&id, json!({"read": true, "owner": true}))),
        )
        .await;
    assert_eq!(
        r["keys"][0]["permissions"],
        json!({"read": true, "write": false, "owner": true})
    );
    let r = admin
        .ok(
            "POST",
            "/v1/bucket/allow",
            Some(perm(&id, json!({"write": true}))),
        )
        .await;
    assert_eq!(
        r["keys"][0]["permissions"],
        json!({"read": true, "write": true, "owner": true})
    );
    let r = admin
        .ok(
            "POST",
            "/v1/bucket/deny",
            Some(perm(&id, json!({"owner": true, "read": false}))),
        )
        .await;
    assert_eq!(
        r["keys"][0]["permissions"],
        json!({"read": true, "write": true, "owner": false})
    );
    let r = admin
        .send(
            "POST",
            "/v1/bucket/allow",
            perm(&"00".repeat(32), json!({"read": true})),
        )
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchBucket");
    let r = admin
        .send(
            "POST",
            "/v1/bucket/allow",
            perm("xyz", json!({"read": true})),
        )
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = admin
        .send(
            "POST",
            "/v1/bucket/deny",
            json!({"bucketId": id, "accessKeyId": "GK000000000000000000000000", "permissions": {"read": true}}),
        )
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchAccessKey");
    let r = admin
        .send(
            "POST",
            "/v1/bucket/deny",
            json!({"bucketId": id, "accessKeyId": key_id}),
        )
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = admin
        .send("POST", "/v1/bucket/deny", perm(&id, json!({"read": "yes"})))
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = wrong
        .send("POST", "/v1/bucket/deny", perm(&id, json!({"read": true})))
        .await;
    assert_eq!(r.status, 403);
    let info = admin.ok("GET", &format!("/v1/key?id={key_id}"), None).await;
    let on_photos = info["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .find(|b| b["id"] == id.as_str())
        .expect("photos in key info")
        .clone();
    assert_eq!(
        on_photos["permissions"],
        json!({"read": true, "write": true, "owner": false})
    );
    assert_eq!(on_photos["globalAliases"], json!(["photos"]));

    // The key writes through its permissions.
    let k2v = K2v::new(
        node.endpoint(),
        Creds {
            key_id: key_id.clone(),
            secret: secret.clone(),
            bucket: "photos".into(),
        },
    );
    let r = k2v.req("PUT", "/photos/pk?sort_key=sk", &[], b"v").await;
    assert_eq!(r.status, 204, "{}", text(&r));
    // The item counters reach the index (asynchronously).
    common::eventually(30, || async {
        let r = k2v.req("GET", "/photos", &[], b"").await;
        r.json()["partitionKeys"].as_array().map(|a| a.len()) == Some(1)
    })
    .await;

    // Global aliases.
    let g = format!("/v1/bucket/alias/global?id={id}&alias=pictures");
    let r = admin.ok("PUT", &g, None).await;
    assert_eq!(r["globalAliases"], json!(["photos", "pictures"]));
    assert_eq!(
        admin
            .ok("GET", "/v1/bucket?globalAlias=pictures", None)
            .await["id"],
        id.as_str()
    );
    let r = admin
        .raw(
            "PUT",
            &format!("/v1/bucket/alias/global?id={lid}&alias=pictures"),
            "",
        )
        .await;
    assert_eq!(err_code(&r, 409), "BucketAlreadyExists");
    let r = admin
        .raw(
            "PUT",
            &format!("/v1/bucket/alias/global?id={id}&alias=No"),
            "",
        )
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = wrong.raw("DELETE", &g, "").await;
    assert_eq!(r.status, 403);
    let r = admin.ok("DELETE", &g, None).await;
    assert_eq!(r["globalAliases"], json!(["photos"]));
    assert_eq!(
        err_code(&admin.raw("DELETE", &g, "").await, 404),
        "NoSuchBucket"
    );
    // The last alias cannot be removed.
    let r = admin
        .raw(
            "DELETE",
            &format!("/v1/bucket/alias/global?id={id}&alias=photos"),
            "",
        )
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = admin.raw("PUT", "/v1/bucket/alias/global?id=abc", "").await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");

    // Local aliases.
    let l = format!("/v1/bucket/alias/local?id={id}&accessKeyId={key_id}&alias=my-photos");
    let r = admin.ok("PUT", &l, None).await;
    assert_eq!(r["keys"][0]["bucketLocalAliases"], json!(["my-photos"]));
    let r = k2v.req("GET", "/my-photos/pk?sort_key=sk", &[], b"").await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = admin
        .raw(
            "PUT",
            &format!("/v1/bucket/alias/local?id={id}&accessKeyId={key_id}&alias=mine"),
            "",
        )
        .await;
    assert_eq!(err_code(&r, 409), "BucketAlreadyExists");
    let r = admin
        .raw(
            "PUT",
            &format!(
                "/v1/bucket/alias/local?id={id}&accessKeyId=GK000000000000000000000000&alias=zzz"
            ),
            "",
        )
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchAccessKey");
    let r = admin.ok("DELETE", &l, None).await;
    assert_eq!(r["keys"][0]["bucketLocalAliases"], json!([]));
    assert_eq!(
        err_code(&admin.raw("DELETE", &l, "").await, 404),
        "NoSuchBucket"
    );
    let r = k2v.req("GET", "/my-photos/pk?sort_key=sk", &[], b"").await;
    assert_eq!(r.status, 404, "{}", text(&r));

    // Update: website and quotas are accepted and ignored (not supported).
    let r = admin
        .ok(
            "PUT",
            &format!("/v1/bucket?id={id}"),
            Some(json!({"websiteAccess": {"enabled": false}, "quotas": {"maxSize": 1000, "maxObjects": null}})),
        )
        .await;
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["quotas"], json!({"maxSize": null, "maxObjects": null}));
    let r = admin
        .send(
            "PUT",
            &format!("/v1/bucket?id={id}"),
            json!({"websiteAccess": {"enabled": true}}),
        )
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = admin
        .send(
            "PUT",
            &format!("/v1/bucket?id={id}"),
            json!({"quotas": {"maxSize": "big"}}),
        )
        .await;
    assert_eq!(err_code(&r, 400), "InvalidRequest");
    let r = admin
        .send(
            "PUT",
            &format!("/v1/bucket?id={}", "00".repeat(32)),
            json!({}),
        )
        .await;
    assert_eq!(err_code(&r, 404), "NoSuchBucket");

    // Delete: refused while the bucket holds an item, then done.
    let del = format!("/v1/bucket?id={id}");
    let r = admin.raw("DELETE", &del, "").await;
    assert_eq!(err_code(&r, 409), "BucketNotEmpty");
    assert_eq!(
        admin.ok("GET", &del, None).await["globalAliases"],
        json!(["photos"])
    );
    let ct = k2v
        .req("GET", "/photos/pk?sort_key=sk", &[], b"")
        .await
        .ct();
    let r = k2v
        .req(
            "DELETE",
            "/photos/pk?sort_key=sk",
            &[("x-garage-causality-token", &ct)],
            b"",
        )
        .await;
    assert_eq!(r.status, 204, "{}", text(&r));
    // Refused until the counters see the deletion.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = admin.raw("DELETE", &del, "").await;
        if r.status == 204 {
            break;
        }
        assert_eq!(err_code(&r, 409), "BucketNotEmpty");
        assert!(std::time::Instant::now() < deadline, "bucket never emptied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(err_code(&admin.get(&del).await, 404), "NoSuchBucket");
    assert_eq!(
        err_code(&admin.raw("DELETE", &del, "").await, 404),
        "NoSuchBucket"
    );
    assert_eq!(
        err_code(&admin.get("/v1/bucket?globalAlias=photos").await, 404),
        "NoSuchBucket"
    );
    let r = k2v.req("GET", "/photos/pk?sort_key=sk", &[], b"").await;
    assert_eq!(r.status, 404, "{}", text(&r));
    // The freed alias can be used again; the key no longer lists the bucket.
    let again = admin
        .ok("POST", "/v1/bucket", Some(json!({"globalAlias": "photos"})))
        .await;
    assert_ne!(again["id"], id.as_str());
    let info = admin.ok("GET", &format!("/v1/key?id={key_id}"), None).await;
    assert!(!info["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .any(|b| b["id"] == id.as_str()));

    // A bucket with only a local alias can be deleted too.
    let r = admin
        .raw("DELETE", &format!("/v1/bucket?id={lid}"), "")
        .await;
    assert_eq!(r.status, 204, "{}", text(&r));
    let r = admin
        .ok(
            "POST",
            "/v1/bucket",
            Some(json!({"localAlias": {"accessKeyId": key_id, "alias": "mine"}})),
        )
        .await;
    assert_ne!(r["id"], lid.as_str());
    assert_eq!(
        err_code(&admin.raw("DELETE", "/v1/bucket?id=zz", "").await, 400),
        "InvalidRequest"
    );
}

/// Node `n`'s `id@addr`.
fn peer(n: &Node, id: &str) -> String {
    format!("{id}@{}:{}", n.opts.ip, n.rpc_port)
}

async fn node_up(admin: &Admin, id: &str) -> bool {
    let st = admin.ok("GET", "/v1/status", None).await;
    st["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .any(|n| n["id"] == id && n["isUp"] == true)
}

#[tokio::test]
async fn three_nodes_status_connect_and_layout() {
    let o = NodeOpts { rf: 3, ..opts() };
    // Three separate nodes: none knows another yet.
    let n1 = common::start_node(o.clone());
    let n2 = common::start_node(o.clone());
    let n3 = common::start_node(o);
    let (a1, a2, a3) = (
        Admin::new(&n1, Some(TOKEN)),
        Admin::new(&n2, Some(TOKEN)),
        Admin::new(&n3, Some(TOKEN)),
    );
    let id_of = |st: Value| st["node"].as_str().expect("node").to_string();
    let id1 = id_of(a1.ok("GET", "/v1/status", None).await);
    let id2 = id_of(a2.ok("GET", "/v1/status", None).await);
    let id3 = id_of(a3.ok("GET", "/v1/status", None).await);
    assert_eq!(
        a1.ok("GET", "/v1/status", None).await["nodes"]
            .as_array()
            .expect("nodes")
            .len(),
        1
    );

    // Connect node 2 to node 1; a bad entry and an unreachable node fail
    // alone, in their place.
    let unreachable = format!("{}@127.0.0.1:1", "ee".repeat(32));
    let r = a1
        .ok(
            "POST",
            "/v1/connect",
            Some(json!([peer(&n2, &id2), "not-a-peer", unreachable])),
        )
        .await;
    let r = r.as_array().expect("answers");
    assert_eq!(r.len(), 3);
    assert_eq!(r[0], json!({"success": true, "error": null}));
    assert_eq!(r[1]["success"], false);
    assert!(r[1]["error"].is_string());
    assert_eq!(r[2]["success"], false);
    let r = Admin::new(&n1, Some("bad"))
        .send("POST", "/v1/connect", json!([peer(&n3, &id3)]))
        .await;
    assert_eq!(r.status, 403);
    common::eventually(30, || node_up(&a1, &id2)).await;
    common::eventually(30, || node_up(&a2, &id1)).await;
    // The refused connect did nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!node_up(&a1, &id3).await);

    // Stage roles on node 1 for itself, node 2 and node 3, which has not
    // connected to anyone yet (its full id is enough).
    let roles = json!([
        {"id": id1, "zone": "dc1", "capacity": 1_000_000_000u64, "tags": ["a"]},
        {"id": id2, "zone": "dc2", "capacity": 1_000_000_000u64, "tags": []},
        {"id": id3, "zone": "dc3", "capacity": 2_000_000_000u64, "tags": ["c", "d"]},
    ]);
    let l = a1.ok("POST", "/v1/layout", Some(roles.clone())).await;
    assert_eq!(l["stagedRoleChanges"].as_array().expect("staged").len(), 3);
    // Staged changes reach node 2.
    common::eventually(30, || async {
        a2.ok("GET", "/v1/layout", None).await["stagedRoleChanges"]
            .as_array()
            .expect("staged")
            .len()
            == 3
    })
    .await;
    // Revert through node 2; node 1 sees it.
    let l = a2.ok("POST", "/v1/layout/revert", None).await;
    assert_eq!(l["version"], 0);
    assert_eq!(l["stagedRoleChanges"], json!([]));
    common::eventually(30, || async {
        a1.ok("GET", "/v1/layout", None).await["stagedRoleChanges"] == json!([])
    })
    .await;

    // Stage again and apply through node 1.
    a1.ok("POST", "/v1/layout", Some(roles)).await;
    let a = a1
        .ok("POST", "/v1/layout/apply", Some(json!({"version": 1})))
        .await;
    assert!(
        a["message"]
            .as_array()
            .expect("message")
            .iter()
            .any(|l| l == "Partitions are replicated 3 times on at least 3 distinct zones."),
        "{a}"
    );
    assert_eq!(a["layout"]["version"], 1);
    assert_eq!(a["layout"]["roles"].as_array().expect("roles").len(), 3);
    common::eventually(30, || async {
        a2.ok("GET", "/v1/layout", None).await["version"] == 1
    })
    .await;

    // Node 3 has a role but is not connected: status shows it down,
    // health is degraded (2 of 3 up in every partition, W = 2).
    let st = a1.ok("GET", "/v1/status", None).await;
    assert_eq!(st["layoutVersion"], 1);
    let n3s = st["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == id3.as_str())
        .expect("node 3 listed")
        .clone();
    assert_eq!(n3s["isUp"], false);
    assert_eq!(
        n3s["role"],
        json!({"id": id3, "zone": "dc3", "capacity": 2_000_000_000u64, "tags": ["c", "d"]})
    );
    let h = a1.ok("GET", "/v1/health", None).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["storageNodes"], 3);
    assert_eq!(h["storageNodesOk"], 2);
    assert_eq!(h["partitionsQuorum"], 256);
    assert_eq!(h["partitionsAllOk"], 0);
    assert_eq!(Admin::new(&n1, None).get("/health").await.status, 200);

    // Connect node 3: it gets the layout and the cluster is healthy.
    let r = a1
        .ok("POST", "/v1/connect", Some(json!([peer(&n3, &id3)])))
        .await;
    assert_eq!(r, json!([{"success": true, "error": null}]));
    common::eventually(30, || async {
        a3.ok("GET", "/v1/layout", None).await["version"] == 1
    })
    .await;
    common::eventually(30, || async {
        a1.ok("GET", "/v1/health", None).await["status"] == "healthy"
    })
    .await;
    let st = a3.ok("GET", "/v1/status", None).await;
    let nodes = st["nodes"].as_array().expect("nodes");
    let mut ids = vec![id1.clone(), id2.clone(), id3.clone()];
    ids.sort();
    assert_eq!(ids_of(&st["nodes"], "id"), ids, "sorted by id");
    assert!(nodes.iter().all(|n| n["role"].is_object()), "{st}");

    // A wrong version and a refused token change nothing.
    let r = a2
        .send("POST", "/v1/layout/apply", json!({"version": 1}))
        .await;
    assert_eq!(r.status, 400);
    let r = Admin::new(&n2, Some("bad"))
        .send("POST", "/v1/layout", json!([{"id": id3, "remove": true}]))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        a2.ok("GET", "/v1/layout", None).await["stagedRoleChanges"],
        json!([])
    );

    // Stage a removal through node 3; node 2 shows it; revert.
    let l = a3
        .ok(
            "POST",
            "/v1/layout",
            Some(json!([{"id": id3, "remove": true}])),
        )
        .await;
    assert_eq!(l["stagedRoleChanges"], json!([{"id": id3, "remove": true}]));
    common::eventually(30, || async {
        a2.ok("GET", "/v1/layout", None).await["stagedRoleChanges"]
            == json!([{"id": id3, "remove": true}])
    })
    .await;
    let l = a2.ok("POST", "/v1/layout/revert", Some(json!({}))).await;
    assert_eq!(l["version"], 1);
    assert_eq!(l["stagedRoleChanges"], json!([]));
}
