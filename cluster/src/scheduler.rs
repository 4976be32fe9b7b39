//! `sifa-cluster scheduler`: a Ballista scheduler. It takes each plan a client submits, cuts it
//! into stages at its exchanges and hands the stages' tasks to the executors that poll it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use ballista_core::extension::{ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;

use crate::object_stores;

/// A session of the scheduler: DataFusion's and Ballista's functions, the stores of [`object_stores`].
fn session(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(object_stores::runtime()?)
        .with_default_features()
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build())
}

/// Serves until the process is stopped.
pub async fn run(bind: SocketAddr) -> anyhow::Result<()> {
    let mut config = SchedulerConfig::default()
        .with_hostname(bind.ip().to_string())
        .with_port(bind.port())
        .with_override_session_builder(Arc::new(session));
    config.bind_host = bind.ip().to_string();
    let cluster = BallistaCluster::new_from_config(&config).await.context("cannot set up the scheduler's state")?;
    tracing::info!(%bind, "sifa-cluster scheduler listening");
    start_server(cluster, bind, Arc::new(config)).await.with_context(|| format!("the scheduler on {bind} stopped"))
}
