//! `sifa`: the umbrella binary. Each subcommand lives in the crate that owns it;
//! this file only wires them together.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod demo;
mod pki;
mod sim;

#[derive(Parser)]
#[command(
    name = "sifa",
    version,
    about = "Statistics of China's grassroots judicial offices (司法所), from each office's ledger up to the province's published figures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a province on this machine end to end: aggregators, agents, a county killed and restarted, figures
    Demo(demo::DemoArgs),
    /// Check a registry or catalog file a statistician edited, naming what is wrong
    Check {
        #[command(subcommand)]
        what: check::What,
    },
    /// Run a tier of the tree (county, city or province), or ask a running one: status, lock, override
    Aggregator(sifa_aggregator::cli::AggregatorArgs),
    /// The office agent: read an office's ledger and deliver its monthly reports (run, push --once, status, check)
    Agent(sifa_agent::cli::AgentArgs),
    /// SQL over an aggregator's data directory or a live tier (--connect): ad-hoc queries, standard rollups, a prompt
    Query(sifa_queries::cli::QueryArgs),
    /// Write a year's official figures (index.html, figures.csv, figures.json; SDMX-CSV and ADX for exchange) from an aggregator's data
    Publish(sifa_queries::cli::PublishArgs),
    /// The province's certificate authority: init, issue a unit's certificate, revoke one
    Pki(pki::PkiArgs),
    /// Demo material: realistic, deterministic books of an office (`sifa sim books`)
    Sim {
        #[command(subcommand)]
        what: sim::SimCommand,
    },
}

/// `sifa aggregator ...`; after `status`, the month's figures to check from the
/// tier's store (the queries crate's outliers rollup).
fn aggregator(args: sifa_aggregator::cli::AggregatorArgs) -> anyhow::Result<()> {
    let to_check = match (&args.command, &args.config) {
        (Some(sifa_aggregator::cli::AggregatorCommand::Status { period, root }), Some(path)) => {
            Some((path.clone(), period.clone(), root.clone()))
        }
        _ => None,
    };
    sifa_aggregator::cli::run(args)?;
    if let Some((path, period, root)) = to_check {
        let config = sifa_aggregator::config::Config::load(&path)?;
        let period: sifa_proto::Period = period.parse().map_err(|e| anyhow::anyhow!("--period {period:?}: {e}"))?;
        let root = root.unwrap_or_else(|| config.unit.to_string());
        match sifa_queries::cli::figures_to_check_summary(&config.data_dir, period, &root) {
            Ok(text) => print!("\n{text}"),
            Err(e) => {
                println!("\nFigures to check in {period}: cannot read the store {}: {e:#}", config.data_dir.display())
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Check { what } => check::run(what),
        Command::Aggregator(args) => aggregator(args),
        Command::Agent(args) => sifa_agent::cli::run(args),
        Command::Query(args) if args.connect.is_some() || args.config.is_some() => sifa_sql::client::run_query(args),
        Command::Query(args) => sifa_queries::cli::run_query(args),
        Command::Publish(args) => sifa_queries::cli::run_publish(args),
        Command::Pki(args) => pki::run(args),
        Command::Sim { what } => sim::run(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
