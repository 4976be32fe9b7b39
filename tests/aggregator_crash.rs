//! Durability end to end with the real binary: kill -9 of a county and of the
//! province during a stream of thousands of reports, the upstream down for a
//! while, a torn write-ahead log tail. Every acknowledged report ends up in each
//! store exactly once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sifa_aggregator::auth::Role;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{Report, SubmitRequest, ack};
use sifa_store::StoredReport;
use support::{TestAggregator, TierSpec, report};

const WAIT: Duration = Duration::from_secs(50);

type Key = (String, String, u64);

fn key(r: &Report) -> Key {
    (r.unit_code.clone(), r.period.clone(), r.revision)
}

/// `n` distinct reports of the offices of 敦煌市 (620982): units × months × revisions.
fn reports(n: usize) -> Vec<Report> {
    let units: Vec<String> = (100..=108).map(|i| format!("620982{i}")).collect();
    let periods: Vec<String> = (1..=12).map(|m| format!("2023-{m:02}")).collect();
    (0..n)
        .map(|i| {
            let unit = &units[i % units.len()];
            let period = &periods[(i / units.len()) % periods.len()];
            let revision = 1 + (i / (units.len() * periods.len())) as u64;
            report(unit, period, revision, &[("lectures", (i % 50) as f64), ("consultations", i as f64)])
        })
        .collect()
}

/// Rows by key; panics if a key is stored twice.
fn exactly_once(rows: &[StoredReport], what: &str) -> BTreeMap<Key, Report> {
    let mut out = BTreeMap::new();
    for r in rows {
        assert!(out.insert(key(&r.report), r.report.clone()).is_none(), "{what}: {:?} stored twice", key(&r.report));
    }
    out
}

/// Streams `batch` to the aggregator at `url` as the county's agents would: one stream per office,
/// with its own certificate, all at once; records every acknowledged key into `acked`. Returns when
/// every stream has ended, or the first error of one that broke.
async fn stream(url: String, batch: Vec<Report>, acked: Arc<Mutex<Vec<Key>>>) -> Result<(), tonic::Status> {
    let mut by_office: BTreeMap<String, Vec<Report>> = BTreeMap::new();
    for r in batch {
        by_office.entry(r.unit_code.clone()).or_default().push(r);
    }
    let streams: Vec<_> = by_office
        .into_iter()
        .map(|(office, reports)| tokio::spawn(office_stream(url.clone(), office, reports, acked.clone())))
        .collect();
    let mut result = Ok(());
    for s in streams {
        let r = s.await.expect("stream task");
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// One office's reports on one stream; acks come in request order.
async fn office_stream(
    url: String,
    office: String,
    batch: Vec<Report>,
    acked: Arc<Mutex<Vec<Key>>>,
) -> Result<(), tonic::Status> {
    let channel = support::try_connect(&url, Role::Office, &office)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = ReportServiceClient::new(channel);
    let keys: Vec<Key> = batch.iter().map(key).collect();
    let reqs = batch.into_iter().map(|r| SubmitRequest { report: Some(r), provenance: None });
    let mut acks = client.submit_stream(tokio_stream::iter(reqs)).await?.into_inner();
    let mut i = 0;
    while let Some(a) = acks.message().await? {
        let o = ack::Outcome::try_from(a.outcome).unwrap();
        assert!(matches!(o, ack::Outcome::Accepted | ack::Outcome::Duplicate), "{a:?}");
        assert_eq!((a.unit_code.clone(), a.period.clone(), a.revision), keys[i], "acks come in request order");
        acked.lock().unwrap().push(keys[i].clone());
        i += 1;
    }
    Ok(())
}

/// The last log record the county's upstream acknowledged (0 before the first).
fn forward_cursor(county: &TestAggregator) -> u64 {
    let text = std::fs::read_to_string(
        sifa_store::layout::state_dir(&county.data_dir()).join(sifa_store::layout::FORWARD_CURSOR_FILE),
    )
    .unwrap_or_default();
    text.trim().parse().unwrap_or(0)
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_county_and_province_during_a_stream_loses_and_doubles_nothing() {
    let mut province = TestAggregator::spawn(TierSpec::top("62"));
    let mut county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    let all = reports(6000);
    let acked = Arc::new(Mutex::new(Vec::new()));

    // Kill the county while a stream of all 6000 is in flight.
    let task = tokio::spawn(stream(county.url(), all.clone(), acked.clone()));
    wait_until("the first acknowledgements", WAIT, || acked.lock().unwrap().len() >= 500 || task.is_finished());
    county.kill9();
    let _ = task.await.unwrap();
    let acked_before_kill: BTreeSet<Key> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked_before_kill.len() < all.len(), "the kill came after the stream ended; nothing was tested");

    // Every acknowledged report survived the kill (it was in the fsynced log).
    county.restart();
    // (The offices' streams run side by side, so what was acknowledged is not a prefix of the log:
    // wait for the acknowledged reports themselves, not for as many rows.)
    let after = county.wait_for_rows(WAIT, |rows| {
        acked_before_kill.is_subset(&rows.iter().map(|r| key(&r.report)).collect::<BTreeSet<Key>>())
    });
    let stored: BTreeSet<Key> = exactly_once(&after, "county after kill -9").into_keys().collect();
    assert!(acked_before_kill.is_subset(&stored), "an acknowledged report was lost by kill -9 of the county");

    // The sender resends everything not acknowledged (some were stored but not acked: DUPLICATE).
    let rest: Vec<Report> = all.iter().filter(|r| !acked_before_kill.contains(&key(r))).cloned().collect();
    let task = tokio::spawn(stream(county.url(), rest, acked.clone()));
    // Meanwhile kill the province while the county forwards to it: as soon as the county's
    // forward cursor (state/forward.cursor, moved after each acknowledged batch) moves on.
    let start = forward_cursor(&county);
    wait_until("the county forwarding to the province", WAIT, || forward_cursor(&county) > start);
    province.kill9();
    let at_kill = forward_cursor(&county);
    assert!(at_kill < all.len() as u64, "the province was killed after forwarding ended; nothing was tested");
    std::thread::sleep(Duration::from_millis(300));
    province.restart();
    task.await.unwrap().expect("the resent reports are acknowledged");
    assert_eq!(acked.lock().unwrap().iter().collect::<BTreeSet<_>>().len(), all.len());

    let want: BTreeMap<Key, Report> = all.iter().map(|r| (key(r), r.clone())).collect();
    let county_rows = county.wait_for_rows(WAIT, |rows| rows.len() >= all.len());
    assert_eq!(exactly_once(&county_rows, "county"), want);
    let province_rows = province.wait_for_rows(WAIT, |rows| rows.len() >= all.len());
    assert_eq!(exactly_once(&province_rows, "province"), want, "the province holds exactly the county's reports");
    // Nothing more arrives later (no late doubles).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(province.rows().len(), all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_for_a_while_is_caught_up_exactly() {
    let mut province = TestAggregator::spawn(TierSpec::top("62"));
    let mut county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    province.kill9();
    // A county restarting while the province is down works from its cached catalog and registry.
    county.restart();
    assert!(county.log().contains("using the cache"), "{}", county.log());
    // The county acknowledges on its own disk while the province is down.
    let all = reports(1500);
    let acked = Arc::new(Mutex::new(Vec::new()));
    stream(county.url(), all.clone(), acked.clone()).await.unwrap();
    assert_eq!(acked.lock().unwrap().len(), all.len());
    std::thread::sleep(Duration::from_secs(3));
    // It tries again at least every second (sifa_aggregator::forward::BACKOFF_MAX), so forwarding
    // resumes within about a second of the province's return.
    let log = county.log();
    let waits: Vec<u64> = log
        .split("retry_in_ms=")
        .skip(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap())
        .collect();
    assert!(waits.len() >= 3 && log.contains("not reachable"), "the county retries: {log}");
    assert!(waits.iter().all(|ms| *ms <= 1000), "{waits:?}");
    province.restart();
    let want: BTreeMap<Key, Report> = all.iter().map(|r| (key(r), r.clone())).collect();
    let rows = province.wait_for_rows(WAIT, |rows| rows.len() >= all.len());
    assert_eq!(exactly_once(&rows, "province"), want);
    // Every forwarded row keeps the county's provenance.
    assert!(rows.iter().all(|r| r.first_accepted_by == "620982"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_log_tail_is_dropped_and_earlier_records_are_intact() {
    // A long flush interval: the reports are only in the log when the process dies.
    let spec = TierSpec { flush_interval_ms: 3_600_000, ..TierSpec::top("620982") };
    let mut agg = TestAggregator::spawn(spec);
    let all = reports(300);
    let acked = Arc::new(Mutex::new(Vec::new()));
    stream(agg.url(), all.clone(), acked.clone()).await.unwrap();
    agg.kill9();
    assert!(agg.rows().is_empty(), "nothing was flushed to Parquet before the kill");

    // The tail of an interrupted write (aggregator/src/wal.md): a whole frame carrying a
    // well-formed report whose checksum does not match (the write reached the disk only in
    // part), then a frame header promising 500 bytes and 14 bytes of garbage.
    let wal = sifa_store::layout::wal_dir(&agg.data_dir());
    let mut segs: Vec<_> = std::fs::read_dir(&wal).unwrap().map(|e| e.unwrap().path()).collect();
    segs.sort();
    let last = segs.last().unwrap().clone();
    let len_before = std::fs::metadata(&last).unwrap().len();
    let mut bytes = std::fs::read(&last).unwrap();
    let smuggled = report("620982108", "2022-06", 1, &[("lectures", 77.0)]);
    let mut frame = Vec::new();
    let record = SubmitRequest { report: Some(smuggled.clone()), provenance: None };
    sifa_aggregator::wal::encode_frame(&record, &mut frame);
    frame[4] ^= 0xFF; // the CRC32 of the payload, bytes 4..8 of the frame
    bytes.extend_from_slice(&frame);
    bytes.extend_from_slice(&500u32.to_le_bytes());
    bytes.extend_from_slice(&[0x5A; 14]);
    std::fs::write(&last, bytes).unwrap();

    agg.restart();
    let want: BTreeMap<Key, Report> = all.iter().map(|r| (key(r), r.clone())).collect();
    let rows = agg.wait_for_rows(WAIT, |rows| rows.len() >= all.len());
    assert_eq!(exactly_once(&rows, "after a torn tail"), want, "the torn frame is never read as a report");
    assert!(agg.log().contains("dropping the torn tail"), "{}", agg.log());
    assert!(agg.log().contains("checksum mismatch"), "{}", agg.log());
    assert_eq!(std::fs::metadata(&last).unwrap().len(), len_before, "the torn bytes are cut off");

    // The log goes on after the cut: a new report is stored and survives another kill -9.
    let mut c = agg.client().await;
    let more = report("620982100", "2024-01", 1, &[("lectures", 9.0)]);
    let a = c.submit(support::as_agent(more.clone())).await.unwrap().into_inner();
    assert_eq!(ack::Outcome::try_from(a.outcome).unwrap(), ack::Outcome::Accepted);
    agg.kill9();
    agg.restart();
    let rows = agg.wait_for_rows(WAIT, |rows| rows.len() > all.len());
    let got = exactly_once(&rows, "after another restart");
    assert_eq!(got.len(), all.len() + 1);
    assert_eq!(got[&key(&more)], more);
    assert!(!got.contains_key(&key(&smuggled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_neither_keeps_a_tier_from_starting_nor_stops_forwarding_for_good() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let link = support::link::Link::to(province.addr().to_string()).await;
    // The county caches the catalog and registry through the link, then the line goes silent:
    // connections are accepted and never answered, as a dead route does.
    let mut county = TestAggregator::spawn(TierSpec::below("620982", &link.url()));
    link.set_cut(true);
    county.restart(); // fails the test if start-up waits on the silent upstream for good
    assert!(county.log().contains("using the cache"), "{}", county.log());
    let all = reports(50);
    let acked = Arc::new(Mutex::new(Vec::new()));
    stream(county.url(), all.clone(), acked.clone()).await.unwrap();
    assert_eq!(acked.lock().unwrap().len(), all.len(), "the county acknowledges on its own disk");

    link.set_cut(false);
    let want: BTreeMap<Key, Report> = all.iter().map(|r| (key(r), r.clone())).collect();
    let rows = province.wait_for_rows(Duration::from_secs(90), |rows| rows.len() >= all.len());
    assert_eq!(exactly_once(&rows, "province"), want);
}
