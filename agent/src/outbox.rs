//! The durable outbox: every report is on disk before any network attempt and
//! leaves only on an ACCEPTED or DUPLICATE acknowledgement. Design and crash
//! analysis: `outbox.md` beside this file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::{Deserialize, Serialize};
use sifa_proto::fs::{FsError, sync_dir, write_atomic};
use sifa_proto::v1::{Ack, Report, ack};
use sifa_proto::validate::content_digest;

/// The first bytes of a queued report file.
pub const MAGIC: &[u8] = b"SIFA-OUTBOX-1\n";
pub const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
pub const QUEUE_DIR: &str = "queue";
pub const REJECTED_DIR: &str = "rejected";
/// How many acknowledgements `status` remembers.
const RECENT_ACKS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {action}: {source}")]
    Io { path: String, action: &'static str, source: std::io::Error },
    #[error(
        "outbox {path} is in use by another sifa-agent (process {holder}); stop it first, or give this one its own outbox_dir"
    )]
    Locked { path: String, holder: String },
    #[error("outbox file {path} is damaged ({what}); move it aside and run again so the month is queued anew")]
    Damaged { path: String, what: String },
    #[error("outbox {path} belongs to unit {found}, not to {wanted}; each office needs its own outbox_dir")]
    WrongUnit { path: String, found: String, wanted: String },
}

impl From<FsError> for OutboxError {
    fn from(e: FsError) -> Self {
        OutboxError::Io { path: e.path.display().to_string(), action: e.action, source: e.source }
    }
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> OutboxError + use<> {
    let path = path.to_path_buf();
    move |source| OutboxError::Io { path: path.display().to_string(), action, source }
}

/// What the outbox knows of one month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeriodState {
    /// The highest revision ever queued for the month.
    pub revision: u64,
    /// Hex SHA-256 content digest of that revision.
    pub digest: String,
    /// The highest revision acknowledged (accepted or duplicate).
    pub acked_revision: u64,
    /// The sum of the figures of the highest revision queued by this agent
    /// (a month that had cases and now has none is held for confirmation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_sum: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    pub period: String,
    pub revision: u64,
    /// "accepted", "duplicate" or "rejected".
    pub outcome: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryState {
    /// Delivery rounds that failed in a row.
    pub failures: u32,
    /// Do not try before this time (Unix ms); 0 = now.
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub last_success_ms: Option<i64>,
    /// When the aggregator refuses this office for good (its certificate revoked, expired, or of
    /// another unit): what it said (`PERMISSION_DENIED: ...`). Cleared by the next delivery.
    #[serde(default)]
    pub refused: Option<String>,
}

/// The last reading of the books, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionRecord {
    pub at_ms: i64,
    pub catalog_version: String,
    pub problems: Vec<String>,
    /// Month → why it is held back.
    pub held: BTreeMap<String, Vec<String>>,
    pub queued: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub unit: String,
    pub periods: BTreeMap<String, PeriodState>,
    pub recent_acks: Vec<AckRecord>,
    pub retry: RetryState,
    pub last_collection: Option<CollectionRecord>,
    /// Rows of each case ledger (file → rows) when its figures were last queued.
    #[serde(default)]
    pub ledger_rows: BTreeMap<String, u64>,
}

/// A report waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Queued {
    pub period: String,
    pub revision: u64,
    pub path: PathBuf,
}

/// A report the aggregator refused, kept in `rejected/` with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRecord {
    pub period: String,
    pub revision: u64,
    pub digest: String,
    /// The gRPC status code of the refusal (3 invalid, 6 conflict, 7 not allowed, 9 period locked).
    pub code: i32,
    pub problems: Vec<RejectedProblem>,
    pub rejected_at_ms: i64,
    pub values: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedProblem {
    pub metric: String,
    pub rule: String,
    pub message: String,
}

/// What queueing a month's figures did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Same content as the month's latest revision: nothing to send.
    Unchanged,
    /// Queued under this revision.
    Queued(u64),
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_name(period: &str, revision: u64) -> String {
    format!("{period}.r{revision:06}")
}

/// (period, revision) of a queue or rejected file name.
fn parse_name(name: &str, ext: &str) -> Option<(String, u64)> {
    let stem = name.strip_suffix(ext)?;
    let (period, rev) = stem.split_once(".r")?;
    period.parse::<sifa_proto::Period>().ok()?;
    Some((period.to_string(), rev.parse().ok()?))
}

fn encode_report(report: &Report) -> Vec<u8> {
    let body = report.encode_to_vec();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a queued report file (format: magic, CRC-32 of the body, protobuf `Report`).
pub fn read_report(path: &Path) -> Result<Report, OutboxError> {
    let bytes = fs::read(path).map_err(io(path, "read"))?;
    let damaged = |what: &str| OutboxError::Damaged { path: path.display().to_string(), what: what.into() };
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| damaged("not an outbox file"))?;
    if rest.len() < 4 {
        return Err(damaged("truncated"));
    }
    let (crc, body) = rest.split_at(4);
    if u32::from_le_bytes(crc.try_into().unwrap()) != crc32fast::hash(body) {
        return Err(damaged("checksum mismatch"));
    }
    Report::decode(body).map_err(|e| damaged(&format!("undecodable: {e}")))
}

/// Lists the queue, oldest month first and each month's revisions in order.
pub fn list_queue(dir: &Path) -> Result<Vec<Queued>, OutboxError> {
    let qdir = dir.join(QUEUE_DIR);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&qdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&qdir, "list")(e)),
    };
    for e in entries {
        let e = e.map_err(io(&qdir, "list"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((period, revision)) = parse_name(&name, ".report") {
            out.push(Queued { period, revision, path: e.path() });
        }
    }
    out.sort();
    Ok(out)
}

/// Lists the rejected reports with their reasons, oldest month first.
pub fn list_rejected(dir: &Path) -> Result<Vec<RejectedRecord>, OutboxError> {
    let rdir = dir.join(REJECTED_DIR);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&rdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(&rdir, "list")(e)),
    };
    for e in entries {
        let e = e.map_err(io(&rdir, "list"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if parse_name(&name, ".json").is_none() {
            continue;
        }
        let bytes = fs::read(e.path()).map_err(io(&e.path(), "read"))?;
        let rec: RejectedRecord = serde_json::from_slice(&bytes)
            .map_err(|err| OutboxError::Damaged { path: e.path().display().to_string(), what: err.to_string() })?;
        out.push(rec);
    }
    out.sort_by(|a, b| (&a.period, a.revision).cmp(&(&b.period, b.revision)));
    Ok(out)
}

/// Reads the state file without taking the lock (for `status`).
pub fn read_state(dir: &Path) -> Result<State, OutboxError> {
    let path = dir.join(STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| OutboxError::Damaged { path: path.display().to_string(), what: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(io(&path, "read")(e)),
    }
}

/// The outbox of one office, held exclusively while open.
pub struct Outbox {
    dir: PathBuf,
    state: State,
    _lock: File,
}

impl Outbox {
    /// Opens (creating if needed) the outbox of `unit` in `dir`: takes its
    /// lock, drops temp files a crash left behind, and reconciles the state
    /// with the queue and rejected files (a crash between writing a report
    /// and recording its revision leaves the report, never a lost revision).
    pub fn open(dir: &Path, unit: &str) -> Result<Outbox, OutboxError> {
        for d in [dir.to_path_buf(), dir.join(QUEUE_DIR), dir.join(REJECTED_DIR)] {
            fs::create_dir_all(&d).map_err(io(&d, "create folder"))?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&lock_path).unwrap_or_default().trim().to_string();
                return Err(OutboxError::Locked { path: dir.display().to_string(), holder });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path, "lock")(e)),
        }
        lock.set_len(0).and_then(|_| write!(lock, "{}", std::process::id())).map_err(io(&lock_path, "write lock"))?;
        for d in [dir.to_path_buf(), dir.join(QUEUE_DIR), dir.join(REJECTED_DIR)] {
            for e in fs::read_dir(&d).map_err(io(&d, "list"))? {
                let e = e.map_err(io(&d, "list"))?;
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    fs::remove_file(e.path()).map_err(io(&e.path(), "remove leftover temp file"))?;
                }
            }
        }
        let mut state = read_state(dir)?;
        if state.unit.is_empty() {
            state.unit = unit.to_string();
        } else if state.unit != unit {
            return Err(OutboxError::WrongUnit {
                path: dir.display().to_string(),
                found: state.unit,
                wanted: unit.to_string(),
            });
        }
        let mut outbox = Outbox { dir: dir.to_path_buf(), state, _lock: lock };
        let before = outbox.state.clone();
        for q in list_queue(dir)? {
            let report = read_report(&q.path)?;
            outbox.note_revision(&q.period, q.revision, &hex(&content_digest(&report)));
        }
        for r in list_rejected(dir)? {
            outbox.note_revision(&r.period, r.revision, &r.digest);
        }
        if outbox.state != before || !dir.join(STATE_FILE).exists() {
            outbox.save()?;
        }
        Ok(outbox)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Records that `revision` of `period` exists with `digest`, if it is the highest known.
    fn note_revision(&mut self, period: &str, revision: u64, digest: &str) {
        let p = self.state.periods.entry(period.to_string()).or_default();
        if revision > p.revision {
            p.revision = revision;
            p.digest = digest.to_string();
        }
    }

    pub fn save(&self) -> Result<(), OutboxError> {
        let bytes = serde_json::to_vec_pretty(&self.state).expect("state serialises");
        write_atomic(&self.dir, STATE_FILE, &bytes)?;
        Ok(())
    }

    /// Queues `report` (already validated) as the month's next revision,
    /// unless its content equals the month's latest revision. The report file
    /// is durable before this returns.
    pub fn enqueue(&mut self, report: &Report) -> Result<Enqueued, OutboxError> {
        if !self.would_change(report) {
            return Ok(Enqueued::Unchanged);
        }
        self.enqueue_as_new_revision(report).map(Enqueued::Queued)
    }

    /// Whether queueing `report` would make a new revision (its content differs from the month's latest).
    pub fn would_change(&self, report: &Report) -> bool {
        let digest = hex(&content_digest(report));
        self.state.periods.get(&report.period).is_none_or(|p| p.digest != digest)
    }

    /// Records the rows of each case ledger whose figures are now queued.
    pub fn set_ledger_rows(&mut self, rows: &BTreeMap<String, u64>) -> Result<(), OutboxError> {
        if &self.state.ledger_rows == rows {
            return Ok(());
        }
        self.state.ledger_rows = rows.clone();
        self.save()
    }

    /// Queues `report` under the month's next revision whatever its content.
    pub fn enqueue_as_new_revision(&mut self, report: &Report) -> Result<u64, OutboxError> {
        let revision = self.state.periods.get(&report.period).map_or(0, |p| p.revision) + 1;
        let mut r = report.clone();
        r.revision = revision;
        let name = format!("{}.report", file_name(&r.period, revision));
        // 1. the report, durable under its revision; 2. the state. A crash
        // between them is repaired by `open` from the file itself.
        write_atomic(&self.dir.join(QUEUE_DIR), &name, &encode_report(&r))?;
        self.note_revision(&r.period, revision, &hex(&content_digest(&r)));
        if let Some(p) = self.state.periods.get_mut(&r.period) {
            p.value_sum = Some(r.values.values().sum());
        }
        self.save()?;
        Ok(revision)
    }

    fn remember_ack(&mut self, period: &str, revision: u64, outcome: &str, at_ms: i64) {
        self.state.recent_acks.push(AckRecord { period: period.into(), revision, outcome: outcome.into(), at_ms });
        let n = self.state.recent_acks.len();
        if n > RECENT_ACKS {
            self.state.recent_acks.drain(..n - RECENT_ACKS);
        }
    }

    /// Applies an acknowledgement of the queued `q` (whose content is `report`).
    /// Accepted/duplicate: the report leaves the queue. Rejected: it moves to
    /// `rejected/` with the reason. Returns the outcome.
    pub fn acknowledge(
        &mut self,
        q: &Queued,
        report: &Report,
        ack: &Ack,
        at_ms: i64,
    ) -> Result<ack::Outcome, OutboxError> {
        let outcome = ack::Outcome::try_from(ack.outcome).unwrap_or(ack::Outcome::Unspecified);
        self.note_revision(&q.period, q.revision, &hex(&content_digest(report)));
        match outcome {
            ack::Outcome::Accepted | ack::Outcome::Duplicate => {
                let p = self.state.periods.entry(q.period.clone()).or_default();
                p.acked_revision = p.acked_revision.max(q.revision);
                let word = if outcome == ack::Outcome::Accepted { "accepted" } else { "duplicate" };
                self.remember_ack(&q.period, q.revision, word, at_ms);
            }
            ack::Outcome::Rejected => {
                let rec = RejectedRecord {
                    period: q.period.clone(),
                    revision: q.revision,
                    digest: hex(&content_digest(report)),
                    code: ack.code,
                    problems: ack
                        .problems
                        .iter()
                        .map(|p| RejectedProblem {
                            metric: p.metric.clone(),
                            rule: p.rule.clone(),
                            message: p.message.clone(),
                        })
                        .collect(),
                    rejected_at_ms: at_ms,
                    values: report.values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                };
                let name = format!("{}.json", file_name(&q.period, q.revision));
                write_atomic(
                    &self.dir.join(REJECTED_DIR),
                    &name,
                    &serde_json::to_vec_pretty(&rec).expect("serialises"),
                )?;
                self.remember_ack(&q.period, q.revision, "rejected", at_ms);
            }
            ack::Outcome::Unspecified => {
                return Ok(outcome);
            }
        }
        // State first, then the file: a crash in between resends a report the
        // aggregator already has, which it acknowledges as a duplicate.
        self.save()?;
        fs::remove_file(&q.path).map_err(io(&q.path, "remove delivered report"))?;
        sync_dir(&self.dir.join(QUEUE_DIR))?;
        Ok(outcome)
    }

    pub fn record_collection(&mut self, rec: CollectionRecord) -> Result<(), OutboxError> {
        self.state.last_collection = Some(rec);
        self.save()
    }

    pub fn retry(&self) -> &RetryState {
        &self.state.retry
    }

    pub fn set_retry(&mut self, retry: RetryState) -> Result<(), OutboxError> {
        self.state.retry = retry;
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(period: &str, values: &[(&str, f64)]) -> Report {
        Report {
            unit_code: "620982100".into(),
            period: period.into(),
            revision: 0,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            comment: None,
            generated_at_ms: 1,
            generator: "t".into(),
        }
    }

    fn ack(q: &Queued, outcome: ack::Outcome, code: i32) -> Ack {
        Ack {
            unit_code: "620982100".into(),
            period: q.period.clone(),
            revision: q.revision,
            outcome: outcome as i32,
            problems: vec![sifa_proto::v1::Problem { metric: "m".into(), rule: "r".into(), message: "why".into() }],
            code,
        }
    }

    #[test]
    fn unchanged_sends_nothing_changed_gets_the_next_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), "620982100").unwrap();
        let a = report("2024-03", &[("lectures", 2.0)]);
        assert_eq!(ob.enqueue(&a).unwrap(), Enqueued::Queued(1));
        assert_eq!(ob.enqueue(&a).unwrap(), Enqueued::Unchanged);
        let mut later = a.clone();
        later.generated_at_ms = 99; // not content
        assert_eq!(ob.enqueue(&later).unwrap(), Enqueued::Unchanged);
        let b = report("2024-03", &[("lectures", 3.0)]);
        assert_eq!(ob.enqueue(&b).unwrap(), Enqueued::Queued(2));
        assert_eq!(ob.enqueue(&report("2024-02", &[("lectures", 3.0)])).unwrap(), Enqueued::Queued(1));
        let q = list_queue(dir.path()).unwrap();
        let ids: Vec<_> = q.iter().map(|q| (q.period.as_str(), q.revision)).collect();
        assert_eq!(ids, [("2024-02", 1), ("2024-03", 1), ("2024-03", 2)]);
        assert_eq!(read_report(&q[2].path).unwrap().values["lectures"], 3.0);
        // Going back to earlier content is a change too: a new revision, never a reused one.
        assert_eq!(ob.enqueue(&a).unwrap(), Enqueued::Queued(3));
    }

    #[test]
    fn a_second_agent_cannot_open_the_same_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let _ob = Outbox::open(dir.path(), "620982100").unwrap();
        let e = Outbox::open(dir.path(), "620982100").err().unwrap().to_string();
        assert!(e.contains("in use by another sifa-agent"), "{e}");
    }

    #[test]
    fn the_outbox_belongs_to_one_unit() {
        let dir = tempfile::tempdir().unwrap();
        drop(Outbox::open(dir.path(), "620982100").unwrap());
        let e = Outbox::open(dir.path(), "620982101").err().unwrap().to_string();
        assert!(e.contains("belongs to unit 620982100"), "{e}");
    }

    #[test]
    fn a_crash_before_the_state_is_written_loses_no_revision() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ob = Outbox::open(dir.path(), "620982100").unwrap();
            ob.enqueue(&report("2024-03", &[("lectures", 2.0)])).unwrap();
        }
        // Simulate kill -9 after the report file was renamed into place but
        // before the state recorded it: put the state back as it was before,
        // and leave a half-written temp file as a crash mid-write would.
        let state_before = State { unit: "620982100".into(), ..Default::default() };
        std::fs::write(dir.path().join(STATE_FILE), serde_json::to_vec(&state_before).unwrap()).unwrap();
        std::fs::write(dir.path().join(QUEUE_DIR).join(".2024-03.r000002.report.tmp"), b"half").unwrap();
        let mut ob = Outbox::open(dir.path(), "620982100").unwrap();
        assert_eq!(ob.state().periods["2024-03"].revision, 1);
        assert!(!dir.path().join(QUEUE_DIR).join(".2024-03.r000002.report.tmp").exists());
        // Same content: nothing new; different content: revision 2, never a second revision 1.
        assert_eq!(ob.enqueue(&report("2024-03", &[("lectures", 2.0)])).unwrap(), Enqueued::Unchanged);
        assert_eq!(ob.enqueue(&report("2024-03", &[("lectures", 5.0)])).unwrap(), Enqueued::Queued(2));
    }

    #[test]
    fn acks_remove_rejections_move_aside_and_revisions_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), "620982100").unwrap();
        let a = report("2024-03", &[("lectures", 2.0)]);
        let b = report("2024-04", &[("lectures", 1.0)]);
        ob.enqueue(&a).unwrap();
        ob.enqueue(&b).unwrap();
        let q = list_queue(dir.path()).unwrap();
        let ra = read_report(&q[0].path).unwrap();
        let rb = read_report(&q[1].path).unwrap();
        assert_eq!(
            ob.acknowledge(&q[0], &ra, &ack(&q[0], ack::Outcome::Accepted, 0), 5).unwrap(),
            ack::Outcome::Accepted
        );
        assert_eq!(
            ob.acknowledge(&q[1], &rb, &ack(&q[1], ack::Outcome::Rejected, 3), 6).unwrap(),
            ack::Outcome::Rejected
        );
        assert!(list_queue(dir.path()).unwrap().is_empty());
        let rej = list_rejected(dir.path()).unwrap();
        assert_eq!((rej[0].period.as_str(), rej[0].revision, rej[0].code), ("2024-04", 1, 3));
        assert_eq!(rej[0].problems[0].message, "why");
        drop(ob);
        // After a restart: delivered and rejected months keep their revisions.
        let mut ob = Outbox::open(dir.path(), "620982100").unwrap();
        assert_eq!(ob.state().periods["2024-03"].acked_revision, 1);
        assert_eq!(ob.enqueue(&a).unwrap(), Enqueued::Unchanged);
        assert_eq!(ob.enqueue(&b).unwrap(), Enqueued::Unchanged, "a refused content is not sent again");
        assert_eq!(ob.enqueue(&report("2024-04", &[("lectures", 4.0)])).unwrap(), Enqueued::Queued(2));
        let acks: Vec<_> = ob.state().recent_acks.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(acks, ["accepted", "rejected"]);
    }

    #[test]
    fn a_damaged_queue_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), "620982100").unwrap();
        ob.enqueue(&report("2024-03", &[("lectures", 2.0)])).unwrap();
        drop(ob);
        let q = list_queue(dir.path()).unwrap();
        let mut bytes = std::fs::read(&q[0].path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&q[0].path, bytes).unwrap();
        let e = Outbox::open(dir.path(), "620982100").err().unwrap().to_string();
        assert!(e.contains("2024-03.r000001.report") && e.contains("checksum"), "{e}");
    }
}
