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
//! Approvals travel up the same way: once every report durable here has been
//! forwarded, each approval made here (or its withdrawal) that the tier above
//! has not acknowledged is reported with `AdminService.ReportApproval`, so an
//! approval never arrives before the month's reports.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use sifa_proto::SENDER_METADATA_KEY;
use sifa_proto::v1::admin_service_client::AdminServiceClient;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{Ack, SubmitRequest, ack};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::locks::Locks;
use crate::store;
use crate::wal::{Lsn, WalReader};

pub const CURSOR_FILE: &str = "forward.cursor";
pub const REJECTED_FILE: &str = "forward_rejected.jsonl";
/// Reports per `SubmitStream` call.
pub const BATCH: usize = 2000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Forwarder {
    pub upstream: String,
    /// This tier's `[tls]` table: its certificate is its identity upstream.
    pub tls: sifa_proto::tls::TlsConfig,
    pub insecure: bool,
    pub unit: String,
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
    std::fs::read_to_string(data_dir.join("state").join(CURSOR_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("cannot reach upstream {0}: {1}")]
    Connect(String, String),
    #[error("upstream stream failed: {0}")]
    Stream(#[from] tonic::Status),
}

impl Forwarder {
    fn state_dir(&self) -> PathBuf {
        self.data_dir.join("state")
    }

    async fn channel(&self) -> Result<Channel, SendError> {
        let err = |e: &dyn std::fmt::Display| SendError::Connect(self.upstream.clone(), e.to_string());
        let ep = crate::auth::tls::client_endpoint(&self.upstream, &self.tls, self.insecure)
            .map_err(|e| err(&e))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        ep.connect().await.map_err(|e| err(&e))
    }

    async fn connect(&self) -> Result<ReportServiceClient<Channel>, SendError> {
        Ok(ReportServiceClient::new(self.channel().await?).max_decoding_message_size(64 << 20))
    }

    /// Reports every approval made here whose current state the tier above has
    /// not acknowledged. Called only when every durable report was forwarded.
    async fn report_approvals(&self) -> Result<(), SendError> {
        let pending = self.locks.lock().expect("locks").book().approvals.to_report_up();
        if pending.is_empty() {
            return Ok(());
        }
        let mut client = AdminServiceClient::new(self.channel().await?);
        for a in pending {
            let mut req = tonic::Request::new(a.to_proto());
            req.metadata_mut().insert(SENDER_METADATA_KEY, self.unit.parse().expect("a unit code is ASCII digits"));
            client.report_approval(req).await?;
            if let Err(e) = self.locks.lock().expect("locks").mark_reported(&a) {
                tracing::error!("cannot record that an approval was reported up (it is sent again): {e}");
            }
            tracing::info!(unit = %a.unit_code, period = %a.period, state = %a.state, "approval reported to the tier above");
        }
        Ok(())
    }

    /// Runs until `stop` turns true. Never gives up on a reachable upstream.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut cursor = read_cursor(&self.data_dir);
        self.forwarded.store(cursor, Ordering::SeqCst);
        let mut reader = Some(WalReader::new(&self.data_dir.join("wal")));
        let mut client: Option<ReportServiceClient<Channel>> = None;
        let mut backoff = BACKOFF_MIN;
        tracing::info!(upstream = %self.upstream, cursor, "forwarding to the tier above");
        loop {
            if *stop.borrow() {
                return;
            }
            let durable = *self.durable.borrow_and_update();
            if cursor >= durable {
                if let Err(e) = self.report_approvals().await {
                    tracing::warn!("approvals wait for the tier above: {e}");
                }
                tokio::select! {
                    changed = self.durable.changed() => {
                        if changed.is_err() {
                            // The log writer stopped: nothing more will come.
                            return;
                        }
                    }
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(APPROVALS_RETRY) => {}
                }
                continue;
            }
            let mut r = reader.take().expect("reader");
            let (r, batch) = tokio::task::spawn_blocking(move || {
                let b = r.read(cursor + 1, durable, BATCH);
                (r, b)
            })
            .await
            .expect("log reader task");
            reader = Some(r);
            let batch = match batch {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => {
                    tracing::error!(cursor, durable, "the write-ahead log has no record after the forward cursor");
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!("cannot read the write-ahead log for forwarding: {e}");
                    tokio::time::sleep(BACKOFF_MAX).await;
                    continue;
                }
            };
            let c = match client.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        backoff = self.back_off(backoff, &e, &mut stop).await;
                        continue;
                    }
                },
            };
            match self.send(c.clone(), &batch, &mut cursor).await {
                Ok(()) => {
                    client = Some(c);
                    backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    // Acknowledged ones moved the cursor; the rest go again.
                    backoff = self.back_off(backoff, &e, &mut stop).await;
                }
            }
        }
    }

    async fn back_off(&self, backoff: Duration, e: &SendError, stop: &mut watch::Receiver<bool>) -> Duration {
        let jitter = rand::rng().random_range(0.5..1.5);
        let wait = backoff.mul_f64(jitter);
        tracing::warn!(retry_in_ms = wait.as_millis() as u64, "{e}");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        (backoff * 2).min(BACKOFF_MAX)
    }

    /// Sends one batch; moves the cursor over every acknowledged report and
    /// persists it.
    async fn send(
        &self,
        mut client: ReportServiceClient<Channel>,
        batch: &[(Lsn, SubmitRequest)],
        cursor: &mut Lsn,
    ) -> Result<(), SendError> {
        let requests: Vec<SubmitRequest> = batch.iter().map(|(_, r)| r.clone()).collect();
        let mut req = tonic::Request::new(tokio_stream::iter(requests));
        req.metadata_mut().insert(SENDER_METADATA_KEY, self.unit.parse().expect("a unit code is ASCII digits"));
        let result = async {
            let mut acks = client.submit_stream(req).await?.into_inner();
            let mut i = 0;
            while let Some(a) = acks.message().await? {
                let Some((lsn, rec)) = batch.get(i) else { break };
                self.record_ack(rec, &a);
                *cursor = *lsn;
                i += 1;
            }
            if i < batch.len() {
                return Err(tonic::Status::unavailable(format!("the upstream acknowledged {i} of {}", batch.len())));
            }
            Ok(())
        }
        .await;
        if let Err(e) = store::write_atomic(&self.state_dir(), CURSOR_FILE, cursor.to_string().as_bytes()) {
            tracing::error!("cannot save the forward cursor (reports may be sent again; the upstream dedupes): {e}");
        }
        self.forwarded.store(*cursor, Ordering::SeqCst);
        result.map_err(SendError::from)
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
        let path = self.state_dir().join(REJECTED_FILE);
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
