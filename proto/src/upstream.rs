//! The client side of sending reports up the tree, shared by the office
//! agent's push and an aggregator's forwarder: connecting, submitting a batch
//! over `SubmitStream`, what a failure means ([`classify`]) and how long to
//! wait before the next attempt ([`backoff`]). The admin CLI names its
//! failures with the same [`UpstreamError`].
//!
//! A failure is one of four kinds ([`Failure`]):
//!
//! - **unreachable** (UNAVAILABLE, DEADLINE_EXCEEDED, a lost connection, the
//!   receiver shutting down...): try again with exponential backoff;
//! - **retry after** (RESOURCE_EXHAUSTED carrying [`RETRY_AFTER_MS_METADATA_KEY`],
//!   the receiver's rate limit): wait what it asks;
//! - **refused for good** (UNAUTHENTICATED, PERMISSION_DENIED: a revoked or
//!   expired certificate, one of another unit or tier): nothing changes until a
//!   person acts, so it is said loudly and retried only rarely;
//! - **rejected** (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS...):
//!   this request is refused; the same request gets the same answer.

use std::fmt;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::unit_code::UnitCode;
use crate::v1::report_service_client::ReportServiceClient;
use crate::v1::{Ack, SubmitRequest};

/// The gRPC metadata of a RESOURCE_EXHAUSTED status from a receiver's rate limit: milliseconds to wait.
pub const RETRY_AFTER_MS_METADATA_KEY: &str = "x-sifa-retry-after-ms";

/// How long a sender refused for good waits before it tries again (a new certificate may have been
/// installed meanwhile), unless its own longest backoff is longer.
pub const REFUSED_RETRY: Duration = Duration::from_secs(15 * 60);

/// The longest a connection to the tier above may take, TCP, TLS handshake and HTTP/2 together.
/// An endpoint's connect timeout covers TCP alone: a dead line that accepts and then stays silent
/// (a middlebox, a half-open route) would otherwise hold a sender for good.
pub const CONNECT_BOUND: Duration = Duration::from_secs(10);

/// What kind of failure a call to the tier above ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not reached, or not able to answer now: retry with backoff.
    Unreachable,
    /// The receiver asked to wait this long first.
    RetryAfter(Duration),
    /// The receiver refuses this sender (its certificate, its identity): retrying will not help until
    /// a person acts.
    RefusedForGood,
    /// The receiver refused this request; the same request gets the same answer.
    Rejected,
}

impl Failure {
    /// A short name for logs and state files: `unreachable`, `retry_after`, `refused`, `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::RetryAfter(_) => "retry_after",
            Failure::RefusedForGood => "refused",
            Failure::Rejected => "rejected",
        }
    }
}

/// The kind of failure a status from the tier above is.
pub fn classify(status: &Status) -> Failure {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => Failure::RefusedForGood,
        Code::ResourceExhausted => match retry_after(status) {
            Some(wait) => Failure::RetryAfter(wait),
            // Over the reports of one stream: a new stream carries the rest.
            None => Failure::Unreachable,
        },
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::NotFound
        | Code::Unimplemented => Failure::Rejected,
        Code::Ok
        | Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Aborted
        | Code::Unknown
        | Code::Internal
        | Code::DataLoss => Failure::Unreachable,
    }
}

/// The wait a status asks for in [`RETRY_AFTER_MS_METADATA_KEY`].
pub fn retry_after(status: &Status) -> Option<Duration> {
    let ms: u64 = status.metadata().get(RETRY_AFTER_MS_METADATA_KEY)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// Sets the wait of a RESOURCE_EXHAUSTED status (the receiver's side of [`retry_after`]).
pub fn set_retry_after(status: &mut Status, wait: Duration) {
    let ms = wait.as_millis().max(1);
    status.metadata_mut().insert(RETRY_AFTER_MS_METADATA_KEY, ms.to_string().parse().expect("digits are ASCII"));
}

/// A failed call to another tier: where, what kind, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub url: String,
    pub failure: Failure,
    /// The gRPC code, when the receiver answered.
    pub code: Option<Code>,
    pub message: String,
}

impl UpstreamError {
    /// A status the tier at `url` answered with.
    pub fn from_status(url: &str, status: &Status) -> UpstreamError {
        UpstreamError {
            url: url.to_owned(),
            failure: classify(status),
            code: Some(status.code()),
            message: status.message().to_owned(),
        }
    }

    /// A connection that could not be made (or broke), with the cause chain.
    pub fn transport(url: &str, error: &dyn std::error::Error) -> UpstreamError {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        // The TLS handshake refusing our certificate (expired, unknown CA) is not a network problem.
        let lower = message.to_ascii_lowercase();
        let refused =
            ["certificateexpired", "certificaterevoked", "badcertificate", "unknownca", "certificate expired"]
                .iter()
                .any(|n| lower.contains(n));
        UpstreamError {
            url: url.to_owned(),
            failure: if refused { Failure::RefusedForGood } else { Failure::Unreachable },
            code: None,
            message,
        }
    }

    /// `UNAUTHENTICATED: the certificate of ... is revoked`, or the transport's words.
    pub fn detail(&self) -> String {
        match self.code {
            Some(code) => format!("{}: {}", code_name(code), self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (url, detail) = (&self.url, self.detail());
        match self.failure {
            Failure::Unreachable => write!(f, "{url} not reachable ({detail}); trying again with backoff"),
            Failure::RetryAfter(wait) => {
                write!(f, "{url} asks to slow down ({detail}); trying again in {} ms", wait.as_millis())
            }
            Failure::RefusedForGood => write!(
                f,
                "{url} refuses this unit's certificate ({detail}): the certificate may be revoked or expired, or \
                 issued for another unit; ask the tier above (the province's CA, `sifa pki issue`) for a new one"
            ),
            Failure::Rejected => write!(f, "{url} rejected the request ({detail})"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// The canonical upper-case name of a gRPC code (`PERMISSION_DENIED`), as the gRPC documentation spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The delay before retry number `failures` (1 = first retry): exponential from `min` to `max`, with
/// "equal jitter" (half fixed, half random by `random01` in [0, 1]) so the offices of a county coming
/// back together do not retry in lock-step.
pub fn backoff(failures: u32, min: Duration, max: Duration, random01: f64) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(30)).min(max);
    exp / 2 + (exp / 2).mul_f64(random01.clamp(0.0, 1.0))
}

/// How long to wait after `error`, the `failures`th failure in a row: the receiver's wish for
/// [`Failure::RetryAfter`], at least [`REFUSED_RETRY`] (or `max`) when refused for good, else [`backoff`].
pub fn wait_after(error: &UpstreamError, failures: u32, min: Duration, max: Duration, random01: f64) -> Duration {
    match error.failure {
        Failure::RetryAfter(wait) => wait,
        Failure::RefusedForGood => max.max(REFUSED_RETRY),
        Failure::Unreachable | Failure::Rejected => backoff(failures, min, max, random01),
    }
}

/// A number in [0, 1) that differs between processes and calls (for [`backoff`]).
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ ((std::process::id() as u64) << 32);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A batch that did not go through: the tier above failed, or the sender's own handling of an
/// acknowledgement did (e.g. its outbox).
#[derive(Debug)]
pub enum BatchError<E> {
    Upstream(UpstreamError),
    Sender(E),
}

/// A connection to the tier above, as one sending unit.
pub struct Upstream {
    url: String,
    sender: UnitCode,
    channel: Channel,
    client: ReportServiceClient<Channel>,
}

impl Upstream {
    /// Connects to `url` through `endpoint` (its TLS identity and timeouts already set).
    pub async fn connect(url: &str, endpoint: Endpoint, sender: UnitCode) -> Result<Upstream, UpstreamError> {
        let channel = match tokio::time::timeout(CONNECT_BOUND, endpoint.connect()).await {
            Ok(connected) => connected.map_err(|e| UpstreamError::transport(url, &e))?,
            Err(_) => {
                return Err(UpstreamError {
                    url: url.to_owned(),
                    failure: Failure::Unreachable,
                    code: None,
                    message: format!("no TLS answer within {} s of connecting", CONNECT_BOUND.as_secs()),
                });
            }
        };
        let client = ReportServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
        Ok(Upstream { url: url.to_owned(), sender, channel, client })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection, for the tier above's other services (e.g. reporting an approval).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// `message` as a request naming this sender (as [`Upstream::submit_batch`] does).
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.metadata_mut()
            .insert(crate::SENDER_METADATA_KEY, self.sender.as_str().parse().expect("a unit code is ASCII digits"));
        req
    }

    /// Sends `requests` on one `SubmitStream` and hands each acknowledgement, in request order, to
    /// `on_ack` (its index and the ack) as it arrives, so that what was acknowledged before a failure
    /// is kept. Fails unless every request is acknowledged.
    pub async fn submit_batch<E>(
        &mut self,
        requests: Vec<SubmitRequest>,
        mut on_ack: impl FnMut(usize, Ack) -> Result<(), E>,
    ) -> Result<(), BatchError<E>> {
        let n = requests.len();
        let failed = |s: Status| BatchError::Upstream(UpstreamError::from_status(&self.url, &s));
        let req = self.request(tokio_stream::iter(requests));
        let mut acks = self.client.submit_stream(req).await.map_err(failed)?.into_inner();
        for i in 0..n {
            match acks.message().await.map_err(failed)? {
                Some(ack) => on_ack(i, ack).map_err(BatchError::Sender)?,
                None => {
                    return Err(BatchError::Upstream(UpstreamError {
                        url: self.url.clone(),
                        failure: Failure::Unreachable,
                        code: None,
                        message: format!("the stream ended after {i} of {n} acknowledgements"),
                    }));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_what_the_sender_should_do() {
        let mut limited = Status::resource_exhausted("rate limit");
        set_retry_after(&mut limited, Duration::from_millis(250));
        let cases = [
            (Status::unavailable("shutting down"), Failure::Unreachable),
            (Status::deadline_exceeded("slow"), Failure::Unreachable),
            (Status::resource_exhausted("open a new stream"), Failure::Unreachable),
            (limited, Failure::RetryAfter(Duration::from_millis(250))),
            (Status::unauthenticated("the certificate is revoked"), Failure::RefusedForGood),
            (Status::permission_denied("not an aggregator"), Failure::RefusedForGood),
            (Status::invalid_argument("bad report"), Failure::Rejected),
            (Status::failed_precondition("period locked"), Failure::Rejected),
        ];
        for (status, want) in cases {
            assert_eq!(classify(&status), want, "{status:?}");
        }
    }

    #[test]
    fn a_refusal_says_what_happened_and_what_to_do() {
        let e = UpstreamError::from_status(
            "https://county:7401",
            &Status::unauthenticated("the certificate of office 620982101 (serial 4f) is revoked"),
        );
        let text = e.to_string();
        assert!(text.contains("https://county:7401 refuses this unit's certificate"), "{text}");
        assert!(text.contains("UNAUTHENTICATED: the certificate of office 620982101"), "{text}");
        assert!(text.contains("ask the tier above"), "{text}");
        let slow = UpstreamError::from_status("u", &Status::unavailable("down"));
        assert_eq!(slow.to_string(), "u not reachable (UNAVAILABLE: down); trying again with backoff");
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_inside_bounds() {
        let (min, max) = (Duration::from_secs(5), Duration::from_secs(3600));
        assert_eq!(backoff(1, min, max, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff(1, min, max, 1.0), Duration::from_millis(5000));
        assert_eq!(backoff(3, min, max, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(40, min, max, 1.0), Duration::from_secs(3600));
        assert_eq!(backoff(40, min, max, 0.0), Duration::from_secs(1800));
        let a = jitter();
        assert!((0.0..1.0).contains(&a));
        let refused = UpstreamError::from_status("u", &Status::permission_denied("no"));
        assert_eq!(wait_after(&refused, 1, min, Duration::from_secs(60), 0.5), REFUSED_RETRY);
        assert_eq!(wait_after(&refused, 1, min, Duration::from_secs(7200), 0.5), Duration::from_secs(7200));
    }
}
