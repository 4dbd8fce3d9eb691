//! `GET /metrics` on real nodes: every line of the answer is checked with
//! the small Prometheus text-format parser below, the metric names of
//! issue 11 are present, counters move with K2V requests, and the metrics
//! token guards the endpoint (open when none is set).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::common::{self, single_node, K2v, Node, NodeOpts};

/// Every name `/metrics` must expose on a K2V node (histograms by their
/// base name).
const REQUIRED: &[&str] = &[
    "api_k2v_request_counter",
    "api_k2v_error_counter",
    "api_k2v_request_duration",
    "cluster_healthy",
    "cluster_available",
    "cluster_known_nodes",
    "cluster_connected_nodes",
    "cluster_storage_nodes",
    "cluster_storage_nodes_ok",
    "cluster_partitions",
    "cluster_partitions_quorum",
    "cluster_partitions_all_ok",
    "cluster_layout_node_connected",
    "garage_build_info",
    "garage_replication_factor",
    "garage_local_disk_avail",
    "garage_local_disk_total",
    "rpc_request_counter",
    "rpc_duration",
    "rpc_timeout_counter",
    "table_get_request_counter",
    "table_put_request_counter",
    "table_get_request_duration",
    "table_put_request_duration",
    "table_size",
    "table_merkle_updater_todo_queue_length",
    "table_gc_todo_queue_length",
    "table_sync_items_sent",
    "table_sync_items_received",
    "process_resident_memory_bytes",
    "process_open_fds",
];

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: the `# TYPE` of each family, and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the one sample `name` whose labels include `labels`
    /// (0 when there is none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "several samples match {name}{labels:?}");
        found.first().map_or(0.0, |s| s.value)
    }

    fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn is_name(s: &str, metric: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (metric && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut cs = s.chars();
    cs.next().is_some_and(|c| ok(c, true)) && cs.all(|c| ok(c, false))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("value `{s}`: {e}")),
    }
}

/// Parses `{k="v",...}` (escapes `\\`, `\"`, `\n`), returning the labels
/// and what follows the closing brace.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no `{`")?;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let key = rest[..eq].trim();
        if !is_name(key, false) {
            return Err(format!("bad label name `{key}`"));
        }
        let mut chars = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape `\\{c}`")),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label `{key}` repeated"));
        }
        rest = &rest[eq + 1..][1 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The family a sample belongs to: its own name, or the base name of a
/// histogram's `_bucket`, `_sum` and `_count` series.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    name
}

/// Parses a text exposition (0.0.4), checking that every non-comment line
/// is `name{labels} value [timestamp]`, that every family has one `# TYPE`
/// line before its samples and that its samples are contiguous, and that
/// histogram buckets are cumulative and end with `+Inf` = `_count`.
fn parse(text: &str) -> Exposition {
    let mut x = Exposition::default();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let fail = |why: String| -> ! { panic!("line {}: {why}: `{line}`", n + 1) };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name, true) {
                        fail(format!("bad metric name `{name}`"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        fail(format!("unknown type `{kind}`"));
                    }
                    if x.types.insert(name.into(), kind.into()).is_some() {
                        fail(format!("second TYPE for `{name}`"));
                    }
                }
                (Some("HELP"), Some(name), _) if !is_name(name, true) => {
                    fail(format!("bad metric name `{name}`"))
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| fail("no value".into()));
        let name = &line[..name_end];
        if !is_name(name, true) {
            fail(format!("bad metric name `{name}`"));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).unwrap_or_else(|e| fail(e))
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().unwrap_or_else(|| fail("no value".into())))
            .unwrap_or_else(|e| fail(e));
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|e| fail(format!("timestamp: {e}")));
        }
        if fields.next().is_some() {
            fail("trailing fields".into());
        }
        let family = family_of(name, &x.types).to_string();
        if !x.types.contains_key(&family) {
            fail(format!("no # TYPE for `{family}`"));
        }
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                fail(format!("samples of `{family}` are not contiguous"));
            }
            if let Some(c) = current.take() {
                finished.insert(c);
            }
            current = Some(family);
        }
        x.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&x);
    x
}

/// (upper bound, cumulative count) of one histogram series.
type Buckets = Vec<(f64, f64)>;

fn check_histograms(x: &Exposition) {
    for (family, _) in x.types.iter().filter(|(_, t)| *t == "histogram") {
        // Buckets by series (labels without `le`), in order of appearance.
        let mut series: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
        for s in x.all(&format!("{family}_bucket")) {
            let le = parse_value(s.labels.get("le").expect("bucket without le")).expect("le");
            let key: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series.entry(key).or_default().push((le, s.value));
        }
        assert!(!series.is_empty(), "histogram {family} has no buckets");
        for (labels, buckets) in series {
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family}{l:?}: buckets not ascending and cumulative: {buckets:?}"
            );
            let (le, inf) = *buckets.last().expect("buckets");
            assert_eq!(le, f64::INFINITY, "{family}{l:?}: last bucket is not +Inf");
            assert_eq!(
                inf,
                x.value(&format!("{family}_count"), &l),
                "{family}{l:?}"
            );
            assert!(x.value(&format!("{family}_sum"), &l) >= 0.0);
        }
    }
}

/// `GET /metrics` on `node`'s admin port: (status, content type, body).
pub(crate) async fn get_metrics(node: &Node, token: Option<&str>) -> (u16, String, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = http::Request::builder().uri(format!(
        "http://{}:{}/metrics",
        node.opts.ip, node.admin_port
    ));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let res = client
        .request(b.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("GET /metrics");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, ct, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

/// Scrapes and parses, expecting a 200 in the text format.
async fn scrape(node: &Node, token: Option<&str>) -> Exposition {
    let (status, ct, body) = get_metrics(node, token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, "text/plain; version=0.0.4");
    parse(&body)
}

async fn insert(k2v: &K2v, sk: &str) {
    let path = format!("{}/metrics-pk?sort_key={sk}", k2v.b());
    let r = k2v.req("PUT", &path, &[], b"value").await;
    assert_eq!(r.status, 204, "{r:?}");
}

#[test]
fn the_parser_refuses_what_prometheus_refuses() {
    let ok = "# HELP a x\n# TYPE a counter\na{l=\"q\\\"\\\\\\n\",m=\"\"} 1 1700000000000\n\
              # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
    let x = parse(ok);
    assert_eq!(x.value("a", &[("l", "q\"\\\n")]), 1.0);
    assert_eq!(x.value("h_count", &[]), 2.0);
    for bad in [
        "a 1\n",                                                                          // no TYPE
        "# TYPE a gauge\na{l=v} 1\n",                      // unquoted
        "# TYPE a gauge\na{l=\"v} 1\n",                    // unterminated
        "# TYPE a gauge\na one\n",                         // value
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",           // two TYPEs
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n", // not contiguous
        "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", // not cumulative
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted: {bad:?}"
        );
    }
}

#[tokio::test]
async fn metrics_are_exposed_and_move_with_requests() {
    let (node, k2v) = single_node(NodeOpts::default());
    let before = scrape(&node, None).await;
    let names: BTreeSet<&str> = before.types.keys().map(String::as_str).collect();
    let missing: Vec<&&str> = REQUIRED.iter().filter(|n| !names.contains(**n)).collect();
    assert!(missing.is_empty(), "missing metrics: {missing:?}");
    for n in REQUIRED {
        if n.ends_with("_duration") {
            assert_eq!(before.types[*n], "histogram", "{n}");
        }
    }

    // Gauges of a healthy single node.
    assert_eq!(before.value("cluster_healthy", &[]), 1.0);
    assert_eq!(before.value("cluster_available", &[]), 1.0);
    assert_eq!(before.value("cluster_storage_nodes", &[]), 1.0);
    assert_eq!(before.value("cluster_partitions", &[]), 256.0);
    assert_eq!(before.value("cluster_partitions_all_ok", &[]), 256.0);
    assert_eq!(before.value("garage_replication_factor", &[]), 1.0);
    let id = node.id();
    assert_eq!(
        before.value(
            "cluster_layout_node_connected",
            &[
                ("id", &id[..16]),
                ("role_zone", "dc1"),
                ("role_gateway", "0")
            ]
        ),
        1.0
    );
    let build = before.all("garage_build_info");
    assert_eq!(build.len(), 1);
    assert!(build[0].labels["version"].starts_with('v'), "{build:?}");
    assert!(before.value("garage_local_disk_total", &[("volume", "metadata")]) > 0.0);
    assert!(before.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(before.value("process_open_fds", &[]) > 0.0);
    for t in [
        "key",
        "bucket",
        "bucket_alias",
        "k2v_item",
        "k2v_index_counter",
    ] {
        assert_eq!(
            before
                .all("table_size")
                .iter()
                .filter(|s| s.labels["table_name"] == t)
                .count(),
            1,
            "table_size of {t}"
        );
    }
    assert!(before.value("table_size", &[("table_name", "key")]) >= 1.0);

    // Five inserts and a read of a missing item.
    for i in 0..5 {
        insert(&k2v, &format!("sk{i}")).await;
    }
    let r = k2v
        .req(
            "GET",
            &format!("{}/metrics-pk?sort_key=nope", k2v.b()),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 404);

    let after = scrape(&node, None).await;
    let insert_ep = [("api_endpoint", "InsertItem")];
    let delta = |name: &str, l: &[(&str, &str)]| after.value(name, l) - before.value(name, l);
    assert_eq!(delta("api_k2v_request_counter", &insert_ep), 5.0);
    assert_eq!(delta("api_k2v_request_duration_count", &insert_ep), 5.0);
    assert!(delta("api_k2v_request_duration_sum", &insert_ep) > 0.0);
    assert_eq!(
        delta("api_k2v_request_counter", &[("api_endpoint", "ReadItem")]),
        1.0
    );
    assert_eq!(
        after.value(
            "api_k2v_error_counter",
            &[("api_endpoint", "ReadItem"), ("status_code", "404")]
        ),
        1.0
    );
    assert_eq!(
        after.value("api_k2v_error_counter", &[("api_endpoint", "InsertItem")]),
        0.0,
        "no insert failed"
    );
    let item = [("table_name", "k2v_item")];
    assert!(
        delta("table_put_request_counter", &item) >= 5.0,
        "{} -> {}",
        before.value("table_put_request_counter", &item),
        after.value("table_put_request_counter", &item)
    );
    assert_eq!(
        delta("table_put_request_duration_count", &item),
        delta("table_put_request_counter", &item)
    );
    assert_eq!(after.value("table_size", &item), 5.0);
}

#[tokio::test]
async fn the_metrics_token_guards_metrics() {
    let node = common::start_node(NodeOpts {
        admin_extra: "metrics_token = \"scrape-me\"".into(),
        ..Default::default()
    });
    for token in [None, Some("wrong"), Some("scrape-me-not")] {
        let (status, _, body) = get_metrics(&node, token).await;
        assert_eq!(status, 403, "{token:?}: {body}");
        assert!(body.contains("AccessDenied"), "{body}");
    }
    let x = scrape(&node, Some("scrape-me")).await;
    // No layout yet: the node is up but no partition has a node.
    assert_eq!(x.value("cluster_available", &[]), 0.0);
    assert_eq!(x.value("cluster_known_nodes", &[]), 1.0);
}

#[tokio::test]
async fn three_nodes_report_each_other_and_count_rpcs() {
    let opts = NodeOpts {
        rf: 3,
        ..Default::default()
    };
    let (nodes, creds) = common::cluster(3, opts, "bucket").await;
    let before: Vec<Exposition> = {
        let mut v = vec![];
        for n in &nodes {
            v.push(scrape(n, None).await);
        }
        v
    };
    let k2v = K2v::new(nodes[0].endpoint(), creds);
    for i in 0..4 {
        insert(&k2v, &format!("sk{i}")).await;
    }
    let mut after = vec![];
    for n in &nodes {
        after.push(scrape(n, None).await);
    }
    let x = &after[0];
    assert_eq!(x.value("cluster_known_nodes", &[]), 3.0);
    assert_eq!(x.value("cluster_healthy", &[]), 1.0);
    assert_eq!(x.value("garage_replication_factor", &[]), 3.0);
    let connected = x.all("cluster_layout_node_connected");
    assert_eq!(connected.len(), 3, "{connected:?}");
    assert!(connected.iter().all(|s| s.value == 1.0), "{connected:?}");

    // The inserts reached the other replicas through the item table's RPC
    // endpoint (from whichever node took them), where they were received.
    let rpc = [("rpc_endpoint", "table/k2v_item")];
    let sent: f64 = (0..3)
        .map(|i| {
            after[i].value("rpc_request_counter", &rpc)
                - before[i].value("rpc_request_counter", &rpc)
        })
        .sum();
    assert!(sent >= 4.0, "RPCs sent: {sent}");
    // Each insert reaches both other replicas (one of them possibly after
    // the answer): 8 entries received, and every node stores the 4 items.
    let item = [("table_name", "k2v_item")];
    common::eventually(30, || async {
        let mut received = 0.0;
        let mut sizes = vec![];
        for (n, b) in nodes.iter().zip(before.iter()) {
            let x = scrape(n, None).await;
            received += x.value("table_sync_items_received", &item)
                - b.value("table_sync_items_received", &item);
            sizes.push(x.value("table_size", &item));
        }
        received >= 8.0 && sizes.iter().all(|s| *s == 4.0)
    })
    .await;
}
