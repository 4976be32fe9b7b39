//! How long the oldest report not yet forwarded has waited: when each stretch
//! of the log became durable here, kept until the tier above acknowledged it.
//! The log writer adds a stretch per group commit; [`ForwardBacklog::oldest`]
//! drops the stretches the forward cursor has passed.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::wal::Lsn;

/// Stretches of the log not yet forwarded: (last LSN of the stretch, when it became durable, Unix ms).
#[derive(Debug, Default)]
pub struct ForwardBacklog {
    stretches: Mutex<VecDeque<(Lsn, i64)>>,
}

impl ForwardBacklog {
    pub fn new() -> ForwardBacklog {
        ForwardBacklog::default()
    }

    /// Records up to `last` became durable at `at_ms`.
    pub fn durable(&self, last: Lsn, at_ms: i64) {
        let mut s = self.stretches.lock().expect("backlog lock");
        match s.back_mut() {
            // Same millisecond: one stretch (memory stays bounded by the backlog's age in ms).
            Some((l, at)) if *at == at_ms => *l = (*l).max(last),
            _ => s.push_back((last, at_ms)),
        }
    }

    /// When the oldest record after `forwarded` became durable (Unix ms), if any waits.
    pub fn oldest(&self, forwarded: Lsn) -> Option<i64> {
        let mut s = self.stretches.lock().expect("backlog lock");
        while s.front().is_some_and(|(last, _)| *last <= forwarded) {
            s.pop_front();
        }
        s.front().map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_stretch_is_the_first_past_the_cursor() {
        let b = ForwardBacklog::new();
        assert_eq!(b.oldest(0), None);
        b.durable(3, 1_000);
        b.durable(5, 2_000);
        b.durable(9, 2_000);
        assert_eq!(b.oldest(0), Some(1_000));
        assert_eq!(b.oldest(2), Some(1_000));
        assert_eq!(b.oldest(3), Some(2_000));
        assert_eq!(b.oldest(8), Some(2_000));
        assert_eq!(b.oldest(9), None);
        b.durable(10, 3_000);
        assert_eq!(b.oldest(9), Some(3_000));
    }
}
