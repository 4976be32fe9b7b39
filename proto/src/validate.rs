//! The one validation library: every rule a report must satisfy, with messages
//! that name the metric, the value and the rule. The agent checks a report with
//! it before queueing; the aggregator checks again on receipt (and adds the
//! registry checks) before anything is stored.
//!
//! Rule names are stable and listed in docs/VALIDATION.md.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Metric, ValueType};
use crate::period::{Period, format_cst, now_unix_ms};
use crate::registry::Registry;
use crate::unit_code::UnitCode;
use crate::v1::{Ack, Provenance, Report, ack};

/// Longest comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// Longest `generator` accepted, in characters ("sifa-agent/0.1.0" and the like).
pub const MAX_GENERATOR_CHARS: usize = 200;

/// The highest revision accepted: the largest the store's `revision` column (Int64) holds, so the
/// revision acknowledged is the revision stored and in force.
pub const MAX_REVISION: u64 = i64::MAX as u64;

/// The earliest time a report or its provenance may carry: 2000-01-01 00:00 China Standard Time,
/// the start of the first month a period may name.
pub const EARLIEST_TIME_MS: i64 = 946_656_000_000;

/// How far past the checking computer's clock a time may lie: a day, for clocks set wrong by hours
/// or a time zone. With [`EARLIEST_TIME_MS`] this is the window of every time a report carries.
pub const CLOCK_SKEW_MS: i64 = 86_400_000;

/// The largest magnitude of an integer metric: whole numbers up to 2^53 are exact in the wire's
/// double and fit the store's Int64 column.
pub const MAX_WHOLE: f64 = 9_007_199_254_740_992.0;

/// Longest text taken from a request (a unit code, a period, a metric code) that a message repeats;
/// longer ones are cut and their length said.
pub const MAX_ECHO_CHARS: usize = 40;

/// The most problems an Ack carries; the rest are counted in one last problem (rule `more_problems`).
pub const MAX_ACK_PROBLEMS: usize = 100;

/// The longest text of a rejection ([`Rejection`]'s `Display`, the message of a unary call's status),
/// in bytes: the first problems that fit and a count of the rest. gRPC sends a status message as
/// percent-encoded metadata (at most 3 bytes per byte), and clients cap metadata at 8 KiB (grpc-java)
/// or 16 KiB (hyper): 2 KiB stays well within both.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// The clock a check reads: the current month (no period after it) and the time (no time more than
/// [`CLOCK_SKEW_MS`] after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub month: Period,
    pub unix_ms: i64,
}

impl Now {
    /// The computer's clock.
    pub fn system() -> Now {
        Now::at(now_unix_ms())
    }

    /// The clock at `unix_ms`, its month in China Standard Time.
    pub fn at(unix_ms: i64) -> Now {
        Now { month: Period::containing_unix_ms(unix_ms), unix_ms }
    }

    /// The latest time a report may carry.
    pub fn latest_ms(self) -> i64 {
        self.unix_ms.saturating_add(CLOCK_SKEW_MS)
    }
}

/// `text` as a message repeats it: whole when short, else its first [`MAX_ECHO_CHARS`] characters
/// and its length.
pub fn echo(text: &str) -> String {
    let n = text.chars().count();
    if n <= MAX_ECHO_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_ECHO_CHARS).collect();
    format!("{head}… ({n} characters)")
}

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
        Problem { metric: echo(metric), rule: rule.to_string(), message }
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
            problems: self.ack_problems(),
            code: self.code.grpc() as i32,
        }
    }
}

impl Rejection {
    /// The problems one per line, as many as fit in `max_bytes` with a last line counting the rest
    /// (the first problem always, cut to fit if it alone is too long).
    pub fn summary(&self, max_bytes: usize) -> String {
        let total = self.problems.len();
        let more = |rest: usize| format!("- … and {rest} more problem{} ({total} in all)", plural(rest));
        let mut lines: Vec<String> = Vec::new();
        let mut used = 0;
        for (i, p) in self.problems.iter().enumerate() {
            let line = format!("- {p}");
            let after = total - i - 1;
            let reserve = if after > 0 { more(after).len() + 1 } else { 0 };
            let sep = usize::from(!lines.is_empty());
            if used + sep + line.len() + reserve <= max_bytes {
                used += sep + line.len();
                lines.push(line);
                continue;
            }
            if lines.is_empty() {
                let room = max_bytes.saturating_sub(reserve + "…".len());
                lines.push(format!("{}…", cut(&line, room)));
                if after > 0 {
                    lines.push(more(after));
                }
            } else {
                lines.push(more(total - i));
            }
            break;
        }
        lines.join("\n")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The longest start of `s` of at most `max_bytes` bytes that ends on a character boundary.
fn cut(s: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The problems as [`Rejection::summary`] within [`MAX_MESSAGE_BYTES`].
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary(MAX_MESSAGE_BYTES))
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// The first [`MAX_ACK_PROBLEMS`] problems, then one counting the rest (rule `more_problems`).
    fn ack_problems(&self) -> Vec<crate::v1::Problem> {
        let proto = |p: &Problem| crate::v1::Problem {
            metric: p.metric.clone(),
            rule: p.rule.clone(),
            message: p.message.clone(),
        };
        let mut out: Vec<_> = self.problems.iter().take(MAX_ACK_PROBLEMS).map(proto).collect();
        let rest = self.problems.len().saturating_sub(MAX_ACK_PROBLEMS);
        if rest > 0 {
            out.push(proto(&Problem::report(
                "more_problems",
                format!("… and {rest} more problem{} ({} in all)", plural(rest), self.problems.len()),
            )));
        }
        out
    }
}

/// "report 620982100 2024-03 rev 2": how a report is named in messages (long codes cut, [`echo`]).
pub fn report_label(r: &Report) -> String {
    format!("report {} {} rev {}", echo(&r.unit_code), echo(&r.period), r.revision)
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
/// form, the period (well formed, not after `now`'s month), the revision (1 to
/// [`MAX_REVISION`]), the generation time (within [`check_time`]'s window), the
/// generator's and the comment's lengths, and every value (known metric,
/// finite, whole where the metric is an integer, within bounds) and every
/// cross-field rule. Returns the period, or every problem found: whatever
/// passes is stored exactly as sent and read back so by every Parquet reader.
pub fn check_report(report: &Report, catalog: &Catalog, now: Now) -> Result<Period, Rejection> {
    let current = now.month;
    let mut problems = Vec::new();
    if UnitCode::parse(&report.unit_code).is_err() {
        problems.push(Problem::report(
            "unit_code",
            format!("unit code {:?} is not a division code of 2 to 12 digits", echo(&report.unit_code)),
        ));
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
        Err(_) if report.period.chars().count() > MAX_ECHO_CHARS => {
            problems.push(Problem::report(
                "period",
                format!("period {:?} is not a month written YYYY-MM (e.g. \"2024-03\")", echo(&report.period)),
            ));
            None
        }
        Err(e) => {
            problems.push(Problem::report("period", e.to_string()));
            None
        }
    };
    if report.revision == 0 {
        problems.push(Problem::report("revision", "revision 0 is not allowed: revisions start at 1".into()));
    } else if report.revision > MAX_REVISION {
        problems.push(Problem::report(
            "revision",
            format!(
                "revision {} is above the highest allowed, {MAX_REVISION} (the store keeps a revision as a \
                 64-bit signed integer); number revisions 1, 2, 3, …",
                report.revision
            ),
        ));
    }
    problems.extend(check_time("generated_at", "generated_at_ms", report.generated_at_ms, now));
    let n = report.generator.chars().count();
    if n > MAX_GENERATOR_CHARS {
        problems.push(Problem::report(
            "generator_too_long",
            format!("the generator has {n} characters; at most {MAX_GENERATOR_CHARS} are allowed"),
        ));
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
                    "unknown metric {:?} = {v}: catalog {} has no such statistic (see docs/CATALOG.md)",
                    echo(code),
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
        let (Some(lm), Some(rm)) = (catalog.metric(&rule.left), catalog.metric(&rule.right)) else {
            continue;
        };
        if l > r {
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

/// A time a report carries (`field`, Unix milliseconds) within the window every reader of the store
/// can read: from [`EARLIEST_TIME_MS`] to [`CLOCK_SKEW_MS`] after `now`. Broken: rule `rule`.
pub fn check_time(rule: &str, field: &str, unix_ms: i64, now: Now) -> Option<Problem> {
    if (EARLIEST_TIME_MS..=now.latest_ms()).contains(&unix_ms) {
        return None;
    }
    Some(Problem::report(
        rule,
        format!(
            "{field} = {unix_ms} is not a time from {} to {} (China Standard Time: from 2000 to a day past \
             this computer's clock); check the clock of the computer that set it",
            format_cst(EARLIEST_TIME_MS),
            format_cst(now.latest_ms())
        ),
    ))
}

/// Checks a forwarded report's provenance: the time the first tier made it durable lies within
/// [`check_time`]'s window (rule `received_at`). Who may name which tier is authorization's.
pub fn check_provenance(provenance: &Provenance, now: Now) -> Result<(), Rejection> {
    match check_time("received_at", "provenance received_at_ms", provenance.received_at_ms, now) {
        None => Ok(()),
        Some(p) => Err(Rejection::new(RejectionCode::InvalidArgument, vec![p])),
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
    } else if m.value_type == ValueType::Integer && v < -MAX_WHOLE {
        problems.push(Problem::metric(
            &m.code,
            "min",
            format!("{} = {v} is below -2^53, the least whole number the store keeps exactly", name(m)),
        ));
    }
    if let Some(max) = m.max.filter(|&max| v > max) {
        problems.push(Problem::metric(
            &m.code,
            "max",
            format!("{} = {v} is above the maximum {max} {} for one unit's month", name(m), m.unit),
        ));
    } else if m.value_type == ValueType::Integer && v > MAX_WHOLE {
        problems.push(Problem::metric(
            &m.code,
            "max",
            format!("{} = {v} is above 2^53, the largest whole number the store keeps exactly", name(m)),
        ));
    }
}

/// Checks that the report's unit is a reporting unit of the registry lying in
/// `root`'s subtree (the receiving aggregator's, or the sending aggregator's
/// when a report is forwarded).
pub fn check_unit(report: &Report, registry: &Registry, root: &str) -> Result<(), Rejection> {
    let code = &report.unit_code;
    let Some(unit) = registry.get(code) else {
        let code = echo(code);
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

    /// 2024-06-15 00:00 UTC.
    const NOW_MS: i64 = 1_718_409_600_000;

    fn now() -> Now {
        Now::at(NOW_MS)
    }

    fn report(values: &[(&str, f64)]) -> Report {
        Report {
            unit_code: "620982100".into(),
            period: "2024-03".into(),
            revision: 1,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            comment: None,
            generated_at_ms: NOW_MS - 3_600_000,
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
    fn times_lie_in_the_window_every_reader_can_read() {
        let ok = report(&[("lectures", 1.0)]);
        for t in [EARLIEST_TIME_MS, NOW_MS + CLOCK_SKEW_MS] {
            let r = Report { generated_at_ms: t, ..ok.clone() };
            assert!(check_report(&r, &catalog(), now()).is_ok(), "{t}");
        }
        for t in [i64::MIN, -1, 0, EARLIEST_TIME_MS - 1, NOW_MS + CLOCK_SKEW_MS + 1, i64::MAX] {
            let p = problem(&Report { generated_at_ms: t, ..ok.clone() });
            assert_eq!(p.rule, "generated_at");
            assert_eq!(
                p.message,
                format!(
                    "generated_at_ms = {t} is not a time from 2000-01-01 00:00 to 2024-06-16 08:00 (China Standard \
                     Time: from 2000 to a day past this computer's clock); check the clock of the computer that set it"
                )
            );
        }
        let prov = |t| Provenance { first_accepted_by: "620982".into(), received_at_ms: t };
        assert!(check_provenance(&prov(NOW_MS), now()).is_ok());
        let e = check_provenance(&prov(i64::MAX), now()).unwrap_err();
        assert_eq!((e.code, e.problems[0].rule.as_str()), (RejectionCode::InvalidArgument, "received_at"));
        assert!(e.problems[0].message.starts_with("provenance received_at_ms = 9223372036854775807 is not"));
    }

    #[test]
    fn revision_generator_and_values_fit_the_store() {
        let ok = report(&[("lectures", 1.0)]);
        assert!(check_report(&Report { revision: MAX_REVISION, ..ok.clone() }, &catalog(), now()).is_ok());
        let p = problem(&Report { revision: 1 << 63, ..ok.clone() });
        assert_eq!(p.rule, "revision");
        assert!(
            p.message.starts_with("revision 9223372036854775808 is above the highest allowed, 9223372036854775807")
        );
        let long = Report { generator: "长".repeat(MAX_GENERATOR_CHARS), ..ok.clone() };
        assert!(check_report(&long, &catalog(), now()).is_ok());
        let p = problem(&Report { generator: "长".repeat(MAX_GENERATOR_CHARS + 1), ..ok.clone() });
        assert_eq!(
            (p.rule.as_str(), p.message.as_str()),
            ("generator_too_long", "the generator has 201 characters; at most 200 are allowed")
        );
        // An integer metric of a catalog without a maximum still fits Int64 exactly.
        let mut m = catalog().metric("lectures").unwrap().clone();
        m.max = None;
        let mut problems = Vec::new();
        check_value(&m, MAX_WHOLE, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        check_value(&m, 1e19, &mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].message,
            "lectures (法治讲座) = 10000000000000000000 is above 2^53, the largest whole number the store keeps exactly"
        );
    }

    #[test]
    fn text_from_the_request_is_echoed_cut() {
        let mut r = report(&[("lectures", 1.0)]);
        r.unit_code = "9".repeat(100_000);
        r.period = "x".repeat(100_000);
        r.values.insert("m".repeat(100_000), 1.0);
        let rej = check_report(&r, &catalog(), now()).unwrap_err();
        let rules: Vec<_> = rej.problems.iter().map(|p| p.rule.as_str()).collect();
        assert_eq!(rules, ["unit_code", "period", "unknown_metric"]);
        for p in &rej.problems {
            assert!(p.message.len() < 300 && p.metric.len() < 100, "{p:?}");
            assert!(p.message.contains("… (100000 characters)"), "{}", p.message);
        }
        let label = report_label(&r);
        assert!(label.len() < 150 && label.contains("… (100000 characters)"), "{label}");
    }

    #[test]
    fn a_rejection_with_thousands_of_problems_is_told_in_bounded_text() {
        let mut r = report(&[]);
        for i in 0..5000 {
            r.values.insert(format!("unknown_{i:05}"), 1.0);
        }
        let rej = check_report(&r, &catalog(), now()).unwrap_err();
        assert_eq!(rej.problems.len(), 5000);
        let text = rej.to_string();
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{}", text.len());
        let last = text.lines().last().unwrap();
        let listed = text.lines().count() - 1;
        assert_eq!(last, format!("- … and {} more problems (5000 in all)", 5000 - listed));
        assert!(text.starts_with("- unknown metric \"unknown_00000\" = 1"), "{text}");
        let ack = rej.to_ack(&r);
        assert_eq!(ack.problems.len(), MAX_ACK_PROBLEMS + 1);
        let more = ack.problems.last().unwrap();
        assert_eq!(
            (more.rule.as_str(), more.message.as_str()),
            ("more_problems", "… and 4900 more problems (5000 in all)")
        );
        // A single problem longer than the bound is cut, and said to be.
        let one = Rejection::single(RejectionCode::InvalidArgument, "x", "长".repeat(5000));
        let text = one.summary(100);
        assert!(text.len() <= 100 && text.ends_with('…'), "{text}");
        let two =
            Rejection::new(RejectionCode::InvalidArgument, vec![one.problems[0].clone(), one.problems[0].clone()]);
        let text = two.summary(200);
        assert!(text.len() <= 200 && text.ends_with("- … and 1 more problem (2 in all)"), "{text}");
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
