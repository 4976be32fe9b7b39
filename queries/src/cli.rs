//! `sifa query` and `sifa publish`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use sifa_proto::Period;
use sifa_proto::catalog::Catalog;

use crate::format::{self, Format};
use crate::query::Answer;
use crate::rollup::{self, Params};
use crate::{publish, query, repl, session};

/// `sifa query --data DIR [SQL | -f FILE.sql | --rollup NAME --year YYYY]`
#[derive(Debug, Args)]
#[command(after_help = "\
Tables and views: reports (figures in force), report_revisions (every revision), units, metrics, \
facts, yearly, yearly_facts, periods. queries/README.md documents their columns and the rollups.

Examples:
  sifa query --data data \"SELECT city_code, sum(disputes_resolved) FROM reports WHERE year = 2024 GROUP BY 1\"
  sifa query --data data --rollup share_of_mediations --year 2024
  sifa query --data data --rollup ranking --year 2024 --metric consultations --limit 5 --format csv
  sifa query --data data -f my_figures.sql --format json
  sifa query --data data            (interactive prompt; or pipe SQL on stdin)
  sifa query --connect https://127.0.0.1:7443 --ca ca.pem --cert me.pem --key me.key --rollup totals --year 2024
                                    (a live tier's Flight SQL endpoint, docs/SQL.md)
  sifa query --config analyst.toml --rollup totals --year 2024
                                    (the same, its address and files in config/analyst.example.toml's form)")]
pub struct QueryArgs {
    /// The data directory of an aggregator (or a copy of it), or a copy on S3-compatible storage,
    /// s3://BUCKET/PREFIX (credentials and endpoint from the AWS_* variables; docs/STORAGE.md)
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present_any = ["connect", "config", "list_rollups"],
        conflicts_with_all = ["connect", "config", "ca", "cert", "key"]
    )]
    pub data: Option<PathBuf>,
    /// A live tier's Flight SQL endpoint (its `[sql] listen`) instead of a directory
    #[arg(long, value_name = "https://HOST:PORT")]
    pub connect: Option<String>,
    /// A live tier and your certificate from a file (`connect = "https://HOST:PORT"` and a [tls]
    /// table: config/analyst.example.toml); --connect, --ca, --cert and --key override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With --connect: the province CA's certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// With --connect: your certificate (`sifa pki issue --role analyst`)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// With --connect: your certificate's key
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub what: What,
    /// List the standard rollups and exit
    #[arg(long)]
    pub list_rollups: bool,
    /// Print the SQL instead of running it: each view's `CREATE VIEW` on a line of its own, then
    /// the statement (a rollup's with its parameters filled in), for running it elsewhere
    /// (benches/rollups.sh runs it in DuckDB); DataFusion's dialect
    #[arg(long, conflicts_with = "connect")]
    pub print_sql: bool,
}

/// What to run: SQL, a file of it or a standard rollup (stdin or the prompt when none is given);
/// shared by `sifa query` and `sifa-cluster query`.
#[derive(Debug, Args)]
pub struct What {
    /// SQL to run (one or more statements separated by ';')
    #[arg(conflicts_with_all = ["file", "rollup"])]
    pub sql: Option<String>,
    /// Run the SQL in this file
    #[arg(short = 'f', long = "file", value_name = "FILE.sql", conflicts_with = "rollup")]
    pub file: Option<PathBuf>,
    /// Run a standard rollup by name (see --list-rollups)
    #[arg(long, value_name = "NAME", requires = "year")]
    pub rollup: Option<String>,
    /// The year of the rollup
    #[arg(long, value_name = "YYYY")]
    pub year: Option<u16>,
    /// The statistic to rank by (rollup `ranking`; a catalog code)
    #[arg(long, value_name = "CODE")]
    pub metric: Option<String>,
    /// How many units at each end (rollup `ranking`)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `sifa publish --data DIR --year YYYY --out DIR`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The data directory of an aggregator (or a copy of it), or s3://BUCKET/PREFIX
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The year to publish
    #[arg(long, value_name = "YYYY")]
    pub year: u16,
    /// Where to write index.html, figures.csv, figures.json, figures.sdmx.csv and figures.adx.xml (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the query runtime")
}

/// Runs `sifa query`.
pub fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    if args.list_rollups {
        for r in rollup::ROLLUPS {
            println!("{:<20} {}", r.name, r.summary);
        }
        return Ok(());
    }
    let Some(data) = args.data.clone() else {
        bail!("sifa query --connect/--config runs in the `sifa` binary (crate sifa-sql); give --data DIR here");
    };
    if args.print_sql {
        let store = runtime()?.block_on(session::Store::open_data(&data))?;
        for (_, sql) in crate::views::all(&store.catalog, &store.current_years) {
            println!("{sql};");
        }
        let sql = sql_of(&args.what, Some(&store.catalog))?.context("--print-sql needs SQL, -f FILE or --rollup")?;
        println!("{}", sql.trim_end());
        return Ok(());
    }
    runtime()?.block_on(async move {
        let (store, ctx) = session::open(&data).await?;
        let execute = async |sql: &str| Ok(query::run(&ctx, sql).await?);
        let Some(sql) = sql_of(&args.what, Some(&store.catalog))? else {
            let root = store.root();
            let banner =
                format!("sifa query: {} ({} {}), years {}", data.display(), root.code, root.name, years(&store.years));
            return repl::run(execute, args.what.format, &banner).await;
        };
        print_answers(args.what.format, &execute(&sql).await?)
    })
}

/// The SQL `args` ask for: a rollup's, a file's, the argument's or stdin's; `None` for the
/// interactive prompt (no SQL given and stdin a terminal). A rollup is its SQL checked against
/// `catalog`, or without one (a live tier checks it) a call of the table function `rollup(...)`.
pub fn sql_of(args: &What, catalog: Option<&Catalog>) -> anyhow::Result<Option<String>> {
    if args.rollup.is_none() && (args.metric.is_some() || args.limit.is_some()) {
        bail!("--metric and --limit belong to a rollup: add --rollup ranking --year YYYY");
    }
    Ok(Some(if let Some(name) = &args.rollup {
        let params =
            Params { year: args.year.expect("clap requires --year"), metric: args.metric.clone(), limit: args.limit };
        match catalog {
            Some(catalog) => rollup::find(name)?.sql_for(&params, catalog)?,
            None => rollup::find(name)?.call_sql(&params),
        }
    } else if let Some(file) = &args.file {
        std::fs::read_to_string(file).with_context(|| format!("cannot read the SQL file {}", file.display()))?
    } else if let Some(sql) = &args.sql {
        sql.clone()
    } else if std::io::stdin().is_terminal() {
        return Ok(None);
    } else {
        let mut sql = String::new();
        std::io::stdin().read_to_string(&mut sql).context("cannot read SQL from stdin")?;
        sql
    }))
}

/// Prints answers to stdout in `format`.
pub fn print_answers(format: Format, answers: &[Answer]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for a in answers {
        out.write_all(format::render_for_terminal(format, a)?.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn years(years: &[u16]) -> String {
    match (years.first(), years.last()) {
        (Some(a), Some(b)) if a != b => format!("{a}–{b}"),
        (Some(a), _) => a.to_string(),
        _ => "none yet".to_string(),
    }
}

/// What `sifa aggregator status` adds for a supervisor about to approve a
/// month: the figures of `period` under `root` that the `outliers` rollup flags
/// in the tier's store (as flushed to Parquet), and how to list them all.
pub fn figures_to_check_summary(data_dir: &Path, period: Period, root: &str) -> anyhow::Result<String> {
    runtime()?.block_on(async move {
        let (store, ctx) = session::open(data_dir).await?;
        let p = period.to_string();
        let flagged: Vec<publish::FigureToCheck> = publish::figures_to_check(&store, &ctx, period.year())
            .await?
            .into_iter()
            .filter(|x| x.period == p && store.registry.is_within(&x.unit_code, root))
            .collect();
        let mut out = format!("Figures to check in {p} (never refused; look before approving): {}\n", flagged.len());
        for x in &flagged {
            let (_, reason) = publish::reason_text(&x.reason);
            out.push_str(&format!(
                "  {} {}  {} = {}: {reason} (reference {}, score {}, threshold {})\n",
                x.unit_code, x.name, x.metric, x.value, x.reference, x.score, x.threshold
            ));
        }
        if !flagged.is_empty() {
            out.push_str(&format!(
                "  the year's list: sifa query --data {} --rollup outliers --year {}\n",
                data_dir.display(),
                period.year()
            ));
        }
        Ok(out)
    })
}

/// Runs `sifa publish`.
pub fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (store, ctx) = session::open(&args.data).await?;
        let written = publish::publish(&store, &ctx, args.year, &args.out).await?;
        for path in written {
            println!("wrote {}", path.display());
        }
        Ok(())
    })
}
