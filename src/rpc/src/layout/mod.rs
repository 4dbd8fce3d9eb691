//! The cluster layout: which node stores which partition.
//!
//! Layout:
//! - `schema`: the persisted and gossiped types
//!   (`LayoutHistory` → `LayoutVersion`s, staging area, update trackers),
//!   encoded as MessagePack behind the marker `G010lh`.
//! - `history`: staging (`stage_assign`/`stage_remove`/`stage_zone_redundancy`),
//!   `apply_staged_changes`, `revert_staged_changes`, the gossip `merge`,
//!   the transition trackers and the retirement of old versions.
//! - `version`: queries on one version (`nodes_of`, node lists, `check`).
//! - `assign` + `graph_algo`: the deterministic, optimal assignment
//!   (maximum flow for the partition size, negative-cycle cancelling to
//!   move as few partition copies as possible).
//! - `format`: the text of `garage layout show` / `apply` / `history`.
//!
//! Invariants: `versions` is never empty and ascends by one; the current
//! (last) version's ring maps each of the 256 partitions (first byte of the
//! partition hash) to `replication_factor` distinct storage nodes over at
//! least the zone redundancy's number of zones. Every change made by the CLI
//! is a read-modify-write of the whole history followed by a CRDT merge on
//! the RPC host; the ring is computed once, by the applier, and shipped.
//!
//! Transitions (spec §3): while several versions are active, writes go to
//! every version's node set ([`LayoutHistory::write_sets_of`]) and reads to
//! the version given by [`LayoutHistory::sync_map_min`]; a version is
//! retired once every node of the current version has acknowledged
//! (`sync_ack`) a newer one. Consistency modes other than `consistent` call
//! [`LayoutHistory::keep_only_current`] instead.

mod assign;
mod error;
mod format;
mod graph_algo;
mod history;
mod schema;
mod version;

#[cfg(test)]
mod staging_props;
#[cfg(test)]
mod tests;

pub use assign::{
    compute_assignment, count_moves, effective_zone_redundancy, optimal_partition_size,
    verify_assignment, Assignment, AssignmentStats, MAX_STORAGE_NODES,
};
pub use error::LayoutError;
pub use format::{
    format_layout_history, format_layout_show, format_table, format_transition,
    parse_zone_redundancy, short_id,
};
pub use schema::{
    LayoutDigest, LayoutHistory, LayoutParameters, LayoutStaging, LayoutVersion, NodeRole,
    NodeRoleV, UpdateTracker, UpdateTrackers, ZoneRedundancy,
};
pub use version::{partition_of, partitions};

/// Number of partitions (the first byte of a partition hash).
pub const NB_PARTITIONS: usize = 256;

/// Number of retired versions kept in `old_versions`.
pub const OLD_VERSION_COUNT: usize = 5;
