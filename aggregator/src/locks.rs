//! Period locks: a closed month accepts no new report or revision, except one
//! admitted by an explicit override. A month approved for a subtree
//! ([`crate::approvals`]) is closed for that subtree the same way. Locks,
//! overrides (with who asked, why and when, and which revision used an
//! override) and approvals persist in `state/locks.json`; the approvals also in
//! the data directory's `approvals.csv`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sifa_proto::Period;
use sifa_proto::registry::{Registry, UnitKind};
use sifa_proto::validate::{Rejection, RejectionCode};
use sifa_store::layout::LOCKS_FILE;

use crate::approvals::{ACCEPTED, ApprovalError, ApprovalRecord, Approvals};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub period: String,
    pub reason: String,
    /// Who closed it: the caller's identity, e.g. `admin 62`.
    #[serde(default)]
    pub locked_by: String,
    pub locked_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub unit_code: String,
    pub period: String,
    pub reason: String,
    /// Who granted it: the caller's identity, e.g. `admin 62`.
    #[serde(default)]
    pub granted_by: String,
    pub granted_at_ms: i64,
    /// The revision it admitted, once used.
    pub used_by_revision: Option<u64>,
    pub used_at_ms: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockBook {
    pub locks: Vec<Lock>,
    pub overrides: Vec<Override>,
    #[serde(default)]
    pub approvals: Approvals,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Write(#[from] sifa_proto::fs::FsError),
    #[error("period locks {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Request(String),
}

impl From<ApprovalError> for LockError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::Request(m) => LockError::Request(m),
        }
    }
}

/// The lock book of a tier, kept in `state/`.
#[derive(Debug)]
pub struct Locks {
    dir: PathBuf,
    book: LockBook,
    registry: Arc<Registry>,
}

/// Whether a report for a period may be stored.
#[derive(Debug, PartialEq)]
pub enum Admission {
    Open,
    /// Locked, but an override admits it (index into the overrides).
    ByOverride(usize),
}

impl Locks {
    /// Opens the lock book of `state_dir` (the data directory's `state/`).
    pub fn open(state_dir: &Path, registry: Arc<Registry>) -> Result<Locks, LockError> {
        let path = state_dir.join(LOCKS_FILE);
        let book = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| LockError::Parse { path, message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockBook::default(),
            Err(e) => return Err(sifa_proto::fs::FsError { action: "read", path, source: e }.into()),
        };
        let locks = Locks { dir: state_dir.to_path_buf(), book, registry };
        // approvals.csv is derived from the book: rebuilt here, so a crash
        // between the two writes of `save` leaves it stale only until restart.
        locks.write_approvals_csv();
        Ok(locks)
    }

    pub fn book(&self) -> &LockBook {
        &self.book
    }

    /// Changes the book: `change` works on a copy, the copy is persisted
    /// (`state/locks.json`, the one that counts), and only then does it
    /// replace the book in memory and refresh its readable copy
    /// `approvals.csv`. A failed write (or a refused change) changes nothing.
    fn update<T>(&mut self, change: impl FnOnce(&mut LockBook) -> Result<T, LockError>) -> Result<T, LockError> {
        let mut next = self.book.clone();
        let out = change(&mut next)?;
        let body = serde_json::to_vec_pretty(&next).expect("plain data");
        sifa_proto::fs::write_atomic(&self.dir, LOCKS_FILE, &body)?;
        self.book = next;
        self.write_approvals_csv();
        Ok(out)
    }

    /// `approvals.csv` beside `state/`, for `sifa query`. A failure is logged,
    /// not returned: the book is already durable, and an override or approval
    /// it records must not be reported as failed because of its copy.
    fn write_approvals_csv(&self) {
        let data_dir = self.dir.parent().unwrap_or(&self.dir);
        let path = data_dir.join(sifa_store::layout::APPROVALS_FILE);
        if self.book.approvals.0.is_empty() && !path.exists() {
            return; // absent until the first approval (docs/STORAGE.md)
        }
        let csv = self.book.approvals.to_csv();
        if std::fs::read_to_string(&path).is_ok_and(|old| old == csv) {
            return;
        }
        if let Err(e) = sifa_proto::fs::write_atomic(data_dir, sifa_store::layout::APPROVALS_FILE, csv.as_bytes()) {
            tracing::error!("cannot refresh approvals.csv (state/locks.json holds the approvals): {e}");
        }
    }

    pub fn is_locked(&self, period: Period) -> Option<&Lock> {
        let p = period.to_string();
        self.book.locks.iter().find(|l| l.period == p)
    }

    /// Locks a year ("YYYY", its twelve months) or a month ("YYYY-MM") on
    /// behalf of `by`. Returns the months locked. Persisted before it returns.
    pub fn lock(&mut self, what: &str, reason: &str, by: &str, now_ms: i64) -> Result<Vec<String>, LockError> {
        let months: Vec<Period> = if let Ok(p) = what.parse::<Period>() {
            vec![p]
        } else if let Some(first) = what.parse::<u16>().ok().filter(|_| what.len() == 4).and_then(|y| Period::new(y, 1))
        {
            (0..12).scan(first, |p, _| Some(std::mem::replace(p, p.next()))).collect()
        } else {
            return Err(LockError::Request(format!(
                "period {what:?} is neither a year YYYY nor a month YYYY-MM (e.g. \"2024\" or \"2024-03\")"
            )));
        };
        let new: Vec<Lock> = months
            .iter()
            .filter(|m| self.is_locked(**m).is_none())
            .map(|m| Lock {
                period: m.to_string(),
                reason: reason.to_string(),
                locked_by: by.to_string(),
                locked_at_ms: now_ms,
            })
            .collect();
        self.update(|book| {
            book.locks.extend(new);
            Ok(())
        })?;
        Ok(months.iter().map(Period::to_string).collect())
    }

    /// Grants, on behalf of `by`, an override admitting the next report of `unit` for `period`.
    pub fn grant_override(
        &mut self,
        unit: &str,
        period: Period,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), LockError> {
        if reason.trim().is_empty() {
            return Err(LockError::Request("an override needs a reason; it is recorded with the override".into()));
        }
        let granted = Override {
            unit_code: unit.to_string(),
            period: period.to_string(),
            reason: reason.to_string(),
            granted_by: by.to_string(),
            granted_at_ms: now_ms,
            used_by_revision: None,
            used_at_ms: None,
        };
        self.update(|book| {
            book.overrides.push(granted);
            Ok(())
        })
    }

    /// Approves `unit`'s subtree for `period` on behalf of `by`, at the tier of
    /// unit `tier`: a county tier approves its own month (and a province tier under
    /// a nation its own, which travels up to the nation); a tier above accepts
    /// an approval its county (or city) reported from below. An approval made
    /// above the tier that admits the reports would not travel down to it, so
    /// revisions forwarded from there would still arrive: refused with what to
    /// do instead. Persisted before it returns.
    pub fn approve(
        &mut self,
        period: Period,
        unit: &str,
        tier: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<ApprovalRecord, LockError> {
        // A county approves its own month; so does a province under a nation, whose approval travels up
        // to the nation as a county's travels up to its province.
        let own_month = unit == tier
            && self.registry.get(unit).is_some_and(|u| match u.kind {
                UnitKind::County => true,
                UnitKind::Province => self.registry.parent(u).is_some_and(|p| p.kind == UnitKind::Nation),
                _ => false,
            });
        if !own_month && !self.book.approvals.reported_from_below(period, unit) {
            return Err(LockError::Request(format!(
                "{unit} has reported no approval of {period} to this tier: a county approves its own month \
                 (`sifa aggregator approve` at the county's aggregator), as does a province under a nation, and \
                 a city, province or nation accepts what was reported from below, so that every tier holding the \
                 month has it closed"
            )));
        }
        self.update(|book| Ok(book.approvals.approve(period, unit, by, now_ms)))
    }

    /// Withdraws the approval in force of `unit` for `period`. Persisted before it returns.
    pub fn unapprove(
        &mut self,
        period: Period,
        unit: &str,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ApprovalRecord, LockError> {
        self.update(|book| Ok(book.approvals.withdraw(period, unit, by, reason, now_ms)?))
    }

    /// Records an approval the tier `via` below reported. Persisted before it returns.
    pub fn record_from_below(&mut self, a: &sifa_proto::v1::Approval, via: &str) -> Result<ApprovalRecord, LockError> {
        self.update(|book| Ok(book.approvals.record_from_below(a, via)))
    }

    /// Marks an approval as reported to the tier above.
    pub fn mark_reported(&mut self, sent: &ApprovalRecord) -> Result<(), LockError> {
        self.update(|book| {
            book.approvals.mark_reported(sent);
            Ok(())
        })
    }

    /// Whether a report of `unit` for `period` may be stored, or the rejection
    /// saying why not. `forwarded`: it comes from a tier below, which already
    /// admitted it past its own approvals.
    pub fn admit(&self, unit: &str, period: Period, forwarded: bool) -> Result<Admission, Rejection> {
        let p = period.to_string();
        let approvals = &self.book.approvals;
        let (rule, closed, why) = if let Some(lock) = self.is_locked(period) {
            let why = if lock.reason.is_empty() { String::new() } else { format!(" ({})", lock.reason) };
            ("period_locked", "closed", why)
        } else if let Some(a) = (!forwarded).then(|| approvals.closing(unit, period, &self.registry)).flatten() {
            let by = if a.state == ACCEPTED { &a.accepted_by } else { &a.approved_by };
            ("period_approved", "approved", format!(" for {} by {by}", a.unit_code))
        } else {
            return Ok(Admission::Open);
        };
        if let Some(i) =
            self.book.overrides.iter().position(|o| o.unit_code == unit && o.period == p && o.used_at_ms.is_none())
        {
            return Ok(Admission::ByOverride(i));
        }
        Err(Rejection::single(
            RejectionCode::FailedPrecondition,
            rule,
            format!(
                "period {p} is {closed}{why}: no new report or revision of it is accepted; \
                 ask for an override (sifa aggregator override --unit {unit} --period {p} --reason ...)"
            ),
        ))
    }

    /// Marks an override used by `revision`, persisted before the report is stored.
    pub fn use_override(&mut self, i: usize, revision: u64, now_ms: i64) -> Result<(), LockError> {
        self.update(|book| {
            let o = &mut book.overrides[i];
            o.used_by_revision = Some(revision);
            o.used_at_ms = Some(now_ms);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_overrides_and_their_record_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Locks::open(&dir.path().join("state"), Arc::new(Registry::demo())).unwrap();
        let p: Period = "2024-03".parse().unwrap();
        assert_eq!(l.admit("620982100", p, false), Ok(Admission::Open));
        assert_eq!(l.lock("2024", "annual close", "admin 62", 5).unwrap().len(), 12);
        let e = l.admit("620982100", p, false).unwrap_err();
        assert_eq!((e.code, e.problems[0].rule.as_str()), (RejectionCode::FailedPrecondition, "period_locked"));
        assert!(e.problems[0].message.contains("period 2024-03 is closed (annual close)"), "{e}");
        assert!(l.grant_override("620982100", p, " ", "admin 62", 6).is_err());
        l.grant_override("620982100", p, "late correction approved", "admin 62", 6).unwrap();
        let Ok(Admission::ByOverride(i)) = l.admit("620982100", p, false) else { panic!() };
        assert!(l.admit("620982101", p, false).is_err(), "an override is for one unit");
        l.use_override(i, 2, 7).unwrap();
        assert!(l.admit("620982100", p, false).is_err(), "an override admits one report");
        let again = Locks::open(&dir.path().join("state"), Arc::new(Registry::demo())).unwrap();
        assert_eq!(again.book(), l.book());
        assert_eq!(again.book().overrides[0].used_by_revision, Some(2));
        assert_eq!(
            (again.book().overrides[0].granted_by.as_str(), again.book().locks[0].locked_by.as_str()),
            ("admin 62", "admin 62")
        );
        assert!(l.lock("2024-3", "", "admin 62", 1).unwrap_err().to_string().contains("neither a year"));
    }

    #[test]
    fn an_approved_month_is_closed_for_its_subtree_except_by_override_or_from_below() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let mut l = Locks::open(&state, Arc::new(Registry::demo())).unwrap();
        let p: Period = "2024-03".parse().unwrap();
        l.approve(p, "620982", "620982", "admin 620982", 5).unwrap();
        let e = l.admit("620982101", p, false).unwrap_err();
        assert_eq!(e.problems[0].rule, "period_approved");
        assert!(e.problems[0].message.contains("period 2024-03 is approved for 620982 by admin 620982"), "{e}");
        assert_eq!(l.admit("620981100", p, false), Ok(Admission::Open), "another county");
        assert_eq!(l.admit("620982101", p, true), Ok(Admission::Open), "admitted below");
        l.grant_override("620982101", p, "a late correction", "admin 620982", 6).unwrap();
        assert!(matches!(l.admit("620982101", p, false), Ok(Admission::ByOverride(_))));
        let csv = std::fs::read_to_string(dir.path().join("approvals.csv")).unwrap();
        assert!(csv.contains("\n2024-03,620982,approved,admin 620982,5,"), "{csv}");
        l.unapprove(p, "620982", "admin 620982", "reopened", 7).unwrap();
        assert_eq!(l.admit("620982102", p, false), Ok(Admission::Open));
        let again = Locks::open(&state, Arc::new(Registry::demo())).unwrap();
        assert_eq!(again.book(), l.book());
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut l = Locks::open(&state, Arc::new(Registry::demo())).unwrap();
        let p: Period = "2024-03".parse().unwrap();
        l.lock("2024-01", "", "admin 620982", 1).unwrap();
        l.grant_override("620982101", p, "a late correction", "admin 620982", 2).unwrap();
        let before = l.book().clone();
        // state/locks.json can no longer be replaced (a directory of that name, even for root).
        std::fs::remove_file(state.join(LOCKS_FILE)).unwrap();
        std::fs::create_dir_all(state.join(LOCKS_FILE).join("in-the-way")).unwrap();
        assert!(matches!(l.lock("2024-03", "", "admin 620982", 3), Err(LockError::Write(_))));
        assert!(l.grant_override("620982102", p, "another", "admin 620982", 4).is_err());
        assert!(l.approve(p, "620982", "620982", "admin 620982", 5).is_err());
        assert!(l.use_override(0, 2, 6).is_err());
        assert_eq!(l.book(), &before, "nothing changed in memory");
        assert_eq!(l.is_locked(p), None, "2024-03 is not closed by a lock that was never written");
        assert_eq!(l.admit("620982101", p, false), Ok(Admission::Open));
        assert!(l.book().overrides[0].used_at_ms.is_none(), "the override is still there to use");
    }

    #[test]
    fn a_refusal_names_who_accepted_an_approval_reported_from_below() {
        let dir = tempfile::tempdir().unwrap();
        let mut city = Locks::open(&dir.path().join("state"), Arc::new(Registry::demo())).unwrap();
        let p: Period = "2024-03".parse().unwrap();
        let below = sifa_proto::v1::Approval {
            period: "2024-03".into(),
            unit_code: "620982".into(),
            state: "approved".into(),
            approved_by: "admin 620982".into(),
            approved_at_ms: 1,
            ..Default::default()
        };
        city.record_from_below(&below, "620982").unwrap();
        let e = city.approve(p, "620981", "6209", "admin 6209", 2).unwrap_err().to_string();
        assert!(e.contains("620981 has reported no approval of 2024-03"), "{e}");
        assert!(city.approve(p, "6209", "6209", "admin 6209", 2).is_err(), "a city accepts, it does not approve");
        city.approve(p, "620982", "6209", "admin 6209", 2).unwrap(); // accepted here
        assert_eq!(city.admit("620982101", p, true), Ok(Admission::Open), "admitted below");
        let e = city.admit("620982101", p, false).unwrap_err();
        // "admin 620982" sorts after "admin 6209": the one who accepted is named, not the larger string.
        assert!(e.problems[0].message.contains("by admin 6209:"), "{}", e.problems[0].message);
        assert!(dir.path().join(sifa_store::layout::APPROVALS_FILE).exists());
    }
}
