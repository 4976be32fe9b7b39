//! When a month's report is due, and what "late" means: one definition for
//! the aggregator's completeness (gRPC, `sifa aggregator status`) and the
//! `periods.due_at` column `sifa query`'s completeness rollup compares with.

use sifa_proto::Period;

/// The deadline of a period: the start of day `deadline_day + 1` of the next
/// month, CST (a report is on time through the whole of day `deadline_day`).
pub fn deadline_ms(period: Period, deadline_day: u8) -> i64 {
    period.next_month_day_start_ms(deadline_day + 1)
}

/// A unit's month is late when its first revision (the earliest `received_at`
/// of any of its revisions) came after the deadline.
pub fn is_late(first_received_ms: i64, deadline_ms: i64) -> bool {
    first_received_ms > deadline_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_through_the_deadline_day_cst() {
        let p: Period = "2024-03".parse().unwrap();
        let d = deadline_ms(p, 5);
        // 2024-04-06 00:00 CST is 2024-04-05 16:00 UTC.
        assert_eq!(d, 1_712_332_800_000);
        assert!(!is_late(d, d) && is_late(d + 1, d));
        let (y, m, day) = sifa_proto::period::civil_from_unix_ms(d - 1);
        assert_eq!((y, m, day), (2024, 4, 5));
    }
}
