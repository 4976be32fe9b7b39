//! The in-memory index of what this tier holds: for every unit and month, the
//! revisions stored with their content digests, and when the unit's first
//! revision arrived. Rebuilt at start from the Parquet store plus the
//! write-ahead log; it decides duplicates and conflicts and answers
//! completeness.

use std::collections::HashMap;

use sifa_proto::Period;
use sifa_proto::v1::Report;
use sifa_proto::validate::content_digest;

/// A unit's month as the index keys it: the unit code's digits packed with
/// their count (codes are 2 to 12 digits, `sifa_proto::UnitCode`), and the
/// month. No allocation per key: a province's index of millions of months
/// loads fast and stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct UnitPeriod {
    unit: u64,
    period: Period,
}

impl UnitPeriod {
    /// `None` for a code that is not 1 to 15 decimal digits (never a validated unit code).
    fn new(unit: &str, period: Period) -> Option<UnitPeriod> {
        if !(1..=15).contains(&unit.len()) || !unit.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: u64 = unit.parse().ok()?;
        Some(UnitPeriod { unit: digits * 16 + unit.len() as u64, period })
    }
}

/// What the index keeps of a content digest (`sifa_proto::validate::content_digest`, SHA-256): its
/// first 16 bytes. Two different contents under the same unit, month and revision agree in them
/// with a probability of 2⁻¹²⁸; half the digest halves what a province's index and key files hold.
pub type Digest = [u8; 16];

/// The [`Digest`] of a full content digest.
pub fn short_digest(digest: &[u8; 32]) -> Digest {
    digest[..16].try_into().expect("16 of 32 bytes")
}

/// A revision and the digest of its content.
pub type Revision = (u64, Digest);

/// What is stored of one unit's month.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The revisions in the order stored; most months have one, kept without an allocation.
    revisions: Revisions,
    /// The earliest `received_at` of its revisions (Unix ms): timeliness
    /// (`sifa_store::is_late`, the same rule as the SQL completeness rollup).
    pub first_received_ms: i64,
}

#[derive(Debug, Clone)]
enum Revisions {
    One(Revision),
    Many(Vec<Revision>),
}

impl Entry {
    /// (revision, content digest), in the order stored.
    pub fn revisions(&self) -> &[Revision] {
        match &self.revisions {
            Revisions::One(r) => std::slice::from_ref(r),
            Revisions::Many(v) => v,
        }
    }

    fn push(&mut self, r: Revision) {
        self.revisions = match std::mem::replace(&mut self.revisions, Revisions::Many(Vec::new())) {
            Revisions::One(first) => Revisions::Many(vec![first, r]),
            Revisions::Many(mut v) => {
                v.push(r);
                Revisions::Many(v)
            }
        };
    }

    /// Removes `revision`; returns how many were removed.
    fn remove(&mut self, revision: u64) -> usize {
        match &mut self.revisions {
            Revisions::One((r, _)) if *r == revision => {
                self.revisions = Revisions::Many(Vec::new());
                1
            }
            Revisions::One(_) => 0,
            Revisions::Many(v) => {
                let before = v.len();
                v.retain(|(r, _)| *r != revision);
                before - v.len()
            }
        }
    }
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

    /// Makes room for `additional` more months (before a bulk load).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// How `report` (for `period`) relates to what is stored.
    pub fn lookup(&self, report: &Report, period: Period, digest: &[u8; 32]) -> Lookup {
        let found = UnitPeriod::new(&report.unit_code, period)
            .and_then(|key| self.entries.get(&key))
            .and_then(|e| e.revisions().iter().find(|(r, _)| *r == report.revision));
        match found {
            None => Lookup::New,
            Some((_, d)) if *d == short_digest(digest) => Lookup::Duplicate,
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
        self.insert_key(&report.unit_code, period, report.revision, short_digest(&digest), received_at_ms)
    }

    /// [`Index::insert_digest`] from a stored row's key (`key_files.rs`). A unit code that is not
    /// digits (never one that passed validation) is not recorded.
    pub fn insert_key(
        &mut self,
        unit: &str,
        period: Period,
        revision: u64,
        digest: Digest,
        received_at_ms: i64,
    ) -> bool {
        let Some(key) = UnitPeriod::new(unit, period) else {
            tracing::warn!(unit, %period, "not a unit code of digits; not indexed");
            return false;
        };
        match self.entries.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry { revisions: Revisions::One((revision, digest)), first_received_ms: received_at_ms });
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                if e.revisions().iter().any(|(r, _)| *r == revision) {
                    return false;
                }
                if e.revisions().is_empty() || received_at_ms < e.first_received_ms {
                    e.first_received_ms = received_at_ms;
                }
                e.push((revision, digest));
            }
        }
        self.revisions += 1;
        true
    }

    /// Takes back the revision of `report` just recorded by [`Index::insert_digest`] (a write of the log
    /// that failed), restoring the month's first arrival as it was before (`first_received_before`:
    /// [`Entry::first_received_ms`] then, `None` if the month had no revision).
    pub fn take_back(&mut self, report: &Report, period: Period, first_received_before: Option<i64>) {
        let Some(key) = UnitPeriod::new(&report.unit_code, period) else { return };
        let Some(e) = self.entries.get_mut(&key) else { return };
        self.revisions -= e.remove(report.revision);
        match first_received_before {
            _ if e.revisions().is_empty() => {
                self.entries.remove(&key);
            }
            Some(ms) => e.first_received_ms = ms,
            None => {}
        }
    }

    pub fn get(&self, unit: &str, period: Period) -> Option<&Entry> {
        self.entries.get(&UnitPeriod::new(unit, period)?)
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
