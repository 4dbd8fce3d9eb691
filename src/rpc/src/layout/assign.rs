//! Computation of the partition → nodes assignment (the ring).
//!
//! The problem is a maximum flow (spec §2.4): source → partition (two
//! vertices, one forcing `zr` distinct zones, one for the remaining copies)
//! → (partition, zone) → node → sink, with `⌊capacity / size⌋` on the node →
//! sink arcs. A flow of `partitions × rf` is exactly a valid assignment.
//!
//! 1. The partition size is the largest `s` with a full flow. Only values
//!    `⌊capacity_n / k⌋` (k = 1..=partitions) can be that optimum, so the
//!    bisection runs over those candidates, warm-starting each maximum flow
//!    from the flow of the smallest infeasible size found so far.
//! 2. With a previous ring, a first flow uses only the (partition, node)
//!    pairs of the old ring, then all pairs; negative cycles (cost −1 on
//!    old pairs) are then cancelled until none is left, which yields a flow
//!    keeping the largest possible number of old pairs (fewest moves).
//!
//! Everything is deterministic: nodes are indexed by sorted id, zones by
//! first appearance in that order, partitions ascend, and the adjacency
//! shuffle uses a fixed seed. No hash-map iteration order is involved.

use garage_util::data::Uuid;

use super::error::LayoutError;
use super::graph_algo::{FlowGraph, FlowGraphBuilder};
use super::schema::{NodeRole, ZoneRedundancy};

/// Maximum number of storage nodes (ring entries are one byte).
pub const MAX_STORAGE_NODES: usize = 256;

/// A computed assignment and the statistics shown to the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Storage nodes sorted by id, then gateways sorted by id.
    pub node_id_vec: Vec<Uuid>,
    /// Number of storage nodes at the front of `node_id_vec`.
    pub nongateway_node_count: usize,
    /// `partitions × rf` indices into `node_id_vec`, each partition's list
    /// grouped by zone (zone order, then node index).
    pub ring: Vec<u8>,
    /// The optimal partition size in bytes.
    pub partition_size: u64,
    /// The effective zone redundancy (Maximum resolved).
    pub zone_redundancy: usize,
    /// Per-zone and per-node statistics.
    pub stats: AssignmentStats,
}

/// Statistics of an [`Assignment`], indexed like `node_id_vec` / `zones`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentStats {
    /// Zones of storage nodes, in order of first appearance by node id.
    pub zones: Vec<String>,
    /// Zone index of each storage node.
    pub node_zone: Vec<usize>,
    /// Capacity of each storage node.
    pub node_capacity: Vec<u64>,
    /// Number of partition copies on each storage node.
    pub partitions_per_node: Vec<usize>,
    /// Copies each storage node did not hold in the previous ring (all of
    /// them when there is no previous ring).
    pub new_partitions_per_node: Vec<usize>,
    /// Number of partitions with at least one copy in each zone.
    pub partitions_per_zone: Vec<usize>,
    /// Total copies to transfer, when there was a previous ring.
    pub moved_copies: Option<usize>,
}

/// Resolves the zone redundancy: `Maximum` is the number of distinct zones
/// among *storage* nodes (gateways do not count), capped at `rf`.
pub fn effective_zone_redundancy(
    zone_redundancy: ZoneRedundancy,
    rf: usize,
    storage_zone_count: usize,
) -> usize {
    match zone_redundancy {
        ZoneRedundancy::AtLeast(n) => n,
        ZoneRedundancy::Maximum => storage_zone_count.min(rf),
    }
}

/// Storage nodes, gateways and zones, validated and indexed.
struct Prepared {
    /// (id, capacity, zone index), sorted by id.
    storage: Vec<(Uuid, u64, usize)>,
    gateways: Vec<Uuid>,
    zones: Vec<String>,
    zr: usize,
}

fn prepare(
    rf: usize,
    zone_redundancy: ZoneRedundancy,
    roles: &[(Uuid, NodeRole)],
) -> Result<Prepared, LayoutError> {
    if rf == 0 {
        return Err(LayoutError::InvalidReplicationFactor {
            replication_factor: rf,
        });
    }
    let mut sorted: Vec<&(Uuid, NodeRole)> = roles.iter().collect();
    sorted.sort_by_key(|a| a.0);
    sorted.dedup_by(|a, b| a.0 == b.0);

    let mut storage = vec![];
    let mut gateways = vec![];
    let mut zones: Vec<String> = vec![];
    for (id, role) in sorted {
        match role.capacity {
            None => gateways.push(*id),
            Some(0) => return Err(LayoutError::ZeroCapacity { node: *id }),
            Some(c) => {
                let z = match zones.iter().position(|z| *z == role.zone) {
                    Some(z) => z,
                    None => {
                        zones.push(role.zone.clone());
                        zones.len() - 1
                    }
                };
                storage.push((*id, c, z));
            }
        }
    }
    if storage.len() > MAX_STORAGE_NODES {
        return Err(LayoutError::TooManyStorageNodes {
            storage_nodes: storage.len(),
            max: MAX_STORAGE_NODES,
        });
    }
    if storage.len() < rf {
        return Err(LayoutError::NotEnoughStorageNodes {
            storage_nodes: storage.len(),
            replication_factor: rf,
        });
    }
    let zr = effective_zone_redundancy(zone_redundancy, rf, zones.len());
    if zr == 0 || zr > rf {
        return Err(LayoutError::InvalidZoneRedundancy {
            zone_redundancy: zr,
            replication_factor: rf,
        });
    }
    if zones.len() < zr {
        return Err(LayoutError::NotEnoughZones {
            zones: zones.len(),
            zone_redundancy: zr,
        });
    }
    Ok(Prepared {
        storage,
        gateways,
        zones,
        zr,
    })
}

/// The flow network of spec §2.4 with the ids of the arcs we touch later.
struct Network {
    g: FlowGraph,
    partitions: usize,
    /// Node → sink arc of each storage node.
    sink_arcs: Vec<usize>,
    /// (partition, zone of n) → n arc, at `p * nodes + n`.
    pn_arcs: Vec<usize>,
    target: u64,
}

const SOURCE: usize = 0;
const SINK: usize = 1;

impl Network {
    fn new(partitions: usize, rf: usize, prep: &Prepared) -> Self {
        let nz = prep.zones.len();
        let nodes = prep.storage.len();
        let block = 2 + nz;
        let node_base = 2 + partitions * block;
        let mut b = FlowGraphBuilder::new(node_base + nodes);
        for p in 0..partitions {
            let base = 2 + p * block;
            b.add_arc(SOURCE, base, prep.zr as u32);
            b.add_arc(SOURCE, base + 1, (rf - prep.zr) as u32);
            for z in 0..nz {
                b.add_arc(base, base + 2 + z, 1);
                b.add_arc(base + 1, base + 2 + z, rf as u32);
            }
        }
        let mut sink_arcs = Vec::with_capacity(nodes);
        let mut pn_arcs = vec![0; partitions * nodes];
        for (n, &(_, _, z)) in prep.storage.iter().enumerate() {
            sink_arcs.push(b.add_arc(node_base + n, SINK, 0));
            for p in 0..partitions {
                pn_arcs[p * nodes + n] = b.add_arc(2 + p * block + 2 + z, node_base + n, 1);
            }
        }
        Network {
            g: b.build(),
            partitions,
            sink_arcs,
            pn_arcs,
            target: (partitions * rf) as u64,
        }
    }

    /// Sets the node → sink capacities for partition size `size`.
    fn set_size(&mut self, prep: &Prepared, size: u64) {
        for (n, &(_, cap, _)) in prep.storage.iter().enumerate() {
            let k = (cap / size).min(self.partitions as u64) as u32;
            self.g.set_capacity(self.sink_arcs[n], k);
        }
    }

    /// Largest partition size admitting a full flow, and a full flow for it.
    fn optimal_size(&mut self, prep: &Prepared, rf: usize) -> Result<(u64, Vec<u32>), LayoutError> {
        let zero = vec![0u32; self.g.flows().len()];
        // Size 1 must work, otherwise nothing does.
        self.g.set_flows(&zero);
        self.set_size(prep, 1);
        if self.g.max_flow(SOURCE, SINK) < self.target {
            return Err(LayoutError::Infeasible {
                partitions: self.partitions,
                replication_factor: rf,
            });
        }
        let mut lo = (1u64, self.g.flows());
        // Candidates: the optimum is always ⌊capacity_n / k⌋ for some node n
        // and some k in 1..=partitions (see the module documentation).
        let mut candidates: Vec<u64> = prep
            .storage
            .iter()
            .flat_map(|&(_, cap, _)| (1..=self.partitions as u64).map(move |k| cap / k))
            .filter(|&s| s > 1)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        // Invariant: sizes ≤ lo feasible, candidates[hi..] infeasible;
        // `hi_flow` is a maximum flow for the smallest infeasible size probed
        // (valid for any smaller size, whose capacities are larger).
        let (mut a, mut hi) = (0usize, candidates.len());
        let mut hi_flow = zero;
        while a < hi {
            let mid = (a + hi) / 2;
            let size = candidates[mid];
            self.set_size_from(prep, size, &hi_flow);
            if self.g.max_flow(SOURCE, SINK) >= self.target {
                lo = (size, self.g.flows());
                a = mid + 1;
            } else {
                hi_flow = self.g.flows();
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Loads `flows` (valid for any size ≥ `size`) and sets the capacities.
    fn set_size_from(&mut self, prep: &Prepared, size: u64, flows: &[u32]) {
        // Raise capacities first so that the flows always fit.
        for &arc in self.sink_arcs.iter() {
            self.g.set_capacity(arc, self.partitions as u32);
        }
        self.g.set_flows(flows);
        self.set_size(prep, size);
    }
}

/// Computes the ring for `roles` (see the module documentation).
///
/// `partitions` is 256 in production (tests use fewer). `previous`, if any,
/// is the old `node_id_vec` and ring: the result then moves as few partition
/// copies as possible among the rings of optimal partition size.
pub fn compute_assignment(
    partitions: usize,
    rf: usize,
    zone_redundancy: ZoneRedundancy,
    roles: &[(Uuid, NodeRole)],
    previous: Option<(&[Uuid], &[u8])>,
) -> Result<Assignment, LayoutError> {
    let prep = prepare(rf, zone_redundancy, roles)?;
    let nodes = prep.storage.len();

    // Old ring translated to new storage-node indices (departed nodes and
    // nodes turned into gateways dropped).
    let old: Option<Vec<Vec<usize>>> = match previous {
        Some((old_ids, old_ring)) if !old_ring.is_empty() => {
            Some(translate_ring(partitions, rf, &prep, old_ids, old_ring)?)
        }
        _ => None,
    };

    let mut net = Network::new(partitions, rf, &prep);
    let (size, flows) = net.optimal_size(&prep, rf)?;

    if let Some(old) = &old {
        // Candidate flow: first only the old pairs, then everything.
        net.set_size_from(&prep, size, &vec![0; flows.len()]);
        let mut keep = vec![false; partitions * nodes];
        for (p, list) in old.iter().enumerate() {
            for &n in list {
                keep[p * nodes + n] = true;
            }
        }
        for (i, &arc) in net.pn_arcs.iter().enumerate() {
            if !keep[i] {
                net.g.set_capacity(arc, 0);
            } else {
                net.g.set_cost(arc, -1);
            }
        }
        net.g.max_flow(SOURCE, SINK);
        for (i, &arc) in net.pn_arcs.iter().enumerate() {
            if !keep[i] {
                net.g.set_capacity(arc, 1);
            }
        }
        let value = net.g.max_flow(SOURCE, SINK);
        if value < net.target {
            return Err(LayoutError::CheckFailed {
                reason: format!("flow {value} < {} at the optimal size", net.target),
            });
        }
        net.g.cancel_negative_cycles();
    } else {
        net.set_size_from(&prep, size, &flows);
    }

    // Ring extraction, partition by partition, zone by zone, node by node.
    let mut nodes_by_zone: Vec<Vec<usize>> = vec![vec![]; prep.zones.len()];
    for (n, &(_, _, z)) in prep.storage.iter().enumerate() {
        nodes_by_zone[z].push(n);
    }
    let mut ring = Vec::with_capacity(partitions * rf);
    let mut per_node = vec![0usize; nodes];
    let mut new_per_node = vec![0usize; nodes];
    let mut per_zone = vec![0usize; prep.zones.len()];
    for p in 0..partitions {
        for (z, zone_nodes) in nodes_by_zone.iter().enumerate() {
            let mut in_zone = false;
            for &n in zone_nodes {
                if net.g.flow(net.pn_arcs[p * nodes + n]) > 0 {
                    // n < 256 is guaranteed by `prepare`.
                    ring.push(n as u8);
                    per_node[n] += 1;
                    in_zone = true;
                    if !old.as_ref().is_some_and(|o| o[p].contains(&n)) {
                        new_per_node[n] += 1;
                    }
                }
            }
            if in_zone {
                per_zone[z] += 1;
            }
        }
    }
    if ring.len() != partitions * rf {
        return Err(LayoutError::CheckFailed {
            reason: format!(
                "ring has {} entries, expected {}",
                ring.len(),
                partitions * rf
            ),
        });
    }

    let mut node_id_vec: Vec<Uuid> = prep.storage.iter().map(|s| s.0).collect();
    node_id_vec.extend(prep.gateways.iter().copied());
    Ok(Assignment {
        node_id_vec,
        nongateway_node_count: nodes,
        ring,
        partition_size: size,
        zone_redundancy: prep.zr,
        stats: AssignmentStats {
            node_zone: prep.storage.iter().map(|s| s.2).collect(),
            node_capacity: prep.storage.iter().map(|s| s.1).collect(),
            zones: prep.zones,
            partitions_per_node: per_node,
            moved_copies: old.as_ref().map(|_| new_per_node.iter().sum()),
            new_partitions_per_node: new_per_node,
            partitions_per_zone: per_zone,
        },
    })
}

fn translate_ring(
    partitions: usize,
    rf: usize,
    prep: &Prepared,
    old_ids: &[Uuid],
    old_ring: &[u8],
) -> Result<Vec<Vec<usize>>, LayoutError> {
    if old_ring.len() != partitions * rf {
        return Err(LayoutError::CorruptPreviousRing {
            reason: format!("{} entries, expected {}", old_ring.len(), partitions * rf),
        });
    }
    let mut old = vec![Vec::with_capacity(rf); partitions];
    for (p, list) in old.iter_mut().enumerate() {
        for &i in &old_ring[p * rf..(p + 1) * rf] {
            let id = old_ids
                .get(i as usize)
                .ok_or_else(|| LayoutError::CorruptPreviousRing {
                    reason: format!("index {i} out of {} nodes", old_ids.len()),
                })?;
            if let Ok(n) = prep.storage.binary_search_by(|s| s.0.cmp(id)) {
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
    }
    Ok(old)
}

/// The optimal partition size for these roles (the bisection of
/// [`compute_assignment`] alone).
pub fn optimal_partition_size(
    partitions: usize,
    rf: usize,
    zone_redundancy: ZoneRedundancy,
    roles: &[(Uuid, NodeRole)],
) -> Result<u64, LayoutError> {
    let prep = prepare(rf, zone_redundancy, roles)?;
    let mut net = Network::new(partitions, rf, &prep);
    Ok(net.optimal_size(&prep, rf)?.0)
}

/// Checks that a ring is a valid assignment of optimal size for `roles`:
/// `node_id_vec` = storage nodes then gateways (each sorted), rf distinct
/// storage nodes per partition over at least zr zones, capacities respected,
/// and `partition_size` equal to a fresh computation of the optimum.
#[allow(clippy::too_many_arguments)]
pub fn verify_assignment(
    partitions: usize,
    rf: usize,
    zone_redundancy: ZoneRedundancy,
    roles: &[(Uuid, NodeRole)],
    node_id_vec: &[Uuid],
    nongateway_node_count: usize,
    ring: &[u8],
    partition_size: u64,
) -> Result<(), LayoutError> {
    let prep = prepare(rf, zone_redundancy, roles)?;
    let expected_ids: Vec<Uuid> = prep
        .storage
        .iter()
        .map(|s| s.0)
        .chain(prep.gateways.iter().copied())
        .collect();
    if node_id_vec != expected_ids.as_slice() || nongateway_node_count != prep.storage.len() {
        return Err(check_failed(
            "node_id_vec does not list exactly the nodes with a role \
                    (storage nodes sorted, then gateways sorted)",
        ));
    }
    if Some(ring.len()) != partitions.checked_mul(rf) {
        return Err(check_failed(format!(
            "ring has {} entries, expected {} ({partitions} partitions × rf {rf})",
            ring.len(),
            partitions * rf
        )));
    }
    let mut usage = vec![0u64; prep.storage.len()];
    for p in 0..partitions {
        let list = &ring[p * rf..(p + 1) * rf];
        let mut zones = vec![];
        for (j, &i) in list.iter().enumerate() {
            let i = i as usize;
            if i >= prep.storage.len() {
                return Err(check_failed(format!(
                    "partition {p}: index {i} is not a storage node"
                )));
            }
            if list[..j].contains(&(i as u8)) {
                return Err(check_failed(format!(
                    "partition {p}: node index {i} appears twice"
                )));
            }
            usage[i] += 1;
            if !zones.contains(&prep.storage[i].2) {
                zones.push(prep.storage[i].2);
            }
        }
        if zones.len() < prep.zr {
            return Err(check_failed(format!(
                "partition {p} spans {} zones, fewer than the zone redundancy {}",
                zones.len(),
                prep.zr
            )));
        }
    }
    for (n, &(id, cap, _)) in prep.storage.iter().enumerate() {
        if u128::from(usage[n]) * u128::from(partition_size) > u128::from(cap) {
            return Err(check_failed(format!(
                "node {id:?} holds {} partitions of {partition_size} bytes, \
                 more than its capacity {cap}",
                usage[n]
            )));
        }
    }
    let mut net = Network::new(partitions, rf, &prep);
    match net.optimal_size(&prep, rf) {
        Ok((s, _)) if s != partition_size => Err(check_failed(format!(
            "partition_size ({partition_size}) differs from the optimal value ({s})"
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(check_failed(format!(
            "could not compute the optimal partition size: {e}"
        ))),
    }
}

/// Whether a full flow exists at partition size `size` (test helper).
fn check_failed(reason: impl Into<String>) -> LayoutError {
    LayoutError::CheckFailed {
        reason: reason.into(),
    }
}

#[cfg(test)]
pub(crate) fn feasible_at(
    partitions: usize,
    rf: usize,
    zone_redundancy: ZoneRedundancy,
    roles: &[(Uuid, NodeRole)],
    size: u64,
) -> bool {
    let Ok(prep) = prepare(rf, zone_redundancy, roles) else {
        return false;
    };
    let mut net = Network::new(partitions, rf, &prep);
    net.set_size(&prep, size);
    net.g.max_flow(SOURCE, SINK) >= net.target
}

/// Number of partition copies of `new` (ids and ring) that the node holding
/// them did not hold in `old` (test and benchmark helper).
pub fn count_moves(
    rf: usize,
    old_ids: &[Uuid],
    old_ring: &[u8],
    new_ids: &[Uuid],
    new_ring: &[u8],
) -> usize {
    let mut moves = 0;
    for (p, new_list) in new_ring.chunks(rf).enumerate() {
        let old_list = old_ring.get(p * rf..(p + 1) * rf).unwrap_or(&[]);
        for &i in new_list {
            let id = new_ids.get(i as usize);
            if !old_list.iter().any(|&j| old_ids.get(j as usize) == id) {
                moves += 1;
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(zone: &str, cap: Option<u64>) -> NodeRole {
        NodeRole {
            zone: zone.into(),
            capacity: cap,
            tags: vec![],
        }
    }

    fn id(i: u8) -> Uuid {
        Uuid::from([i; 32])
    }

    #[test]
    fn three_nodes_three_zones() {
        let roles = vec![
            (id(1), role("A", Some(4000))),
            (id(2), role("B", Some(1000))),
            (id(3), role("C", Some(2000))),
        ];
        let a = compute_assignment(256, 3, ZoneRedundancy::Maximum, &roles, None).unwrap();
        assert_eq!(a.zone_redundancy, 3);
        // Every partition on all three nodes: the smallest node limits.
        assert_eq!(a.partition_size, 1000 / 256);
        assert_eq!(a.stats.partitions_per_node, vec![256, 256, 256]);
        verify_assignment(
            256,
            3,
            ZoneRedundancy::Maximum,
            &roles,
            &a.node_id_vec,
            a.nongateway_node_count,
            &a.ring,
            a.partition_size,
        )
        .unwrap();
    }

    #[test]
    fn gateways_do_not_count_as_zones() {
        // Two storage zones plus a gateway alone in a third zone: Maximum
        // must resolve to 2 (Garage would say 3 and fail).
        let roles = vec![
            (id(1), role("A", Some(1000))),
            (id(2), role("B", Some(1000))),
            (id(3), role("B", Some(1000))),
            (id(4), role("G", None)),
        ];
        let a = compute_assignment(256, 3, ZoneRedundancy::Maximum, &roles, None).unwrap();
        assert_eq!(a.zone_redundancy, 2);
        assert_eq!(a.node_id_vec[3], id(4));
        assert_eq!(a.nongateway_node_count, 3);
    }

    #[test]
    fn errors() {
        let two = vec![(id(1), role("A", Some(10))), (id(2), role("B", Some(10)))];
        assert!(matches!(
            compute_assignment(256, 3, ZoneRedundancy::Maximum, &two, None),
            Err(LayoutError::NotEnoughStorageNodes {
                storage_nodes: 2,
                replication_factor: 3
            })
        ));
        assert!(matches!(
            compute_assignment(256, 2, ZoneRedundancy::AtLeast(3), &two, None),
            Err(LayoutError::InvalidZoneRedundancy { .. })
        ));
        assert!(matches!(
            compute_assignment(256, 2, ZoneRedundancy::AtLeast(0), &two, None),
            Err(LayoutError::InvalidZoneRedundancy { .. })
        ));
        let same_zone = vec![(id(1), role("A", Some(10))), (id(2), role("A", Some(10)))];
        assert!(matches!(
            compute_assignment(256, 2, ZoneRedundancy::AtLeast(2), &same_zone, None),
            Err(LayoutError::NotEnoughZones {
                zones: 1,
                zone_redundancy: 2
            })
        ));
        let zero = vec![(id(1), role("A", Some(0))), (id(2), role("A", Some(10)))];
        assert!(matches!(
            compute_assignment(256, 1, ZoneRedundancy::Maximum, &zero, None),
            Err(LayoutError::ZeroCapacity { .. })
        ));
        // 2 nodes × 10 bytes cannot hold 256 partitions of 1 byte twice.
        assert!(matches!(
            compute_assignment(256, 2, ZoneRedundancy::Maximum, &two, None),
            Err(LayoutError::Infeasible { .. })
        ));
        let many: Vec<_> = (0..257u32)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&i.to_be_bytes());
                (Uuid::from(b), role("A", Some(1 << 30)))
            })
            .collect();
        assert!(matches!(
            compute_assignment(256, 3, ZoneRedundancy::Maximum, &many, None),
            Err(LayoutError::TooManyStorageNodes {
                storage_nodes: 257,
                max: 256
            })
        ));
        assert!(matches!(
            compute_assignment(256, 0, ZoneRedundancy::Maximum, &two, None),
            Err(LayoutError::InvalidReplicationFactor { .. })
        ));
    }

    #[test]
    fn corrupt_previous_ring() {
        let roles = vec![
            (id(1), role("A", Some(1000))),
            (id(2), role("B", Some(1000))),
        ];
        let ids = vec![id(1), id(2)];
        assert!(matches!(
            compute_assignment(4, 2, ZoneRedundancy::Maximum, &roles, Some((&ids, &[0, 1]))),
            Err(LayoutError::CorruptPreviousRing { .. })
        ));
        assert!(matches!(
            compute_assignment(1, 2, ZoneRedundancy::Maximum, &roles, Some((&ids, &[0, 7]))),
            Err(LayoutError::CorruptPreviousRing { .. })
        ));
    }
}
