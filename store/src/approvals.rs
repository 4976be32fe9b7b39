//! Approvals (审核): a supervisor's sign-off on a month's figures for a
//! subtree. A county approves its offices' month; the approval travels up with
//! the data (the forwarder reports it to the tier above, which records it as
//! approved by the county) and the city or province accepts it.
//!
//! At the tier that approved (or accepted) a month, the subtree's month is
//! closed like a locked one: a new report or revision of a unit under it is
//! refused unless an override admits it ([`crate::locks`]). Revisions
//! forwarded from a tier below were admitted there and are not refused again.
//!
//! Every approval, acceptance and withdrawal is kept in `state/locks.json`
//! (with the locks) and written as a plain `approvals.csv` in the data
//! directory for queries and other readers (docs/STORAGE.md).

use serde::{Deserialize, Serialize};
use sifa_proto::Period;
use sifa_proto::registry::Registry;
use sifa_proto::v1::Approval;

pub use crate::layout::APPROVALS_FILE as APPROVALS_CSV;

pub const APPROVED: &str = "approved";
pub const ACCEPTED: &str = "accepted";
pub const WITHDRAWN: &str = "withdrawn";

/// One approval as recorded at this tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub period: String,
    pub unit_code: String,
    pub state: String,
    pub approved_by: String,
    pub approved_at_ms: i64,
    #[serde(default)]
    pub accepted_by: String,
    #[serde(default)]
    pub accepted_at_ms: i64,
    /// The tier below that reported it; empty if approved here.
    #[serde(default)]
    pub via: String,
    #[serde(default)]
    pub withdrawn_by: String,
    #[serde(default)]
    pub withdrawn_at_ms: i64,
    #[serde(default)]
    pub withdraw_reason: String,
    /// Whether the tier above has been told of its current state (approvals
    /// made here only).
    #[serde(default)]
    pub reported_up: bool,
}

impl ApprovalRecord {
    pub fn in_force(&self) -> bool {
        self.state != WITHDRAWN
    }

    /// Whether it closes the subtree's month at this tier: approved here, or
    /// reported from below and accepted here.
    pub fn closes(&self) -> bool {
        self.state == ACCEPTED || (self.state == APPROVED && self.via.is_empty())
    }

    pub fn to_proto(&self) -> Approval {
        Approval {
            period: self.period.clone(),
            unit_code: self.unit_code.clone(),
            state: self.state.clone(),
            approved_by: self.approved_by.clone(),
            approved_at_ms: self.approved_at_ms,
            accepted_by: self.accepted_by.clone(),
            accepted_at_ms: self.accepted_at_ms,
            via: self.via.clone(),
            withdrawn_by: self.withdrawn_by.clone(),
            withdrawn_at_ms: self.withdrawn_at_ms,
            withdraw_reason: self.withdraw_reason.clone(),
        }
    }
}

/// Why an approval request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("{0}")]
    Request(String),
}

/// The approvals of a tier, in the order they were recorded.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approvals(pub Vec<ApprovalRecord>);

impl Approvals {
    /// The approval in force for `unit`'s own subtree and `period`, if any.
    /// Whether the tier below reported an approval of `unit`'s `period` that is in force here.
    pub fn reported_from_below(&self, period: Period, unit: &str) -> bool {
        let p = period.to_string();
        self.0.iter().any(|a| a.period == p && a.unit_code == unit && a.in_force() && !a.via.is_empty())
    }

    fn in_force_mut(&mut self, period: &str, unit: &str) -> Option<&mut ApprovalRecord> {
        self.0.iter_mut().rev().find(|a| a.period == period && a.unit_code == unit && a.in_force())
    }

    /// Approves, on behalf of `by`, `unit`'s subtree for `period`; accepts an
    /// approval reported from below for the same unit and month. Returns the record.
    pub fn approve(&mut self, period: Period, unit: &str, by: &str, now_ms: i64) -> ApprovalRecord {
        let p = period.to_string();
        if let Some(a) = self.in_force_mut(&p, unit) {
            if a.state == APPROVED && !a.via.is_empty() {
                a.state = ACCEPTED.to_string();
                a.accepted_by = by.to_string();
                a.accepted_at_ms = now_ms;
            }
            return a.clone();
        }
        let record = ApprovalRecord {
            period: p,
            unit_code: unit.to_string(),
            state: APPROVED.to_string(),
            approved_by: by.to_string(),
            approved_at_ms: now_ms,
            accepted_by: String::new(),
            accepted_at_ms: 0,
            via: String::new(),
            withdrawn_by: String::new(),
            withdrawn_at_ms: 0,
            withdraw_reason: String::new(),
            reported_up: false,
        };
        self.0.push(record.clone());
        record
    }

    /// Withdraws the approval in force for `unit` and `period`, recording who and why.
    pub fn withdraw(
        &mut self,
        period: Period,
        unit: &str,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ApprovalRecord, ApprovalError> {
        if reason.trim().is_empty() {
            return Err(ApprovalError::Request(
                "withdrawing an approval needs a reason (--reason); it is recorded with the withdrawal".into(),
            ));
        }
        let p = period.to_string();
        let Some(a) = self.in_force_mut(&p, unit) else {
            return Err(ApprovalError::Request(format!(
                "no approval of {unit} for {p} is in force at this tier; `sifa aggregator status --period {p}` shows the approvals"
            )));
        };
        a.state = WITHDRAWN.to_string();
        a.withdrawn_by = by.to_string();
        a.withdrawn_at_ms = now_ms;
        a.withdraw_reason = reason.to_string();
        a.reported_up = false;
        Ok(a.clone())
    }

    /// Records an approval (or its withdrawal) that the tier `via` below reported.
    pub fn record_from_below(&mut self, a: &Approval, via: &str) -> ApprovalRecord {
        let existing =
            self.0.iter_mut().rev().find(|r| r.period == a.period && r.unit_code == a.unit_code && r.via == via);
        match existing {
            Some(r) if r.approved_at_ms == a.approved_at_ms => {
                if a.state == WITHDRAWN && r.in_force() {
                    r.state = WITHDRAWN.to_string();
                    r.withdrawn_by = a.withdrawn_by.clone();
                    r.withdrawn_at_ms = a.withdrawn_at_ms;
                    r.withdraw_reason = a.withdraw_reason.clone();
                }
                r.clone()
            }
            _ => {
                let record = ApprovalRecord {
                    period: a.period.clone(),
                    unit_code: a.unit_code.clone(),
                    state: if a.state == WITHDRAWN { WITHDRAWN } else { APPROVED }.to_string(),
                    approved_by: a.approved_by.clone(),
                    approved_at_ms: a.approved_at_ms,
                    accepted_by: String::new(),
                    accepted_at_ms: 0,
                    via: via.to_string(),
                    withdrawn_by: a.withdrawn_by.clone(),
                    withdrawn_at_ms: a.withdrawn_at_ms,
                    withdraw_reason: a.withdraw_reason.clone(),
                    reported_up: true,
                };
                self.0.push(record.clone());
                record
            }
        }
    }

    /// The approval that closes `unit`'s `period` at this tier, if any.
    pub fn closing(&self, unit: &str, period: Period, registry: &Registry) -> Option<&ApprovalRecord> {
        let p = period.to_string();
        self.0.iter().find(|a| a.period == p && a.in_force() && a.closes() && registry.is_within(unit, &a.unit_code))
    }

    /// The approvals of `period` in force that cover `root`, lie under it or above it.
    pub fn for_period(&self, period: Period, root: &str, registry: &Registry) -> Vec<&ApprovalRecord> {
        let p = period.to_string();
        self.0
            .iter()
            .filter(|a| a.period == p && a.in_force())
            .filter(|a| registry.is_within(&a.unit_code, root) || registry.is_within(root, &a.unit_code))
            .collect()
    }

    /// Approvals made here whose current state the tier above has not been told.
    pub fn to_report_up(&self) -> Vec<ApprovalRecord> {
        self.0.iter().filter(|a| a.via.is_empty() && !a.reported_up).cloned().collect()
    }

    /// Marks `sent` as reported, if it is still in the state that was sent.
    pub fn mark_reported(&mut self, sent: &ApprovalRecord) {
        if let Some(a) = self.0.iter_mut().find(|a| {
            a.via.is_empty()
                && a.period == sent.period
                && a.unit_code == sent.unit_code
                && a.approved_at_ms == sent.approved_at_ms
        }) && a.state == sent.state
        {
            a.reported_up = true;
        }
    }

    /// `approvals.csv`: every record, one line each (docs/STORAGE.md).
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "period,unit_code,state,approved_by,approved_at_ms,accepted_by,accepted_at_ms,via,withdrawn_by,withdrawn_at_ms,withdraw_reason\n",
        );
        let field = |t: &str| {
            if t.contains([',', '"', '\n', '\r']) { format!("\"{}\"", t.replace('"', "\"\"")) } else { t.to_string() }
        };
        for a in &self.0 {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                a.period,
                a.unit_code,
                a.state,
                field(&a.approved_by),
                a.approved_at_ms,
                field(&a.accepted_by),
                a.accepted_at_ms,
                a.via,
                field(&a.withdrawn_by),
                a.withdrawn_at_ms,
                field(&a.withdraw_reason)
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approve_accept_withdraw_and_what_closes() {
        let reg = Registry::demo();
        let p: Period = "2024-03".parse().unwrap();
        // At the city: the county's approval arrives from below and does not close yet.
        let mut city = Approvals::default();
        let mut county = Approvals::default();
        let approved = county.approve(p, "620982", "admin 620982", 10);
        assert_eq!((approved.state.as_str(), approved.via.as_str()), (APPROVED, ""));
        assert!(county.closing("620982101", p, &reg).is_some());
        assert!(county.closing("620981100", p, &reg).is_none(), "another county");
        assert!(county.closing("620982101", "2024-04".parse().unwrap(), &reg).is_none(), "another month");
        assert_eq!(county.to_report_up().len(), 1);
        city.record_from_below(&approved.to_proto(), "620982");
        assert!(city.closing("620982101", p, &reg).is_none(), "reported from below: not closed here until accepted");
        let accepted = city.approve(p, "620982", "admin 6209", 20);
        assert_eq!((accepted.state.as_str(), accepted.accepted_by.as_str()), (ACCEPTED, "admin 6209"));
        assert!(city.closing("620982101", p, &reg).is_some());
        // Reported twice (a retry): recorded once.
        city.record_from_below(&approved.to_proto(), "620982");
        assert_eq!(city.0.len(), 1);
        // Withdrawn below: withdrawn above too.
        let w = county.withdraw(p, "620982", "admin 620982", "a figure was wrong", 30).unwrap();
        assert!(county.closing("620982101", p, &reg).is_none());
        assert!(
            county.withdraw(p, "620982", "admin 620982", "again", 31).unwrap_err().to_string().contains("no approval")
        );
        assert!(
            county.withdraw(p, "620982", "admin 620982", " ", 31).unwrap_err().to_string().contains("needs a reason")
        );
        city.record_from_below(&w.to_proto(), "620982");
        assert!(city.closing("620982101", p, &reg).is_none());
        let csv = city.to_csv();
        assert!(
            csv.lines().nth(1).unwrap().starts_with("2024-03,620982,withdrawn,admin 620982,10,admin 6209,20,620982,"),
            "{csv}"
        );
    }
}
