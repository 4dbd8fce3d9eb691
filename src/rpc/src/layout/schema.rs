//! The persisted and gossiped layout types (version 1, marker `G010lh`).
//!
//! Field names and shapes follow Garage's v0.10+ `LayoutHistory` so that the
//! MessagePack struct-map encoding is the same: `NodeRoleV` is a plain
//! `Option<NodeRole>` here, which rmp-serde encodes exactly like Garage's
//! `NodeRoleV(Option<NodeRole>)` newtype. Never reorder enum variants; a
//! change of shape goes into a new `mod v2` whose `Migrate::Previous` is
//! `v1::LayoutHistory`.

pub use v1::{
    LayoutDigest, LayoutHistory, LayoutParameters, LayoutStaging, LayoutVersion, NodeRole,
    NodeRoleV, UpdateTracker, UpdateTrackers, ZoneRedundancy,
};

/// Version 1 of the layout format (marker `G010lh`).
mod v1 {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use garage_util::crdt::{AutoCrdt, Crdt, Lww, LwwMap};
    use garage_util::data::Uuid;
    use garage_util::encode::{from_msgpack, Migrate, NoPrevious};

    /// The role of a node: a storage node (with a capacity) or a gateway.
    ///
    /// The derived `Ord` (zone, then capacity, then tags) breaks ties between two
    /// staged roles that carry the same timestamp.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct NodeRole {
        /// The failure domain (datacenter, rack...) of the node.
        pub zone: String,
        /// Capacity in bytes; `None` marks a gateway, which stores no sharded data.
        pub capacity: Option<u64>,
        /// Free-form labels shown by the CLI.
        pub tags: Vec<String>,
    }

    impl AutoCrdt for NodeRole {
        const WARN_IF_DIFFERENT: bool = true;
    }

    /// A staged or applied role slot: `None` is a removal tombstone.
    pub type NodeRoleV = Option<NodeRole>;

    /// How many distinct zones each partition must span.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum ZoneRedundancy {
        /// At least this many zones (1..=replication factor).
        AtLeast(usize),
        /// As many zones as possible: min(zones holding storage nodes, replication factor).
        Maximum,
    }

    /// Layout parameters chosen by the operator (`garage layout config`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct LayoutParameters {
        /// The zone redundancy constraint.
        pub zone_redundancy: ZoneRedundancy,
    }

    impl AutoCrdt for LayoutParameters {
        const WARN_IF_DIFFERENT: bool = true;
    }

    /// One applied version of the cluster layout: roles plus the computed ring.
    ///
    /// Invariants (checked by [`LayoutVersion::check`]): `node_id_vec` lists the
    /// storage nodes sorted by id, then the gateways sorted by id;
    /// `ring_assignment_data` holds `256 × replication_factor` indices into the
    /// storage part of `node_id_vec`, partition `p` owning `[p·rf, (p+1)·rf)`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LayoutVersion {
        /// Version number; 0 is the empty initial layout.
        pub version: u64,
        /// Copies of each partition.
        pub replication_factor: usize,
        /// Bytes of capacity one partition copy takes (optimal for the roles).
        pub partition_size: u64,
        /// Parameters used to compute this version.
        pub parameters: LayoutParameters,
        /// Node roles (only `Some` entries: removed nodes are dropped on apply).
        pub roles: LwwMap<Uuid, NodeRoleV>,
        /// Storage nodes sorted by id, then gateways sorted by id.
        pub node_id_vec: Vec<Uuid>,
        /// Number of storage nodes at the front of `node_id_vec`.
        pub nongateway_node_count: usize,
        /// The ring: `256 × rf` indices into `node_id_vec` (empty before the first apply).
        pub ring_assignment_data: Vec<u8>,
    }

    /// Role and parameter changes waiting for `garage layout apply`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LayoutStaging {
        /// Staged parameters (the current ones when nothing is staged).
        pub parameters: Lww<LayoutParameters>,
        /// Staged role changes; `None` stages a removal.
        pub roles: LwwMap<Uuid, NodeRoleV>,
    }

    impl Crdt for LayoutStaging {
        fn merge(&mut self, other: &Self) {
            self.parameters.merge(&other.parameters);
            self.roles.merge(&other.roles);
        }
    }

    /// A per-node monotone counter of layout versions (merged by per-node max).
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UpdateTracker(pub BTreeMap<Uuid, u64>);

    /// The three transition trackers (see the module documentation).
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UpdateTrackers {
        /// Node n has no in-flight write that used only older write sets.
        pub ack_map: UpdateTracker,
        /// Node n finished a full anti-entropy pass for this version.
        pub sync_map: UpdateTracker,
        /// Node n saw every node synced up to this version.
        pub sync_ack_map: UpdateTracker,
    }

    /// The whole replicated layout state, persisted in `metadata_dir/cluster_layout`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LayoutHistory {
        /// Active versions, ascending; the last one is the current layout.
        pub versions: Vec<LayoutVersion>,
        /// Up to [`crate::layout::OLD_VERSION_COUNT`] retired versions, ascending.
        pub old_versions: Vec<LayoutVersion>,
        /// Transition trackers.
        pub update_trackers: UpdateTrackers,
        /// Staged changes.
        pub staging: Lww<LayoutStaging>,
    }

    impl Migrate for LayoutHistory {
        const VERSION_MARKER: &'static [u8] = b"G010lh";
        type Previous = NoPrevious;
        fn migrate(previous: NoPrevious) -> Self {
            match previous {}
        }
        /// Decodes, refusing a history without any version (every other method
        /// relies on `versions` being non-empty).
        fn decode(bytes: &[u8]) -> Option<Self> {
            let body = bytes.strip_prefix(Self::VERSION_MARKER)?;
            from_msgpack::<Self>(body).filter(|h| !h.versions.is_empty())
        }
    }

    /// A small summary gossiped every few seconds to detect divergent histories.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LayoutDigest {
        /// Number of the current version.
        pub current_version: u64,
        /// Number of active versions.
        pub active_versions: usize,
        /// Hash of the update trackers.
        pub trackers_hash: garage_util::data::Hash,
        /// Hash of the staging area.
        pub staging_hash: garage_util::data::Hash,
    }
}
