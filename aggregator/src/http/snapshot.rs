//! The tier's state at one moment, read for `/metrics` and the status page:
//! the log on disk, the flush, forwarding, free disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sifa_store::layout;
use tokio::sync::watch;

use crate::backlog::ForwardBacklog;
use crate::forward::LinkState;
use crate::ingest::Unflushed;
use crate::wal::{self, Lsn};

use super::metrics::Metrics;

/// Where the state is read from: the parts of the running tier.
pub struct Sources {
    pub data_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// Records durable in the log and not yet in Parquet.
    pub unflushed: Unflushed,
    /// The last durable LSN.
    pub durable: watch::Receiver<Lsn>,
    /// Every record up to this LSN is forwarded; `None` at the top tier.
    pub forwarding: Option<(Arc<AtomicU64>, Arc<ForwardBacklog>)>,
    /// `[disk] reserve_mb`, in bytes.
    pub disk_reserve_bytes: u64,
    /// When the tier started (Unix ms).
    pub started_ms: i64,
}

/// What [`Sources`] say now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at_ms: i64,
    pub wal_bytes: u64,
    pub wal_segments: u64,
    /// When the flusher last wrote everything pending, if it has since start.
    pub last_flush_ms: Option<i64>,
    /// Time since then (since start if it has not yet).
    pub flush_age: Duration,
    pub flush_pending_rows: u64,
    pub forwarding: Option<Forwarding>,
    /// `None` when the file system cannot tell.
    pub disk_free_bytes: Option<u64>,
    pub disk_reserve_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Reports durable here and not yet acknowledged above.
    pub backlog: u64,
    pub oldest_age: Option<Duration>,
    /// `forward::LinkState::state`; `None` before the first attempt.
    pub link_state: Option<String>,
    /// What the upstream (or the network) said last; empty when delivering.
    pub link_message: String,
    pub upstream: Option<String>,
}

impl Sources {
    pub fn snapshot(&self) -> Snapshot {
        let now = sifa_proto::period::now_unix_ms();
        let ms = |since: i64| Duration::from_millis(now.saturating_sub(since).max(0) as u64);
        let (wal_bytes, wal_segments) = log_on_disk(&layout::wal_dir(&self.data_dir));
        let last_flush_ms = self.metrics.last_flush_ms();
        let forwarding = self.forwarding.as_ref().map(|(forwarded, backlog)| {
            let forwarded = forwarded.load(Ordering::SeqCst);
            let durable = *self.durable.borrow();
            let link = LinkState::read(&self.data_dir);
            Forwarding {
                backlog: durable.saturating_sub(forwarded),
                oldest_age: backlog.oldest(forwarded).map(ms),
                link_state: link.as_ref().map(|l| l.state.clone()),
                link_message: link.as_ref().map(|l| l.message.clone()).unwrap_or_default(),
                upstream: link.map(|l| l.upstream),
            }
        });
        Snapshot {
            at_ms: now,
            wal_bytes,
            wal_segments,
            last_flush_ms,
            flush_age: ms(last_flush_ms.unwrap_or(self.started_ms)),
            flush_pending_rows: self.unflushed.lock().expect("unflushed").len() as u64,
            forwarding,
            disk_free_bytes: crate::disk::free_bytes(&self.data_dir).ok(),
            disk_reserve_bytes: self.disk_reserve_bytes,
        }
    }
}

/// Bytes and number of the log's segment files.
fn log_on_disk(wal_dir: &Path) -> (u64, u64) {
    let segments = wal::list_segments(wal_dir).unwrap_or_default();
    let bytes = segments.iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    (bytes, segments.len() as u64)
}
