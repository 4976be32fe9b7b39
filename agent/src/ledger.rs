//! Reading an office's books: a case ledger (台账, one row per case or
//! activity) and a totals sheet (月度汇总, one row per month), from CSV in
//! UTF-8 or GBK or from .xlsx.
//!
//! A malformed row becomes a [`LedgerProblem`] naming the file, the row (as
//! Excel numbers it), the column and the value, and does not stop the rest of
//! the file from being read. Which months a problem holds back is decided by
//! `compute`.

// A file-level problem is returned at most once per file: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use calamine::{Data, Reader};
use sifa_proto::{Catalog, MetricKind, Period};

use crate::config::{Config, LedgerSource, TotalsSource};
use crate::dates::{Day, parse_day, parse_month};

/// A cell as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Date(Day),
}

impl Cell {
    pub fn is_empty(&self) -> bool {
        matches!(self, Cell::Empty) || matches!(self, Cell::Text(t) if t.trim().is_empty())
    }

    /// The cell as text, as a clerk would see it.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => t.trim().to_string(),
            Cell::Number(n) => format_number(*n),
            Cell::Date(d) => d.to_string(),
        }
    }

    /// A number: a numeric cell or a text such as "12", "1,234.5", "12人".
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Number(n) => Some(*n),
            Cell::Text(t) => {
                let t = t.trim().replace([',', '，'], "");
                let t = t.trim_end_matches(|c: char| !c.is_ascii_digit() && c != '.' && !c.is_whitespace());
                t.trim().parse::<f64>().ok().filter(|f| f.is_finite())
            }
            _ => None,
        }
    }

    pub fn day(&self) -> Option<Day> {
        match self {
            Cell::Date(d) => Some(*d),
            Cell::Number(n) => Day::from_excel_serial(*n),
            Cell::Text(t) => parse_day(t),
            Cell::Empty => None,
        }
    }

    pub fn month(&self) -> Option<Period> {
        match self {
            Cell::Date(d) => Some(d.period()),
            Cell::Number(n) if (200001.0..=209912.0).contains(n) && n.fract() == 0.0 => parse_month(&self.text()),
            Cell::Number(n) => Day::from_excel_serial(*n).map(Day::period),
            Cell::Text(t) => parse_month(t),
            Cell::Empty => None,
        }
    }
}

pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

/// One row of a table; `number` is the row number Excel shows (the header row
/// of a plain sheet is row 1).
#[derive(Debug, Clone)]
pub struct Row {
    pub number: usize,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn get(&self, col: usize) -> &Cell {
        self.cells.get(col).unwrap_or(&Cell::Empty)
    }

    fn is_blank(&self) -> bool {
        self.cells.iter().all(Cell::is_empty)
    }
}

/// A sheet: its header row and the rows below it.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub header_row: usize,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn column(&self, header: &str) -> Option<usize> {
        let h = header.trim();
        self.headers.iter().position(|x| x == h)
    }
}

/// Something wrong in a ledger file. `row` and `column` are absent when the
/// problem is with the file as a whole; `period` is the month the row belongs
/// to when its date could be read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LedgerProblem {
    pub file: String,
    pub row: Option<usize>,
    pub column: Option<String>,
    pub value: Option<String>,
    pub period: Option<String>,
    pub message: String,
}

impl LedgerProblem {
    fn file(path: &Path, message: String) -> LedgerProblem {
        LedgerProblem { file: path.display().to_string(), row: None, column: None, value: None, period: None, message }
    }

    fn cell(path: &Path, row: usize, column: &str, value: &Cell, period: Option<Period>, message: String) -> Self {
        LedgerProblem {
            file: path.display().to_string(),
            row: Some(row),
            column: Some(column.to_string()),
            value: Some(value.text()),
            period: period.map(|p| p.to_string()),
            message,
        }
    }
}

impl fmt::Display for LedgerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(r) = self.row {
            write!(f, ", row {r}")?;
        }
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(v) = &self.value {
            write!(f, " (value {v:?})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads a sheet. The header row is the first of the first ten rows that has
/// a cell equal to `key_column` (so a title row above the headers is fine).
pub fn read_table(path: &Path, sheet: Option<&str>, key_column: &str) -> Result<Table, LedgerProblem> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let rows = match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => read_workbook(path, sheet)?,
        _ => read_csv(path)?,
    };
    let key = key_column.trim();
    let Some(hi) = rows.iter().take(10).position(|r| r.cells.iter().any(|c| c.text() == key)) else {
        let first = rows.first().map(|r| r.cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "));
        return Err(LedgerProblem::file(
            path,
            format!(
                "no header row with a column {key:?} in its first rows (first row: {}); check the header or set the column name in the config",
                first.unwrap_or_else(|| "the file is empty".into())
            ),
        ));
    };
    let headers = rows[hi].cells.iter().map(Cell::text).collect();
    let header_row = rows[hi].number;
    let rows = rows.into_iter().skip(hi + 1).filter(|r| !r.is_blank()).collect();
    Ok(Table { path: path.to_path_buf(), headers, header_row, rows })
}

fn read_csv(path: &Path) -> Result<Vec<Row>, LedgerProblem> {
    let bytes = std::fs::read(path).map_err(|e| LedgerProblem::file(path, format!("cannot read the file: {e}")))?;
    let (text, _) = sifa_proto::text::decode(&bytes).map_err(|e| LedgerProblem::file(path, e.to_string()))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    // Line numbers counted here: the csv crate's own are one short after a CRLF line end.
    let bytes = text.as_bytes();
    let (mut scanned, mut line) = (0usize, 1usize);
    for rec in reader.records() {
        let rec = rec.map_err(|e| LedgerProblem::file(path, format!("not readable as CSV: {e}")))?;
        let mut start = rec.position().map_or(scanned, |p| p.byte() as usize).max(scanned);
        while start < bytes.len() && (bytes[start] == b'\r' || bytes[start] == b'\n') {
            start += 1;
        }
        line += bytes[scanned..start].iter().filter(|&&b| b == b'\n').count();
        scanned = start;
        let number = line;
        let cells =
            rec.iter().map(|s| if s.trim().is_empty() { Cell::Empty } else { Cell::Text(s.to_string()) }).collect();
        rows.push(Row { number, cells });
    }
    Ok(rows)
}

fn read_workbook(path: &Path, sheet: Option<&str>) -> Result<Vec<Row>, LedgerProblem> {
    let mut wb = calamine::open_workbook_auto(path)
        .map_err(|e| LedgerProblem::file(path, format!("cannot open the workbook: {e}")))?;
    let names = wb.sheet_names();
    let name = match sheet {
        Some(s) => names.iter().find(|n| n.as_str() == s).cloned().ok_or_else(|| {
            LedgerProblem::file(path, format!("has no worksheet {s:?}; its worksheets are: {}", names.join(", ")))
        })?,
        None => names.first().cloned().ok_or_else(|| LedgerProblem::file(path, "has no worksheet".into()))?,
    };
    let range = wb
        .worksheet_range(&name)
        .map_err(|e| LedgerProblem::file(path, format!("cannot read worksheet {name:?}: {e}")))?;
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let mut rows = Vec::new();
    for (i, r) in range.rows().enumerate() {
        let mut cells: Vec<Cell> = vec![Cell::Empty; c0 as usize];
        cells.extend(r.iter().map(|d| match d {
            Data::Empty => Cell::Empty,
            Data::Int(i) => Cell::Number(*i as f64),
            Data::Float(f) => Cell::Number(*f),
            Data::String(s) if s.trim().is_empty() => Cell::Empty,
            Data::String(s) => Cell::Text(s.clone()),
            Data::Bool(b) => Cell::Text(b.to_string()),
            Data::DateTime(dt) => {
                let (y, m, d, ..) = dt.to_ymd_hms_milli();
                Day::new(y as i64, m as i64, d as i64).map(Cell::Date).unwrap_or(Cell::Number(dt.as_f64()))
            }
            Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
            Data::Error(e) => Cell::Text(format!("#{e:?}")),
        }));
        rows.push(Row { number: r0 as usize + i + 1, cells });
    }
    Ok(rows)
}

/// Per month, per statistic: the figures read from the books.
pub type MonthValues = BTreeMap<Period, BTreeMap<String, f64>>;

/// What reading one or more files gave: figures and problems.
#[derive(Debug, Default)]
pub struct Reading {
    pub values: MonthValues,
    pub problems: Vec<LedgerProblem>,
    /// Months of rows dated after the current month (refused) or outside the configured range (ignored).
    pub ignored_rows: usize,
}

/// The months a reading may use: `first..=last`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub first: Option<Period>,
    pub last: Period,
    pub current: Period,
}

/// Reads a case ledger and adds what its rows count, per month, per the config's rules.
pub fn read_case_ledger(src: &LedgerSource, config: &Config, catalog: &Catalog, window: Window, out: &mut Reading) {
    let table = match read_table(&src.path, src.sheet.as_deref(), &src.date_column) {
        Ok(t) => t,
        Err(p) => return out.problems.push(p),
    };
    let path = &table.path;
    let date_col = table.column(&src.date_column).expect("the header row has it");
    // Resolve every column a rule names; a missing column is a problem of the whole file.
    struct Rule<'a> {
        metric: &'a str,
        conditions: Vec<(usize, Vec<&'a str>)>,
        sum: Option<(usize, &'a str)>,
    }
    let mut rules = Vec::new();
    let mut missing = BTreeSet::new();
    for r in &src.rules {
        let Some(metric) = config.rule_metric(catalog, r) else { continue };
        let mut conditions = Vec::new();
        for (col, want) in &r.conditions {
            match table.column(col) {
                Some(i) => conditions.push((i, want.values())),
                None => {
                    missing.insert((col.clone(), metric.to_string()));
                }
            }
        }
        let sum = match &r.sum {
            Some(col) => match table.column(col) {
                Some(i) => Some((i, col.as_str())),
                None => {
                    missing.insert((col.clone(), metric.to_string()));
                    None
                }
            },
            None => None,
        };
        rules.push(Rule { metric, conditions, sum });
    }
    if !missing.is_empty() {
        for (col, metric) in missing {
            out.problems.push(LedgerProblem::file(
                path,
                format!(
                    "has no column {col:?} (the mapping for {metric} needs it); its columns are: {}",
                    table.headers.join(", ")
                ),
            ));
        }
        return;
    }
    let date_header = &table.headers[date_col];
    for row in &table.rows {
        let date_cell = row.get(date_col);
        let Some(day) = date_cell.day() else {
            let msg = if date_cell.is_empty() {
                "the date is empty; write the day the case or activity happened, e.g. 2024-03-05".to_string()
            } else {
                "is not a date; write it like 2024-03-05, 2024/3/5 or 2024年3月5日".to_string()
            };
            out.problems.push(LedgerProblem::cell(path, row.number, date_header, date_cell, None, msg));
            continue;
        };
        let period = day.period();
        if period > window.current {
            // Most likely a slip of the year or month: the row belongs to some month
            // already reported, which one is unknown, so (like an unreadable date) no month.
            out.problems.push(LedgerProblem::cell(
                path,
                row.number,
                date_header,
                date_cell,
                None,
                format!("the date {day} is in the future (this month is {}); check the year and month", window.current),
            ));
            continue;
        }
        if period > window.last || window.first.is_some_and(|f| period < f) {
            out.ignored_rows += 1;
            continue;
        }
        // Work out every contribution of the row first, so a bad cell drops the whole row.
        let mut adds: Vec<(&str, f64)> = Vec::new();
        let mut bad = false;
        for rule in &rules {
            let matches = rule.conditions.iter().all(|(col, want)| {
                let t = row.get(*col).text();
                want.contains(&t.as_str())
            });
            if !matches {
                continue;
            }
            let v = match rule.sum {
                None => 1.0,
                Some((col, header)) => {
                    let cell = row.get(col);
                    match cell.number() {
                        Some(n) if n >= 0.0 => n,
                        Some(_) => {
                            out.problems.push(LedgerProblem::cell(
                                path,
                                row.number,
                                header,
                                cell,
                                Some(period),
                                format!("is negative; {} adds up this column", rule.metric),
                            ));
                            bad = true;
                            continue;
                        }
                        None => {
                            let what = if cell.is_empty() { "is empty" } else { "is not a number" };
                            out.problems.push(LedgerProblem::cell(
                                path,
                                row.number,
                                header,
                                cell,
                                Some(period),
                                format!("{what}; {} adds up this column, so write a number (e.g. 1)", rule.metric),
                            ));
                            bad = true;
                            continue;
                        }
                    }
                }
            };
            adds.push((rule.metric, v));
        }
        if bad {
            continue;
        }
        let month = out.values.entry(period).or_default();
        for (metric, v) in adds {
            *month.entry(metric.to_string()).or_insert(0.0) += v;
        }
    }
}

/// Reads a totals sheet: per month, the figures of its statistic columns.
pub fn read_totals(src: &TotalsSource, catalog: &Catalog, window: Window, out: &mut Reading) {
    let table = match read_table(&src.path, src.sheet.as_deref(), &src.period_column) {
        Ok(t) => t,
        Err(p) => return out.problems.push(p),
    };
    let path = &table.path;
    let pcol = table.column(&src.period_column).expect("the header row has it");
    let mut columns = Vec::new();
    for (i, h) in table.headers.iter().enumerate() {
        if i == pcol || src.ignore_columns.iter().any(|x| x.trim() == h) {
            continue;
        }
        match catalog.metric_for_header(h) {
            Some(m) => columns.push((i, h.as_str(), m)),
            None if h.is_empty() && table.rows.iter().all(|r| r.get(i).is_empty()) => {}
            None => out.problems.push(LedgerProblem {
                column: Some(h.clone()),
                ..LedgerProblem::file(
                    path,
                    format!(
                        "the column header {h:?} is neither a statistic's code nor its Chinese name in catalog {} (e.g. 调解成功 or disputes_resolved); correct it, or list it under ignore_columns in the config",
                        catalog.version
                    ),
                )
            }),
        }
    }
    let mut seen: BTreeMap<Period, usize> = BTreeMap::new();
    let period_header = &table.headers[pcol];
    for row in &table.rows {
        let pcell = row.get(pcol);
        let Some(period) = pcell.month() else {
            out.problems.push(LedgerProblem::cell(
                path,
                row.number,
                period_header,
                pcell,
                None,
                "is not a month; write it like 2024-03 or 2024年3月".into(),
            ));
            continue;
        };
        if let Some(first_row) = seen.insert(period, row.number) {
            out.problems.push(LedgerProblem::cell(
                path,
                row.number,
                period_header,
                pcell,
                Some(period),
                format!("month {period} appears twice (rows {first_row} and {}); keep one row per month", row.number),
            ));
            continue;
        }
        // Months after the current one are ignored: a sheet prepared for the whole year is normal.
        if period > window.current {
            out.ignored_rows += 1;
            continue;
        }
        let mut values = BTreeMap::new();
        let mut bad = false;
        for &(col, header, metric) in &columns {
            let cell = row.get(col);
            if cell.is_empty() {
                continue;
            }
            match cell.number() {
                Some(n) => {
                    values.insert(metric.code.clone(), n);
                }
                None => {
                    out.problems.push(LedgerProblem::cell(
                        path,
                        row.number,
                        header,
                        cell,
                        Some(period),
                        format!("is not a number; {} ({}) is counted in {}", metric.code, metric.name_zh, metric.unit),
                    ));
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        // Stocks before the window still matter (they carry forward); flows outside it do not.
        if window.first.is_some_and(|f| period < f) || period > window.last {
            values.retain(|code, _| catalog.metric(code).is_some_and(|m| m.kind == MetricKind::Stock));
            out.ignored_rows += 1;
        }
        // A row with the month but no figure yet (a sheet prepared ahead) says nothing of its month.
        if !values.is_empty() {
            out.values.entry(period).or_default().extend(values);
        }
    }
}
