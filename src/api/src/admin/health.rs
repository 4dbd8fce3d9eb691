//! Cluster health: `GET /health` (plain text, no token) and
//! `GET /v1/health` (JSON).
//!
//! A partition has quorum when, in every active layout version, at least
//! the write quorum of its nodes is up; it is "all ok" when all of them
//! are. The cluster is `healthy` when every partition is all ok and every
//! storage node of the current version is up, `degraded` when every
//! partition still has quorum, `unavailable` otherwise (also before any
//! layout is applied: no partition has a node then).

use std::collections::BTreeSet;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use garage_model::garage::Garage;
use garage_rpc::layout::partitions;
use garage_util::data::Uuid;

use super::ctx::{ok_json, AdminCtx};
use super::error::AdminError;
use crate::http::ResBody;

/// The overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every node of every partition is up.
    Healthy,
    /// Some nodes are down, every partition keeps a write quorum.
    Degraded,
    /// Some partition has no quorum.
    Unavailable,
}

/// The body of `GET /v1/health`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// Overall state.
    pub status: HealthStatus,
    /// Nodes this node knows of (itself included).
    pub known_nodes: usize,
    /// Of those, connected ones.
    pub connected_nodes: usize,
    /// Storage nodes of the current layout.
    pub storage_nodes: usize,
    /// Of those, connected ones.
    pub storage_nodes_ok: usize,
    /// Number of partitions (256).
    pub partitions: usize,
    /// Partitions with a write quorum up in every active version.
    pub partitions_quorum: usize,
    /// Partitions with all their nodes up in every active version.
    pub partitions_all_ok: usize,
}

/// Computes the health as this node sees it.
pub fn cluster_health(garage: &Garage) -> ClusterHealth {
    let system = &garage.system;
    let layout = system.layout();
    let nodes = system.known_nodes();
    let up: BTreeSet<Uuid> = nodes.iter().filter(|n| n.is_up).map(|n| n.id).collect();
    let storage = layout.current().storage_nodes();
    let storage_nodes_ok = storage.iter().filter(|n| up.contains(n)).count();
    let w = system.quorums.write;
    let (mut total, mut quorum, mut all_ok) = (0, 0, 0);
    for (_, hash) in partitions() {
        total += 1;
        let sets = layout.write_sets_of(&hash);
        let up_in = |s: &Vec<Uuid>| s.iter().filter(|n| up.contains(n)).count();
        let placed = !sets.is_empty() && sets.iter().all(|s| !s.is_empty());
        if placed && sets.iter().all(|s| up_in(s) >= w) {
            quorum += 1;
        }
        if placed && sets.iter().all(|s| up_in(s) == s.len()) {
            all_ok += 1;
        }
    }
    let status = if all_ok == total && storage_nodes_ok == storage.len() {
        HealthStatus::Healthy
    } else if quorum == total {
        HealthStatus::Degraded
    } else {
        HealthStatus::Unavailable
    };
    ClusterHealth {
        status,
        known_nodes: nodes.len(),
        connected_nodes: up.len(),
        storage_nodes: storage.len(),
        storage_nodes_ok,
        partitions: total,
        partitions_quorum: quorum,
        partitions_all_ok: all_ok,
    }
}

/// `GET /health`, `GET /check`: 200 when healthy or degraded, else 503.
pub fn handle_health(garage: &Garage) -> Response<ResBody> {
    let h = cluster_health(garage);
    let (status, text) = match h.status {
        HealthStatus::Healthy => (StatusCode::OK, "Garage is fully operational\n".to_string()),
        HealthStatus::Degraded => (
            StatusCode::OK,
            "Garage is operational but some storage nodes are unavailable\n".to_string(),
        ),
        HealthStatus::Unavailable if garage.system.layout().current().version == 0 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "No cluster layout applied yet\n".to_string(),
        ),
        HealthStatus::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Quorum is not available for some partitions ({} of {} have quorum)\n",
                h.partitions_quorum, h.partitions
            ),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// `GET /v1/health`.
pub fn handle_get_cluster_health(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    ok_json(&cluster_health(&ctx.garage))
}
