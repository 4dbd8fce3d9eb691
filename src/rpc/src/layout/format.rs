//! Text output of `garage layout show`, `apply` and `history` (spec §2.6, §4.2).
//!
//! Every function returns the lines to print, without trailing newlines.
//! Labels and padding are those of Garage's CLI: scripts parse them.
//! Tables are tab-separated rows padded by [`format_table`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use garage_util::config::format_size;
use garage_util::data::Uuid;

use super::assign::AssignmentStats;
use super::error::LayoutError;
use super::schema::{LayoutHistory, LayoutVersion, NodeRole, ZoneRedundancy};
use super::NB_PARTITIONS;

impl fmt::Display for ZoneRedundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneRedundancy::Maximum => write!(f, "maximum"),
            ZoneRedundancy::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for ZoneRedundancy {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_zone_redundancy(s)
    }
}

/// Parses a `garage layout config -r` value: `none`, `max` and `maximum`
/// mean [`ZoneRedundancy::Maximum`], an integer N means `AtLeast(N)` (its
/// range is checked when staged).
pub fn parse_zone_redundancy(s: &str) -> Result<ZoneRedundancy, LayoutError> {
    match s.trim() {
        "none" | "max" | "maximum" => Ok(ZoneRedundancy::Maximum),
        t => t
            .parse::<usize>()
            .map(ZoneRedundancy::AtLeast)
            .map_err(|_| LayoutError::UnparsableZoneRedundancy { value: s.into() }),
    }
}

impl NodeRole {
    /// The capacity as printed by the CLI (`gateway` for gateways).
    pub fn capacity_string(&self) -> String {
        match self.capacity {
            Some(c) => format_size(c),
            None => "gateway".into(),
        }
    }

    /// The tags joined by commas.
    pub fn tags_string(&self) -> String {
        self.tags.join(",")
    }
}

/// A node id as shown in tables: its first 8 bytes in hex.
pub fn short_id(id: &Uuid) -> String {
    hex::encode(&id.as_slice()[..8])
}

/// Pads tab-separated rows into aligned columns: every column but the last
/// of each row is padded to the widest cell of that column plus two spaces.
pub fn format_table(rows: Vec<String>) -> Vec<String> {
    let cells: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\t').collect()).collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; columns];
    for row in cells.iter() {
        for (i, c) in row.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    cells
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (i, c) in row.iter().enumerate() {
                line.push_str(c);
                if i + 1 < row.len() {
                    let pad = width[i] - c.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect()
}

fn pct(part: u64, total: u64) -> f32 {
    // f32 like Garage, so the rounding of `{:.1}` matches.
    100.0 * (part as f32) / (total as f32)
}

/// The message of a partition assignment computation (the lines `garage
/// layout apply` prints). `old_partition_size` is `Some` when there was a
/// previous ring.
pub(crate) fn assignment_message(
    v: &LayoutVersion,
    zone_redundancy: usize,
    stats: &AssignmentStats,
    old_partition_size: Option<u64>,
) -> Vec<String> {
    let rf = v.replication_factor;
    let size = v.partition_size;
    let mut msg = vec![
        "==== COMPUTATION OF A NEW PARTITION ASSIGNATION ====".to_string(),
        String::new(),
        format!(
            "Partitions are replicated {rf} times on at least {zone_redundancy} distinct zones."
        ),
        String::new(),
    ];
    match old_partition_size {
        Some(old) => msg.push(format!(
            "Optimal partition size:                     {} ({} in previous layout)",
            format_size(size),
            format_size(old)
        )),
        None => msg.push(format!(
            "Optimal partition size:                     {}",
            format_size(size)
        )),
    }
    if size < 100 {
        msg.push(
            "WARNING: The partition size is low (< 100), make sure the capacities of your \
             nodes are correct and are of at least a few MB"
                .into(),
        );
    }
    let used = size.saturating_mul((NB_PARTITIONS * rf) as u64);
    let total = stats
        .node_capacity
        .iter()
        .fold(0u64, |a, &c| a.saturating_add(c));
    let percent = pct(used, total);
    msg.push(format!(
        "Usable capacity / total cluster capacity:   {} / {} ({:.1} %)",
        format_size(used),
        format_size(total),
        percent
    ));
    msg.push(format!(
        "Effective capacity (replication factor {rf}):  {}",
        format_size(used / rf as u64)
    ));
    if percent < 80.0 {
        msg.push(String::new());
        msg.push(
            "If the percentage is too low, it might be that the cluster topology and redundancy \
             constraints are forcing the use of nodes/zones with small storage capacities."
                .into(),
        );
        msg.push(
            "You might want to move storage capacity between zones or relax the redundancy \
             constraint."
                .into(),
        );
        msg.push("See the detailed statistics below and look for saturated nodes/zones.".into());
    }
    msg.push(String::new());
    if let Some(moved) = stats.moved_copies {
        msg.push(format!(
            "A total of {moved} new copies of partitions need to be transferred."
        ));
        msg.push(String::new());
    }

    let mut table = vec![];
    for (z, zone) in stats.zones.iter().enumerate() {
        table.push(format!(
            "{zone}\tTags\tPartitions\tCapacity\tUsable capacity"
        ));
        let nodes: Vec<usize> = (0..stats.node_zone.len())
            .filter(|&n| stats.node_zone[n] == z)
            .collect();
        let mut zone_cap = 0u64;
        let mut zone_copies = 0usize;
        for &n in nodes.iter() {
            let id = v.node_id_vec[n];
            let cap = stats.node_capacity[n];
            let count = stats.partitions_per_node[n];
            let usable = count as u64 * size;
            zone_cap = zone_cap.saturating_add(cap);
            zone_copies += count;
            let tags = v
                .node_role(&id)
                .map(NodeRole::tags_string)
                .unwrap_or_default();
            table.push(format!(
                "  {}\t{}\t{} ({} new)\t{}\t{} ({:.1}%)",
                short_id(&id),
                tags,
                count,
                stats.new_partitions_per_node[n],
                format_size(cap),
                format_size(usable),
                (usable as f32) / (cap as f32) * 100.0
            ));
        }
        let zone_usable = zone_copies as u64 * size;
        table.push(format!(
            "  TOTAL\t\t{} ({} unique)\t{}\t{} ({:.1}%)",
            zone_copies,
            stats.partitions_per_zone[z],
            format_size(zone_cap),
            format_size(zone_usable),
            pct(zone_usable, zone_cap)
        ));
        table.push(String::new());
    }
    msg.extend(format_table(table));
    msg
}

/// The roles table of one version (`ID Tags Zone Capacity Usable capacity`),
/// followed by its zone redundancy; `empty_msg` when no node has a role.
fn cluster_layout_lines(v: &LayoutVersion, empty_msg: &str) -> Vec<String> {
    let mut table = vec!["ID\tTags\tZone\tCapacity\tUsable capacity".to_string()];
    for (id, role) in v.roles_list() {
        match role.capacity {
            Some(cap) => {
                let usable = v.node_usage(&id) as u64 * v.partition_size;
                table.push(format!(
                    "{}\t{}\t{}\t{}\t{} ({:.1}%)",
                    short_id(&id),
                    role.tags_string(),
                    role.zone,
                    role.capacity_string(),
                    format_size(usable),
                    pct(usable, cap)
                ));
            }
            None => table.push(format!(
                "{}\t{}\t{}\t{}",
                short_id(&id),
                role.tags_string(),
                role.zone,
                role.capacity_string()
            )),
        }
    }
    if table.len() == 1 {
        return empty_msg.lines().map(String::from).collect();
    }
    let mut out = format_table(table);
    out.push(String::new());
    out.push(format!("Zone redundancy: {}", v.parameters.zone_redundancy));
    out
}

/// What `garage layout show` prints: the current layout, the staged changes
/// and, if any, the simulated new layout with the command that applies it.
pub fn format_layout_show(history: &LayoutHistory) -> Vec<String> {
    let current = history.current();
    let mut out = vec!["==== CURRENT CLUSTER LAYOUT ====".to_string()];
    out.extend(cluster_layout_lines(
        current,
        "No nodes currently have a role in the cluster.\n\
         See `garage status` to view available nodes.",
    ));
    out.push(String::new());
    out.push(format!(
        "Current cluster layout version: {}",
        current.version
    ));

    let role_changes = history.staged_role_changes();
    let params_changed = history.staged_parameters_changed();
    if role_changes.is_empty() && !params_changed {
        return out;
    }
    out.push(String::new());
    out.push("==== STAGED ROLE CHANGES ====".into());
    if !role_changes.is_empty() {
        let mut table = vec!["ID\tTags\tZone\tCapacity".to_string()];
        for (id, role) in role_changes.iter() {
            match role {
                Some(r) => table.push(format!(
                    "{}\t{}\t{}\t{}",
                    short_id(id),
                    r.tags_string(),
                    r.zone,
                    r.capacity_string()
                )),
                None => table.push(format!("{}\tREMOVED", short_id(id))),
            }
        }
        out.extend(format_table(table));
        out.push(String::new());
    }
    if params_changed {
        out.push(format!(
            "Zone redundancy: {}",
            history.staging.get().parameters.get().zone_redundancy
        ));
    }

    let next = current.version + 1;
    match history.apply_staged_changes(Some(next)) {
        Ok((new_history, msg)) => {
            out.push(String::new());
            out.push("==== NEW CLUSTER LAYOUT AFTER APPLYING CHANGES ====".into());
            out.extend(cluster_layout_lines(
                new_history.current(),
                "No nodes have a role in the new layout.",
            ));
            out.push(String::new());
            out.extend(msg);
            out.push("To revert all proposed changes, type: garage layout revert --yes".into());
            out.push("To enact the staged role changes, type:".into());
            out.push(String::new());
            out.push(format!("    garage layout apply --version {next}"));
        }
        Err(e) => {
            out.push(format!("Error while trying to compute the assignment: {e}"));
            out.push("This new layout cannot yet be applied.".into());
            out.push(
                "You can also revert all proposed changes with: garage layout revert --yes".into(),
            );
        }
    }
    out
}

/// The progress line of a running transition (None when a single layout
/// version is live), as `garage status` and `garage layout history` show it.
pub fn format_transition(history: &LayoutHistory, write_quorum: usize) -> Option<String> {
    let (done, total) = history.transition_progress(write_quorum)?;
    let acked = history.ack_map_min();
    let current = history.current().version;
    let stage = if acked < current {
        format!("waiting for every node to acknowledge version {current} (lowest ack: #{acked})")
    } else if done < total {
        "copying data to the new owners".to_string()
    } else {
        "data copied, waiting for every node to see it before retiring old versions".to_string()
    };
    Some(format!(
        "Transition to layout version {current}: {done} of {total} partitions synced; {stage}."
    ))
}

/// The trackers as a sorted list (for display).
fn tracker_rows(h: &LayoutHistory) -> Vec<(Uuid, u64, u64, u64)> {
    let min = h.min_stored();
    let t = &h.update_trackers;
    let mut rows: BTreeMap<Uuid, (u64, u64, u64)> = BTreeMap::new();
    for n in h.all_nodes() {
        rows.insert(
            n,
            (
                t.ack_map.get(&n, min),
                t.sync_map.get(&n, min),
                t.sync_ack_map.get(&n, min),
            ),
        );
    }
    rows.into_iter()
        .map(|(n, (a, s, sa))| (n, a, s, sa))
        .collect()
}

/// What `garage layout history` prints: every stored version with its status
/// and, while several versions are live, the update trackers.
pub fn format_layout_history(history: &LayoutHistory, write_quorum: usize) -> Vec<String> {
    let min_stored = history.min_stored();
    let current = history.current().version;
    let mut out = vec!["==== LAYOUT HISTORY ====".to_string()];
    let mut table = vec!["Version\tStatus\tStorage nodes\tGateway nodes".to_string()];
    for v in history
        .versions
        .iter()
        .rev()
        .chain(history.old_versions.iter().rev())
    {
        let status = if v.version == current {
            "current"
        } else if v.version >= min_stored {
            "draining"
        } else {
            "historical"
        };
        let roles = v.roles_list();
        let storage = roles.iter().filter(|(_, r)| r.capacity.is_some()).count();
        table.push(format!(
            "#{}\t{}\t{}\t{}",
            v.version,
            status,
            storage,
            roles.len() - storage
        ));
    }
    out.extend(format_table(table));
    out.push(String::new());

    if history.versions.len() > 1 {
        out.push("==== UPDATE TRACKERS ====".into());
        out.push(
            "Several layout versions are currently live in the cluster, and data is being migrated."
                .into(),
        );
        out.push(
            "This is the internal data that the cluster stores to know which nodes have what data."
                .into(),
        );
        out.push(String::new());
        let mut table = vec!["Node\tAck\tSync\tSync_ack".to_string()];
        for (id, ack, sync, sync_ack) in tracker_rows(history) {
            table.push(format!("{}\t#{ack}\t#{sync}\t#{sync_ack}", short_id(&id)));
        }
        out.extend(format_table(table));
        out.push(String::new());
        if let Some(line) = format_transition(history, write_quorum) {
            out.push(line);
            out.push(String::new());
        }
        out.push(
            "If some nodes are not catching up to the latest layout version in the update trackers,"
                .into(),
        );
        out.push(
            "it might be because they are offline or unable to complete a sync successfully."
                .into(),
        );
        if history.ack_map_min() < current {
            out.push(format!(
                "You may force progress using `garage layout skip-dead-nodes --version {current}`"
            ));
        } else {
            out.push(format!(
                "You may force progress using `garage layout skip-dead-nodes --version {current} --allow-missing-data`."
            ));
        }
    } else {
        out.push(
            "Your cluster is currently in a stable state with a single live layout version.".into(),
        );
        out.push("No metadata migration is in progress.".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_padding() {
        let t = format_table(vec![
            "ID\tZone\tCapacity".into(),
            "abc\tdc1\t1.0 GB".into(),
            "a\tREMOVED".into(),
            String::new(),
        ]);
        assert_eq!(
            t,
            vec![
                "ID   Zone     Capacity".to_string(),
                "abc  dc1      1.0 GB".to_string(),
                "a    REMOVED".to_string(),
                String::new(),
            ]
        );
    }

    #[test]
    fn zone_redundancy_text() {
        for s in ["none", "max", "maximum"] {
            assert_eq!(parse_zone_redundancy(s).unwrap(), ZoneRedundancy::Maximum);
        }
        assert_eq!(
            parse_zone_redundancy("2").unwrap(),
            ZoneRedundancy::AtLeast(2)
        );
        assert!(matches!(
            "two".parse::<ZoneRedundancy>(),
            Err(LayoutError::UnparsableZoneRedundancy { .. })
        ));
        assert_eq!(ZoneRedundancy::Maximum.to_string(), "maximum");
        assert_eq!(ZoneRedundancy::AtLeast(3).to_string(), "3");
    }
}
