//! Running SQL over an opened store: one or more statements, read-only.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

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

/// What statements may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `sifa query` on a directory: views and settings for the session, never writes (the store is read,
    /// not changed: `COPY`, `INSERT` are refused).
    Session,
    /// A shared endpoint (Flight SQL): queries only; no view, setting or write.
    ReadOnly,
}

impl Access {
    fn options(self) -> SQLOptions {
        match self {
            Access::Session => SQLOptions::new().with_allow_dml(false),
            Access::ReadOnly => {
                SQLOptions::new().with_allow_dml(false).with_allow_ddl(false).with_allow_statements(false)
            }
        }
    }

    /// Refuses, before planning, a statement this access does not allow, naming it.
    fn check(self, statement: &Statement) -> Result<()> {
        if self == Access::Session {
            return Ok(());
        }
        let allowed = match statement {
            Statement::Statement(s) => {
                matches!(
                    **s,
                    SqlStatement::Query(_) | SqlStatement::ShowTables { .. } | SqlStatement::ShowColumns { .. }
                )
            }
            Statement::Explain(e) => {
                matches!(&*e.statement, Statement::Statement(s) if matches!(**s, SqlStatement::Query(_)))
            }
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        let text = statement.to_string();
        let head: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        Err(QueryError::ReadOnly(head))
    }
}

/// Parses `sql` into its statements (at least one).
fn parse(sql: &str) -> Result<Vec<Statement>> {
    let statements: Vec<Statement> = DFParser::parse_sql(sql)?.into_iter().collect();
    if statements.is_empty() {
        return Err(QueryError::Sql("no SQL statement given".to_string()));
    }
    Ok(statements)
}

/// The plan of the single statement `sql`, checked against `access`.
pub async fn plan_one(ctx: &SessionContext, sql: &str, access: Access) -> Result<LogicalPlan> {
    let mut statements = parse(sql)?;
    if statements.len() != 1 {
        return Err(QueryError::Sql(format!("expected one SQL statement, got {}", statements.len())));
    }
    plan(ctx, statements.remove(0), access).await
}

async fn plan(ctx: &SessionContext, statement: Statement, access: Access) -> Result<LogicalPlan> {
    access.check(&statement)?;
    let plan = ctx.state().statement_to_plan(statement).await?;
    access.options().verify_plan(&plan)?;
    Ok(plan)
}

/// Each statement of `sql` as its own text (what `sifa query --connect` sends one at a time).
pub fn split(sql: &str) -> Result<Vec<String>> {
    Ok(parse(sql)?.iter().map(|s| s.to_string()).collect())
}

/// Runs every statement of `sql` in order and returns each one's result.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<Answer>> {
    run_with(ctx, sql, Access::Session).await
}

/// [`run`] with the statements `access` allows.
pub async fn run_with(ctx: &SessionContext, sql: &str, access: Access) -> Result<Vec<Answer>> {
    let statements = parse(sql)?;
    let mut answers = Vec::with_capacity(statements.len());
    for statement in statements {
        let plan = plan(ctx, statement, access).await?;
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
    run_one_with(ctx, sql, Access::Session).await
}

/// [`run_one`] with the statements `access` allows.
pub async fn run_one_with(ctx: &SessionContext, sql: &str, access: Access) -> Result<Answer> {
    let mut answers = run_with(ctx, sql, access).await?;
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
