//! The sqllogictest suite: every `tests/slt/*.slt` file runs against a fixture
//! store (tests/fixtures/mod.rs) written into a fresh temporary directory, with
//! sifa's tables and views registered exactly as `sifa query` registers them.
//!
//! A file names its fixture on its first line: `# fixture: province`,
//! `# fixture: panjin` or `# fixture: national`. Besides SQL, a record may run a standard rollup from
//! queries/sql/ by name: `rollup NAME year=YYYY [metric=CODE] [limit=N]`.
//!
//! Run one file: `cargo test -p sifa-queries --test slt -- NAME` (a substring
//! of the file name). One binary for the whole suite keeps link time down.

mod fixtures;

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use sifa_queries::format;
use sifa_queries::query::{self, Answer};
use sifa_queries::rollup::{self, Params};
use sifa_queries::{QueryError, Store};
use sqllogictest::{DBOutput, DefaultColumnType, Runner, strict_column_validator};

struct SifaDb {
    ctx: SessionContext,
    store: Store,
}

/// `rollup NAME year=2024 metric=... limit=...` as the rollup's SQL.
fn rollup_sql(store: &Store, line: &str) -> Result<String, QueryError> {
    let mut words = line.split_whitespace().skip(1);
    let name = words.next().unwrap_or_default();
    let mut params = Params::year(0);
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        match k {
            "year" => params.year = v.parse().unwrap_or(0),
            "metric" => params.metric = Some(v.to_string()),
            "limit" => params.limit = v.parse().ok(),
            _ => return Err(QueryError::Sql(format!("unknown rollup parameter {w:?}"))),
        }
    }
    rollup::find(name)?.sql_for(&params, &store.catalog)
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn output(answer: &Answer) -> Result<DBOutput<DefaultColumnType>, QueryError> {
    let types = answer.schema.fields().iter().map(|f| column_type(f.data_type())).collect();
    let cells = format::cells(&answer.schema, &answer.batches)?;
    let rows = cells
        .rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| match v {
                    None => "NULL".to_string(),
                    Some(s) if s.is_empty() => "(empty)".to_string(),
                    Some(s) => s,
                })
                .collect()
        })
        .collect();
    Ok(DBOutput::Rows { types, rows })
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SifaDb {
    type Error = QueryError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, QueryError> {
        let trimmed = sql.trim();
        let sql = match trimmed.strip_prefix("rollup ") {
            // `rollup NAME params | SELECT ... FROM rollup ...`: SQL over the rollup's result.
            Some(rest) if rest.contains(" | ") => {
                let (call, select) = rest.split_once(" | ").expect("checked");
                let inner = rollup_sql(&self.store, &format!("rollup {call}"))?;
                let inner = inner.trim().trim_end_matches(';');
                select.replacen("FROM rollup", &format!("FROM ({inner}) AS rollup"), 1)
            }
            Some(_) => rollup_sql(&self.store, trimmed)?,
            None => trimmed.to_string(),
        };
        let mut answers = query::run(&self.ctx, &sql).await?;
        let last = answers.pop().expect("run returns one answer per statement");
        if last.schema.fields().is_empty() || (sql.to_ascii_lowercase().starts_with("create ")) {
            return Ok(DBOutput::StatementComplete(0));
        }
        output(&last)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "sifa-datafusion"
    }
}

fn fixture_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().next().and_then(|l| l.strip_prefix("# fixture:")).map(|f| f.trim().to_string()).unwrap_or_else(|| {
        panic!("{}: the first line must name the fixture, e.g. `# fixture: province`", path.display())
    })
}

async fn run_file(path: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    match fixture_of(path).as_str() {
        "province" => fixtures::province(dir.path()),
        "panjin" => fixtures::panjin(dir.path()),
        "national" => fixtures::national(dir.path()),
        "outliers" => fixtures::outliers(dir.path()),
        "outliers_jump5" => fixtures::outliers_jump5(dir.path()),
        other => return Err(format!("unknown fixture {other:?}")),
    }
    let store = Store::open(dir.path()).map_err(|e| e.to_string())?;
    let ctx = store.session().await.map_err(|e| e.to_string())?;
    let mut runner = Runner::new(move || {
        let (ctx, store) = (ctx.clone(), store.clone());
        async move { Ok::<_, QueryError>(SifaDb { ctx, store }) }
    });
    runner.with_column_validator(strict_column_validator);
    runner.run_file_async(path).await.map_err(|e| e.display(true).to_string())
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let slt_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&slt_dir)
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| filter.as_ref().is_none_or(|f| p.to_string_lossy().contains(f.as_str())))
        .collect();
    files.sort();
    assert!(filter.is_some() || !files.is_empty(), "no .slt files in {}", slt_dir.display());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut failed = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        match rt.block_on(run_file(f)) {
            Ok(()) => println!("slt {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("slt {name} ... FAILED\n{e}\n");
            }
        }
    }
    println!("\nslt: {} passed, {failed} failed", files.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
