//! Delivery: the queue, oldest month first and each month's revisions in
//! order, over `ReportService.SubmitStream`, with the office's own unit code
//! as `x-sifa-sender`. Each acknowledgement is applied to the outbox as it
//! arrives, so a connection lost halfway keeps what was acknowledged.
//! Connecting, the stream, what a failure means and the backoff are
//! `sifa_proto::upstream`, shared with the aggregator's forwarder. Failures
//! back off exponentially with jitter; an aggregator that refuses this
//! office's certificate for good (revoked, expired, another unit's) is said in
//! the log and in `status`, and tried again only rarely. The backoff is part
//! of the outbox state and survives restarts.

use std::time::Duration;

use sifa_proto::upstream::{BatchError, Failure, Upstream, UpstreamError, jitter, wait_after};
use sifa_proto::v1::{SubmitRequest, ack};

use crate::config::Config;
use crate::outbox::{Outbox, OutboxError, Queued, RetryState, list_queue, read_report};

/// Reports sent per stream; bounds memory however long the backlog.
const BATCH: usize = 200;
/// Conflicting revisions re-queued in one round at most (see `deliver`).
const MAX_CONFLICT_REQUEUES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("aggregator {url}: {message}")]
    Protocol { url: String, message: String },
}

impl From<BatchError<PushError>> for PushError {
    fn from(e: BatchError<PushError>) -> PushError {
        match e {
            BatchError::Upstream(e) => PushError::Upstream(e),
            BatchError::Sender(e) => e,
        }
    }
}

/// What a delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub accepted: usize,
    pub duplicate: usize,
    pub rejected: usize,
    /// Conflicting revisions re-queued under a higher revision.
    pub requeued: usize,
    pub remaining: usize,
}

/// Delivers the whole queue, recording success or the next retry time in the outbox.
pub async fn deliver(outbox: &mut Outbox, config: &Config) -> Result<Delivery, PushError> {
    let result = deliver_inner(outbox, config).await;
    let now = sifa_proto::period::now_unix_ms();
    let mut retry = outbox.retry().clone();
    match &result {
        Ok(_) => {
            retry = RetryState { last_success_ms: Some(now), ..RetryState::default() };
        }
        Err(PushError::Outbox(_)) => {}
        Err(e) => {
            retry.failures = retry.failures.saturating_add(1);
            let (min, max) =
                (Duration::from_secs(config.retry_min_seconds), Duration::from_secs(config.retry_max_seconds));
            let wait = match e {
                PushError::Upstream(u) => wait_after(u, retry.failures, min, max, jitter()),
                _ => sifa_proto::upstream::backoff(retry.failures, min, max, jitter()),
            };
            retry.next_attempt_ms = now + wait.as_millis() as i64;
            retry.last_error = Some(e.to_string());
            retry.refused = match e {
                PushError::Upstream(u) if u.failure == Failure::RefusedForGood => Some(u.detail()),
                _ => None,
            };
            if retry.refused.is_some() {
                tracing::error!(
                    "delivery refused: {e}; nothing is sent until the certificate is replaced (next try in {:.0} s)",
                    wait.as_secs_f64()
                );
            } else {
                tracing::warn!("delivery failed ({e}); retry number {} in {:.0} s", retry.failures, wait.as_secs_f64());
            }
        }
    }
    if &retry != outbox.retry() {
        outbox.set_retry(retry)?;
    }
    result
}

async fn deliver_inner(outbox: &mut Outbox, config: &Config) -> Result<Delivery, PushError> {
    let mut summary = Delivery::default();
    let url = config.aggregator.clone();
    let mut queue = list_queue(outbox.dir())?;
    if queue.is_empty() {
        return Ok(summary);
    }
    let endpoint = config
        .endpoint()
        .map_err(|e| PushError::Protocol { url: url.clone(), message: e.to_string() })?
        .connect_timeout(Duration::from_secs(config.connect_timeout_seconds))
        // A batch that takes longer than this is a dead link, not a slow one.
        .timeout(Duration::from_secs(120))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .tcp_keepalive(Some(Duration::from_secs(30)));
    let mut upstream = Upstream::connect(&url, endpoint, config.unit.clone()).await?;
    while !queue.is_empty() {
        let batch: Vec<Queued> = queue.drain(..queue.len().min(BATCH)).collect();
        let mut reports = Vec::with_capacity(batch.len());
        for q in &batch {
            reports.push(read_report(&q.path)?);
        }
        let requests: Vec<SubmitRequest> =
            reports.iter().map(|r| SubmitRequest { report: Some(r.clone()), provenance: None }).collect();
        let mut conflict = false;
        upstream
            .submit_batch(requests, |i, ack| {
                let (q, report) = (&batch[i], &reports[i]);
                if ack.period != q.period || ack.revision != q.revision {
                    return Err(PushError::Protocol {
                        url: url.clone(),
                        message: format!(
                            "acknowledged {} rev {} where {} rev {} was expected",
                            ack.period, ack.revision, q.period, q.revision
                        ),
                    });
                }
                let now = sifa_proto::period::now_unix_ms();
                match outbox.acknowledge(q, report, &ack, now)? {
                    ack::Outcome::Accepted => summary.accepted += 1,
                    ack::Outcome::Duplicate => summary.duplicate += 1,
                    ack::Outcome::Rejected => {
                        summary.rejected += 1;
                        let problems: Vec<_> = ack.problems.iter().map(|p| p.message.as_str()).collect();
                        tracing::warn!("{} rev {} rejected: {}", q.period, q.revision, problems.join("; "));
                        // ALREADY_EXISTS: the aggregator holds different content
                        // under this revision (e.g. this outbox was lost and
                        // recreated). Send the content again under a fresh revision,
                        // unless a later revision of the month is queued: that one is
                        // newer, and re-sending this content after it would put old
                        // figures back in force.
                        if ack.code == tonic::Code::AlreadyExists as i32
                            && summary.requeued < MAX_CONFLICT_REQUEUES
                            && !superseded(outbox, q)?
                        {
                            let rev = outbox.enqueue_as_new_revision(report)?;
                            tracing::info!("{} re-queued as rev {rev} after a conflict", q.period);
                            summary.requeued += 1;
                            conflict = true;
                        }
                    }
                    ack::Outcome::Unspecified => {
                        return Err(PushError::Protocol {
                            url: url.clone(),
                            message: format!("acknowledgement of {} rev {} has no outcome", q.period, q.revision),
                        });
                    }
                }
                Ok(())
            })
            .await?;
        if conflict || queue.is_empty() {
            queue = list_queue(outbox.dir())?;
        }
    }
    summary.remaining = list_queue(outbox.dir())?.len();
    Ok(summary)
}

/// Whether a later revision of `q`'s month waits in the queue.
fn superseded(outbox: &Outbox, q: &Queued) -> Result<bool, OutboxError> {
    Ok(list_queue(outbox.dir())?.iter().any(|x| x.period == q.period && x.revision > q.revision))
}
