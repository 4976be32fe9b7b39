//! `sifa sim books`: realistic, deterministic demo books and an agent config
//! for one office of a registry, written by `sifa_sim::synth` (the same books
//! `sifa demo` and the tests use). Not part of the office agent.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use sifa_proto::tls::TlsConfig;
use sifa_proto::{Period, Registry};
use sifa_sim::synth::{self, LedgerFormat, SynthSpec};

#[derive(Subcommand)]
pub enum SimCommand {
    /// Write realistic, deterministic books (台账, 月度汇总) and an agent config for one office
    Books(BooksArgs),
}

#[derive(Args)]
pub struct BooksArgs {
    /// The office's unit code
    #[arg(long)]
    unit: String,
    #[arg(long)]
    year: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write months 1 to this one
    #[arg(long, default_value_t = 12)]
    until_month: u8,
    /// In the last month, write rows up to this day (month to date)
    #[arg(long)]
    until_day: Option<u8>,
    /// Correct one row of this month (repeatable)
    #[arg(long = "correct-month")]
    corrections: Vec<u8>,
    /// csv-utf8, csv-gbk or xlsx; default chosen per office
    #[arg(long)]
    format: Option<LedgerFormat>,
    /// The registry the unit is in (default: the demo registry)
    #[arg(long)]
    registry: Option<PathBuf>,
    /// The aggregator URL written into the config; an http:// URL gets `[tls] insecure = true`
    /// (loopback only), an https:// one an empty [tls] table to fill in (`sifa pki issue --role office`)
    #[arg(long, default_value = "http://127.0.0.1:7401")]
    aggregator: String,
    /// The outbox written into the config (relative to --out)
    #[arg(long, default_value = "outbox")]
    outbox: PathBuf,
    /// The folder to write into
    #[arg(long)]
    out: PathBuf,
}

pub fn run(command: SimCommand) -> anyhow::Result<()> {
    match command {
        SimCommand::Books(a) => {
            let registry = match &a.registry {
                Some(p) => Registry::load(p)?,
                None => Registry::demo(),
            };
            let u = registry.get(&a.unit).with_context(|| format!("unit {} is not in the registry", a.unit))?;
            anyhow::ensure!(
                (1..=12).contains(&a.until_month),
                "--until-month {} must be a month 1 to 12",
                a.until_month
            );
            anyhow::ensure!(Period::new(a.year, 1).is_some(), "--year {} must be between 2000 and 2099", a.year);
            let spec = SynthSpec {
                year: a.year,
                seed: a.seed,
                until_month: a.until_month,
                until_day: a.until_day,
                format: a.format,
                corrections: a.corrections,
            };
            let tls = if a.aggregator.starts_with("http://") { TlsConfig::insecure() } else { TlsConfig::default() };
            let w = synth::write_office(&a.out, u, &spec, &a.aggregator, &a.outbox, &tls)?;
            println!("{}\n{}\n{}", w.ledger.display(), w.totals.display(), w.config.display());
            Ok(())
        }
    }
}
