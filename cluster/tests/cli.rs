//! `sifa-cluster`'s command line: its commands, and the errors that need no cluster. The cluster
//! itself (a scheduler and two executors over a bucket) is tested in tests/ballista.rs.

use std::process::Command;

fn sifa_cluster(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sifa-cluster")).args(args).output().unwrap()
}

#[test]
fn it_names_its_three_commands() {
    let out = sifa_cluster(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["scheduler", "executor", "query"] {
        assert!(help.contains(command), "{command} not in:\n{help}");
    }
}

#[test]
fn a_directory_is_refused_with_what_to_give_instead() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        sifa_cluster(&["query", "--scheduler", "127.0.0.1:1", "--data", dir.path().to_str().unwrap(), "SELECT 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3://BUCKET/PREFIX") && err.contains("sifa query --data DIR"), "{err}");
}

#[test]
fn an_executor_needs_its_scheduler() {
    let out = sifa_cluster(&["executor"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scheduler"));
}
