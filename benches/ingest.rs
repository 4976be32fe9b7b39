//! Ingest throughput and freshness through the real server, over mutual TLS,
//! with PostgreSQL 15 as the peer measured in the same run.
//!
//!     cargo bench --bench ingest
//!
//! Rounds of, one after another on the same cores (the machine's load moves
//! between minutes; the ratios of one round are what counts):
//!
//! - the peer: PostgreSQL 15 with its default durability (benches/peers/postgres.rs),
//!   pgbench inserting one report per transaction from `CALLERS` clients for `SECS`;
//! - unary: a county aggregator (the release `sifa` binary) taking `Submit`
//!   calls for `SECS` from `CALLERS` offices of the county, each with its own
//!   certificate and its own connection, one call after another, as agents
//!   connect;
//! - streaming: a province aggregator taking concurrent SubmitStream calls
//!   from the 13 counties of 甘肃省 (each with its aggregator certificate,
//!   `STREAMS_PER_COUNTY` streams of `PER_STREAM` distinct office reports one
//!   after another), then how long until all are rows of the Parquet store.
//!
//! Every report is acknowledged only once it is in the fsynced write-ahead log
//! (group commit), as a PostgreSQL commit is only once its WAL is flushed.
//!
//! Then, once: freshness, a county aggregator forwarding to the province; one
//! report at a time is submitted to the county and the time until it is a row
//! of the province's Parquet store is measured (median, p90 and worst of
//! `PROBES`), with the shipped `flush_interval_ms` (1000) and with 200; and
//! catch-up: a county holding `BACKLOG` reports while the province is down,
//! forwarding them once it is back, while its offices keep sending `ARRIVING`
//! new reports: how soon forwarding resumes after the province listens again,
//! and the reports per second forwarded.
//!
//! One part only: `cargo bench --bench ingest -- catch-up` (or `unary`,
//! `streaming`, `freshness`).
//!
//! Results are written by hand to docs/PERFORMANCE.md ("Aggregator").
//!
//! `cargo bench --bench ingest -- unary` (or `streaming`, `catch-up`,
//! `freshness`) runs only that part, e.g. while a profiler watches the server;
//! the peer runs with `unary` and `streaming`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
#[path = "peers/postgres.rs"]
mod postgres;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sifa_aggregator::auth::{Limits, Role};
use sifa_proto::Registry;
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{Provenance, Report, SubmitRequest, ack};
use support::{TestAggregator, TierSpec, report};
use tonic::transport::Channel;

/// Measured rounds (peer, unary, streaming in each).
const ROUNDS: usize = 2;
/// Concurrent unary callers, each an office with its own connection; as many pgbench clients.
const CALLERS: usize = 50;
/// Seconds of each pgbench run and of each unary run.
const SECS: u64 = 10;
/// The county whose offices call in the unary run; the benchmark's registry
/// gives it `CALLERS` offices (620982200, 620982201, …) besides the demo's.
const COUNTY: &str = "620982";
/// Reports per stream (at most `[limits] max_reports_per_stream`, 10,000 by
/// default) and streams one after another per county; the 13 counties of 甘肃省
/// in the demo registry stream concurrently.
const PER_STREAM: usize = 10_000;
const STREAMS_PER_COUNTY: usize = 4;
/// Reports a county holds while its upstream is down, then forwards.
const BACKLOG: usize = 100_000;
/// New reports the county takes while it catches up.
const ARRIVING: usize = 20_000;
const PROBES: usize = 20;

/// The `i`th distinct report of `unit`: months × revisions.
fn office_report(unit: &str, i: usize) -> Report {
    const MONTHS: usize = 120;
    let period = format!("{}-{:02}", 2015 + (i % MONTHS) / 12, 1 + i % 12);
    let revision = 1 + (i / MONTHS) as u64;
    let mut r = report(unit, &period, revision, &[("lectures", (i % 50) as f64), ("consultations", i as f64)]);
    r.values.insert("disputes_mediated".into(), (i % 30) as f64 + 5.0);
    r.values.insert("disputes_resolved".into(), (i % 30) as f64);
    r
}

/// Distinct reports of the offices of `county`, taking turns.
fn reports_of(registry: &Registry, county: &str, n: usize) -> Vec<Report> {
    let units: Vec<String> = registry
        .reporting_units(county)
        .into_iter()
        .filter(|u| u.kind.as_str() == "office")
        .map(|u| u.code.to_string())
        .collect();
    (0..n).map(|i| office_report(&units[i % units.len()], i / units.len())).collect()
}

/// The unary run's offices: `CALLERS` of them under `COUNTY`.
fn bench_offices() -> Vec<String> {
    (0..CALLERS).map(|i| format!("{COUNTY}{:03}", 200 + i)).collect()
}

/// The demo registry with the unary run's offices added, written to `dir`.
fn bench_registry(dir: &Path) -> PathBuf {
    let mut csv = std::fs::read_to_string(support::demo_registry_path()).expect("demo registry");
    for (i, code) in bench_offices().iter().enumerate() {
        csv.push_str(&format!("{code},基准司法所{i},office,{COUNTY},10000,5\n"));
    }
    let path = dir.join("registry.csv");
    std::fs::write(&path, csv).expect("write the benchmark registry");
    path
}

/// The province and one client per county (its aggregator certificate).
async fn province_and_clients(registry: &Registry) -> (TestAggregator, Vec<(String, ReportServiceClient<Channel>)>) {
    let province = TestAggregator::spawn(TierSpec { flush_interval_ms: 1000, ..TierSpec::top("62") });
    let counties: Vec<String> = registry
        .units()
        .iter()
        .filter(|u| u.kind.as_str() == "county" && u.code.starts_with("62"))
        .map(|u| u.code.to_string())
        .collect();
    let mut clients = Vec::new();
    for c in counties {
        let client = ReportServiceClient::new(province.channel_as(Role::Aggregator, &c).await)
            .max_decoding_message_size(64 << 20);
        clients.push((c, client));
    }
    (province, clients)
}

/// Runs the callers concurrently, each returning how many reports it had
/// acknowledged, and prints the rate; returns (reports, reports/s).
async fn timed<F>(what: &str, callers: Vec<F>) -> (usize, f64)
where
    F: Future<Output = usize> + Send + 'static,
{
    let t0 = Instant::now();
    let tasks: Vec<_> = callers.into_iter().map(tokio::spawn).collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let rate = total as f64 / secs;
    println!("{what}: {total} reports in {secs:.2} s = {rate:.0} durable reports/s");
    (total, rate)
}

/// A report of a demo office as its county forwards it: with the provenance the county gave it (an
/// office's county is the first six digits of its code in the demo registry).
fn forwarded(r: Report) -> SubmitRequest {
    let first = Provenance { first_accepted_by: r.unit_code[..6].to_string(), received_at_ms: now_unix_ms() };
    SubmitRequest { report: Some(r), provenance: Some(first) }
}

/// Each office streams its own reports to the county at `url` (one path per report: an office's own
/// certificate, to the tier directly above it), all offices at once.
async fn each_office_streams(url: &str, reports: Vec<Report>) {
    let mut by_office: BTreeMap<String, Vec<SubmitRequest>> = BTreeMap::new();
    for r in reports {
        by_office.entry(r.unit_code.clone()).or_default().push(SubmitRequest { report: Some(r), provenance: None });
    }
    let mut offices = Vec::new();
    for (office, requests) in by_office {
        let client = ReportServiceClient::new(support::connect(url, Role::Office, &office).await);
        offices.push(tokio::spawn(stream_all(client, requests)));
    }
    for o in offices {
        o.await.unwrap();
    }
}

/// Sends `requests` over consecutive SubmitStream calls of `PER_STREAM`; returns how many were accepted.
async fn stream_all(mut client: ReportServiceClient<Channel>, requests: Vec<SubmitRequest>) -> usize {
    let mut accepted = 0;
    for chunk in requests.chunks(PER_STREAM) {
        let reqs: Vec<SubmitRequest> = chunk.to_vec();
        let mut acks = client.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
        while let Some(a) = acks.message().await.unwrap() {
            assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
            accepted += 1;
        }
    }
    assert_eq!(accepted, requests.len());
    accepted
}

/// Concurrent SubmitStream calls, one county at a time each: durable reports/s.
async fn throughput_streams() -> f64 {
    let registry = Registry::demo();
    let (province, clients) = province_and_clients(&registry).await;
    let n = clients.len();
    let callers: Vec<_> = clients
        .into_iter()
        .map(|(c, client)| {
            stream_all(
                client,
                reports_of(&registry, &c, PER_STREAM * STREAMS_PER_COUNTY).into_iter().map(forwarded).collect(),
            )
        })
        .collect();
    let (total, rate) = timed(
        &format!("streaming: {n} concurrent SubmitStream callers ({STREAMS_PER_COUNTY} × {PER_STREAM} each)"),
        callers,
    )
    .await;
    // Under that load, how long until every acknowledged report is a row of the store.
    let t0 = Instant::now();
    while parquet_rows(&province) != total {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("  all {total} in the province's Parquet {} ms after the last acknowledgement", t0.elapsed().as_millis());
    drop(province);
    rate
}

/// Rows in the store's Parquet files, from their footers (read again if a
/// compaction replaced a file meanwhile).
fn parquet_rows(agg: &TestAggregator) -> usize {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    'again: loop {
        let mut rows = 0;
        for (_, _, path) in sifa_store::list_files(&agg.data_dir()).unwrap() {
            let Ok(file) = std::fs::File::open(&path) else { continue 'again };
            rows += SerializedFileReader::new(file).unwrap().metadata().file_metadata().num_rows() as usize;
        }
        return rows;
    }
}

/// A county holding `BACKLOG` reports while the province is down, then
/// forwarding them, with `ARRIVING` new reports sent to it meanwhile: how soon
/// the first batch is acknowledged after the province listens again, and
/// reports per second once forwarding has started.
async fn catch_up() {
    let registry = Registry::demo();
    let mut province = TestAggregator::spawn(TierSpec { flush_interval_ms: 1000, ..TierSpec::top("62") });
    // Each office sends its own backlog (one path per report), unhindered by the rate limit.
    let limits = Limits { reports_per_second: 1_000_000, burst: 1_000_000, ..Limits::default() };
    let county = TestAggregator::spawn(TierSpec {
        flush_interval_ms: 1000,
        limits: Some(limits),
        ..TierSpec::below("620982", &province.url())
    });
    province.kill9();
    let mut reports = reports_of(&registry, "620982", BACKLOG + ARRIVING);
    let arriving = reports.split_off(BACKLOG);
    each_office_streams(&county.url(), reports).await;
    let cursor = || {
        let text = std::fs::read_to_string(
            sifa_store::layout::state_dir(&county.data_dir()).join(sifa_store::layout::FORWARD_CURSOR_FILE),
        )
        .unwrap_or_default();
        text.trim().parse::<usize>().unwrap_or(0)
    };
    assert_eq!(cursor(), 0);
    // The county has been retrying for a while, so its backoff is at its cap.
    std::thread::sleep(Duration::from_secs(3));
    province.restart();
    let back = Instant::now();
    let new_reports = tokio::spawn({
        let county_url = county.url();
        async move { each_office_streams(&county_url, arriving).await }
    });
    while cursor() == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let resumed = back.elapsed();
    let (t0, start) = (Instant::now(), cursor());
    let all = BACKLOG + ARRIVING;
    while cursor() < all {
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = t0.elapsed().as_secs_f64();
    new_reports.await.unwrap();
    println!(
        "catch-up: forwarding resumed {} ms after the province listened again; a county forwarded its backlog of \
         {BACKLOG} and {ARRIVING} reports arriving meanwhile at {:.0} reports/s ({} in {secs:.2} s after the first batch)",
        resumed.as_millis(),
        (all - start) as f64 / secs,
        all - start
    );
}

/// `CALLERS` offices of `COUNTY`, each with its certificate and its own
/// connection, calling Submit one report after another for `SECS`: durable reports/s.
async fn throughput_unary(registry: &Path) -> f64 {
    let county = TestAggregator::spawn(TierSpec {
        registry: Some(registry.to_path_buf()),
        flush_interval_ms: 1000,
        // An office may send 100 reports/s by default; here each sends as fast as it is answered.
        limits: Some(Limits { reports_per_second: 1_000_000, burst: 1_000_000, ..Limits::default() }),
        ..TierSpec::top(COUNTY)
    });
    let mut clients = Vec::new();
    for unit in bench_offices() {
        let client = county.client_as(Role::Office, &unit).await;
        clients.push((unit, client));
    }
    let deadline = Instant::now() + Duration::from_secs(SECS);
    let callers = clients.into_iter().map(|(unit, mut client)| async move {
        let mut accepted = 0;
        while Instant::now() < deadline {
            let r = office_report(&unit, accepted);
            let a = client.submit(SubmitRequest { report: Some(r), provenance: None }).await.unwrap().into_inner();
            assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
            accepted += 1;
        }
        accepted
    });
    let (_, rate) =
        timed(&format!("unary: {CALLERS} offices, each its own connection, for {SECS} s"), callers.collect()).await;
    drop(county);
    rate
}

/// Acknowledged at a county → a row of the province's Parquet store, with both
/// tiers at `flush_interval_ms`.
async fn freshness(flush_interval_ms: u64) {
    let province = TestAggregator::spawn(TierSpec { flush_interval_ms, ..TierSpec::top("62") });
    let county = TestAggregator::spawn(TierSpec { flush_interval_ms, ..TierSpec::below("620982", &province.url()) });
    let mut client = county.client_as(Role::Office, "620982101").await;
    let mut times = Vec::new();
    for i in 0..PROBES {
        let r = report("620982101", &format!("20{:02}-{:02}", 10 + i / 12, 1 + i % 12), 1, &[("lectures", 1.0)]);
        let t0 = Instant::now();
        let a = client.submit(SubmitRequest { report: Some(r), provenance: None }).await.unwrap().into_inner();
        assert_eq!(a.outcome, ack::Outcome::Accepted as i32);
        while province.rows().len() <= i {
            std::thread::sleep(Duration::from_millis(5));
        }
        times.push(t0.elapsed());
        // Probes at staggered points of the flush cycle.
        std::thread::sleep(Duration::from_millis(37 * (i as u64 % 7)));
    }
    times.sort();
    println!(
        "freshness (acknowledged at a county → a row of the province's Parquet), flush_interval_ms = {flush_interval_ms}: \
         median {} ms, p90 {} ms, worst {} ms ({PROBES} probes)",
        times[PROBES / 2].as_millis(),
        times[PROBES * 9 / 10].as_millis(),
        times[PROBES - 1].as_millis()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: only run when benchmarking.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let parts = ["unary", "streaming", "catch-up", "freshness"];
    let chosen: Vec<&str> = parts.into_iter().filter(|p| args.iter().any(|a| a == p)).collect();
    let run = |part: &str| chosen.is_empty() || chosen.contains(&part);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if run("unary") || run("streaming") {
        rt.block_on(rounds(run("unary"), run("streaming")));
    }
    if run("catch-up") {
        rt.block_on(catch_up());
    }
    if run("freshness") {
        // The shipped default, and a shorter interval.
        rt.block_on(freshness(1000));
        rt.block_on(freshness(200));
    }
}

/// `ROUNDS` of: the peer, unary, streaming; then a table of the rates and their ratios to the peer's.
async fn rounds(unary: bool, streaming: bool) {
    let dir = tempfile::Builder::new().prefix("sifa-bench-").tempdir().expect("temp dir");
    let registry = bench_registry(dir.path());
    let pg = match postgres::Postgres::start() {
        Ok(pg) => {
            println!("peer: PostgreSQL 15 ({})", pg.durability());
            Some(pg)
        }
        Err(why) => {
            println!("peer: PostgreSQL skipped: {why}");
            None
        }
    };
    let mut results = Vec::new();
    for round in 1..=ROUNDS {
        println!("round {round} of {ROUNDS}");
        let tps = pg.as_ref().map(|pg| pg.pgbench(CALLERS, SECS));
        if let Some(tps) = tps {
            println!(
                "PostgreSQL: pgbench, {CALLERS} clients for {SECS} s, one report per transaction: {tps:.0} transactions/s"
            );
        }
        let u = if unary { Some(throughput_unary(&registry).await) } else { None };
        let s = if streaming { Some(throughput_streams().await) } else { None };
        results.push((tps, u, s));
    }
    drop(pg);
    let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.0}"));
    let ratio = |x: Option<f64>, tps: Option<f64>| match (x, tps) {
        (Some(x), Some(t)) => format!("{:.1}×", x / t),
        _ => "-".to_string(),
    };
    println!("\nround | PostgreSQL tx/s | sifa unary/s | unary ÷ PostgreSQL | sifa streamed/s | streamed ÷ PostgreSQL");
    for (i, (tps, u, s)) in results.into_iter().enumerate() {
        println!("{} | {} | {} | {} | {} | {}", i + 1, show(tps), show(u), ratio(u, tps), show(s), ratio(s, tps));
    }
    println!();
}
