//! Commit throughput, printed rather than asserted (machines differ).
//!
//! Run with `cargo run -p garage_db --all-features --release --example
//! commit_rate`. The database lives in `GARAGE_DB_BENCH_DIR` if
//! set (use a directory on the disk you care about: /tmp is often tmpfs,
//! where fsync costs nothing), else in a temporary directory.

use std::time::{Duration, Instant};

use garage_db::{Db, Engine, OpenOptions, TxError};

fn rate(db: &Db, budget: Duration) -> (f64, f64) {
    let t = db.open_tree("bench").expect("tree");
    let u = db.open_tree("bench2").expect("tree");
    let value = [7u8; 100];
    let measure = |f: &mut dyn FnMut(u64)| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < budget {
            f(n);
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let inserts = measure(&mut |n| t.insert(&n.to_be_bytes(), &value).expect("insert"));
    let txs = measure(&mut |n| {
        db.transaction(|tx| {
            tx.insert(&t, &n.to_be_bytes(), &value)?;
            tx.insert(&u, &n.to_be_bytes(), &value)?;
            Ok::<_, TxError<()>>(())
        })
        .expect("transaction")
    });
    (inserts, txs)
}

fn main() {
    let base = std::env::var_os("GARAGE_DB_BENCH_DIR");
    let mut cases = vec![(Engine::Memory, false)];
    if cfg!(feature = "redb") {
        cases.extend([(Engine::Redb, false), (Engine::Redb, true)]);
    }
    if cfg!(feature = "sled") {
        cases.push((Engine::Sled, false));
    }
    for (engine, fsync) in cases {
        let dir = match &base {
            Some(b) => tempfile::tempdir_in(b),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        let db = Db::open(&OpenOptions {
            engine,
            path: dir.path().to_owned(),
            fsync,
        })
        .expect("open");
        let (inserts, txs) = rate(&db, Duration::from_secs(2));
        println!(
            "{engine:>6} fsync={fsync:<5}: {inserts:>9.0} single-key inserts/s, \
             {txs:>9.0} two-tree transactions/s"
        );
    }
}
