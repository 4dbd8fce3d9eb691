//! Operations on the [`LayoutHistory`]: staging, apply/revert, gossip merge,
//! transition trackers and retirement of old versions (spec §1.4, §1.5, §3).

use garage_util::crdt::{Crdt, Lww, LwwMap};
use garage_util::data::{blake2sum, Hash, Uuid};
use garage_util::encode::to_msgpack;

use super::error::LayoutError;
use super::schema::{
    LayoutDigest, LayoutHistory, LayoutParameters, LayoutStaging, LayoutVersion, NodeRole,
    UpdateTracker, UpdateTrackers, ZoneRedundancy,
};
use super::version::partitions;
use super::OLD_VERSION_COUNT;

impl UpdateTracker {
    /// The value for `node`, or `default` when it has none.
    pub fn get(&self, node: &Uuid, default: u64) -> u64 {
        self.0.get(node).copied().unwrap_or(default)
    }

    /// Raises `node`'s value to at least `value`; true if it changed.
    pub fn set_max(&mut self, node: Uuid, value: u64) -> bool {
        match self.0.get_mut(&node) {
            Some(v) if *v >= value => false,
            Some(v) => {
                *v = value;
                true
            }
            None => {
                self.0.insert(node, value);
                true
            }
        }
    }

    /// Per-node maximum with `other`; true if anything changed.
    pub fn merge(&mut self, other: &UpdateTracker) -> bool {
        let mut changed = false;
        for (node, v) in other.0.iter() {
            changed |= self.set_max(*node, *v);
        }
        changed
    }

    /// The minimum over `nodes` (missing entries count as `default`);
    /// `default` when `nodes` is empty.
    pub fn min_among(&self, nodes: &[Uuid], default: u64) -> u64 {
        nodes
            .iter()
            .map(|n| self.get(n, default))
            .min()
            .unwrap_or(default)
    }
}

impl UpdateTrackers {
    fn merge(&mut self, other: &UpdateTrackers) -> bool {
        let a = self.ack_map.merge(&other.ack_map);
        let s = self.sync_map.merge(&other.sync_map);
        let sa = self.sync_ack_map.merge(&other.sync_ack_map);
        a || s || sa
    }
}

impl LayoutHistory {
    /// A fresh history: the empty version 0 and an empty staging area (ts 0).
    pub fn new(replication_factor: usize) -> Self {
        let v0 = LayoutVersion::new(replication_factor);
        let staging = LayoutStaging {
            parameters: Lww::raw(0, v0.parameters),
            roles: LwwMap::new(),
        };
        LayoutHistory {
            versions: vec![v0],
            old_versions: vec![],
            update_trackers: UpdateTrackers::default(),
            staging: Lww::raw(0, staging),
        }
    }

    /// The current (newest) version.
    pub fn current(&self) -> &LayoutVersion {
        // `versions` is never empty: every constructor and merge keeps one.
        self.versions
            .last()
            .expect("invariant: a layout history has at least one version")
    }

    /// Number of the oldest active version.
    pub fn min_stored(&self) -> u64 {
        self.versions.first().map(|v| v.version).unwrap_or(0)
    }

    /// The replication factor baked into the layout.
    pub fn replication_factor(&self) -> usize {
        self.current().replication_factor
    }

    // ---- staging ----

    /// Stages a role for `node` (new node or changed role).
    pub fn stage_assign(&mut self, node: Uuid, role: NodeRole) -> Result<(), LayoutError> {
        if role.capacity == Some(0) {
            return Err(LayoutError::ZeroCapacity { node });
        }
        self.stage_role(node, Some(role));
        Ok(())
    }

    /// Stages the removal of `node`.
    pub fn stage_remove(&mut self, node: Uuid) {
        self.stage_role(node, None);
    }

    fn stage_role(&mut self, node: Uuid, role: Option<NodeRole>) {
        // The mutator's timestamp must beat both the applied and the staged entry.
        let mut merged = self.current().roles.clone();
        merged.merge(&self.staging.get().roles);
        let mutator = merged.update_mutator(node, role);
        self.staging.get_mut().roles.merge(&mutator);
    }

    /// Stages a new zone redundancy (`AtLeast(n)` needs 1 ≤ n ≤ rf).
    pub fn stage_zone_redundancy(&mut self, zr: ZoneRedundancy) -> Result<(), LayoutError> {
        let rf = self.replication_factor();
        if let ZoneRedundancy::AtLeast(n) = zr {
            if n == 0 || n > rf {
                return Err(LayoutError::InvalidZoneRedundancy {
                    zone_redundancy: n,
                    replication_factor: rf,
                });
            }
        }
        self.staging.get_mut().parameters.update(LayoutParameters {
            zone_redundancy: zr,
        });
        Ok(())
    }

    /// Staged role entries that differ from the current roles.
    pub fn staged_role_changes(&self) -> Vec<(Uuid, Option<NodeRole>)> {
        let current = &self.current().roles;
        self.staging
            .get()
            .roles
            .items()
            .iter()
            .filter(|(id, _, r)| current.get(id) != Some(r))
            .map(|(id, _, r)| (*id, r.clone()))
            .collect()
    }

    /// Whether the staged parameters differ from the current ones.
    pub fn staged_parameters_changed(&self) -> bool {
        *self.staging.get().parameters.get() != self.current().parameters
    }

    /// Whether anything is staged.
    pub fn has_staged_changes(&self) -> bool {
        self.staged_parameters_changed() || !self.staged_role_changes().is_empty()
    }

    /// Computes and appends the next version from the staged changes.
    ///
    /// `version` must be `current + 1` (the CLI's `--version`); `None` is an
    /// explicit error asking for it. Returns the new history (self is left
    /// untouched) and the message lines of the computation.
    pub fn apply_staged_changes(
        &self,
        version: Option<u64>,
    ) -> Result<(LayoutHistory, Vec<String>), LayoutError> {
        let expected = self.current().version + 1;
        match version {
            None => return Err(LayoutError::MissingVersion { expected }),
            Some(given) if given != expected => {
                return Err(LayoutError::WrongVersion { given, expected })
            }
            Some(_) => (),
        }
        let staging = self.staging.get();
        let (next, msg) = self.current().next_version(staging)?;
        let mut out = self.clone();
        out.versions.push(next);
        out.cleanup_old_versions();
        let reset = LayoutStaging {
            parameters: staging.parameters.clone(),
            roles: LwwMap::new(),
        };
        out.staging.update(reset);
        Ok((out, msg))
    }

    /// Drops all staged changes (parameters back to the current ones).
    /// The version does not change; concurrent staged edits that still carry
    /// the older staging timestamp are discarded when merged.
    pub fn revert_staged_changes(&mut self) {
        let reset = LayoutStaging {
            parameters: Lww::new(self.current().parameters),
            roles: LwwMap::new(),
        };
        self.staging.update(reset);
    }

    // ---- gossip ----

    /// Merges a history received from a peer (spec §1.5); true if `self` changed.
    ///
    /// If our current version is older than the peer's oldest active one,
    /// the peer's versions replace ours; otherwise the peer's versions
    /// numbered current+1, current+2… are appended in order (same-numbered
    /// versions must be identical: a mismatch is logged and ignored).
    /// Trackers merge by per-node max, staging as a Lww register.
    ///
    /// The caller should first refuse a peer history that fails
    /// [`Self::check`] (unless ours fails too) or has another replication
    /// factor, then call [`Self::refresh_trackers`] when this returns true.
    pub fn merge(&mut self, other: &LayoutHistory) -> bool {
        let mut changed = false;
        if other.versions.is_empty() {
            return false;
        }
        if self.current().version < other.min_stored() {
            self.versions = other.versions.clone();
            self.old_versions = other.old_versions.clone();
            changed = true;
        } else {
            for v in other.versions.iter() {
                let cur = self.current().version;
                if v.version == cur + 1 {
                    self.versions.push(v.clone());
                    changed = true;
                } else if v.version <= cur {
                    let mine = self.versions.iter().find(|x| x.version == v.version);
                    if mine.is_some_and(|m| m != v) {
                        tracing::error!(
                            version = v.version,
                            "Inconsistent layout histories: different contents for the same version"
                        );
                    }
                }
            }
        }
        changed |= self.update_trackers.merge(&other.update_trackers);
        let before = self.staging.clone();
        self.staging.merge(&other.staging);
        changed |= self.staging != before;
        changed
    }

    /// Checks the current version (spec §2.5) and that versions ascend.
    pub fn check(&self) -> Result<(), LayoutError> {
        let failed = |reason: &str| LayoutError::CheckFailed {
            reason: reason.to_string(),
        };
        if self.versions.is_empty() {
            return Err(failed("the history has no version"));
        }
        if self
            .versions
            .windows(2)
            .any(|w| w[1].version != w[0].version + 1)
        {
            return Err(failed("active versions are not consecutive"));
        }
        self.current().check()
    }

    /// The gossiped summary: current version, number of active versions and
    /// hashes of the trackers and of the staging area.
    pub fn digest(&self) -> LayoutDigest {
        LayoutDigest {
            current_version: self.current().version,
            active_versions: self.versions.len(),
            trackers_hash: hash_of(&self.update_trackers),
            staging_hash: hash_of(&self.staging),
        }
    }

    // ---- nodes and routing ----

    /// Every node with a role in an active version (gateways included), sorted.
    pub fn all_nodes(&self) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = self
            .versions
            .iter()
            .flat_map(|v| v.all_nodes().iter().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every storage node of an active version, sorted.
    pub fn all_storage_nodes(&self) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = self
            .versions
            .iter()
            .flat_map(|v| v.storage_nodes().iter().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// One node set per active version (oldest first): a write must reach a
    /// quorum in each of them.
    pub fn write_sets_of(&self, partition_hash: &Hash) -> Vec<Vec<Uuid>> {
        self.versions
            .iter()
            .map(|v| v.nodes_of(partition_hash))
            .collect()
    }

    /// Nodes that stored the partition of `hash` in a retired version
    /// still remembered and store it in no active version, sorted. They may
    /// hold entries of the partition they have not handed off yet (a write
    /// quorum of the old set was enough, so such a copy can be behind):
    /// tombstone GC must reach them too, or their hand-off would bring
    /// deleted values back. Nodes removed from the layout are included: a
    /// removed node hands off what it holds whenever it runs again.
    pub fn former_storage_nodes_of(&self, partition_hash: &Hash) -> Vec<Uuid> {
        let live: Vec<Uuid> = self
            .versions
            .iter()
            .flat_map(|v| v.nodes_of(partition_hash))
            .collect();
        let mut out: Vec<Uuid> = self
            .old_versions
            .iter()
            .flat_map(|v| v.nodes_of(partition_hash))
            .filter(|n| !live.contains(n))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    // ---- transition trackers (spec §3) ----

    /// Minimum ack over all nodes of all active versions.
    pub fn ack_map_min(&self) -> u64 {
        self.update_trackers
            .ack_map
            .min_among(&self.all_nodes(), self.min_stored())
    }

    /// The read version: the newest version a quorum of every partition's
    /// old owners has synced into, given the write quorum `write_quorum`.
    pub fn sync_map_min(&self, write_quorum: usize) -> u64 {
        let current = self.current();
        if self.versions.len() == 1 {
            return current.version;
        }
        let min_stored = self.min_stored();
        let sync = &self.update_trackers.sync_map;
        if write_quorum >= current.replication_factor {
            return sync.min_among(&self.all_storage_nodes(), min_stored);
        }
        let mut result = current.version;
        let mut seen: Vec<Vec<Uuid>> = vec![];
        for (_, hash) in partitions() {
            for v in self
                .versions
                .iter()
                .filter(|v| v.version != current.version)
            {
                let mut set = v.nodes_of(&hash);
                set.sort();
                if set.is_empty() || seen.contains(&set) {
                    continue;
                }
                let mut values: Vec<u64> = set.iter().map(|n| sync.get(n, min_stored)).collect();
                values.sort_unstable();
                // The highest version at least `write_quorum` of them reached.
                let q = write_quorum.clamp(1, values.len());
                result = result.min(values[values.len() - q]);
                seen.push(set);
            }
        }
        result
    }

    /// Progress of a transition: (partitions whose data a write quorum of
    /// every older owner set has synced into the current version, 256);
    /// None when a single version is live.
    pub fn transition_progress(&self, write_quorum: usize) -> Option<(usize, usize)> {
        if self.versions.len() <= 1 {
            return None;
        }
        let current = self.current().version;
        let min_stored = self.min_stored();
        let sync = &self.update_trackers.sync_map;
        let mut done = 0;
        let mut total = 0;
        for (_, hash) in partitions() {
            total += 1;
            let synced = self
                .versions
                .iter()
                .filter(|v| v.version != current)
                .all(|v| {
                    let mut values: Vec<u64> = v
                        .nodes_of(&hash)
                        .iter()
                        .map(|n| sync.get(n, min_stored))
                        .collect();
                    if values.is_empty() {
                        return true;
                    }
                    values.sort_unstable();
                    let q = write_quorum.clamp(1, values.len());
                    values[values.len() - q] >= current
                });
            if synced {
                done += 1;
            }
        }
        Some((done, total))
    }

    /// Raises every tracker of every node of an active version to at least
    /// `min_stored`; true if anything changed.
    pub fn clamp_trackers(&mut self) -> bool {
        let min_stored = self.min_stored();
        let mut changed = false;
        for node in self.all_nodes() {
            changed |= self.update_trackers.ack_map.set_max(node, min_stored);
            changed |= self.update_trackers.sync_map.set_max(node, min_stored);
            changed |= self.update_trackers.sync_ack_map.set_max(node, min_stored);
        }
        changed
    }

    /// The bookkeeping a node does on every layout change: clamp trackers,
    /// raise its own `sync_ack` to the read version, retire old versions.
    /// (Its `ack_map` and `sync_map` entries are raised by the write path and
    /// the sync workers through `update_trackers`.) True if anything changed.
    pub fn refresh_trackers(&mut self, local: Uuid, write_quorum: usize) -> bool {
        let mut changed = self.clamp_trackers();
        let read_version = self.sync_map_min(write_quorum);
        changed |= self
            .update_trackers
            .sync_ack_map
            .set_max(local, read_version);
        changed |= self.cleanup_old_versions();
        changed
    }

    /// Retires versions nobody needs any more: leading versions without a
    /// complete ring (when the current one has one, e.g. the empty version 0), then versions below the
    /// minimum `sync_ack` of the current version's nodes. At most
    /// [`OLD_VERSION_COUNT`] retired versions are kept. True if anything changed.
    pub fn cleanup_old_versions(&mut self) -> bool {
        let mut changed = false;
        // Only the cheap structural test here: full checks (with the
        // partition-size recomputation) are done on received layouts.
        if self.versions.len() > 1 && self.current().ring_is_complete() {
            while self.versions.len() > 1 && !self.versions[0].ring_is_complete() {
                let v = self.versions.remove(0);
                if !v.ring_assignment_data.is_empty() {
                    self.old_versions.push(v);
                }
                changed = true;
            }
        }
        let current_nodes = self.current().all_nodes().to_vec();
        let min_sync_ack = self
            .update_trackers
            .sync_ack_map
            .min_among(&current_nodes, self.min_stored());
        while self.versions.len() > 1 && self.min_stored() < min_sync_ack {
            let v = self.versions.remove(0);
            self.old_versions.push(v);
            changed = true;
        }
        changed |= self.trim_old_versions();
        if changed {
            self.clamp_trackers();
        }
        changed
    }

    /// Keeps only the current version active (consistency modes other than
    /// `consistent` do not track transitions). True if anything changed.
    pub fn keep_only_current(&mut self) -> bool {
        if self.versions.len() <= 1 {
            return false;
        }
        let keep = self.versions.split_off(self.versions.len() - 1);
        let retired = std::mem::replace(&mut self.versions, keep);
        self.old_versions.extend(
            retired
                .into_iter()
                .filter(|v| !v.ring_assignment_data.is_empty()),
        );
        self.trim_old_versions();
        self.clamp_trackers();
        true
    }

    fn trim_old_versions(&mut self) -> bool {
        let extra = self.old_versions.len().saturating_sub(OLD_VERSION_COUNT);
        self.old_versions.drain(..extra);
        extra > 0
    }
}

fn hash_of<T: serde::Serialize>(v: &T) -> Hash {
    // Encoding these plain structs cannot fail; hash nothing if it ever did.
    blake2sum(&to_msgpack(v).unwrap_or_default())
}
