//! Power-loss and crash tests of the redb engine on a [`SimDisk`].
//!
//! They check the durability contract of `doc/storage.md`: with fsync, every
//! acknowledged commit survives a power loss, even one that cuts a later
//! commit in half; without fsync, acknowledged commits survive a crash of the
//! process but may be lost on power loss. In every case a commit is all or
//! nothing.

use crate::sim_disk::{PowerLoss, SimDisk};
use crate::{Db, Tree, TxError, TxResult, Value};

fn key(n: u64) -> Vec<u8> {
    format!("key{n:05}").into_bytes()
}

fn value(n: u64) -> Value {
    let mut v = format!("value{n:05}-").into_bytes();
    v.resize(300, b'v');
    v
}

fn trees(db: &Db) -> (Tree, Tree) {
    (
        db.open_tree("a").expect("tree a"),
        db.open_tree("b").expect("tree b"),
    )
}

/// Writes keys `from..to`: plain inserts, and every third key as a two-tree
/// transaction.
fn write_keys(db: &Db, from: u64, to: u64, after_each: impl Fn()) {
    let (a, b) = trees(db);
    for n in from..to {
        if n % 3 == 0 {
            db.transaction(|tx| {
                tx.insert(&a, &key(n), &value(n))?;
                tx.insert(&b, &key(n), &value(n))?;
                Ok::<_, TxError<()>>(())
            })
            .expect("transaction");
        } else {
            a.insert(&key(n), &value(n)).expect("insert");
        }
        after_each();
    }
}

/// How many of keys `from..to` are missing; panics on half a transaction.
fn missing_keys(db: &Db, from: u64, to: u64) -> usize {
    let (a, b) = trees(db);
    let mut missing = 0;
    for n in from..to {
        let got = a.get(&key(n)).expect("get");
        if n % 3 == 0 {
            assert_eq!(got, b.get(&key(n)).expect("get"), "half a transaction {n}");
        }
        match got {
            Some(v) => assert_eq!(v, value(n), "wrong value for {n}"),
            None => missing += 1,
        }
    }
    missing
}

#[test]
fn with_fsync_acknowledged_commits_survive_power_loss() {
    let disk = SimDisk::new();
    let db = Db::open_sim(&disk, true).expect("open");
    write_keys(&db, 0, 60, || {
        assert_eq!(
            disk.unsynced_ops(),
            0,
            "a commit returned before it was synced"
        );
    });
    disk.power_loss(PowerLoss::DropUnsynced);
    drop(db);
    let db = Db::open_sim(&disk, true).expect("reopen after power loss");
    assert_eq!(missing_keys(&db, 0, 60), 0);
    // And the database keeps working.
    write_keys(&db, 60, 70, || {});
    assert_eq!(missing_keys(&db, 0, 70), 0);
}

#[test]
fn without_fsync_commits_survive_a_crash_but_not_power_loss() {
    let disk = SimDisk::new();
    let db = Db::open_sim(&disk, false).expect("open");
    write_keys(&db, 0, 60, || {});
    assert_eq!(disk.sync_count(), 0, "fsync off must not sync");
    disk.crash();
    drop(db);
    let db = Db::open_sim(&disk, false).expect("reopen after crash");
    assert_eq!(
        missing_keys(&db, 0, 60),
        0,
        "a crash lost acknowledged writes"
    );

    write_keys(&db, 60, 120, || {});
    disk.power_loss(PowerLoss::DropUnsynced);
    drop(db);
    let db = Db::open_sim(&disk, false).expect("reopen after power loss");
    assert!(
        missing_keys(&db, 0, 120) > 0,
        "nothing was synced, so writes are lost"
    );
}

/// Stops the disk after `n` writes of a commit, then crashes or cuts the
/// power; returns whether the commit was acknowledged.
fn fail_during_commit(fsync: bool, n: u64, failure: Option<PowerLoss>) -> bool {
    let disk = SimDisk::new();
    let db = Db::open_sim(&disk, fsync).expect("open");
    write_keys(&db, 0, 30, || {});
    let (a, b) = trees(&db);
    disk.fail_after_writes(n);
    // One transaction with enough data to span several pages.
    let big = vec![b'x'; 10_000];
    let acked: TxResult<(), ()> = db.transaction(|tx| {
        for i in 0..4u8 {
            tx.insert(&a, &[b'z', i], &big)?;
            tx.insert(&b, &[b'z', i], &big)?;
        }
        tx.remove(&a, &key(1))?;
        Ok(())
    });
    let acked = acked.is_ok();
    match failure {
        Some(mode) => disk.power_loss(mode),
        None => disk.crash(),
    }
    drop((a, b, db));

    let what = format!("fsync={fsync} n={n} failure={failure:?} acked={acked}");
    let db = Db::open_sim(&disk, fsync).unwrap_or_else(|e| panic!("reopen ({what}): {e}"));
    let (a, b) = trees(&db);
    // Key 1 is removed by the transaction: check the others first.
    let missing = missing_keys(&db, 2, 30);
    let survived = fsync || failure.is_none();
    if survived {
        assert_eq!(missing, 0, "acknowledged writes lost ({what})");
    }
    let present: Vec<bool> = (0..4u8)
        .flat_map(|i| [a.get(&[b'z', i]), b.get(&[b'z', i])])
        .map(|r| r.expect("get").is_some())
        .chain([a.get(&key(1)).expect("get").is_none()])
        .collect();
    let committed = present[0];
    assert!(
        present.iter().all(|p| *p == committed),
        "partial commit ({what}): {present:?}"
    );
    if acked && survived {
        assert!(committed, "acknowledged commit lost ({what})");
    }
    acked
}

#[test]
fn a_commit_cut_by_power_loss_is_all_or_nothing() {
    for seed in 1..=8 {
        for n in 0.. {
            let mode = PowerLoss::KeepRandomSubset {
                seed: seed * 1000 + n,
            };
            if fail_during_commit(true, n, Some(mode)) {
                assert!(n >= 3, "the commit should take several writes, took {n}");
                break;
            }
        }
    }
}

#[test]
fn a_commit_cut_by_a_crash_is_all_or_nothing() {
    for fsync in [false, true] {
        for n in 0.. {
            if fail_during_commit(fsync, n, None) {
                assert!(n >= 3, "the commit should take several writes, took {n}");
                break;
            }
        }
    }
}
