//! The one validation library: every rule a report must satisfy, with messages
//! that name the metric, the value and the rule. The agent checks a report with
//! it before queueing; the aggregator checks again on receipt (and adds the
//! registry checks) before anything is stored.
//!
//! Rule names are stable and listed in docs/VALIDATION.md.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Metric, ValueType};
use crate::period::Period;
use crate::registry::Registry;
use crate::unit_code::UnitCode;
use crate::v1::{Ack, Report, ack};

/// Longest comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// One thing wrong with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The metric concerned; empty for problems of the report as a whole.
    pub metric: String,
    /// The stable name of the rule broken.
    pub rule: String,
    /// A sentence naming the metric, the value and the rule.
    pub message: String,
}

impl Problem {
    fn report(rule: &str, message: String) -> Problem {
        Problem { metric: String::new(), rule: rule.to_string(), message }
    }

    fn metric(metric: &str, rule: &str, message: String) -> Problem {
        Problem { metric: metric.to_string(), rule: rule.to_string(), message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.rule)
    }
}

/// What kind of rejection, and the gRPC code it travels with ([`RejectionCode::grpc`]: an Ack's
/// `code`; the aggregator's `status` module turns a unary call's rejection into that status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionCode {
    /// The report breaks a rule of the catalog or of the contract.
    InvalidArgument,
    /// Different content under a unit, period and revision already stored.
    AlreadyExists,
    /// The unit is not the sender's to report for.
    PermissionDenied,
    /// The period is closed.
    FailedPrecondition,
}

impl RejectionCode {
    pub fn grpc(self) -> tonic::Code {
        match self {
            RejectionCode::InvalidArgument => tonic::Code::InvalidArgument,
            RejectionCode::AlreadyExists => tonic::Code::AlreadyExists,
            RejectionCode::PermissionDenied => tonic::Code::PermissionDenied,
            RejectionCode::FailedPrecondition => tonic::Code::FailedPrecondition,
        }
    }
}

/// A report refused, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub problems: Vec<Problem>,
}

impl Rejection {
    pub fn new(code: RejectionCode, problems: Vec<Problem>) -> Rejection {
        Rejection { code, problems }
    }

    /// A single-problem rejection.
    pub fn single(code: RejectionCode, rule: &str, message: String) -> Rejection {
        Rejection { code, problems: vec![Problem::report(rule, message)] }
    }

    /// The acknowledgement sent on a stream.
    pub fn to_ack(&self, report: &Report) -> Ack {
        Ack {
            unit_code: report.unit_code.clone(),
            period: report.period.clone(),
            revision: report.revision,
            outcome: ack::Outcome::Rejected as i32,
            problems: self
                .problems
                .iter()
                .map(|p| crate::v1::Problem {
                    metric: p.metric.clone(),
                    rule: p.rule.clone(),
                    message: p.message.clone(),
                })
                .collect(),
            code: self.code.grpc() as i32,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "- {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// "report 620982100 2024-03 rev 2": how a report is named in messages.
pub fn report_label(r: &Report) -> String {
    format!("report {} {} rev {}", r.unit_code, r.period, r.revision)
}

/// An acknowledgement of a report that is durable at the receiver.
pub fn ack_stored(report: &Report, duplicate: bool) -> Ack {
    let outcome = if duplicate { ack::Outcome::Duplicate } else { ack::Outcome::Accepted };
    Ack {
        unit_code: report.unit_code.clone(),
        period: report.period.clone(),
        revision: report.revision,
        outcome: outcome as i32,
        problems: vec![],
        code: 0,
    }
}

/// Checks a report against the catalog and the contract: the unit code's
/// form, the period (well formed, not after `current`), the revision, and
/// every value (known metric, finite, whole where the metric is an integer,
/// within bounds) and every cross-field rule. Returns the period, or every
/// problem found.
pub fn check_report(report: &Report, catalog: &Catalog, current: Period) -> Result<Period, Rejection> {
    let mut problems = Vec::new();
    if let Err(e) = UnitCode::parse(&report.unit_code) {
        problems.push(Problem::report("unit_code", e.to_string()));
    }
    let period = match report.period.parse::<Period>() {
        Ok(p) if p > current => {
            problems.push(Problem::report(
                "future_period",
                format!("period {p} is in the future: the current month is {current}"),
            ));
            None
        }
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(Problem::report("period", e.to_string()));
            None
        }
    };
    if report.revision == 0 {
        problems.push(Problem::report("revision", "revision 0 is not allowed: revisions start at 1".into()));
    }
    if report.values.is_empty() {
        problems.push(Problem::report("empty", "the report carries no values".into()));
    }
    if let Some(c) = &report.comment {
        let n = c.chars().count();
        if n > MAX_COMMENT_CHARS {
            problems.push(Problem::report(
                "comment_too_long",
                format!("the comment has {n} characters; at most {MAX_COMMENT_CHARS} are allowed"),
            ));
        }
    }
    // Values in a stable order, so messages come out the same every time.
    let mut values: Vec<(&String, &f64)> = report.values.iter().collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    for (code, &v) in values {
        match catalog.metric(code) {
            None => problems.push(Problem::metric(
                code,
                "unknown_metric",
                format!(
                    "unknown metric {code:?} = {v}: catalog {} has no such statistic (see docs/CATALOG.md)",
                    catalog.version
                ),
            )),
            Some(m) => check_value(m, v, &mut problems),
        }
    }
    for rule in catalog.rules() {
        let (Some(&l), Some(&r)) = (report.values.get(&rule.left), report.values.get(&rule.right)) else {
            continue;
        };
        if l > r {
            let (lm, rm) =
                (catalog.metric(&rule.left).expect("checked"), catalog.metric(&rule.right).expect("checked"));
            problems.push(Problem::metric(
                &rule.left,
                &rule.name,
                format!(
                    "{} = {l} is greater than {} = {r}: {} ({})",
                    name(lm),
                    name(rm),
                    rule.description_en,
                    rule.description_zh
                ),
            ));
        }
    }
    match period {
        Some(p) if problems.is_empty() => Ok(p),
        _ => Err(Rejection::new(RejectionCode::InvalidArgument, problems)),
    }
}

fn name(m: &Metric) -> String {
    format!("{} ({})", m.code, m.name_zh)
}

fn check_value(m: &Metric, v: f64, problems: &mut Vec<Problem>) {
    if !v.is_finite() {
        problems.push(Problem::metric(&m.code, "not_finite", format!("{} = {v} is not a number", name(m))));
        return;
    }
    if m.value_type == ValueType::Integer && v.fract() != 0.0 {
        problems.push(Problem::metric(
            &m.code,
            "not_integer",
            format!("{} = {v} is not a whole number; it counts {}", name(m), m.unit),
        ));
    }
    if v < 0.0 && m.min >= 0.0 {
        problems.push(Problem::metric(&m.code, "negative", format!("{} = {v} is negative", name(m))));
    } else if v < m.min {
        problems.push(Problem::metric(&m.code, "min", format!("{} = {v} is below the minimum {}", name(m), m.min)));
    }
    if let Some(max) = m.max.filter(|&max| v > max) {
        problems.push(Problem::metric(
            &m.code,
            "max",
            format!("{} = {v} is above the maximum {max} {} for one unit's month", name(m), m.unit),
        ));
    }
}

/// Checks that the report's unit is a reporting unit of the registry lying in
/// `root`'s subtree (the receiving aggregator's, or the sending aggregator's
/// when a report is forwarded).
pub fn check_unit(report: &Report, registry: &Registry, root: &str) -> Result<(), Rejection> {
    let code = &report.unit_code;
    let Some(unit) = registry.get(code) else {
        return Err(Rejection::single(
            RejectionCode::InvalidArgument,
            "unknown_unit",
            format!("unit {code} is not in the registry; ask the province to add it"),
        ));
    };
    if !unit.kind.is_reporting() {
        return Err(Rejection::single(
            RejectionCode::InvalidArgument,
            "not_reporting_unit",
            format!("unit {code} ({}) is a {}, not a reporting unit", unit.name, unit.kind),
        ));
    }
    if !registry.is_within(code, root) {
        let root_name = registry.get(root).map(|u| u.name.as_str()).unwrap_or("?");
        return Err(Rejection::single(
            RejectionCode::PermissionDenied,
            "outside_subtree",
            format!(
                "unit {code} ({}) is not under {root} ({root_name}): reports are accepted only for units of that subtree",
                unit.name
            ),
        ));
    }
    Ok(())
}

/// A digest of what a report says (its values and its comment, not when or by
/// what it was generated): two reports with the same unit, period and
/// revision are duplicates exactly when their digests are equal.
pub fn content_digest(report: &Report) -> [u8; 32] {
    let mut values: Vec<(&String, &f64)> = report.values.iter().collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (k, v) in values {
        h.update((k.len() as u32).to_le_bytes());
        h.update(k.as_bytes());
        // +0.0 and -0.0 are the same figure.
        h.update((if *v == 0.0 { 0.0f64 } else { *v }).to_bits().to_le_bytes());
    }
    match &report.comment {
        None => h.update([0u8]),
        Some(c) => {
            h.update([1u8]);
            h.update(c.as_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin()
    }

    fn now() -> Period {
        "2024-06".parse().unwrap()
    }

    fn report(values: &[(&str, f64)]) -> Report {
        Report {
            unit_code: "620982100".into(),
            period: "2024-03".into(),
            revision: 1,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            comment: None,
            generated_at_ms: 0,
            generator: "test".into(),
        }
    }

    /// The single problem a report has.
    fn problem(r: &Report) -> Problem {
        let rej = check_report(r, &catalog(), now()).unwrap_err();
        assert_eq!(rej.code, RejectionCode::InvalidArgument);
        assert_eq!(rej.problems.len(), 1, "{rej}");
        rej.problems[0].clone()
    }

    #[test]
    fn a_good_report_passes() {
        let r = report(&[
            ("disputes_mediated", 10.0),
            ("disputes_resolved", 9.0),
            ("office_area_m2", 120.5),
            ("star_rating", 4.0),
        ]);
        assert_eq!(check_report(&r, &catalog(), now()).unwrap().to_string(), "2024-03");
        // The current month (month to date) is allowed.
        let mut cur = r.clone();
        cur.period = "2024-06".into();
        assert!(check_report(&cur, &catalog(), now()).is_ok());
    }

    #[test]
    fn unknown_metric() {
        let p = problem(&report(&[("disputes_mediatd", 3.0)]));
        assert_eq!((p.metric.as_str(), p.rule.as_str()), ("disputes_mediatd", "unknown_metric"));
        assert!(p.message.contains("unknown metric \"disputes_mediatd\" = 3"), "{}", p.message);
        assert!(p.message.contains("catalog 2024.1"), "{}", p.message);
    }

    #[test]
    fn negative_count() {
        let p = problem(&report(&[("consultations", -2.0)]));
        assert_eq!((p.metric.as_str(), p.rule.as_str()), ("consultations", "negative"));
        assert_eq!(p.message, "consultations (法律咨询) = -2 is negative");
    }

    #[test]
    fn below_minimum_and_above_maximum() {
        let p = problem(&report(&[("star_rating", 0.0)]));
        assert_eq!((p.rule.as_str(), p.message.as_str()), ("min", "star_rating (星级评定) = 0 is below the minimum 1"));
        let p = problem(&report(&[("star_rating", 6.0)]));
        assert_eq!(p.rule, "max");
        assert_eq!(p.message, "star_rating (星级评定) = 6 is above the maximum 5 星 for one unit's month");
        let p = problem(&report(&[("disputes_received", 100001.0)]));
        assert!(p.message.contains("= 100001 is above the maximum 100000 件"), "{}", p.message);
    }

    #[test]
    fn whole_numbers_for_counts_decimals_where_allowed() {
        let p = problem(&report(&[("lectures", 2.5)]));
        assert_eq!(
            (p.rule.as_str(), p.message.as_str()),
            ("not_integer", "lectures (法治讲座) = 2.5 is not a whole number; it counts 场")
        );
        assert!(check_report(&report(&[("investment_yuan", 1234.56)]), &catalog(), now()).is_ok());
        let p = problem(&report(&[("lectures", f64::NAN)]));
        assert_eq!((p.rule.as_str(), p.message.as_str()), ("not_finite", "lectures (法治讲座) = NaN is not a number"));
        let p = problem(&report(&[("lectures", f64::INFINITY)]));
        assert_eq!(p.rule, "not_finite");
    }

    #[test]
    fn cross_field_rules() {
        let p = problem(&report(&[("disputes_mediated", 10.0), ("disputes_resolved", 12.0)]));
        assert_eq!((p.metric.as_str(), p.rule.as_str()), ("disputes_resolved", "resolved_le_mediated"));
        assert_eq!(
            p.message,
            "disputes_resolved (调解成功) = 12 is greater than disputes_mediated (调解矛盾纠纷) = 10: \
             disputes resolved cannot exceed disputes mediated (调解成功数不得大于调解矛盾纠纷数)"
        );
        let p = problem(&report(&[("villages_total", 10.0), ("villages_with_adviser", 11.0)]));
        assert_eq!(p.rule, "adviser_villages_le_villages");
        assert!(
            p.message.contains("villages_with_adviser (配备法律顾问的村(社区)数) = 11 is greater than villages_total")
        );
        let p = problem(&report(&[("disputes_mediated", 1.0), ("video_mediations", 2.0)]));
        assert_eq!(p.rule, "video_le_mediated");
        // A rule is only checked when both sides are reported.
        assert!(check_report(&report(&[("disputes_resolved", 12.0)]), &catalog(), now()).is_ok());
    }

    #[test]
    fn period_rules() {
        let mut r = report(&[("lectures", 1.0)]);
        r.period = "2024-07".into();
        let p = problem(&r);
        assert_eq!(
            (p.rule.as_str(), p.message.as_str()),
            ("future_period", "period 2024-07 is in the future: the current month is 2024-06")
        );
        r.period = "2024-3".into();
        let p = problem(&r);
        assert_eq!(p.rule, "period");
        assert!(p.message.contains("\"2024-3\" is not a month written YYYY-MM"), "{}", p.message);
    }

    #[test]
    fn report_level_rules() {
        let mut r = report(&[("lectures", 1.0)]);
        r.revision = 0;
        assert_eq!(problem(&r).message, "revision 0 is not allowed: revisions start at 1");
        let p = problem(&report(&[]));
        assert_eq!((p.rule.as_str(), p.message.as_str()), ("empty", "the report carries no values"));
        let mut r = report(&[("lectures", 1.0)]);
        r.unit_code = "62098a".into();
        assert_eq!(problem(&r).message, "unit code \"62098a\" is not a division code of 2 to 12 digits");
        let mut r = report(&[("lectures", 1.0)]);
        r.comment = Some("长".repeat(MAX_COMMENT_CHARS + 1));
        assert_eq!(problem(&r).rule, "comment_too_long");
    }

    #[test]
    fn every_problem_is_listed() {
        let mut r =
            report(&[("lectures", -1.5), ("nope", 1.0), ("disputes_mediated", 1.0), ("disputes_resolved", 2.0)]);
        r.period = "2030-01".into();
        let rej = check_report(&r, &catalog(), now()).unwrap_err();
        let rules: Vec<_> = rej.problems.iter().map(|p| p.rule.as_str()).collect();
        assert_eq!(rules, ["future_period", "not_integer", "negative", "unknown_metric", "resolved_le_mediated"]);
        let text = rej.to_string();
        assert!(text.starts_with("- period 2030-01 is in the future"), "{text}");
        assert_eq!(text.lines().count(), 5);
        let ack = rej.to_ack(&r);
        assert_eq!(ack.outcome, ack::Outcome::Rejected as i32);
        assert_eq!(ack.problems.len(), 5);
        assert_eq!(ack.code, tonic::Code::InvalidArgument as i32);
    }

    #[test]
    fn unit_must_be_a_reporting_unit_in_the_subtree() {
        let reg = Registry::demo();
        let mut r = report(&[("lectures", 1.0)]);
        assert!(check_unit(&r, &reg, "620982").is_ok());
        assert!(check_unit(&r, &reg, "62").is_ok());
        let e = check_unit(&r, &reg, "620981").unwrap_err();
        assert_eq!(e.code, RejectionCode::PermissionDenied);
        assert_eq!(e.problems[0].rule, "outside_subtree");
        assert!(e.problems[0].message.contains("unit 620982100 (沙州镇司法所) is not under 620981 (玉门市)"), "{e}");
        r.unit_code = "620982".into();
        let e = check_unit(&r, &reg, "62").unwrap_err();
        assert_eq!(e.problems[0].message, "unit 620982 (敦煌市) is a county, not a reporting unit");
        r.unit_code = "620982199".into();
        let e = check_unit(&r, &reg, "62").unwrap_err();
        assert_eq!((e.code, e.problems[0].rule.as_str()), (RejectionCode::InvalidArgument, "unknown_unit"));
    }

    #[test]
    fn digest_is_about_content_only() {
        let a = report(&[("lectures", 1.0), ("consultations", 5.0)]);
        let mut b = report(&[("consultations", 5.0), ("lectures", 1.0)]);
        b.generated_at_ms = 99;
        b.generator = "other".into();
        assert_eq!(content_digest(&a), content_digest(&b));
        b.values.insert("lectures".into(), 2.0);
        assert_ne!(content_digest(&a), content_digest(&b));
        let mut c = a.clone();
        c.comment = Some(String::new());
        assert_ne!(content_digest(&a), content_digest(&c));
        let z1 = report(&[("lectures", 0.0)]);
        let z2 = report(&[("lectures", -0.0)]);
        assert_eq!(content_digest(&z1), content_digest(&z2));
    }
}
