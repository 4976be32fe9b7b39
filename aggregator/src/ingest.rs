//! Ingest: a submitted report, already authorized (auth.rs), is validated (the
//! shared library, the registry), then handed to the single log writer, which decides duplicate,
//! conflict or locked period, appends every pending report to the write-ahead
//! log with one fsync (group commit) and only then completes their
//! acknowledgements.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::{Provenance, SubmitRequest};
use sifa_proto::validate::{self, Rejection, RejectionCode, check_report, check_unit, content_digest, report_label};
use sifa_proto::{Catalog, Period, Registry};
use tokio::sync::{oneshot, watch};

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
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Refusal {
        Refusal::Rejected(r)
    }
}

pub type Decision = Result<Stored, Refusal>;

/// The most reports one log write takes (one fsync).
pub const MAX_GROUP: usize = 8192;

struct Job {
    record: SubmitRequest,
    period: Period,
    digest: [u8; 32],
    reply: oneshot::Sender<Decision>,
}

/// Accepted records not yet in Parquet, in log order (the flusher removes them once written; the
/// Flight SQL endpoint reads them).
pub type Unflushed = Arc<Mutex<Vec<(Lsn, SubmitRequest)>>>;

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
        mut record: SubmitRequest,
    ) -> Result<oneshot::Receiver<Decision>, Result<Rejection, ()>> {
        let Some(report) = record.report.as_ref() else {
            return Err(Ok(Rejection::single(
                RejectionCode::InvalidArgument,
                "empty",
                "the request carries no report".into(),
            )));
        };
        // The unit first: a unit that is not of this tier's subtree is refused as such. Whether it is
        // the sender's to send was decided once, by `auth::authorize_submit`, before it came here.
        let unit_problem = match check_unit(report, &self.registry, &self.unit) {
            Err(r) if r.code == RejectionCode::PermissionDenied => return Err(Ok(r)),
            Err(r) => Some(r),
            Ok(()) => None,
        };
        let period = match (check_report(report, &self.catalog, Period::current()), unit_problem) {
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
        let forwarded = sender != report.unit_code
            && record.provenance.as_ref().is_some_and(|p| !p.first_accepted_by.is_empty() && p.received_at_ms > 0);
        if !forwarded {
            record.provenance = None;
        }
        let digest = content_digest(report);
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job { record, period, digest, reply }).map_err(|_| Err(()))?;
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

/// Everything the log writer works with.
pub struct Writer {
    pub wal: Wal,
    pub index: Arc<Mutex<Index>>,
    pub locks: Arc<Mutex<Locks>>,
    pub unflushed: Unflushed,
    pub durable: watch::Sender<Lsn>,
    pub unit: String,
}

/// Starts the single log writer thread and returns the ingest handle.
pub fn start(writer: Writer, catalog: Arc<Catalog>, registry: Arc<Registry>) -> (Ingest, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let unit: Arc<str> = writer.unit.as_str().into();
    let handle = std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || run_writer(writer, rx))
        .expect("spawn the log writer");
    (Ingest { unit, catalog, registry, jobs: tx }, handle)
}

fn conflict(record: &SubmitRequest) -> Rejection {
    let r = record.report.as_ref().expect("checked");
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
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let now = now_unix_ms();
        frames.clear();
        let mut accepted = Vec::new();
        let mut replies = Vec::with_capacity(jobs.len());
        {
            let mut index = w.index.lock().expect("index lock");
            for mut job in jobs {
                let report = job.record.report.as_ref().expect("checked");
                let decision = match index.lookup(report, job.period, &job.digest) {
                    Lookup::Duplicate => Ok(Stored::Duplicate),
                    Lookup::Conflict => Err(conflict(&job.record).into()),
                    Lookup::New => {
                        let mut locks = w.locks.lock().expect("locks lock");
                        let forwarded = job.record.provenance.is_some();
                        match locks.admit(&report.unit_code, job.period, forwarded) {
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
                                        let prov = job.record.provenance.get_or_insert_with(|| Provenance {
                                            first_accepted_by: w.unit.clone(),
                                            received_at_ms: now,
                                        });
                                        let received = prov.received_at_ms;
                                        let report = job.record.report.as_ref().expect("checked");
                                        index.insert_digest(report, job.period, job.digest, received);
                                        wal::encode_frame(&job.record, &mut frames);
                                        accepted.push(job.record);
                                        Ok(Stored::Accepted)
                                    }
                                }
                            }
                        }
                    }
                };
                replies.push((job.reply, decision));
            }
        }
        if !accepted.is_empty() {
            let first = match w.wal.append_frames(&frames, accepted.len() as u64) {
                Ok(lsn) => lsn,
                Err(e) => {
                    // Nothing of this group may be acknowledged, and the index
                    // already counts it: stop; a restart rebuilds from the log.
                    tracing::error!("{e}; stopping so that nothing is acknowledged that is not durable");
                    std::process::exit(74);
                }
            };
            let last = first + accepted.len() as u64 - 1;
            w.unflushed
                .lock()
                .expect("unflushed lock")
                .extend(accepted.into_iter().enumerate().map(|(i, r)| (first + i as u64, r)));
            w.durable.send_replace(last);
        }
        for (reply, decision) in replies {
            let _ = reply.send(decision);
        }
    }
    tracing::debug!("log writer stopped");
}

/// The acknowledgement of a decision on a stream.
pub fn ack(record: &SubmitRequest, decision: Decision) -> Result<sifa_proto::v1::Ack, tonic::Status> {
    let report = record.report.clone().unwrap_or_default();
    match decision {
        Ok(stored) => Ok(validate::ack_stored(&report, stored == Stored::Duplicate)),
        Err(Refusal::Rejected(r)) => Ok(r.to_ack(&report)),
        Err(e @ Refusal::Unavailable(_)) => Err(crate::status::refusal_status(e, &report)),
    }
}
