//! What the tests of the `sifa-agent` binary share: running it, reading what
//! `check` prints and what the outbox queued, and a config with the mapping
//! of a hand-written ledger.
#![allow(dead_code)] // each test file uses its own part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const OFFLINE: &str = "http://127.0.0.1:1";
/// Plaintext to the loopback address, so delivery really tries to connect (and fails).
pub const TLS: &str = "\n[tls]\ninsecure = true\n";

pub fn agent(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sifa-agent"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sifa-agent")
}

pub fn ok(out: &Output) -> (String, String) {
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "sifa-agent failed: {}\nstdout:\n{o}\nstderr:\n{e}", out.status);
    (o, e)
}

/// (period, revision) of every report in the outbox queue.
pub fn queue(outbox: &Path) -> Vec<(String, u64)> {
    sifa_agent::outbox::list_queue(outbox).unwrap().into_iter().map(|q| (q.period, q.revision)).collect()
}

/// The figures `check` prints, per month.
pub fn figures(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter(|l| l.len() > 8 && l.as_bytes()[4] == b'-' && !l.contains("HELD"))
        .map(|l| (l[..7].to_string(), l[8..].to_string()))
        .collect()
}

pub const MAPPING: &str = r#"
[[ledger.count]]
metric = "disputes_mediated"
where = { "类别" = "人民调解", "结果" = ["调解成功", "调解不成功"] }
[[ledger.count]]
metric = "disputes_resolved"
where = { "类别" = "人民调解", "结果" = "调解成功" }
[[ledger.count]]
metric = "consultations"
where = { "类别" = "法律咨询" }
sum = "人数"
"#;

pub fn write_config(dir: &Path, ledger: &str, extra: &str) -> PathBuf {
    let cfg = format!(
        "unit = \"620982100\"\naggregator = \"{OFFLINE}\"\noutbox_dir = \"outbox\"\nfirst_period = \"2024-01\"\nlast_period = \"2024-03\"\nretry_min_seconds = 1\n{extra}\n[[ledger]]\npath = \"{ledger}\"\n{MAPPING}{TLS}"
    );
    let p = dir.join("agent.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// `check` on books with problems: it exits with 1 (and prints as `ok` returns).
pub fn found_problems(out: &Output) -> (String, String) {
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(out.status.code(), Some(1), "sifa-agent check should find problems\nstdout:\n{o}\nstderr:\n{e}");
    (o, e)
}
