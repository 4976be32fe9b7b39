//! The README's two commands are the whole set-up: CI runs exactly its test
//! command, and its first command works in a clone of the repository with
//! nothing beside it and nothing installed by hand (the peers the tests need
//! are provisioned by tests/support/peers.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The commands of the README's "Two commands" block, without their comments.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let section = readme.split("## Two commands").nth(1).expect("README has a \"## Two commands\" section");
    let block = section.split("```sh").nth(1).and_then(|b| b.split("```").next()).expect("a ```sh block in it");
    block.lines().map(|l| l.split('#').next().unwrap().trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let commands = readme_commands();
    assert_eq!(commands, ["cargo run --release -- demo", "cargo test --workspace"], "the README's two commands");
    let ci = std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).expect(".ci/run");
    let steps: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.starts_with("set ") && !l.starts_with("cd "))
        .collect();
    assert_eq!(steps, [commands[1].as_str()], ".ci/run must run the README's test command and nothing else");
}

/// The workspace's target directory (the tests' build directory).
fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is TARGET/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").to_path_buf()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().expect("git");
    assert!(out.status.success(), "git {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A clone of the committed HEAD with nothing beside it, kept between runs
/// (reset to HEAD, untracked files removed), and the directory its binaries
/// go to.
fn fresh_clone() -> (PathBuf, PathBuf) {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fresh-clone");
    let repo = base.join("repo").join("sifa");
    let target = base.join("bin");
    if !repo.join(".git").exists() {
        std::fs::create_dir_all(repo.parent().unwrap()).unwrap();
        let out = Command::new("git").args(["clone", "--quiet", "--no-hardlinks", ROOT]).arg(&repo).output().unwrap();
        assert!(out.status.success(), "git clone: {}", String::from_utf8_lossy(&out.stderr));
    }
    git(&repo, &["fetch", "--quiet", ROOT, "HEAD"]);
    git(&repo, &["reset", "--quiet", "--hard", "FETCH_HEAD"]);
    git(&repo, &["clean", "--quiet", "-fdx"]);
    (repo, target)
}

/// The README's demo command in a clone that has nothing beside it (no
/// developers' shared/ folder, no untracked file): it builds, runs a province
/// (two counties, to keep the test short) end to end and checks the
/// province's store against the books itself.
///
/// It builds in the dev profile the tests were built with, reusing their
/// compiled dependencies (cargo's build directory is shared; the clone's own
/// binaries go to a directory of their own, so the binaries under test are
/// never replaced). `--release` differs only in optimisation, and a cold
/// release build would double CI's time; `cargo run --release -- demo` itself
/// is what every developer runs first.
#[test]
fn the_readme_demo_command_works_in_a_fresh_clone() {
    let (repo, target) = fresh_clone();
    assert!(!repo.parent().unwrap().join("shared").exists());
    let head = git(Path::new(ROOT), &["rev-parse", "HEAD"]);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    let demo_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["run", "--", "demo", "--counties", "2", "--dir"])
        .arg(demo_dir.path().join("sifa-demo"))
        .current_dir(&repo)
        .env("CARGO_BUILD_BUILD_DIR", target_dir())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`cargo run -- demo` failed in a fresh clone:\n{stdout}\n{stderr}");
    assert!(
        demo_dir.path().join("sifa-demo/publish/figures.json").exists(),
        "the demo published its figures:\n{stdout}"
    );
}
