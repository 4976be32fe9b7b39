//! From the books to monthly reports: the case ledgers' rows counted by the
//! mapping, plus the totals sheets' columns, one report per month, each
//! checked with the one validation library (`sifa_proto::validate`).
//!
//! Which months are reported: from `first_period` (default: the first month
//! the books mention) to `last_period` (default: the current month, reported
//! month-to-date). With a case ledger, every month in that range is reported
//! and every statistic the mapping counts is in it, 0 when no row counts
//! toward it (a month without a case is a month of zeros, and the current
//! month grows as rows are added). A totals sheet's flows are reported for the
//! months that have a row with figures; its stocks carry forward from the
//! latest month that gives them (a head-count stays what it was until the
//! sheet says otherwise) into every month that is reported.
//!
//! An office that keeps a totals sheet only reports exactly the months its
//! sheet has figures for: a month whose row is missing or still empty has
//! not been filled in yet, and a report of carried-forward stocks alone would
//! tell the county the month was done when it was not.
//!
//! Which months are held back: a month with a malformed row, or whose report
//! the validation refuses. A row whose date cannot be read or lies in the
//! future (a slip of the year or month), or a problem with
//! a whole file (a missing column, an unknown header), could belong to any
//! month, so it holds back every month. With `skip_bad_rows = true` malformed
//! rows are left out instead, and only whole-file problems and refused
//! reports hold months back.

use std::collections::{BTreeMap, BTreeSet};

use sifa_proto::v1::Report;
use sifa_proto::{Catalog, MetricKind, Period};

use crate::config::{Config, ConfigError};
use crate::ledger::{self, LedgerProblem, Reading, Window};

/// The generator written into every report.
pub const GENERATOR: &str = concat!("sifa-agent/", env!("CARGO_PKG_VERSION"));

/// The outcome of reading the books.
#[derive(Debug, Default)]
pub struct Collection {
    /// Reports ready to queue, oldest month first (revision not yet assigned: 0).
    pub reports: Vec<Report>,
    /// Months held back, with why.
    pub held: BTreeMap<Period, Vec<String>>,
    /// Every problem found in the files, each once.
    pub problems: Vec<LedgerProblem>,
    /// What holds nothing back but the clerk should know (rows not counted because of their date).
    pub notes: Vec<String>,
    /// What was read, one line per file (which worksheet, how many rows).
    pub sources: Vec<String>,
    /// Rows below the header of each case ledger (file → rows), to tell a ledger that lost rows.
    pub ledger_rows: BTreeMap<String, u64>,
}

/// Reads every configured file and computes the month reports as of `current`.
pub fn collect(config: &Config, catalog: &Catalog, current: Period) -> Result<Collection, ConfigError> {
    config.check_mapping(catalog)?;
    let last = config.last_period.map_or(current, |l| l.min(current));
    let window = Window { first: config.first_period, last, current };
    let mut counted = Reading::default();
    for src in &config.ledgers {
        ledger::read_case_ledger(src, config, catalog, window, &mut counted);
    }
    let mut totals = Reading::default();
    for src in &config.totals {
        ledger::read_totals(src, config, catalog, window, &mut totals);
    }
    let mut problems = counted.problems;
    problems.extend(totals.problems);
    let mut notes = counted.notes;
    notes.extend(totals.notes);
    let mut sources = counted.sources;
    sources.extend(totals.sources);
    let ledger_rows = counted.rows;

    let mapped: BTreeSet<String> = config
        .ledgers
        .iter()
        .flat_map(|l| l.rules.iter())
        .filter_map(|r| config.rule_metric(catalog, r).map(str::to_string))
        .collect();
    // A statistic both counted from rows and given in a totals sheet would be reported twice.
    let both: BTreeSet<&String> =
        totals.values.values().flat_map(|m| m.keys()).filter(|k| mapped.contains(*k)).collect();
    for code in both {
        problems.push(LedgerProblem {
            file: config.totals.iter().map(|t| t.path.display().to_string()).collect::<Vec<_>>().join(", "),
            row: None,
            column: Some(code.clone()),
            value: None,
            period: None,
            message: format!(
                "{code} is both counted from the case ledger (the mapping in {}) and given in the totals sheet; keep one of the two",
                config.path.display()
            ),
        });
    }

    // The months to report.
    let mentioned = counted.values.keys().chain(totals.values.keys()).copied().filter(|p| *p <= last);
    let Some(first) = config.first_period.or_else(|| mentioned.min()) else {
        return Ok(Collection { problems, notes, sources, ledger_rows, ..Default::default() });
    };
    let mut held: BTreeMap<Period, Vec<String>> = BTreeMap::new();
    let mut hold_all = Vec::new();
    for p in &problems {
        let whole_file = p.row.is_none();
        if !whole_file && config.skip_bad_rows {
            continue;
        }
        match p.period.as_deref().and_then(|s| s.parse::<Period>().ok()) {
            Some(period) if !whole_file => held.entry(period).or_default().push(p.to_string()),
            _ => hold_all.push(p.to_string()),
        }
    }

    let mut reports = Vec::new();
    let mut stocks: BTreeMap<String, f64> = BTreeMap::new();
    // Stocks given before the first reported month carry into it.
    for (_, v) in totals.values.range(..first) {
        for (k, x) in v {
            if catalog.metric(k).is_some_and(|m| m.kind == MetricKind::Stock) {
                stocks.insert(k.clone(), *x);
            }
        }
    }
    let generated_at_ms = sifa_proto::period::now_unix_ms();
    let now = sifa_proto::validate::Now { month: current, unix_ms: generated_at_ms };
    let mut period = first;
    while period <= last {
        let mut values: BTreeMap<String, f64> = BTreeMap::new();
        for code in &mapped {
            let v = counted.values.get(&period).and_then(|m| m.get(code)).copied().unwrap_or(0.0);
            values.insert(code.clone(), v);
        }
        if let Some(t) = totals.values.get(&period) {
            for (k, x) in t {
                match catalog.metric(k).map(|m| m.kind) {
                    Some(MetricKind::Stock) => {
                        stocks.insert(k.clone(), *x);
                    }
                    _ => {
                        values.entry(k.clone()).or_insert(*x);
                    }
                }
            }
        }
        values.extend(stocks.iter().map(|(k, v)| (k.clone(), *v)));
        let filled_in = !config.ledgers.is_empty() || totals.values.contains_key(&period);
        if filled_in && !values.is_empty() {
            let report = Report {
                unit_code: config.unit.to_string(),
                period: period.to_string(),
                revision: 0,
                values: values.into_iter().collect(),
                comment: None,
                generated_at_ms,
                generator: GENERATOR.into(),
            };
            let mut checked = report.clone();
            checked.revision = 1;
            match sifa_proto::validate::check_report(&checked, catalog, now) {
                Ok(_) => {
                    if !hold_all.is_empty() {
                        held.entry(period).or_default().extend(hold_all.iter().cloned());
                    } else if !held.contains_key(&period) {
                        reports.push(report);
                    }
                }
                Err(rejection) => {
                    let reasons = held.entry(period).or_default();
                    reasons.extend(rejection.problems.iter().map(|p| format!("{period}: {p}")));
                    reasons.extend(hold_all.iter().cloned());
                }
            }
        }
        period = period.next();
    }
    Ok(Collection { reports, held, problems, notes, sources, ledger_rows })
}
