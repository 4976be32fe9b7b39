//! Freshness of the live Flight SQL endpoint (docs/SQL.md), through the real servers over mutual TLS:
//!
//!     cargo bench --bench flight_sql
//!
//! A county aggregator forwarding to the province, both with the shipped `flush_interval_ms`
//! (1000), the province serving `[sql]`. One report at a time is submitted to the county as its
//! office; from its acknowledgement the benchmark polls the province's endpoint (a `SELECT` as the
//! province's analyst, `sifa query --connect`'s client) until the report is a row, and, in the same
//! probe, the province's Parquet store until it is a row there (the path `sifa query --data` sees).
//! Reported: median, p90 and worst of `PROBES` for both.
//!
//! Results are written by hand to docs/PERFORMANCE.md ("Flight SQL").

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sifa_aggregator::auth::Role;
use sifa_proto::tls::TlsFiles;
use sifa_proto::v1::{SubmitRequest, ack};
use sifa_sql::client::Connection;
use support::{TestAggregator, TierSpec, pki, report};

const PROBES: usize = 30;
const OFFICE: &str = "620982101";

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "{what}: median {} ms, p90 {} ms, worst {} ms ({} probes)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

fn freshness(rt: &tokio::runtime::Runtime) {
    let province = TestAggregator::spawn(TierSpec { sql: true, flush_interval_ms: 1000, ..TierSpec::top("62") });
    let county =
        TestAggregator::spawn(TierSpec { flush_interval_ms: 1000, ..TierSpec::below("620982", &province.url()) });
    let (cert, key) = pki().files(Role::Analyst, "62");
    let files = TlsFiles { ca: pki().ca_cert(), cert, key };
    let sql = rt.block_on(Connection::open(&format!("https://{}", province.sql_addr()), files)).expect("connect");
    let mut client = rt.block_on(county.client_as(Role::Office, OFFICE));
    let (mut via_sql, mut via_parquet, mut round_trips) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..PROBES {
        let period = format!("20{:02}-{:02}", 10 + i / 12, 1 + i % 12);
        let r = report(OFFICE, &period, 1, &[("lectures", 1.0)]);
        let probe =
            format!("SELECT count(*) AS n FROM report_files WHERE unit_code = '{OFFICE}' AND period = '{period}'");
        let a = rt.block_on(client.submit(SubmitRequest { report: Some(r), provenance: None })).unwrap().into_inner();
        assert_eq!(a.outcome, ack::Outcome::Accepted as i32);
        let t0 = Instant::now();
        // The endpoint and the Parquet store are polled side by side, each timed from the acknowledgement.
        std::thread::scope(|s| {
            s.spawn(|| {
                while province.rows().len() <= i {
                    std::thread::sleep(Duration::from_millis(5));
                }
                via_parquet.push(t0.elapsed());
            });
            loop {
                let asked = Instant::now();
                let answer = rt.block_on(sql.run(&probe)).expect("query");
                round_trips.push(asked.elapsed());
                let rows = sifa_queries::format::json_rows(&answer[0]).expect("rows");
                if rows[0]["n"].as_i64() == Some(1) {
                    break;
                }
            }
            via_sql.push(t0.elapsed());
        });
        // Probes at staggered points of the flush cycle.
        std::thread::sleep(Duration::from_millis(37 * (i as u64 % 7)));
    }
    summary("acknowledged at a county → a row of a province Flight SQL query", via_sql);
    summary("the same report → a row of the province's Parquet (the peer: sifa query --data)", via_parquet);
    summary("one Flight SQL query's round trip (session, plan, run, fetch)", round_trips);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: only run when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    freshness(&rt);
}
