use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proptest::prelude::*;
use proptest::sample::Index;

use super::super::item::tests::{history_strategy, Sim, KEYS, NODES};
use super::super::item::{DvvsValue, K2VItem};
use super::super::range::KeyRange;
use super::*;

const N_KEYS: usize = 3;

/// What a PollRange caller does with the answers of the nodes that replied
/// in time (`answered[r]`; replica 0 always answers).
fn poll(sim: &Sim, answered: &[bool], marker: &mut RangeSeenMarker) {
    for (r, items) in sim.replicas.iter().enumerate() {
        if r == 0 || answered[r] {
            marker.mark_seen_node_items(NODES[r], items.iter());
        }
    }
    marker.canonicalize();
}

fn all_items(sim: &Sim) -> impl Iterator<Item = &K2VItem> {
    sim.replicas.iter().flatten()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn seen_items_are_not_new_and_later_writes_are(
        h1 in history_strategy(N_KEYS, 30),
        answered in prop::collection::vec(any::<bool>(), 4),
        extra in prop::collection::vec((any::<Index>(), 0..N_KEYS, any::<bool>()), 0..6),
        merges in prop::collection::vec((any::<Index>(), any::<Index>(), 0..N_KEYS), 0..6),
    ) {
        let mut sim = Sim::run(&h1, N_KEYS);
        let mut marker = RangeSeenMarker::new();
        poll(&sim, &answered, &mut marker);
        // The client gets the marker as a string and sends it back.
        let marker = RangeSeenMarker::decode(&marker.encode()).expect("own marker");
        for (r, items) in sim.replicas.iter().enumerate() {
            for item in items.iter().filter(|_| r == 0 || answered[r]) {
                prop_assert!(!marker.is_new_item(item), "seen item reported new: {:?}", item);
            }
        }

        // Writes after the poll must be reported, wherever they travelled.
        let ts_at_poll = sim.local_ts.clone();
        for (w, key, tombstone) in &extra {
            let w = w.index(h1.n);
            let token = sim.replicas[w][*key].causal_context();
            let ctx = if *tombstone { Some(&token) } else { None };
            let value = if *tombstone { DvvsValue::Deleted } else { DvvsValue::Value(vec![1]) };
            sim.write(w, *key, ctx, value);
        }
        for (from, to, key) in &merges {
            sim.merge(from.index(h1.n), to.index(h1.n), *key);
        }
        for item in all_items(&sim) {
            let has_new_write = item.entries().iter().any(|(node, e)| {
                let r = NODES.iter().position(|n| n == node).expect("simulated node");
                e.max_time() > ts_at_poll[r]
            });
            if has_new_write {
                prop_assert!(marker.is_new_item(item), "missed write: {:?}", item);
            }
        }
    }

    #[test]
    fn canonicalize_keeps_the_meaning(h in history_strategy(N_KEYS, 30), split in any::<Index>()) {
        // Poll half the nodes, then check every item before/after canonicalize.
        let sim = Sim::run(&h, N_KEYS);
        let mut marker = RangeSeenMarker::new();
        let upto = split.index(h.n + 1);
        for (r, items) in sim.replicas.iter().enumerate().take(upto) {
            marker.mark_seen_node_items(NODES[r], items.iter());
        }
        let mut canon = marker.clone();
        canon.canonicalize();
        for item in all_items(&sim) {
            prop_assert_eq!(marker.is_new_item(item), canon.is_new_item(item));
        }
        let mut twice = canon.clone();
        twice.canonicalize();
        prop_assert_eq!(twice, canon);
    }

    #[test]
    fn markers_round_trip(h in history_strategy(N_KEYS, 30)) {
        let sim = Sim::run(&h, N_KEYS);
        let mut marker = RangeSeenMarker::new();
        for (r, items) in sim.replicas.iter().enumerate() {
            marker.mark_seen_node_items(NODES[r], items.iter());
        }
        prop_assert_eq!(RangeSeenMarker::decode(&marker.encode()), Ok(marker.clone()));
        marker.canonicalize();
        // Every node answered: each one holds its own writes, so the clock
        // alone covers everything and the marker stays small.
        prop_assert!(marker.items.is_empty(), "{:?}", marker);
        prop_assert_eq!(RangeSeenMarker::decode(&marker.encode()), Ok(marker));
    }

    #[test]
    fn restrict_keeps_exactly_the_range(
        h in history_strategy(4, 30),
        prefix in prop::option::of(prop::sample::select(vec!["", "a", "ab", "b"])),
        start in prop::option::of(prop::sample::select(vec!["", "a", "aa", "ab", "b", "c"])),
        end in prop::option::of(prop::sample::select(vec!["a", "ab", "b", "bb", "c", "d"])),
    ) {
        let sim = Sim::run(&h, 4);
        let mut marker = RangeSeenMarker::new();
        // Mark with one node only so that many per-key entries are kept.
        marker.mark_seen_node_items(NODES[0], sim.replicas[0].iter());
        marker.mark_seen_node_items(NODES[1], sim.replicas[1].iter());
        let before = marker.clone();
        let range = KeyRange {
            prefix: prefix.map(str::to_string),
            start: start.map(str::to_string),
            end: end.map(str::to_string),
            reverse: false,
        };
        marker.restrict(&range);
        prop_assert_eq!(&marker.vector_clock, &before.vector_clock);
        for sk in KEYS {
            let in_range = prefix.is_none_or(|p| sk.starts_with(p))
                && start.is_none_or(|s| sk >= s)
                && end.is_none_or(|e| sk < e);
            let expected = if in_range { before.items.get(sk) } else { None };
            prop_assert_eq!(marker.items.get(sk), expected);
        }
    }

    #[test]
    fn garbage_markers_are_refused_without_panic(s in any::<String>()) {
        let r = RangeSeenMarker::decode(&s);
        if s.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=')) {
            prop_assert_eq!(r, Err(InvalidSeenMarker::Base64));
        }
    }

    #[test]
    fn random_bytes_are_refused(b in prop::collection::vec(any::<u8>(), 0..200), marked in any::<bool>()) {
        let mut bytes = if marked { b"k2vsm1".to_vec() } else { vec![] };
        bytes.extend(&b);
        let r = RangeSeenMarker::decode(&STANDARD.encode(&bytes));
        if !bytes.starts_with(b"k2vsm1") {
            prop_assert_eq!(r, Err(InvalidSeenMarker::Format));
        }
    }

    #[test]
    fn truncated_markers_are_refused(h in history_strategy(N_KEYS, 20), cut in any::<Index>()) {
        let sim = Sim::run(&h, N_KEYS);
        let mut marker = RangeSeenMarker::new();
        marker.mark_seen_node_items(NODES[0], sim.replicas[0].iter());
        let bytes = Migrate::encode(&marker).expect("encode");
        let cut = cut.index(bytes.len());
        prop_assert!(RangeSeenMarker::decode(&STANDARD.encode(&bytes[..cut])).is_err());
    }
}

#[test]
fn marker_examples() {
    let mut marker = RangeSeenMarker::new();
    assert_eq!(
        RangeSeenMarker::decode(&marker.encode()),
        Ok(marker.clone())
    );
    let mut item = K2VItem::new(super::super::item::tests::bucket(), "pk".into(), "x".into());
    item.update(5, None, DvvsValue::Value(b"v".to_vec()), 100);
    assert!(marker.is_new_item(&item));
    // Seen through another node: remembered per key, not in the clock.
    marker.mark_seen_node_items(6, std::iter::once(&item));
    assert_eq!(marker.vector_clock, BTreeMap::new());
    assert_eq!(marker.items["x"], BTreeMap::from([(5, 101)]));
    assert!(!marker.is_new_item(&item));
    // Seen through its writer: the clock covers it, the key entry goes away.
    marker.mark_seen_node_items(5, std::iter::once(&item));
    marker.canonicalize();
    assert_eq!(marker.vector_clock, BTreeMap::from([(5, 101)]));
    assert!(marker.items.is_empty());
    assert!(!marker.is_new_item(&item));
    item.update(5, None, DvvsValue::Deleted, 100);
    assert!(marker.is_new_item(&item));
}

#[test]
fn malformed_markers_are_refused() {
    use InvalidSeenMarker::*;
    assert_eq!(RangeSeenMarker::decode(""), Err(Format));
    assert_eq!(RangeSeenMarker::decode("!!!!"), Err(Base64));
    assert_eq!(RangeSeenMarker::decode("AAA"), Err(Base64));
    assert_eq!(
        RangeSeenMarker::decode(&STANDARD.encode("garbage")),
        Err(Format)
    );
    assert_eq!(
        RangeSeenMarker::decode(&STANDARD.encode("k2vsm1")),
        Err(Format)
    );
    // The causality token alphabet is not this one.
    assert_eq!(RangeSeenMarker::decode("_-_-"), Err(Base64));
    let huge = "A".repeat(MAX_SEEN_MARKER_LEN + 4);
    assert_eq!(
        RangeSeenMarker::decode(&huge),
        Err(TooLong {
            len: MAX_SEEN_MARKER_LEN + 4
        })
    );
    // A well-formed body of the wrong shape is refused too.
    let wrong = garage_util::encode::to_msgpack(&BTreeMap::from([("items", 3u8)])).expect("encode");
    let mut bytes = b"k2vsm1".to_vec();
    bytes.extend(wrong);
    assert_eq!(
        RangeSeenMarker::decode(&STANDARD.encode(bytes)),
        Err(Format)
    );
}
