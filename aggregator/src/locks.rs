//! Period locks: a closed month accepts no new report or revision, except one
//! admitted by an explicit override. Locks and overrides (with who asked, why
//! and when, and which revision used an override) persist in
//! `state/locks.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sifa_proto::Period;
use sifa_proto::validate::{Rejection, RejectionCode};
use sifa_store::layout::LOCKS_FILE;

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

/// The lock book of a tier, kept in `state/`.
#[derive(Debug)]
pub struct Locks {
    dir: PathBuf,
    book: LockBook,
}

/// Whether a report for a period may be stored.
#[derive(Debug, PartialEq)]
pub enum Admission {
    Open,
    /// Locked, but an override admits it (index into the overrides).
    ByOverride(usize),
}

impl Locks {
    pub fn open(state_dir: &Path) -> Result<Locks, LockError> {
        let path = state_dir.join(LOCKS_FILE);
        let book = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| LockError::Parse { path, message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockBook::default(),
            Err(e) => return Err(sifa_proto::fs::FsError { action: "read", path, source: e }.into()),
        };
        Ok(Locks { dir: state_dir.to_path_buf(), book })
    }

    pub fn book(&self) -> &LockBook {
        &self.book
    }

    fn save(&self) -> Result<(), LockError> {
        let body = serde_json::to_vec_pretty(&self.book).expect("plain data");
        sifa_proto::fs::write_atomic(&self.dir, LOCKS_FILE, &body)?;
        Ok(())
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
        let mut out = Vec::new();
        for m in months {
            if self.is_locked(m).is_none() {
                self.book.locks.push(Lock {
                    period: m.to_string(),
                    reason: reason.to_string(),
                    locked_by: by.to_string(),
                    locked_at_ms: now_ms,
                });
            }
            out.push(m.to_string());
        }
        self.save()?;
        Ok(out)
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
        self.book.overrides.push(Override {
            unit_code: unit.to_string(),
            period: period.to_string(),
            reason: reason.to_string(),
            granted_by: by.to_string(),
            granted_at_ms: now_ms,
            used_by_revision: None,
            used_at_ms: None,
        });
        self.save()
    }

    /// Whether a report of `unit` for `period` may be stored, or the rejection saying why not.
    pub fn admit(&self, unit: &str, period: Period) -> Result<Admission, Rejection> {
        let Some(lock) = self.is_locked(period) else { return Ok(Admission::Open) };
        let p = period.to_string();
        if let Some(i) =
            self.book.overrides.iter().position(|o| o.unit_code == unit && o.period == p && o.used_at_ms.is_none())
        {
            return Ok(Admission::ByOverride(i));
        }
        let why = if lock.reason.is_empty() { String::new() } else { format!(" ({})", lock.reason) };
        Err(Rejection::single(
            RejectionCode::FailedPrecondition,
            "period_locked",
            format!(
                "period {p} is closed{why}: no new report or revision of it is accepted; \
                 ask the province for an override (sifa aggregator override --unit {unit} --period {p} --reason ...)"
            ),
        ))
    }

    /// Marks an override used by `revision`, persisted before the report is stored.
    pub fn use_override(&mut self, i: usize, revision: u64, now_ms: i64) -> Result<(), LockError> {
        let o = &mut self.book.overrides[i];
        o.used_by_revision = Some(revision);
        o.used_at_ms = Some(now_ms);
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_overrides_and_their_record_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Locks::open(dir.path()).unwrap();
        let p: Period = "2024-03".parse().unwrap();
        assert_eq!(l.admit("620982100", p), Ok(Admission::Open));
        assert_eq!(l.lock("2024", "annual close", "admin 62", 5).unwrap().len(), 12);
        let e = l.admit("620982100", p).unwrap_err();
        assert_eq!((e.code, e.problems[0].rule.as_str()), (RejectionCode::FailedPrecondition, "period_locked"));
        assert!(e.problems[0].message.contains("period 2024-03 is closed (annual close)"), "{e}");
        assert!(l.grant_override("620982100", p, " ", "admin 62", 6).is_err());
        l.grant_override("620982100", p, "late correction approved", "admin 62", 6).unwrap();
        let Ok(Admission::ByOverride(i)) = l.admit("620982100", p) else { panic!() };
        assert!(l.admit("620982101", p).is_err(), "an override is for one unit");
        l.use_override(i, 2, 7).unwrap();
        assert!(l.admit("620982100", p).is_err(), "an override admits one report");
        let again = Locks::open(dir.path()).unwrap();
        assert_eq!(again.book(), l.book());
        assert_eq!(again.book().overrides[0].used_by_revision, Some(2));
        assert_eq!(
            (again.book().overrides[0].granted_by.as_str(), again.book().locks[0].locked_by.as_str()),
            ("admin 62", "admin 62")
        );
        assert!(l.lock("2024-3", "", "admin 62", 1).unwrap_err().to_string().contains("neither a year"));
    }
}
