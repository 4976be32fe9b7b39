//! The reports this tier rejected lately, for the status page: which unit,
//! which month, which rule, why. Kept in memory only, the newest
//! [`RECENT_REJECTIONS`] since the tier started (the counters by rule are in
//! `http::metrics`; every rejection is also in the log).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many rejections the page can show.
pub const RECENT_REJECTIONS: usize = 200;

/// One rejected report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub at_ms: i64,
    pub unit: String,
    pub period: String,
    pub revision: u64,
    /// The caller, e.g. `office 620982100`.
    pub sender: String,
    /// The first rule broken and its message (docs/VALIDATION.md).
    pub rule: String,
    pub message: String,
}

/// The newest rejections, bounded.
#[derive(Debug)]
pub struct RecentRejections {
    since_ms: i64,
    capacity: usize,
    ring: Mutex<VecDeque<Rejected>>,
    total: AtomicU64,
}

impl RecentRejections {
    /// An empty ring of `capacity`, counting from `since_ms` (the tier's start).
    pub fn new(capacity: usize, since_ms: i64) -> RecentRejections {
        RecentRejections { since_ms, capacity, ring: Mutex::new(VecDeque::new()), total: AtomicU64::new(0) }
    }

    pub fn record(&self, r: Rejected) {
        let mut ring = self.ring.lock().expect("rejections lock");
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(r);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// The kept rejections, newest first.
    pub fn newest_first(&self) -> Vec<Rejected> {
        self.ring.lock().expect("rejections lock").iter().rev().cloned().collect()
    }

    /// Rejections since [`RecentRejections::since_ms`], including those no longer kept.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_counts_all() {
        let recent = RecentRejections::new(2, 5);
        for i in 0..3 {
            recent.record(Rejected {
                at_ms: i,
                unit: format!("62098210{i}"),
                period: "2024-03".into(),
                revision: 1,
                sender: "office".into(),
                rule: "range".into(),
                message: "m".into(),
            });
        }
        let units: Vec<String> = recent.newest_first().into_iter().map(|r| r.unit).collect();
        assert_eq!(units, ["620982102", "620982101"]);
        assert_eq!((recent.total(), recent.since_ms()), (3, 5));
    }
}
