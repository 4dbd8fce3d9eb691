//! Queries on one [`LayoutVersion`], and the computation of the next one.

use garage_util::crdt::{Crdt, LwwMap};
use garage_util::data::{Hash, Uuid};

use super::assign::{compute_assignment, verify_assignment, Assignment};
use super::error::LayoutError;
use super::format::assignment_message;
use super::schema::{LayoutParameters, LayoutStaging, LayoutVersion, NodeRole, ZoneRedundancy};
use super::NB_PARTITIONS;

/// The partition of a hash: its first byte.
pub fn partition_of(hash: &Hash) -> u8 {
    hash.as_slice()[0]
}

/// All partitions with their first hash `[p, 0, …, 0]`, ascending.
pub fn partitions() -> impl Iterator<Item = (u8, Hash)> {
    (0..=255u8).map(|p| {
        let mut b = [0u8; 32];
        b[0] = p;
        (p, Hash::from(b))
    })
}

impl LayoutVersion {
    /// The empty version 0 (no roles, empty ring, zone redundancy `Maximum`).
    pub fn new(replication_factor: usize) -> Self {
        LayoutVersion {
            version: 0,
            replication_factor,
            partition_size: 0,
            parameters: LayoutParameters {
                zone_redundancy: ZoneRedundancy::Maximum,
            },
            roles: LwwMap::new(),
            node_id_vec: vec![],
            nongateway_node_count: 0,
            ring_assignment_data: vec![],
        }
    }

    /// The nodes storing `partition_hash`'s partition, in ring order
    /// (grouped by zone); empty while the ring is not computed.
    pub fn nodes_of(&self, partition_hash: &Hash) -> Vec<Uuid> {
        let rf = self.replication_factor;
        let p = partition_of(partition_hash) as usize;
        let range = p.checked_mul(rf).and_then(|a| Some(a..a.checked_add(rf)?));
        range
            .and_then(|r| self.ring_assignment_data.get(r))
            .unwrap_or(&[])
            .iter()
            .filter_map(|&i| self.node_id_vec.get(i as usize).copied())
            .collect()
    }

    /// Every node with a role: storage nodes then gateways, each sorted by id.
    pub fn all_nodes(&self) -> &[Uuid] {
        &self.node_id_vec
    }

    /// The storage (non-gateway) nodes, sorted by id.
    pub fn storage_nodes(&self) -> &[Uuid] {
        let n = self.nongateway_node_count.min(self.node_id_vec.len());
        &self.node_id_vec[..n]
    }

    /// The gateway nodes, sorted by id.
    pub fn gateway_nodes(&self) -> &[Uuid] {
        let n = self.nongateway_node_count.min(self.node_id_vec.len());
        &self.node_id_vec[n..]
    }

    /// The role of `node` in this version.
    pub fn node_role(&self, node: &Uuid) -> Option<&NodeRole> {
        self.roles.get(node).and_then(|r| r.as_ref())
    }

    /// Number of partition copies `node` stores.
    pub fn node_usage(&self, node: &Uuid) -> usize {
        match self.storage_nodes().iter().position(|n| n == node) {
            Some(i) => self
                .ring_assignment_data
                .iter()
                .filter(|&&x| x as usize == i)
                .count(),
            None => 0,
        }
    }

    /// The zone redundancy actually enforced (`Maximum` resolved against the
    /// zones of storage nodes).
    pub fn effective_zone_redundancy(&self) -> usize {
        let mut zones: Vec<&str> = self
            .roles
            .items()
            .iter()
            .filter_map(|(_, _, r)| r.as_ref())
            .filter(|r| r.capacity.is_some())
            .map(|r| r.zone.as_str())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        super::assign::effective_zone_redundancy(
            self.parameters.zone_redundancy,
            self.replication_factor,
            zones.len(),
        )
    }

    /// Total capacity of the storage nodes.
    pub fn total_capacity(&self) -> u64 {
        self.roles_list()
            .iter()
            .filter_map(|(_, r)| r.capacity)
            .fold(0u64, u64::saturating_add)
    }

    /// The roles as a sorted list (tombstones skipped).
    pub(crate) fn roles_list(&self) -> Vec<(Uuid, NodeRole)> {
        self.roles
            .items()
            .iter()
            .filter_map(|(id, _, r)| r.as_ref().map(|r| (*id, r.clone())))
            .collect()
    }

    /// Whether the ring has the right length and only storage-node indices
    /// (the cheap part of [`Self::check`]).
    pub fn ring_is_complete(&self) -> bool {
        Some(self.ring_assignment_data.len()) == NB_PARTITIONS.checked_mul(self.replication_factor)
            && self.replication_factor > 0
            && self
                .ring_assignment_data
                .iter()
                .all(|&i| (i as usize) < self.nongateway_node_count)
    }

    /// Checks the invariants of spec §2.5: ring length, `node_id_vec` equal to
    /// the nodes with a role, rf distinct storage nodes per partition over at
    /// least zr zones, capacities respected, optimal partition size.
    pub fn check(&self) -> Result<(), LayoutError> {
        let expected = NB_PARTITIONS.saturating_mul(self.replication_factor);
        if self.ring_assignment_data.len() != expected {
            return Err(LayoutError::CheckFailed {
                reason: format!(
                    "the ring has {} entries, expected {expected} (ring not computed yet?)",
                    self.ring_assignment_data.len()
                ),
            });
        }
        verify_assignment(
            NB_PARTITIONS,
            self.replication_factor,
            self.parameters.zone_redundancy,
            &self.roles_list(),
            &self.node_id_vec,
            self.nongateway_node_count,
            &self.ring_assignment_data,
            self.partition_size,
        )
    }

    /// The version that applying `staging` onto this one gives, with the
    /// message lines describing the computation (spec §2.6).
    pub(crate) fn next_version(
        &self,
        staging: &LayoutStaging,
    ) -> Result<(LayoutVersion, Vec<String>), LayoutError> {
        let mut merged = self.roles.clone();
        merged.merge(&staging.roles);
        // Rebuild without tombstones: removed nodes vanish from the version.
        let mut roles = LwwMap::new();
        for (id, _, r) in merged.items() {
            if r.is_some() {
                roles.update_in_place(*id, r.clone());
            }
        }
        let parameters = *staging.parameters.get();
        let mut next = LayoutVersion {
            version: self.version + 1,
            replication_factor: self.replication_factor,
            partition_size: 0,
            parameters,
            roles,
            node_id_vec: vec![],
            nongateway_node_count: 0,
            ring_assignment_data: vec![],
        };
        let previous = if self.ring_assignment_data.is_empty() {
            None
        } else {
            Some((
                self.node_id_vec.as_slice(),
                self.ring_assignment_data.as_slice(),
            ))
        };
        let Assignment {
            node_id_vec,
            nongateway_node_count,
            ring,
            partition_size,
            zone_redundancy,
            stats,
        } = compute_assignment(
            NB_PARTITIONS,
            self.replication_factor,
            parameters.zone_redundancy,
            &next.roles_list(),
            previous,
        )?;
        next.node_id_vec = node_id_vec;
        next.nongateway_node_count = nongateway_node_count;
        next.ring_assignment_data = ring;
        next.partition_size = partition_size;
        let old_size = previous.map(|_| self.partition_size);
        let msg = assignment_message(&next, zone_redundancy, &stats, old_size);
        next.check()?;
        Ok((next, msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_helpers() {
        let h = Hash::from([7u8; 32]);
        assert_eq!(partition_of(&h), 7);
        let all: Vec<_> = partitions().collect();
        assert_eq!(all.len(), 256);
        assert_eq!(all[3].0, 3);
        assert_eq!(partition_of(&all[200].1), 200);
    }

    #[test]
    fn empty_version() {
        let v = LayoutVersion::new(3);
        assert!(v.nodes_of(&Hash::from([1u8; 32])).is_empty());
        assert!(v.storage_nodes().is_empty());
        assert!(v.gateway_nodes().is_empty());
        assert!(v.check().is_err());
        assert_eq!(v.node_usage(&Uuid::from([1u8; 32])), 0);
    }
}
