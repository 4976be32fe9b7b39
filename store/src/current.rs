//! `current/`: the figures in force, derived from `reports/` (docs/STORAGE.md).
//!
//! Per year one Parquet file, `current/year=YYYY/part-SEQ.parquet`: the latest
//! revision of each unit and month of the year's report files (a row a compaction
//! briefly left in two files once), sorted by `unit_code` and `period`, in row groups
//! small enough that their statistics prune by unit; the same columns as the
//! report files. Its key-value metadata `sifa.covers` lists the report files
//! (their sequence numbers) it was derived from; SEQ is the highest of them.
//! A reader uses a year's file only while the year's report files are exactly
//! those (`covered_years`), and deduplicates `reports/` itself otherwise, so it
//! never serves figures older than the report files. The audit trail, every
//! revision, stays in `reports/`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, new_null_array};
use arrow::compute::{cast, interleave};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::reader::ChunkReader;
use sifa_proto::catalog::Catalog;

use crate::StoreError;
use crate::error::io_err;
use crate::files::{encode_batch, list_files, write_batch};
use crate::layout::{current_year_dir, file_name, parse_file_name};
use crate::schema::arrow_schema;

/// The key-value metadata naming the report files a current file covers: their sequence numbers,
/// comma-separated, ascending.
pub const COVERS_KEY: &str = "sifa.covers";
/// Rows per row group of a current file: about 1,400 units' years, so a filter on `unit_code`
/// skips most groups by their statistics.
const ROW_GROUP_ROWS: usize = 16_384;

/// A year's current file and the report files it was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentFile {
    pub year: u16,
    pub path: PathBuf,
    pub covers: Vec<u64>,
}

/// The sequence numbers of each year's report files, ascending.
fn report_seqs(data_dir: &Path) -> Result<HashMap<u16, Vec<u64>>, StoreError> {
    let mut by_year: HashMap<u16, Vec<u64>> = HashMap::new();
    for (year, seq, _) in list_files(data_dir)? {
        by_year.entry(year).or_default().push(seq);
    }
    for seqs in by_year.values_mut() {
        seqs.sort_unstable();
    }
    Ok(by_year)
}

/// The newest current file of `year`, if there is one.
pub fn read_current(data_dir: &Path, year: u16) -> Result<Option<CurrentFile>, StoreError> {
    let dir = current_year_dir(data_dir, year);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot list", &dir)(e)),
    };
    let mut newest: Option<(u64, PathBuf)> = None;
    for e in entries {
        let e = e.map_err(io_err("cannot list", &dir))?;
        if let Some(seq) = parse_file_name(&e.file_name().to_string_lossy())
            && newest.as_ref().is_none_or(|(s, _)| seq > *s)
        {
            newest = Some((seq, e.path()));
        }
    }
    let Some((_, path)) = newest else { return Ok(None) };
    let file = File::open(&path).map_err(io_err("cannot open", &path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|source| StoreError::Parquet { path: path.clone(), source })?;
    let covers = covers(builder.metadata().file_metadata())
        .map_err(|message| StoreError::Format { path: path.clone(), message })?;
    Ok(Some(CurrentFile { year, path, covers }))
}

/// The report files a current file covers (its `sifa.covers` metadata), or what is wrong with it.
pub fn covers(file: &parquet::file::metadata::FileMetaData) -> Result<Vec<u64>, String> {
    file.key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == COVERS_KEY))
        .and_then(|k| k.value.as_deref())
        .ok_or_else(|| format!("no {COVERS_KEY} metadata"))?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().map_err(|e| format!("{COVERS_KEY}: {e}")))
        .collect()
}

/// The years whose current file covers exactly the year's report files, ascending.
pub fn covered_years(data_dir: &Path) -> Result<Vec<u16>, StoreError> {
    let mut years = Vec::new();
    for (year, seqs) in report_seqs(data_dir)? {
        if read_current(data_dir, year)?.is_some_and(|c| c.covers == seqs) {
            years.push(year);
        }
    }
    years.sort_unstable();
    Ok(years)
}

/// The years with report files whose current file is missing or covers other files, ascending.
pub fn stale_years(data_dir: &Path) -> Result<Vec<u16>, StoreError> {
    let covered = covered_years(data_dir)?;
    let mut years: Vec<u16> = report_seqs(data_dir)?.into_keys().filter(|y| !covered.contains(y)).collect();
    years.sort_unstable();
    Ok(years)
}

/// Derives `year`'s current file from its report files (written atomically, then older current
/// files of the year removed). Returns it, or `None` when the year has no report file.
pub fn rebuild(data_dir: &Path, catalog: &Catalog, year: u16) -> Result<Option<CurrentFile>, StoreError> {
    let mut files = Vec::new();
    for (y, seq, path) in list_files(data_dir)? {
        if y == year {
            let file = File::open(&path).map_err(io_err("cannot open", &path))?;
            files.push((seq, file, path));
        }
    }
    let Some(derived) = derive(catalog, files)? else { return Ok(None) };
    let dir = current_year_dir(data_dir, year);
    let name = file_name(derived.seq);
    let path = write_batch(&dir, &name, &derived.batch, vec![derived.covers_metadata()], ROW_GROUP_ROWS)?;
    for e in fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
        let e = e.map_err(io_err("cannot list", &dir))?;
        if parse_file_name(&e.file_name().to_string_lossy()).is_some_and(|s| s != derived.seq) {
            fs::remove_file(e.path()).map_err(io_err("cannot delete an older current file", &e.path()))?;
        }
    }
    Ok(Some(CurrentFile { year, path, covers: derived.covers }))
}

/// A year's current figures, derived and not yet written.
#[derive(Debug)]
pub struct Derived {
    /// The highest sequence number of the report files: the current file's name.
    pub seq: u64,
    /// The report files it was derived from, ascending.
    pub covers: Vec<u64>,
    pub batch: RecordBatch,
}

impl Derived {
    fn covers_metadata(&self) -> KeyValue {
        KeyValue::new(COVERS_KEY.to_string(), self.covers.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
    }

    /// The bytes of the current file, as [`rebuild`] writes it (for a store on object storage).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode_batch(&self.batch, vec![self.covers_metadata()], ROW_GROUP_ROWS, Path::new("(current, in memory)"))
    }
}

/// The current figures of one year from its report files, given as (seq, content, where it is);
/// `None` without any.
pub fn derive<R: ChunkReader + 'static>(
    catalog: &Catalog,
    files: Vec<(u64, R, PathBuf)>,
) -> Result<Option<Derived>, StoreError> {
    let Some(seq) = files.iter().map(|(s, _, _)| *s).max() else { return Ok(None) };
    let schema = arrow_schema(catalog);
    let mut batches = Vec::new();
    let mut covers = Vec::with_capacity(files.len());
    for (s, content, origin) in files {
        batches.extend(read_batches(content, &origin, &schema)?);
        covers.push(s);
    }
    covers.sort_unstable();
    let indices = latest_rows(&batches)?;
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            interleave(&arrays, &indices)
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(Some(Derived { seq, covers, batch: RecordBatch::try_new(schema, columns)? }))
}

/// Rebuilds the current file of every stale year; returns them.
pub fn refresh(data_dir: &Path, catalog: &Catalog) -> Result<Vec<CurrentFile>, StoreError> {
    let mut out = Vec::new();
    for year in stale_years(data_dir)? {
        out.extend(rebuild(data_dir, catalog, year)?);
    }
    Ok(out)
}

/// A report file's rows in the columns of `schema` (a metric the file lacks reads as nulls).
fn read_batches<R: ChunkReader + 'static>(
    file: R,
    path: &Path,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<Vec<RecordBatch>, StoreError> {
    let perr = |source| StoreError::Parquet { path: path.to_path_buf(), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?.build().map_err(perr)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                Some(c) => cast(c, f.data_type()),
                None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// The (batch, row) of the latest revision of each unit and month, ordered by unit and month.
fn latest_rows(batches: &[RecordBatch]) -> Result<Vec<(usize, usize)>, StoreError> {
    let column = |b: &RecordBatch, name: &str| b.column_by_name(name).cloned();
    let mut keys = Vec::with_capacity(batches.len());
    for b in batches {
        let unit = column(b, "unit_code").and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let period = column(b, "period").and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let revision = column(b, "revision").and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
        let (Some(u), Some(p), Some(r)) = (unit, period, revision) else {
            return Err(arrow::error::ArrowError::SchemaError("a report file lacks its key columns".into()).into());
        };
        keys.push((u, p, r));
    }
    let mut latest: HashMap<(&str, &str), (i64, usize, usize)> = HashMap::new();
    for (b, (u, p, r)) in keys.iter().enumerate() {
        for i in 0..u.len() {
            let revision = r.value(i);
            latest
                .entry((u.value(i), p.value(i)))
                .and_modify(|best| {
                    if revision > best.0 {
                        *best = (revision, b, i);
                    }
                })
                .or_insert((revision, b, i));
        }
    }
    let mut rows: Vec<((&str, &str), (usize, usize))> = latest.into_iter().map(|(k, (_, b, i))| (k, (b, i))).collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(rows.into_iter().map(|(_, at)| at).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{read_file, write_file};
    use crate::schema::StoredReport;
    use sifa_proto::Registry;
    use sifa_proto::v1::Report;

    fn row(unit: &str, period: &str, revision: u64, lectures: f64) -> StoredReport {
        let report = Report {
            unit_code: unit.into(),
            period: period.into(),
            revision,
            values: [("lectures".to_string(), lectures)].into(),
            comment: None,
            generated_at_ms: 1_711_000_000_000,
            generator: "test/1".into(),
        };
        StoredReport::new(report, period.parse().unwrap(), &Registry::demo(), 1_712_000_000_000, "620982")
    }

    #[test]
    fn the_latest_revision_of_each_month_sorted_and_stale_when_a_file_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::builtin();
        let d = dir.path();
        write_file(d, &catalog, 2024, 1, &[row("620982101", "2024-02", 1, 1.0), row("620982100", "2024-03", 1, 2.0)])
            .unwrap();
        // A correction, and a copy of a row (as a compaction leaves briefly).
        write_file(d, &catalog, 2024, 2, &[row("620982100", "2024-03", 2, 3.0), row("620982101", "2024-02", 1, 1.0)])
            .unwrap();
        write_file(d, &catalog, 2023, 3, &[row("620982100", "2023-12", 1, 4.0)]).unwrap();
        assert_eq!(stale_years(d).unwrap(), vec![2023, 2024]);
        let made = refresh(d, &catalog).unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(covered_years(d).unwrap(), vec![2023, 2024]);
        let c = read_current(d, 2024).unwrap().unwrap();
        assert_eq!(c.covers, vec![1, 2]);
        assert!(c.path.ends_with("current/year=2024/part-00000000000000000002.parquet"), "{}", c.path.display());
        let rows = read_file(&c.path, &catalog).unwrap();
        assert_eq!(rows, vec![row("620982100", "2024-03", 2, 3.0), row("620982101", "2024-02", 1, 1.0)]);
        // A new report file makes the year stale until it is rebuilt; the older current file goes.
        write_file(d, &catalog, 2024, 4, &[row("620982100", "2024-03", 3, 5.0)]).unwrap();
        assert_eq!(stale_years(d).unwrap(), vec![2024]);
        refresh(d, &catalog).unwrap();
        let c = read_current(d, 2024).unwrap().unwrap();
        assert_eq!(c.covers, vec![1, 2, 4]);
        assert_eq!(read_file(&c.path, &catalog).unwrap()[0], row("620982100", "2024-03", 3, 5.0));
        assert_eq!(fs::read_dir(current_year_dir(d, 2024)).unwrap().count(), 1);
        assert!(stale_years(d).unwrap().is_empty());
    }
}
