//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same checks as the fuzz targets (`garage_api::fuzz`), on stable Rust: a
//! regression of any parser on an input the fuzzer once found shows up in
//! `cargo test`. The fuzzers themselves run outside CI (see
//! doc/reliability.md).

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for f in &files {
        let data = std::fs::read(f).expect("corpus file");
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{target}: {} fails its check", f.display());
    }
}

#[cfg(feature = "k2v")]
#[test]
fn causality_token() {
    replay("causality_token", garage_api::fuzz::causality_token);
}

#[cfg(feature = "k2v")]
#[test]
fn seen_marker() {
    replay("seen_marker", garage_api::fuzz::seen_marker);
}

#[test]
fn sigv4() {
    replay("sigv4", garage_api::fuzz::sigv4);
}

#[cfg(feature = "k2v")]
#[test]
fn batch_json() {
    replay("batch_json", garage_api::fuzz::batch_json);
}

#[cfg(feature = "k2v")]
#[test]
fn router() {
    replay("router", garage_api::fuzz::router);
}

#[test]
fn config() {
    replay("config", garage_api::fuzz::config);
}

#[test]
fn rpc_decode() {
    replay("rpc_decode", garage_api::fuzz::rpc_decode);
}
