//! The operator verbs that talk to a running node over RPC: `status`,
//! `node`, `layout`, `key`, `bucket`. Layout commands are read-modify-write:
//! the CLI pulls the layout history, edits it and pushes it back, where it
//! is merged as a CRDT.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use garage_rpc::layout::{
    format_layout_history, format_layout_show, format_transition, parse_zone_redundancy, short_id,
    LayoutHistory, NodeRole,
};
use garage_rpc::mesh::MeshTransport;
use garage_rpc::system::{parse_peer, KnownNode, SystemRpc};
use garage_rpc::{Endpoint, Transport};
use garage_util::config::{format_size, parse_size, Config};
use garage_util::data::Uuid;

use crate::admin::{AdminRpc, ADMIN_PATH};
use crate::cli::{Cli, Command, LayoutCmd, NodeCmd};
use crate::config_load;
use crate::fmt::format_table;

const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one node.
struct Remote {
    transport: Arc<MeshTransport>,
    node: Uuid,
}

impl Remote {
    async fn system(&self, msg: SystemRpc) -> Result<SystemRpc> {
        let ep: Endpoint<SystemRpc> = Endpoint::new(self.transport.clone(), "system");
        ep.call(self.node, &msg, CLI_TIMEOUT)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    async fn admin(&self, msg: AdminRpc) -> Result<String> {
        let ep: Endpoint<AdminRpc> = Endpoint::new(self.transport.clone(), ADMIN_PATH);
        ep.call(self.node, &msg, CLI_TIMEOUT)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    async fn layout(&self) -> Result<LayoutHistory> {
        match self.system(SystemRpc::PullLayout).await? {
            SystemRpc::AdvertiseLayout(l) => Ok(l),
            _ => bail!("unexpected answer from the node"),
        }
    }

    async fn push_layout(&self, l: LayoutHistory) -> Result<()> {
        match self.system(SystemRpc::AdvertiseLayout(l)).await? {
            SystemRpc::Ok => Ok(()),
            _ => bail!("unexpected answer from the node"),
        }
    }

    async fn known_nodes(&self) -> Result<Vec<KnownNode>> {
        match self.system(SystemRpc::GetKnownNodes).await? {
            SystemRpc::KnownNodes(n) => Ok(n),
            _ => bail!("unexpected answer from the node"),
        }
    }
}

fn load_config_opt(cli: &Cli) -> Result<Option<Config>> {
    let path = config_load::config_path(cli, Path::new(config_load::DEFAULT_CONFIG));
    match config_load::load(cli, &path) {
        Ok(c) => Ok(Some(c)),
        // With -h and -s, a config file is not needed.
        Err(_) if cli.rpc_host.is_some() && cli.config.is_none() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn connect(cli: &Cli, cfg: Option<&Config>) -> Result<Remote> {
    let secret = config_load::secret(cli, cfg)?;
    let (node, addr) = match &cli.rpc_host {
        Some(h) => parse_peer(h).map_err(|e| anyhow!("invalid --rpc-host: {e}"))?,
        None => {
            let cfg = cfg.ok_or_else(|| anyhow!("no config file and no --rpc-host"))?;
            let key = garage_rpc::node_key::read(&cfg.metadata_dir)?;
            let addr = match &cfg.rpc_public_addr {
                Some(a) => {
                    use std::net::ToSocketAddrs;
                    a.to_socket_addrs()
                        .with_context(|| format!("invalid rpc_public_addr `{a}`"))?
                        .next()
                        .ok_or_else(|| anyhow!("invalid rpc_public_addr `{a}`"))?
                }
                None => std::net::SocketAddr::from(([127, 0, 0, 1], cfg.rpc_bind_addr.port())),
            };
            (key.id(), addr)
        }
    };
    let transport = MeshTransport::new_client(&secret);
    tokio::time::timeout(Duration::from_secs(10), transport.connect(node, addr))
        .await
        .map_err(|_| anyhow!("timed out connecting to {addr}"))?
        .map_err(|e| {
            anyhow!(
                "cannot reach the node at {addr}: {e}\n(is `garage server` running there, and is the RPC secret the same?)"
            )
        })?;
    Ok(Remote { transport, node })
}

/// Runs a CLI verb.
pub async fn run(cli: Cli) -> Result<()> {
    if let Command::Node(NodeCmd::Id { quiet }) = &cli.cmd {
        return node_id(&cli, *quiet);
    }
    let cfg = load_config_opt(&cli)?;
    let remote = connect(&cli, cfg.as_ref()).await?;
    match &cli.cmd {
        Command::Server(_) | Command::Node(NodeCmd::Id { .. }) => unreachable_cmd(),
        Command::Status => status(&remote).await,
        Command::Node(NodeCmd::Connect { node }) => {
            match remote.system(SystemRpc::Connect(node.clone())).await? {
                SystemRpc::Ok => {
                    println!("Success.");
                    Ok(())
                }
                _ => bail!("unexpected answer from the node"),
            }
        }
        Command::Layout(l) => layout(&remote, l).await,
        Command::Key(k) => {
            println!("{}", remote.admin(AdminRpc::Key(k.clone())).await?);
            Ok(())
        }
        Command::Bucket(b) => {
            println!("{}", remote.admin(AdminRpc::Bucket(b.clone())).await?);
            Ok(())
        }
        Command::Worker(w) => {
            print!("{}", remote.admin(AdminRpc::Worker(w.clone())).await?);
            Ok(())
        }
        Command::Repair(r) => {
            if !r.yes {
                bail!("garage repair needs --yes to run");
            }
            println!("{}", remote.admin(AdminRpc::Repair(r.what.clone())).await?);
            Ok(())
        }
        Command::Block(b) => {
            print!("{}", remote.admin(AdminRpc::Block(b.clone())).await?);
            Ok(())
        }
        Command::Debug(d) => {
            print!("{}", remote.admin(AdminRpc::Debug(d.clone())).await?);
            Ok(())
        }
    }
}

fn unreachable_cmd() -> Result<()> {
    bail!("this command is handled elsewhere")
}

fn node_id(cli: &Cli, quiet: bool) -> Result<()> {
    let path = config_load::config_path(cli, Path::new(config_load::DEFAULT_CONFIG));
    let cfg = config_load::load(cli, &path)?;
    let key = garage_rpc::node_key::read(&cfg.metadata_dir)?;
    let id = key.id().to_hex();
    let line = match &cfg.rpc_public_addr {
        Some(a) => format!("{id}@{a}"),
        None => id.clone(),
    };
    println!("{line}");
    if !quiet {
        eprintln!();
        eprintln!("To connect another node to this one, run on the other node:");
        eprintln!("    garage node connect {line}");
        if cfg.rpc_public_addr.is_none() {
            eprintln!("(set rpc_public_addr in the config to print the address too)");
        }
    }
    Ok(())
}

async fn status(remote: &Remote) -> Result<()> {
    let layout = remote.layout().await?;
    let nodes = remote.known_nodes().await?;
    let current = layout.current();
    let staged: BTreeSet<Uuid> = layout
        .staged_role_changes()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let mut rows = vec!["ID\tHostname\tAddress\tTags\tZone\tCapacity\tDataAvail".to_string()];
    for n in nodes.iter().filter(|n| n.is_up) {
        let host = n
            .status
            .as_ref()
            .map(|s| s.hostname.clone())
            .unwrap_or_else(|| "?".into());
        let addr = n.addr.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        match current.node_role(&n.id) {
            Some(role) => {
                let avail = match (role.capacity, n.status.as_ref().and_then(|s| s.meta_disk)) {
                    (None, _) => "N/A".to_string(),
                    (Some(_), Some((avail, total))) if total > 0 => format!(
                        "{} ({:.1}%)",
                        format_size(avail),
                        avail as f64 * 100.0 / total as f64
                    ),
                    (Some(_), _) => "?".to_string(),
                };
                rows.push(format!(
                    "{}\t{}\t{}\t[{}]\t{}\t{}\t{}",
                    short_id(&n.id),
                    host,
                    addr,
                    role.tags_string(),
                    role.zone,
                    role.capacity_string(),
                    avail
                ));
            }
            None => {
                let what = if staged.contains(&n.id) {
                    "pending..."
                } else if layout.all_nodes().contains(&n.id) {
                    "draining metadata..."
                } else {
                    "NO ROLE ASSIGNED"
                };
                rows.push(format!(
                    "{}\t{}\t{}\t\t\t{}",
                    short_id(&n.id),
                    host,
                    addr,
                    what
                ));
            }
        }
    }
    println!("==== HEALTHY NODES ====");
    print!("{}", format_table(&rows));

    let up: BTreeSet<Uuid> = nodes.iter().filter(|n| n.is_up).map(|n| n.id).collect();
    let failed: Vec<&Uuid> = current
        .all_nodes()
        .iter()
        .filter(|id| !up.contains(id))
        .collect();
    if !failed.is_empty() {
        let mut rows = vec!["ID\tHostname\tTags\tZone\tCapacity\tLast seen".to_string()];
        for id in failed {
            let Some(role) = current.node_role(id) else {
                continue;
            };
            let known = nodes.iter().find(|n| n.id == *id);
            let host = known
                .and_then(|n| n.status.as_ref())
                .map(|s| s.hostname.clone())
                .unwrap_or_else(|| "?".into());
            let seen = match known.and_then(|n| n.last_seen_secs_ago) {
                Some(s) => format!("{s}s ago"),
                None => "never seen".into(),
            };
            rows.push(format!(
                "{}\t{}\t[{}]\t{}\t{}\t{}",
                short_id(id),
                host,
                role.tags_string(),
                role.zone,
                role.capacity_string(),
                seen
            ));
        }
        println!();
        println!("==== FAILED NODES ====");
        print!("{}", format_table(&rows));
    }
    if let Some(line) = format_transition(&layout, write_quorum(&layout)) {
        println!();
        println!("{line}");
        println!("See `garage layout history` for the update trackers.");
    }
    if layout.has_staged_changes() {
        println!();
        println!(
            "Please note that there are staged role changes; use `garage layout show` to view them."
        );
    }
    Ok(())
}

/// The write quorum of the cluster's replication factor in `consistent`
/// mode (the only mode that keeps several layout versions live).
fn write_quorum(l: &LayoutHistory) -> usize {
    garage_rpc::system::Quorums::new(l.current().replication_factor, "consistent").write
}

/// `garage layout skip-dead-nodes`: lets a transition end although some
/// nodes cannot take part in it. Raises the `ack` tracker of every node that
/// is down to `version`; with `--allow-missing-data`, raises `ack` and `sync`
/// of every node (data not copied yet is then given up for lost).
async fn skip_dead_nodes(remote: &Remote, version: u64, allow_missing_data: bool) -> Result<()> {
    let mut l = remote.layout().await?;
    let nodes = remote.known_nodes().await?;
    let current = l.current().version;
    let min_stored = l.min_stored();
    if l.versions.len() <= 1 {
        bail!("only one layout version is live (#{current}): there is no transition to force");
    }
    if version <= min_stored || version > current {
        bail!(
            "--version must be above the oldest live version (#{min_stored}) and at most the \
             current one (#{current})"
        );
    }
    let up: BTreeSet<Uuid> = nodes.iter().filter(|n| n.is_up).map(|n| n.id).collect();
    let mut changed = vec![];
    for n in l.all_nodes() {
        let t = &mut l.update_trackers;
        if !up.contains(&n) {
            if t.ack_map.set_max(n, version) {
                changed.push(format!("{}: ack raised to #{version}", short_id(&n)));
            }
            if allow_missing_data && t.sync_map.set_max(n, version) {
                changed.push(format!("{}: sync raised to #{version}", short_id(&n)));
            }
        } else if allow_missing_data {
            let a = t.ack_map.set_max(n, version);
            let s = t.sync_map.set_max(n, version);
            if a || s {
                changed.push(format!(
                    "{}: ack and sync raised to #{version}",
                    short_id(&n)
                ));
            }
        }
    }
    if changed.is_empty() {
        println!("Nothing to do: no tracker was below #{version} for the nodes concerned.");
        return Ok(());
    }
    remote.push_layout(l).await?;
    for c in changed {
        println!("{c}");
    }
    println!("The layout trackers have been updated.");
    Ok(())
}

/// Resolves a node id or unique hex prefix among known and layout nodes; a
/// full 64-hex id is accepted for a node that never connected.
fn find_node(layout: &LayoutHistory, nodes: &[KnownNode], pattern: &str) -> Result<Uuid> {
    let pat = pattern.trim().to_ascii_lowercase();
    if pat.is_empty() {
        bail!("empty node id");
    }
    let mut candidates: BTreeSet<Uuid> = nodes.iter().map(|n| n.id).collect();
    candidates.extend(layout.current().all_nodes().iter().copied());
    candidates.extend(layout.staged_role_changes().iter().map(|(id, _)| *id));
    let matches: Vec<Uuid> = candidates
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&pat))
        .collect();
    match matches.len() {
        1 => Ok(matches[0]),
        0 => match Uuid::from_hex(&pat) {
            Some(id) => Ok(id),
            None => bail!(
                "no node matches `{pattern}` (give a unique prefix of a known node id, or the full 64-hex id of a node that has not connected yet)"
            ),
        },
        _ => bail!(
            "`{pattern}` matches several nodes: {}",
            matches
                .iter()
                .map(short_id)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The role a node will have once staged changes apply.
fn effective_role(layout: &LayoutHistory, id: &Uuid) -> Option<NodeRole> {
    if let Some((_, r)) = layout
        .staged_role_changes()
        .into_iter()
        .find(|(n, _)| n == id)
    {
        return r;
    }
    layout.current().node_role(id).cloned()
}

async fn layout(remote: &Remote, cmd: &LayoutCmd) -> Result<()> {
    match cmd {
        LayoutCmd::Show => {
            let l = remote.layout().await?;
            for line in format_layout_show(&l) {
                println!("{line}");
            }
            Ok(())
        }
        LayoutCmd::History => {
            let l = remote.layout().await?;
            for line in format_layout_history(&l, write_quorum(&l)) {
                println!("{line}");
            }
            Ok(())
        }
        LayoutCmd::Assign {
            node_ids,
            zone,
            capacity,
            gateway,
            tags,
            replace,
        } => {
            let mut l = remote.layout().await?;
            let nodes = remote.known_nodes().await?;
            let capacity = match capacity {
                Some(c) => {
                    let v = parse_size(c).map_err(|e| anyhow!("invalid capacity: {e}"))?;
                    if v == 0 {
                        bail!("invalid capacity `{c}`: it must be positive (use -g for a gateway)");
                    }
                    Some(v)
                }
                None => None,
            };
            let mut targets = vec![];
            for p in node_ids {
                targets.push(find_node(&l, &nodes, p)?);
            }
            let mut removals = vec![];
            for p in replace {
                removals.push(find_node(&l, &nodes, p)?);
            }
            for id in targets.iter() {
                let old = effective_role(&l, id);
                let zone = match (zone, &old) {
                    (Some(z), _) => z.clone(),
                    (None, Some(o)) => o.zone.clone(),
                    (None, None) => bail!(
                        "please specify a zone with -z for the new node {}",
                        short_id(id)
                    ),
                };
                let cap = match (capacity, gateway, &old) {
                    (Some(c), _, _) => Some(c),
                    (None, true, _) => None,
                    (None, false, Some(o)) => o.capacity,
                    (None, false, None) => bail!(
                        "please specify a capacity with -c, or -g for a gateway, for the new node {}",
                        short_id(id)
                    ),
                };
                let tags = if tags.is_empty() {
                    old.map(|o| o.tags).unwrap_or_default()
                } else {
                    tags.clone()
                };
                l.stage_assign(
                    *id,
                    NodeRole {
                        zone,
                        capacity: cap,
                        tags,
                    },
                )
                .map_err(|e| anyhow!("{e}"))?;
            }
            for id in removals {
                l.stage_remove(id);
            }
            remote.push_layout(l).await?;
            println!("Role changes are staged but not yet committed.");
            println!("Use `garage layout show` to view staged role changes,");
            println!("and `garage layout apply` to enact staged changes.");
            Ok(())
        }
        LayoutCmd::Remove { node_id } => {
            let mut l = remote.layout().await?;
            let nodes = remote.known_nodes().await?;
            let id = find_node(&l, &nodes, node_id)?;
            if effective_role(&l, &id).is_none() {
                bail!("node {} has no role to remove", short_id(&id));
            }
            l.stage_remove(id);
            remote.push_layout(l).await?;
            println!("Role removal is staged but not yet committed.");
            println!("Use `garage layout show` to view staged role changes,");
            println!("and `garage layout apply` to enact staged changes.");
            Ok(())
        }
        LayoutCmd::Config { redundancy } => {
            let Some(r) = redundancy else {
                bail!("nothing to change: give -r <none|max|maximum|N>");
            };
            let mut l = remote.layout().await?;
            let zr = parse_zone_redundancy(r).map_err(|e| anyhow!("{e}"))?;
            l.stage_zone_redundancy(zr).map_err(|e| anyhow!("{e}"))?;
            remote.push_layout(l).await?;
            println!("The zone redundancy parameter has been set to '{r}'.");
            Ok(())
        }
        LayoutCmd::Apply { version } => {
            let l = remote.layout().await?;
            let (new, msg) = l
                .apply_staged_changes(*version)
                .map_err(|e| anyhow!("{e}"))?;
            let v = new.current().version;
            remote.push_layout(new).await?;
            for line in msg {
                println!("{line}");
            }
            println!(
                "New cluster layout with updated role assignment has been applied in cluster."
            );
            println!("Data will now be moved around between nodes accordingly.");
            let _ = v;
            Ok(())
        }
        LayoutCmd::Revert { yes } => {
            if !yes {
                bail!("Please add the --yes flag to run the layout revert operation");
            }
            let mut l = remote.layout().await?;
            l.revert_staged_changes();
            remote.push_layout(l).await?;
            println!("All proposed role changes in cluster layout have been canceled.");
            Ok(())
        }
        LayoutCmd::SkipDeadNodes {
            version,
            allow_missing_data,
        } => skip_dead_nodes(remote, *version, *allow_missing_data).await,
    }
}
