//! Benchmark of the layout computation.
//!
//! Run with `cargo run --release -p garage_rpc --example layout_bench`.
//! For 10, 100 and 256 storage nodes (3, 5 and 10 zones, rf 3), prints the
//! time of a first `apply` (assignment + check) and of relayouts after one
//! node is added or removed, with the number of moved partition copies and the peak
//! resident memory of the step (VmHWM, reset before each step when the
//! kernel allows it).

use std::time::Instant;

use garage_rpc::layout::{LayoutHistory, NodeRole, ZoneRedundancy};
use garage_util::data::{blake2sum, Uuid};

fn node(i: usize) -> Uuid {
    blake2sum(format!("bench node {i}").as_bytes())
}

/// Deterministic capacities between 1 and 10 TB.
fn capacity(i: usize) -> u64 {
    let x = (i as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (1 + (x >> 33) % 10) * 1_000_000_000_000
}

fn role(i: usize, zones: usize) -> NodeRole {
    NodeRole {
        zone: format!("zone{}", i % zones),
        capacity: Some(capacity(i)),
        tags: vec![],
    }
}

/// Peak RSS in kB since the last reset.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0); ignore failures.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn apply(h: &LayoutHistory) -> (LayoutHistory, Vec<String>) {
    match h.apply_staged_changes(Some(h.current().version + 1)) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("apply failed: {e}");
            std::process::exit(1);
        }
    }
}

/// The number in "A total of N new copies…".
fn moved_copies(msg: &[String]) -> String {
    msg.iter()
        .find_map(|l| {
            l.strip_prefix("A total of ")
                .and_then(|r| r.split_whitespace().next())
                .map(String::from)
        })
        .unwrap_or_default()
}

fn main() {
    println!(
        "{:>6} {:>6} {:>4}  {:<26} {:>10} {:>12} {:>12}",
        "nodes", "zones", "rf", "step", "time (ms)", "moved copies", "peak RSS kB"
    );
    for (n, zones) in [(10usize, 3usize), (100, 5), (256, 10)] {
        // First layout with n nodes.
        let mut h = LayoutHistory::new(3);
        for i in 0..n {
            h.stage_assign(node(i), role(i, zones)).expect("valid role");
        }
        h.stage_zone_redundancy(ZoneRedundancy::Maximum)
            .expect("valid redundancy");
        reset_peak_rss();
        let t = Instant::now();
        let (h1, _) = apply(&h);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{:>6} {:>6} {:>4}  {:<26} {:>10.1} {:>12} {:>12}",
            n,
            zones,
            3,
            "initial apply",
            ms,
            "-",
            peak_rss_kb()
        );

        // Relayout after adding a node: from n-1 nodes to n nodes.
        let mut h = LayoutHistory::new(3);
        for i in 0..n - 1 {
            h.stage_assign(node(i), role(i, zones)).expect("valid role");
        }
        let (mut h, _) = apply(&h);
        h.stage_assign(node(n - 1), role(n - 1, zones))
            .expect("valid role");
        reset_peak_rss();
        let t = Instant::now();
        let (h2, msg) = apply(&h);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let moved = moved_copies(&msg);
        println!(
            "{:>6} {:>6} {:>4}  {:<26} {:>10.1} {:>12} {:>12}",
            n,
            zones,
            3,
            format!("relayout {} -> {} nodes", n - 1, n),
            ms,
            moved,
            peak_rss_kb()
        );
        assert_eq!(h2.current().storage_nodes().len(), n);

        // Relayout after removing a node of the n-node layout.
        let mut h = h1.clone();
        h.stage_remove(node(0));
        reset_peak_rss();
        let t = Instant::now();
        let (h3, msg) = apply(&h);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{:>6} {:>6} {:>4}  {:<26} {:>10.1} {:>12} {:>12}",
            n,
            zones,
            3,
            format!("relayout {} -> {} nodes", n, n - 1),
            ms,
            moved_copies(&msg),
            peak_rss_kb()
        );
        assert_eq!(h3.current().storage_nodes().len(), n - 1);
    }
}
