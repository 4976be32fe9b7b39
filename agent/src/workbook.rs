//! A workbook ledger (.xlsx, .xlsm; also .xls, .xlsb, .ods) read as a sheet,
//! with what Excel books do that would otherwise change figures unseen:
//!
//! - **Size.** An .xlsx is a zip archive: a small file can expand to gigabytes
//!   (a "zip bomb"). Before anything parses it, the sizes its archive declares
//!   are added up, then the archive is expanded into nothing to count what it
//!   really holds; beyond `max_ledger_mb` the file is refused naming the limit.
//! - **Which sheet.** Without a configured `sheet`, the first *visible*
//!   worksheet is read (a hidden sheet placed first is a leftover or a
//!   template, not what the clerk sees), and the sheet read is named.
//! - **Merged cells.** A merged range shows its value in every cell it
//!   covers, so that is how it is read: the top-left value is carried to
//!   every cell of the range.
//! - **Formulas.** A formula cell whose result was never saved (a book written
//!   by a program, not saved in Excel) has no value to read: the file is
//!   refused naming the cells, not read as if they were empty.
//!
//! .xlsx and .xlsm are read cell by cell as the sheet streams; the other
//! formats are read whole (within the size limit) and their merged ranges
//! are not known to the reader.

// A file-level problem is returned at most once per file: its size does not matter.
#![allow(clippy::result_large_err)]

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use calamine::{Data, DataRef, Dimensions, Reader, SheetType, SheetVisible, Xlsx};

use crate::dates::Day;
use crate::ledger::{Cell, LedgerProblem, Row, SheetLimits};

/// Formula cells without a saved result named in a message at most.
const NAMED_CELLS: usize = 5;

/// "C5" for zero-based (row 4, column 2).
pub fn cell_name(row: u32, col: u32) -> String {
    format!("{}{}", column_letters(col as usize), row + 1)
}

/// "A", "B", … "Z", "AA" for zero-based column `i`.
pub fn column_letters(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

fn is_zip_format(ext: &str) -> bool {
    matches!(ext, "xlsx" | "xlsm" | "xlsb" | "ods")
}

/// Refuses a workbook that expands (or says it expands) beyond the limit.
fn check_expansion(path: &Path, ext: &str, limits: &SheetLimits) -> Result<(), LedgerProblem> {
    let cannot = |e: std::io::Error| LedgerProblem::file(path, format!("cannot read the file: {e}"));
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > limits.max_bytes {
        return Err(limits.refusal(path, size, "is"));
    }
    if !is_zip_format(ext) {
        return Ok(());
    }
    let not_zip = |e: zip::result::ZipError| {
        LedgerProblem::file(
            path,
            format!("is not a readable .{ext} workbook ({e}); open it in Excel and save it again as .xlsx"),
        )
    };
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(path).map_err(cannot)?)).map_err(not_zip)?;
    // What the archive declares, first: a bomb is refused without expanding anything.
    let mut declared = 0u64;
    for i in 0..zip.len() {
        declared = declared.saturating_add(zip.by_index_raw(i).map_err(not_zip)?.size());
    }
    if declared > limits.max_bytes {
        return Err(limits.refusal(path, declared, "expands to"));
    }
    // Then what it really holds (a declared size can lie), counted into nothing.
    let mut expanded = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(not_zip)?;
        let mut capped = std::io::Read::take(entry, (limits.max_bytes - expanded).saturating_add(1));
        expanded += std::io::copy(&mut capped, &mut std::io::sink()).map_err(|e| {
            LedgerProblem::file(path, format!("is a damaged workbook ({e}); open it in Excel and save it again"))
        })?;
        if expanded > limits.max_bytes {
            return Err(limits.refusal(path, expanded, "expands to more than"));
        }
    }
    Ok(())
}

/// The worksheet to read: the configured one, else the first visible worksheet.
fn choose_sheet(path: &Path, sheets: &[calamine::Sheet], wanted: Option<&str>) -> Result<String, LedgerProblem> {
    let names = || sheets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(w) = wanted {
        return sheets.iter().find(|s| s.name == w).map(|s| s.name.clone()).ok_or_else(|| {
            LedgerProblem::file(path, format!("has no worksheet {w:?}; its worksheets are: {}", names()))
        });
    }
    sheets
        .iter()
        .find(|s| s.visible == SheetVisible::Visible && s.typ == SheetType::WorkSheet)
        .map(|s| s.name.clone())
        .ok_or_else(|| {
            LedgerProblem::file(
                path,
                format!(
                    "has no visible worksheet (its sheets: {}); unhide the ledger's sheet, or name it with `sheet` in the config",
                    names()
                ),
            )
        })
}

fn day_or_number(y: u16, m: u8, d: u8, serial: f64) -> Cell {
    Day::new(y as i64, m as i64, d as i64).map(Cell::Date).unwrap_or(Cell::Number(serial))
}

fn cell_of(d: &Data) -> Cell {
    match d {
        Data::Empty => Cell::Empty,
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::String(s) if s.trim().is_empty() => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        Data::Bool(b) => Cell::Text(b.to_string()),
        Data::DateTime(dt) => {
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            day_or_number(y, m, d, dt.as_f64())
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Error(e) => Cell::Text(format!("#{e:?}")),
    }
}

/// Merged ranges: each range's top-left value, carried to every cell it covers.
struct Merges {
    ranges: Vec<(Dimensions, Cell)>,
}

impl Merges {
    fn new(mut ranges: Vec<Dimensions>) -> Merges {
        ranges.sort_by_key(|d| d.start);
        Merges { ranges: ranges.into_iter().map(|d| (d, Cell::Empty)).collect() }
    }

    /// Fills row `r` (zero-based; `cells` from column 0) from the ranges covering it:
    /// text and dates into every cell of the range, numbers across its first row only.
    fn fill(&mut self, r: u32, cells: &mut Vec<Cell>) {
        for (d, value) in &mut self.ranges {
            if r < d.start.0 || r > d.end.0 {
                continue;
            }
            if r == d.start.0 {
                *value = cells.get(d.start.1 as usize).cloned().unwrap_or(Cell::Empty);
            }
            // A number merged down several rows is one figure, not one per row:
            // carried down it would be summed once per row. It stays in its
            // first row; the rows below keep their empty cells, which a rule
            // summing or reading that column names.
            if r > d.start.0 && matches!(value, Cell::Number(_)) {
                continue;
            }
            let end = d.end.1 as usize;
            if cells.len() <= end {
                cells.resize(end + 1, Cell::Empty);
            }
            cells[d.start.1 as usize..=end].fill(value.clone());
        }
        // Ranges wholly above this row are done with.
        self.ranges.retain(|(d, _)| d.end.0 > r);
    }
}

/// Formula cells without a saved result, named in the refusal.
#[derive(Default)]
struct Unsaved {
    named: Vec<String>,
    count: usize,
}

impl Unsaved {
    fn add(&mut self, row: u32, col: u32) {
        self.count += 1;
        if self.named.len() < NAMED_CELLS {
            self.named.push(cell_name(row, col));
        }
    }

    fn check(&self, path: &Path, sheet: &str) -> Result<(), LedgerProblem> {
        if self.count == 0 {
            return Ok(());
        }
        let more = if self.count > self.named.len() {
            format!(" and {} more", self.count - self.named.len())
        } else {
            String::new()
        };
        Err(LedgerProblem::file(
            path,
            format!(
                "worksheet {sheet:?}: the formula cell(s) {}{more} have no saved result, so their values are unknown; open the book in Excel and save it (Excel saves each formula's result), then run again",
                self.named.join(", ")
            ),
        ))
    }
}

/// Hands the rows of a row-major stream of cells to `on_row`, merged ranges filled.
struct RowBuilder<'a> {
    merges: Merges,
    row: Option<(u32, Vec<Cell>)>,
    on_row: &'a mut dyn FnMut(Row) -> bool,
}

impl RowBuilder<'_> {
    /// Adds a cell; false when `on_row` asked to stop.
    fn add(&mut self, (r, c): (u32, u32), cell: Cell) -> bool {
        let mut go_on = true;
        if self.row.as_ref().is_some_and(|(cur, _)| *cur != r) {
            go_on = self.flush();
        }
        let (_, cells) = self.row.get_or_insert_with(|| (r, Vec::new()));
        if cells.len() <= c as usize {
            cells.resize(c as usize + 1, Cell::Empty);
        }
        cells[c as usize] = cell;
        go_on
    }

    fn flush(&mut self) -> bool {
        match self.row.take() {
            Some((r, mut cells)) => {
                self.merges.fill(r, &mut cells);
                (self.on_row)(Row { number: r as usize + 1, cells })
            }
            None => true,
        }
    }
}

/// Reads the chosen worksheet's rows (numbered as Excel numbers them), handing
/// each to `on_row` until it returns false. Returns the name of the sheet read.
pub fn read(
    path: &Path,
    wanted: Option<&str>,
    limits: &SheetLimits,
    on_row: &mut dyn FnMut(Row) -> bool,
) -> Result<String, LedgerProblem> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    check_expansion(path, &ext, limits)?;
    let cannot_open = |e: &dyn std::fmt::Display| LedgerProblem::file(path, format!("cannot open the workbook: {e}"));
    if matches!(ext.as_str(), "xlsx" | "xlsm") {
        let mut wb: Xlsx<_> = calamine::open_workbook(path).map_err(|e| cannot_open(&e))?;
        let name = choose_sheet(path, wb.sheets_metadata(), wanted)?;
        let cannot_read = |e: calamine::XlsxError| {
            LedgerProblem::file(
                path,
                format!("cannot read worksheet {name:?}: {e}; open it in Excel and save it again"),
            )
        };
        let merges = Merges::new(wb.merge_cells_by_sheet_name(&name).map_err(cannot_read)?);
        let mut rows = RowBuilder { merges, row: None, on_row };
        let mut unsaved = Unsaved::default();
        let mut cells = wb.worksheet_cells_reader(&name).map_err(cannot_read)?;
        while let Some(c) = cells.next_cell_with_formula().map_err(cannot_read)? {
            if c.value == DataRef::Empty && c.formula.as_ref().is_some_and(|f| !f.is_empty()) {
                unsaved.add(c.pos.0, c.pos.1);
            }
            if !rows.add(c.pos, cell_of(&Data::from(c.value))) {
                return unsaved.check(path, &name).map(|_| name);
            }
        }
        rows.flush();
        unsaved.check(path, &name)?;
        return Ok(name);
    }
    let mut wb = calamine::open_workbook_auto(path).map_err(|e| cannot_open(&e))?;
    let name = choose_sheet(path, wb.sheets_metadata(), wanted)?;
    let cannot_read = |e: calamine::Error| LedgerProblem::file(path, format!("cannot read worksheet {name:?}: {e}"));
    let range = wb.worksheet_range(&name).map_err(cannot_read)?;
    let formulas = wb.worksheet_formula(&name).map_err(cannot_read)?;
    let mut unsaved = Unsaved::default();
    for (r, c, f) in formulas.used_cells() {
        let (r0, c0) = formulas.start().unwrap_or((0, 0));
        let at = (r0 + r as u32, c0 + c as u32);
        if !f.is_empty() && range.get_value(at).is_none_or(|v| *v == Data::Empty) {
            unsaved.add(at.0, at.1);
        }
    }
    unsaved.check(path, &name)?;
    let merges = match &mut wb {
        #[allow(deprecated)] // the replacement is not offered for .xls
        calamine::Sheets::Xls(x) => x.worksheet_merge_cells(&name).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut rows = RowBuilder { merges: Merges::new(merges), row: None, on_row };
    for (r, c, d) in range.used_cells() {
        let (r0, c0) = range.start().unwrap_or((0, 0));
        if !rows.add((r0 + r as u32, c0 + c as u32), cell_of(d)) {
            return Ok(name);
        }
    }
    rows.flush();
    Ok(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_letters() {
        let n: Vec<_> = [0, 1, 25, 26, 27, 51, 52, 701, 702].iter().map(|&i| super::column_letters(i)).collect();
        assert_eq!(n, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
        assert_eq!(super::cell_name(4, 2), "C5");
    }
}
