//! The outside peers the tests check sifa against — DuckDB and pyarrow reading
//! the store, and whatever tests/peers/requirements.txt pins — provisioned by
//! the tests themselves, so `cargo test --workspace` passes on a fresh machine
//! with nothing installed by hand (Rust and Python 3 are all it needs, and
//! PyPI within reach). Every outside peer a test adds is provisioned here.
//!
//! Python packages go into a virtual environment under `target/tmp/peers/`,
//! created once per content of requirements.txt and reused by every test and
//! test process after it (a file lock serialises the first creation). The
//! system's Python is never changed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The pinned Python requirements of the tests.
pub const REQUIREMENTS: &str = include_str!("../peers/requirements.txt");

/// Where provisioned peers live: `target/tmp/peers` (cargo's per-target
/// scratch directory for integration tests).
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers")
}

/// A Python interpreter with tests/peers/requirements.txt installed. Creates
/// the virtual environment on first use; panics with what to do when it
/// cannot (no `python3`, no `venv` module, PyPI out of reach).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| provision_python(&peers_dir()))
}

/// A stable, short name for a text (FNV-1a), so a changed requirements file
/// gets a new environment and an old one is never half-upgraded.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn provision_python(root: &Path) -> PathBuf {
    fs::create_dir_all(root).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let venv = root.join(format!("python-{}", fingerprint(REQUIREMENTS)));
    let python = venv.join("bin/python");
    let done = venv.join(".provisioned");
    let lock_path = root.join(".lock");
    let lock = File::create(&lock_path).unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if done.exists() {
        return python;
    }
    // Environments of earlier versions of requirements.txt, and a creation
    // interrupted before it finished: gone, so target/ does not fill up.
    for old in fs::read_dir(root).into_iter().flatten().flatten() {
        if old.file_name().to_string_lossy().starts_with("python-") {
            let _ = fs::remove_dir_all(old.path());
        }
    }
    eprintln!("provisioning the tests' Python peers into {} (once) …", venv.display());
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "create a Python virtual environment",
        "Python 3 with its `venv` module (Debian: apt-get install python3-venv)",
    );
    let reqs = venv.join("requirements.txt");
    fs::write(&reqs, REQUIREMENTS).unwrap_or_else(|e| panic!("cannot write {}: {e}", reqs.display()));
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "-r"])
            .arg(&reqs),
        "install the pinned packages of tests/peers/requirements.txt from PyPI",
        "PyPI within reach (or a pip configured for a mirror)",
    );
    fs::write(&done, REQUIREMENTS).unwrap_or_else(|e| panic!("cannot write {}: {e}", done.display()));
    python
}

fn run(cmd: &mut Command, what: &str, needs: &str) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("could not {what}: cannot run {shown}: {e}; this needs {needs}"));
    if !out.status.success() {
        panic!(
            "could not {what}: {shown} failed ({}); this needs {needs}.\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Headless Chromium (Debian's `chromium`) with a Chinese font (`fonts-wqy-microhei`), installed
/// with apt-get when missing and the tests run as root (as in CI). `None`, with a printed reason, only
/// when something is missing and cannot be installed because the tests do not run as root.
pub fn chromium() -> Option<&'static Path> {
    static CHROMIUM: OnceLock<Option<PathBuf>> = OnceLock::new();
    CHROMIUM.get_or_init(provision_chromium).as_deref()
}

fn provision_chromium() -> Option<PathBuf> {
    let bin = PathBuf::from("/usr/bin/chromium");
    let needed = [
        (bin.as_path(), "chromium"),
        (Path::new("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), "fonts-wqy-microhei"),
    ];
    let missing: Vec<&str> = needed.iter().filter(|(file, _)| !file.exists()).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Some(bin);
    }
    if !is_root() {
        eprintln!(
            "SKIPPED: Debian's {} missing and the tests do not run as root, so cannot install it; run \
             `sudo apt-get install --no-install-recommends {}` to run this test",
            missing.join(" and "),
            missing.join(" ")
        );
        return None;
    }
    eprintln!("installing Debian's {} for the tests (once) …", missing.join(", "));
    let install = || {
        let mut c = Command::new("apt-get");
        c.args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    // A machine whose package lists are stale or empty: update them once and try again.
    if !install().output().is_ok_and(|o| o.status.success()) {
        run(
            Command::new("apt-get").args(["-o", "DPkg::Lock::Timeout=600", "update"]),
            "update the Debian package lists",
            "a Debian mirror within reach",
        );
        run(&mut install(), "install Debian's chromium", "a Debian mirror within reach");
    }
    for (file, package) in needed {
        assert!(file.exists(), "apt-get installed {package} but {} is missing", file.display());
    }
    Some(bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs headless Chromium on `url` with a fresh profile and `args` (e.g. `--dump-dom`,
/// `--screenshot=FILE`); returns its standard output.
pub fn chromium_headless(chromium: &Path, url: &str, args: &[&str]) -> String {
    let profile = tempfile::Builder::new().prefix("sifa-chromium-").tempdir().expect("temp dir");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url);
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(out.status.success(), "{shown} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
