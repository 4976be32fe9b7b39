//! `sifa-cluster`: the standard rollups and any SQL over a store on Apache DataFusion Ballista —
//! a scheduler and executors as separate processes, reading a store on object storage
//! (docs/SCALE.md, "A distributed engine"). A binary of its own: `sifa` does not link Ballista.
//!
//! ```text
//! sifa-cluster scheduler --bind 0.0.0.0:50050
//! sifa-cluster executor --scheduler 10.0.0.1:50050 --bind 10.0.0.2:50051 --grpc-port 50052
//! sifa-cluster query --scheduler 10.0.0.1:50050 --data s3://figures/nation --rollup totals --year 2024
//! ```

mod executor;
mod object_stores;
mod plan_shape;
mod query;
mod scheduler;
mod staged_tables;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "sifa-cluster", version, about = "sifa's rollups and SQL on a Ballista cluster (docs/SCALE.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scheduler: it cuts each submitted plan into stages and hands their tasks to executors
    Scheduler {
        /// Where to listen for clients and executors
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
    },
    /// Run an executor: it takes tasks from the scheduler and reads the store's files itself
    /// (AWS_* variables for a bucket, as `sifa query --data s3://` reads them)
    Executor {
        /// The scheduler's address
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: SocketAddr,
        /// Where to serve stage outputs (Arrow Flight) to other executors and clients; an address they reach
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
        bind: SocketAddr,
        /// The port of the executor's own gRPC service (same host as --bind)
        #[arg(long, value_name = "PORT", default_value_t = 50052)]
        grpc_port: u16,
        /// How many tasks to run at once (default: this machine's cores)
        #[arg(long, value_name = "N")]
        slots: Option<usize>,
        /// Where to keep stage outputs (default: a temporary directory)
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
    /// Run SQL or a standard rollup on the cluster and print the result as `sifa query` does
    Query {
        /// The scheduler's address
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// The store on object storage: s3://BUCKET/PREFIX (an aggregator's `store`, or a copy of a
        /// data directory there)
        #[arg(long, value_name = "URL")]
        data: PathBuf,
        /// How many tasks each stage is cut into (default: this machine's cores; give the executors'
        /// slots in all)
        #[arg(long, value_name = "N")]
        partitions: Option<usize>,
        #[command(flatten)]
        what: sifa_queries::cli::What,
    },
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Query { .. });
    // The client prints results on stdout; the servers log there.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(if quiet { "warn" } else { "info" }));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Deep plans (the rollups' nested views) are decoded recursively.
        .thread_stack_size(32 * 1024 * 1024)
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Scheduler { bind } => scheduler::run(bind).await,
            Command::Executor { scheduler, bind, grpc_port, slots, work_dir } => {
                let slots = slots.unwrap_or_else(cores);
                executor::run(executor::Executor { scheduler, bind, grpc_port, slots, work_dir }).await
            }
            Command::Query { scheduler, data, partitions, what } => {
                let partitions = partitions.unwrap_or_else(cores);
                query::run(query::Query { scheduler, data, partitions, what }).await
            }
        }
    })
}
