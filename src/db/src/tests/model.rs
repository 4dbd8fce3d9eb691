//! A property test: random operations on two trees, checked step by step
//! against a `BTreeMap` per tree.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use super::Harness;
use crate::{Tree, TxError, Value};

type Model = [BTreeMap<Value, Value>; 2];

/// Bounded, so that the three engines together stay fast.
pub fn config() -> Config {
    Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Insert(usize, Value, Value),
    Remove(usize, Value),
    Get(usize, Value),
    Range(usize, Bound<Value>, Bound<Value>, bool, Option<usize>),
    /// The operations of one transaction, and whether it aborts at the end.
    Tx(Vec<Op>, bool),
}

fn key() -> impl Strategy<Value = Value> {
    // A small alphabet and short keys (13 of them), so that operations
    // collide and ranges cross staged writes.
    prop::collection::vec(0u8..3, 0..3)
}

fn bound() -> impl Strategy<Value = Bound<Value>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
    ]
}

fn simple_op() -> impl Strategy<Value = Op> {
    let tree = 0usize..2;
    prop_oneof![
        3 => (tree.clone(), key(), prop::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(t, k, v)| Op::Insert(t, k, v)),
        2 => (tree.clone(), key()).prop_map(|(t, k)| Op::Remove(t, k)),
        1 => (tree.clone(), key()).prop_map(|(t, k)| Op::Get(t, k)),
        2 => (tree, bound(), bound(), any::<bool>(), prop::option::of(0usize..5))
            .prop_map(|(t, s, e, r, l)| Op::Range(t, s, e, r, l)),
    ]
}

pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => simple_op(),
        2 => (prop::collection::vec(simple_op(), 0..12), any::<bool>())
            .prop_map(|(ops, abort)| Op::Tx(ops, abort)),
    ];
    prop::collection::vec(op, 1..40)
}

fn as_slices(b: &Bound<Value>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

/// What the model answers for a range.
fn model_range(
    m: &BTreeMap<Value, Value>,
    start: &Bound<Value>,
    end: &Bound<Value>,
    reverse: bool,
    limit: Option<usize>,
) -> Vec<(Value, Value)> {
    let inside = |k: &Value| {
        let after = match start {
            Bound::Included(s) => k >= s,
            Bound::Excluded(s) => k > s,
            Bound::Unbounded => true,
        };
        let before = match end {
            Bound::Included(e) => k <= e,
            Bound::Excluded(e) => k < e,
            Bound::Unbounded => true,
        };
        after && before
    };
    let mut rows: Vec<_> = m
        .iter()
        .filter(|(k, _)| inside(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if reverse {
        rows.reverse();
    }
    rows.truncate(limit.unwrap_or(usize::MAX));
    rows
}

/// The answer of a read, to compare engine and model.
#[derive(Debug, PartialEq)]
enum Answer {
    Get(Option<Value>),
    Range(Vec<(Value, Value)>),
}

/// Applies one operation to a model, returning the answer of a read.
fn model_apply(m: &mut Model, op: &Op) -> Option<Answer> {
    match op {
        Op::Insert(t, k, v) => {
            m[*t].insert(k.clone(), v.clone());
            None
        }
        Op::Remove(t, k) => {
            m[*t].remove(k);
            None
        }
        Op::Get(t, k) => Some(Answer::Get(m[*t].get(k).cloned())),
        Op::Range(t, s, e, r, l) => Some(Answer::Range(model_range(&m[*t], s, e, *r, *l))),
        Op::Tx(..) => None,
    }
}

pub fn check(h: &Harness, ops: &[Op]) -> Result<(), TestCaseError> {
    let db = h.open();
    let trees: [Tree; 2] = [
        db.open_tree("t0").expect("open tree"),
        db.open_tree("t1").expect("open tree"),
    ];
    let mut model: Model = Default::default();
    for op in ops {
        match op {
            Op::Insert(t, k, v) => {
                trees[*t].insert(k, v).expect("insert");
                model_apply(&mut model, op);
            }
            Op::Remove(t, k) => {
                trees[*t].remove(k).expect("remove");
                model_apply(&mut model, op);
            }
            Op::Get(t, k) => {
                let got = Answer::Get(trees[*t].get(k).expect("get"));
                prop_assert_eq!(Some(got), model_apply(&mut model, op), "{:?}", op);
            }
            Op::Range(t, s, e, r, l) => {
                let rows = trees[*t]
                    .range(as_slices(s), as_slices(e), *r, *l)
                    .expect("range");
                prop_assert_eq!(
                    Some(Answer::Range(rows)),
                    model_apply(&mut model, op),
                    "{:?}",
                    op
                );
            }
            Op::Tx(tx_ops, abort) => {
                // Answers seen inside the transaction, reset on each retry.
                let seen = RefCell::new(Vec::new());
                let result = db.transaction(|tx| {
                    seen.borrow_mut().clear();
                    for op in tx_ops {
                        let answer = match op {
                            Op::Insert(t, k, v) => {
                                tx.insert(&trees[*t], k, v)?;
                                None
                            }
                            Op::Remove(t, k) => {
                                tx.remove(&trees[*t], k)?;
                                None
                            }
                            Op::Get(t, k) => Some(Answer::Get(tx.get(&trees[*t], k)?)),
                            Op::Range(t, s, e, r, l) => Some(Answer::Range(tx.range(
                                &trees[*t],
                                as_slices(s),
                                as_slices(e),
                                *r,
                                *l,
                            )?)),
                            Op::Tx(..) => None,
                        };
                        seen.borrow_mut().push(answer);
                    }
                    if *abort {
                        Err(TxError::Abort(()))
                    } else {
                        Ok(())
                    }
                });
                let mut staged = model.clone();
                let want: Vec<Option<Answer>> = tx_ops
                    .iter()
                    .map(|op| model_apply(&mut staged, op))
                    .collect();
                prop_assert_eq!(seen.into_inner(), want, "inside {:?}", op);
                match result {
                    Ok(()) => prop_assert!(!abort),
                    Err(TxError::Abort(())) => prop_assert!(*abort),
                    Err(TxError::Db(e)) => panic!("transaction failed: {e}"),
                }
                if !abort {
                    model = staged;
                }
            }
        }
    }
    // Finally the whole content, and the lengths.
    for (t, m) in trees.iter().zip(&model) {
        let all = t
            .range(Bound::Unbounded, Bound::Unbounded, false, None)
            .expect("range");
        let want: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(all, want);
        prop_assert_eq!(t.len().expect("len"), m.len());
    }
    Ok(())
}
