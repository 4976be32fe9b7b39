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

/// A program of a Debian package (`postgresql-15`, `chromium`, …): `program` itself when it is
/// there, otherwise the package is installed with `apt-get install -y --no-install-recommends`
/// (tests run as root in CI). `Err` says why it cannot be had — not root and not installed — for
/// the caller to print before it skips; a failing apt-get as root panics with its output.
pub fn debian_program(program: &Path, package: &str) -> Result<PathBuf, String> {
    if program.exists() {
        return Ok(program.to_path_buf());
    }
    if !is_root() {
        return Err(format!(
            "{} is missing and only root may install it: run `apt-get install -y {package}` once, or run as root",
            program.display()
        ));
    }
    eprintln!("installing the Debian package {package} (for {}) …", program.display());
    let apt = |args: &[&str], what: &str| {
        run(
            Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive"),
            what,
            "Debian's package archive within reach",
        )
    };
    apt(&["update", "-q"], "update the package lists");
    apt(&["install", "-y", "-q", "--no-install-recommends", package], &format!("install {package}"));
    if !program.exists() {
        panic!("the Debian package {package} is installed but {} is still missing", program.display());
    }
    Ok(program.to_path_buf())
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Headless Chromium (Debian's `chromium`) with a Chinese font (`fonts-wqy-microhei`), installed
/// with apt-get when missing and the tests run as root (as in CI). `None`, with a printed reason, only
/// when something is missing and cannot be installed because the tests do not run as root.
pub fn chromium() -> Option<&'static Path> {
    static CHROMIUM: OnceLock<Option<PathBuf>> = OnceLock::new();
    CHROMIUM.get_or_init(provision_chromium).as_deref()
}

fn provision_chromium() -> Option<PathBuf> {
    let font = Path::new("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc");
    let found = debian_program(Path::new("/usr/bin/chromium"), "chromium")
        .and_then(|bin| debian_program(font, "fonts-wqy-microhei").map(|_| bin));
    match found {
        Ok(bin) => Some(bin),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
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
