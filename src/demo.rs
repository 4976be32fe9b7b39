//! `sifa demo`: a province on this machine, end to end, with the real parts.
//!
//! In one directory (./sifa-demo by default) it writes a province's registry
//! and a certificate authority, starts the province's aggregator and one per
//! city and county as real server processes (each forwarding to the tier above
//! it; a unit reports to the tier directly above it), generates a year of books for every
//! reporting unit (judicial offices with a case ledger; mediation centres,
//! bureaus and industry committees with a totals sheet) and runs each unit's
//! agent (`sifa agent push --once`) to deliver them over mutual TLS. Part-way
//! through it kills one county aggregator with SIGKILL and restarts it, and
//! keeps one office offline for a round; the province's figures must still
//! come out exact: they are checked against sums computed here from the
//! generated books, independently of the agents and the aggregators. It then
//! prints headline figures from SQL on the province's store and publishes the
//! year's figures.
//!
//! With `--national` the top is a national tier (100000, 中华人民共和国司法部)
//! with two provinces under it (甘肃省 and 辽宁省, each with its cities and
//! counties), each province's aggregator forwarding to the nation's exactly as
//! a county's forwards to its province; the nation's figures are checked the
//! same way, and the nation's store must hold exactly the rows of the two
//! provinces' stores.
//!
//! Everything stays in the directory; the closing lines say how to query it,
//! publish again and restart the servers from the generated configs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use sifa_agent::config::{ConfigFile as AgentConfigFile, TotalsSource};
use sifa_aggregator::config::ConfigFile as AggregatorConfigFile;
use sifa_aggregator::config::SqlSection;
use sifa_aggregator::http::HttpConfig;
use sifa_proto::tls::{TlsConfig, TlsFiles};
use sifa_proto::{Period, Registry, Unit, UnitKind};
use sifa_sim::supervisor::{self, Supervised};
use sifa_sim::synth::{self, SynthSpec};

/// The file that marks a directory as made by `sifa demo` (so a rerun may clear it).
const MARKER: &str = ".sifa-demo";
/// The month whose books are corrected after the first delivery (a later revision).
const CORRECTED_MONTH: u8 = 3;
/// Agents run at once.
const PARALLEL_AGENTS: usize = 8;
/// How long the top tier may take to hold every report after the last push.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// `sifa demo [--dir DIR] [--province CODE | --national] [--year YYYY] [--counties N]`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The working directory (created; a previous demo in it is replaced)
    #[arg(long, default_value = "sifa-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// The province of the demo registry: 62 (甘肃省: 酒泉市 with 敦煌市's nine offices, 张掖市)
    /// or 21 (辽宁省: 盘锦市's 48 offices)
    #[arg(long, default_value = "62", value_name = "CODE", conflicts_with = "national")]
    pub province: String,
    /// Both provinces under a national tier (100000 中华人民共和国司法部): each province's aggregator
    /// forwards to the nation's
    #[arg(long)]
    pub national: bool,
    /// The year of books to generate and publish (default: last year)
    #[arg(long, value_name = "YYYY")]
    pub year: Option<u16>,
    /// Only the first N counties of each province (a smaller, faster run)
    #[arg(long, value_name = "N")]
    pub counties: Option<usize>,
    /// Plaintext gRPC on loopback instead of mutual TLS (no certificates are made)
    #[arg(long)]
    pub insecure: bool,
}

/// Progress lines with the time since the start.
struct Progress(Instant);

impl Progress {
    fn say(&self, what: impl AsRef<str>) {
        println!("[{:>5.1}s] {}", self.0.elapsed().as_secs_f64(), what.as_ref());
        let _ = std::io::stdout().flush();
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let p = Progress(Instant::now());
    let year = args.year.unwrap_or_else(|| Period::current().year() - 1);
    if Period::new(year, 12).is_none_or(|last| last >= Period::current()) {
        bail!("--year {year}: the demo publishes a whole year, so it must be a year that has ended");
    }
    let dir = prepare_dir(&args.dir)?;
    let top_code = if args.national { NATION } else { args.province.as_str() };
    let registry = demo_registry(top_code, args.counties)?;
    std::fs::write(dir.join("registry.csv"), registry.to_csv()).context("cannot write the registry")?;
    // The top tier (the province, or the nation) and every node below it, a kind at a time.
    let top = registry.get(top_code).expect("checked by demo_registry").clone();
    let mut nodes: Vec<Unit> =
        registry.units().iter().filter(|u| !u.kind.is_reporting() && u.code != top.code).cloned().collect();
    nodes.sort_by_key(|u| u.kind);
    let of_kind = |kind: UnitKind| nodes.iter().filter(|u| u.kind == kind).cloned().collect::<Vec<Unit>>();
    let (provinces, cities, counties) =
        (of_kind(UnitKind::Province), of_kind(UnitKind::City), of_kind(UnitKind::County));
    let units: Vec<Unit> = registry.reporting_units(&top.code).into_iter().cloned().collect();
    let offices = units.iter().filter(|u| u.kind == UnitKind::Office).count();
    let province_names: Vec<String> = provinces.iter().map(|u| format!("{} {}", u.code, u.name)).collect();
    p.say(format!(
        "{} {}: {}{} counties, {} judicial offices and {} other reporting units; books for {year} in {}",
        top.code,
        top.name,
        if provinces.is_empty() { String::new() } else { format!("provinces {}; ", province_names.join(", ")) },
        counties.len(),
        offices,
        units.len() - offices,
        dir.display()
    ));
    let top_kind = top.kind.as_str();

    let pki = if args.insecure {
        p.say("--insecure: plaintext gRPC on loopback, no certificates");
        Transport::Plaintext
    } else {
        let pki = Pki::create(&dir, &top, &nodes, &units)?;
        p.say(format!(
            "certificate authority and {} certificates in {}",
            nodes.len() + units.len() + 3,
            pki.dir.display()
        ));
        Transport::Tls(pki)
    };

    let mut servers = Servers { tiers: Vec::new(), transport: &pki };
    let top_tier = servers.start(Tier::new(&dir, &top, None, &pki)?)?;
    let top_url = servers.url(top_tier);
    p.say(format!("{top_kind} aggregator {} listening on {top_url}", top.name));
    let http_addr = sifa_store::layout::http_addr_file(&servers.tiers[top_tier].data_dir());
    let http_addr =
        std::fs::read_to_string(&http_addr).with_context(|| format!("cannot read {}", http_addr.display()))?;
    p.say(format!("{top_kind} status page http://{http_addr}/ (metrics at /metrics) while the demo runs"));
    // Every node of the tree runs an aggregator forwarding to the one above it: a unit reports only to
    // the tier directly above it (docs/SECURITY.md, "One path per report").
    let mut tier_of = BTreeMap::from([(top.code.clone(), top_tier)]);
    for node in &nodes {
        let up = node.parent.as_ref().and_then(|p| tier_of.get(p).copied()).context("a node above every tier")?;
        let t = servers.start(Tier::new(&dir, node, Some(&servers.url(up)), &pki)?)?;
        tier_of.insert(node.code.clone(), t);
    }
    let county_tier: BTreeMap<_, _> = counties.iter().map(|c| (c.code.clone(), tier_of[&c.code])).collect();
    p.say(format!(
        "{}{} city and {} county aggregators listening, each forwarding to the tier above it",
        if provinces.is_empty() { String::new() } else { format!("{} province, ", provinces.len()) },
        cities.len(),
        counties.len()
    ));

    // Where each unit delivers: the aggregator of the tier directly above it.
    let target = |u: &Unit| -> usize { u.parent.as_ref().and_then(|p| tier_of.get(p).copied()).unwrap_or(top_tier) };
    let agents: Vec<Agent> =
        units.iter().enumerate().map(|(i, u)| Agent::new(&dir, u.clone(), year, i as u64, target(u))).collect();
    let others = OtherUnitTotals::new(&agents, year);

    // Round 1: the first half-year.
    for a in &agents {
        a.write_books(6, false, &servers.url(a.tier), &others, &pki)?;
    }
    p.say(format!("round 1: {} agents deliver January–June", agents.len()));
    let r = push_all(&agents, &dir)?;
    p.say(format!("round 1: {r}"));

    // Round 2: the whole year, March corrected in some offices; one office is
    // offline, and one county aggregator is killed -9 half-way through.
    let victim = counties
        .iter()
        .max_by_key(|c| agents.iter().filter(|a| a.tier == county_tier[&c.code]).count())
        .context("the demo registry has no county")?;
    let victim_tier = county_tier[&victim.code];
    let offline = agents.iter().position(|a| a.tier != victim_tier && a.unit.kind == UnitKind::Office).unwrap_or(0);
    for (i, a) in agents.iter().enumerate() {
        let url = if i == offline { pki.url(UNREACHABLE) } else { servers.url(a.tier) };
        a.write_books(12, true, &url, &others, &pki)?;
    }
    p.say(format!(
        "round 2: July–December and corrections of March; {} {} is offline",
        agents[offline].unit.code, agents[offline].unit.name
    ));
    let victims = agents.iter().filter(|a| a.tier == victim_tier).count();
    let mut victims_done = 0;
    let r = push_all_with(&agents, &dir, |a| {
        if a.tier == victim_tier {
            victims_done += 1;
        }
        if a.tier == victim_tier && victims_done == victims.div_ceil(2) {
            servers.kill9(victim_tier);
            p.say(format!("         kill -9 the county aggregator of {} {}", victim.code, victim.name));
        }
    })?;
    p.say(format!("round 2: {r}"));

    servers.restart(victim_tier)?;
    p.say(format!("restarted {} {} from its config: it replays its write-ahead log", victim.code, victim.name));
    agents[offline].write_books(12, true, &servers.url(agents[offline].tier), &others, &pki)?;
    p.say(format!("{} {} is back online", agents[offline].unit.code, agents[offline].unit.name));
    let r = push_all(&agents, &dir)?;
    p.say(format!("round 3: {r}"));
    let waiting: Vec<&str> = agents.iter().filter(|a| a.queued() > 0).map(|a| a.unit.code.as_str()).collect();
    if !waiting.is_empty() {
        bail!("reports are still waiting in the outboxes of {waiting:?}: see their push.log");
    }

    // The top tier must hold exactly the books' figures.
    let expected = Expected::from_books(&agents, year, &others);
    let top_data = servers.tiers[top_tier].data_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let checked = runtime.block_on(expected.wait_for(&top_data, top_kind, year, &p))?;
    p.say(format!(
        "exact: the {top_kind} holds {} unit-months of {year}; every unit's year of disputes resolved ({} in all) and \
         consultations ({}) equals its books",
        checked.unit_months, checked.resolved, checked.consultations
    ));

    // Stopped cleanly, each tier flushes its log: the store is complete and at rest for publishing.
    servers.stop_all();
    if !provinces.is_empty() {
        let below: Vec<(&Unit, PathBuf)> =
            provinces.iter().map(|u| (u, servers.tiers[tier_of[&u.code]].data_dir())).collect();
        p.say(same_rows(&top, &top_data, &below)?);
    }
    p.say(format!("servers stopped; the figures below are SQL on the {top_kind}'s store"));
    println!();
    runtime.block_on(headlines(&top, &top_data, year))?;
    let out = dir.join("publish");
    let written = runtime.block_on(async {
        let (store, ctx) = sifa_queries::open(&top_data).await?;
        sifa_queries::publish::publish(&store, &ctx, year, &out).await
    })?;
    p.say(format!("published {} files; open {}", written.len(), out.join("index.html").display()));
    print_next_steps(&dir, &servers, &agents, year);
    Ok(())
}

/// A loopback address where nothing listens: the offline office's link.
const UNREACHABLE: &str = "127.0.0.1:9";

/// Creates `dir`, or clears a previous demo in it; refuses any other non-empty directory.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?.next().is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} exists and was not made by `sifa demo`: choose another --dir (the demo never deletes a \
                     directory it did not make)",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the previous demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "made by `sifa demo`; rerunning the demo replaces this directory\n")?;
    Ok(std::path::absolute(dir)?)
}

/// The national tier of `sifa demo --national`.
const NATION: &str = "100000";

/// The demo registry under `top`: one of its provinces, or the nation ([`NATION`]) with both;
/// optionally cut to the first `counties` counties of each province.
fn demo_registry(top: &str, counties: Option<usize>) -> anyhow::Result<Registry> {
    let reg = if top == NATION {
        Registry::demo_national()
    } else {
        let all = Registry::demo();
        let provinces: Vec<String> = all
            .units()
            .iter()
            .filter(|u| u.kind == UnitKind::Province)
            .map(|u| format!("{} {}", u.code, u.name))
            .collect();
        match all.get(top) {
            Some(u) if u.kind == UnitKind::Province => {}
            _ => bail!("--province {top}: not a province of the demo registry; use one of: {}", provinces.join(", ")),
        }
        all.restricted_to(top)
    };
    let Some(n) = counties else { return Ok(reg) };
    if n == 0 {
        bail!("--counties must be at least 1");
    }
    let mut per_province: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    let kept: Vec<&str> = reg
        .units()
        .iter()
        .filter(|u| u.kind == UnitKind::County)
        .filter(|u| {
            let seen = per_province.entry(reg.lineage(&u.code).province.map(|p| p.code.as_str())).or_default();
            *seen += 1;
            *seen <= n
        })
        .map(|u| u.code.as_str())
        .collect();
    let units = reg
        .units()
        .iter()
        .filter(|u| match reg.lineage(&u.code).county {
            Some(c) => kept.contains(&c.code.as_str()),
            None => true,
        })
        .cloned()
        .collect();
    Ok(Registry::from_units(units)?)
}

/// How the demo's processes talk: mutual TLS (the default) or plaintext on loopback.
enum Transport {
    Tls(Pki),
    Plaintext,
}

impl Transport {
    /// The `[tls]` table of a unit's config.
    fn table(&self, unit: &str, role: &str, server: bool) -> TlsConfig {
        match self {
            Transport::Tls(pki) => pki.table(unit, role, server),
            Transport::Plaintext => TlsConfig::insecure(),
        }
    }

    fn url(&self, addr: &str) -> String {
        match self {
            Transport::Tls(_) => format!("https://{addr}"),
            Transport::Plaintext => format!("http://{addr}"),
        }
    }
}

/// The top tier's certificate authority and every unit's certificate, made
/// with `sifa pki` itself.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn create(dir: &Path, top: &Unit, aggregators: &[Unit], units: &[Unit]) -> anyhow::Result<Pki> {
        let pki = Pki { dir: dir.join("pki") };
        let ca = pki.ca();
        sifa(&["pki", "init", "--name", &format!("{} (sifa demo)", top.name), "--out"], &[&ca])?;
        for tier in std::iter::once(top).chain(aggregators) {
            pki.issue(&tier.code, "aggregator")?;
            if tier.code == top.code {
                pki.issue(&tier.code, "admin")?;
                pki.issue(&tier.code, "analyst")?;
            }
        }
        // Issued in parallel: a certificate is a key generation and a signature.
        let next = AtomicUsize::new(0);
        let failed = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_AGENTS {
                s.spawn(|| {
                    while let Some(u) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = pki.issue(&u.code, "office") {
                            *failed.lock().unwrap() = Some(e);
                        }
                    }
                });
            }
        });
        match failed.into_inner().unwrap() {
            Some(e) => Err(e),
            None => Ok(pki),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca")
    }

    fn issue(&self, unit: &str, role: &str) -> anyhow::Result<()> {
        sifa(&["pki", "issue", "--unit", unit, "--role", role, "--ca"], &[&self.ca(), Path::new("--out"), &self.dir])
    }

    /// The `[tls]` table of a unit's config.
    fn table(&self, unit: &str, role: &str, server: bool) -> TlsConfig {
        let files = TlsFiles {
            ca: self.ca().join("ca.pem"),
            cert: self.dir.join(format!("{role}-{unit}.pem")),
            key: self.dir.join(format!("{role}-{unit}.key")),
        };
        TlsConfig::secure(files, server.then(|| self.ca().join("crl.pem")))
    }
}

/// Runs `sifa ARGS PATHS...` (this very binary) and fails with its output if it fails.
fn sifa(args: &[&str], paths: &[&Path]) -> anyhow::Result<()> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .args(paths)
        .output()
        .with_context(|| format!("cannot run sifa {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("sifa {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// One aggregator: its directory, config and (while running) process.
struct Tier {
    unit: Unit,
    dir: PathBuf,
    upstream: Option<String>,
    tls: TlsConfig,
    listen: String,
    /// The top tier's Flight SQL endpoint (`[sql] listen`): port 0 at first, then the bound address.
    sql_listen: Option<String>,
    process: Supervised,
}

impl Tier {
    fn new(root: &Path, unit: &Unit, upstream: Option<&str>, pki: &Transport) -> anyhow::Result<Tier> {
        let dir = match unit.kind {
            UnitKind::Nation => root.join("nation"),
            UnitKind::Province if upstream.is_none() => root.join("province"),
            UnitKind::Province => root.join("provinces").join(unit.code.as_str()),
            UnitKind::City => root.join("cities").join(unit.code.as_str()),
            _ => root.join("counties").join(unit.code.as_str()),
        };
        let config = dir.join("aggregator.toml");
        let addr_file = sifa_store::layout::addr_file(&dir.join("data"));
        let process =
            Supervised::aggregator(std::env::current_exe()?, &config, &addr_file, dir.join("logs/aggregator.log"));
        Ok(Tier {
            unit: unit.clone(),
            dir,
            upstream: upstream.map(String::from),
            tls: pki.table(&unit.code, "aggregator", true),
            listen: "127.0.0.1:0".into(),
            sql_listen: upstream.is_none().then(|| "127.0.0.1:0".into()),
            process,
        })
    }

    fn config(&self) -> PathBuf {
        self.dir.join("aggregator.toml")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let file = AggregatorConfigFile {
            upstream: self.upstream.clone(),
            registry: self.upstream.is_none().then(|| PathBuf::from("../registry.csv")),
            deadline_day: Some(5),
            flush_interval_ms: Some(200),
            tls: Some(self.tls.clone()),
            // The top tier's status page, metrics and health, on loopback.
            http: self.upstream.is_none().then(|| HttpConfig { listen: "127.0.0.1:0".into(), https: false }),
            sql: self.sql_listen.clone().map(|listen| SqlSection { listen }),
            ..AggregatorConfigFile::new(&self.unit.code, &self.listen, "data")
        };
        let header = format!(
            "# sifa aggregator for {} {}, written by `sifa demo` (see config/aggregator.example.toml)\n",
            self.unit.code, self.unit.name
        );
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.config(), header + &file.to_toml())
            .with_context(|| format!("cannot write {}", self.config().display()))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let addr =
            self.process.start().with_context(|| format!("the aggregator of {} {}", self.unit.code, self.unit.name))?;
        self.listen = addr;
        if self.sql_listen.is_some() {
            let file = sifa_store::layout::sql_addr_file(&self.data_dir());
            self.sql_listen = Some(std::fs::read_to_string(&file)?.trim().to_string());
        }
        Ok(())
    }
}

/// The aggregator processes; stopped when dropped, so an error never leaves orphans.
struct Servers<'t> {
    tiers: Vec<Tier>,
    transport: &'t Transport,
}

impl Servers<'_> {
    /// Writes the tier's config, starts it, then writes the bound port into the
    /// config so a restart (by the demo or by hand) listens where lower tiers expect it.
    fn start(&mut self, mut tier: Tier) -> anyhow::Result<usize> {
        tier.write_config()?;
        tier.spawn()?;
        tier.write_config()?;
        self.tiers.push(tier);
        Ok(self.tiers.len() - 1)
    }

    fn url(&self, tier: usize) -> String {
        self.transport.url(&self.tiers[tier].listen)
    }

    fn kill9(&mut self, tier: usize) {
        self.tiers[tier].process.kill9();
    }

    fn restart(&mut self, tier: usize) -> anyhow::Result<()> {
        self.tiers[tier].spawn()
    }

    /// SIGTERM (a clean shutdown that flushes the log to Parquet), then SIGKILL after 10 s.
    fn stop_all(&mut self) {
        let mut processes: Vec<&mut Supervised> = self.tiers.iter_mut().map(|t| &mut t.process).collect();
        supervisor::stop_all(&mut processes, Duration::from_secs(10));
    }
}

impl Drop for Servers<'_> {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A reporting unit's agent: its directory with books, config and outbox.
struct Agent {
    unit: Unit,
    dir: PathBuf,
    spec: SynthSpec,
    tier: usize,
}

impl Agent {
    fn new(root: &Path, unit: Unit, year: u16, seed: u64, tier: usize) -> Agent {
        let dir = root.join("offices").join(unit.code.as_str());
        // Every fifth office corrects a row of March after sending it.
        let corrections = if seed % 5 == 2 { vec![CORRECTED_MONTH] } else { vec![] };
        Agent { unit, dir, spec: SynthSpec { corrections, ..SynthSpec::year(year, 2024) }, tier }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }

    fn spec(&self, until_month: u8, corrected: bool) -> SynthSpec {
        let corrections = if corrected { self.spec.corrections.clone() } else { vec![] };
        SynthSpec { until_month, corrections, ..self.spec.clone() }
    }

    /// Writes the books up to `until_month` and the agent config pointing at `url`.
    fn write_books(
        &self,
        until_month: u8,
        corrected: bool,
        url: &str,
        others: &OtherUnitTotals,
        pki: &Transport,
    ) -> anyhow::Result<()> {
        let spec = self.spec(until_month, corrected);
        let tls = pki.table(&self.unit.code, "office", false);
        if self.unit.kind == UnitKind::Office {
            synth::write_office(&self.dir, &self.unit, &spec, url, Path::new("outbox"), &tls)
                .with_context(|| format!("cannot write the books of {} in {}", self.unit.code, self.dir.display()))?;
            return Ok(());
        }
        let config = others.write(&self.dir, &self.unit, &spec, url, tls)?;
        std::fs::write(self.config(), config).with_context(|| format!("cannot write {}", self.config().display()))
    }

    fn queued(&self) -> usize {
        sifa_agent::outbox::list_queue(&self.dir.join("outbox")).map_or(usize::MAX, |q| q.len())
    }
}

/// What a round of pushes did.
struct RoundResult {
    delivered: usize,
    not_delivered: Vec<String>,
}

impl std::fmt::Display for RoundResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} agents delivered everything", self.delivered)?;
        if !self.not_delivered.is_empty() {
            write!(f, "; {} kept reports in their outbox for later ({})", self.not_delivered.len(), {
                let mut s = self.not_delivered.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
                if self.not_delivered.len() > 4 {
                    s += ", …";
                }
                s
            })?;
        }
        Ok(())
    }
}

fn push_all(agents: &[Agent], root: &Path) -> anyhow::Result<RoundResult> {
    push_all_with(agents, root, |_| {})
}

/// Runs `sifa agent push --once` for every agent, `PARALLEL_AGENTS` at a
/// time; `after(agent)` is called as each agent's push finishes.
fn push_all_with(agents: &[Agent], root: &Path, mut after: impl FnMut(&Agent)) -> anyhow::Result<RoundResult> {
    let exe = std::env::current_exe()?;
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(&Agent, anyhow::Result<()>)>();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_AGENTS {
            let tx = tx.clone();
            let (next, exe) = (&next, &exe);
            s.spawn(move || {
                while let Some(a) = agents.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = push_once(exe, a, root);
                    let _ = tx.send((a, r));
                }
            });
        }
        drop(tx);
        let mut failure = None;
        for (a, r) in rx {
            if let Err(e) = r {
                failure.get_or_insert(e);
            }
            after(a);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let not_delivered: Vec<String> =
            agents.iter().filter(|a| a.queued() > 0).map(|a| a.unit.code.to_string()).collect();
        Ok(RoundResult { delivered: agents.len() - not_delivered.len(), not_delivered })
    })
}

/// One agent round; its output is appended to the agent's push.log.
fn push_once(exe: &Path, a: &Agent, root: &Path) -> anyhow::Result<()> {
    let out = Command::new(exe)
        .args(["agent", "push", "--once", "--config"])
        .arg(a.config())
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("cannot run sifa agent")?;
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(a.dir.join("push.log"))?;
    log.write_all(&out.stdout)?;
    log.write_all(&out.stderr)?;
    if !out.status.success() {
        bail!(
            "the agent of {} {} failed ({}): {}",
            a.unit.code,
            a.unit.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Monthly totals of the units that are not judicial offices (mediation
/// centres, bureaus, industry committees): they keep a totals sheet only. The
/// province's mediations are split so that the offices handle about 55% of
/// them, as in docs/DOMAIN.md's published figures.
struct OtherUnitTotals {
    /// Per unit: (disputes mediated, disputes resolved) per month 1..=12.
    by_unit: BTreeMap<String, Vec<(u64, u64)>>,
}

/// The offices' share of all resolved disputes that the demo aims at.
const OFFICE_SHARE: f64 = 0.553;

impl OtherUnitTotals {
    fn new(agents: &[Agent], year: u16) -> OtherUnitTotals {
        let mut office_resolved = [0u64; 12];
        for a in agents.iter().filter(|a| a.unit.kind == UnitKind::Office) {
            for r in synth::books(&a.unit, &SynthSpec::year(year, a.spec.seed)).cases {
                if is_resolved(&r) {
                    office_resolved[r.day.month as usize - 1] += 1;
                }
            }
        }
        let weight = |u: &Unit| match u.kind {
            UnitKind::MediationCentre => 3.0,
            UnitKind::IndustryCommittee => 2.0,
            _ => 1.0,
        };
        let others: Vec<&Unit> = agents.iter().map(|a| &a.unit).filter(|u| u.kind != UnitKind::Office).collect();
        let total_weight: f64 = others.iter().map(|u| weight(u)).sum();
        let mut by_unit = BTreeMap::new();
        for u in others {
            let months = office_resolved
                .iter()
                .enumerate()
                .map(|(m, &office)| {
                    let all_others = office as f64 * (1.0 - OFFICE_SHARE) / OFFICE_SHARE;
                    let resolved = (all_others * weight(u) / total_weight).round() as u64;
                    // Roughly 93% of mediations succeed; vary it a little by unit and month.
                    let failed = ((resolved as f64 * 0.07) + ((u.code.len() + m) % 3) as f64).round() as u64;
                    (resolved + failed, resolved)
                })
                .collect();
            by_unit.insert(u.code.to_string(), months);
        }
        OtherUnitTotals { by_unit }
    }

    /// Writes the unit's totals sheet (UTF-8 CSV headed by the catalog's
    /// Chinese names) and returns its agent config.
    fn write(&self, dir: &Path, unit: &Unit, spec: &SynthSpec, url: &str, tls: TlsConfig) -> anyhow::Result<String> {
        std::fs::create_dir_all(dir)?;
        let mut sheet = String::from("\u{feff}月份,调解矛盾纠纷,调解成功,备注\r\n");
        for (m, (mediated, resolved)) in
            self.by_unit[unit.code.as_str()].iter().enumerate().take(spec.until_month as usize)
        {
            sheet += &format!("{}-{:02},{mediated},{resolved},\r\n", spec.year, m + 1);
        }
        let file = format!("月度汇总_{}.csv", unit.code);
        std::fs::write(dir.join(&file), sheet)?;
        let config = AgentConfigFile {
            first_period: Some(format!("{}-01", spec.year)),
            last_period: Some(format!("{}-{:02}", spec.year, spec.until_month)),
            retry_min_seconds: 1,
            retry_max_seconds: 60,
            connect_timeout_seconds: 5,
            totals: vec![TotalsSource::new(file)],
            ..AgentConfigFile::new(&unit.code, url, tls)
        };
        Ok(format!(
            "# sifa-agent config for {} ({}), written by `sifa demo` (see config/agent.example.toml)\n{}",
            unit.name,
            unit.code,
            config.to_toml()
        ))
    }
}

fn is_resolved(r: &synth::CaseRow) -> bool {
    r.category == "人民调解" && r.outcome == "调解成功"
}

/// Per unit, the year's figures the province must hold, summed from the books.
struct Expected {
    resolved: BTreeMap<String, u64>,
    consultations: BTreeMap<String, u64>,
}

struct Checked {
    unit_months: usize,
    resolved: u64,
    consultations: u64,
}

impl Expected {
    fn from_books(agents: &[Agent], year: u16, others: &OtherUnitTotals) -> Expected {
        let mut e = Expected { resolved: BTreeMap::new(), consultations: BTreeMap::new() };
        for a in agents {
            let (resolved, consultations) = if a.unit.kind == UnitKind::Office {
                let books = synth::books(&a.unit, &a.spec(12, true));
                // Consultations count person-times: the 人数 of each 法律咨询 row.
                let consultations =
                    books.cases.iter().filter(|r| r.category == "法律咨询").map(|r| u64::from(r.people)).sum();
                (books.cases.iter().filter(|r| is_resolved(r)).count() as u64, consultations)
            } else {
                (others.by_unit[a.unit.code.as_str()].iter().map(|m| m.1).sum(), 0)
            };
            e.resolved.insert(a.unit.code.to_string(), resolved);
            e.consultations.insert(a.unit.code.to_string(), consultations);
        }
        let _ = year;
        e
    }

    /// Polls the top tier's store (of a `top_kind`) until it holds twelve months of every unit
    /// with exactly the books' figures, or fails naming the units that differ.
    async fn wait_for(&self, data: &Path, top_kind: &str, year: u16, p: &Progress) -> anyhow::Result<Checked> {
        let sql = format!(
            "SELECT unit_code, count(*) AS months, sum(disputes_resolved) AS resolved, \
             sum(coalesce(consultations, 0)) AS consultations FROM reports WHERE year = {year} GROUP BY unit_code"
        );
        let t0 = Instant::now();
        let mut said = false;
        loop {
            // The store changes under the query (new files, compaction): a failed read is tried again.
            let rows = match read_rows(data, &sql).await {
                Ok(rows) => rows,
                Err(e) if t0.elapsed() < CONVERGE_TIMEOUT => {
                    tracing::debug!("reading the {top_kind}'s store: {e:#}");
                    vec![]
                }
                Err(e) => return Err(e),
            };
            let mut wrong = Vec::new();
            let mut held = BTreeMap::new();
            for row in rows {
                let unit = row["unit_code"].as_str().unwrap_or_default().to_string();
                let n = |k: &str| row[k].as_f64().unwrap_or(-1.0);
                held.insert(unit, (n("months"), n("resolved"), n("consultations")));
            }
            for (unit, &resolved) in &self.resolved {
                let want = (12.0, resolved as f64, self.consultations[unit] as f64);
                if held.get(unit) != Some(&want) {
                    wrong.push(format!("{unit}: holds {:?}, books say {want:?}", held.get(unit)));
                }
            }
            if wrong.is_empty() && held.len() == self.resolved.len() {
                return Ok(Checked {
                    unit_months: held.values().map(|v| v.0 as usize).sum(),
                    resolved: self.resolved.values().sum(),
                    consultations: self.consultations.values().sum(),
                });
            }
            if !said {
                p.say(format!(
                    "waiting for the counties to forward the last reports ({} of the units not yet complete)",
                    wrong.len()
                ));
                said = true;
            }
            if t0.elapsed() > CONVERGE_TIMEOUT {
                bail!(
                    "the {top_kind}'s figures do not match the books after {}s: {}",
                    CONVERGE_TIMEOUT.as_secs(),
                    wrong.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Checks that the nation's store (`top`, at `top_data`) holds exactly the rows of its provinces'
/// stores together, every column alike, and says so; the stores must be at rest (servers stopped).
fn same_rows(top: &Unit, top_data: &Path, provinces: &[(&Unit, PathBuf)]) -> anyhow::Result<String> {
    let held = store_rows(top_data)?;
    let mut union = std::collections::BTreeSet::new();
    let mut counts = Vec::new();
    for (province, data) in provinces {
        let rows = store_rows(data)?;
        counts.push(format!("{} {} {}", province.code, province.name, rows.len()));
        union.extend(rows);
    }
    if held != union {
        let missing: Vec<&String> = union.difference(&held).take(3).collect();
        let extra: Vec<&String> = held.difference(&union).take(3).collect();
        bail!(
            "the {} store does not hold exactly its provinces' rows: {} rows against {} ({}); missing e.g. \
             {missing:?}; not in any province e.g. {extra:?}",
            top.kind,
            held.len(),
            union.len(),
            counts.join(", ")
        );
    }
    Ok(format!(
        "exact: the {} store holds the very rows of its provinces' stores, {} in all ({})",
        top.kind,
        held.len(),
        counts.join(" + ")
    ))
}

/// Every revision a data directory's Parquet files hold, each as one comparable line (values in
/// catalog-code order).
fn store_rows(data: &Path) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let catalog = sifa_proto::Catalog::load(&data.join(sifa_store::layout::CATALOG_FILE))
        .with_context(|| format!("the catalog of the store {}", data.display()))?;
    let mut rows = std::collections::BTreeSet::new();
    for (_, _, path) in sifa_store::list_files(data)? {
        for r in sifa_store::read_file(&path, &catalog)? {
            let values: BTreeMap<_, _> = r.report.values.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect();
            let mut report = r.report.clone();
            report.values.clear();
            rows.insert(format!(
                "{report:?} {values:?} {} {:?} {:?} {:?} {:?} {} {}",
                r.period,
                r.unit_kind,
                r.province_code,
                r.city_code,
                r.county_code,
                r.received_at_ms,
                r.first_accepted_by
            ));
        }
    }
    Ok(rows)
}

async fn read_rows(data: &Path, sql: &str) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let (_store, ctx) = sifa_queries::open(data).await?;
    let answer = sifa_queries::query::run_one(&ctx, sql).await?;
    Ok(sifa_queries::format::json_rows(&answer)?)
}

/// The headline figures, from SQL on the store of the top tier, `top` (a province, or the nation).
async fn headlines(top: &Unit, data: &Path, year: u16) -> anyhow::Result<()> {
    let national = top.kind == UnitKind::Nation;
    let (scope_zh, scope_en) = if national { ("全国", "the nation") } else { ("全省", "the province") };
    let (store, ctx) = sifa_queries::open(data).await?;
    let rollup = |name: &str| -> anyhow::Result<String> {
        let sql =
            sifa_queries::rollup::find(name)?.sql_for(&sifa_queries::rollup::Params::year(year), &store.catalog)?;
        Ok(sql.trim().trim_end_matches(';').to_string())
    };
    let share = sifa_queries::query::run_one(&ctx, &rollup("share_of_mediations")?).await?;
    if let Some(p) = sifa_queries::format::json_rows(&share)?.into_iter().find(|r| r["level"] == top.kind.as_str()) {
        let n = |k: &str| p[k].as_f64().unwrap_or_default();
        // The nation's offices are 全国司法所, not the ministry's own.
        let name = if national { "全国" } else { p["name"].as_str().unwrap_or_default() };
        println!(
            "{year}年，{name}司法所调解成功矛盾纠纷{}件，占{scope_zh}调解成功总量{}件的{}%。",
            n("office_resolved"),
            n("all_resolved"),
            n("office_share_pct")
        );
        println!(
            "In {year} the judicial offices resolved {} disputes by mediation, {}% of the {} resolved in {scope_en}.\n",
            n("office_resolved"),
            n("office_share_pct"),
            n("all_resolved")
        );
    }
    println!("── 司法所调解占比 Share of resolved disputes handled by judicial offices (rollup share_of_mediations)");
    print_answer(&share)?;
    // Per city below a province; per province below the nation.
    let (title, area, area_zh) = if national {
        ("各省合计 Totals per province", "province", "省")
    } else {
        ("各市合计 Totals per city", "city", "市")
    };
    println!("── {title}");
    let per_area = format!(
        "SELECT u.{area}_code AS {area}, u.{area}_name AS {area_zh}, \
           count(DISTINCT CASE WHEN u.kind = 'office' THEN r.unit_code END) AS offices, \
           sum(r.disputes_mediated) AS disputes_mediated, sum(r.disputes_resolved) AS disputes_resolved, \
           sum(r.consultations) AS consultations, sum(r.legal_aid_cases) AS legal_aid_cases \
         FROM reports r JOIN units u ON u.code = r.unit_code \
         WHERE r.year = {year} AND u.{area}_code IS NOT NULL GROUP BY 1, 2 ORDER BY 1"
    );
    print_answer(&sifa_queries::query::run_one(&ctx, &per_area).await?)?;
    println!(
        "── 报送完整性 Completeness of {year} (rollup completeness; the demo backfills a past year, so all arrive late)"
    );
    let completeness = format!(
        "SELECT level, code, name, sum(expected) AS expected, sum(received) AS received, sum(missing) AS missing, \
           sum(late) AS late, round(100.0 * sum(received) / sum(expected), 1) AS received_pct \
         FROM ({}) c WHERE level IN ('{}', '{area}') GROUP BY level, code, name \
         ORDER BY CASE level WHEN '{area}' THEN 2 ELSE 1 END, code",
        rollup("completeness")?,
        top.kind.as_str()
    );
    print_answer(&sifa_queries::query::run_one(&ctx, &completeness).await?)?;
    Ok(())
}

fn print_answer(answer: &sifa_queries::query::Answer) -> anyhow::Result<()> {
    print!("{}", sifa_queries::format::render_for_terminal(sifa_queries::format::Format::Table, answer)?);
    println!();
    Ok(())
}

fn print_next_steps(dir: &Path, servers: &Servers<'_>, agents: &[Agent], year: u16) {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "sifa".into());
    let top = servers.tiers[0].data_dir();
    let kind = servers.tiers[0].unit.kind.as_str();
    println!("\nEverything is in {}. Next:", dir.display());
    println!("  # SQL on the {kind}'s store (an interactive prompt without a query)");
    println!("  {exe} query --data {} --rollup share_of_mediations --year {year}", top.display());
    println!("  {exe} query --data {}", top.display());
    println!("  # publish the year's figures again");
    println!("  {exe} publish --data {} --year {year} --out {}", top.display(), dir.join("publish").display());
    println!("  # start the servers again from their configs (the {kind} first), then an agent");
    for t in &servers.tiers {
        println!("  {exe} aggregator --config {} &", t.config().display());
    }
    if let (Transport::Tls(pki), Some(sql)) = (servers.transport, &servers.tiers[0].sql_listen) {
        println!("  # then SQL live from the running {kind} (Flight SQL, an analyst's certificate; docs/SQL.md)");
        let files = pki.table(&servers.tiers[0].unit.code, "analyst", false);
        let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();
        println!(
            "  {exe} query --connect https://{sql} --ca {} --cert {} --key {} --rollup totals --year {year}",
            path(files.ca),
            path(files.cert),
            path(files.key)
        );
    }
    if let Some(a) = agents.first() {
        println!("  {exe} agent status --config {}", a.config().display());
    }
}
