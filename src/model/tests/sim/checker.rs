//! The checker: the history of writes against the final, converged state.
//!
//! Every written value is unique, so a value names its write. A write made
//! with a causality token supersedes exactly what the read behind the token
//! returned (the DVVS discards every dot the token covers, and a dot that a
//! read covers without returning its value was discarded before). The rules:
//! - lost: an acknowledged value is neither in the final state nor
//!   superseded by any write that may have been applied;
//! - resurrected: a value superseded by an acknowledged write is still
//!   there (two concurrent values must survive as two values, but a value
//!   the client overwrote must not come back);
//! - phantom: a final value that no write (acknowledged or of unknown
//!   outcome) carried;
//! - counters: per partition key, the index counters equal the counts of
//!   the final items;
//! - stale read: a quorum read that started after a write was acknowledged
//!   returns neither its value nor lacks it for a good reason (a write that
//!   superseded it, whatever its outcome).

use std::collections::{BTreeMap, BTreeSet};

/// A (partition key, sort key) pair.
pub type Key = (String, String);

/// How a write ended for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Acknowledged.
    Acked,
    /// Failed or timed out: it may or may not have been applied.
    Unknown,
}

/// One write of the history (one item of a batch).
#[derive(Debug, Clone, Hash)]
pub struct WriteRec {
    /// The item.
    pub key: Key,
    /// The value, `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// With a token: the live values the read behind it returned.
    pub seen: Option<BTreeSet<Vec<u8>>>,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was acknowledged (simulated ms since the start).
    pub acked_ms: Option<u64>,
}

/// One successful quorum read of an item.
#[derive(Debug, Clone, Hash)]
pub struct ReadRec {
    /// The item.
    pub key: Key,
    /// When the read started (simulated ms since the start).
    pub started_ms: u64,
    /// The live values it returned.
    pub seen: BTreeSet<Vec<u8>>,
}

/// The four index counters of one partition key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items with a live value.
    pub entries: i64,
    /// Items with more than one distinct value (tombstones included).
    pub conflicts: i64,
    /// Distinct live values.
    pub values: i64,
    /// Bytes of those values.
    pub bytes: i64,
}

/// One final item: its distinct values, `None` for a tombstone.
pub type FinalItem = Vec<Option<Vec<u8>>>;

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Acknowledged writes checked.
    pub checked: usize,
    /// Lost acknowledged writes.
    pub lost: usize,
    /// Every violation, described.
    pub violations: Vec<String>,
}

/// The counts a set of final items should give, per partition key.
pub fn expected_counts(state: &BTreeMap<Key, FinalItem>) -> BTreeMap<String, Counts> {
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    for ((pk, _), values) in state {
        let c = out.entry(pk.clone()).or_default();
        let live: Vec<&Vec<u8>> = values.iter().flatten().collect();
        c.entries += i64::from(!live.is_empty());
        c.conflicts += i64::from(values.len() > 1);
        c.values += live.len() as i64;
        c.bytes += live.iter().map(|v| v.len() as i64).sum::<i64>();
    }
    out
}

/// Checks `history` against the converged `state` and `counters`.
pub fn check(
    history: &[WriteRec],
    reads: &[ReadRec],
    state: &BTreeMap<Key, FinalItem>,
    counters: &BTreeMap<String, Counts>,
) -> Verdict {
    let mut v = Verdict::default();
    let mut written: BTreeMap<&Key, BTreeSet<&Vec<u8>>> = BTreeMap::new();
    let mut superseded: BTreeMap<&Key, BTreeSet<&Vec<u8>>> = BTreeMap::new();
    for w in history {
        if let Some(val) = &w.value {
            written.entry(&w.key).or_default().insert(val);
        }
        if let Some(seen) = &w.seen {
            superseded.entry(&w.key).or_default().extend(seen.iter());
        }
    }
    let live_in = |key: &Key, val: &Vec<u8>| {
        state
            .get(key)
            .is_some_and(|vals| vals.iter().flatten().any(|x| x == val))
    };
    for w in history.iter().filter(|w| w.outcome == Outcome::Acked) {
        v.checked += 1;
        if let Some(val) = &w.value {
            let gone = !live_in(&w.key, val);
            let covered = superseded.get(&w.key).is_some_and(|s| s.contains(val));
            if gone && !covered {
                v.lost += 1;
                v.violations.push(format!(
                    "lost: acknowledged {:?} of {:?} is neither present nor superseded",
                    String::from_utf8_lossy(val),
                    w.key
                ));
            }
        }
        for val in w.seen.iter().flatten() {
            if live_in(&w.key, val) {
                v.violations.push(format!(
                    "resurrected: {:?} of {:?} was superseded by an acknowledged write",
                    String::from_utf8_lossy(val),
                    w.key
                ));
            }
        }
    }
    for (key, vals) in state {
        for val in vals.iter().flatten() {
            if !written.get(key).is_some_and(|s| s.contains(val)) {
                v.violations.push(format!(
                    "phantom: {:?} of {key:?} was never written",
                    String::from_utf8_lossy(val)
                ));
            }
        }
    }
    for r in reads {
        for w in history.iter().filter(|w| w.key == r.key) {
            let (Some(val), Some(at)) = (&w.value, w.acked_ms) else {
                continue;
            };
            let covered = superseded.get(&w.key).is_some_and(|s| s.contains(val));
            if at < r.started_ms && !r.seen.contains(val) && !covered {
                v.violations.push(format!(
                    "stale read: a read of {:?} at {} ms missed {:?}, acknowledged at {at} ms",
                    r.key,
                    r.started_ms,
                    String::from_utf8_lossy(val)
                ));
            }
        }
    }
    v.violations.extend(counter_mismatches(state, counters));
    v
}

/// The partition keys whose counters differ from the counts of `state`
/// (a missing counter row counts as zeros).
pub fn counter_mismatches(
    state: &BTreeMap<Key, FinalItem>,
    counters: &BTreeMap<String, Counts>,
) -> Vec<String> {
    let expected = expected_counts(state);
    let pks: BTreeSet<&String> = expected.keys().chain(counters.keys()).collect();
    let mut out = vec![];
    for pk in pks {
        let e = expected.get(pk).copied().unwrap_or_default();
        let got = counters.get(pk).copied().unwrap_or_default();
        if e != got {
            out.push(format!(
                "counters of {pk:?}: expected {e:?}, the counter table says {got:?}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(sk: &str, val: Option<&str>, seen: Option<&[&str]>, outcome: Outcome) -> WriteRec {
        WriteRec {
            key: ("p".into(), sk.into()),
            value: val.map(|s| s.as_bytes().to_vec()),
            seen: seen.map(|s| s.iter().map(|x| x.as_bytes().to_vec()).collect()),
            outcome,
            acked_ms: (outcome == Outcome::Acked).then_some(10),
        }
    }

    fn state(items: &[(&str, &[Option<&str>])]) -> BTreeMap<Key, FinalItem> {
        items
            .iter()
            .map(|(sk, vals)| {
                (
                    ("p".to_string(), sk.to_string()),
                    vals.iter()
                        .map(|v| v.map(|s| s.as_bytes().to_vec()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn checker_flags_each_kind_of_violation() {
        use Outcome::*;
        let history = vec![
            w("a", Some("x"), None, Acked),
            w("a", Some("y"), None, Acked),
            w("a", Some("z"), Some(&["x"]), Unknown),
            w("b", Some("u"), None, Acked),
            w("b", None, Some(&["u"]), Acked),
            w("c", Some("m"), None, Acked),
        ];
        // Correct: x superseded by z (which may have applied), y and z
        // concurrent, u deleted, m present.
        let good = state(&[
            ("a", &[Some("y"), Some("z")]),
            ("b", &[None]),
            ("c", &[Some("m")]),
        ]);
        let counts = expected_counts(&good);
        assert_eq!(
            counts["p"],
            Counts {
                entries: 2,
                conflicts: 1,
                values: 3,
                bytes: 3
            }
        );
        let read = |sk: &str, at: u64, seen: &[&str]| ReadRec {
            key: ("p".into(), sk.into()),
            started_ms: at,
            seen: seen.iter().map(|x| x.as_bytes().to_vec()).collect(),
        };
        // A read before the acknowledgement may miss the value; one after
        // it may miss only a superseded value.
        let reads = vec![read("c", 5, &[]), read("a", 20, &["y"]), read("b", 20, &[])];
        let v = check(&history, &reads, &good, &counts);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.checked, v.lost), (5, 0));

        // m lost, u resurrected, q a phantom, counters off.
        let bad = state(&[
            ("a", &[Some("y"), Some("z")]),
            ("b", &[Some("u")]),
            ("c", &[Some("q")]),
        ]);
        let v = check(&history, &[read("c", 20, &[])], &bad, &counts);
        assert_eq!(v.lost, 1);
        let kinds: Vec<&str> = v
            .violations
            .iter()
            .map(|s| s.split(':').next().unwrap_or(""))
            .collect();
        assert!(kinds.contains(&"lost"), "{kinds:?}");
        assert!(kinds.contains(&"resurrected"), "{kinds:?}");
        assert!(kinds.contains(&"phantom"), "{kinds:?}");
        assert!(kinds.contains(&"stale read"), "{kinds:?}");
        assert!(kinds.contains(&"counters of \"p\""), "{kinds:?}");
    }
}
