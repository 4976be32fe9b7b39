//! `sifa sim books`: realistic, deterministic demo books and an agent config
//! for one office of a registry, written by `sifa_sim::synth` (the same books
//! `sifa demo` and the tests use). Not part of the office agent.
//!
//! `sifa sim store`: a synthetic national data directory (`sifa_sim::national`: its registry and
//! figures), or its first N rows, as an aggregator at the top would hold them, for benchmarks
//! of a tier against the size of its store (benches/startup.sh) and of the rollups
//! (benches/rollups.sh).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use sifa_proto::tls::TlsConfig;
use sifa_proto::v1::Report;
use sifa_proto::{Catalog, Period, Registry};
use sifa_sim::national;
use sifa_sim::synth::{self, LedgerFormat, SynthSpec};
use sifa_store::{StoreMeta, StoredReport};

#[derive(Subcommand)]
pub enum SimCommand {
    /// Write realistic, deterministic books (台账, 月度汇总) and an agent config for one office
    Books(BooksArgs),
    /// Write a synthetic national data directory (for benchmarks): a generated registry of ~41,000
    /// offices and 3,349 other reporting units under one synthetic root (unit 99), their monthly
    /// reports from 2015-01 on, a few percent corrected; one Parquet file per month and one of
    /// corrections per year, and the current figures derived from them (`current/`)
    Store(StoreArgs),
}

#[derive(Args)]
pub struct StoreArgs {
    /// Stop after this many units' months (first revisions, in month order; their corrections
    /// are added); default: every unit for every month of --years
    #[arg(long)]
    rows: Option<usize>,
    /// How many years from 2015
    #[arg(long, default_value_t = 10)]
    years: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only the first N of the 333 cities, their counties and units (a small nation, for tests)
    #[arg(long, value_name = "N")]
    cities: Option<usize>,
    /// Leave out `current/`, the figures in force an aggregator derives (as before it first has)
    #[arg(long)]
    no_current: bool,
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
            anyhow::ensure!(a.rows != Some(0), "--rows must be at least 1");
            anyhow::ensure!(a.years >= 1, "--years must be at least 1");
            anyhow::ensure!(a.cities != Some(0), "--cities must be at least 1");
            let rows = write_store(&a.out, &a)?;
            println!("{}: {rows} rows", a.out.display());
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

/// The first year of a synthetic store.
const FIRST_YEAR: u16 = 2015;

/// Writes a synthetic national store into a new data directory `out` (see [`SimCommand::Store`]):
/// per year, one file of each month's first revisions (as the aggregator flushes them around the
/// deadline) and one of the year's corrections. Returns the rows written.
fn write_store(out: &Path, a: &StoreArgs) -> anyhow::Result<usize> {
    let (catalog, mut registry) = (Catalog::builtin(), national::registry(a.seed));
    if let Some(n) = a.cities {
        registry = national::first_cities(&registry, n);
    }
    let meta =
        StoreMeta { root_unit: national::ROOT.into(), deadline_day: 5, catalog_version: catalog.version.clone() };
    sifa_store::write_reference_files(out, &meta, &catalog, &registry)?;
    let units = registry.reporting_units(national::ROOT);
    let limit = a.rows.unwrap_or(usize::MAX);
    let (mut firsts, mut written, mut seq) = (0, 0, 1);
    let stored = |unit: &str, period: Period, r: &national::Revision| {
        let report = Report {
            unit_code: unit.to_string(),
            period: period.to_string(),
            revision: r.revision,
            values: r.values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            comment: None,
            generated_at_ms: r.received_at_ms - 3_600_000,
            generator: "sifa sim store".into(),
        };
        StoredReport::new(report, period, &registry, r.received_at_ms, national::ROOT)
    };
    'years: for year in FIRST_YEAR..FIRST_YEAR + a.years {
        let mut corrections = Vec::new();
        for month in 1..=12 {
            let period = Period::new(year, month).context("--years reaches past 2099")?;
            let deadline = meta.deadline_ms(period);
            let n = units.len().min(limit - firsts);
            let mut batch = Vec::with_capacity(n);
            for u in &units[..n] {
                let m = national::unit_month(u, period, deadline, a.seed);
                batch.push(stored(&u.code, period, &m.first));
                corrections.extend(m.corrections.iter().map(|r| stored(&u.code, period, r)));
            }
            sifa_store::write_file(out, &catalog, year, seq, &batch)?;
            (seq, firsts, written) = (seq + 1, firsts + n, written + n);
            if firsts == limit {
                break;
            }
        }
        if !corrections.is_empty() {
            sifa_store::write_file(out, &catalog, year, seq, &corrections)?;
            (seq, written) = (seq + 1, written + corrections.len());
        }
        if firsts == limit {
            break 'years;
        }
    }
    if !a.no_current {
        sifa_store::current::refresh(out, &catalog)?;
    }
    Ok(written)
}
