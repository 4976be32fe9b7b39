//! `sifa-cluster executor`: a Ballista executor. It registers with a scheduler, polls it for
//! tasks, reads the store's files (a bucket through [`crate::object_stores`]), keeps the output
//! of its stages in its work directory and serves it to the next stage and to the client over
//! Arrow Flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};

use crate::object_stores;

/// Where an executor listens and what it takes on.
#[derive(Debug)]
pub struct Executor {
    pub scheduler: SocketAddr,
    /// Arrow Flight: the stage outputs the next stage and the client fetch.
    pub bind: SocketAddr,
    /// The executor's own gRPC service.
    pub grpc_port: u16,
    /// How many tasks it runs at once.
    pub slots: usize,
    /// Where stage outputs are kept (a temporary directory when `None`).
    pub work_dir: Option<PathBuf>,
}

/// The functions a task's plan may call: Ballista's defaults (DataFusion's core, aggregate and
/// window functions) and the array functions (`make_array`, `unnest`'s companions) the rollups'
/// unpivots use.
fn functions() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in datafusion::functions_nested::all_default_nested_functions() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// Serves until the process is stopped.
pub async fn run(e: Executor) -> anyhow::Result<()> {
    let config = ExecutorProcessConfig {
        bind_host: e.bind.ip().to_string(),
        external_host: Some(e.bind.ip().to_string()),
        port: e.bind.port(),
        grpc_port: e.grpc_port,
        scheduler_host: e.scheduler.ip().to_string(),
        scheduler_port: e.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: e.slots,
        work_dir: e.work_dir.map(|d| d.display().to_string()),
        print_thread_info: false,
        override_runtime_producer: Some(Arc::new(|_| object_stores::runtime())),
        override_function_registry: Some(Arc::new(functions())),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(scheduler = %e.scheduler, bind = %e.bind, slots = e.slots, "sifa-cluster executor starting");
    start_executor_process(Arc::new(config))
        .await
        .with_context(|| format!("the executor on {} stopped (scheduler {})", e.bind, e.scheduler))
}
