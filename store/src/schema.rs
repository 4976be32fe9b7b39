//! A stored row and the Arrow schema of the Parquet files under `reports/`
//! (docs/STORAGE.md documents every column).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Array, Int64Array, Int64Builder, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use sifa_proto::Period;
use sifa_proto::catalog::{Catalog, ValueType};
use sifa_proto::registry::{Registry, UnitKind};
use sifa_proto::v1::Report;

use crate::StoreError;

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
                // -0 is written as 0: the same figure (`sifa_proto::validate::content_digest`), and DuckDB
                // reads a row group whose statistics say 0..0 as 0 whatever the sign, so readers agree.
                values.for_each(|v| b.append_option(v.map(|v| v + 0.0)));
                Arc::new(b.finish())
            }
        });
    }
    Ok(RecordBatch::try_new(arrow_schema(catalog), columns)?)
}
