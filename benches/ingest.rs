//! Ingest throughput and freshness through the real server, over mutual TLS.
//!
//!     cargo bench --bench ingest
//!
//! Throughput: a province aggregator (the release `sifa` binary) takes
//! concurrent SubmitStream calls from the 13 counties of 甘肃省 (each with its
//! aggregator certificate, `STREAMS_PER_COUNTY` streams of `PER_STREAM`
//! distinct office reports one after another); every report is acknowledged
//! only once it is in the fsynced write-ahead log (group commit). Reported:
//! durable acknowledgements per second, then how long until all are rows of
//! the Parquet store.
//!
//! The same with `UNARY_CALLERS` concurrent unary Submit callers per county
//! connection.
//!
//! Freshness: a county aggregator forwarding to the province; one report at a
//! time is submitted to the county and the time until it is a row of the
//! province's Parquet store is measured (median, p90 and worst of `PROBES`),
//! with the shipped `flush_interval_ms` (1000) and with 200.
//!
//! Catch-up: a county holding `BACKLOG` reports while the province is down,
//! forwarding them once it is back, while its offices keep sending `ARRIVING`
//! new reports: how soon forwarding resumes after the province listens again,
//! and the reports per second forwarded.
//!
//! One part only: `cargo bench --bench ingest -- catch-up` (or `streams`,
//! `unary`, `freshness`).
//!
//! Results are written by hand to docs/PERFORMANCE.md ("Aggregator").

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sifa_aggregator::auth::{Limits, Role};
use sifa_proto::Registry;
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{Provenance, Report, SubmitRequest, ack};
use support::{TestAggregator, TierSpec, report};
use tonic::transport::Channel;

/// Reports per stream (at most `[limits] max_reports_per_stream`, 10,000 by
/// default) and streams one after another per county; the 13 counties of 甘肃省
/// in the demo registry stream concurrently.
const PER_STREAM: usize = 10_000;
const STREAMS_PER_COUNTY: usize = 4;
/// Reports a county holds while its upstream is down, then forwards.
const BACKLOG: usize = 100_000;
/// New reports the county takes while it catches up.
const ARRIVING: usize = 20_000;
/// Unary: reports per county connection, and concurrent callers sharing it.
const UNARY_PER_COUNTY: usize = 8_000;
const UNARY_CALLERS: usize = 64;
const PROBES: usize = 20;

/// Distinct reports of the offices of `county`: units × months × revisions.
fn reports_of(registry: &Registry, county: &str, n: usize) -> Vec<Report> {
    let units: Vec<String> = registry
        .reporting_units(county)
        .into_iter()
        .filter(|u| u.kind.as_str() == "office")
        .map(|u| u.code.to_string())
        .collect();
    let periods: Vec<String> = (2015..2025).flat_map(|y| (1..=12).map(move |m| format!("{y}-{m:02}"))).collect();
    (0..n)
        .map(|i| {
            let unit = &units[i % units.len()];
            let period = &periods[(i / units.len()) % periods.len()];
            let revision = 1 + (i / (units.len() * periods.len())) as u64;
            let mut r = report(
                unit,
                period,
                revision,
                &[("lectures", (i % 50) as f64), ("consultations", (i % 100_000) as f64)],
            );
            r.values.insert("disputes_mediated".into(), (i % 30) as f64 + 5.0);
            r.values.insert("disputes_resolved".into(), (i % 30) as f64);
            r
        })
        .collect()
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
/// acknowledged, and prints the rate.
async fn timed<F>(what: &str, callers: Vec<F>) -> usize
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
    println!("{what}: {total} reports in {secs:.2} s = {:.0} durable reports/s", total as f64 / secs);
    total
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

/// Concurrent SubmitStream calls, one county at a time each.
async fn throughput_streams() {
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
    let total = timed(
        &format!("ingest, {n} concurrent SubmitStream callers ({STREAMS_PER_COUNTY} × {PER_STREAM} each)"),
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

/// Many concurrent unary Submit calls: `UNARY_CALLERS` callers per county connection.
async fn throughput_unary() {
    let registry = Registry::demo();
    let (province, clients) = province_and_clients(&registry).await;
    let mut work = Vec::new();
    for (c, client) in clients {
        let reports = reports_of(&registry, &c, UNARY_PER_COUNTY);
        for chunk in reports.chunks(UNARY_PER_COUNTY / UNARY_CALLERS) {
            work.push((client.clone(), chunk.to_vec()));
        }
    }
    let n = work.len();
    let callers = work.into_iter().map(|(mut client, reports)| async move {
        let mut accepted = 0;
        for r in reports {
            let a = client.submit(forwarded(r)).await.unwrap().into_inner();
            assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
            accepted += 1;
        }
        accepted
    });
    timed(&format!("ingest, {n} concurrent unary callers"), callers.collect()).await;
    drop(province);
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
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if run("streams") {
        rt.block_on(throughput_streams());
    }
    if run("unary") {
        rt.block_on(throughput_unary());
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
