//! `sifa sim books`: realistic, deterministic demo books and an agent config
//! for one office of a registry, written by `sifa_sim::synth` (the same books
//! `sifa demo` and the tests use). Not part of the office agent.
//!
//! `sifa sim store`: a synthetic data directory of any number of rows, as a
//! province's aggregator would hold them, for benchmarks of a tier against the
//! size of its store (benches/startup.sh).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use sifa_proto::tls::TlsConfig;
use sifa_proto::v1::Report;
use sifa_proto::{Catalog, Period, Registry};
use sifa_sim::synth::{self, LedgerFormat, SynthSpec};
use sifa_store::{StoreMeta, StoredReport};

#[derive(Subcommand)]
pub enum SimCommand {
    /// Write realistic, deterministic books (台账, 月度汇总) and an agent config for one office
    Books(BooksArgs),
    /// Write a synthetic data directory of a province (unit 62 of the demo registry) holding N rows:
    /// 40,000 offices' monthly reports from 2015-01 on, one Parquet file per year (for benchmarks)
    Store(StoreArgs),
}

#[derive(Args)]
pub struct StoreArgs {
    /// How many rows
    #[arg(long)]
    rows: usize,
    /// The data directory to write (must not hold a store yet)
    #[arg(long)]
    out: PathBuf,
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
        SimCommand::Store(a) => {
            anyhow::ensure!(
                sifa_store::list_files(&a.out)?.is_empty(),
                "{} already holds Parquet files; name a new directory",
                a.out.display()
            );
            write_store(&a.out, a.rows)?;
            println!("{}: {} rows", a.out.display(), a.rows);
            Ok(())
        }
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

/// Offices of a synthetic store: about a national count of 司法所 (docs/DOMAIN.md), the worst case of
/// a store's number of distinct unit-months.
const SYNTHETIC_OFFICES: usize = 40_000;

/// Writes `rows` synthetic rows into a new data directory `out` (see [`SimCommand::Store`]).
fn write_store(out: &Path, rows: usize) -> anyhow::Result<()> {
    let (catalog, registry) = (Catalog::builtin(), Registry::demo());
    let meta = StoreMeta { root_unit: "62".into(), deadline_day: 5, catalog_version: catalog.version.clone() };
    sifa_store::write_reference_files(out, &meta, &catalog, &registry)?;
    let mut period = Period::new(2015, 1).expect("a valid month");
    let (mut written, mut seq) = (0, 1);
    while written < rows {
        let year = period.year();
        let mut batch = Vec::new();
        while period.year() == year && written < rows {
            let n = SYNTHETIC_OFFICES.min(rows - written);
            let received = sifa_store::deadline_ms(period, 5) - 86_400_000;
            batch.extend((0..n).map(|u| {
                let x = (u * 7 + period.month() as usize * 13) as f64;
                let report = Report {
                    unit_code: format!("62{:04}{:03}", 1 + u / 100, 100 + u % 100),
                    period: period.to_string(),
                    revision: 1,
                    values: [
                        ("lectures", x % 9.0),
                        ("consultations", x % 40.0),
                        ("disputes_mediated", x % 30.0 + 2.0),
                        ("disputes_resolved", x % 30.0),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                    comment: None,
                    generated_at_ms: received - 3_600_000,
                    generator: "sifa sim store".into(),
                };
                StoredReport::new(report, period, &registry, received, "62")
            }));
            written += n;
            period = period.next();
        }
        sifa_store::write_file(out, &catalog, year, seq, &batch)?;
        seq += 1;
    }
    Ok(())
}
