//! Running SQL over an opened store: one or more statements, read-only.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

use crate::error::{QueryError, Result};

/// One statement's result.
#[derive(Debug)]
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Answer {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Queries may define views and settings for the session, never write files:
/// the store is read, not changed (`COPY`, `INSERT` are refused).
fn options() -> SQLOptions {
    SQLOptions::new().with_allow_dml(false)
}

/// Runs every statement of `sql` in order and returns each one's result.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<Answer>> {
    let statements = DFParser::parse_sql(sql)?;
    if statements.is_empty() {
        return Err(QueryError::Sql("no SQL statement given".to_string()));
    }
    let mut answers = Vec::with_capacity(statements.len());
    for statement in statements {
        let plan = ctx.state().statement_to_plan(statement).await?;
        options().verify_plan(&plan)?;
        // A live aggregator may compact files between a scan's listing and its reading: the
        // plan is run again (listing anew) when a Parquet file it listed has gone.
        let mut attempt = 1;
        let answer = loop {
            let df = ctx.execute_logical_plan(plan.clone()).await?;
            let schema = df.schema().inner().clone();
            match df.collect().await {
                Err(e) if attempt < COMPACTION_RETRIES && is_vanished_file(&e) => attempt += 1,
                Err(e) => return Err(e.into()),
                Ok(batches) => break Answer { schema, batches },
            }
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// How often a statement is run when files vanish under it (compaction of a live store).
const COMPACTION_RETRIES: u32 = 5;

/// Whether `e` is a listed Parquet file that no longer exists.
fn is_vanished_file(e: &datafusion::error::DataFusionError) -> bool {
    let text = e.to_string();
    text.contains(".parquet") && (text.contains("not found") || text.contains("No such file"))
}

/// Runs a single statement and returns its result.
pub async fn run_one(ctx: &SessionContext, sql: &str) -> Result<Answer> {
    let mut answers = run(ctx, sql).await?;
    match answers.len() {
        1 => Ok(answers.remove(0)),
        n => Err(QueryError::Sql(format!("expected one SQL statement, got {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_compacted_away_is_told_from_other_errors() {
        let gone = datafusion::error::DataFusionError::External(
            "Object at location /d/reports/year=2025/part-00000000000000000021.parquet not found: No such file or \
             directory (os error 2)"
                .into(),
        );
        assert!(is_vanished_file(&gone));
        let other = datafusion::error::DataFusionError::Plan("table 'x' not found".into());
        assert!(!is_vanished_file(&other));
    }
}
