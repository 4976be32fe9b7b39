//! `sifa`: the umbrella binary. Each subcommand lives in the crate that owns it;
//! this file only wires them together.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;

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
    /// Check a registry or catalog file a statistician edited, naming what is wrong
    Check {
        #[command(subcommand)]
        what: check::What,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { what } => check::run(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
