//! Ingest throughput and freshness through the real server, over mutual TLS.
//!
//!     cargo bench --bench ingest
//!
//! Throughput: a province aggregator (the release `sifa` binary) takes
//! `STREAMS` concurrent SubmitStream calls, each from a county's aggregator
//! certificate carrying `PER_STREAM` distinct office reports of that county;
//! every report is acknowledged only once it is in the fsynced write-ahead log
//! (group commit). Reported: durable acknowledgements per second.
//!
//! Freshness: a county aggregator forwarding to the province; one report at a
//! time is submitted to the county and the time until it is a row of the
//! province's Parquet store is measured (median and worst of `PROBES`).
//!
//! Results are written by hand to docs/PERFORMANCE.md ("Aggregator").

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sifa_aggregator::auth::Role;
use sifa_proto::Registry;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{Report, SubmitRequest, ack};
use support::{TestAggregator, TierSpec, report};

const STREAMS: usize = 8;
const PER_STREAM: usize = 25_000;
const PROBES: usize = 20;

/// Distinct reports of the offices of `county`: units × months × revisions.
fn reports_of(registry: &Registry, county: &str, n: usize) -> Vec<Report> {
    let units: Vec<String> = registry
        .reporting_units(county)
        .into_iter()
        .filter(|u| u.kind.as_str() == "office")
        .map(|u| u.code.clone())
        .collect();
    let periods: Vec<String> = (2015..2025).flat_map(|y| (1..=12).map(move |m| format!("{y}-{m:02}"))).collect();
    (0..n)
        .map(|i| {
            let unit = &units[i % units.len()];
            let period = &periods[(i / units.len()) % periods.len()];
            let revision = 1 + (i / (units.len() * periods.len())) as u64;
            let mut r = report(unit, period, revision, &[("lectures", (i % 50) as f64), ("consultations", i as f64)]);
            r.values.insert("disputes_mediated".into(), (i % 30) as f64 + 5.0);
            r.values.insert("disputes_resolved".into(), (i % 30) as f64);
            r
        })
        .collect()
}

async fn throughput() {
    let registry = Registry::demo();
    let province = TestAggregator::spawn(TierSpec { flush_interval_ms: 1000, ..TierSpec::top("62") });
    let counties: Vec<String> = registry
        .units()
        .iter()
        .filter(|u| u.kind.as_str() == "county" && u.code.starts_with("62"))
        .take(STREAMS)
        .map(|u| u.code.clone())
        .collect();
    let mut work = Vec::new();
    for c in &counties {
        let client = ReportServiceClient::new(province.channel_as(Role::Aggregator, c).await)
            .max_decoding_message_size(64 << 20);
        work.push((client, reports_of(&registry, c, PER_STREAM)));
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, reports) in work {
        tasks.push(tokio::spawn(async move {
            let n = reports.len();
            let reqs = reports.into_iter().map(|r| SubmitRequest { report: Some(r), provenance: None });
            let mut acks = client.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
            let mut accepted = 0;
            while let Some(a) = acks.message().await.unwrap() {
                assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
                accepted += 1;
            }
            assert_eq!(accepted, n);
            accepted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "ingest: {total} reports on {STREAMS} streams in {secs:.2} s = {:.0} durable reports/s",
        total as f64 / secs
    );
}

async fn freshness() {
    let province = TestAggregator::spawn(TierSpec { flush_interval_ms: 200, ..TierSpec::top("62") });
    let county =
        TestAggregator::spawn(TierSpec { flush_interval_ms: 200, ..TierSpec::below("620982", &province.url()) });
    let mut client = county.client_as(Role::Office, "620982101").await;
    let mut times = Vec::new();
    for i in 0..PROBES {
        let r = report("620982101", &format!("20{:02}-{:02}", 10 + i / 12, 1 + i % 12), 1, &[("lectures", 1.0)]);
        let t0 = Instant::now();
        let a = client.submit(SubmitRequest { report: Some(r), provenance: None }).await.unwrap().into_inner();
        assert_eq!(a.outcome, ack::Outcome::Accepted as i32);
        loop {
            if province.rows().len() > i {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(t0.elapsed());
    }
    times.sort();
    println!(
        "freshness (acknowledged at a county → a row of the province's Parquet): median {} ms, worst {} ms ({PROBES} probes, flush_interval_ms = 200)",
        times[PROBES / 2].as_millis(),
        times[PROBES - 1].as_millis()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: only run when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(throughput());
    rt.block_on(freshness());
}
