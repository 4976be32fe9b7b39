//! The store's in-memory tables, read by executors from the bucket.
//!
//! A `sifa_queries` session holds its small tables in memory (`units` is the registry: some
//! 48,000 rows nationally). A physical plan carries such a table's rows inside it, once per scan,
//! and a rollup scans `units` several times: a national `totals` plan would weigh 17 MB, past
//! what a scheduler takes in one message, and would travel again with every task. Before
//! submitting, the client puts each in-memory table of more than [`MAX_INLINE_ROWS`] rows as one
//! Parquet object under `PREFIX/cluster/SESSION/` (beside the store, outside `reports/` and
//! `current/`, which the aggregator owns) and the plan reads it from there, the same
//! rows through the same projection. The objects are deleted when the statement is done.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sifa_queries::remote::Bucket;

/// In-memory tables up to this many rows stay inside the plan.
pub const MAX_INLINE_ROWS: usize = 1_000;

/// The objects one statement put, deleted by [`Staged::remove`].
#[derive(Debug)]
pub struct Staged {
    store: Arc<dyn ObjectStore>,
    objects: Vec<ObjectPath>,
}

impl Staged {
    /// Deletes the objects (one that is already gone is no error).
    pub async fn remove(self) {
        for object in self.objects {
            if let Err(e) = self.store.delete(&object).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::warn!(%object, error = %e, "cannot delete a staged table; delete it by hand");
            }
        }
    }
}

/// `plan` with each in-memory table of more than [`MAX_INLINE_ROWS`] rows read from a Parquet
/// object put under `bucket`'s `cluster/SESSION/`.
pub async fn stage(
    plan: Arc<dyn ExecutionPlan>,
    bucket: &Bucket,
    session: &str,
) -> Result<(Arc<dyn ExecutionPlan>, Staged)> {
    // The plan's large in-memory scans, by the address of their node (a plan shares none).
    let mut large: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    plan.apply(|node| {
        if memory_source(node).is_some_and(|m| rows(m) > MAX_INLINE_ROWS) {
            large.push(node.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut staged = Staged { store: bucket.store.clone(), objects: Vec::new() };
    let url = ObjectStoreUrl::parse(format!("s3://{}", bucket.bucket))?;
    let mut replacement: HashMap<usize, Arc<dyn ExecutionPlan>> = HashMap::new();
    // A table scanned several times (`units`) is put once: its scans share its batches.
    let mut put: HashMap<usize, (ObjectPath, u64)> = HashMap::new();
    for node in &large {
        let memory = memory_source(node).expect("chosen above");
        let table = table_address(memory);
        let (object, size) =
            match put.get(&table) {
                Some(done) => done.clone(),
                None => {
                    let object = bucket.object(&format!("cluster/{session}/table-{}.parquet", put.len()));
                    let bytes = parquet_bytes(memory)?;
                    let size = bytes.len() as u64;
                    bucket.store.put(&object, PutPayload::from(bytes)).await.map_err(|e| {
                        DataFusionError::External(bucket.error(&format!("cannot put {object}"), e).into())
                    })?;
                    staged.objects.push(object.clone());
                    put.insert(table, (object.clone(), size));
                    (object, size)
                }
            };
        let source = Arc::new(ParquetSource::new(memory.original_schema()));
        let config = FileScanConfigBuilder::new(url.clone(), source)
            .with_file(PartitionedFile::new(object.to_string(), size))
            .with_projection_indices(memory.projection().clone())?
            .with_limit(datafusion::datasource::source::DataSource::fetch(memory))
            .build();
        replacement.insert(address(node), DataSourceExec::from_data_source(config));
    }
    if replacement.is_empty() {
        return Ok((plan, staged));
    }
    let plan = plan
        .transform_up(|node| match replacement.get(&address(&node)) {
            Some(new) => Ok(Transformed::yes(new.clone())),
            None => Ok(Transformed::no(node)),
        })?
        .data;
    Ok((plan, staged))
}

fn address(node: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(node) as *const () as usize
}

/// What tells an in-memory table from another: the address of its first column's data.
fn table_address(memory: &MemorySourceConfig) -> usize {
    let first = memory.partitions().iter().flatten().next().and_then(|b| b.columns().first().cloned());
    first.map_or(0, |c| c.to_data().buffers().first().map_or(0, |b| b.as_ptr() as usize))
}

/// The in-memory table a node scans, if it is such a scan.
fn memory_source(node: &Arc<dyn ExecutionPlan>) -> Option<&MemorySourceConfig> {
    node.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<MemorySourceConfig>()
}

fn rows(memory: &MemorySourceConfig) -> usize {
    memory.partitions().iter().flatten().map(|b| b.num_rows()).sum()
}

/// Every row of an in-memory table, all its columns, as one Parquet file.
fn parquet_bytes(memory: &MemorySourceConfig) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, memory.original_schema(), None)?;
    for batch in memory.partitions().iter().flatten() {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out)
}
