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
        let df = ctx.execute_logical_plan(plan).await?;
        let schema = df.schema().inner().clone();
        let batches = df.collect().await?;
        answers.push(Answer { schema, batches });
    }
    Ok(answers)
}

/// Runs a single statement and returns its result.
pub async fn run_one(ctx: &SessionContext, sql: &str) -> Result<Answer> {
    let mut answers = run(ctx, sql).await?;
    match answers.len() {
        1 => Ok(answers.remove(0)),
        n => Err(QueryError::Sql(format!("expected one SQL statement, got {n}"))),
    }
}
