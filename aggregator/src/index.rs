//! The in-memory index of what this tier holds: for every unit and month, the
//! revisions stored with their content digests, and when the unit's first
//! revision arrived. Rebuilt at start from the Parquet store plus the
//! write-ahead log; it decides duplicates and conflicts and answers
//! completeness.

use std::collections::HashMap;

use sifa_proto::Period;
use sifa_proto::v1::Report;
use sifa_proto::validate::content_digest;

/// A unit's month.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitPeriod {
    pub unit: String,
    pub period: Period,
}

/// What is stored of one unit's month.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// (revision, content digest), in the order stored.
    pub revisions: Vec<(u64, [u8; 32])>,
    /// The earliest `received_at` of its revisions (Unix ms): timeliness
    /// (`sifa_store::is_late`, the same rule as the SQL completeness rollup).
    pub first_received_ms: i64,
}

/// What the index says about a report about to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not stored yet.
    New,
    /// Stored with identical content.
    Duplicate,
    /// Stored with different content.
    Conflict,
}

#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<UnitPeriod, Entry>,
    revisions: usize,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// How `report` (for `period`) relates to what is stored.
    pub fn lookup(&self, report: &Report, period: Period, digest: &[u8; 32]) -> Lookup {
        let key = UnitPeriod { unit: report.unit_code.clone(), period };
        match self.entries.get(&key).and_then(|e| e.revisions.iter().find(|(r, _)| *r == report.revision)) {
            None => Lookup::New,
            Some((_, d)) if d == digest => Lookup::Duplicate,
            Some(_) => Lookup::Conflict,
        }
    }

    /// Records a stored revision. Returns false (and changes nothing) when the
    /// same revision is already recorded: the store may hold a row twice for a
    /// moment (compaction), the index never does.
    pub fn insert(&mut self, report: &Report, period: Period, received_at_ms: i64) -> bool {
        self.insert_digest(report, period, content_digest(report), received_at_ms)
    }

    pub fn insert_digest(&mut self, report: &Report, period: Period, digest: [u8; 32], received_at_ms: i64) -> bool {
        let key = UnitPeriod { unit: report.unit_code.clone(), period };
        let e = self.entries.entry(key).or_default();
        if e.revisions.iter().any(|(r, _)| *r == report.revision) {
            return false;
        }
        if e.revisions.is_empty() || received_at_ms < e.first_received_ms {
            e.first_received_ms = received_at_ms;
        }
        e.revisions.push((report.revision, digest));
        self.revisions += 1;
        true
    }

    /// Takes back the revision of `report` just recorded by [`Index::insert_digest`] (a write of the log
    /// that failed), restoring the month's first arrival as it was before (`first_received_before`:
    /// [`Entry::first_received_ms`] then, `None` if the month had no revision).
    pub fn take_back(&mut self, report: &Report, period: Period, first_received_before: Option<i64>) {
        let key = UnitPeriod { unit: report.unit_code.clone(), period };
        let Some(e) = self.entries.get_mut(&key) else { return };
        let before = e.revisions.len();
        e.revisions.retain(|(r, _)| *r != report.revision);
        self.revisions -= before - e.revisions.len();
        match first_received_before {
            Some(ms) if !e.revisions.is_empty() => e.first_received_ms = ms,
            _ if e.revisions.is_empty() => {
                self.entries.remove(&key);
            }
            _ => {}
        }
    }

    pub fn get(&self, unit: &str, period: Period) -> Option<&Entry> {
        self.entries.get(&UnitPeriod { unit: unit.to_string(), period })
    }

    /// Stored revisions, all units and months.
    pub fn len(&self) -> usize {
        self.revisions
    }

    pub fn is_empty(&self) -> bool {
        self.revisions == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(unit: &str, rev: u64, v: f64) -> Report {
        Report {
            unit_code: unit.into(),
            period: "2024-03".into(),
            revision: rev,
            values: [("lectures".to_string(), v)].into(),
            comment: None,
            generated_at_ms: rev as i64,
            generator: "t".into(),
        }
    }

    #[test]
    fn duplicates_conflicts_and_first_arrival() {
        let p: Period = "2024-03".parse().unwrap();
        let mut ix = Index::new();
        let a = r("620982100", 2, 1.0);
        assert_eq!(ix.lookup(&a, p, &content_digest(&a)), Lookup::New);
        assert!(ix.insert(&a, p, 2000));
        assert_eq!(ix.lookup(&a, p, &content_digest(&a)), Lookup::Duplicate);
        let changed = r("620982100", 2, 5.0);
        assert_eq!(ix.lookup(&changed, p, &content_digest(&changed)), Lookup::Conflict);
        // The same key twice (a row in two files after an interrupted compaction) counts once.
        assert!(!ix.insert(&a, p, 2000));
        assert_eq!(ix.len(), 1);
        // Revision 1 read later (e.g. from an older file) still sets the first arrival.
        assert!(ix.insert(&r("620982100", 1, 0.0), p, 1000));
        assert_eq!(ix.get("620982100", p).unwrap().first_received_ms, 1000);
        assert!(ix.insert(&r("620982100", 3, 0.0), p, 3000));
        assert_eq!(ix.get("620982100", p).unwrap().first_received_ms, 1000);
        // The first arrival is the earliest of any revision, whatever its number.
        assert!(ix.insert(&r("620982100", 4, 0.0), p, 500));
        assert_eq!(ix.get("620982100", p).unwrap().first_received_ms, 500);
        assert_eq!(ix.len(), 4);
        assert!(ix.get("620982101", p).is_none());
        // A revision whose write failed is taken back, and the first arrival with it.
        let early = r("620982100", 5, 0.0);
        assert!(ix.insert(&early, p, 100));
        ix.take_back(&early, p, Some(500));
        assert_eq!((ix.len(), ix.get("620982100", p).unwrap().first_received_ms), (4, 500));
        assert_eq!(ix.lookup(&early, p, &content_digest(&early)), Lookup::New);
        let alone = r("620982101", 1, 0.0);
        assert!(ix.insert(&alone, p, 100));
        ix.take_back(&alone, p, None);
        assert!(ix.get("620982101", p).is_none());
        assert_eq!(ix.len(), 4);
    }
}
