//! Forwarding to the tier above: every accepted report, in log order, with its
//! identity and provenance unchanged, batched over `SubmitStream`.
//!
//! The cursor (the last LSN the upstream acknowledged) is persisted in
//! `state/forward.cursor` after each batch. Sending is at least once (a crash
//! after the upstream acknowledged but before the cursor was saved sends a
//! batch again) and the upstream is idempotent (DUPLICATE), so the upstream
//! ends up with each report exactly once. A REJECTED forward is final: it is
//! logged, recorded in `state/forward_rejected.jsonl` with the reason, and the
//! cursor moves on.
//!
//! Connecting, sending a batch, what a failure means and the backoff are
//! `sifa_proto::upstream`, shared with the office agent. The state of the link
//! (delivering, unreachable, refused for good and why) is kept in
//! `state/forward.state.json` for `sifa aggregator status`.
//!
//! Approvals travel up the same way: once every report durable here has been
//! forwarded, each approval made here (or its withdrawal) that the tier above
//! has not acknowledged is reported with `AdminService.ReportApproval`, so an
//! approval never arrives before the month's reports.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sifa_proto::UnitCode;
use sifa_proto::upstream::{BatchError, Failure, Upstream, UpstreamError, jitter, wait_after};
use sifa_proto::v1::admin_service_client::AdminServiceClient;
use sifa_proto::v1::{Ack, SubmitRequest, ack};
use tokio::sync::watch;

use crate::locks::Locks;
use crate::wal::{Lsn, WalReader};
use sifa_store::layout::{self, FORWARD_CURSOR_FILE, FORWARD_LINK_FILE, FORWARD_REJECTED_FILE};

/// Reports per `SubmitStream` call: half the upstream's default `max_reports_per_stream`. (Below a
/// smaller limit a batch is cut where the upstream refuses it; what it acknowledged moves the cursor,
/// and the next batch starts there.)
pub const BATCH: usize = 5000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between attempts while the tier above is unreachable: forwarding resumes within
/// about a second of its return. (A refused certificate waits `sifa_proto::upstream::REFUSED_RETRY`.)
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long forwarding waits after the log could not be read before it reads again.
const LOG_RETRY: Duration = Duration::from_secs(5);

pub struct Forwarder {
    pub upstream: String,
    /// This tier's `[tls]` table: its certificate is its identity upstream.
    pub tls: sifa_proto::tls::TlsConfig,
    pub insecure: bool,
    pub unit: UnitCode,
    pub data_dir: PathBuf,
    pub durable: watch::Receiver<Lsn>,
    /// Shared with the flusher: the log is trimmed only behind it.
    pub forwarded: Arc<AtomicU64>,
    /// The tier's lock book: the approvals to report up.
    pub locks: Arc<Mutex<Locks>>,
}

/// How often approvals not yet acknowledged upstream are tried again.
const APPROVALS_RETRY: Duration = Duration::from_secs(1);

/// The persisted cursor of a data directory (0: nothing forwarded yet).
pub fn read_cursor(data_dir: &std::path::Path) -> Lsn {
    std::fs::read_to_string(layout::state_dir(data_dir).join(FORWARD_CURSOR_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// How the link to the tier above stands, as `sifa aggregator status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub upstream: String,
    /// `delivering`, or the kind of the last failure: `unreachable`, `retry_after`, `refused`, `rejected`.
    pub state: String,
    /// What the upstream (or the network) said; empty when delivering.
    pub message: String,
    /// Since when (Unix ms) the link is in this state.
    pub since_ms: i64,
}

impl LinkState {
    /// The persisted state of a data directory, if the tier forwards.
    pub fn read(data_dir: &std::path::Path) -> Option<LinkState> {
        let bytes = std::fs::read(layout::state_dir(data_dir).join(FORWARD_LINK_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// One line for `sifa aggregator status`.
    pub fn describe(&self) -> String {
        let since = sifa_proto::period::format_cst(self.since_ms);
        match self.state.as_str() {
            "delivering" => format!("上级 Upstream {}: 正常 delivering (since {since})", self.upstream),
            "refused" => format!(
                "上级 Upstream {}: 拒绝本级证书 REFUSED since {since}: {}\n  \
                 本级不再频繁重试；请向省级申请新证书 (`sifa pki issue --role aggregator`) 并替换 [tls] cert/key。\n  \
                 Forwarding retries only rarely: ask the province for a new certificate and replace [tls] cert/key.",
                self.upstream, self.message
            ),
            other => format!("上级 Upstream {}: {other} since {since}: {}", self.upstream, self.message),
        }
    }
}

impl Forwarder {
    fn state_dir(&self) -> PathBuf {
        layout::state_dir(&self.data_dir)
    }

    async fn connect(&self) -> Result<Upstream, UpstreamError> {
        let ep = crate::auth::tls::client_endpoint(&self.upstream, &self.tls, self.insecure)
            .map_err(|e| UpstreamError::transport(&self.upstream, &e))?
            .connect_timeout(Duration::from_secs(5))
            // A link that dies silently mid-batch is noticed within 30 s and the batch resent.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        Upstream::connect(&self.upstream, ep, self.unit.clone()).await
    }

    /// Records the link's state when it changes (a failure of another kind, or delivering again).
    fn set_link(&self, link: &mut Option<LinkState>, state: &str, message: String) {
        if link.as_ref().is_some_and(|l| l.state == state && l.message == message) {
            return;
        }
        let new = LinkState {
            upstream: self.upstream.clone(),
            state: state.to_owned(),
            message,
            since_ms: sifa_proto::period::now_unix_ms(),
        };
        let json = serde_json::to_vec_pretty(&new).expect("serialises");
        if let Err(e) = sifa_proto::fs::write_atomic(&self.state_dir(), FORWARD_LINK_FILE, &json) {
            tracing::error!("cannot save the state of the upstream link: {e}");
        }
        *link = Some(new);
    }

    /// Reports every approval made here whose current state the tier above has
    /// not acknowledged, over the forwarder's connection (`client`, made if
    /// there is none; dropped on failure, as for a batch). Called only when
    /// every durable report was forwarded. Whether there was any to report.
    async fn report_approvals(&self, client: &mut Option<Upstream>) -> Result<bool, UpstreamError> {
        let pending = self.locks.lock().expect("locks").book().approvals.to_report_up();
        if pending.is_empty() {
            return Ok(false);
        }
        let upstream = match client.take() {
            Some(c) => c,
            None => self.connect().await?,
        };
        let mut admin = AdminServiceClient::new(upstream.channel());
        for a in pending {
            admin
                .report_approval(upstream.request(a.to_proto()))
                .await
                .map_err(|s| UpstreamError::from_status(&self.upstream, &s))?;
            if let Err(e) = self.locks.lock().expect("locks").mark_reported(&a) {
                tracing::error!("cannot record that an approval was reported up (it is sent again): {e}");
            }
            tracing::info!(unit = %a.unit_code, period = %a.period, state = %a.state, "approval reported to the tier above");
        }
        *client = Some(upstream);
        Ok(true)
    }

    /// After a failure to reach or send to the tier above: the link's state is recorded, the failure
    /// logged, and the wait before the next try returned (the same backoff for reports and approvals).
    fn failed(&self, e: &UpstreamError, failures: &mut u32, link: &mut Option<LinkState>) -> Duration {
        *failures = failures.saturating_add(1);
        self.set_link(link, e.failure.as_str(), e.detail());
        let wait = wait_after(e, *failures, BACKOFF_MIN, BACKOFF_MAX, jitter());
        if e.failure == Failure::RefusedForGood {
            tracing::error!(retry_in_s = wait.as_secs(), "forwarding stopped: {e}");
        } else {
            tracing::warn!(retry_in_ms = wait.as_millis() as u64, "{e}");
        }
        wait
    }

    /// Runs until `stop` turns true. Never gives up on a reachable upstream.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut cursor = read_cursor(&self.data_dir);
        self.forwarded.store(cursor, Ordering::SeqCst);
        let mut reader = Some(WalReader::new(&layout::wal_dir(&self.data_dir)));
        let mut ahead: Option<(Lsn, tokio::task::JoinHandle<(WalReader, LogRead)>)> = None;
        let mut client: Option<Upstream> = None;
        let mut failures = 0u32;
        let mut link = LinkState::read(&self.data_dir);
        tracing::info!(upstream = %self.upstream, cursor, "forwarding to the tier above");
        loop {
            if *stop.borrow() {
                return;
            }
            let durable = *self.durable.borrow_and_update();
            if cursor >= durable {
                if let Some((_, task)) = ahead.take() {
                    reader = Some(task.await.expect("log reader task").0);
                }
                // Pending approvals are looked for every APPROVALS_RETRY; a failure to send them
                // waits the backoff, like a batch.
                let wait = match self.report_approvals(&mut client).await {
                    Ok(sent) => {
                        if sent {
                            failures = 0;
                            self.set_link(&mut link, "delivering", String::new());
                        }
                        APPROVALS_RETRY
                    }
                    Err(e) => self.failed(&e, &mut failures, &mut link).max(APPROVALS_RETRY),
                };
                tokio::select! {
                    changed = self.durable.changed() => {
                        if changed.is_err() {
                            // The log writer stopped: nothing more will come.
                            return;
                        }
                    }
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            // The batch read ahead while the previous one was in flight, if it starts at the cursor
            // (after a failure part of the way through a batch it does not, and is read again).
            let (r, batch) = match ahead.take() {
                Some((from, task)) => {
                    let (r, read) = task.await.expect("log reader task");
                    if from == cursor + 1 { (r, read) } else { read_log(r, cursor + 1, durable).await }
                }
                None => read_log(reader.take().expect("reader"), cursor + 1, durable).await,
            };
            let batch = match batch {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => {
                    reader = Some(r);
                    tracing::error!(cursor, durable, "the write-ahead log has no record after the forward cursor");
                    tokio::time::sleep(LOG_RETRY).await;
                    continue;
                }
                Err(e) => {
                    reader = Some(r);
                    tracing::error!("cannot read the write-ahead log for forwarding: {e}");
                    tokio::time::sleep(LOG_RETRY).await;
                    continue;
                }
            };
            // Read the next batch while this one is sent and acknowledged.
            let last = batch.last().expect("not empty").0;
            let durable_now = *self.durable.borrow();
            if last < durable_now {
                ahead = Some((last + 1, tokio::task::spawn_blocking(move || read_blocking(r, last + 1, durable_now))));
            } else {
                reader = Some(r);
            }
            let sent = match client.take() {
                Some(c) => Ok(c),
                None => self.connect().await,
            };
            let sent = match sent {
                Ok(mut c) => self.send(&mut c, &batch, &mut cursor).await.map(|()| c),
                Err(e) => Err(e),
            };
            match sent {
                Ok(c) => {
                    client = Some(c);
                    failures = 0;
                    self.set_link(&mut link, "delivering", String::new());
                }
                Err(e) => {
                    // Acknowledged ones moved the cursor; the rest go again.
                    let wait = self.failed(&e, &mut failures, &mut link);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }
}

/// Up to [`BATCH`] records of the log from `from` on, none beyond `durable`.
type LogRead = Result<Vec<(Lsn, SubmitRequest)>, crate::wal::WalError>;

fn read_blocking(mut reader: WalReader, from: Lsn, durable: Lsn) -> (WalReader, LogRead) {
    let read = reader.read(from, durable, BATCH);
    (reader, read)
}

async fn read_log(reader: WalReader, from: Lsn, durable: Lsn) -> (WalReader, LogRead) {
    tokio::task::spawn_blocking(move || read_blocking(reader, from, durable)).await.expect("log reader task")
}

impl Forwarder {
    /// Sends one batch; moves the cursor over every acknowledged report and
    /// persists it.
    async fn send(
        &self,
        upstream: &mut Upstream,
        batch: &[(Lsn, SubmitRequest)],
        cursor: &mut Lsn,
    ) -> Result<(), UpstreamError> {
        let requests: Vec<SubmitRequest> = batch.iter().map(|(_, r)| r.clone()).collect();
        let result = upstream
            .submit_batch(requests, |i, a| {
                let (lsn, rec) = &batch[i];
                self.record_ack(rec, &a);
                *cursor = *lsn;
                Ok::<(), std::convert::Infallible>(())
            })
            .await;
        if let Err(e) =
            sifa_proto::fs::write_atomic(&self.state_dir(), FORWARD_CURSOR_FILE, cursor.to_string().as_bytes())
        {
            tracing::error!("cannot save the forward cursor (reports may be sent again; the upstream dedupes): {e}");
        }
        self.forwarded.store(*cursor, Ordering::SeqCst);
        match result {
            Ok(()) => Ok(()),
            Err(BatchError::Upstream(e)) => Err(e),
            Err(BatchError::Sender(never)) => match never {},
        }
    }

    fn record_ack(&self, rec: &SubmitRequest, a: &Ack) {
        if a.outcome == ack::Outcome::Accepted as i32 || a.outcome == ack::Outcome::Duplicate as i32 {
            return;
        }
        let r = rec.report.as_ref().expect("stored records carry a report");
        let problems: Vec<String> = a.problems.iter().map(|p| format!("{} [{}]", p.message, p.rule)).collect();
        tracing::error!(
            unit = %r.unit_code, period = %r.period, revision = r.revision, code = a.code,
            "the upstream rejected a forwarded report; it stays here and is not sent again: {}",
            problems.join("; ")
        );
        let line = serde_json::json!({
            "unit_code": r.unit_code, "period": r.period, "revision": r.revision,
            "code": a.code, "problems": problems, "at_ms": sifa_proto::period::now_unix_ms(),
        });
        let path = self.state_dir().join(FORWARD_REJECTED_FILE);
        let res = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
            use std::io::Write;
            writeln!(f, "{line}")?;
            f.sync_data()
        });
        if let Err(e) = res {
            tracing::error!("cannot record the rejection in {}: {e}", path.display());
        }
    }
}
