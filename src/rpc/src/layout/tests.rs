//! Tests of the layout module: scenarios on the history API, exact CLI
//! text, and property tests of the assignment (validity, optimality of the
//! partition size, determinism, minimal moves checked against exhaustive
//! search on small instances).

use garage_util::crdt::Crdt;
use garage_util::data::{blake2sum, Uuid};
use garage_util::encode::Migrate;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::assign::feasible_at;
use super::*;

fn id(i: u8) -> Uuid {
    Uuid::from([i; 32])
}

fn role(zone: &str, cap: Option<u64>) -> NodeRole {
    NodeRole {
        zone: zone.into(),
        capacity: cap,
        tags: vec![],
    }
}

fn stage_all(h: &mut LayoutHistory, nodes: &[(u8, &str, u64)], zr: ZoneRedundancy) {
    for &(i, zone, cap) in nodes {
        h.stage_assign(id(i), role(zone, Some(cap))).unwrap();
    }
    h.stage_zone_redundancy(zr).unwrap();
}

fn apply(h: &LayoutHistory) -> (LayoutHistory, Vec<String>) {
    h.apply_staged_changes(Some(h.current().version + 1))
        .unwrap()
}

/// A naive greedy filler at partition size `size`: per partition, `zr`
/// nodes of distinct zones then the remaining copies, always taking the
/// node with the most remaining slots. Returns true if it places every copy
/// (which, at s* + 1, would prove s* not optimal).
fn naive_fills(v: &LayoutVersion, size: u64) -> bool {
    let zr = v.effective_zone_redundancy();
    let rf = v.replication_factor;
    let nodes: Vec<(String, u64)> = v
        .storage_nodes()
        .iter()
        .map(|n| {
            let r = v.node_role(n).unwrap();
            (r.zone.clone(), (r.capacity.unwrap() / size).min(256))
        })
        .collect();
    let mut left: Vec<u64> = nodes.iter().map(|n| n.1).collect();
    for _ in 0..NB_PARTITIONS {
        let mut chosen: Vec<usize> = vec![];
        for copy in 0..rf {
            let best = (0..nodes.len())
                .filter(|&n| left[n] > 0 && !chosen.contains(&n))
                .filter(|&n| copy >= zr || !chosen.iter().any(|&c| nodes[c].0 == nodes[n].0))
                .max_by_key(|&n| (left[n], std::cmp::Reverse(n)));
            match best {
                Some(n) => chosen.push(n),
                None => return false,
            }
        }
        for &n in &chosen {
            left[n] -= 1;
        }
    }
    true
}

fn check_version(v: &LayoutVersion) {
    assert_eq!(v.check(), Ok(()));
    assert!(!feasible_at(
        NB_PARTITIONS,
        v.replication_factor,
        v.parameters.zone_redundancy,
        &v.roles_list(),
        v.partition_size + 1
    ));
    assert!(!naive_fills(v, v.partition_size + 1));
}

/// The four layouts of Garage's `test_assignment`, applied in sequence.
#[test]
fn four_step_scenario() {
    let mut h = LayoutHistory::new(3);
    stage_all(
        &mut h,
        &[(1, "A", 4000), (2, "B", 1000), (3, "C", 2000)],
        ZoneRedundancy::AtLeast(3),
    );
    let (mut h, _) = apply(&h);
    check_version(h.current());
    assert_eq!(h.current().version, 1);
    assert_eq!(h.versions.len(), 1, "the empty version 0 is dropped");

    let zones = ["A", "B", "C", "C", "C", "B", "G", "H", "I"];
    let caps2 = [4000, 1000, 1000, 3000, 1000, 1000, 2000, 10000, 2000];
    let caps3 = [4000, 1000, 2000, 7000, 1000, 1000, 2000, 10000, 2000];
    let caps4 = [
        4_000_000, 4_000_000, 2_000_000, 7_000_000, 1_000_000, 9_000_000, 2_000_000, 10_000,
        2_000_000,
    ];
    for (caps, zr) in [(caps2, 2), (caps3, 3), (caps4, 1)] {
        let nodes: Vec<(u8, &str, u64)> =
            (0..9).map(|i| (i as u8 + 1, zones[i], caps[i])).collect();
        stage_all(&mut h, &nodes, ZoneRedundancy::AtLeast(zr));
        let (next, msg) = apply(&h);
        check_version(next.current());
        assert!(msg.iter().any(|l| l.starts_with("A total of ")));
        h = next;
    }
    assert_eq!(h.current().version, 4);
}

#[test]
fn staging_crdt() {
    let base = LayoutHistory::new(3);
    let mut a = base.clone();
    let mut b = base.clone();
    a.stage_assign(id(1), role("dc1", Some(1000))).unwrap();
    b.stage_assign(id(2), role("dc2", Some(2000))).unwrap();
    b.stage_zone_redundancy(ZoneRedundancy::AtLeast(2)).unwrap();
    let mut ab = a.clone();
    assert!(ab.merge(&b));
    let mut ba = b.clone();
    assert!(ba.merge(&a));
    assert_eq!(ab, ba, "staging merge commutes");
    assert_eq!(ab.staged_role_changes().len(), 2);
    assert!(ab.staged_parameters_changed());
    assert!(!ab.merge(&b), "merging again changes nothing");

    // A later edit of the same node wins everywhere.
    let mut c = ab.clone();
    c.stage_remove(id(1));
    let mut d = ab.clone();
    d.merge(&c);
    assert_eq!(
        d.staging.get().roles.get(&id(1)),
        Some(&None),
        "removal staged after assignment wins"
    );

    // Revert supersedes staging edits that still carry the old outer ts.
    let mut reverted = ab.clone();
    reverted.revert_staged_changes();
    assert!(!reverted.has_staged_changes());
    let mut late = base.clone();
    late.stage_assign(id(3), role("dc3", Some(10))).unwrap();
    reverted.merge(&late);
    assert!(!reverted.has_staged_changes(), "stale staging is discarded");
    assert_eq!(reverted.current().version, 0, "revert keeps the version");

    // Apply too.
    let mut h = base.clone();
    stage_all(
        &mut h,
        &[(1, "A", 1000), (2, "B", 1000), (3, "C", 1000)],
        ZoneRedundancy::Maximum,
    );
    let mut stale = h.clone();
    let (mut applied, _) = apply(&h);
    stale.stage_assign(id(4), role("D", Some(1000))).unwrap();
    applied.merge(&stale);
    assert!(!applied.has_staged_changes());
    assert_eq!(applied.current().version, 1);
}

#[test]
fn apply_requires_next_version() {
    let mut h = LayoutHistory::new(1);
    h.stage_assign(id(1), role("A", Some(1000))).unwrap();
    let e = h.apply_staged_changes(None).unwrap_err();
    assert_eq!(e, LayoutError::MissingVersion { expected: 1 });
    assert!(e.to_string().starts_with("please specify the version"));
    assert_eq!(
        h.apply_staged_changes(Some(2)).unwrap_err(),
        LayoutError::WrongVersion {
            given: 2,
            expected: 1
        }
    );
    assert_eq!(
        h.apply_staged_changes(Some(0)).unwrap_err(),
        LayoutError::WrongVersion {
            given: 0,
            expected: 1
        }
    );
    assert!(h.apply_staged_changes(Some(1)).is_ok());
    assert!(matches!(
        h.stage_assign(id(2), role("A", Some(0))),
        Err(LayoutError::ZeroCapacity { .. })
    ));
    assert!(matches!(
        h.stage_zone_redundancy(ZoneRedundancy::AtLeast(2)),
        Err(LayoutError::InvalidZoneRedundancy { .. })
    ));
}

#[test]
fn history_merge_and_trackers() {
    let mut h = LayoutHistory::new(2);
    stage_all(
        &mut h,
        &[(1, "A", 1000), (2, "B", 1000)],
        ZoneRedundancy::Maximum,
    );
    let (v1, _) = apply(&h);
    let mut h2 = v1.clone();
    h2.stage_assign(id(3), role("C", Some(1000))).unwrap();
    let (v2, _) = apply(&h2);
    let mut h3 = v2.clone();
    h3.stage_remove(id(1));
    let (v3, _) = apply(&h3);
    assert_eq!(
        v3.versions.len(),
        3,
        "old versions stay active until synced"
    );
    assert_eq!(v3.min_stored(), 1);

    // A node at version 1 absorbs versions 2 and 3 in order.
    let mut old = v1.clone();
    assert!(old.merge(&v3));
    assert_eq!(old.current().version, 3);
    assert_eq!(old.versions, v3.versions);
    assert!(!old.merge(&v3));

    // Writes go to each active version's set; reads to the synced version.
    let sets = v3.write_sets_of(&blake2sum(b"x"));
    assert_eq!(sets.len(), 3);
    assert_eq!(v3.sync_map_min(2), 1);

    // Everybody syncs and acknowledges version 3: 1 and 2 retire.
    let mut done = v3.clone();
    for n in done.all_nodes() {
        done.update_trackers.ack_map.set_max(n, 3);
        done.update_trackers.sync_map.set_max(n, 3);
    }
    assert_eq!(done.sync_map_min(2), 3);
    assert_eq!(done.ack_map_min(), 3);
    for n in done.all_nodes() {
        done.refresh_trackers(n, 2);
    }
    assert_eq!(done.versions.len(), 1);
    assert_eq!(done.current().version, 3);
    assert_eq!(done.old_versions.len(), 2);
    assert!(done.check().is_ok());

    // A node that is behind the peer's oldest active version takes the
    // peer's versions wholesale; trackers merge by max.
    let mut behind = v1.clone();
    behind.update_trackers.ack_map.set_max(id(9), 7);
    assert!(behind.merge(&done));
    assert_eq!(behind.versions, done.versions);
    assert_eq!(behind.update_trackers.ack_map.get(&id(9), 0), 7);
    assert_eq!(behind.update_trackers.sync_map.get(&id(2), 0), 3);

    // Same-numbered but different versions are not replaced.
    let mut fork = v1.clone();
    fork.stage_assign(id(4), role("D", Some(5000))).unwrap();
    let (fork2, _) = apply(&fork);
    let mut mine = v2.clone();
    mine.merge(&fork2);
    assert_eq!(mine.current(), v2.current());

    // Digest reflects versions, trackers and staging.
    let d1 = v3.digest();
    assert_eq!(d1.current_version, 3);
    assert_eq!(d1.active_versions, 3);
    let mut t = v3.clone();
    t.update_trackers.sync_map.set_max(id(1), 3);
    assert_ne!(t.digest().trackers_hash, d1.trackers_hash);
    assert_eq!(t.digest().staging_hash, d1.staging_hash);

    // Non-consistent modes keep only the newest version.
    let mut single = v3.clone();
    assert!(single.keep_only_current());
    assert_eq!(single.versions.len(), 1);
    assert_eq!(single.min_stored(), 3);
    assert_eq!(single.sync_map_min(2), 3);
}

#[test]
fn former_owners_are_remembered_for_gc() {
    // rf 2: nodes 1 and 2 store everything; node 3 joins and takes a share,
    // so some partitions move off node 1 or 2.
    let mut h = LayoutHistory::new(2);
    stage_all(
        &mut h,
        &[(1, "A", 1000), (2, "B", 1000)],
        ZoneRedundancy::Maximum,
    );
    let (v1, _) = apply(&h);
    let mut h2 = v1.clone();
    h2.stage_assign(id(3), role("C", Some(1000))).unwrap();
    let (mut v2, _) = apply(&h2);
    let moved = partitions()
        .map(|(_, hash)| hash)
        .find(|hash| v2.current().nodes_of(hash).contains(&id(3)))
        .expect("node 3 takes some partitions");
    // While both versions are live, the old owner is a storage node.
    assert!(v2.former_storage_nodes_of(&moved).is_empty());
    for n in v2.all_nodes() {
        v2.update_trackers.ack_map.set_max(n, 2);
        v2.update_trackers.sync_map.set_max(n, 2);
    }
    for n in v2.all_nodes() {
        v2.refresh_trackers(n, 2);
    }
    assert_eq!(v2.versions.len(), 1, "version 1 retired");
    let live = v2.current().nodes_of(&moved);
    let former = v2.former_storage_nodes_of(&moved);
    assert_eq!(former.len(), 1, "{former:?}");
    let old_owner = former[0];
    assert!(!live.contains(&old_owner));
    // Removed from the layout altogether, it is still listed: it would
    // hand off what it holds if it ran again.
    let mut h3 = v2.clone();
    h3.stage_remove(old_owner);
    h3.stage_assign(id(4), role("D", Some(1000))).unwrap();
    let (v3, _) = apply(&h3);
    assert!(!v3.current().all_nodes().contains(&old_owner));
    assert!(v3.former_storage_nodes_of(&moved).contains(&old_owner));
}

#[test]
fn encode_round_trip() {
    let mut h = LayoutHistory::new(3);
    let mut tagged = role("dc1", Some(1_000_000_000));
    tagged.tags = vec!["a".into(), "b".into()];
    h.stage_assign(id(1), tagged).unwrap();
    h.stage_assign(id(2), role("dc2", Some(2_000_000_000)))
        .unwrap();
    h.stage_assign(id(3), role("dc3", Some(1_000_000_000)))
        .unwrap();
    h.stage_assign(id(4), role("dc4", None)).unwrap();
    let (mut h, _) = apply(&h);
    h.stage_remove(id(4));
    h.update_trackers.ack_map.set_max(id(1), 1);
    let bytes = h.encode().unwrap();
    assert!(bytes.starts_with(b"G010lh"));
    let back = LayoutHistory::decode(&bytes).unwrap();
    assert_eq!(back, h);
    assert!(LayoutHistory::decode(b"G010lh\x00garbage").is_none());
    assert!(back.check().is_ok());
}

fn three_node_history() -> LayoutHistory {
    let mut h = LayoutHistory::new(3);
    let mut r1 = role("dc1", Some(1_000_000_000));
    r1.tags = vec!["fast".into(), "ssd".into()];
    h.stage_assign(id(1), r1).unwrap();
    h.stage_assign(id(2), role("dc2", Some(1_000_000_000)))
        .unwrap();
    h.stage_assign(id(3), role("dc3", Some(2_000_000_000)))
        .unwrap();
    h
}

#[test]
fn show_and_apply_text() {
    let staged = three_node_history();
    let show = format_layout_show(&staged);
    let expected_show = [
        "==== CURRENT CLUSTER LAYOUT ====",
        "No nodes currently have a role in the cluster.",
        "See `garage status` to view available nodes.",
        "",
        "Current cluster layout version: 0",
        "",
        "==== STAGED ROLE CHANGES ====",
        "ID                Tags      Zone  Capacity",
        "0101010101010101  fast,ssd  dc1   1.0 GB",
        "0202020202020202            dc2   1.0 GB",
        "0303030303030303            dc3   2.0 GB",
        "",
        "",
        "==== NEW CLUSTER LAYOUT AFTER APPLYING CHANGES ====",
        "ID                Tags      Zone  Capacity  Usable capacity",
        "0101010101010101  fast,ssd  dc1   1.0 GB    1.0 GB (100.0%)",
        "0202020202020202            dc2   1.0 GB    1.0 GB (100.0%)",
        "0303030303030303            dc3   2.0 GB    1.0 GB (50.0%)",
        "",
        "Zone redundancy: maximum",
        "",
        "==== COMPUTATION OF A NEW PARTITION ASSIGNATION ====",
        "",
        "Partitions are replicated 3 times on at least 3 distinct zones.",
        "",
        "Optimal partition size:                     3.9 MB",
        "Usable capacity / total cluster capacity:   3.0 GB / 4.0 GB (75.0 %)",
        "Effective capacity (replication factor 3):  1.0 GB",
        "",
        "If the percentage is too low, it might be that the cluster topology and redundancy \
         constraints are forcing the use of nodes/zones with small storage capacities.",
        "You might want to move storage capacity between zones or relax the redundancy constraint.",
        "See the detailed statistics below and look for saturated nodes/zones.",
        "",
        "dc1                 Tags      Partitions        Capacity  Usable capacity",
        "  0101010101010101  fast,ssd  256 (256 new)     1.0 GB    1.0 GB (100.0%)",
        "  TOTAL                       256 (256 unique)  1.0 GB    1.0 GB (100.0%)",
        "",
        "dc2                 Tags      Partitions        Capacity  Usable capacity",
        "  0202020202020202            256 (256 new)     1.0 GB    1.0 GB (100.0%)",
        "  TOTAL                       256 (256 unique)  1.0 GB    1.0 GB (100.0%)",
        "",
        "dc3                 Tags      Partitions        Capacity  Usable capacity",
        "  0303030303030303            256 (256 new)     2.0 GB    1.0 GB (50.0%)",
        "  TOTAL                       256 (256 unique)  2.0 GB    1.0 GB (50.0%)",
        "",
        "To revert all proposed changes, type: garage layout revert --yes",
        "To enact the staged role changes, type:",
        "",
        "    garage layout apply --version 1",
    ];
    assert_eq!(show, expected_show);

    let (applied, msg) = apply(&staged);
    assert_eq!(msg, expected_show[21..45]);
    let show = format_layout_show(&applied);
    assert_eq!(
        show,
        [
            &expected_show[..1],
            &expected_show[14..20],
            &["", "Current cluster layout version: 1",]
        ]
        .concat()
    );

    // Relayout after adding a fourth node: previous size and moves appear.
    let mut more = applied.clone();
    more.stage_assign(id(4), role("dc1", Some(1_000_000_000)))
        .unwrap();
    more.stage_zone_redundancy(ZoneRedundancy::AtLeast(2))
        .unwrap();
    let show = format_layout_show(&more);
    assert!(show.contains(&"0404040404040404        dc1   1.0 GB".to_string()));
    assert!(show.contains(&"Zone redundancy: 2".to_string()));
    assert!(show.contains(
        &"Optimal partition size:                     5.8 MB (3.9 MB in previous layout)"
            .to_string()
    ));
    // The new node must receive 170 copies, and nothing else moves.
    assert!(show
        .contains(&"A total of 170 new copies of partitions need to be transferred.".to_string()));
    assert!(show.contains(
        &"  0404040404040404            170 (170 new)     1.0 GB    994.2 MB (99.4%)".to_string()
    ));
    assert_eq!(show.last().unwrap(), "    garage layout apply --version 2");

    // An impossible change shows the error instead of the hint.
    let mut bad = applied.clone();
    bad.stage_remove(id(3));
    let show = format_layout_show(&bad);
    assert!(show.contains(&"0303030303030303  REMOVED".to_string()));
    assert!(show.contains(
        &"Error while trying to compute the assignment: the number of nodes with a positive \
          capacity (2) is smaller than the replication factor (3)"
            .to_string()
    ));
}

#[test]
fn history_text() {
    let (h1, _) = apply(&three_node_history());
    let text = format_layout_history(&h1, 2);
    assert_eq!(
        text[..4],
        [
            "==== LAYOUT HISTORY ====",
            "Version  Status   Storage nodes  Gateway nodes",
            "#1       current  3              0",
            "",
        ]
    );
    let mut h = h1.clone();
    h.stage_assign(id(9), role("dc1", None)).unwrap();
    let (h2, _) = apply(&h);
    let text = format_layout_history(&h2, 2);
    assert_eq!(
        text[..8],
        [
            "==== LAYOUT HISTORY ====",
            "Version  Status    Storage nodes  Gateway nodes",
            "#2       current   3              1",
            "#1       draining  3              0",
            "",
            "==== UPDATE TRACKERS ====",
            "Several layout versions are currently live in the cluster, and data is being migrated.",
            "This is the internal data that the cluster stores to know which nodes have what data.",
        ]
    );
    assert!(text.contains(&"Node              Ack  Sync  Sync_ack".to_string()));
    assert!(text.contains(&"0909090909090909  #1   #1    #1".to_string()));
    // Nobody synced yet: no partition has reached version 2.
    assert!(
        text.iter().any(|l| l.starts_with(
            "Transition to layout version 2: 0 of 256 partitions synced; waiting for every node"
        )),
        "{text:?}"
    );
    // Once every node acked and synced version 2, every partition has.
    let mut h3 = h2.clone();
    for n in h3.all_nodes() {
        h3.update_trackers.ack_map.set_max(n, 2);
        h3.update_trackers.sync_map.set_max(n, 2);
    }
    assert_eq!(h3.transition_progress(2), Some((256, 256)));
    assert_eq!(h1.transition_progress(2), None);
}

#[test]
fn gateways_do_not_count_as_zones() {
    let mut h = LayoutHistory::new(3);
    h.stage_assign(id(1), role("A", Some(1000))).unwrap();
    h.stage_assign(id(2), role("A", Some(1000))).unwrap();
    h.stage_assign(id(3), role("B", Some(1000))).unwrap();
    h.stage_assign(id(4), role("G", None)).unwrap();
    let (h, msg) = apply(&h);
    assert!(msg
        .contains(&"Partitions are replicated 3 times on at least 2 distinct zones.".to_string()));
    assert_eq!(h.current().effective_zone_redundancy(), 2);
    assert_eq!(h.current().gateway_nodes(), &[id(4)]);
    assert_eq!(h.current().storage_nodes(), &[id(1), id(2), id(3)]);
    assert_eq!(h.current().nodes_of(&blake2sum(b"k")).len(), 3);
    assert_eq!(h.current().node_role(&id(4)), Some(&role("G", None)));
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Cluster {
    roles: Vec<(Uuid, NodeRole)>,
    rf: usize,
    zr: ZoneRedundancy,
}

fn node_id(seed: u64, i: usize) -> Uuid {
    let mut b = seed.to_be_bytes().to_vec();
    b.extend((i as u64).to_be_bytes());
    blake2sum(&b)
}

fn capacity() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        1 => Just(None),
        6 => (1u64..=100, 0u32..=3).prop_map(|(m, e)| Some(m * 10u64.pow(e) * 1_000_000)),
    ]
}

fn zr_of(rf: usize, pick: usize) -> ZoneRedundancy {
    if pick == 0 {
        ZoneRedundancy::Maximum
    } else {
        ZoneRedundancy::AtLeast(1 + (pick - 1) % rf)
    }
}

fn cluster(max_nodes: usize) -> impl Strategy<Value = Cluster> {
    let nodes = prop_oneof![8 => 1usize..=12, 1 => 1usize..=max_nodes];
    (
        nodes,
        1usize..=10,
        any::<u64>(),
        prop::sample::select(vec![1usize, 2, 3, 5]),
        0usize..=5,
    )
        .prop_flat_map(|(n, zones, seed, rf, pick)| {
            prop::collection::vec((0..zones, capacity()), n).prop_map(move |spec| Cluster {
                roles: spec
                    .into_iter()
                    .enumerate()
                    .map(|(i, (z, cap))| (node_id(seed, i), role(&format!("z{z}"), cap)))
                    .collect(),
                rf,
                zr: zr_of(rf, pick),
            })
        })
}

/// Asserts that an error is justified by the inputs.
fn assert_error_justified(c: &Cluster, e: &LayoutError) {
    let storage: Vec<&NodeRole> = c
        .roles
        .iter()
        .map(|r| &r.1)
        .filter(|r| r.capacity.is_some())
        .collect();
    let mut zones: Vec<&str> = storage.iter().map(|r| r.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    match e {
        LayoutError::NotEnoughStorageNodes { storage_nodes, .. } => {
            assert!(*storage_nodes < c.rf);
            assert_eq!(*storage_nodes, storage.len());
        }
        LayoutError::NotEnoughZones {
            zones: z,
            zone_redundancy,
        } => {
            assert_eq!(*z, zones.len());
            assert!(*z < *zone_redundancy);
            assert!(
                matches!(c.zr, ZoneRedundancy::AtLeast(_)),
                "Maximum never lacks zones"
            );
        }
        LayoutError::Infeasible { .. } => {
            // The capacities cannot even hold partitions of one byte: then
            // some node holds fewer than 256 one-byte partitions.
            assert!(storage.iter().any(|r| r.capacity.unwrap_or(0) < 256));
        }
        other => panic!("unexpected error {other:?}"),
    }
}

fn shuffled(roles: &[(Uuid, NodeRole)], seed: u64) -> Vec<(Uuid, NodeRole)> {
    let mut r = roles.to_vec();
    r.shuffle(&mut StdRng::seed_from_u64(seed));
    r
}

fn verify(c: &Cluster, partitions: usize, a: &Assignment) {
    verify_assignment(
        partitions,
        c.rf,
        c.zr,
        &c.roles,
        &a.node_id_vec,
        a.nongateway_node_count,
        &a.ring,
        a.partition_size,
    )
    .unwrap();
    assert!(!feasible_at(
        partitions,
        c.rf,
        c.zr,
        &c.roles,
        a.partition_size + 1
    ));
}

/// A random change: add, remove or resize a node, or turn one into a gateway.
fn mutate(c: &Cluster, kind: usize, pick: usize, seed: u64, cap: Option<u64>) -> Cluster {
    let mut out = c.clone();
    let i = pick % out.roles.len().max(1);
    match kind {
        0 => out.roles.push((
            node_id(seed ^ 0xabcd, 7),
            role(&format!("z{}", pick % 4), cap),
        )),
        1 if !out.roles.is_empty() => {
            out.roles.remove(i);
        }
        _ if !out.roles.is_empty() => out.roles[i].1.capacity = cap,
        _ => (),
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Valid, optimal and deterministic on random clusters (256 partitions).
    #[test]
    fn random_clusters_are_valid_optimal_deterministic(c in cluster(100), seed in any::<u64>()) {
        match compute_assignment(NB_PARTITIONS, c.rf, c.zr, &c.roles, None) {
            Ok(a) => {
                verify(&c, NB_PARTITIONS, &a);
                let again = compute_assignment(NB_PARTITIONS, c.rf, c.zr, &shuffled(&c.roles, seed), None).unwrap();
                prop_assert_eq!(&again, &a);
                let zones = a.stats.zones.len();
                if c.zr == ZoneRedundancy::Maximum {
                    prop_assert_eq!(a.zone_redundancy, zones.min(c.rf));
                }
            }
            Err(e) => assert_error_justified(&c, &e),
        }
    }

    /// After a change, the relayout moves no more copies than a fresh
    /// computation would, and is itself valid and deterministic.
    #[test]
    fn relayout_moves_at_most_fresh(
        c in cluster(40),
        kind in 0usize..3,
        pick in any::<usize>(),
        seed in any::<u64>(),
        cap in capacity(),
        partitions in prop::sample::select(vec![16usize, 64, 256]),
    ) {
        let Ok(a) = compute_assignment(partitions, c.rf, c.zr, &c.roles, None) else {
            return Ok(());
        };
        let c2 = mutate(&c, kind, pick, seed, cap);
        let prev = Some((a.node_id_vec.as_slice(), a.ring.as_slice()));
        let b = match compute_assignment(partitions, c2.rf, c2.zr, &c2.roles, prev) {
            Ok(b) => b,
            Err(e) => {
                assert_error_justified(&c2, &e);
                return Ok(());
            }
        };
        verify(&c2, partitions, &b);
        let moves = count_moves(c.rf, &a.node_id_vec, &a.ring, &b.node_id_vec, &b.ring);
        prop_assert_eq!(Some(moves), b.stats.moved_copies);
        let fresh = compute_assignment(partitions, c2.rf, c2.zr, &c2.roles, None).unwrap();
        prop_assert_eq!(fresh.partition_size, b.partition_size);
        let fresh_moves = count_moves(c.rf, &a.node_id_vec, &a.ring, &fresh.node_id_vec, &fresh.ring);
        prop_assert!(moves <= fresh_moves, "moves {} > fresh {}", moves, fresh_moves);
        let again = compute_assignment(partitions, c2.rf, c2.zr, &shuffled(&c2.roles, seed), prev).unwrap();
        prop_assert_eq!(&again, &b);
    }
}

// ---- exhaustive search on tiny instances ----

/// Exhaustive search over all valid assignments at `size`: the minimum
/// number of copies outside `old` (per partition, lists of node indices),
/// if it is below `bound`.
#[allow(clippy::too_many_arguments)]
fn search_better(
    partitions: usize,
    rf: usize,
    zr: usize,
    caps: &[u64],
    zones: &[usize],
    size: u64,
    old: &[Vec<usize>],
    bound: usize,
) -> Option<usize> {
    let n = caps.len();
    // All rf-subsets spanning at least zr zones.
    let mut sets: Vec<Vec<usize>> = vec![];
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize != rf {
            continue;
        }
        let set: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let mut zs: Vec<usize> = set.iter().map(|&i| zones[i]).collect();
        zs.sort_unstable();
        zs.dedup();
        if zs.len() >= zr {
            sets.push(set);
        }
    }
    let mut left: Vec<u64> = caps.iter().map(|c| c / size).collect();
    let mut best = bound;
    let mut found = None;
    #[allow(clippy::too_many_arguments)]
    fn rec(
        p: usize,
        cost: usize,
        partitions: usize,
        sets: &[Vec<usize>],
        old: &[Vec<usize>],
        left: &mut Vec<u64>,
        best: &mut usize,
        found: &mut Option<usize>,
    ) {
        if cost >= *best {
            return;
        }
        if p == partitions {
            *best = cost;
            *found = Some(cost);
            return;
        }
        let mut order: Vec<(usize, &Vec<usize>)> = sets
            .iter()
            .map(|s| (s.iter().filter(|i| !old[p].contains(i)).count(), s))
            .collect();
        order.sort();
        for (c, s) in order {
            if s.iter().all(|&i| left[i] > 0) {
                for &i in s {
                    left[i] -= 1;
                }
                rec(p + 1, cost + c, partitions, sets, old, left, best, found);
                for &i in s {
                    left[i] += 1;
                }
            }
        }
    }
    rec(
        0, 0, partitions, &sets, old, &mut left, &mut best, &mut found,
    );
    found
}

fn tiny_cluster() -> impl Strategy<Value = (Cluster, usize)> {
    (
        2usize..=5,
        1usize..=3,
        any::<u64>(),
        1usize..=3,
        0usize..=3,
        4usize..=8,
    )
        .prop_flat_map(|(n, zones, seed, rf, pick, partitions)| {
            let rf = rf.min(n);
            prop::collection::vec((0..zones, 1u64..=12), n).prop_map(move |spec| {
                (
                    Cluster {
                        roles: spec
                            .into_iter()
                            .enumerate()
                            .map(|(i, (z, cap))| {
                                (node_id(seed, i), role(&format!("z{z}"), Some(cap * 10)))
                            })
                            .collect(),
                        rf,
                        zr: zr_of(rf, pick),
                    },
                    partitions,
                )
            })
        })
}

fn indexed(c: &Cluster, a: &Assignment) -> (Vec<u64>, Vec<usize>) {
    let caps = a.stats.node_capacity.clone();
    let zones = a.stats.node_zone.clone();
    assert_eq!(
        caps.len(),
        c.roles.iter().filter(|r| r.1.capacity.is_some()).count()
    );
    (caps, zones)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// On tiny instances the partition size is optimal (no assignment at
    /// all exists at size + 1) and the number of moves is the minimum over
    /// all valid assignments at the optimal size.
    #[test]
    fn tiny_instances_match_exhaustive_search(
        (c, partitions) in tiny_cluster(),
        kind in 0usize..3,
        pick in any::<usize>(),
        seed in any::<u64>(),
        cap in (1u64..=12).prop_map(|c| Some(c * 10)),
    ) {
        let Ok(a) = compute_assignment(partitions, c.rf, c.zr, &c.roles, None) else {
            return Ok(());
        };
        verify(&c, partitions, &a);
        let (caps, zones) = indexed(&c, &a);
        let none = vec![vec![]; partitions];
        prop_assert_eq!(
            search_better(partitions, c.rf, a.zone_redundancy, &caps, &zones, a.partition_size + 1, &none, usize::MAX),
            None,
            "an assignment exists at size + 1"
        );

        let c2 = mutate(&c, kind, pick, seed, cap);
        let prev = Some((a.node_id_vec.as_slice(), a.ring.as_slice()));
        let Ok(b) = compute_assignment(partitions, c2.rf, c2.zr, &c2.roles, prev) else {
            return Ok(());
        };
        verify(&c2, partitions, &b);
        let moves = b.stats.moved_copies.unwrap();
        let (caps2, zones2) = indexed(&c2, &b);
        // Old ring in the new indices.
        let old: Vec<Vec<usize>> = (0..partitions)
            .map(|p| {
                a.ring[p * c.rf..(p + 1) * c.rf]
                    .iter()
                    .filter_map(|&i| {
                        let uuid = a.node_id_vec[i as usize];
                        b.node_id_vec[..b.nongateway_node_count].iter().position(|x| *x == uuid)
                    })
                    .collect()
            })
            .collect();
        let better = search_better(partitions, c2.rf, b.zone_redundancy, &caps2, &zones2, b.partition_size, &old, moves);
        prop_assert_eq!(better, None, "exhaustive search found fewer moves than {}", moves);
    }
}

#[test]
fn crdt_laws_on_staging() {
    // Replicas staging different nodes converge whatever the merge order.
    let base = three_node_history();
    let (base, _) = apply(&base);
    let mut reps: Vec<LayoutHistory> = (0..3).map(|_| base.clone()).collect();
    reps[0].stage_assign(id(7), role("x", Some(5))).unwrap();
    reps[1].stage_remove(id(2));
    reps[2]
        .stage_zone_redundancy(ZoneRedundancy::AtLeast(2))
        .unwrap();
    let mut s: Vec<_> = reps.iter().map(|r| r.staging.clone()).collect();
    garage_util::crdt::laws::check(&s[0], &s[1], &s[2]);
    let mut all = s.remove(0);
    for x in s.iter() {
        all.merge(x);
    }
    assert_eq!(all.get().roles.len(), 2);
}
