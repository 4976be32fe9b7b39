//! `sifa check registry|catalog FILE`: read a file as the aggregator would and
//! say what is in it or what is wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sifa_proto::{Catalog, MetricKind, Registry};

#[derive(Subcommand)]
pub enum What {
    /// A unit registry CSV (UTF-8 or GBK)
    Registry { file: PathBuf },
    /// A catalog TOML file
    Catalog { file: PathBuf },
}

pub fn run(what: What) -> anyhow::Result<()> {
    match what {
        What::Registry { file } => {
            let r = Registry::load(&file).with_context(|| format!("{} is not a valid registry", file.display()))?;
            let mut kinds: BTreeMap<_, usize> = BTreeMap::new();
            for u in r.units() {
                *kinds.entry(u.kind).or_default() += 1;
            }
            let counts: Vec<_> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!("{}: {} units ({})", file.display(), r.len(), counts.join(", "));
        }
        What::Catalog { file } => {
            let c = Catalog::load(&file).with_context(|| format!("{} is not a valid catalog", file.display()))?;
            let flows = c.metrics().iter().filter(|m| m.kind == MetricKind::Flow).count();
            println!(
                "{}: catalog {} with {} metrics ({} flows, {} stocks) and {} cross-field rules",
                file.display(),
                c.version,
                c.metrics().len(),
                flows,
                c.metrics().len() - flows,
                c.rules().len()
            );
        }
    }
    Ok(())
}
