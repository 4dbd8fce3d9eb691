//! Errors of the layout operations (staging, apply, assignment computation).
//!
//! Every variant carries the numbers an operator needs to fix the layout; the
//! `Display` text is what `garage layout show`/`apply` print.

use garage_util::data::Uuid;

/// Why a layout operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// `apply` was called without `--version`.
    #[error(
        "please specify the version number of the new layout: \
         the next layout version is {expected} (use `garage layout apply --version {expected}`)"
    )]
    MissingVersion {
        /// The only version number that would be accepted.
        expected: u64,
    },
    /// `apply --version N` with N not equal to current + 1.
    #[error("invalid new layout version {given}: the next layout version is {expected}")]
    WrongVersion {
        /// The version the operator asked for.
        given: u64,
        /// The only version number that would be accepted.
        expected: u64,
    },
    /// The replication factor is 0.
    #[error("invalid replication factor {replication_factor}: it must be at least 1")]
    InvalidReplicationFactor {
        /// The rejected factor.
        replication_factor: usize,
    },
    /// A storage node was given a capacity of 0 bytes.
    #[error("node {node:?} has a capacity of 0: use a positive capacity, or make it a gateway")]
    ZeroCapacity {
        /// The node whose role is invalid.
        node: Uuid,
    },
    /// The ring stores node indices on one byte.
    #[error(
        "there are {storage_nodes} storage (non-gateway) nodes in the new layout; \
         at most {max} are allowed"
    )]
    TooManyStorageNodes {
        /// Number of storage nodes in the new layout.
        storage_nodes: usize,
        /// The maximum (256).
        max: usize,
    },
    /// Not enough storage nodes to hold `replication_factor` distinct copies.
    #[error(
        "the number of nodes with a positive capacity ({storage_nodes}) \
         is smaller than the replication factor ({replication_factor})"
    )]
    NotEnoughStorageNodes {
        /// Number of storage nodes in the new layout.
        storage_nodes: usize,
        /// The replication factor.
        replication_factor: usize,
    },
    /// The zone redundancy is not between 1 and the replication factor.
    #[error(
        "invalid zone redundancy {zone_redundancy}: it must be between 1 and \
         the replication factor ({replication_factor}), or `maximum`"
    )]
    InvalidZoneRedundancy {
        /// The requested redundancy.
        zone_redundancy: usize,
        /// The replication factor.
        replication_factor: usize,
    },
    /// A `layout config -r` value that is neither `none`, `max`, `maximum` nor an integer.
    #[error("invalid zone redundancy `{value}`: expected an integer, `none`, `max` or `maximum`")]
    UnparsableZoneRedundancy {
        /// The rejected text.
        value: String,
    },
    /// Fewer zones with storage nodes than the zone redundancy asks for.
    #[error(
        "the number of zones with storage (non-gateway) nodes ({zones}) \
         is smaller than the zone redundancy ({zone_redundancy})"
    )]
    NotEnoughZones {
        /// Number of distinct zones among storage nodes.
        zones: usize,
        /// The effective zone redundancy.
        zone_redundancy: usize,
    },
    /// Even partitions of one byte cannot be placed (capacities far too small).
    #[error(
        "the storage capacity of the cluster is too small: it is impossible to place \
         {partitions} partitions of size 1 with {replication_factor} copies each"
    )]
    Infeasible {
        /// Number of partitions.
        partitions: usize,
        /// The replication factor.
        replication_factor: usize,
    },
    /// The ring of the previous version is malformed.
    #[error("the previous layout's ring is malformed: {reason}")]
    CorruptPreviousRing {
        /// What is wrong with it.
        reason: String,
    },
    /// The computed layout does not pass its own consistency check (a bug).
    #[error("layout check failed on the computed layout: {reason}")]
    CheckFailed {
        /// The failed invariant.
        reason: String,
    },
}
