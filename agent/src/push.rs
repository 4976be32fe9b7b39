//! Delivery: the queue, oldest month first and each month's revisions in
//! order, over `ReportService.SubmitStream`, with the office's own unit code
//! as `x-sifa-sender`. Each acknowledgement is applied to the outbox as it
//! arrives, so a connection lost halfway keeps what was acknowledged.
//! Failures back off exponentially with jitter; the backoff is part of the
//! outbox state and survives restarts.

use std::time::Duration;

use sifa_proto::v1::report_service_client::ReportServiceClient;
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
    #[error("aggregator {url} not reachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("aggregator {url}: {message}")]
    Protocol { url: String, message: String },
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

/// The delay before retry number `failures` (1 = first retry): exponential
/// from `min` to `max`, with "equal jitter" (half fixed, half random) so a
/// county's offices coming back together do not retry in lock-step.
pub fn backoff(failures: u32, min_s: u64, max_s: u64, random01: f64) -> Duration {
    let exp = min_s.saturating_mul(1u64 << failures.saturating_sub(1).min(30)).min(max_s);
    let ms = exp as f64 * 1000.0;
    Duration::from_millis((ms / 2.0 + ms / 2.0 * random01.clamp(0.0, 1.0)) as u64)
}

/// A number in [0, 1) that differs between processes and calls.
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ ((std::process::id() as u64) << 32);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
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
            let wait = backoff(retry.failures, config.retry_min_seconds, config.retry_max_seconds, jitter());
            retry.next_attempt_ms = now + wait.as_millis() as i64;
            retry.last_error = Some(e.to_string());
            tracing::warn!("delivery failed ({e}); retry number {} in {:.0} s", retry.failures, wait.as_secs_f64());
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
    let unreachable = |message: String| PushError::Unreachable { url: url.clone(), message };
    let endpoint = config
        .endpoint()
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(Duration::from_secs(config.connect_timeout_seconds))
        // A batch that takes longer than this is a dead link, not a slow one.
        .timeout(Duration::from_secs(120))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .tcp_keepalive(Some(Duration::from_secs(30)));
    let channel = endpoint.connect().await.map_err(|e| unreachable(format!("cannot connect: {e}")))?;
    let mut client = ReportServiceClient::new(channel);
    let sender: tonic::metadata::MetadataValue<tonic::metadata::Ascii> = config
        .unit
        .parse()
        .map_err(|_| PushError::Protocol { url: url.clone(), message: "unit code not ASCII".into() })?;
    while !queue.is_empty() {
        let batch: Vec<Queued> = queue.drain(..queue.len().min(BATCH)).collect();
        let mut reports = Vec::with_capacity(batch.len());
        for q in &batch {
            reports.push(read_report(&q.path)?);
        }
        let requests: Vec<SubmitRequest> =
            reports.iter().map(|r| SubmitRequest { report: Some(r.clone()), provenance: None }).collect();
        let mut req = tonic::Request::new(tokio_stream::iter(requests));
        req.metadata_mut().insert(sifa_proto::SENDER_METADATA_KEY, sender.clone());
        let mut acks = client
            .submit_stream(req)
            .await
            .map_err(|s| unreachable(format!("{}: {}", s.code(), s.message())))?
            .into_inner();
        let mut conflict = false;
        for (q, report) in batch.iter().zip(&reports) {
            let ack = match acks.message().await {
                Ok(Some(a)) => a,
                Ok(None) => return Err(unreachable("the stream ended before every report was acknowledged".into())),
                Err(s) => return Err(unreachable(format!("{}: {}", s.code(), s.message()))),
            };
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
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_inside_bounds() {
        assert_eq!(backoff(1, 5, 3600, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff(1, 5, 3600, 1.0), Duration::from_millis(5000));
        assert_eq!(backoff(3, 5, 3600, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(40, 5, 3600, 1.0), Duration::from_secs(3600));
        assert_eq!(backoff(40, 5, 3600, 0.0), Duration::from_secs(1800));
        let a = jitter();
        assert!((0.0..1.0).contains(&a));
    }
}
