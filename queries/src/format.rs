//! Query results for people and programs: an aligned text table (Chinese text
//! counts two columns per character), CSV, or JSON (an array of objects).

use std::fmt::Write as _;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use datafusion::arrow::datatypes::{SchemaRef, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use unicode_width::UnicodeWidthStr;

use crate::error::{QueryError, Result};

/// How `sifa query` prints a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal (default)
    Table,
    /// RFC 4180 CSV with a header line, UTF-8
    Csv,
    /// A JSON array with one object per row; numbers stay numbers, NULL is null
    Json,
}

/// A result as rows of display strings (None = NULL), with column names.
pub struct Cells {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

fn arrow_err(e: datafusion::arrow::error::ArrowError) -> QueryError {
    QueryError::Sql(e.to_string())
}

/// Every value of the batches formatted as text (Arrow's display rules).
pub fn cells(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Cells> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_err)?;
        for i in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(i)).then(|| f.value(i).to_string()))
                    .collect(),
            );
        }
    }
    Ok(Cells { columns: schema.fields().iter().map(|f| f.name().clone()).collect(), rows })
}

/// Renders a result in the chosen format.
pub fn render(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    match format {
        Format::Table => Ok(table(&cells(schema, batches)?)),
        Format::Csv => csv(&cells(schema, batches)?),
        Format::Json => json(schema, batches),
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric()
}

/// An aligned text table; numbers are right-aligned, text left-aligned, widths
/// measured in terminal columns (a CJK character is two).
pub fn table(c: &Cells) -> String {
    table_aligned(c, &vec![false; c.columns.len()])
}

fn table_aligned(c: &Cells, right: &[bool]) -> String {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".to_string());
    let mut widths: Vec<usize> = c.columns.iter().map(|h| h.width()).collect();
    for row in &c.rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(shown(v).width());
        }
    }
    let pad = |s: &str, w: usize, right: bool| {
        let fill = " ".repeat(w.saturating_sub(s.width()));
        if right { format!("{fill}{s}") } else { format!("{s}{fill}") }
    };
    let mut out = String::new();
    let line = |out: &mut String, vals: Vec<String>| {
        let cells: Vec<String> =
            vals.iter().enumerate().map(|(i, v)| pad(v, widths[i], right.get(i).copied().unwrap_or(false))).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    };
    line(&mut out, c.columns.clone());
    line(&mut out, widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in &c.rows {
        line(&mut out, row.iter().map(shown).collect());
    }
    let n = c.rows.len();
    let _ = writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" });
    out
}

/// A table for a terminal with numeric columns right-aligned.
pub fn table_for(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let right: Vec<bool> = schema.fields().iter().map(|f| is_numeric(f.data_type())).collect();
    Ok(table_aligned(&cells(schema, batches)?, &right))
}

fn csv(c: &Cells) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| QueryError::Sql(format!("writing CSV: {e}"));
    w.write_record(&c.columns).map_err(io)?;
    for row in &c.rows {
        w.write_record(row.iter().map(|v| v.as_deref().unwrap_or(""))).map_err(io)?;
    }
    let bytes = w.into_inner().map_err(|e| QueryError::Sql(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 strings"))
}

/// One JSON value of a cell: numbers and booleans typed, everything else as
/// its display text.
fn json_value(array: &dyn Array, i: usize, text: &str) -> serde_json::Value {
    use serde_json::Value;
    if array.is_null(i) {
        return Value::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Value::from(array.as_primitive::<$t>().value(i))
        };
    }
    match array.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => serde_json::Number::from_f64(array.as_primitive::<Float32Type>().value(i) as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        DataType::Float64 => serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(i))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        _ => Value::String(text.to_string()),
    }
}

fn json(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_err)?;
        for i in 0..batch.num_rows() {
            let mut obj = serde_json::Map::new();
            for ((field, col), f) in schema.fields().iter().zip(batch.columns()).zip(&formatters) {
                obj.insert(field.name().clone(), json_value(col.as_ref(), i, &f.value(i).to_string()));
            }
            rows.push(serde_json::Value::Object(obj));
        }
    }
    let mut s = serde_json::to_string_pretty(&serde_json::Value::Array(rows)).expect("JSON values");
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_is_aligned_by_display_width() {
        let c = Cells {
            columns: vec!["name".into(), "n".into()],
            rows: vec![vec![Some("敦煌市".into()), Some("1".into())], vec![Some("abc".into()), None]],
        };
        let t = table(&c);
        let lines: Vec<&str> = t.lines().collect();
        // "敦煌市" is 6 columns wide: the second column starts at column 8 on every line.
        assert_eq!(lines[0], "name    n", "{t}");
        assert_eq!(lines[1], "------  ----", "{t}");
        assert_eq!(lines[2], "敦煌市  1", "{t}");
        assert_eq!(lines[3], "abc     NULL", "{t}");
        assert!(t.ends_with("(2 rows)\n"));
    }
}

/// A result rendered for printing: tables get numbers right-aligned.
pub fn render_for_terminal(format: Format, answer: &crate::query::Answer) -> Result<String> {
    match format {
        Format::Table => table_for(&answer.schema, &answer.batches),
        _ => render(format, &answer.schema, &answer.batches),
    }
}

/// A result as JSON objects, one per row (for code that reads figures).
pub fn json_rows(answer: &crate::query::Answer) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let text = json(&answer.schema, &answer.batches)?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| QueryError::Sql(e.to_string()))?;
    Ok(rows.into_iter().filter_map(|v| if let serde_json::Value::Object(o) = v { Some(o) } else { None }).collect())
}
