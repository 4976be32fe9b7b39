//! Opening a store for SQL: a DataFusion session with sifa's tables and views
//! registered (queries/README.md documents each one and its columns).
//!
//! Base tables:
//! - `report_files`: the Parquet files under `reports/` as they are (a ListingTable
//!   with the Hive partition column `year`), before deduplication;
//! - `units`, `metrics`, `periods`: built here from registry.csv, catalog.toml and
//!   store.toml;
//! - `outlier_thresholds`, `outlier_bounds`: the catalog's `[outliers]` table,
//!   read by the `outliers` rollup;
//! - `approvals`: the tier's approvals (`approvals.csv`; none if the file is absent).
//!
//! Views over them (the SQL is in [`crate::views`]): `report_revisions`, `reports`,
//! `facts`, `yearly`, `yearly_facts`; and the table function `rollup(name, year, ...)`
//! ([`crate::rollup::RollupFunction`]).
//!
//! A live tier adds the reports it has acknowledged but not yet flushed to Parquet
//! ([`Store::session_with`], read at every scan), and a store seen by an analyst of a unit below its root
//! ([`Store::scoped_to`]) shows that unit's subtree only: `report_files`, `units` and
//! `approvals` hold no row of another unit, so no view or rollup over them can.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext, col, lit};
use sifa_proto::Period;
use sifa_proto::catalog::Catalog;
use sifa_proto::registry::Registry;
use sifa_store::layout::{self, CATALOG_FILE, REGISTRY_FILE, STORE_META_FILE};
use sifa_store::{StoreMeta, StoredReport, deadline_ms};

use crate::error::{QueryError, Result};
use crate::remote::{self, Remote};
use crate::rollup::RollupFunction;
use crate::views;

/// A data directory opened for reading: its description, catalog and registry.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
    pub meta: StoreMeta,
    pub catalog: Catalog,
    /// The registry in force, restricted to the store's root unit, its subtree
    /// and its ancestors.
    pub registry: Registry,
    /// The years that have a partition directory under `reports/`, ascending.
    pub years: Vec<u16>,
    /// The years whose current figures (`current/`, docs/STORAGE.md) cover exactly their report
    /// files when the store was opened: `reports` reads those years from `current/` instead of
    /// deduplicating `reports/`.
    pub current_years: Vec<u16>,
    /// The unit whose subtree a session shows: the root unit, or a unit below it ([`Store::scoped_to`]).
    pub scope: String,
    /// Where the store lives when it is on object storage (`dir` then holds its small files).
    pub remote: Option<Arc<Remote>>,
}

impl Store {
    /// Reads `store.toml`, `catalog.toml` and `registry.csv` of a data directory.
    pub fn open(dir: &Path) -> Result<Store> {
        for file in [STORE_META_FILE, CATALOG_FILE, REGISTRY_FILE] {
            if !dir.join(file).is_file() {
                return Err(QueryError::NotAStore { path: dir.to_path_buf(), what: file });
            }
        }
        let meta = StoreMeta::read(dir)?;
        let catalog_path = dir.join(CATALOG_FILE);
        let catalog =
            Catalog::load(&catalog_path).map_err(|source| QueryError::Catalog { path: catalog_path, source })?;
        let registry_path = dir.join(REGISTRY_FILE);
        let full =
            Registry::load(&registry_path).map_err(|source| QueryError::Registry { path: registry_path, source })?;
        if full.get(&meta.root_unit).is_none() {
            return Err(QueryError::UnknownRoot(meta.root_unit.clone()));
        }
        let registry = full.restricted_to(&meta.root_unit);
        let years = stored_years(dir)?;
        let current_years = sifa_store::current::covered_years(dir)?;
        let scope = meta.root_unit.clone();
        Ok(Store { dir: dir.to_path_buf(), meta, catalog, registry, years, current_years, scope, remote: None })
    }

    /// Opens `--data`: a data directory, or a store on object storage (`s3://bucket/prefix`,
    /// [`crate::remote`]).
    pub async fn open_data(data: &Path) -> Result<Store> {
        if !remote::is_remote(data) {
            return Store::open(data);
        }
        let remote = Remote::open(&data.to_string_lossy()).await?;
        let store = Store::open(remote.cache_dir().expect("Remote::open fetches the small files"))?;
        store.with_remote(remote).await
    }

    /// The store of a live tier whose report files live in `bucket` (its `store` key), its small
    /// files in its data directory `dir`.
    pub async fn open_in_bucket(dir: &Path, bucket: remote::Bucket) -> Result<Store> {
        Store::open(dir)?.with_remote(Remote::of_tier(bucket)).await
    }

    /// This store's small files with the report files of `remote`.
    async fn with_remote(self, remote: Remote) -> Result<Store> {
        let years = remote.years().await?;
        Ok(Store { years: years.stored, current_years: years.current, remote: Some(Arc::new(remote)), ..self })
    }

    /// Where the store is, as the user named it.
    pub fn location(&self) -> String {
        match &self.remote {
            Some(r) => r.url().to_string(),
            None => self.dir.display().to_string(),
        }
    }

    /// The same store seen from `unit` (the root or a unit below it): its sessions hold no row of a
    /// unit outside `unit`'s subtree.
    pub fn scoped_to(&self, unit: &str) -> Result<Store> {
        if !self.registry.is_within(unit, &self.meta.root_unit) {
            return Err(QueryError::OutsideStore { unit: unit.to_string(), root: self.meta.root_unit.clone() });
        }
        Ok(Store { scope: unit.to_string(), ..self.clone() })
    }

    /// Whether the sessions show less than the whole store.
    fn is_scoped(&self) -> bool {
        self.scope != self.meta.root_unit
    }

    /// Whether a unit's rows are in this store's sessions.
    fn shows(&self, unit_code: &str) -> bool {
        !self.is_scoped() || self.registry.is_within(unit_code, &self.scope)
    }

    /// Lists the years under `reports/` again, before each statement of a live tier (which adds a
    /// year's directory when it first flushes it): one listing, nothing read. The current years are
    /// forgotten: a live session deduplicates the report files (it outlives the current files it
    /// would read), and so would any session built from this store afterwards.
    pub async fn refresh_years(&mut self) -> Result<()> {
        self.years = match &self.remote {
            Some(remote) => remote.stored_years().await?,
            None => stored_years(&self.dir)?,
        };
        self.current_years = Vec::new();
        Ok(())
    }

    /// The store's root unit (a province, city or county).
    pub fn root(&self) -> &sifa_proto::Unit {
        self.registry.get(&self.meta.root_unit).expect("checked in open")
    }

    /// A session over this store with every table and view registered.
    pub async fn session(&self) -> Result<SessionContext> {
        self.session_with(None).await
    }

    /// A session over this store and, for a live tier, `unflushed`: the reports it has acknowledged but
    /// not yet written to Parquet, read again by every scan of `report_files` (so the session can be
    /// kept while the tier takes reports; [`Store::session_key`] says when it must be built again).
    /// A row flushed during a scan may be read from both; every view keeps one copy of a revision.
    pub async fn session_with(&self, unflushed: Option<Arc<dyn Unflushed>>) -> Result<SessionContext> {
        let config =
            SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("sifa", "store");
        // No cached file listings: a live tier adds, and its compaction replaces, files between
        // two statements of a session (the prompt) and between two attempts of one (`query::run`).
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        if let Some(remote) = &self.remote {
            remote.register(&ctx)?;
        }
        let years = match &unflushed {
            Some(u) => self.years_with(&u.reports()),
            None => self.years.clone(),
        };
        // A live tier's session outlives the current files it would have read: it deduplicates.
        let current_years = if unflushed.is_some() { Vec::new() } else { self.current_years.clone() };
        self.register_report_files(&ctx, unflushed).await?;
        if !current_years.is_empty() {
            let current = self.scoped(&ctx, self.listing(layout::CURRENT_DIR)?)?;
            ctx.register_table("current_files", current)?;
        }
        ctx.register_batch("units", units_batch(&self.registry, &self.meta.root_unit, |u| self.shows(u))?)?;
        ctx.register_batch("metrics", metrics_batch(&self.catalog)?)?;
        ctx.register_batch("periods", periods_batch(&years, self.meta.deadline_day)?)?;
        ctx.register_batch("outlier_thresholds", outlier_thresholds_batch(&self.catalog)?)?;
        ctx.register_batch("outlier_bounds", outlier_bounds_batch(&self.catalog)?)?;
        ctx.register_batch("approvals", approvals_batch(&self.dir, |u| self.shows(u))?)?;
        for (name, sql) in views::all(&self.catalog, &current_years) {
            ctx.sql(&sql).await.map_err(|e| QueryError::Sql(format!("defining view {name}: {e}")))?;
        }
        ctx.register_udtf(RollupFunction::NAME, Arc::new(RollupFunction::new(self.catalog.clone())));
        Ok(ctx)
    }

    /// What a live session depends on besides the rows it scans: the years (its `periods`) and the
    /// approvals file. A session built when the key was the same can be used again.
    pub fn session_key(&self, unflushed: &dyn Unflushed) -> Result<SessionKey> {
        let years = self.years_with(&unflushed.reports());
        let approvals = std::fs::metadata(self.dir.join(sifa_store::approvals::APPROVALS_CSV))
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        Ok(SessionKey { years, approvals })
    }

    /// The store's years and those of `unflushed`, ascending.
    fn years_with(&self, unflushed: &[StoredReport]) -> Vec<u16> {
        let mut years = self.years.clone();
        years.extend(unflushed.iter().filter(|r| self.shows(&r.report.unit_code)).map(|r| r.period.year()));
        years.sort_unstable();
        years.dedup();
        years
    }

    /// `report_files`: the Parquet files, rows outside the scope removed, and the unflushed reports.
    async fn register_report_files(&self, ctx: &SessionContext, unflushed: Option<Arc<dyn Unflushed>>) -> Result<()> {
        let files = self.scoped(ctx, self.listing(layout::REPORTS_DIR)?)?;
        let table = match unflushed {
            None => files,
            Some(unflushed) => Arc::new(LiveReportFiles { files, unflushed, store: self.clone() }),
        };
        ctx.register_table("report_files", table)?;
        Ok(())
    }

    /// `table` without the rows of units outside the scope.
    fn scoped(&self, ctx: &SessionContext, table: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
        if !self.is_scoped() {
            return Ok(table);
        }
        let units = self.registry.subtree(&self.scope).into_iter().map(|u| lit(u.code.as_str())).collect();
        Ok(ctx.read_table(table)?.filter(col("unit_code").in_list(units, false))?.into_view())
    }

    /// The Parquet files under `name` (`reports` or `current`) as one table with the partition
    /// column `year`.
    fn listing(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let file_schema = sifa_store::arrow_schema(&self.catalog);
        let empty = || -> Result<Arc<dyn TableProvider>> {
            // A store that has not flushed anything yet: the same columns, no rows.
            Ok(Arc::new(MemTable::try_new(with_year(&file_schema), vec![vec![]])?))
        };
        let url = match &self.remote {
            Some(_) if self.years.is_empty() => return empty(),
            Some(remote) => ListingTableUrl::parse(remote.table_url(name))?,
            None => {
                let dir = self.dir.join(name);
                if !dir.is_dir() {
                    return empty();
                }
                let abs = dir.canonicalize().map_err(|source| QueryError::Io {
                    what: "cannot resolve",
                    path: dir.to_path_buf(),
                    source,
                })?;
                ListingTableUrl::parse(format!("{}/", abs.display()))?
            }
        };
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("year".to_string(), DataType::Int32)]);
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(file_schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

/// The years that have a partition directory under `reports/`, ascending.
fn stored_years(dir: &Path) -> Result<Vec<u16>> {
    let mut years: Vec<u16> = sifa_store::list_files(dir)?.into_iter().map(|(y, _, _)| y).collect();
    years.sort_unstable();
    years.dedup();
    Ok(years)
}

/// The columns of `report_files`: a file's and the partition column `year`.
fn with_year(file_schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = file_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("year", DataType::Int32, false));
    Arc::new(Schema::new(fields))
}

/// What a live session was built for ([`Store::session_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    years: Vec<u16>,
    approvals: Option<(Option<std::time::SystemTime>, u64)>,
}

/// The reports a live tier has acknowledged (durable in its log) but not yet written to Parquet.
pub trait Unflushed: Send + Sync + std::fmt::Debug + 'static {
    /// A snapshot of them, in log order.
    fn reports(&self) -> Vec<StoredReport>;
}

/// `report_files` of a live tier: each scan reads the Parquet files and the reports not yet in them.
#[derive(Debug)]
struct LiveReportFiles {
    files: Arc<dyn TableProvider>,
    unflushed: Arc<dyn Unflushed>,
    store: Store,
}

#[async_trait::async_trait]
impl TableProvider for LiveReportFiles {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // The files prune with them; the unflushed rows are filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let files = self.files.scan(state, projection, filters, limit).await?;
        let rows: Vec<StoredReport> =
            self.unflushed.reports().into_iter().filter(|r| self.store.shows(&r.report.unit_code)).collect();
        if rows.is_empty() {
            return Ok(files);
        }
        let batch = unflushed_batch(&self.store.catalog, &rows).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let memory =
            MemTable::try_new(self.schema(), vec![vec![batch]])?.scan(state, projection, filters, limit).await?;
        UnionExec::try_new(vec![files, memory])
    }
}

/// Reports not yet in Parquet as rows of `report_files` (a file's columns and `year`).
fn unflushed_batch(catalog: &Catalog, rows: &[StoredReport]) -> Result<RecordBatch> {
    let batch = sifa_store::record_batch(catalog, rows)?;
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| i32::from(r.period.year())))));
    RecordBatch::try_new(with_year(&batch.schema()), columns).map_err(|e| DataFusionError::from(e).into())
}

/// Opens a data directory and returns the store and a session over it.
pub async fn open(dir: &Path) -> Result<(Store, SessionContext)> {
    let store = Store::open_data(dir).await?;
    let ctx = store.session().await?;
    Ok((store, ctx))
}

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(it.collect::<StringArray>())
}

#[derive(Clone, Copy)]
enum Level {
    Province,
    City,
    County,
}

/// The `units` table: the registry with each unit's province, city and county (the units `shows`).
fn units_batch(registry: &Registry, root: &str, shows: impl Fn(&str) -> bool) -> Result<RecordBatch> {
    let units: Vec<&sifa_proto::Unit> = registry.units().iter().filter(|u| shows(&u.code)).collect();
    let lineages: Vec<_> = units.iter().map(|u| registry.lineage(&u.code)).collect();
    let level = |pick: Level, name: bool| -> ArrayRef {
        strings(lineages.iter().map(|l| {
            let unit = match pick {
                Level::Province => l.province,
                Level::City => l.city,
                Level::County => l.county,
            };
            unit.map(|u| if name { u.name.as_str() } else { u.code.as_str() })
        }))
    };
    let schema = Schema::new(vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("kind_zh", DataType::Utf8, false),
        Field::new("is_reporting", DataType::Boolean, false),
        Field::new("in_store", DataType::Boolean, false),
        Field::new("parent", DataType::Utf8, true),
        Field::new("province_code", DataType::Utf8, true),
        Field::new("province_name", DataType::Utf8, true),
        Field::new("city_code", DataType::Utf8, true),
        Field::new("city_name", DataType::Utf8, true),
        Field::new("county_code", DataType::Utf8, true),
        Field::new("county_name", DataType::Utf8, true),
        Field::new("population", DataType::UInt64, true),
        Field::new("villages", DataType::Int64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        strings(units.iter().map(|u| Some(u.code.as_str()))),
        strings(units.iter().map(|u| Some(u.name.as_str()))),
        strings(units.iter().map(|u| Some(u.kind.as_str()))),
        strings(units.iter().map(|u| Some(u.kind.name_zh()))),
        Arc::new(units.iter().map(|u| Some(u.kind.is_reporting())).collect::<BooleanArray>()),
        Arc::new(units.iter().map(|u| Some(registry.is_within(&u.code, root))).collect::<BooleanArray>()),
        strings(units.iter().map(|u| u.parent.as_deref())),
        level(Level::Province, false),
        level(Level::Province, true),
        level(Level::City, false),
        level(Level::City, true),
        level(Level::County, false),
        level(Level::County, true),
        Arc::new(units.iter().map(|u| u.population).collect::<UInt64Array>()),
        Arc::new(units.iter().map(|u| u.villages.map(i64::from)).collect::<Int64Array>()),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| DataFusionError::from(e).into())
}

/// The `metrics` table: the catalog in force, in catalog order.
fn metrics_batch(catalog: &Catalog) -> Result<RecordBatch> {
    let m = catalog.metrics();
    let schema = Schema::new(vec![
        Field::new("position", DataType::Int32, false),
        Field::new("code", DataType::Utf8, false),
        Field::new("name_zh", DataType::Utf8, false),
        Field::new("name_en", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, true),
        Field::new("group", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(1..=m.len() as i32)),
        strings(m.iter().map(|x| Some(x.code.as_str()))),
        strings(m.iter().map(|x| Some(x.name_zh.as_str()))),
        strings(m.iter().map(|x| Some(x.name_en.as_str()))),
        strings(m.iter().map(|x| Some(x.unit.as_str()))),
        strings(m.iter().map(|x| Some(x.kind.as_str()))),
        strings(m.iter().map(|x| Some(x.value_type.as_str()))),
        Arc::new(m.iter().map(|x| Some(x.min)).collect::<Float64Array>()),
        Arc::new(m.iter().map(|x| x.max).collect::<Float64Array>()),
        strings(m.iter().map(|x| Some(x.group.as_str()))),
        strings(m.iter().map(|x| x.note.as_deref())),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| DataFusionError::from(e).into())
}

/// The `outlier_thresholds` table: one row, the catalog's `[outliers]` thresholds.
fn outlier_thresholds_batch(catalog: &Catalog) -> Result<RecordBatch> {
    let o = catalog.outliers();
    let schema = Schema::new(vec![
        Field::new("robust_score", DataType::Float64, false),
        Field::new("min_months", DataType::Int64, false),
        Field::new("jump_ratio", DataType::Float64, false),
        Field::new("small_difference", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![o.robust_score])),
        Arc::new(Int64Array::from(vec![i64::from(o.min_months)])),
        Arc::new(Float64Array::from(vec![o.jump_ratio])),
        Arc::new(Float64Array::from(vec![o.small_difference])),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| DataFusionError::from(e).into())
}

/// The `outlier_bounds` table: the catalog's `[[outliers.bound]]`s.
fn outlier_bounds_batch(catalog: &Catalog) -> Result<RecordBatch> {
    let b = &catalog.outliers().bounds;
    let schema = Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("per", DataType::Utf8, false),
        Field::new("max", DataType::Float64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        strings(b.iter().map(|x| Some(x.metric.as_str()))),
        strings(b.iter().map(|x| Some(x.per.as_str()))),
        Arc::new(b.iter().map(|x| Some(x.max)).collect::<Float64Array>()),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| DataFusionError::from(e).into())
}

/// The `approvals` table: every approval, acceptance and withdrawal the tier
/// recorded, as `approvals.csv` holds them (docs/STORAGE.md), of the units `shows`.
fn approvals_batch(dir: &Path, shows: impl Fn(&str) -> bool) -> Result<RecordBatch> {
    let path = dir.join(sifa_store::approvals::APPROVALS_CSV);
    let mut rows: Vec<[String; 11]> = Vec::new();
    if path.is_file() {
        let bad = |e: csv::Error| {
            QueryError::Sql(format!("{}: {e}; the aggregator rewrites it on its next approval", path.display()))
        };
        let mut reader = csv::Reader::from_path(&path).map_err(bad)?;
        for record in reader.records() {
            let record = record.map_err(bad)?;
            if !shows(record.get(1).unwrap_or_default()) {
                continue;
            }
            let mut row: [String; 11] = Default::default();
            for (i, cell) in row.iter_mut().enumerate() {
                *cell = record.get(i).unwrap_or_default().to_string();
            }
            rows.push(row);
        }
    }
    let text = |i: usize| strings(rows.iter().map(move |r| Some(r[i].as_str())));
    let optional = |i: usize| strings(rows.iter().map(move |r| Some(r[i].as_str()).filter(|t| !t.is_empty())));
    let ms = |i: usize| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| r[i].parse::<i64>().ok().filter(|ms| *ms > 0))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        )
    };
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Schema::new(vec![
        Field::new("period", DataType::Utf8, false),
        Field::new("unit_code", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("approved_by", DataType::Utf8, false),
        Field::new("approved_at", ts.clone(), true),
        Field::new("accepted_by", DataType::Utf8, true),
        Field::new("accepted_at", ts.clone(), true),
        Field::new("via", DataType::Utf8, true),
        Field::new("withdrawn_by", DataType::Utf8, true),
        Field::new("withdrawn_at", ts, true),
        Field::new("withdraw_reason", DataType::Utf8, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        text(0),
        text(1),
        text(2),
        text(3),
        ms(4),
        optional(5),
        ms(6),
        optional(7),
        optional(8),
        ms(9),
        optional(10),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| DataFusionError::from(e).into())
}

/// The `periods` table: every month of every year the store holds, with its
/// deadline (`sifa_store::deadline_ms`, the rule the aggregator's completeness uses too).
fn periods_batch(years: &[u16], deadline_day: u8) -> Result<RecordBatch> {
    let periods: Vec<Period> =
        years.iter().flat_map(|&y| (1..=12).filter_map(move |m| Period::new(y, m))).collect::<Vec<_>>();
    let texts: Vec<String> = periods.iter().map(|p| p.to_string()).collect();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Schema::new(vec![
        Field::new("period", DataType::Utf8, false),
        Field::new("year", DataType::Int32, false),
        Field::new("month", DataType::Int32, false),
        Field::new("due_at", ts, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        strings(texts.iter().map(|t| Some(t.as_str()))),
        Arc::new(Int32Array::from_iter_values(periods.iter().map(|p| p.year() as i32))),
        Arc::new(Int32Array::from_iter_values(periods.iter().map(|p| p.month() as i32))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(periods.iter().map(|p| deadline_ms(*p, deadline_day)))
                .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| DataFusionError::from(e).into())
}

/// A DataFusion error as a person should read it: the first line of the
/// message without the internal wrapping, and what to look at.
pub fn explain_error(e: &DataFusionError) -> String {
    let root = e.find_root();
    let text = root.to_string();
    let text = text
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    let hint = if text.contains("table") && text.contains("not found") {
        "\n  the tables and views are: reports, report_revisions, units, metrics, facts, yearly, yearly_facts, \
         periods, outlier_thresholds, outlier_bounds, approvals, report_files (SHOW TABLES lists them; queries/README.md documents their columns)"
    } else {
        ""
    };
    format!("{text}{hint}")
}
