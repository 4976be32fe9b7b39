//! The process supervisor of the demo and the end-to-end tests: one real
//! server process of sifa (`sifa aggregator --config FILE`), started and
//! waited for until it writes its bound address into its address file
//! (`DATA_DIR/aggregator.addr` for an aggregator), killed with SIGKILL (no chance to clean up),
//! restarted, or stopped with SIGTERM (a clean shutdown). Its output is
//! appended to one log file; [`Supervised::log_since_start`] is what it said
//! since its last start.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to write its address file.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a process did not come up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} exited ({status}) before it listened; its log {log}:\n{output}")]
    Exited { program: String, status: std::process::ExitStatus, log: String, output: String },
    #[error("{program} did not write {addr_file} within {seconds} s; its log {log}:\n{output}")]
    Timeout { program: String, addr_file: String, seconds: u64, log: String, output: String },
    #[error("cannot open the log {log}: {source}")]
    Log { log: String, source: std::io::Error },
}

/// One supervised server process (running or not). Dropping it kills the process.
#[derive(Debug)]
pub struct Supervised {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    addr_file: PathBuf,
    log: PathBuf,
    /// The log's length when the process last started.
    log_start: u64,
    child: Option<Child>,
    addr: Option<String>,
}

impl Supervised {
    /// `program args...`, which writes its bound address into `addr_file` once it listens;
    /// its stdout and stderr are appended to `log`. Nothing runs until [`Supervised::start`].
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        addr_file: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Supervised {
        Supervised {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
            addr_file: addr_file.into(),
            log: log.into(),
            log_start: 0,
            child: None,
            addr: None,
        }
    }

    /// `sifa aggregator --config CONFIG`, which writes its address into `addr_file`
    /// (`sifa_aggregator::config::Config::addr_file`).
    pub fn aggregator(
        sifa: impl Into<PathBuf>,
        config: &Path,
        addr_file: &Path,
        log: impl Into<PathBuf>,
    ) -> Supervised {
        let args: [OsString; 3] = ["aggregator".into(), "--config".into(), config.into()];
        Supervised::new(sifa, args, addr_file, log)
    }

    /// An environment variable of the process (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Supervised {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Starts the process and waits until it has written its address file; returns the address.
    pub fn start(&mut self) -> Result<String, StartError> {
        assert!(self.child.is_none(), "{} is already running", self.program.display());
        let _ = std::fs::remove_file(&self.addr_file);
        self.addr = None;
        let program = self.program.display().to_string();
        let log_error = |source| StartError::Log { log: self.log.display().to_string(), source };
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir).map_err(log_error)?;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).map_err(log_error)?;
        self.log_start = log.metadata().map_err(log_error)?.len();
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(log_error)?)
            .stderr(log)
            .spawn()
            .map_err(|source| StartError::Spawn { program: program.clone(), source })?;
        let child = self.child.insert(child);
        let t0 = Instant::now();
        loop {
            if let Ok(a) = std::fs::read_to_string(&self.addr_file)
                && !a.trim().is_empty()
            {
                let addr = a.trim().to_string();
                self.addr = Some(addr.clone());
                return Ok(addr);
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let (log, output) = (self.log.display().to_string(), self.log_since_start());
                return Err(StartError::Exited { program, status, log, output });
            }
            if t0.elapsed() > START_TIMEOUT {
                self.kill9();
                return Err(StartError::Timeout {
                    program,
                    addr_file: self.addr_file.display().to_string(),
                    seconds: START_TIMEOUT.as_secs(),
                    log: self.log.display().to_string(),
                    output: self.log_since_start(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the running process wrote (e.g. `127.0.0.1:45123`); `None` before a start.
    pub fn addr(&self) -> Option<&str> {
        self.addr.as_deref()
    }

    /// The log file all starts append to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the process wrote since its last start.
    pub fn log_since_start(&self) -> String {
        let mut text = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(self.log_start)).is_ok() {
                let _ = f.read_to_end(&mut text);
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again (after [`Supervised::kill9`] or [`Supervised::stop`], or killing it first).
    pub fn restart(&mut self) -> Result<String, StartError> {
        self.kill9();
        self.start()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the process with SIGTERM (a clean shutdown), then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        stop_all(&mut [self], grace);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Stops every process at once: SIGTERM to all, then SIGKILL to those still running after `grace`.
pub fn stop_all(processes: &mut [&mut Supervised], grace: Duration) {
    let mut running: Vec<Child> = processes.iter_mut().filter_map(|p| p.child.take()).collect();
    for c in &running {
        terminate(c);
    }
    let t0 = Instant::now();
    while !running.is_empty() && t0.elapsed() < grace {
        running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut c in running {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(unix)]
fn terminate(c: &Child) {
    let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
}

/// No SIGTERM off Unix: the grace period passes and the process is killed.
#[cfg(not(unix))]
fn terminate(_: &Child) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A stand-in server: writes its "address" after a moment, then runs until killed.
    fn server(dir: &Path, script: &str) -> Supervised {
        let addr = dir.join("data/server.addr");
        std::fs::create_dir_all(addr.parent().unwrap()).unwrap();
        let script = script.replace("ADDR", &addr.display().to_string());
        Supervised::new("sh", ["-c".to_string(), script], addr, dir.join("logs/server.log"))
    }

    #[test]
    fn start_waits_for_the_address_and_restart_keeps_one_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = server(dir.path(), "echo started $GREETING; sleep 0.2; echo 127.0.0.1:7 > ADDR; exec sleep 30")
            .env("GREETING", "hello");
        assert_eq!(s.start().unwrap(), "127.0.0.1:7");
        assert!(s.is_running());
        s.kill9();
        assert!(!s.is_running());
        assert_eq!(s.restart().unwrap(), "127.0.0.1:7");
        assert_eq!(s.log_since_start(), "started hello\n");
        let all = std::fs::read_to_string(s.log_path()).unwrap();
        assert_eq!(all, "started hello\nstarted hello\n", "every start appends to the same log");
        let t0 = Instant::now();
        s.stop(Duration::from_secs(10));
        assert!(!s.is_running() && t0.elapsed() < Duration::from_secs(5), "SIGTERM ends it before the grace period");
    }

    #[test]
    fn a_process_that_exits_before_listening_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = server(dir.path(), "echo 'config x: key `unit`: bad' >&2; exit 3");
        let e = s.start().unwrap_err().to_string();
        assert!(e.contains("exited") && e.contains("key `unit`: bad"), "{e}");
        assert!(!s.is_running() && s.addr().is_none());
    }
}
