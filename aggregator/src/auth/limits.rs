//! What one identity may send: the size of a message, the reports of one
//! stream, and a rate per identity (a token bucket).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sifa_proto::identity::Identity;

/// A hard cap for tonic's own decoder (`max_decoding_message_size`): above it tonic answers
/// OUT_OF_RANGE before sifa sees the message; [`Limits::max_message_bytes`] is checked below it.
pub const TRANSPORT_MESSAGE_CAP: usize = 4 * 1024 * 1024;

/// Gauges of what one identity may send. The `[limits]` table of an aggregator's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest encoded request message (one report), in bytes.
    pub max_message_bytes: usize,
    /// Reports in one SubmitStream; a sender with more opens another stream.
    pub max_reports_per_stream: u64,
    /// Sustained reports per second per identity ...
    pub reports_per_second: u32,
    /// ... and the burst above it.
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_message_bytes: 256 * 1024, max_reports_per_stream: 10_000, reports_per_second: 100, burst: 2_000 }
    }
}

impl Limits {
    /// A request message of `encoded_len` bytes (`prost::Message::encoded_len`).
    pub fn check_message_size(&self, id: &Identity, encoded_len: usize) -> Result<(), OverLimit> {
        if encoded_len > self.max_message_bytes {
            return Err(OverLimit::new(format!(
                "message of {encoded_len} bytes from {id} is over the limit of {} bytes per message",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// The `n`th report (counting from 1) of one stream.
    pub fn check_stream_count(&self, id: &Identity, n: u64) -> Result<(), OverLimit> {
        if n > self.max_reports_per_stream {
            return Err(OverLimit::new(format!(
                "{id} sent more than {} reports in one stream; end it and open a new stream for the rest",
                self.max_reports_per_stream
            )));
        }
        Ok(())
    }

    pub fn rate_limiter(&self) -> RateLimiter {
        RateLimiter::new(self.reports_per_second, self.burst)
    }
}

/// A message over one of the [`Limits`] (RESOURCE_EXHAUSTED), with the wait after which it fits the
/// rate again when waiting helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OverLimit {
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl OverLimit {
    fn new(message: String) -> OverLimit {
        OverLimit { message, retry_after: None }
    }
}

/// A token bucket per identity: `per_second` reports sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Identity, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one report's token for `id` now.
    pub fn check(&self, id: &Identity) -> Result<(), OverLimit> {
        self.check_at(id, Instant::now())
    }

    /// Takes one token for `id` at `now`; RESOURCE_EXHAUSTED saying the limit and when to retry.
    pub fn check_at(&self, id: &Identity, now: Instant) -> Result<(), OverLimit> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let b = buckets.entry(id.clone()).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now.max(b.at);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / self.per_second);
        let ms = wait.as_millis().max(1);
        Err(OverLimit {
            message: format!(
                "rate limit: {id} may send {} reports per second (bursts of {}); retry in {ms} ms",
                self.per_second, self.burst
            ),
            retry_after: Some(Duration::from_millis(ms as u64)),
        })
    }
}
