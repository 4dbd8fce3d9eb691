//! `GET /metrics`: the Prometheus text exposition (format 0.0.4).
//!
//! The registry of the process (K2V request, RPC and table counters and
//! durations, kept as requests are served) is written first, then the
//! gauges computed now: build and replication factor, local disk, cluster
//! health and the connection of each layout node (Garage's names and
//! labels), table sizes and queue lengths, the block store's counts and
//! resync queue, process memory and open files.
//! Rendering reads the database and runs `df`, so it runs on a blocking
//! thread.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use garage_model::garage::Garage;
use garage_table::TableStats;
use garage_util::metrics::{self, Kind, TextEncoder};

use super::ctx::{AdminCtx, BuildInfo};
use super::error::AdminError;
use super::health::{cluster_health, HealthStatus};
use crate::error::ApiError;
use crate::http::ResBody;

/// `GET /metrics`.
pub async fn handle_metrics(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    let garage = ctx.garage.clone();
    let build = ctx.build.clone();
    let text = tokio::task::spawn_blocking(move || render(&garage, &build))
        .await
        .map_err(|e| ApiError::Internal(format!("metrics task failed: {e}")))?;
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Ok(r)
}

/// The whole exposition.
fn render(g: &Garage, build: &BuildInfo) -> String {
    let mut e = TextEncoder::new();
    metrics::global().render(&mut e);
    system(&mut e, g, build);
    cluster(&mut e, g);
    tables(&mut e, g);
    blocks(&mut e, g);
    process(&mut e);
    e.finish()
}

fn system(e: &mut TextEncoder, g: &Garage, build: &BuildInfo) {
    e.gauge(
        "garage_build_info",
        "Garage build info",
        &[
            ("rustversion", build.rust_version.as_str()),
            ("version", build.version.as_str()),
        ],
        1u64,
    );
    e.gauge(
        "garage_replication_factor",
        "Garage replication factor setting",
        &[],
        g.system.quorums.rf,
    );
}

fn cluster(e: &mut TextEncoder, g: &Garage) {
    let h = cluster_health(g);
    e.gauge(
        "cluster_healthy",
        "Whether all storage nodes are connected",
        &[],
        h.status == HealthStatus::Healthy,
    );
    e.gauge(
        "cluster_available",
        "Whether all requests can be served, even if some storage nodes are disconnected",
        &[],
        h.status != HealthStatus::Unavailable,
    );
    let counts = [
        (
            "cluster_known_nodes",
            "Number of nodes already seen once in the cluster",
            h.known_nodes,
        ),
        (
            "cluster_connected_nodes",
            "Number of nodes currently connected",
            h.connected_nodes,
        ),
        (
            "cluster_storage_nodes",
            "Number of storage nodes declared in the current layout",
            h.storage_nodes,
        ),
        (
            "cluster_storage_nodes_ok",
            "Number of storage nodes currently connected",
            h.storage_nodes_ok,
        ),
        (
            "cluster_partitions",
            "Number of partitions in the layout",
            h.partitions,
        ),
        (
            "cluster_partitions_quorum",
            "Number of partitions for which we have a quorum of connected nodes",
            h.partitions_quorum,
        ),
        (
            "cluster_partitions_all_ok",
            "Number of partitions for which all storage nodes are connected",
            h.partitions_all_ok,
        ),
    ];
    for (name, help, v) in counts {
        e.gauge(name, help, &[], v);
    }

    // Every node of an active layout version, as Garage labels it: the
    // first 8 bytes of its id in hex, and its role in the current version.
    let layout = g.system.layout();
    let known = g.system.known_nodes();
    let mut connected = Vec::new();
    let mut disconnected = Vec::new();
    for id in layout.all_nodes() {
        let mut labels: Vec<(&'static str, String)> =
            vec![("id", hex::encode(&id.as_slice()[..8]))];
        if let Some(role) = layout.current().node_role(&id) {
            labels.push(("role_zone", role.zone.clone()));
            match role.capacity {
                Some(c) => {
                    labels.push(("role_capacity", c.to_string()));
                    labels.push(("role_gateway", "0".into()));
                }
                None => labels.push(("role_gateway", "1".into())),
            }
        }
        let node = known.iter().find(|n| n.id == id);
        let up = node.is_some_and(|n| n.is_up);
        if let Some(n) = node {
            match (up, n.last_seen_secs_ago) {
                (true, _) => disconnected.push((labels.clone(), 0)),
                (false, Some(s)) => disconnected.push((labels.clone(), s)),
                (false, None) => {}
            }
        }
        connected.push((labels, u64::from(up)));
    }
    let series = [
        (
            "cluster_layout_node_connected",
            "Connection status for nodes in the cluster layout",
            connected,
        ),
        (
            "cluster_layout_node_disconnected_time",
            "Time (in seconds) since last connection to nodes in the cluster layout",
            disconnected,
        ),
    ];
    for (name, help, samples) in series {
        e.family(name, help, Kind::Gauge);
        for (labels, v) in samples {
            let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.sample(name, &l, v);
        }
    }

    // A K2V node keeps no object data: only the metadata volume is
    // reported (as in `GET /v1/status`).
    let disk = known
        .iter()
        .find(|n| n.id == g.system.id)
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.meta_disk);
    if let Some((avail, total)) = disk {
        let l = [("volume", "metadata")];
        e.gauge(
            "garage_local_disk_avail",
            "Garage available disk space on each node",
            &l,
            avail,
        );
        e.gauge(
            "garage_local_disk_total",
            "Garage total disk space on each node",
            &l,
            total,
        );
    }
}

/// A per-table gauge: name, help, and its value in the stats.
type TableGauge = (&'static str, &'static str, fn(&TableStats) -> usize);

fn tables(e: &mut TextEncoder, g: &Garage) {
    let all = [
        g.key_table.stats(),
        g.bucket_table.stats(),
        g.bucket_alias_table.stats(),
        g.block_manager.block_ref_table().stats(),
        g.s3.object_table.stats(),
        g.s3.version_table.stats(),
        #[cfg(feature = "k2v")]
        g.k2v.item_table.stats(),
        #[cfg(feature = "k2v")]
        g.k2v.counter_table.stats(),
    ];
    let stats: Vec<TableStats> = all
        .into_iter()
        .filter_map(|s| {
            s.map_err(|err| tracing::warn!(error = %err, "cannot read table sizes for /metrics"))
                .ok()
        })
        .collect();
    let gauges: [TableGauge; 3] = [
        ("table_size", "Number of items in table", |s| s.entries),
        (
            "table_merkle_updater_todo_queue_length",
            "Merkle tree updater TODO queue length",
            |s| s.merkle_todo,
        ),
        (
            "table_gc_todo_queue_length",
            "Table garbage collector TODO queue length",
            |s| s.gc_todo,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, help, Kind::Gauge);
        for s in stats.iter() {
            e.sample(name, &[("table_name", s.name)], value(s));
        }
    }
}

/// The block store: local files and the resync queue.
fn blocks(e: &mut TextEncoder, g: &Garage) {
    let s = g.block_manager.stats();
    let gauges: [(&str, &str, u64); 5] = [
        (
            "block_local_count",
            "Number of data blocks stored on this node",
            s.blocks,
        ),
        (
            "block_local_bytes",
            "Total size of the data blocks stored on this node",
            s.bytes,
        ),
        (
            "block_rc_entries",
            "Number of blocks with a local reference count (referenced or awaiting deletion)",
            s.rc_entries,
        ),
        (
            "block_resync_queue_length",
            "Number of block hashes queued for a resync check",
            s.resync_queue_len,
        ),
        (
            "block_resync_errored_blocks",
            "Number of blocks whose last resync check failed",
            s.resync_errors,
        ),
    ];
    for (name, help, v) in gauges {
        e.gauge(name, help, &[], v);
    }
}

/// Resident memory and open descriptors from `/proc/self` (omitted where
/// there is no `/proc`).
fn process(e: &mut TextEncoder) {
    if let Some(rss) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_rss_bytes(&s))
    {
        e.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            &[],
            rss,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        e.gauge(
            "process_open_fds",
            "Number of open file descriptors",
            &[],
            dir.count(),
        );
    }
}

/// The `VmRSS:  <n> kB` line of `/proc/self/status`, in bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc_status() {
        let s = "Name:\tgarage\nVmPeak:\t  9000 kB\nVmRSS:\t   1234 kB\nThreads: 4\n";
        assert_eq!(vm_rss_bytes(s), Some(1234 * 1024));
        assert_eq!(vm_rss_bytes("Name: x\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS: lots\n"), None);
    }

    #[test]
    fn process_gauges_are_written_on_linux() {
        let mut e = TextEncoder::new();
        process(&mut e);
        let text = e.finish();
        if cfg!(target_os = "linux") {
            assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
            assert!(text.contains("\nprocess_open_fds "), "{text}");
        }
    }
}
