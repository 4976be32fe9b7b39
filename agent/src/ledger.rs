//! Reading an office's books into monthly figures: a case ledger (台账, one
//! row per case or activity) and a totals sheet (月度汇总, one row per month),
//! from CSV (`csv_sheet`) or a workbook (`workbook`), one row at a time: only
//! the per-month figures are kept, never the file's rows.
//!
//! A malformed row becomes a [`LedgerProblem`] naming the file, the row (as
//! Excel numbers it), the column and the value, and does not stop the rest of
//! the file from being read. Which months a problem holds back is decided by
//! `compute`. A file that changes while it is read is read again; a column
//! the config reads that is headed twice refuses the file.

// A file-level problem is returned at most once per file: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use sifa_proto::{Catalog, Metric, MetricKind, Period, ValueType};

use crate::config::{Config, LedgerSource, TotalsSource};
use crate::dates::{Day, parse_day, parse_month};
use crate::workbook::column_letters;

/// A cell as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Date(Day),
    /// Bytes that are text in neither the file's encoding nor any other it could be (their first bytes in hex).
    Undecodable(String),
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
            Cell::Undecodable(hex) => format!("bytes {hex}"),
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
            Cell::Empty | Cell::Undecodable(_) => None,
        }
    }

    pub fn month(&self) -> Option<Period> {
        match self {
            Cell::Date(d) => Some(d.period()),
            Cell::Number(n) if (200001.0..=209912.0).contains(n) && n.fract() == 0.0 => parse_month(&self.text()),
            Cell::Number(n) => Day::from_excel_serial(*n).map(Day::period),
            Cell::Text(t) => parse_month(t),
            Cell::Empty | Cell::Undecodable(_) => None,
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

    /// A problem for the first cell of the row whose bytes are not text; it
    /// holds back `period`, the row's month when its date or month can be read.
    fn undecodable(&self, header: &Header, period: Option<Period>) -> Option<LedgerProblem> {
        let col = self.cells.iter().position(|c| matches!(c, Cell::Undecodable(_)))?;
        let name = header.headers.get(col).filter(|h| !h.is_empty()).cloned().unwrap_or_else(|| column_letters(col));
        Some(LedgerProblem::cell(
            &header.path,
            self.number,
            &name,
            &self.cells[col],
            period,
            "holds bytes that are neither UTF-8 nor GBK text (a damaged file, or text pasted in from another program); retype the cell, or open the file in Excel and save it again as \"CSV UTF-8\"".into(),
        ))
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
    pub(crate) fn file(path: &Path, message: String) -> LedgerProblem {
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

/// The header row of a sheet, found by [`read_table`].
#[derive(Debug, Clone)]
pub struct Header {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub header_row: usize,
}

impl Header {
    /// The column headed `header`; a problem naming both columns when two have that header
    /// (which one a reader takes is arbitrary, and the other's values would be ignored unseen).
    pub fn column(&self, header: &str) -> Result<Option<usize>, LedgerProblem> {
        let h = header.trim();
        let mut found = self.headers.iter().enumerate().filter(|(_, x)| *x == h).map(|(i, _)| i);
        let first = found.next();
        if let (Some(a), Some(b)) = (first, found.next()) {
            return Err(LedgerProblem {
                column: Some(h.to_string()),
                ..LedgerProblem::file(
                    &self.path,
                    format!(
                        "columns {} and {} are both headed {h:?} (row {}), and the config reads {h:?}: rename or delete one of them",
                        column_letters(a),
                        column_letters(b),
                        self.header_row
                    ),
                )
            });
        }
        Ok(first)
    }
}

/// How much one ledger file may be or expand to (`max_ledger_mb` in the config).
#[derive(Debug, Clone, Copy)]
pub struct SheetLimits {
    pub max_bytes: u64,
}

impl SheetLimits {
    pub const DEFAULT_MB: u64 = 256;

    pub fn from_mb(mb: u64) -> SheetLimits {
        SheetLimits { max_bytes: mb.saturating_mul(1 << 20) }
    }

    /// The refusal of a file that `is` (or "expands to") `bytes`, over the limit.
    pub fn refusal(&self, path: &Path, bytes: u64, is: &str) -> LedgerProblem {
        LedgerProblem::file(
            path,
            format!(
                "{is} {} MB, more than the {} MB one ledger may take (max_ledger_mb in the agent's config); a ledger this large is not an office's book (a damaged file or a zip bomb?) — check the file, or raise max_ledger_mb if it is genuine",
                bytes.div_ceil(1 << 20),
                self.max_bytes >> 20
            ),
        )
    }
}

/// Rows searched for the header row.
const HEADER_SEARCH_ROWS: usize = 10;

/// Reads a sheet, streaming: the header row is the first of the first ten
/// rows that has a cell equal to `key_column` (so a title row above the
/// headers is fine); each non-blank row below it goes to `visit`, until
/// `visit` returns false. Returns the header and, for a workbook, the
/// worksheet read.
pub fn read_table(
    path: &Path,
    sheet: Option<&str>,
    key_column: &str,
    limits: &SheetLimits,
    visit: &mut dyn FnMut(&Header, Row) -> bool,
) -> Result<(Header, Option<String>), LedgerProblem> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let key = key_column.trim();
    let mut header: Option<Header> = None;
    let mut first_row: Option<String> = None;
    let mut searched = 0;
    let mut on_row = |row: Row| -> bool {
        if let Some(h) = &header {
            return row.is_blank() || visit(h, row);
        }
        if first_row.is_none() {
            first_row = Some(row.cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "));
        }
        searched += 1;
        if row.cells.iter().any(|c| c.text() == key) {
            header = Some(Header {
                path: path.to_path_buf(),
                headers: row.cells.iter().map(Cell::text).collect(),
                header_row: row.number,
            });
        }
        header.is_some() || searched < HEADER_SEARCH_ROWS
    };
    let sheet_read = match ext.as_str() {
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => Some(crate::workbook::read(path, sheet, limits, &mut on_row)?),
        _ => {
            crate::csv_sheet::read(path, limits, &mut on_row)?;
            None
        }
    };
    let in_sheet = sheet_read.as_ref().map(|s| format!("worksheet {s:?}: ")).unwrap_or_default();
    match header {
        Some(h) => Ok((h, sheet_read)),
        None => Err(LedgerProblem::file(
            path,
            format!(
                "{in_sheet}no header row with a column {key:?} in its first rows (first row: {}); check the header or set the column name in the config",
                first_row.unwrap_or_else(|| "the file is empty".into())
            ),
        )),
    }
}

/// The file's size and time of last change, to tell whether it changed while it was read.
fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)))
}

/// Times a file that changes while it is read is read again.
const READ_ATTEMPTS: usize = 3;

/// Runs `read` until the file stays the same from its start to its end (a
/// clerk saving the book, or a sync tool copying it in, while the agent
/// reads it), at most [`READ_ATTEMPTS`] times.
fn read_unchanging<T>(path: &Path, mut read: impl FnMut() -> T) -> Result<T, LedgerProblem> {
    for attempt in 1..=READ_ATTEMPTS {
        let before = stamp(path);
        let result = read();
        if stamp(path) == before {
            return Ok(result);
        }
        tracing::info!("{} changed while it was read (attempt {attempt}); reading it again", path.display());
        std::thread::sleep(std::time::Duration::from_millis(300 * attempt as u64));
    }
    Err(LedgerProblem::file(
        path,
        format!(
            "changed while it was read, {READ_ATTEMPTS} times in a row (is it being saved, or copied in by a sync tool?); nothing from it was used — run again once it is closed"
        ),
    ))
}

/// Per month, per statistic: the figures read from the books.
pub type MonthValues = BTreeMap<Period, BTreeMap<String, f64>>;

/// What reading one or more files gave: figures and problems.
#[derive(Debug, Default)]
pub struct Reading {
    pub values: MonthValues,
    pub problems: Vec<LedgerProblem>,
    /// What holds nothing back but the clerk should know (rows not counted because of their date).
    pub notes: Vec<String>,
    /// What was read, one line per file: "台账.xlsx, worksheet \"台账\": 1234 rows".
    pub sources: Vec<String>,
    /// Rows below the header of each case ledger read (file → rows), to tell a ledger that lost rows.
    pub rows: BTreeMap<String, u64>,
}

impl Reading {
    fn merge(&mut self, other: Reading) {
        for (period, values) in other.values {
            let month = self.values.entry(period).or_default();
            for (k, v) in values {
                *month.entry(k).or_insert(0.0) += v;
            }
        }
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
        self.sources.extend(other.sources);
        self.rows.extend(other.rows);
    }
}

/// The months a reading may use: `first..=last`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub first: Option<Period>,
    pub last: Period,
    pub current: Period,
}

/// Problems of one file kept in full at most; past that, only one for each
/// month not yet named (so every month with a problem is still held back).
const PROBLEMS_KEPT: usize = 200;
/// Rows named in the note on rows outside the months reported.
const ROWS_NAMED: usize = 5;
/// A year with under 1 in this many of a ledger's rows, next to no bigger year, is a slip of the year.
const STRAY_YEAR_SHARE: u64 = 20;

/// The reading of one file, bounded however many rows are bad.
struct FileReading {
    reading: Reading,
    months_named: BTreeSet<Option<String>>,
    more_problems: usize,
    outside: Vec<String>,
    outside_count: usize,
    data_rows: u64,
    /// Rows counted per year, with the first few named: a year of a stray row or two is a slip.
    years: BTreeMap<u16, (u64, Vec<String>)>,
}

impl FileReading {
    fn new() -> FileReading {
        FileReading {
            reading: Reading::default(),
            months_named: BTreeSet::new(),
            more_problems: 0,
            outside: Vec::new(),
            outside_count: 0,
            data_rows: 0,
            years: BTreeMap::new(),
        }
    }

    fn problem(&mut self, p: LedgerProblem) {
        let month = p.period.clone();
        if self.reading.problems.len() < PROBLEMS_KEPT || !self.months_named.contains(&month) {
            self.months_named.insert(month);
            self.reading.problems.push(p);
        } else {
            self.more_problems += 1;
        }
    }

    /// A row dated outside the months reported: not counted, and said so.
    fn outside(&mut self, row: usize, day: Day) {
        self.outside_count += 1;
        if self.outside.len() < ROWS_NAMED {
            self.outside.push(format!("row {row} ({day})"));
        }
    }

    /// A row counted in `day`'s month.
    fn counted(&mut self, row: usize, day: Day) {
        let (n, named) = self.years.entry(day.year).or_default();
        *n += 1;
        if named.len() < ROWS_NAMED {
            named.push(format!("row {row} ({day})"));
        }
    }

    /// Without `first_period`, the first month reported is the ledger's
    /// earliest: a row whose year is a slip (2014 for 2024) would report ten
    /// years of empty months. A year holding under 1 in [`STRAY_YEAR_SHARE`] of
    /// the rows, next to no year with more, is such a slip: its rows are not
    /// counted, and a note names them.
    fn leave_out_stray_years(&mut self, path: &Path) {
        let total: u64 = self.years.values().map(|(n, _)| n).sum();
        let big = |y: u16| self.years.get(&y).is_some_and(|(n, _)| n * STRAY_YEAR_SHARE >= total);
        let stray: Vec<u16> =
            self.years.keys().copied().filter(|&y| !big(y) && !big(y.wrapping_sub(1)) && !big(y + 1)).collect();
        for year in stray {
            let (n, named) = self.years.remove(&year).unwrap_or_default();
            self.reading.values.retain(|p, _| p.year() != year);
            self.reading.notes.push(format!(
                "{}: {n} row(s) dated in {year}, far from the ledger's other rows, are not counted: {}; correct their year, or set first_period in the config if the ledger really goes back to {year}",
                path.display(),
                named.join(", ")
            ));
        }
    }

    fn finish(mut self, path: &Path, sheet: Option<&str>, window: Window, what: &str) -> Reading {
        if window.first.is_none() {
            self.leave_out_stray_years(path);
        }
        let file = path.display();
        if self.more_problems > 0 {
            self.reading.notes.push(format!(
                "{file}: {} more problem(s) like those listed, in months already held back",
                self.more_problems
            ));
        }
        if self.outside_count > 0 {
            let more = self.outside_count - self.outside.len();
            let range = match window.first {
                Some(f) => format!("{f} to {}", window.last),
                None => format!("up to {}", window.last),
            };
            self.reading.notes.push(format!(
                "{file}: {} row(s) dated outside the months reported ({range}) are not counted: {}{}; if one belongs to this ledger, correct its year (or first_period / last_period in the config)",
                self.outside_count,
                self.outside.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ));
        }
        let sheet = sheet.map(|s| format!(", worksheet {s:?}")).unwrap_or_default();
        self.reading.sources.push(format!("{file}{sheet}: {} {what}", self.data_rows));
        self.reading
    }
}

/// Reads a case ledger and adds what its rows count, per month, per the config's rules.
pub fn read_case_ledger(src: &LedgerSource, config: &Config, catalog: &Catalog, window: Window, out: &mut Reading) {
    let limits = SheetLimits::from_mb(config.max_ledger_mb);
    match read_unchanging(&src.path, || read_case_ledger_once(src, config, catalog, window, &limits)) {
        Ok(Ok(reading)) => out.merge(reading),
        Ok(Err(p)) | Err(p) => out.problems.push(p),
    }
}

/// A rule of the mapping with its columns found in the header.
struct Rule<'a> {
    metric: &'a str,
    /// The unit when the statistic counts whole things (件, 人次): a fraction is then a slip.
    whole: Option<&'a str>,
    conditions: Vec<(usize, Vec<&'a str>)>,
    sum: Option<(usize, &'a str)>,
}

/// The date column and the rules, their columns found; `None` (the problems
/// recorded) when a column is missing or headed twice.
fn resolve_rules<'a>(
    header: &Header,
    src: &'a LedgerSource,
    config: &Config,
    catalog: &'a Catalog,
    file: &mut FileReading,
) -> Option<(usize, Vec<Rule<'a>>)> {
    let mut bad = false;
    let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut duplicated = BTreeSet::new();
    let mut find = |col: &'a str, metric: &'a str, file: &mut FileReading| match header.column(col) {
        Ok(Some(i)) => Some(i),
        Ok(None) => {
            missing.entry(col).or_default().push(metric);
            None
        }
        Err(p) => {
            if duplicated.insert(col) {
                file.problem(p);
            }
            None
        }
    };
    let date_col = find(&src.date_column, "the date", file);
    let mut rules = Vec::new();
    for r in &src.rules {
        let Some(metric) = config.rule_metric(catalog, r) else { continue };
        let whole = catalog.metric(metric).filter(|m| m.value_type == ValueType::Integer).map(|m| m.unit.as_str());
        let mut conditions = Vec::new();
        for (col, want) in &r.conditions {
            match find(col, metric, file) {
                Some(i) => conditions.push((i, want.values())),
                None => bad = true,
            }
        }
        let sum = match &r.sum {
            Some(col) => match find(col, metric, file) {
                Some(i) => Some((i, col.as_str())),
                None => {
                    bad = true;
                    None
                }
            },
            None => None,
        };
        rules.push(Rule { metric, whole, conditions, sum });
    }
    for (col, metrics) in missing {
        file.problem(LedgerProblem::file(
            &header.path,
            format!(
                "has no column {col:?} (the mapping for {} needs it); its columns are: {}",
                metrics.join(", "),
                header.headers.join(", ")
            ),
        ));
    }
    match date_col {
        Some(d) if !bad => Some((d, rules)),
        _ => None,
    }
}

/// Counts one row of a case ledger.
fn count_row(file: &mut FileReading, header: &Header, row: &Row, date_col: usize, rules: &[Rule], window: Window) {
    file.data_rows += 1;
    if let Some(p) = row.undecodable(header, row.get(date_col).day().map(Day::period)) {
        return file.problem(p);
    }
    let path = &header.path;
    let date_header = &header.headers[date_col];
    let date_cell = row.get(date_col);
    let Some(day) = date_cell.day() else {
        let msg = if date_cell.is_empty() {
            "the date is empty; write the day the case or activity happened, e.g. 2024-03-05".to_string()
        } else {
            "is not a date; write it like 2024-03-05, 2024/3/5 or 2024年3月5日".to_string()
        };
        return file.problem(LedgerProblem::cell(path, row.number, date_header, date_cell, None, msg));
    };
    let period = day.period();
    if period > window.current {
        // Most likely a slip of the year or month: the row belongs to some month
        // already reported, which one is unknown, so (like an unreadable date) no month.
        return file.problem(LedgerProblem::cell(
            path,
            row.number,
            date_header,
            date_cell,
            None,
            format!("the date {day} is in the future (this month is {}); check the year and month", window.current),
        ));
    }
    if period > window.last || window.first.is_some_and(|f| period < f) {
        return file.outside(row.number, day);
    }
    // Work out every contribution of the row first, so a bad cell drops the whole row.
    let mut adds: Vec<(&str, f64)> = Vec::new();
    let mut bad = false;
    for rule in rules {
        let matches = rule.conditions.iter().all(|(col, want)| {
            let t = row.get(*col).text();
            want.contains(&t.as_str())
        });
        if !matches {
            continue;
        }
        let v = match rule.sum {
            None => 1.0,
            Some((col, sum_header)) => {
                let cell = row.get(col);
                let problem = match cell.number() {
                    Some(n) if n < 0.0 => Some(format!("is negative; {} adds up this column", rule.metric)),
                    Some(n) if rule.whole.is_some() && n.fract() != 0.0 => Some(format!(
                        "is not a whole number; {} counts whole {}, so write a whole number",
                        rule.metric,
                        rule.whole.unwrap_or_default()
                    )),
                    Some(_) => None,
                    None => {
                        let what = if cell.is_empty() { "is empty" } else { "is not a number" };
                        Some(format!("{what}; {} adds up this column, so write a number (e.g. 1)", rule.metric))
                    }
                };
                if let Some(message) = problem {
                    file.problem(LedgerProblem::cell(path, row.number, sum_header, cell, Some(period), message));
                    bad = true;
                    continue;
                }
                cell.number().unwrap_or(0.0)
            }
        };
        adds.push((rule.metric, v));
    }
    if bad {
        return;
    }
    file.counted(row.number, day);
    let month = file.reading.values.entry(period).or_default();
    for (metric, v) in adds {
        *month.entry(metric.to_string()).or_insert(0.0) += v;
    }
}

fn read_case_ledger_once(
    src: &LedgerSource,
    config: &Config,
    catalog: &Catalog,
    window: Window,
    limits: &SheetLimits,
) -> Result<Reading, LedgerProblem> {
    let mut file = FileReading::new();
    let mut rules = None;
    let (header, sheet) = read_table(&src.path, src.sheet.as_deref(), &src.date_column, limits, &mut |h, row| {
        let resolved = rules.get_or_insert_with(|| resolve_rules(h, src, config, catalog, &mut file));
        match resolved {
            Some((date_col, rules)) => {
                count_row(&mut file, h, &row, *date_col, rules, window);
                true
            }
            None => false,
        }
    })?;
    // A header without rows below it: its columns are checked all the same.
    let resolved = match rules {
        Some(r) => r,
        None => resolve_rules(&header, src, config, catalog, &mut file),
    };
    if resolved.is_none() {
        file.reading.values.clear();
    } else {
        file.reading.rows.insert(src.path.display().to_string(), file.data_rows);
    }
    Ok(file.finish(&src.path, sheet.as_deref(), window, "row(s)"))
}

/// Reads a totals sheet: per month, the figures of its statistic columns.
pub fn read_totals(src: &TotalsSource, config: &Config, catalog: &Catalog, window: Window, out: &mut Reading) {
    let limits = SheetLimits::from_mb(config.max_ledger_mb);
    match read_unchanging(&src.path, || read_totals_once(src, catalog, window, &limits)) {
        Ok(Ok(reading)) => out.merge(reading),
        Ok(Err(p)) | Err(p) => out.problems.push(p),
    }
}

/// The statistic columns of a totals sheet: (column, its statistic; `None` for a column without a header).
type StatisticColumns<'c> = Vec<(usize, Option<&'c Metric>)>;

/// The month column and the statistic columns of a totals sheet; problems recorded.
fn resolve_totals<'c>(
    header: &Header,
    src: &TotalsSource,
    catalog: &'c Catalog,
    file: &mut FileReading,
) -> Option<(usize, StatisticColumns<'c>)> {
    let pcol = match header.column(&src.period_column) {
        Ok(c) => c?,
        Err(p) => {
            file.problem(p);
            return None;
        }
    };
    let mut columns = Vec::new();
    let mut ok = true;
    let mut duplicated = BTreeSet::new();
    for (i, h) in header.headers.iter().enumerate() {
        if i == pcol || src.ignore_columns.iter().any(|x| x.trim() == h) {
            continue;
        }
        match catalog.metric_for_header(h) {
            Some(m) => match header.column(h) {
                Err(p) => {
                    ok = false;
                    if duplicated.insert(h.clone()) {
                        file.problem(p);
                    }
                }
                Ok(_) => columns.push((i, Some(m))),
            },
            // An empty header: a blank column, or one whose values are checked as unknown below.
            None if h.is_empty() => columns.push((i, None)),
            None => file.problem(LedgerProblem {
                column: Some(h.clone()),
                ..LedgerProblem::file(
                    &header.path,
                    format!(
                        "the column header {h:?} is neither a statistic's code nor its Chinese name in catalog {} (e.g. 调解成功 or disputes_resolved); correct it, or list it under ignore_columns in the config",
                        catalog.version
                    ),
                )
            }),
        }
    }
    ok.then_some((pcol, columns))
}

fn read_totals_once(
    src: &TotalsSource,
    catalog: &Catalog,
    window: Window,
    limits: &SheetLimits,
) -> Result<Reading, LedgerProblem> {
    let mut file = FileReading::new();
    let mut resolved = None;
    let mut seen: BTreeMap<Period, usize> = BTreeMap::new();
    let (header, sheet) =
        read_table(&src.path, src.sheet.as_deref(), &src.period_column, limits, &mut |h, row| match resolved
            .get_or_insert_with(|| resolve_totals(h, src, catalog, &mut file))
        {
            Some((pcol, columns)) => {
                total_row(&mut file, h, &row, *pcol, columns, &mut seen, catalog, window);
                true
            }
            None => false,
        })?;
    if resolved.is_none() {
        resolve_totals(&header, src, catalog, &mut file);
    }
    Ok(file.finish(&src.path, sheet.as_deref(), window, "month row(s)"))
}

/// Reads one month's row of a totals sheet.
#[allow(clippy::too_many_arguments)]
fn total_row(
    file: &mut FileReading,
    header: &Header,
    row: &Row,
    pcol: usize,
    columns: &[(usize, Option<&Metric>)],
    seen: &mut BTreeMap<Period, usize>,
    catalog: &Catalog,
    window: Window,
) {
    file.data_rows += 1;
    if let Some(p) = row.undecodable(header, row.get(pcol).month()) {
        return file.problem(p);
    }
    let path = &header.path;
    let period_header = &header.headers[pcol];
    let pcell = row.get(pcol);
    let Some(period) = pcell.month() else {
        return file.problem(LedgerProblem::cell(
            path,
            row.number,
            period_header,
            pcell,
            None,
            "is not a month; write it like 2024-03 or 2024年3月".into(),
        ));
    };
    if let Some(first_row) = seen.insert(period, row.number) {
        return file.problem(LedgerProblem::cell(
            path,
            row.number,
            period_header,
            pcell,
            Some(period),
            format!("month {period} appears twice (rows {first_row} and {}); keep one row per month", row.number),
        ));
    }
    // Months after the current one are ignored: a sheet prepared for the whole year is normal.
    if period > window.current {
        return;
    }
    let mut values = BTreeMap::new();
    let mut bad = false;
    for &(col, metric) in columns {
        let cell = row.get(col);
        if cell.is_empty() {
            continue;
        }
        let header_text = &header.headers[col];
        let Some(metric) = metric else {
            file.problem(LedgerProblem::cell(
                path,
                row.number,
                &column_letters(col),
                cell,
                Some(period),
                "is a figure in a column without a header; head the column with its statistic (code or Chinese name)"
                    .into(),
            ));
            bad = true;
            continue;
        };
        let problem = match cell.number() {
            Some(n) if metric.value_type == ValueType::Integer && n.fract() != 0.0 => Some(format!(
                "is not a whole number; {} ({}) counts whole {}",
                metric.code, metric.name_zh, metric.unit
            )),
            Some(n) => {
                values.insert(metric.code.clone(), n);
                None
            }
            None => {
                Some(format!("is not a number; {} ({}) is counted in {}", metric.code, metric.name_zh, metric.unit))
            }
        };
        if let Some(message) = problem {
            file.problem(LedgerProblem::cell(path, row.number, header_text, cell, Some(period), message));
            bad = true;
        }
    }
    if bad {
        return;
    }
    // Stocks before the window still matter (they carry forward); flows outside it do not.
    if window.first.is_some_and(|f| period < f) || period > window.last {
        values.retain(|code, _| catalog.metric(code).is_some_and(|m| m.kind == MetricKind::Stock));
    }
    // A row with the month but no figure yet (a sheet prepared ahead) says nothing of its month.
    if !values.is_empty() {
        file.reading.values.entry(period).or_default().extend(values);
    }
}
