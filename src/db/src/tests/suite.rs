//! Behaviour every engine must share.

use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Harness;
use crate::{Db, Error, Tree, TxError, TxResult, Value};

fn v(s: &str) -> Value {
    s.as_bytes().to_vec()
}

fn kv(k: &str, val: &str) -> (Value, Value) {
    (v(k), v(val))
}

fn keys(rows: &[(Value, Value)]) -> Vec<String> {
    rows.iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

fn b(s: &str) -> &[u8] {
    s.as_bytes()
}

pub fn get_insert_remove(h: &Harness) {
    let db = h.open();
    let t = db.open_tree("t").expect("open tree");
    assert_eq!(t.name(), "t");
    assert_eq!(t.get(b"a").expect("get"), None);
    t.insert(b"a", b"1").expect("insert");
    assert_eq!(t.get(b"a").expect("get"), Some(v("1")));
    t.insert(b"a", b"2").expect("overwrite");
    assert_eq!(t.get(b"a").expect("get"), Some(v("2")));
    t.insert(b"", b"").expect("empty key and value");
    assert_eq!(t.get(b"").expect("get"), Some(Vec::new()));
    t.remove(b"a").expect("remove");
    t.remove(b"never there").expect("remove absent key");
    assert_eq!(t.get(b"a").expect("get"), None);
    let big = vec![7u8; 100_000];
    t.insert(b"big", &big).expect("insert big value");
    assert_eq!(t.get(b"big").expect("get"), Some(big));
}

pub fn same_name_same_tree(h: &Harness) {
    let db = h.open();
    let t1 = db.open_tree("t").expect("open tree");
    let t2 = db.open_tree("t").expect("open tree again");
    let other = db.open_tree("u").expect("open other tree");
    t1.insert(b"k", b"v").expect("insert");
    assert_eq!(t2.get(b"k").expect("get"), Some(v("v")));
    assert_eq!(other.get(b"k").expect("get"), None);
    // A handle cloned into another thread sees the same data.
    let t3 = t1.clone();
    std::thread::spawn(move || t3.insert(b"k2", b"v2").expect("insert"))
        .join()
        .expect("thread");
    assert_eq!(t2.get(b"k2").expect("get"), Some(v("v2")));
}

pub fn len_first_is_empty(h: &Harness) {
    let db = h.open();
    let t = db.open_tree("t").expect("open tree");
    assert!(t.is_empty().expect("is_empty"));
    assert_eq!(t.len().expect("len"), 0);
    assert_eq!(t.first().expect("first"), None);
    for k in ["c", "a", "b"] {
        t.insert(b(k), b(k)).expect("insert");
    }
    assert!(!t.is_empty().expect("is_empty"));
    assert_eq!(t.len().expect("len"), 3);
    assert_eq!(t.first().expect("first"), Some(kv("a", "a")));
}

/// Checks `range` on the tree and inside a transaction, against a filter of
/// all keys.
fn check_range(
    db: &Db,
    t: &Tree,
    all: &[&str],
    start: Bound<&str>,
    end: Bound<&str>,
    reverse: bool,
    limit: Option<usize>,
) {
    let inside = |k: &str| {
        let after_start = match start {
            Included(s) => k >= s,
            Excluded(s) => k > s,
            Unbounded => true,
        };
        let before_end = match end {
            Included(e) => k <= e,
            Excluded(e) => k < e,
            Unbounded => true,
        };
        after_start && before_end
    };
    let mut want: Vec<String> = all
        .iter()
        .filter(|k| inside(k))
        .map(|k| k.to_string())
        .collect();
    want.sort();
    if reverse {
        want.reverse();
    }
    want.truncate(limit.unwrap_or(usize::MAX));

    let (s, e) = (start.map(str::as_bytes), end.map(str::as_bytes));
    let got = t.range(s, e, reverse, limit).expect("range");
    let what = format!("{start:?}..{end:?} reverse={reverse} limit={limit:?}");
    assert_eq!(keys(&got), want, "tree range {what}");
    for (k, val) in &got {
        assert_eq!(k, val, "values follow keys");
    }
    let in_tx = db
        .transaction(|tx| Ok::<_, TxError<()>>(tx.range(t, s, e, reverse, limit)?))
        .expect("transaction range");
    assert_eq!(keys(&in_tx), want, "transaction range {what}");
}

pub fn range_bounds_directions_limits(h: &Harness) {
    let db = h.open();
    let t = db.open_tree("t").expect("open tree");
    let all = ["a", "b", "ba", "c", "d", "e"];
    for k in all {
        t.insert(b(k), b(k)).expect("insert");
    }
    let bounds = [
        Unbounded,
        Included("a"),
        Excluded("a"),
        Included("b"),
        Excluded("b"),
        Included("bb"),
        Excluded("c"),
        Included("e"),
        Excluded("e"),
        Included("z"),
        Included(""),
    ];
    for start in bounds {
        for end in bounds {
            for reverse in [false, true] {
                for limit in [None, Some(0), Some(1), Some(2), Some(100)] {
                    check_range(&db, &t, &all, start, end, reverse, limit);
                }
            }
        }
    }
    // Explicit edge cases, for the reader.
    let none: Vec<(Value, Value)> = Vec::new();
    assert_eq!(
        t.range(Included(b"d"), Included(b"b"), false, None)
            .expect("range"),
        none
    );
    assert_eq!(
        t.range(Excluded(b"b"), Excluded(b"b"), true, None)
            .expect("range"),
        none
    );
    assert_eq!(
        t.range(Unbounded, Unbounded, false, Some(0))
            .expect("range"),
        none
    );
    let rev = t.range(Unbounded, Unbounded, true, Some(2)).expect("range");
    assert_eq!(rev, vec![kv("e", "e"), kv("d", "d")]);
    let empty = db.open_tree("empty").expect("open tree");
    assert_eq!(
        empty
            .range(Unbounded, Unbounded, true, None)
            .expect("range"),
        none
    );
}

pub fn multi_tree_transaction_commits(h: &Harness) {
    let db = h.open();
    let (a, c) = (
        db.open_tree("a").expect("tree a"),
        db.open_tree("c").expect("tree c"),
    );
    a.insert(b"gone", b"x").expect("insert");
    let r: TxResult<u32, ()> = db.transaction(|tx| {
        tx.insert(&a, b"k", b"1")?;
        tx.insert(&c, b"k", b"2")?;
        tx.remove(&a, b"gone")?;
        Ok(42)
    });
    assert_eq!(r.expect("commit"), 42);
    assert_eq!(a.get(b"k").expect("get"), Some(v("1")));
    assert_eq!(c.get(b"k").expect("get"), Some(v("2")));
    assert_eq!(a.get(b"gone").expect("get"), None);
    // An empty transaction commits too.
    db.transaction(|_| Ok::<_, TxError<()>>(()))
        .expect("empty transaction");
}

pub fn abort_rolls_back(h: &Harness) {
    let db = h.open();
    let (a, c) = (
        db.open_tree("a").expect("tree a"),
        db.open_tree("c").expect("tree c"),
    );
    a.insert(b"keep", b"old").expect("insert");
    let r: TxResult<(), &str> = db.transaction(|tx| {
        tx.insert(&a, b"keep", b"new")?;
        tx.insert(&a, b"k", b"1")?;
        tx.insert(&c, b"k", b"2")?;
        tx.remove(&a, b"keep")?;
        Err(TxError::Abort("changed my mind"))
    });
    assert!(matches!(r, Err(TxError::Abort("changed my mind"))));
    assert_eq!(a.get(b"keep").expect("get"), Some(v("old")));
    assert_eq!(a.get(b"k").expect("get"), None);
    assert_eq!(c.get(b"k").expect("get"), None);

    // A storage error returned by the closure rolls back as well.
    let r: TxResult<(), ()> = db.transaction(|tx| {
        tx.insert(&a, b"k", b"1")?;
        Err(TxError::Db(Error::Config {
            message: "test".into(),
        }))
    });
    assert!(matches!(r, Err(TxError::Db(Error::Config { .. }))));
    assert_eq!(a.get(b"k").expect("get"), None);
    // The database is still usable.
    a.insert(b"k", b"after").expect("insert after abort");
    assert_eq!(a.get(b"k").expect("get"), Some(v("after")));
}

pub fn transaction_reads_own_writes(h: &Harness) {
    let db = h.open();
    let t = db.open_tree("t").expect("open tree");
    for k in ["a", "b", "c", "d"] {
        t.insert(b(k), b(k)).expect("insert");
    }
    let r: TxResult<(), String> = db.transaction(|tx| {
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(TxError::Abort(what.to_string()))
            }
        };
        tx.insert(&t, b"b", b"B")?;
        tx.insert(&t, b"bb", b"bb")?;
        tx.remove(&t, b"c")?;
        tx.remove(&t, b"zz")?;
        check(tx.get(&t, b"b")? == Some(v("B")), "get overwritten")?;
        check(tx.get(&t, b"bb")? == Some(v("bb")), "get inserted")?;
        check(tx.get(&t, b"c")?.is_none(), "get removed")?;
        check(tx.get(&t, b"a")? == Some(v("a")), "get untouched")?;
        let all = tx.range(&t, Unbounded, Unbounded, false, None)?;
        check(keys(&all) == ["a", "b", "bb", "d"], "forward range")?;
        check(all[1].1 == v("B"), "range value")?;
        let rev = tx.range(&t, Unbounded, Excluded(b"d"), true, Some(2))?;
        check(keys(&rev) == ["bb", "b"], "reverse limited range")?;
        let fwd = tx.range(&t, Excluded(b"a"), Unbounded, false, Some(2))?;
        check(keys(&fwd) == ["b", "bb"], "forward limited range")?;
        // Staged removals must not eat into a limit.
        tx.remove(&t, b"a")?;
        tx.remove(&t, b"b")?;
        let fwd = tx.range(&t, Unbounded, Unbounded, false, Some(2))?;
        check(keys(&fwd) == ["bb", "d"], "limit after removals")?;
        tx.remove(&t, b"d")?;
        let rev = tx.range(&t, Unbounded, Unbounded, true, Some(1))?;
        check(keys(&rev) == ["bb"], "reverse limit after removals")?;
        tx.insert(&t, b"b", b"B")?;
        tx.insert(&t, b"d", b"d")?;
        // A removal then a re-insert of the same key.
        tx.remove(&t, b"a")?;
        tx.insert(&t, b"a", b"A")?;
        check(tx.get(&t, b"a")? == Some(v("A")), "re-inserted")?;
        Ok(())
    });
    r.expect("transaction");
    let all = t.range(Unbounded, Unbounded, false, None).expect("range");
    assert_eq!(
        all,
        vec![kv("a", "A"), kv("b", "B"), kv("bb", "bb"), kv("d", "d")]
    );
}

pub fn list_trees(h: &Harness) {
    let db = h.open();
    assert_eq!(db.list_trees().expect("list"), Vec::<String>::new());
    for name in ["zeta", "alpha", "mid/dle", "alpha"] {
        db.open_tree(name).expect("open tree");
    }
    assert_eq!(db.list_trees().expect("list"), ["alpha", "mid/dle", "zeta"]);
}

pub fn reopen_keeps_data(h: &Harness) {
    if !h.persistent() {
        return;
    }
    {
        let db = h.open();
        let (a, c) = (
            db.open_tree("a").expect("tree a"),
            db.open_tree("c").expect("tree c"),
        );
        a.insert(b"k1", b"v1").expect("insert");
        a.insert(b"k2", b"v2").expect("insert");
        a.remove(b"k2").expect("remove");
        db.transaction(|tx| {
            tx.insert(&a, b"k3", b"v3")?;
            tx.insert(&c, b"k3", b"w3")?;
            Ok::<_, TxError<()>>(())
        })
        .expect("transaction");
        db.open_tree("empty").expect("tree");
        // Every handle is dropped here, trees included.
    }
    let db = h.open();
    assert_eq!(db.list_trees().expect("list"), ["a", "c", "empty"]);
    let (a, c) = (
        db.open_tree("a").expect("tree a"),
        db.open_tree("c").expect("tree c"),
    );
    assert_eq!(
        a.range(Unbounded, Unbounded, false, None).expect("range"),
        vec![kv("k1", "v1"), kv("k3", "v3")]
    );
    assert_eq!(c.get(b"k3").expect("get"), Some(v("w3")));
}

pub fn concurrent_increments_are_not_lost(h: &Harness) {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 200;
    let db = h.open();
    let t = db.open_tree("counter").expect("open tree");
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, t) = (db.clone(), t.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    db.transaction(|tx| {
                        let n = match tx.get(&t, b"n")? {
                            Some(raw) => {
                                let bytes: [u8; 8] =
                                    raw.try_into().map_err(|_| TxError::Abort("bad counter"))?;
                                u64::from_be_bytes(bytes)
                            }
                            None => 0,
                        };
                        tx.insert(&t, b"n", &(n + 1).to_be_bytes())?;
                        Ok::<_, TxError<&str>>(())
                    })
                    .expect("increment");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let raw = t.get(b"n").expect("get").expect("counter exists");
    let n = u64::from_be_bytes(raw.try_into().expect("8 bytes"));
    assert_eq!(n, THREADS * ROUNDS);
}

/// A transaction moves units between two keys; readers must always see the
/// same total in one range call.
pub fn readers_never_see_half_a_transaction(h: &Harness) {
    const TOTAL: u64 = 1000;
    let db = h.open();
    let t = db.open_tree("t").expect("open tree");
    db.transaction(|tx| {
        tx.insert(&t, b"a", &TOTAL.to_be_bytes())?;
        tx.insert(&t, b"b", &0u64.to_be_bytes())?;
        Ok::<_, TxError<()>>(())
    })
    .expect("init");
    let parse = |raw: &[u8]| -> u64 { u64::from_be_bytes(raw.try_into().expect("8 bytes")) };
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (t, stop) = (t.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                let rows = t
                    .range(Unbounded, Unbounded, reads & 1 == 0, None)
                    .expect("range");
                let sum: u64 = rows.iter().map(|(_, v)| parse(v)).sum();
                assert_eq!(sum, TOTAL, "reader saw a partial transaction");
                reads += 1;
            }
        })
    };
    for i in 0..100u64 {
        db.transaction(|tx| {
            let a = parse(&tx.get(&t, b"a")?.unwrap_or_default());
            let bv = parse(&tx.get(&t, b"b")?.unwrap_or_default());
            let (from, to, x, y) = if i % 2 == 0 {
                (b"a", b"b", a, bv)
            } else {
                (b"b", b"a", bv, a)
            };
            let moved = x.min(7);
            tx.insert(&t, from, &(x - moved).to_be_bytes())?;
            tx.insert(&t, to, &(y + moved).to_be_bytes())?;
            Ok::<_, TxError<()>>(())
        })
        .expect("move");
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
}
