//! Property tests of the merge laws of the layout's CRDTs: the staging area
//! (`LayoutStaging`, and the `Lww<LayoutStaging>` register that histories
//! gossip), and the `AutoCrdt` values it holds (`NodeRole`,
//! `LayoutParameters`).
//!
//! Staging areas are made the way the CLI makes them: random stage, revert
//! and apply commands on three replicas of a history, with gossip merges in
//! between. These calls take their timestamps from the wall clock. Steps a
//! millisecond apart often write the same timestamp, so the tie-breaks get
//! tested too, but a failing case may not replay exactly.

use garage_util::crdt::{laws, Lww};
use garage_util::data::Uuid;
use garage_util::encode::Migrate;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{LayoutHistory, LayoutParameters, LayoutStaging, NodeRole, ZoneRedundancy};

const REPLICATION_FACTOR: usize = 2;

fn id(i: u8) -> Uuid {
    Uuid::from([i; 32])
}

fn role(zone: u8, cap: u64, tagged: bool) -> NodeRole {
    NodeRole {
        zone: format!("z{zone}"),
        capacity: Some(cap * 1_000_000_000),
        tags: if tagged { vec!["ssd".into()] } else { vec![] },
    }
}

/// One CLI command, or one gossip exchange, on one replica.
#[derive(Clone, Debug)]
enum Op {
    /// `garage layout assign`.
    Assign {
        node: u8,
        zone: u8,
        cap: u64,
        tagged: bool,
    },
    /// `garage layout remove`.
    Remove { node: u8 },
    /// `garage layout config -r` (`None` = maximum).
    ZoneRedundancy(Option<usize>),
    /// `garage layout revert`.
    Revert,
    /// `garage layout apply` with the next version number.
    Apply,
    /// Receiving another replica's history.
    MergeFrom(usize),
}

fn op() -> impl Strategy<Value = (usize, Op)> {
    let op = prop_oneof![
        4 => (1u8..=5, 0u8..3, 1u64..=3, any::<bool>())
            .prop_map(|(node, zone, cap, tagged)| Op::Assign { node, zone, cap, tagged }),
        2 => (1u8..=5).prop_map(|node| Op::Remove { node }),
        2 => prop::option::of(1usize..=REPLICATION_FACTOR).prop_map(Op::ZoneRedundancy),
        1 => Just(Op::Revert),
        1 => Just(Op::Apply),
        4 => (0usize..3).prop_map(Op::MergeFrom),
    ];
    (0usize..3, op)
}

/// A history with three storage nodes in three zones, applied.
fn base() -> LayoutHistory {
    let mut h = LayoutHistory::new(REPLICATION_FACTOR);
    for i in 1..=3 {
        h.stage_assign(id(i), role(i, 1, false))
            .expect("invariant: a non-zero capacity");
    }
    let (h, _) = h
        .apply_staged_changes(Some(1))
        .expect("three nodes in three zones can be laid out");
    h
}

/// Replays `ops`; returns the three replicas and every staging register
/// any of them held (the base's first).
fn replay(ops: &[(usize, Op)]) -> (Vec<LayoutHistory>, Vec<Lww<LayoutStaging>>) {
    let base = base();
    let mut seen = vec![base.staging.clone()];
    let mut reps = vec![base.clone(), base.clone(), base];
    for (r, op) in ops {
        let h = &mut reps[*r];
        match op {
            Op::Assign {
                node,
                zone,
                cap,
                tagged,
            } => h
                .stage_assign(id(*node), role(*zone, *cap, *tagged))
                .expect("invariant: a non-zero capacity"),
            Op::Remove { node } => h.stage_remove(id(*node)),
            Op::ZoneRedundancy(n) => h
                .stage_zone_redundancy(n.map_or(ZoneRedundancy::Maximum, ZoneRedundancy::AtLeast))
                .expect("invariant: 1 <= n <= replication factor"),
            Op::Revert => h.revert_staged_changes(),
            Op::Apply => {
                // Refused layouts (too few zones left...) change nothing.
                if let Ok((next, _)) = h.apply_staged_changes(Some(h.current().version + 1)) {
                    *h = next;
                }
            }
            Op::MergeFrom(from) => {
                let other = reps[*from].clone();
                reps[*r].merge(&other);
            }
        }
        seen.push(reps[*r].staging.clone());
    }
    (reps, seen)
}

fn role_v() -> impl Strategy<Value = Option<NodeRole>> {
    prop::option::of((0u8..2, 1u64..=2, any::<bool>()).prop_map(|(z, c, t)| role(z, c, t)))
}

fn parameters() -> impl Strategy<Value = LayoutParameters> {
    prop::option::of(1usize..=3).prop_map(|n| LayoutParameters {
        zone_redundancy: n.map_or(ZoneRedundancy::Maximum, ZoneRedundancy::AtLeast),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn staging_merge_laws(ops in prop::collection::vec(op(), 0..16), old in any::<Index>()) {
        let (mut reps, seen) = replay(&ops);
        let mut registers: Vec<Lww<LayoutStaging>> =
            reps.iter().map(|h| h.staging.clone()).collect();
        // A stale replica: some staging area from earlier in the history.
        registers.push(seen[old.index(seen.len())].clone());
        let areas: Vec<LayoutStaging> = registers.iter().map(|s| s.get().clone()).collect();
        laws::check_all(&areas);
        let all = laws::check_all(&registers);

        // Gossip between the histories reaches that same staging area (the
        // stale one is older than its replica's current one).
        for _ in 0..2 {
            for from in 0..reps.len() {
                for to in 0..reps.len() {
                    let other = reps[from].clone();
                    reps[to].merge(&other);
                }
            }
        }
        for h in &reps {
            prop_assert_eq!(&h.staging, &all);
            let enc = h.encode().expect("encode");
            prop_assert_eq!(LayoutHistory::decode(&enc), Some(h.clone()));
        }
    }

    // Any role and any parameters can be staged, so arbitrary values are
    // reachable states; small ranges make ties frequent.
    #[test]
    fn role_and_parameter_laws(
        roles in prop::collection::vec(role_v(), 1..6),
        params in prop::collection::vec(parameters(), 1..6),
    ) {
        let all = laws::check_all(&roles);
        prop_assert_eq!(Some(all), roles.iter().max().cloned());
        let present: Vec<NodeRole> = roles.into_iter().flatten().collect();
        if !present.is_empty() {
            laws::check_all(&present);
        }
        let all = laws::check_all(&params);
        prop_assert_eq!(Some(all), params.iter().max().copied());
    }
}
