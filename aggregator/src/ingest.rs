//! Ingest: a submitted report, already authorized (auth.rs), is validated (the
//! shared library, the registry), then handed to the single log writer, which decides duplicate,
//! conflict or locked period, appends every pending report to the write-ahead
//! log with one fsync (group commit) and only then completes their
//! acknowledgements. Below the free-space reserve (`disk.rs`), or when a
//! write of the log finds the disk full, new reports are refused
//! (RESOURCE_EXHAUSTED) and nothing of the group is acknowledged; the next
//! group checks again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::{Provenance, Report, SubmitRequest};
use sifa_proto::validate::{
    self, Now, Rejection, RejectionCode, check_provenance, check_report, check_unit, content_digest, report_label,
};
use sifa_proto::{Catalog, Period, Registry};
use tokio::sync::{oneshot, watch};

use crate::backlog::ForwardBacklog;
use crate::disk::{DiskLow, Reserve};
use crate::http::metrics::Metrics;
use crate::index::{Index, Lookup};
use crate::locks::{Admission, Locks};
use crate::wal::{self, Lsn, Wal};

/// What became of a report that was not rejected. Both are sent only once the
/// report is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    Duplicate,
}

/// Why a report was not stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The report is refused for good (the sender must change it).
    Rejected(Rejection),
    /// This tier cannot take it now (shutting down, disk trouble): send it again later.
    Unavailable(String),
    /// No space for it on this tier's disk now: send it again later.
    DiskFull(DiskLow),
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Refusal {
        Refusal::Rejected(r)
    }
}

pub type Decision = Result<Stored, Refusal>;

/// The most reports one log write takes (one fsync).
pub const MAX_GROUP: usize = 8192;

/// A validated report on its way to the log (the request taken apart: it has a report).
struct Job {
    report: Report,
    provenance: Option<Provenance>,
    period: Period,
    digest: [u8; 32],
    reply: oneshot::Sender<Decision>,
}

/// Accepted records not yet in Parquet, in log order (the flusher removes them once written; the
/// Flight SQL endpoint reads them). Shared, so that a reader's snapshot does not copy the reports.
pub type Unflushed = Arc<Mutex<Vec<(Lsn, Arc<SubmitRequest>)>>>;

/// The entry point of reports into a tier.
#[derive(Clone)]
pub struct Ingest {
    unit: Arc<str>,
    catalog: Arc<Catalog>,
    registry: Arc<Registry>,
    jobs: mpsc::Sender<Job>,
}

impl Ingest {
    /// Validates a submission from `sender` and queues it for the log. The
    /// receiver yields the decision once it is durable (or the rejection).
    pub fn submit(&self, sender: &str, record: SubmitRequest) -> Result<oneshot::Receiver<Decision>, Refusal> {
        self.validate_and_queue(sender, record).map_err(|e| match e {
            Ok(rejection) => Refusal::Rejected(rejection),
            Err(()) => shutting_down(),
        })
    }

    fn validate_and_queue(
        &self,
        sender: &str,
        record: SubmitRequest,
    ) -> Result<oneshot::Receiver<Decision>, Result<Rejection, ()>> {
        let SubmitRequest { report: Some(report), mut provenance } = record else {
            return Err(Ok(Rejection::single(
                RejectionCode::InvalidArgument,
                "no_report",
                "the request carries no report: set SubmitRequest.report to the report to submit".into(),
            )));
        };
        // The unit first: a unit that is not of this tier's subtree is refused as such. Whether it is
        // the sender's to send was decided once, by `auth::authorize_submit`, before it came here.
        let unit_problem = match check_unit(&report, &self.registry, &self.unit) {
            Err(r) if r.code == RejectionCode::PermissionDenied => return Err(Ok(r)),
            Err(r) => Some(r),
            Ok(()) => None,
        };
        let now = Now::system();
        let period = match (check_report(&report, &self.catalog, now), unit_problem) {
            (Ok(p), None) => p,
            (Ok(_), Some(u)) => return Err(Ok(u)),
            (Err(mut r), Some(u)) => {
                r.problems.splice(0..0, u.problems);
                return Err(Ok(r));
            }
            (Err(r), None) => return Err(Ok(r)),
        };
        // Provenance is the first tier's: kept from a forwarding aggregator,
        // set by this tier for a report straight from its unit.
        // (`auth::authorize_provenance` let only an aggregator name a first tier, and made it do so.)
        let forwarded =
            sender != report.unit_code && provenance.as_ref().is_some_and(|p| !p.first_accepted_by.is_empty());
        match provenance.as_ref().filter(|_| forwarded) {
            Some(p) => check_provenance(p, now).map_err(Ok)?,
            None => provenance = None,
        }
        let digest = content_digest(&report);
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job { report, provenance, period, digest, reply }).map_err(|_| Err(()))?;
        Ok(rx)
    }

    pub fn unit(&self) -> &str {
        &self.unit
    }
}

fn shutting_down() -> Refusal {
    Refusal::Unavailable("the aggregator is shutting down".into())
}

/// The status when a decision never came (the writer stopped).
pub fn unavailable() -> tonic::Status {
    crate::status::to_status(&crate::status::Error::Unavailable("the aggregator is shutting down".into()))
}

/// How often the writer looks whether the segment being written can be rolled over for trimming.
const ROLL_OVER_CHECK: Duration = Duration::from_secs(1);

/// Everything the log writer works with.
pub struct Writer {
    pub wal: Wal,
    pub index: Arc<Mutex<Index>>,
    pub locks: Arc<Mutex<Locks>>,
    pub unflushed: Unflushed,
    pub durable: watch::Sender<Lsn>,
    pub unit: String,
    /// The free-space reserve of the data directory.
    pub reserve: Reserve,
    /// Every record up to this LSN is in Parquet (the flusher's).
    pub flushed: Arc<AtomicU64>,
    /// Every record up to this LSN is forwarded (`u64::MAX` without an upstream).
    pub forwarded: Arc<AtomicU64>,
    /// Group commit size and fsync time.
    pub metrics: Arc<Metrics>,
    /// When each stretch of the log became durable, for the age of the forward backlog (tiers that forward).
    pub backlog: Option<Arc<ForwardBacklog>>,
}

impl Writer {
    /// Rolls the log's current segment over once all its records are in Parquet and forwarded, at
    /// most every [`ROLL_OVER_CHECK`], so that the flusher's trim can delete it.
    fn roll_over_if_covered(&mut self, last_check: &mut Instant) {
        if last_check.elapsed() < ROLL_OVER_CHECK {
            return;
        }
        *last_check = Instant::now();
        let covered = self.flushed.load(Ordering::SeqCst).min(self.forwarded.load(Ordering::SeqCst));
        self.wal.roll_over_if_covered(covered);
    }
}

/// Starts the single log writer thread and returns the ingest handle. The thread runs `before`
/// (loading the index) first: reports queue meanwhile, none is decided before it.
pub fn start(
    writer: Writer,
    catalog: Arc<Catalog>,
    registry: Arc<Registry>,
    before: impl FnOnce() + Send + 'static,
) -> (Ingest, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let unit: Arc<str> = writer.unit.as_str().into();
    let handle = std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || {
            before();
            run_writer(writer, rx)
        })
        .expect("spawn the log writer");
    (Ingest { unit, catalog, registry, jobs: tx }, handle)
}

fn conflict(r: &Report) -> Rejection {
    Rejection::single(
        RejectionCode::AlreadyExists,
        "conflict",
        format!(
            "{} is already stored with different content; a correction is sent as a new revision ({}), \
             never under a revision already used",
            report_label(r),
            r.revision + 1
        ),
    )
}

fn run_writer(mut w: Writer, rx: mpsc::Receiver<Job>) {
    let mut frames = Vec::with_capacity(1 << 20);
    let mut last_roll_check = Instant::now();
    loop {
        w.roll_over_if_covered(&mut last_roll_check);
        let first = match rx.recv_timeout(ROLL_OVER_CHECK) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let now = now_unix_ms();
        // Once per group: a tier below its reserve stores nothing new (duplicates are still answered).
        let space = w.reserve.check();
        frames.clear();
        let mut accepted = Vec::new();
        // What each accepted report changed in the index, to take back if the write fails.
        let mut recorded = Vec::new();
        let mut replies = Vec::with_capacity(jobs.len());
        {
            let mut index = w.index.lock().expect("index lock");
            for job in jobs {
                let Job { report, mut provenance, period, digest, reply } = job;
                let decision = match index.lookup(&report, period, &digest) {
                    Lookup::Duplicate => Ok(Stored::Duplicate),
                    Lookup::Conflict => Err(conflict(&report).into()),
                    Lookup::New if space.is_err() => Err(Refusal::DiskFull(space.clone().unwrap_err())),
                    Lookup::New => {
                        let mut locks = w.locks.lock().expect("locks lock");
                        let forwarded = provenance.is_some();
                        match locks.admit(&report.unit_code, period, forwarded) {
                            Err(r) => Err(r.into()),
                            Ok(admission) => {
                                let used = match admission {
                                    Admission::Open => Ok(()),
                                    // Recorded before the report is stored: an override never admits two.
                                    Admission::ByOverride(i) => {
                                        locks.use_override(i, report.revision, now).map_err(|e| {
                                            tracing::error!("cannot record the use of an override: {e}");
                                            shutting_down()
                                        })
                                    }
                                };
                                match used {
                                    Err(r) => Err(r),
                                    Ok(()) => {
                                        let prov = provenance.get_or_insert_with(|| Provenance {
                                            first_accepted_by: w.unit.clone(),
                                            received_at_ms: now,
                                        });
                                        let received = prov.received_at_ms;
                                        let first_before =
                                            index.get(&report.unit_code, period).map(|e| e.first_received_ms);
                                        index.insert_digest(&report, period, digest, received);
                                        recorded.push((period, first_before));
                                        let record = SubmitRequest { report: Some(report), provenance };
                                        wal::encode_frame(&record, &mut frames);
                                        accepted.push(record);
                                        Ok(Stored::Accepted)
                                    }
                                }
                            }
                        }
                    }
                };
                replies.push((reply, decision));
            }
        }
        if !accepted.is_empty() {
            let first = match w.wal.append_frames(&frames, accepted.len() as u64) {
                Ok(lsn) => lsn,
                Err(e) if e.is_out_of_space() => {
                    // The log is as before the group: take it back from the index and refuse it,
                    // duplicates included (their original may be one of this group).
                    tracing::warn!("{e}; refusing new reports until there is space");
                    let mut index = w.index.lock().expect("index lock");
                    for (record, (period, first_before)) in accepted.iter().zip(recorded).rev() {
                        index.take_back(record.report.as_ref().expect("checked"), period, first_before);
                    }
                    drop(index);
                    let low = w.reserve.full();
                    for (reply, decision) in replies {
                        let decision = match decision {
                            Ok(_) => Err(Refusal::DiskFull(low.clone())),
                            refused => refused,
                        };
                        let _ = reply.send(decision);
                    }
                    continue;
                }
                Err(e) => {
                    // Nothing of this group may be acknowledged, and the index
                    // already counts it: stop; a restart rebuilds from the log.
                    tracing::error!("{e}; stopping so that nothing is acknowledged that is not durable");
                    std::process::exit(74);
                }
            };
            let last = first + accepted.len() as u64 - 1;
            w.metrics.group_committed(accepted.len(), w.wal.last_fsync());
            if let Some(backlog) = &w.backlog {
                backlog.durable(last, now_unix_ms());
            }
            w.unflushed
                .lock()
                .expect("unflushed lock")
                .extend(accepted.into_iter().enumerate().map(|(i, r)| (first + i as u64, Arc::new(r))));
            w.durable.send_replace(last);
        }
        for (reply, decision) in replies {
            let _ = reply.send(decision);
        }
    }
    tracing::debug!("log writer stopped");
}

/// The acknowledgement of a decision on the report `key` (its unit, period and revision).
pub fn ack(key: &Report, decision: Decision) -> Result<sifa_proto::v1::Ack, tonic::Status> {
    match decision {
        Ok(stored) => Ok(validate::ack_stored(key, stored == Stored::Duplicate)),
        Err(Refusal::Rejected(r)) => Ok(r.to_ack(key)),
        Err(e @ (Refusal::Unavailable(_) | Refusal::DiskFull(_))) => Err(crate::status::refusal_status(e, key)),
    }
}
