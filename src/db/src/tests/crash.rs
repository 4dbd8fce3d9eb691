//! Acknowledged writes survive a SIGKILL of the process.
//!
//! The parent test re-executes this test binary, running only
//! [`sigkill_writer_child`] with environment variables that make it a writer:
//! it opens the database, writes keys in a loop (plain inserts and two-tree
//! transactions), and prints `ACK <kind> <n>` once each write has returned.
//! The parent kills it with SIGKILL (`Child::kill` on Unix) after a few
//! hundred acknowledgements, reopens the database, and checks that every
//! acknowledged write is there.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::open_at;
use crate::{Engine, TxError};

const DIR_ENV: &str = "GARAGE_DB_TEST_WRITER_DIR";
const ENGINE_ENV: &str = "GARAGE_DB_TEST_WRITER_ENGINE";
/// Acknowledgements the parent waits for before killing the writer.
const ACKS_BEFORE_KILL: usize = 300;

fn key(n: u64) -> Vec<u8> {
    format!("key{n:08}").into_bytes()
}

fn value(n: u64) -> Vec<u8> {
    // Big enough that the B-trees split and pages get rewritten.
    let mut v = format!("value{n:08}-").into_bytes();
    v.resize(200, b'x');
    v
}

/// The writer. Does nothing in a normal test run (the variables are unset).
#[test]
fn sigkill_writer_child() {
    let (Some(dir), Some(engine)) = (std::env::var_os(DIR_ENV), std::env::var_os(ENGINE_ENV))
    else {
        return;
    };
    let engine: Engine = engine
        .to_str()
        .expect("utf-8 engine")
        .parse()
        .expect("engine");
    let db = open_at(engine, Path::new(&dir));
    let (a, b) = (
        db.open_tree("a").expect("tree a"),
        db.open_tree("b").expect("tree b"),
    );
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0u64;
    while Instant::now() < deadline {
        let kind = if n % 4 == 3 {
            db.transaction(|tx| {
                tx.insert(&a, &key(n), &value(n))?;
                tx.insert(&b, &key(n), &value(n))?;
                Ok::<_, TxError<()>>(())
            })
            .expect("transaction");
            "tx"
        } else {
            a.insert(&key(n), &value(n)).expect("insert");
            "insert"
        };
        writeln!(out, "ACK {kind} {n}").expect("stdout");
        out.flush().expect("stdout");
        n += 1;
    }
}

fn acknowledged_writes_survive_sigkill(engine: Engine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "tests::crash::sigkill_writer_child",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(DIR_ENV, dir.path())
        .env(ENGINE_ENV, engine.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));

    let mut acked: Vec<(bool, u64)> = Vec::new();
    let mut parse = |line: &str| {
        let mut words = line.split_whitespace();
        if words.next() != Some("ACK") {
            return;
        }
        let is_tx = words.next() == Some("tx");
        if let Some(n) = words.next().and_then(|w| w.parse().ok()) {
            acked.push((is_tx, n));
        }
    };
    let mut line = String::new();
    let mut seen = 0;
    while seen < ACKS_BEFORE_KILL {
        line.clear();
        if stdout.read_line(&mut line).expect("read writer output") == 0 {
            break;
        }
        if line.starts_with("ACK ") {
            seen += 1;
        }
        parse(&line);
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(
        !status.success(),
        "the writer should have been killed, got {status}"
    );
    // Lines written before the kill are acknowledged too.
    loop {
        line.clear();
        if stdout.read_line(&mut line).expect("read writer output") == 0 {
            break;
        }
        parse(&line);
    }
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "writer stopped early: {} acks",
        acked.len()
    );

    let db = open_at(engine, dir.path());
    let (a, b) = (
        db.open_tree("a").expect("tree a"),
        db.open_tree("b").expect("tree b"),
    );
    for (is_tx, n) in &acked {
        assert_eq!(
            a.get(&key(*n)).expect("get"),
            Some(value(*n)),
            "lost write {n}"
        );
        if *is_tx {
            assert_eq!(
                b.get(&key(*n)).expect("get"),
                Some(value(*n)),
                "half a transaction {n}"
            );
        }
    }
    // Whatever was in flight is all there or not at all.
    let last = acked.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let in_flight = last + 1;
    if in_flight % 4 == 3 {
        assert_eq!(
            a.get(&key(in_flight)).expect("get"),
            b.get(&key(in_flight)).expect("get"),
            "in-flight transaction applied partly"
        );
    }
}

#[cfg(feature = "redb")]
#[test]
fn redb_acknowledged_writes_survive_sigkill() {
    acknowledged_writes_survive_sigkill(Engine::Redb);
}

#[cfg(feature = "sled")]
#[test]
fn sled_acknowledged_writes_survive_sigkill() {
    acknowledged_writes_survive_sigkill(Engine::Sled);
}
