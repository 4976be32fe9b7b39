//! `sifa sim books`: demo books written by the umbrella binary (the office
//! agent ships no such command) are read by the real agent to the figures
//! counted from the generated rows.

use std::process::{Command, Output};

use sifa_sim::synth::{self, SynthSpec};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).env("RUST_LOG", "warn").output().expect("run")
}

#[test]
fn books_written_by_sifa_sim_are_read_by_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("office");
    let sifa = env!("CARGO_BIN_EXE_sifa");
    let args = ["sim", "books", "--unit", "620982101", "--year", "2024", "--seed", "4", "--until-month", "3"];
    let out = run(sifa, &[&args[..], &["--format", "csv-gbk", "--out", out_dir.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = out_dir.join("agent.toml");
    assert!(String::from_utf8_lossy(&out.stdout).contains(config.to_str().unwrap()));
    // The config is what sifa_agent reads: plaintext to a loopback aggregator, paths relative to it.
    let text = std::fs::read_to_string(&config).unwrap();
    let c = sifa_agent::config::Config::load(&config).unwrap();
    assert!(c.tls.insecure && c.ledgers[0].path.starts_with(&out_dir), "{text}");

    let check = run(sifa, &["agent", "check", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && !String::from_utf8_lossy(&check.stderr).contains("problem"), "{check:?}");
    let unit = sifa_proto::Registry::demo().get("620982101").unwrap().clone();
    let books = synth::books(&unit, &SynthSpec { until_month: 3, ..SynthSpec::year(2024, 4) });
    for m in 1..=3u8 {
        let resolved = books
            .cases
            .iter()
            .filter(|r| r.day.month == m && r.category == "人民调解" && r.outcome == "调解成功")
            .count();
        let line = stdout.lines().find(|l| l.starts_with(&format!("2024-{m:02} "))).expect("a line per month");
        assert!(line.contains(&format!(" disputes_resolved={resolved} ")), "{line}");
    }
}

#[test]
fn an_unknown_unit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        env!("CARGO_BIN_EXE_sifa"),
        &["sim", "books", "--unit", "629999", "--year", "2024", "--out", dir.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unit 629999 is not in the registry"), "{out:?}");
}
