//! `GET|POST /v1/layout`, `POST /v1/layout/apply`, `POST /v1/layout/revert`.
//!
//! Like the CLI, each change is a read-modify-write of this node's layout
//! history followed by a CRDT merge ([`garage_rpc::system::System::merge_layout`]),
//! which persists it and pushes it to every peer. The ring is computed here,
//! once, by the node that answers `apply`.

use hyper::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use garage_rpc::layout::{LayoutHistory, NodeRole};
use garage_util::data::Uuid;

use super::ctx::{ok_json, parse_body, AdminCtx};
use super::error::AdminError;
use crate::error::ApiError;
use crate::http::ResBody;

/// A role as the API shows it (`capacity: null` = gateway).
#[derive(Debug, Clone, Serialize)]
pub struct NodeRoleResp {
    id: String,
    zone: String,
    capacity: Option<u64>,
    tags: Vec<String>,
}

impl NodeRoleResp {
    /// The role `role` of node `id`.
    pub fn new(id: &Uuid, role: &NodeRole) -> Self {
        Self {
            id: id.to_hex(),
            zone: role.zone.clone(),
            capacity: role.capacity,
            tags: role.tags.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum RoleChangeResp {
    Remove { id: String, remove: bool },
    Update(NodeRoleResp),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutResp {
    version: u64,
    roles: Vec<NodeRoleResp>,
    staged_role_changes: Vec<RoleChangeResp>,
}

fn format_layout(l: &LayoutHistory) -> LayoutResp {
    let current = l.current();
    let roles = current
        .roles
        .items()
        .iter()
        .filter_map(|(id, _, r)| r.as_ref().map(|r| NodeRoleResp::new(id, r)))
        .collect();
    let staged_role_changes = l
        .staged_role_changes()
        .into_iter()
        .map(|(id, r)| match r {
            None => RoleChangeResp::Remove {
                id: id.to_hex(),
                remove: true,
            },
            Some(r) => RoleChangeResp::Update(NodeRoleResp::new(&id, &r)),
        })
        .collect();
    LayoutResp {
        version: current.version,
        roles,
        staged_role_changes,
    }
}

async fn push(ctx: &AdminCtx, l: &LayoutHistory) -> Result<(), AdminError> {
    ctx.garage
        .system
        .merge_layout(l)
        .await
        .map(|_| ())
        .map_err(|e| AdminError::Api(ApiError::Internal(format!("cannot store the layout: {e}"))))
}

/// `GET /v1/layout`.
pub fn handle_get_cluster_layout(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    ok_json(&format_layout(&ctx.garage.system.layout()))
}

fn bad(i: usize, msg: &str) -> AdminError {
    AdminError::BadRequest(format!("layout change #{i}: {msg}"))
}

/// One entry of `POST /v1/layout`: `{id, remove: true}` or
/// `{id, zone, capacity, tags}`, every field present (`capacity: null`
/// for a gateway). The id is the full 64-hex node id, so a node that has
/// not connected yet can be given a role.
fn parse_change(i: usize, v: &Value) -> Result<(Uuid, Option<NodeRole>), AdminError> {
    let o = v.as_object().ok_or_else(|| bad(i, "expected an object"))?;
    let id = o
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(i, "missing string field `id`"))?;
    let id = Some(id)
        .filter(|s| s.len() == 64)
        .and_then(Uuid::from_hex)
        .ok_or_else(|| bad(i, &format!("`{id}` is not a full node id (64 hex digits)")))?;
    if let Some(r) = o.get("remove") {
        return match r {
            Value::Bool(true) => Ok((id, None)),
            _ => Err(bad(i, "`remove` must be true (omit it to assign a role)")),
        };
    }
    let zone = o
        .get("zone")
        .and_then(Value::as_str)
        .filter(|z| !z.is_empty())
        .ok_or_else(|| bad(i, "missing non-empty string field `zone`"))?;
    let capacity = match o.get("capacity") {
        Some(Value::Null) => None,
        Some(c) => Some(c.as_u64().ok_or_else(|| {
            bad(
                i,
                "`capacity` must be a number of bytes, or null for a gateway",
            )
        })?),
        None => {
            return Err(bad(
                i,
                "missing field `capacity` (a number of bytes, or null for a gateway)",
            ))
        }
    };
    let tags = o
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(i, "missing array field `tags`"))?
        .iter()
        .map(|t| t.as_str().map(String::from))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| bad(i, "`tags` must be an array of strings"))?;
    Ok((
        id,
        Some(NodeRole {
            zone: zone.to_string(),
            capacity,
            tags,
        }),
    ))
}

/// `POST /v1/layout`: stages every change, or none if one is invalid.
pub async fn handle_update_cluster_layout(
    ctx: &AdminCtx,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let changes: Vec<Value> = parse_body(body)?;
    let parsed = changes
        .iter()
        .enumerate()
        .map(|(i, v)| parse_change(i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut l = (*ctx.garage.system.layout()).clone();
    for (i, (id, role)) in parsed.iter().enumerate() {
        match role {
            Some(r) => l
                .stage_assign(*id, r.clone())
                .map_err(|e| bad(i, &e.to_string()))?,
            None => {
                let staged = l.staging.get().roles.get(id).cloned();
                let effective = staged.unwrap_or_else(|| l.current().node_role(id).cloned());
                if effective.is_none() {
                    return Err(bad(
                        i,
                        &format!("node {} has no role to remove", id.to_hex()),
                    ));
                }
                l.stage_remove(*id);
            }
        }
    }
    if !parsed.is_empty() {
        push(ctx, &l).await?;
        tracing::info!(changes = parsed.len(), "admin API staged layout changes");
    }
    ok_json(&format_layout(&ctx.garage.system.layout()))
}

#[derive(Deserialize)]
struct ApplyReq {
    version: u64,
}

#[derive(Serialize)]
struct ApplyResp {
    message: Vec<String>,
    layout: LayoutResp,
}

/// `POST /v1/layout/apply` with `{version}` (must be current + 1).
pub async fn handle_apply_cluster_layout(
    ctx: &AdminCtx,
    body: &[u8],
) -> Result<Response<ResBody>, AdminError> {
    let req: ApplyReq = parse_body(body)?;
    let l = ctx.garage.system.layout();
    let (new, message) = l.apply_staged_changes(Some(req.version))?;
    push(ctx, &new).await?;
    tracing::info!(version = req.version, "admin API applied a layout");
    ok_json(&ApplyResp {
        message,
        layout: format_layout(&ctx.garage.system.layout()),
    })
}

/// `POST /v1/layout/revert`: drops every staged change (the body is
/// ignored, as in Garage 1.2; the version does not change).
pub async fn handle_revert_cluster_layout(ctx: &AdminCtx) -> Result<Response<ResBody>, AdminError> {
    let mut l = (*ctx.garage.system.layout()).clone();
    l.revert_staged_changes();
    push(ctx, &l).await?;
    tracing::info!("admin API reverted staged layout changes");
    ok_json(&format_layout(&ctx.garage.system.layout()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes() {
        let id = "ab".repeat(32);
        let (u, r) = parse_change(0, &json!({"id": id, "remove": true})).expect("remove");
        assert_eq!((u.to_hex(), r), (id.clone(), None));
        let (_, r) = parse_change(
            0,
            &json!({"id": id.to_uppercase(), "zone": "dc1", "capacity": null, "tags": []}),
        )
        .expect("gateway");
        assert_eq!(r.expect("role").capacity, None);
        let (_, r) = parse_change(
            0,
            &json!({"id": id, "zone": "dc1", "capacity": 1000, "tags": ["a"]}),
        )
        .expect("storage");
        assert_eq!(r.expect("role").tags, vec!["a".to_string()]);
        for bad in [
            json!({"id": "abcd", "remove": true}),
            json!({"id": id, "remove": false}),
            json!({"id": id, "zone": "dc1", "tags": []}),
            json!({"id": id, "zone": "dc1", "capacity": -1, "tags": []}),
            json!({"id": id, "zone": "dc1", "capacity": "1G", "tags": []}),
            json!({"id": id, "zone": "dc1", "capacity": 1, "tags": [1]}),
            json!({"id": id, "zone": "", "capacity": 1, "tags": []}),
            json!({"zone": "dc1", "capacity": 1, "tags": []}),
            json!(["not", "an", "object"]),
        ] {
            assert!(parse_change(0, &bad).is_err(), "{bad}");
        }
    }
}
