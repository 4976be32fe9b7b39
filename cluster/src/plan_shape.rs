//! A plan reshaped before it goes to the scheduler, around what Ballista 55 runs wrongly.
//!
//! A cross join (or an inner nested-loop join, a cross join with a filter) whose collected (left)
//! side is made one partition by a `CoalescePartitionsExec` (under projections and filters), when
//! its other side has one partition, repeated rows on a cluster inside a stage of several
//! partitions: the `outliers` rollup's `CROSS JOIN t` (the catalog's one-row
//! thresholds) under a `UNION ALL` came back with every row nine or ten times, a different count
//! from run to run (tests/ballista.rs holds every rollup equal to the local run). The same join
//! with its sides swapped — the one-partition side collected, the partitioned side streamed
//! as it is, no coalescing — gives the same rows in the same columns and runs right.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{CrossJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// `plan` with every such join swapped.
pub fn reshape(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan.transform_up(|node| Ok(swapped(&node)?.map_or(Transformed::no(node), Transformed::yes)))?.data)
}

/// The join `node` with its sides swapped, if it is such a join. The partitioned side goes on the
/// left as it is, then the join is swapped: the one-partition side is collected and a projection
/// puts the columns back in their order.
fn swapped(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let single = |side: &Arc<dyn ExecutionPlan>| side.output_partitioning().partition_count() == 1;
    if let Some(join) = node.downcast_ref::<CrossJoinExec>()
        && let Some(input) = coalesced(join.left())
        && single(join.right())
    {
        return Ok(Some(CrossJoinExec::new(input, join.right().clone()).swap_inputs()?));
    }
    if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>()
        && *join.join_type() == JoinType::Inner
        && let Some(input) = coalesced(join.left())
        && single(join.right())
    {
        let projection = join.projection().as_ref().map(|p| p.iter().copied().collect());
        let unswapped = NestedLoopJoinExec::try_new(
            input,
            join.right().clone(),
            join.filter().cloned(),
            join.join_type(),
            projection,
        )?;
        return Ok(Some(unswapped.swap_inputs()?));
    }
    Ok(None)
}

/// `side` without the `CoalescePartitionsExec` that makes it one partition, if it has one under
/// projections and filters only (which work on each partition alike).
fn coalesced(side: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(c) = side.downcast_ref::<CoalescePartitionsExec>() {
        return Some(c.input().clone());
    }
    if !(side.is::<ProjectionExec>() || side.is::<FilterExec>()) {
        return None;
    }
    let below = coalesced(side.children().first()?)?;
    datafusion::physical_plan::replace_children_if_necessary(side.clone(), vec![below]).ok()
}
