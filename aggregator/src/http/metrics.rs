//! The tier's Prometheus metrics, served at `/metrics` in the OpenMetrics text
//! format (crate `prometheus-client`), every series named `sifa_…`
//! (docs/OPERATIONS.md lists them).
//!
//! Counters and histograms move where the thing counted happens: the gRPC
//! services (reports received, accepted, duplicate, rejected; limits), the log
//! writer (group commit, fsync), the flusher (last flush), the HTTP side's TLS
//! handshakes. The gauges of state (the log on disk, rows waiting for a flush,
//! the forward backlog, the upstream link, free disk) are read when scraped,
//! from a [`Snapshot`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::snapshot::Snapshot;

/// The states of the link to the tier above, as `forward::LinkState` names them (one series each).
pub const UPSTREAM_STATES: [&str; 6] = ["delivering", "unreachable", "retry_after", "refused", "rejected", "unknown"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Sender {
    /// The caller's role: `office`, `aggregator` (forwarding), `analyst` or `admin`.
    sender: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedBy {
    sender: String,
    /// The first rule the report broke (docs/VALIDATION.md), or `not_authorized`, `conflict`, `period_locked`, `period_approved`.
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitKind {
    /// `rate`, `message_size` or `stream_count` (the `[limits]` table).
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Handshake {
    /// The listener: `grpc`, or `http` (this tier's HTTP side over HTTPS).
    listener: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabel {
    state: String,
}

/// Every metric of one tier.
pub struct Metrics {
    registry: Registry,
    received: Family<Sender, Counter>,
    accepted: Family<Sender, Counter>,
    duplicate: Family<Sender, Counter>,
    /// The series of `received`, `accepted` and `duplicate` for offices and for aggregators, kept so
    /// that counting a report looks nothing up.
    by_office: SenderCounters,
    by_aggregator: SenderCounters,
    rejected: Family<RejectedBy, Counter>,
    over_limit: Family<LimitKind, Counter>,
    tls_handshake_failures: Family<Handshake, Counter>,
    group_commit_reports: Histogram,
    fsync_seconds: Histogram,
    wal_bytes: Gauge,
    wal_segments: Gauge,
    flush_age_seconds: Gauge<f64, AtomicU64>,
    flush_pending_rows: Gauge,
    forward_backlog: Gauge,
    forward_oldest_age_seconds: Gauge<f64, AtomicU64>,
    upstream_state: Family<LinkLabel, Gauge>,
    disk_free_bytes: Gauge,
    disk_reserve_bytes: Gauge,
    /// When the flusher last wrote everything pending to Parquet (Unix ms; 0: not yet).
    last_flush_ms: AtomicI64,
}

impl Metrics {
    /// The metrics of the tier `unit`, all at zero.
    pub fn new(unit: &str) -> Metrics {
        let mut registry = Registry::with_prefix("sifa");
        let received = Family::<Sender, Counter>::default();
        registry.register("reports_received", "Reports received, by the sender's role", received.clone());
        let accepted = Family::<Sender, Counter>::default();
        registry.register(
            "reports_accepted",
            "Reports stored (durable in the log), by the sender's role",
            accepted.clone(),
        );
        let duplicate = Family::<Sender, Counter>::default();
        registry.register(
            "reports_duplicate",
            "Reports already stored with the same content (acknowledged, stored once), by the sender's role",
            duplicate.clone(),
        );
        let rejected = Family::<RejectedBy, Counter>::default();
        registry.register(
            "reports_rejected",
            "Reports refused for good, by the sender's role and the first rule broken",
            rejected.clone(),
        );
        let over_limit = Family::<LimitKind, Counter>::default();
        registry.register(
            "limit_refusals",
            "Calls refused with RESOURCE_EXHAUSTED by a [limits] gauge (rate, message size, reports per stream)",
            over_limit.clone(),
        );
        let tls_handshake_failures = Family::<Handshake, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, by listener and reason",
            tls_handshake_failures.clone(),
        );
        // 1, 2, 4 … 8192 reports (ingest::MAX_GROUP).
        let group_commit_reports = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "wal_group_commit_reports",
            "Reports written to the log with one fsync (group commit)",
            group_commit_reports.clone(),
        );
        // 50 µs … 1.6 s.
        let fsync_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register_with_unit(
            "wal_fsync",
            "Time of the log's fsync of one group commit",
            Unit::Seconds,
            fsync_seconds.clone(),
        );
        let wal_bytes = Gauge::default();
        registry.register_with_unit(
            "wal_size",
            "Size of the write-ahead log's segments",
            Unit::Bytes,
            wal_bytes.clone(),
        );
        let wal_segments = Gauge::default();
        registry.register("wal_segments", "Segment files of the write-ahead log", wal_segments.clone());
        let flush_age_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "flush_age",
            "Time since the flusher last wrote everything pending to Parquet (since start if it has not yet)",
            Unit::Seconds,
            flush_age_seconds.clone(),
        );
        let flush_pending_rows = Gauge::default();
        registry.register(
            "flush_pending_rows",
            "Reports durable in the log, waiting for the next flush to Parquet",
            flush_pending_rows.clone(),
        );
        let forward_backlog = Gauge::default();
        registry.register(
            "forward_backlog_reports",
            "Reports durable here and not yet acknowledged by the tier above (0 at the top tier)",
            forward_backlog.clone(),
        );
        let forward_oldest_age_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "forward_oldest_age",
            "Age of the oldest report not yet acknowledged by the tier above (0 when none waits)",
            Unit::Seconds,
            forward_oldest_age_seconds.clone(),
        );
        let upstream_state = Family::<LinkLabel, Gauge>::default();
        registry.register(
            "upstream_state",
            "The link to the tier above: 1 for its current state, 0 for the others (no series at the top tier)",
            upstream_state.clone(),
        );
        let disk_free_bytes = Gauge::default();
        registry.register_with_unit(
            "disk_free",
            "Free space of the data directory's file system, for this process",
            Unit::Bytes,
            disk_free_bytes.clone(),
        );
        let disk_reserve_bytes = Gauge::default();
        registry.register_with_unit(
            "disk_reserve",
            "Free space the tier keeps in reserve ([disk] reserve_mb; 0 when unset)",
            Unit::Bytes,
            disk_reserve_bytes.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("unit".to_string(), unit.to_string()),
            ]),
        );
        // The series of the known label values exist from the start, at 0.
        let by_office = SenderCounters::of("office", &received, &accepted, &duplicate);
        let by_aggregator = SenderCounters::of("aggregator", &received, &accepted, &duplicate);
        for limit in ["rate", "message_size", "stream_count"] {
            over_limit.get_or_create(&LimitKind { limit: limit.to_string() }).inc_by(0);
        }
        Metrics {
            registry,
            received,
            accepted,
            duplicate,
            by_office,
            by_aggregator,
            rejected,
            over_limit,
            tls_handshake_failures,
            group_commit_reports,
            fsync_seconds,
            wal_bytes,
            wal_segments,
            flush_age_seconds,
            flush_pending_rows,
            forward_backlog,
            forward_oldest_age_seconds,
            upstream_state,
            disk_free_bytes,
            disk_reserve_bytes,
            last_flush_ms: AtomicI64::new(0),
        }
    }

    /// A report that got an answer from this tier: stored, duplicate, or rejected by `rule`.
    pub fn report_answered(&self, sender: &str, outcome: Outcome<'_>) {
        let kept = match sender {
            "office" => Some(&self.by_office),
            "aggregator" => Some(&self.by_aggregator),
            _ => None,
        };
        let series = |family: &Family<Sender, Counter>, kept: Option<&Counter>| match kept {
            Some(counter) => {
                counter.inc();
            }
            None => {
                family.get_or_create(&Sender { sender: sender.to_string() }).inc();
            }
        };
        series(&self.received, kept.map(|k| &k.received));
        match outcome {
            Outcome::Accepted => series(&self.accepted, kept.map(|k| &k.accepted)),
            Outcome::Duplicate => series(&self.duplicate, kept.map(|k| &k.duplicate)),
            Outcome::Rejected(rule) => {
                self.rejected.get_or_create(&RejectedBy { sender: sender.to_string(), rule: rule.to_string() }).inc();
            }
            Outcome::Unavailable => {}
        }
    }

    /// A call refused by the `[limits]` gauge `limit` (`rate`, `message_size`, `stream_count`).
    pub fn over_limit(&self, limit: &str) {
        self.over_limit.get_or_create(&LimitKind { limit: limit.to_string() }).inc();
    }

    /// A failed TLS handshake on `listener`.
    pub fn tls_handshake_failed(&self, listener: &str, reason: &str) {
        self.tls_handshake_failures
            .get_or_create(&Handshake { listener: listener.to_string(), reason: reason.to_string() })
            .inc();
    }

    /// One group commit of the log: `reports` written, `fsync` its duration.
    pub fn group_committed(&self, reports: usize, fsync: Duration) {
        self.group_commit_reports.observe(reports as f64);
        self.fsync_seconds.observe(fsync.as_secs_f64());
    }

    /// The flusher wrote everything pending to Parquet at `at_ms`.
    pub fn flushed(&self, at_ms: i64) {
        self.last_flush_ms.store(at_ms, Ordering::Relaxed);
    }

    /// When the flusher last wrote everything pending (Unix ms), if it has since start.
    pub fn last_flush_ms(&self) -> Option<i64> {
        Some(self.last_flush_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// The OpenMetrics text of every metric, the gauges of state set from `now`.
    pub fn encode(&self, now: &Snapshot) -> String {
        self.wal_bytes.set(now.wal_bytes as i64);
        self.wal_segments.set(now.wal_segments as i64);
        self.flush_age_seconds.set(now.flush_age.as_secs_f64());
        self.flush_pending_rows.set(now.flush_pending_rows as i64);
        self.disk_free_bytes.set(now.disk_free_bytes.map_or(-1, |b| b as i64));
        self.disk_reserve_bytes.set(now.disk_reserve_bytes as i64);
        if let Some(f) = &now.forwarding {
            self.forward_backlog.set(f.backlog as i64);
            self.forward_oldest_age_seconds.set(f.oldest_age.map_or(0.0, |a| a.as_secs_f64()));
            for state in UPSTREAM_STATES {
                let current = f.link_state.as_deref().unwrap_or("unknown") == state;
                self.upstream_state.get_or_create(&LinkLabel { state: state.to_string() }).set(current as i64);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

/// What became of one report (see [`Metrics::report_answered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    Accepted,
    Duplicate,
    /// Refused for good; the first rule broken.
    Rejected(&'a str),
    /// Not taken now (shutting down, disk trouble): the sender sends it again.
    Unavailable,
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One sender role's series of the report counters.
struct SenderCounters {
    received: Counter,
    accepted: Counter,
    duplicate: Counter,
}

impl SenderCounters {
    fn of(
        sender: &str,
        received: &Family<Sender, Counter>,
        accepted: &Family<Sender, Counter>,
        duplicate: &Family<Sender, Counter>,
    ) -> SenderCounters {
        let who = Sender { sender: sender.to_string() };
        SenderCounters {
            received: received.get_or_create(&who).clone(),
            accepted: accepted.get_or_create(&who).clone(),
            duplicate: duplicate.get_or_create(&who).clone(),
        }
    }
}
