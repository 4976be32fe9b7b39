//! The Parquet store: the schema of `reports/` and writing and reading its
//! files. The layout is a public contract, documented in docs/STORAGE.md; keep
//! the two in step.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, Int32Array, Int64Array, Int64Builder, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sifa_proto::Period;
use sifa_proto::catalog::{Catalog, ValueType};
use sifa_proto::registry::{Registry, UnitKind};
use sifa_proto::v1::Report;

/// The directory of the Parquet files, under the data directory.
pub const REPORTS_DIR: &str = "reports";
/// The store's description, under the data directory.
pub const STORE_META_FILE: &str = "store.toml";
/// The catalog in force, under the data directory.
pub const CATALOG_FILE: &str = "catalog.toml";
/// The registry in force, under the data directory.
pub const REGISTRY_FILE: &str = "registry.csv";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("Parquet file {path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("Parquet file {path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("store description {path}: {message}")]
    Meta { path: PathBuf, message: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}

/// One accepted revision as stored: the report, where it lies in the tree and
/// where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub report: Report,
    pub period: Period,
    pub unit_kind: UnitKind,
    pub province_code: Option<String>,
    pub city_code: Option<String>,
    pub county_code: Option<String>,
    /// When the first tier made it durable (Unix ms).
    pub received_at_ms: i64,
    /// The unit code of the aggregator that first accepted it.
    pub first_accepted_by: String,
}

impl StoredReport {
    /// A report as this tier stores it, placed in the tree by `registry`. The
    /// unit must be in the registry (the caller has validated it).
    pub fn new(
        report: Report,
        period: Period,
        registry: &Registry,
        received_at_ms: i64,
        first_accepted_by: &str,
    ) -> Self {
        let lineage = registry.lineage(&report.unit_code);
        let unit_kind = registry.get(&report.unit_code).map(|u| u.kind).unwrap_or(UnitKind::Office);
        StoredReport {
            period,
            unit_kind,
            province_code: lineage.province.map(|u| u.code.to_string()),
            city_code: lineage.city.map(|u| u.code.to_string()),
            county_code: lineage.county.map(|u| u.code.to_string()),
            received_at_ms,
            first_accepted_by: first_accepted_by.to_string(),
            report,
        }
    }
}

const FIXED_COLUMNS: usize = 13;

/// The Arrow schema of the files under `reports/` for a catalog (without
/// `year`, which is the partition directory).
pub fn arrow_schema(catalog: &Catalog) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("unit_code", DataType::Utf8, false),
        Field::new("unit_kind", DataType::Utf8, false),
        Field::new("province_code", DataType::Utf8, true),
        Field::new("city_code", DataType::Utf8, true),
        Field::new("county_code", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, false),
        Field::new("month", DataType::Int32, false),
        Field::new("revision", DataType::Int64, false),
        Field::new("received_at", ts.clone(), false),
        Field::new("first_accepted_by", DataType::Utf8, false),
        Field::new("generated_at", ts, false),
        Field::new("generator", DataType::Utf8, false),
        Field::new("comment", DataType::Utf8, true),
    ];
    debug_assert_eq!(fields.len(), FIXED_COLUMNS);
    for m in catalog.metrics() {
        let t = match m.value_type {
            ValueType::Integer => DataType::Int64,
            ValueType::Decimal => DataType::Float64,
        };
        fields.push(Field::new(&m.code, t, true));
    }
    Arc::new(Schema::new(fields))
}

/// The rows as one record batch of [`arrow_schema`].
pub fn record_batch(catalog: &Catalog, rows: &[StoredReport]) -> Result<RecordBatch, StoreError> {
    let strings = |f: &dyn Fn(&StoredReport) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let ts = |f: &dyn Fn(&StoredReport) -> i64| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(rows.iter().map(f).collect::<Vec<_>>()).with_timezone("UTC"))
    };
    let mut columns: Vec<ArrayRef> = vec![
        strings(&|r| Some(&r.report.unit_code)),
        strings(&|r| Some(r.unit_kind.as_str())),
        strings(&|r| r.province_code.as_deref()),
        strings(&|r| r.city_code.as_deref()),
        strings(&|r| r.county_code.as_deref()),
        strings(&|r| Some(&r.report.period)),
        Arc::new(Int32Array::from(rows.iter().map(|r| r.period.month() as i32).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.report.revision as i64).collect::<Vec<_>>())),
        ts(&|r| r.received_at_ms),
        strings(&|r| Some(&r.first_accepted_by)),
        ts(&|r| r.report.generated_at_ms),
        strings(&|r| Some(&r.report.generator)),
        strings(&|r| r.report.comment.as_deref()),
    ];
    for m in catalog.metrics() {
        let values = rows.iter().map(|r| r.report.values.get(&m.code).copied());
        columns.push(match m.value_type {
            ValueType::Integer => {
                let mut b = Int64Builder::with_capacity(rows.len());
                values.for_each(|v| b.append_option(v.map(|v| v as i64)));
                Arc::new(b.finish())
            }
            ValueType::Decimal => {
                let mut b = Float64Builder::with_capacity(rows.len());
                values.for_each(|v| b.append_option(v));
                Arc::new(b.finish())
            }
        });
    }
    Ok(RecordBatch::try_new(arrow_schema(catalog), columns)?)
}

/// The partition directory of a year.
pub fn year_dir(data_dir: &Path, year: u16) -> PathBuf {
    data_dir.join(REPORTS_DIR).join(format!("year={year}"))
}

/// The name of the `seq`-th file of the store.
pub fn file_name(seq: u64) -> String {
    format!("part-{seq:020}.parquet")
}

/// Writes rows of one year as a new Parquet file, atomically: to a temporary
/// name, fsynced, renamed into place, and the directory fsynced. Returns the
/// file's path. The caller picks a `seq` no other file of the store has.
pub fn write_file(
    data_dir: &Path,
    catalog: &Catalog,
    year: u16,
    seq: u64,
    rows: &[StoredReport],
) -> Result<PathBuf, StoreError> {
    debug_assert!(rows.iter().all(|r| r.period.year() == year));
    let dir = year_dir(data_dir, year);
    fs::create_dir_all(&dir).map_err(io_err("cannot create directory", &dir))?;
    let path = dir.join(file_name(seq));
    let tmp = dir.join(format!(".{}.tmp", file_name(seq)));
    let batch = record_batch(catalog, rows)?;
    let file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("sifa {}", env!("CARGO_PKG_VERSION")))
        .build();
    let perr = |source| StoreError::Parquet { path: tmp.clone(), source };
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(perr)?;
    writer.write(&batch).map_err(perr)?;
    let file = writer.into_inner().map_err(perr)?;
    file.sync_all().map_err(io_err("cannot fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err("cannot rename into place", &path))?;
    sync_dir(&dir)?;
    Ok(path)
}

/// fsyncs a directory, so a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("cannot fsync directory", dir))
}

/// Every Parquet file of the store, as (year, seq, path), in seq order.
/// Temporary files of interrupted writes are skipped.
pub fn list_files(data_dir: &Path) -> Result<Vec<(u16, u64, PathBuf)>, StoreError> {
    let root = data_dir.join(REPORTS_DIR);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::Io { what: "cannot list", path: root, source: e }),
    };
    for year_entry in entries {
        let year_entry = year_entry.map_err(io_err("cannot list", &root))?;
        let name = year_entry.file_name().to_string_lossy().into_owned();
        let Some(year) = name.strip_prefix("year=").and_then(|y| y.parse::<u16>().ok()) else { continue };
        let dir = year_entry.path();
        for f in fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
            let f = f.map_err(io_err("cannot list", &dir))?;
            let fname = f.file_name().to_string_lossy().into_owned();
            let Some(seq) =
                fname.strip_prefix("part-").and_then(|s| s.strip_suffix(".parquet")).and_then(|s| s.parse().ok())
            else {
                continue;
            };
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

/// `store.toml`: what a data directory holds (docs/STORAGE.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreMeta {
    /// The subtree this store holds.
    pub root_unit: String,
    /// A month's report is due by this day of the next month.
    pub deadline_day: u8,
    /// The catalog the newest files were written with.
    pub catalog_version: String,
}

impl StoreMeta {
    pub fn read(data_dir: &Path) -> Result<StoreMeta, StoreError> {
        let path = data_dir.join(STORE_META_FILE);
        let text = fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
        toml::from_str(&text).map_err(|e| StoreError::Meta { path, message: e.to_string() })
    }

    /// Writes `store.toml` atomically.
    pub fn write(&self, data_dir: &Path) -> Result<(), StoreError> {
        let body = format!(
            "# Written by the sifa aggregator; read by `sifa query`. See docs/STORAGE.md.\n{}",
            toml::to_string(self).expect("plain fields")
        );
        write_atomic(data_dir, STORE_META_FILE, body.as_bytes())
    }
}

/// Writes a small file of the data directory atomically (temp, fsync, rename,
/// directory fsync).
pub fn write_atomic(dir: &Path, name: &str, body: &[u8]) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_err("cannot create directory", dir))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
    io::Write::write_all(&mut f, body).map_err(io_err("cannot write", &tmp))?;
    f.sync_all().map_err(io_err("cannot fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("cannot rename into place", &path))?;
    sync_dir(dir)
}

/// Creates (or refreshes) the described parts of a data directory: the store
/// description, the catalog and the registry in force.
pub fn write_reference_files(
    data_dir: &Path,
    meta: &StoreMeta,
    catalog: &Catalog,
    registry: &Registry,
) -> Result<(), StoreError> {
    meta.write(data_dir)?;
    write_atomic(data_dir, CATALOG_FILE, catalog.source().as_bytes())?;
    write_atomic(data_dir, REGISTRY_FILE, registry.to_csv().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn meta_and_reference_files() {
        let dir = tempfile::tempdir().unwrap();
        let meta = StoreMeta { root_unit: "62".into(), deadline_day: 5, catalog_version: "2024.1".into() };
        write_reference_files(dir.path(), &meta, &Catalog::builtin(), &Registry::demo()).unwrap();
        assert_eq!(StoreMeta::read(dir.path()).unwrap(), meta);
        let reg = Registry::load(&dir.path().join(REGISTRY_FILE)).unwrap();
        assert_eq!(reg.len(), Registry::demo().len());
        let cat = Catalog::load(&dir.path().join(CATALOG_FILE)).unwrap();
        assert_eq!(cat.source(), Catalog::builtin().source());
        fs::write(dir.path().join(STORE_META_FILE), "root_unit = 62\n").unwrap();
        let e = StoreMeta::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("store.toml"), "{e}");
    }
}
