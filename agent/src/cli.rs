//! The agent's commands, shared by the `sifa-agent` binary and the umbrella
//! `sifa agent ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sifa_proto::Period;

use crate::config::Config;
use crate::{catalog_cache, compute, daemon, drops, outbox, status};

/// `sifa-agent`: the office agent of sifa.
#[derive(Parser)]
#[command(
    name = "sifa-agent",
    version,
    about = "The office agent: reads a judicial office's ledger and delivers its monthly statistics to its aggregator"
)]
pub struct AgentCli {
    #[command(flatten)]
    pub args: AgentArgs,
}

#[derive(Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Run as a daemon: read the books on the schedule and deliver what changed
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// One round (read the books, queue what changed, deliver) and exit: for cron or Task Scheduler
    Push {
        /// Required: one round, then exit (`run` is the daemon)
        #[arg(long, required = true)]
        once: bool,
        /// Queue figures that fall away all the same (a ledger that lost most of its rows, a month
        /// whose figures all became 0), once you have checked the ledger is right as it is
        #[arg(long)]
        confirm_drop: bool,
        #[arg(long)]
        config: PathBuf,
    },
    /// Show the queue, the last acknowledgements, rejections and ledger problems (中文 / English)
    Status {
        #[arg(long)]
        config: PathBuf,
    },
    /// Read the books and print each month's figures and every problem (once); queues and sends
    /// nothing; exits with 1 when it finds problems or months it would hold back
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

/// The `sifa-agent` binary's entry point.
pub fn main() -> ExitCode {
    let cli = AgentCli::parse();
    match run(cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Two worker threads are plenty for one office's traffic and keep memory low.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the runtime")
}

/// Runs one agent command.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    init_logging();
    match args.command {
        AgentCommand::Run { config } => {
            let config = Config::load(&config)?;
            runtime()?.block_on(daemon::run(&config))
        }
        AgentCommand::Push { once: _, confirm_drop, config } => {
            let config = Config::load(&config)?;
            let r = runtime()?.block_on(daemon::round(&config, confirm_drop))?;
            print_round(&r);
            match r.books_error {
                Some(e) => anyhow::bail!("the books were not read: {e}"),
                None => Ok(()),
            }
        }
        AgentCommand::Status { config } => {
            let config = Config::load(&config)?;
            print!("{}", status::render(&config)?);
            Ok(())
        }
        AgentCommand::Check { config } => check(&Config::load(&config)?),
    }
}

fn print_round(r: &daemon::Round) {
    let c = &r.collected;
    if r.books_error.is_some() {
        println!("台账未能读取 books not read (see the error below); 已排队的报表照常发送 what was queued is sent");
    } else {
        println!(
            "台账已读取 books read (catalog {}): {} 份新排队 newly queued, {} 个月无变化 unchanged",
            c.catalog_version,
            c.queued.len(),
            c.unchanged
        );
    }
    for s in &c.sources {
        println!("  read {s}");
    }
    for q in &c.queued {
        println!("  queued {q}");
    }
    for (p, why) in &c.held {
        match why.first() {
            Some(w) if !c.drops.is_empty() && w.starts_with(crate::drops::FALL_AWAY) => {
                println!("  暂缓 held back {p}: figures would fall away (below)")
            }
            w => println!("  暂缓 held back {p}: {}", w.map(String::as_str).unwrap_or("")),
        }
    }
    for d in &c.drops {
        println!("待确认 held for confirmation: {d}");
    }
    if !c.drops.is_empty() {
        println!("  {}", crate::drops::HOW_TO_CONFIRM);
    }
    for p in &c.problems {
        eprintln!("台账问题 ledger problem: {p}");
    }
    for n in &c.notes {
        eprintln!("提示 note: {n}");
    }
    if let Some(d) = &r.delivery {
        println!(
            "已发送 delivered: {} accepted, {} duplicate, {} rejected; {} 份待发送 still queued",
            d.accepted, d.duplicate, d.rejected, r.remaining
        );
    }
    if let Some(e) = &r.delivery_error {
        println!("未能发送 not delivered: {e}; {} 份报表保存在发件箱中 report(s) kept in the outbox", r.remaining);
    }
}

fn check(config: &Config) -> anyhow::Result<()> {
    let (catalog, source) = catalog_cache::cached_or_builtin(&config.outbox_dir);
    let current = Period::current();
    let c = compute::collect(config, &catalog, current)?;
    println!("catalog {} ({source:?})", catalog.version);
    for s in &c.sources {
        println!("read {s}");
    }
    for r in &c.reports {
        let mut values: Vec<_> = r.values.iter().collect();
        values.sort_by_key(|(k, _)| catalog.metrics().iter().position(|m| &m.code == *k));
        let shown: Vec<String> =
            values.iter().map(|(k, v)| format!("{k}={}", crate::ledger::format_number(**v))).collect();
        println!("{} {}", r.period, shown.join(" "));
    }
    // Each problem once: a month held back by problems points to them instead of repeating them.
    let mut problems: Vec<String> = Vec::new();
    for p in c.problems.iter().map(ToString::to_string) {
        if !problems.contains(&p) {
            problems.push(p);
        }
    }
    for (p, why) in &c.held {
        let own: Vec<&String> = why.iter().filter(|w| !problems.contains(w)).collect();
        if own.is_empty() {
            println!("{p} HELD BACK (problems below)");
        } else {
            println!("{p} HELD BACK");
        }
        for w in own {
            println!("  - {w}");
        }
    }
    // What `push` would hold for confirmation, against what this office last queued.
    let drops = outbox::read_state(&config.outbox_dir).map(|s| drops::find(&s, &c)).unwrap_or_default();
    for d in &drops {
        println!("push would hold this for confirmation: {d}");
    }
    if !drops.is_empty() {
        println!("  {}", drops::HOW_TO_CONFIRM);
    }
    for p in &problems {
        eprintln!("problem: {p}");
    }
    for n in &c.notes {
        eprintln!("note: {n}");
    }
    let months_held = c.held.len();
    anyhow::ensure!(
        problems.is_empty() && months_held == 0 && drops.is_empty(),
        "the books have {} problem(s), {months_held} month(s) held back{} (listed above); correct the ledger and run check again",
        problems.len(),
        if drops.is_empty() { String::new() } else { format!(", {} change(s) to confirm", drops.len()) }
    );
    Ok(())
}
