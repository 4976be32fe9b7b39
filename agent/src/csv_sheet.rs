//! A CSV ledger read as a sheet, streaming: the file is never held whole,
//! only the record being read (and the one before it, to tell the last
//! record from the others).
//!
//! Encodings: UTF-8 (with or without a byte-order mark) or GBK, which Excel on
//! Chinese Windows writes for "CSV". A first pass over the file decides which
//! (the whole file valid UTF-8, or not); the second reads the records. In a
//! GBK file, a cell whose bytes are not GBK is a [`Cell::Undecodable`] (the
//! reader of the rows names its row and column), and a row that is UTF-8
//! (a row pasted in from another program) makes the file one of mixed
//! encodings, refused naming a row of each.
//!
//! A quote that opens a cell and is never closed makes every line after it
//! part of that one cell: the last record is checked for it and the file
//! refused naming the row, instead of reading one giant, odd cell.

// A file-level problem is returned at most once per file: its size does not matter.
#![allow(clippy::result_large_err)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use crate::ledger::{Cell, LedgerProblem, Row, SheetLimits};

const BOM: &[u8] = b"\xEF\xBB\xBF";
const CHUNK: usize = 64 * 1024;

/// Whether the whole file (after a byte-order mark) is valid UTF-8, read in chunks.
fn is_utf8(path: &Path) -> Result<bool, LedgerProblem> {
    let cannot = |e: std::io::Error| LedgerProblem::file(path, format!("cannot read the file: {e}"));
    let mut f = File::open(path).map_err(cannot)?;
    let mut buf = vec![0u8; CHUNK];
    let mut carry: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let n = f.read(&mut buf).map_err(cannot)?;
        if n == 0 {
            return Ok(carry.is_empty());
        }
        let mut data = std::mem::take(&mut carry);
        data.extend_from_slice(&buf[..n]);
        let mut slice = data.as_slice();
        if first {
            first = false;
            slice = slice.strip_prefix(BOM).unwrap_or(slice);
        }
        match std::str::from_utf8(slice) {
            Ok(_) => {}
            // A character cut at the end of the chunk: carry its bytes into the next.
            Err(e) if e.error_len().is_none() => carry = slice[e.valid_up_to()..].to_vec(),
            Err(_) => return Ok(false),
        }
    }
}

/// Counts the line ends the CSV parser has pulled in, with their byte offsets
/// (only those not yet matched to a record are kept: a buffer's worth).
struct LineCounter<R> {
    inner: R,
    offset: u64,
    line_ends: Rc<RefCell<VecDeque<u64>>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut ends = self.line_ends.borrow_mut();
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                ends.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Decodes one cell's bytes.
fn cell(bytes: &[u8], utf8: bool) -> Cell {
    let text = if utf8 {
        std::str::from_utf8(bytes).map(str::to_string).ok()
    } else {
        encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes).map(|c| c.into_owned())
    };
    match text {
        Some(t) if t.trim().is_empty() => Cell::Empty,
        Some(t) => Cell::Text(t),
        None => Cell::Undecodable(bytes.iter().take(12).map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")),
    }
}

/// Where a CSV scanner is within a record, as the csv crate reads it: a quote
/// opens a quoted cell only as a cell's first byte; anywhere else it is text.
#[derive(Clone, Copy, PartialEq)]
enum QuoteState {
    CellStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted cell: it closes the cell, or is the first of a doubled `""`.
    QuoteInQuoted,
}

impl QuoteState {
    fn next(self, b: u8) -> QuoteState {
        use QuoteState::*;
        match (self, b) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (CellStart, b'"') | (QuoteInQuoted, b'"') => Quoted,
            (_, b',' | b'\n' | b'\r') => CellStart,
            _ => Unquoted,
        }
    }
}

/// Whether a quoted cell opened in the bytes from `start` (a record's first
/// byte) runs to the end of the file. A lone quote inside an unquoted cell
/// (`5"`) is text, not an opening quote. `"` and `,` are never part of a GBK
/// character, so the bytes are scanned as they are.
fn unclosed_quote_from(path: &Path, start: u64) -> std::io::Result<bool> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; CHUNK];
    let mut state = QuoteState::CellStart;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(state == QuoteState::Quoted);
        }
        state = buf[..n].iter().fold(state, |s, &b| s.next(b));
    }
}

/// Reads a CSV file's records as rows (`number` is the file's line number of
/// the record, as a text editor or Excel shows it), handing each to `on_row`
/// until it returns false.
pub fn read(path: &Path, limits: &SheetLimits, on_row: &mut dyn FnMut(Row) -> bool) -> Result<(), LedgerProblem> {
    let cannot = |e: std::io::Error| LedgerProblem::file(path, format!("cannot read the file: {e}"));
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > limits.max_bytes {
        return Err(limits.refusal(path, size, "is"));
    }
    let utf8 = is_utf8(path)?;
    let mut file = File::open(path).map_err(cannot)?;
    let mut bom = [0u8; 3];
    let skip = if file.read_exact(&mut bom).is_ok() && bom == BOM { 3 } else { 0 };
    file.seek(SeekFrom::Start(skip)).map_err(cannot)?;
    let line_ends = Rc::new(RefCell::new(VecDeque::new()));
    let counter =
        LineCounter { inner: BufReader::with_capacity(CHUNK, file), offset: skip, line_ends: line_ends.clone() };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(counter);

    let mut line = 1usize;
    // Line ends before `start` (a byte offset into the file) are lines above the record; after a
    // CRLF the parser puts a record's start on the LF, which ends the line above too.
    let mut line_of = |start: u64| {
        let mut ends = line_ends.borrow_mut();
        while ends.front().is_some_and(|&e| e <= start) {
            ends.pop_front();
            line += 1;
        }
        line
    };
    let (mut utf8_row, mut gbk_row) = (None, None);
    let mut pending: Option<(u64, usize, Vec<Cell>)> = None;
    let mut record = csv::ByteRecord::new();
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            let at = e.position().map(|p| format!(" at line {}", line_of(p.byte() + skip))).unwrap_or_default();
            LedgerProblem::file(path, format!("is not readable as CSV{at}: {e}"))
        })?;
        if let Some((_, number, cells)) = pending.take_if(|_| more)
            && !on_row(Row { number, cells })
        {
            return Ok(());
        }
        if !more {
            break;
        }
        let start = record.position().map_or(0, |p| p.byte()) + skip;
        let number = line_of(start);
        if !utf8 && record.as_slice().iter().any(|b| !b.is_ascii()) {
            let slot = if std::str::from_utf8(record.as_slice()).is_ok() { &mut utf8_row } else { &mut gbk_row };
            slot.get_or_insert(number);
            if let (Some(u), Some(g)) = (utf8_row, gbk_row) {
                return Err(LedgerProblem::file(
                    path,
                    format!(
                        "mixes two encodings: row {u} is UTF-8 text and row {g} is GBK, so one of them would be read as gibberish; open the file in Excel and save it again as \"CSV UTF-8\""
                    ),
                ));
            }
        }
        let cells = record.iter().map(|b| cell(b, utf8)).collect();
        pending = Some((start, number, cells));
    }
    if let Some((start, number, cells)) = pending {
        // An unclosed quote runs to the end of the file: it can only be in the last record.
        if unclosed_quote_from(path, start).map_err(cannot)? {
            return Err(LedgerProblem::file(
                path,
                format!(
                    "row {number} has a quote mark (\") that opens a cell and is never closed, so every line after it was read as part of that cell; remove the quote mark or close it"
                ),
            ));
        }
        on_row(Row { number, cells });
    }
    Ok(())
}
