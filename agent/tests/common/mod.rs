//! What the tests of the `sifa-agent` binary share: running it, reading what
//! `check` prints and what the outbox queued, and a config (written with
//! `toml` from the agent's own config struct) with the mapping of a
//! hand-written ledger.
#![allow(dead_code)] // each test file uses its own part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sifa_agent::config::{ConfigFile, CountRule, LedgerSource, OneOrMany};
use sifa_proto::tls::TlsConfig;

pub const OFFLINE: &str = "http://127.0.0.1:1";

/// A config of office 620982100 delivering to [`OFFLINE`]: plaintext to the loopback address,
/// so delivery really tries to connect (and fails).
pub fn offline_config() -> ConfigFile {
    ConfigFile::new("620982100", OFFLINE, TlsConfig::insecure())
}

pub fn write(dir: &Path, file: &ConfigFile) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(&p, file.to_toml()).unwrap();
    p
}

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

/// A count rule: rows whose `column` holds one of `values` count toward `metric` (or add up `sum`).
pub fn rule(metric: &str, conditions: &[(&str, &[&str])], sum: Option<&str>) -> CountRule {
    let value = |v: &[&str]| match v {
        [one] => OneOrMany::One(one.to_string()),
        many => OneOrMany::Many(many.iter().map(|s| s.to_string()).collect()),
    };
    CountRule {
        metric: metric.into(),
        conditions: conditions.iter().map(|(c, v)| (c.to_string(), value(v))).collect(),
        sum: sum.map(String::from),
    }
}

/// Mediations, resolved disputes and consultations (person-times) counted from the ledger's rows.
pub fn mapping() -> Vec<CountRule> {
    vec![
        rule("disputes_mediated", &[("类别", &["人民调解"]), ("结果", &["调解成功", "调解不成功"])], None),
        rule("disputes_resolved", &[("类别", &["人民调解"]), ("结果", &["调解成功"])], None),
        rule("consultations", &[("类别", &["法律咨询"])], Some("人数")),
    ]
}

/// A config reading `ledger` for 2024-01 to 2024-03 with [`mapping`], as `adjust` changes it.
pub fn write_config(dir: &Path, ledger: &str, adjust: impl FnOnce(&mut ConfigFile)) -> PathBuf {
    let mut file = ConfigFile {
        first_period: Some("2024-01".into()),
        last_period: Some("2024-03".into()),
        retry_min_seconds: 1,
        ledger: vec![LedgerSource { rules: mapping(), ..LedgerSource::new(ledger) }],
        ..offline_config()
    };
    adjust(&mut file);
    write(dir, &file)
}

/// `check` on books with problems: it exits with 1 (and prints as `ok` returns).
pub fn found_problems(out: &Output) -> (String, String) {
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(out.status.code(), Some(1), "sifa-agent check should find problems\nstdout:\n{o}\nstderr:\n{e}");
    (o, e)
}
