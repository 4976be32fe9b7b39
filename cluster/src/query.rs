//! `sifa-cluster query`: SQL or a standard rollup over a store, run on a Ballista cluster.
//!
//! The client opens the store as `sifa query` does (`sifa_queries::Store`: the same tables, views
//! and rollup SQL) and plans the statement into DataFusion's physical plan, listing the store's
//! files; the plan goes to the scheduler, which cuts it into stages at its exchanges; the
//! executors run the stages' tasks, reading the files themselves; the client streams the last
//! stage's output from them. The session's small in-memory tables (`metrics`, `periods`, …)
//! travel inside the plan, the large ones (`units`) as Parquet beside the store
//! (`staged_tables`); the report files are read where the executors are.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::PhysicalPlanNode;
use futures::TryStreamExt;
use sifa_queries::cli::{What, print_answers, sql_of};
use sifa_queries::query::{self, Access, Answer};
use sifa_queries::remote::Bucket;
use sifa_queries::session::Store;

use crate::{plan_shape, staged_tables};

/// `sifa-cluster query`'s arguments once parsed.
#[derive(Debug)]
pub struct Query {
    /// `HOST:PORT` of the scheduler.
    pub scheduler: String,
    /// `s3://BUCKET/PREFIX` (a directory is refused: the executors read the bucket).
    pub data: PathBuf,
    /// How many tasks each stage is cut into.
    pub partitions: usize,
    pub what: What,
}

/// Runs the statements of `q` one after the other and prints their results as `sifa query` does.
pub async fn run(q: Query) -> anyhow::Result<()> {
    if !sifa_queries::remote::is_remote(&q.data) {
        anyhow::bail!(
            "--data {}: a cluster reads a store on object storage, s3://BUCKET/PREFIX (an aggregator's \
             `store`, docs/STORAGE.md); for a directory run `sifa query --data DIR`",
            q.data.display()
        );
    }
    let store = Store::open_data(&q.data).await?;
    let bucket = &store.remote.as_ref().expect("checked above: on object storage").bucket;
    let ctx = store.session().await?;
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        options.execution.target_partitions = q.partitions;
        // The scheduler plans each stage again (join order from the stages' real sizes): a plan
        // must not yet hold the dynamic filters DataFusion wires between a join's two sides.
        options.optimizer.enable_dynamic_filter_pushdown = false;
        options.optimizer.enable_join_dynamic_filter_pushdown = false;
        options.optimizer.enable_topk_dynamic_filter_pushdown = false;
        options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    }
    let sql = sql_of(&q.what, Some(&store.catalog))?
        .context("give the SQL to run: an argument, -f FILE.sql, --rollup NAME --year YYYY or stdin")?;
    let mut answers = Vec::new();
    for statement in query::split(&sql)? {
        answers.push(run_one(&ctx, bucket, &q.scheduler, &statement).await?);
    }
    print_answers(q.what.format, &answers)
}

/// One statement, planned here and executed on the cluster.
async fn run_one(ctx: &SessionContext, bucket: &Bucket, scheduler: &str, sql: &str) -> anyhow::Result<Answer> {
    let plan = query::plan_one(ctx, sql, Access::ReadOnly).await?;
    let physical = ctx.state().create_physical_plan(&plan).await.map_err(sifa_queries::QueryError::from)?;
    let schema = physical.schema();
    let session = session_id();
    let physical = plan_shape::reshape(physical)?;
    let (physical, staged) = staged_tables::stage(physical, bucket, &session).await?;
    let answer = submit(physical, scheduler, session).await;
    staged.remove().await;
    Ok(Answer { schema, batches: answer? })
}

/// Runs `physical` on the cluster and collects its rows.
async fn submit(
    physical: Arc<dyn ExecutionPlan>,
    scheduler: &str,
    session: String,
) -> anyhow::Result<Vec<RecordBatch>> {
    let config = SessionConfig::new_with_ballista();
    let codec = config.ballista_physical_extension_codec();
    if tracing::enabled!(tracing::Level::DEBUG) {
        use datafusion_proto::physical_plan::AsExecutionPlan;
        use prost::Message;
        let node = PhysicalPlanNode::try_from_physical_plan(physical.clone(), codec.as_ref())?;
        tracing::debug!(
            bytes = node.encoded_len(),
            "physical plan encoded:\n{}",
            datafusion::physical_plan::displayable(physical.as_ref()).indent(false)
        );
    }
    let url = format!("http://{scheduler}");
    let stream =
        execute_physical_plan::<PhysicalPlanNode>(url, &BallistaConfig::default(), physical, codec.as_ref(), session, config)
            .await
            .with_context(|| {
                format!("the Ballista scheduler at {scheduler} did not run the query (is `sifa-cluster scheduler` running there, with executors?)")
            })?;
    stream.try_collect().await.context("the cluster failed while running the query")
}

/// A session name unique to this run.
fn session_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("sifa-cluster-{}-{nanos}", std::process::id())
}
