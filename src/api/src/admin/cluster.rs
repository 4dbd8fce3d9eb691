//! `GET /v1/status` and `POST /v1/connect`.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Response;
use serde::Serialize;

use garage_util::data::Uuid;

use super::ctx::{ok_json, parse_body, AdminCtx};
use super::error::AdminError;
use super::layout::NodeRoleResp;
use crate::http::ResBody;

/// How long one `connect` may take before it is reported as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusResp {
    node: String,
    garage_version: String,
    garage_features: Vec<String>,
    rust_version: String,
    db_engine: String,
    layout_version: u64,
    nodes: Vec<NodeResp>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct NodeResp {
    id: String,
    role: Option<NodeRoleResp>,
    addr: Option<String>,
    hostname: Option<String>,
    is_up: bool,
    last_seen_secs_ago: Option<u64>,
    draining: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_partition: Option<FreeSpace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_partition: Option<FreeSpace>,
}

#[derive(Serialize)]
struct FreeSpace {
    available: u64,
    total: u64,
}

/// `GET /v1/status`: this node, its build, and every node it knows of or
/// that has a role in an active layout version (sorted by id). A node with
/// a role only in an older active version is `draining`. A K2V node keeps
/// no object data, so only `metadataPartition` is reported.
pub fn handle_get_cluster_status(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    let g = &ctx.garage;
    let layout = g.system.layout();
    let mut nodes: BTreeMap<Uuid, NodeResp> = BTreeMap::new();
    for n in g.system.known_nodes() {
        nodes.insert(
            n.id,
            NodeResp {
                id: n.id.to_hex(),
                addr: n
                    .addr
                    .or_else(|| n.status.as_ref().and_then(|s| s.rpc_public_addr))
                    .map(|a| a.to_string()),
                hostname: n.status.as_ref().map(|s| s.hostname.clone()),
                is_up: n.is_up,
                last_seen_secs_ago: n.last_seen_secs_ago,
                metadata_partition: n
                    .status
                    .as_ref()
                    .and_then(|s| s.meta_disk)
                    .map(|(available, total)| FreeSpace { available, total }),
                ..Default::default()
            },
        );
    }
    let current = layout.current();
    for id in current.all_nodes() {
        let Some(role) = current.node_role(id) else {
            continue;
        };
        let n = nodes.entry(*id).or_insert_with(|| NodeResp {
            id: id.to_hex(),
            ..Default::default()
        });
        n.role = Some(NodeRoleResp::new(id, role));
    }
    for v in layout.versions.iter().rev().skip(1) {
        for id in v.storage_nodes() {
            let n = nodes.entry(*id).or_insert_with(|| NodeResp {
                id: id.to_hex(),
                ..Default::default()
            });
            if n.role.is_none() {
                n.draining = true;
            }
        }
    }
    ok_json(&StatusResp {
        node: g.system.id.to_hex(),
        garage_version: ctx.build.version.clone(),
        garage_features: ctx.build.features.clone(),
        rust_version: ctx.build.rust_version.clone(),
        db_engine: g.db.engine().to_string(),
        layout_version: current.version,
        nodes: nodes.into_values().collect(),
    })
}

#[derive(Serialize)]
struct ConnectResp {
    success: bool,
    error: Option<String>,
}

/// `POST /v1/connect` with `["<id>@<host>:<port>", ...]`: one
/// `{success, error}` per entry, in order (200 even when some fail).
pub async fn handle_connect_cluster_nodes(
    ctx: &AdminCtx,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let peers: Vec<String> = parse_body(body)?;
    let calls = peers.iter().map(|p| async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, ctx.garage.system.connect(p)).await {
            Ok(Ok(())) => ConnectResp {
                success: true,
                error: None,
            },
            Ok(Err(e)) => ConnectResp {
                success: false,
                error: Some(e.to_string()),
            },
            Err(_) => ConnectResp {
                success: false,
                error: Some(format!("timed out connecting to {p}")),
            },
        }
    });
    let out: Vec<ConnectResp> = futures::future::join_all(calls).await;
    tracing::info!(
        peers = peers.len(),
        connected = out.iter().filter(|r| r.success).count(),
        "admin connect"
    );
    ok_json(&out)
}
