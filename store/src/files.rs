//! The Parquet files under `reports/`: writing one atomically, listing them,
//! reading one back into rows.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;
use sifa_proto::Period;
use sifa_proto::catalog::Catalog;
use sifa_proto::registry::UnitKind;
use sifa_proto::v1::Report;

use crate::StoreError;
use crate::error::io_err;
use crate::layout::{self, file_name, year_dir};
use crate::schema::{StoredReport, record_batch};

/// Writes rows of one year as a new Parquet file, atomically (through
/// [`sifa_proto::fs::write_atomic_with`]: temporary name, fsync, rename, directory
/// fsync). Returns the file's path. The caller picks a `seq` no other file of
/// the store has.
pub fn write_file(
    data_dir: &Path,
    catalog: &Catalog,
    year: u16,
    seq: u64,
    rows: &[StoredReport],
) -> Result<PathBuf, StoreError> {
    debug_assert!(rows.iter().all(|r| r.period.year() == year));
    let batch = record_batch(catalog, rows)?;
    write_batch(&year_dir(data_dir, year), &file_name(seq), &batch, Vec::new(), DEFAULT_ROW_GROUP_ROWS)
}

/// Rows of one year as the bytes of a report file, written as [`write_file`] writes one (for a
/// store on object storage, which puts them as one object).
pub fn encode_file(catalog: &Catalog, rows: &[StoredReport]) -> Result<Vec<u8>, StoreError> {
    let batch = record_batch(catalog, rows)?;
    encode_batch(&batch, Vec::new(), DEFAULT_ROW_GROUP_ROWS, Path::new("(in memory)"))
}

/// Parquet's default rows per row group.
const DEFAULT_ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Writes `batch` as the Parquet file `dir/name` the way every file of the store is written:
/// zstd, atomically (temporary name, fsync, rename, directory fsync), with `metadata` as the
/// file's key-value metadata and at most `row_group_rows` rows per row group.
pub(crate) fn write_batch(
    dir: &Path,
    name: &str,
    batch: &RecordBatch,
    metadata: Vec<KeyValue>,
    row_group_rows: usize,
) -> Result<PathBuf, StoreError> {
    let tmp = dir.join(sifa_proto::fs::temp_name(name));
    sifa_proto::fs::write_atomic_with(dir, name, None, |file| {
        write_parquet(file, batch, metadata, row_group_rows, &tmp)
    })
}

/// `batch` as the bytes of a Parquet file written the way [`write_batch`] writes one.
pub(crate) fn encode_batch(
    batch: &RecordBatch,
    metadata: Vec<KeyValue>,
    row_group_rows: usize,
    origin: &Path,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    write_parquet(&mut out, batch, metadata, row_group_rows, origin)?;
    Ok(out)
}

/// Writes `batch` into `sink` as one Parquet file: zstd, `metadata` as its key-value metadata, at
/// most `row_group_rows` rows per row group. `origin` names it in an error.
fn write_parquet<W: std::io::Write + Send>(
    sink: W,
    batch: &RecordBatch,
    metadata: Vec<KeyValue>,
    row_group_rows: usize,
    origin: &Path,
) -> Result<(), StoreError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("sifa {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata((!metadata.is_empty()).then_some(metadata))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let perr = |source| StoreError::Parquet { path: origin.to_path_buf(), source };
    let mut writer = ArrowWriter::try_new(sink, batch.schema(), Some(props)).map_err(perr)?;
    writer.write(batch).map_err(perr)?;
    writer.close().map_err(perr)?;
    Ok(())
}

/// Every Parquet file of the store, as (year, seq, path), in seq order.
/// Temporary files of interrupted writes are skipped.
pub fn list_files(data_dir: &Path) -> Result<Vec<(u16, u64, PathBuf)>, StoreError> {
    list_partitioned(&layout::reports_dir(data_dir))
}

/// The Parquet files under `root/year=YYYY/` (`reports/` or `current/`), as (year, seq, path), in
/// seq order; temporary files of interrupted writes skipped.
pub fn list_partitioned(root: &Path) -> Result<Vec<(u16, u64, PathBuf)>, StoreError> {
    let root = root.to_path_buf();
    let mut out = Vec::new();
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::Io { what: "cannot list", path: root, source: e }),
    };
    for year_entry in entries {
        let year_entry = year_entry.map_err(io_err("cannot list", &root))?;
        let Some(year) = layout::parse_year_dir(&year_entry.file_name().to_string_lossy()) else { continue };
        let dir = year_entry.path();
        for f in fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
            let f = f.map_err(io_err("cannot list", &dir))?;
            let Some(seq) = layout::parse_file_name(&f.file_name().to_string_lossy()) else { continue };
            out.push((year, seq, f.path()));
        }
    }
    out.sort_by_key(|(_, seq, _)| *seq);
    Ok(out)
}

/// Reads a file of the store back into rows. Columns of metrics the file
/// lacks (added to the catalog later) read as absent values.
pub fn read_file(path: &Path, catalog: &Catalog) -> Result<Vec<StoredReport>, StoreError> {
    let file = File::open(path).map_err(io_err("cannot open", path))?;
    read_rows(file, path, catalog)
}

/// Reads the rows of a report file from `bytes` (an object fetched from a bucket; `origin` names it
/// in an error), as [`read_file`] reads a file.
pub fn decode_file(bytes: Bytes, origin: &Path, catalog: &Catalog) -> Result<Vec<StoredReport>, StoreError> {
    read_rows(bytes, origin, catalog)
}

fn read_rows<R: ChunkReader + 'static>(
    file: R,
    path: &Path,
    catalog: &Catalog,
) -> Result<Vec<StoredReport>, StoreError> {
    let perr = |source| StoreError::Parquet { path: path.to_path_buf(), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?.build().map_err(perr)?;
    let ferr = |message: String| StoreError::Format { path: path.to_path_buf(), message };
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let col = |name: &str| batch.column_by_name(name).ok_or_else(|| ferr(format!("no column {name:?}")));
        let s = |name: &str| -> Result<StringArray, StoreError> {
            col(name)?
                .as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| ferr(format!("column {name:?} is not a string")))
        };
        let i64s = |name: &str| -> Result<Vec<i64>, StoreError> {
            let c = col(name)?;
            if let Some(a) = c.as_any().downcast_ref::<Int64Array>() {
                return Ok(a.values().to_vec());
            }
            if let Some(a) = c.as_any().downcast_ref::<TimestampMillisecondArray>() {
                return Ok(a.values().to_vec());
            }
            Err(ferr(format!("column {name:?} is not a 64-bit integer or timestamp")))
        };
        let (unit, kind, prov, city, county, period, gen_by, comment, first) = (
            s("unit_code")?,
            s("unit_kind")?,
            s("province_code")?,
            s("city_code")?,
            s("county_code")?,
            s("period")?,
            s("generator")?,
            s("comment")?,
            s("first_accepted_by")?,
        );
        let (revision, received, generated) = (i64s("revision")?, i64s("received_at")?, i64s("generated_at")?);
        let metrics: Vec<_> = catalog.metrics().iter().map(|m| (m, batch.column_by_name(&m.code))).collect();
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        for i in 0..batch.num_rows() {
            let mut values = std::collections::HashMap::new();
            for (m, c) in &metrics {
                let Some(c) = c else { continue };
                if c.is_null(i) {
                    continue;
                }
                let v = if let Some(a) = c.as_any().downcast_ref::<Int64Array>() {
                    a.value(i) as f64
                } else if let Some(a) = c.as_any().downcast_ref::<Float64Array>() {
                    a.value(i)
                } else {
                    return Err(ferr(format!("metric column {:?} is neither Int64 nor Float64", m.code)));
                };
                values.insert(m.code.clone(), v);
            }
            let period_text = period.value(i).to_string();
            let p: Period = period_text.parse().map_err(|e| ferr(format!("row {i}: {e}")))?;
            let kind_text = kind.value(i);
            let unit_kind = UnitKind::ALL
                .into_iter()
                .find(|k| k.as_str() == kind_text)
                .ok_or_else(|| ferr(format!("row {i}: unknown unit_kind {kind_text:?}")))?;
            out.push(StoredReport {
                report: Report {
                    unit_code: unit.value(i).to_string(),
                    period: period_text,
                    revision: revision[i] as u64,
                    values,
                    comment: opt(&comment, i),
                    generated_at_ms: generated[i],
                    generator: gen_by.value(i).to_string(),
                },
                period: p,
                unit_kind,
                province_code: opt(&prov, i),
                city_code: opt(&city, i),
                county_code: opt(&county, i),
                received_at_ms: received[i],
                first_accepted_by: first.value(i).to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::Registry;

    fn row(unit: &str, period: &str, revision: u64, values: &[(&str, f64)], registry: &Registry) -> StoredReport {
        let report = Report {
            unit_code: unit.into(),
            period: period.into(),
            revision,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            comment: (revision > 1).then(|| "更正".to_string()),
            generated_at_ms: 1_711_000_000_000,
            generator: "test/1".into(),
        };
        StoredReport::new(report, period.parse().unwrap(), registry, 1_712_000_000_000, "620982")
    }

    #[test]
    fn files_round_trip_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, registry) = (Catalog::builtin(), Registry::demo());
        let rows = vec![
            row("620982100", "2024-03", 1, &[("disputes_mediated", 12.0), ("office_area_m2", 120.5)], &registry),
            row("620982100", "2024-03", 2, &[("disputes_mediated", 13.0), ("disputes_resolved", 11.0)], &registry),
            row("620982900", "2024-04", 1, &[("consultations", 40.0)], &registry),
        ];
        assert_eq!(rows[0].county_code.as_deref(), Some("620982"));
        assert_eq!(rows[0].city_code.as_deref(), Some("6209"));
        assert_eq!(rows[2].unit_kind, UnitKind::MediationCentre);
        let path = write_file(dir.path(), &catalog, 2024, 7, &rows).unwrap();
        assert!(path.ends_with("reports/year=2024/part-00000000000000000007.parquet"));
        assert_eq!(read_file(&path, &catalog).unwrap(), rows);
        // A leftover temporary file of an interrupted write is not a file of the store.
        fs::write(year_dir(dir.path(), 2024).join(".part-00000000000000000008.parquet.tmp"), b"torn").unwrap();
        let files = list_files(dir.path()).unwrap();
        assert_eq!(files, vec![(2024, 7, path)]);
    }
}
