//! The ingest benchmark's peer: PostgreSQL 15 with its default durability
//! (`fsync = on`, `synchronous_commit = on`: a transaction is acknowledged
//! only once its WAL is flushed), on a Unix socket in a temporary directory,
//! and pgbench inserting one report per transaction.
//!
//! PostgreSQL comes from Debian's `postgresql-15` package, installed when
//! missing (as root). PostgreSQL refuses to run as root, so as root every
//! server command runs as the package's `postgres` user, owner of the data
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::peers::{debian_program, is_root};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const PACKAGE: &str = "postgresql-15";
/// Names the socket file (`.s.PGSQL.5432` in the temporary directory); nothing listens on TCP.
const PORT: &str = "5432";
/// The database user `initdb` creates (trust authentication on the socket).
const USER: &str = "bench";

/// The table of the reports pgbench inserts: the columns of a stored report
/// (store/src/schema.rs) with the benchmark's four statistics, and its key
/// (unit, period, revision).
const SCHEMA: &str = "
CREATE TABLE reports (
    unit_code text NOT NULL,
    period text NOT NULL,
    revision bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    first_accepted_by text NOT NULL DEFAULT '620982',
    generated_at timestamptz NOT NULL,
    generator text NOT NULL,
    comment text,
    lectures double precision,
    consultations double precision,
    disputes_mediated double precision,
    disputes_resolved double precision,
    PRIMARY KEY (unit_code, period, revision)
);
CREATE SEQUENCE revisions;
";

/// One transaction of pgbench: one report of the client's own office (as each
/// sifa caller is one office), a month of 2015–2024, a revision never used
/// before (distinct keys, as in sifa's run).
const INSERT: &str = "\\set month random(0, 119)
INSERT INTO reports (unit_code, period, revision, generated_at, generator,
                     lectures, consultations, disputes_mediated, disputes_resolved)
VALUES ((620982200 + :client_id)::text,
        to_char(date '2015-01-01' + make_interval(months => :month), 'YYYY-MM'),
        nextval('revisions'), now(), 'pgbench', :month % 50, :month, :month % 30 + 5, :month % 30);
";

/// A running PostgreSQL server in its own temporary directory; stopped (and the directory removed)
/// when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    server: Child,
}

impl Postgres {
    /// initdb, start and create the table. `Err`: why PostgreSQL cannot be had here (not root and
    /// not installed), for the caller to print.
    pub fn start() -> Result<Postgres, String> {
        debian_program(&Path::new(BIN).join("postgres"), PACKAGE)?;
        let dir = tempfile::Builder::new().prefix("sifa-bench-pg-").tempdir().expect("temp dir");
        if is_root() {
            ok(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()), "chown the data directory");
        }
        let data = dir.path().join("data");
        ok(
            as_server_user("initdb").args(["--auth=trust", "--username", USER, "--encoding=UTF8", "-D"]).arg(&data),
            "initdb",
        );
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("postgres.log");
        if is_root() {
            ok(Command::new("chown").arg("postgres:postgres").arg(dir.path().join("postgres.log")), "chown the log");
        }
        let server = as_server_user("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-k"])
            .arg(dir.path())
            .args(["-p", PORT, "-c", "listen_addresses="])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let pg = Postgres { dir, server };
        pg.wait_ready();
        ok(pg.client("psql").args(["-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", SCHEMA]), "create the table");
        std::fs::write(pg.script(), INSERT).expect("write the pgbench script");
        Ok(pg)
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("insert.sql")
    }

    /// The server's settings that decide durability, as `name = value` lines.
    pub fn durability(&self) -> String {
        let sql = "SELECT name || ' = ' || setting FROM pg_settings \
                   WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes') ORDER BY 1";
        let out = ok(self.client("psql").args(["-At", "-d", "postgres", "-c", sql]), "read the settings");
        String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>().join(", ")
    }

    /// pgbench with `clients` connections (2 threads) inserting for `secs`: committed transactions
    /// per second.
    pub fn pgbench(&self, clients: usize, secs: u64) -> f64 {
        let out = ok(
            self.client("pgbench")
                .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T", &secs.to_string(), "-f"])
                .arg(self.script())
                .arg("postgres"),
            "run pgbench",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let failed = text.lines().find(|l| l.starts_with("number of failed transactions"));
        assert!(failed.is_none_or(|l| l.contains(": 0 ")), "pgbench: {}\n{text}", failed.unwrap_or(""));
        text.lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("pgbench printed no `tps = …` line:\n{text}"))
    }

    /// A client program (psql, pgbench) connected to this server's socket.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(Path::new(BIN).join(program));
        c.arg("-h").arg(self.dir.path()).args(["-p", PORT, "-U", USER]);
        c
    }

    fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            let ready = Command::new(Path::new(BIN).join("pg_isready"))
                .arg("-h")
                .arg(self.dir.path())
                .args(["-p", PORT, "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
            assert!(t0.elapsed() < Duration::from_secs(60), "PostgreSQL did not start within 60 s:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Fast shutdown: the server ends its backends and stops.
        let stopped = as_server_user("pg_ctl")
            .args(["stop", "-m", "fast", "-D"])
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.server.kill();
        }
        let _ = self.server.wait();
    }
}

/// A server program, run as the `postgres` user when this process is root.
fn as_server_user(program: &str) -> Command {
    let path = Path::new(BIN).join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// Runs `cmd`; panics with its output, saying what it was for, when it fails.
fn ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot {what}: {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "cannot {what}: {cmd:?} failed ({})\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
