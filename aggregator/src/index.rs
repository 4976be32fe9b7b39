//! The in-memory index of what this tier holds: for every unit and month, the
//! revisions stored with their content digests, and when the unit's first
//! revision arrived. Rebuilt at start from the Parquet store (through its key
//! files, `key_files.rs`) plus the write-ahead log; it decides duplicates and
//! conflicts and answers completeness.
//!
//! Two parts, so a start does not grow with the store beyond reading the key
//! files: what was stored before the start is one sorted array of fixed-size
//! [`StoredKey`]s (loaded as the key files' runs, merged, looked up by binary
//! search; no hashing, no allocation per key), and what arrives after the
//! start is a hash map beside it. A unit's month may have revisions in both.

use std::collections::HashMap;

use sifa_proto::Period;
use sifa_proto::v1::Report;
use sifa_proto::validate::content_digest;

/// A unit code's digits packed with their count (codes are 2 to 12 digits,
/// `sifa_proto::UnitCode`): keys without an allocation. `None` for a code that
/// is not 1 to 15 decimal digits (never a validated unit code).
pub fn pack_unit(unit: &str) -> Option<u64> {
    if !(1..=15).contains(&unit.len()) || !unit.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: u64 = unit.parse().ok()?;
    Some(digits * 16 + unit.len() as u64)
}

/// A month as the index orders it: `year << 8 | month`.
pub fn pack_period(period: Period) -> u32 {
    (period.year() as u32) << 8 | period.month() as u32
}

/// A unit's month as the index keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct UnitPeriod {
    unit: u64,
    period: u32,
}

impl UnitPeriod {
    fn new(unit: &str, period: Period) -> Option<UnitPeriod> {
        Some(UnitPeriod { unit: pack_unit(unit)?, period: pack_period(period) })
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

/// One stored revision as the sorted part of the index (and a key file) holds it. Ordered by
/// month, unit and revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKey {
    /// [`pack_period`]
    pub period: u32,
    /// [`pack_unit`]
    pub unit: u64,
    pub revision: u64,
    /// When the first tier made it durable (Unix ms).
    pub received_at_ms: i64,
    pub digest: Digest,
}

impl StoredKey {
    /// `None` for a unit code that is not digits (never one that passed validation).
    pub fn new(unit: &str, period: Period, revision: u64, received_at_ms: i64, digest: Digest) -> Option<StoredKey> {
        Some(StoredKey { period: pack_period(period), unit: pack_unit(unit)?, revision, received_at_ms, digest })
    }

    fn order(&self) -> (u32, u64, u64) {
        (self.period, self.unit, self.revision)
    }
}

/// What is stored of one unit's month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The revisions: those stored before the start in revision order, then those since in the
    /// order stored.
    revisions: Vec<Revision>,
    /// The earliest `received_at` of its revisions (Unix ms): timeliness
    /// (`sifa_store::is_late`, the same rule as the SQL completeness rollup).
    pub first_received_ms: i64,
}

impl Entry {
    /// (revision, content digest).
    pub fn revisions(&self) -> &[Revision] {
        &self.revisions
    }
}

/// What arrived since the start, for one unit's month.
#[derive(Debug, Clone)]
struct Arrived {
    /// Most months get one revision, kept without an allocation.
    revisions: Revisions,
    first_received_ms: i64,
}

#[derive(Debug, Clone)]
enum Revisions {
    One(Revision),
    Many(Vec<Revision>),
}

impl Arrived {
    fn revisions(&self) -> &[Revision] {
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
    /// What was stored before the start, sorted by [`StoredKey::order`], each key once.
    stored: Vec<StoredKey>,
    /// What was stored since.
    arrived: HashMap<UnitPeriod, Arrived>,
    arrived_revisions: usize,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// An index of what the store held at the start: `keys` in any order, a key given twice (a row
    /// that an interrupted compaction left in two files) kept once. Key files hold sorted runs, so
    /// sorting their concatenation is a merge of a few runs.
    pub fn with_stored(mut keys: Vec<StoredKey>) -> Index {
        keys.sort_by_key(StoredKey::order);
        keys.dedup_by_key(|k| k.order());
        keys.shrink_to_fit();
        Index { stored: keys, ..Index::default() }
    }

    /// The stored revisions of a unit's month (a slice of the sorted part).
    fn stored_of(&self, key: UnitPeriod) -> &[StoredKey] {
        let from = self.stored.partition_point(|k| (k.period, k.unit) < (key.period, key.unit));
        let len = self.stored[from..].partition_point(|k| (k.period, k.unit) == (key.period, key.unit));
        &self.stored[from..from + len]
    }

    /// The digest stored for `revision` of a unit's month, if it is stored.
    fn digest_of(&self, key: UnitPeriod, revision: u64) -> Option<Digest> {
        let stored = self.stored_of(key).iter().find(|k| k.revision == revision).map(|k| k.digest);
        stored.or_else(|| self.arrived.get(&key)?.revisions().iter().find(|(r, _)| *r == revision).map(|(_, d)| *d))
    }

    /// How `report` (for `period`) relates to what is stored.
    pub fn lookup(&self, report: &Report, period: Period, digest: &[u8; 32]) -> Lookup {
        let found = UnitPeriod::new(&report.unit_code, period).and_then(|key| self.digest_of(key, report.revision));
        match found {
            None => Lookup::New,
            Some(d) if d == short_digest(digest) => Lookup::Duplicate,
            Some(_) => Lookup::Conflict,
        }
    }

    /// Records a stored revision. Returns false (and changes nothing) when the
    /// same revision is already recorded: the store may hold a row twice for a
    /// moment (compaction), the index never does.
    pub fn insert(&mut self, report: &Report, period: Period, received_at_ms: i64) -> bool {
        self.insert_digest(report, period, content_digest(report), received_at_ms)
    }

    /// [`Index::insert`] with the content digest already computed. A unit code that is not digits
    /// (never one that passed validation) is not recorded.
    pub fn insert_digest(&mut self, report: &Report, period: Period, digest: [u8; 32], received_at_ms: i64) -> bool {
        let Some(key) = UnitPeriod::new(&report.unit_code, period) else {
            tracing::warn!(unit = report.unit_code, %period, "not a unit code of digits; not indexed");
            return false;
        };
        if self.digest_of(key, report.revision).is_some() {
            return false;
        }
        let revision = (report.revision, short_digest(&digest));
        match self.arrived.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Arrived { revisions: Revisions::One(revision), first_received_ms: received_at_ms });
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let a = o.get_mut();
                if a.revisions().is_empty() || received_at_ms < a.first_received_ms {
                    a.first_received_ms = received_at_ms;
                }
                a.push(revision);
            }
        }
        self.arrived_revisions += 1;
        true
    }

    /// Takes back the revision of `report` just recorded by [`Index::insert_digest`] (a write of the log
    /// that failed), restoring the month's first arrival as it was before (`first_received_before`:
    /// [`Entry::first_received_ms`] then, `None` if the month had no revision).
    pub fn take_back(&mut self, report: &Report, period: Period, first_received_before: Option<i64>) {
        let Some(key) = UnitPeriod::new(&report.unit_code, period) else { return };
        let Some(a) = self.arrived.get_mut(&key) else { return };
        self.arrived_revisions -= a.remove(report.revision);
        match first_received_before {
            _ if a.revisions().is_empty() => {
                self.arrived.remove(&key);
            }
            Some(ms) => a.first_received_ms = ms,
            None => {}
        }
    }

    /// What is stored of a unit's month, if anything.
    pub fn get(&self, unit: &str, period: Period) -> Option<Entry> {
        let key = UnitPeriod::new(unit, period)?;
        let stored = self.stored_of(key);
        let arrived = self.arrived.get(&key);
        let mut revisions: Vec<Revision> = stored.iter().map(|k| (k.revision, k.digest)).collect();
        revisions.extend(arrived.iter().flat_map(|a| a.revisions().iter().copied()));
        if revisions.is_empty() {
            return None;
        }
        let first_received_ms = stored
            .iter()
            .map(|k| k.received_at_ms)
            .chain(arrived.filter(|a| !a.revisions().is_empty()).map(|a| a.first_received_ms))
            .min()
            .expect("at least one revision");
        Some(Entry { revisions, first_received_ms })
    }

    /// Stored revisions, all units and months.
    pub fn len(&self) -> usize {
        self.stored.len() + self.arrived_revisions
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        // Revision 1 recorded later still sets the first arrival.
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

#[cfg(test)]
mod stored_tests {
    use super::*;

    fn key(unit: &str, period: &str, revision: u64, received: i64, d: u8) -> StoredKey {
        StoredKey::new(unit, period.parse().unwrap(), revision, received, [d; 16]).unwrap()
    }

    fn report(unit: &str, period: &str, revision: u64) -> Report {
        Report {
            unit_code: unit.into(),
            period: period.into(),
            revision,
            values: [("lectures".to_string(), revision as f64)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn stored_keys_and_arrivals_answer_together() {
        let p: Period = "2024-03".parse().unwrap();
        // Two runs out of order, one key in both (a compaction interrupted), a unit whose code is a
        // prefix of another's (6209821 vs 620982100: packed with their length, never confused).
        let mut keys = vec![key("620982100", "2024-03", 2, 3000, 2), key("6209821", "2024-03", 1, 10, 9)];
        keys.extend([key("620982100", "2024-03", 1, 1000, 1), key("620982100", "2024-03", 2, 3000, 2)]);
        keys.push(key("620982100", "2024-04", 1, 5000, 4));
        let mut ix = Index::with_stored(keys);
        assert_eq!(ix.len(), 4, "the key in two runs counts once");
        let e = ix.get("620982100", p).unwrap();
        assert_eq!((e.revisions(), e.first_received_ms), (&[(1, [1; 16]), (2, [2; 16])][..], 1000));
        assert_eq!(ix.get("6209821", p).unwrap().revisions(), &[(1, [9; 16])]);
        assert!(ix.get("620982101", p).is_none() && ix.get("620982100", "2024-05".parse().unwrap()).is_none());

        // A revision stored before the start is a duplicate or a conflict, never stored again.
        let r2 = report("620982100", "2024-03", 2);
        assert!(!ix.insert_digest(&r2, p, [2; 32], 9), "already stored");
        let mut same = [0u8; 32];
        same[..16].copy_from_slice(&[2; 16]);
        assert_eq!(ix.lookup(&r2, p, &same), Lookup::Duplicate);
        assert_eq!(ix.lookup(&r2, p, &[7; 32]), Lookup::Conflict);
        // A correction arriving after the start joins the stored revisions; an earlier arrival
        // (a forwarded revision received below before the stored ones) becomes the first.
        let r3 = report("620982100", "2024-03", 3);
        assert_eq!(ix.lookup(&r3, p, &content_digest(&r3)), Lookup::New);
        assert!(ix.insert(&r3, p, 500));
        let e = ix.get("620982100", p).unwrap();
        assert_eq!((e.revisions().len(), e.first_received_ms, ix.len()), (3, 500, 5));
        assert_eq!(ix.lookup(&r3, p, &content_digest(&r3)), Lookup::Duplicate);
        // Taking it back (a failed log write) leaves the stored part as it was.
        ix.take_back(&r3, p, Some(1000));
        let e = ix.get("620982100", p).unwrap();
        assert_eq!((e.revisions().len(), e.first_received_ms, ix.len()), (2, 1000, 4));
        assert_eq!(ix.lookup(&r3, p, &content_digest(&r3)), Lookup::New);
    }
}
