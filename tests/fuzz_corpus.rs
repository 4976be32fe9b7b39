//! The fuzz targets' corpus, replayed on every `cargo test`: each input in
//! fuzz/corpus/<target>/ (the seeds and what the fuzzer kept) goes through the
//! very body `cargo fuzz run <target> -s none` drives (fuzz/src/lib.rs), so a
//! crash found and fixed once stays fixed. docs/RELIABILITY.md has the fuzzing
//! commands and figures.

#[path = "../fuzz/src/lib.rs"]
mod bodies;

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&bytes));
        assert!(outcome.is_ok(), "fuzz target {target} panics on {}", path.display());
    }
}

#[test]
fn submit_request() {
    replay("submit_request", bodies::submit_request);
}

#[test]
fn ledger_csv() {
    replay("ledger_csv", bodies::ledger_csv);
}

#[test]
fn ledger_xlsx() {
    replay("ledger_xlsx", bodies::ledger_xlsx);
}

#[test]
fn registry() {
    replay("registry", bodies::registry);
}

#[test]
fn catalog() {
    replay("catalog", bodies::catalog);
}

#[test]
fn wal_replay() {
    replay("wal_replay", bodies::wal_replay);
}

#[test]
fn outbox() {
    replay("outbox", bodies::outbox);
}
