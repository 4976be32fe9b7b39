//! `current/`, the figures in force the aggregator derives from `reports/` (docs/STORAGE.md), with
//! the real binaries: after corrections, a stop and a restart it holds exactly the latest revision
//! of every unit and month of all the revisions stored, `sifa query`'s `reports` serves the same,
//! and a report file the current figures do not cover yet is never hidden behind them.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sifa_proto::Catalog;
use sifa_proto::v1::{SubmitRequest, ack};
use sifa_store::StoredReport;
use support::{TestAggregator, TierSpec, from_sender, report, sifa_bin};

const WAIT: Duration = Duration::from_secs(60);
const COUNTY: &str = "620982";

/// (unit, period) -> (revision, lectures) of the latest revision among `rows`.
fn latest(rows: &[StoredReport]) -> BTreeMap<(String, String), (u64, f64)> {
    let mut out: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for r in rows {
        let key = (r.report.unit_code.clone(), r.report.period.clone());
        let value = (r.report.revision, r.report.values["lectures"]);
        if out.get(&key).is_none_or(|(rev, _)| value.0 > *rev) {
            out.insert(key, value);
        }
    }
    out
}

/// Waits until every year's current file covers its report files; returns their rows.
fn current_rows(agg: &TestAggregator) -> Vec<StoredReport> {
    let data = agg.data_dir();
    let t0 = Instant::now();
    loop {
        let stale = sifa_store::current::stale_years(&data).unwrap();
        if stale.is_empty() && !sifa_store::current::covered_years(&data).unwrap().is_empty() {
            break;
        }
        assert!(t0.elapsed() < WAIT, "years {stale:?} never derived\n{}", agg.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rows = Vec::new();
    for year in sifa_store::current::covered_years(&data).unwrap() {
        let c = sifa_store::current::read_current(&data, year).unwrap().unwrap();
        rows.extend(sifa_store::read_file(&c.path, &Catalog::builtin()).unwrap());
    }
    rows
}

/// What `sifa query` says the figures in force are: (unit, period) -> (revision, lectures).
fn queried(data: &Path) -> BTreeMap<(String, String), (u64, f64)> {
    let out = Command::new(sifa_bin())
        .args(["query", "--data"])
        .arg(data)
        .args(["--format", "csv", "SELECT unit_code, period, revision, lectures FROM reports"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[0].to_string(), f[1].to_string()), (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_figures_are_the_latest_revisions_after_corrections_and_a_restart() {
    let mut agg = TestAggregator::spawn(TierSpec::top(COUNTY));
    let mut c = agg.client().await;
    let mut sent = 0;
    // Two years of three offices; some months corrected once, some twice (revisions 2 and 3).
    for (period, revisions) in [("2023-12", 1), ("2024-01", 2), ("2024-02", 3), ("2024-03", 1)] {
        for office in ["620982100", "620982101", "620982102"] {
            for revision in 1..=revisions {
                let value = (revision * 10) as f64 + office[7..].parse::<f64>().unwrap();
                let r = report(office, period, revision, &[("lectures", value)]);
                let req = from_sender(COUNTY, SubmitRequest { report: Some(r), provenance: None });
                let a = c.submit(req).await.unwrap().into_inner();
                assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
                sent += 1;
            }
        }
    }
    let rows = agg.wait_for_rows(WAIT, |rows| rows.len() >= sent);
    let want = latest(&rows);
    assert_eq!(want.len(), 12);
    assert_eq!(want[&("620982101".to_string(), "2024-02".to_string())], (3, 31.0));

    // Stopped, the tier derives what changed since its last derivation.
    agg.stop();
    let current = current_rows(&agg);
    assert_eq!(current.len(), 12, "one row per unit and month");
    assert_eq!(latest(&current), want);
    let keys: Vec<_> = current.iter().map(|r| (r.report.unit_code.clone(), r.report.period.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| (&a.1[..4], &a.0, &a.1).cmp(&(&b.1[..4], &b.0, &b.1)));
    assert_eq!(keys, sorted, "sorted by unit and month within each year");
    assert_eq!(queried(&agg.data_dir()), want);

    // A correction after the restart: derived again, from every revision stored.
    agg.restart();
    let mut c = agg.client().await;
    let r = report("620982100", "2024-03", 2, &[("lectures", 99.0)]);
    let a = c.submit(from_sender(COUNTY, SubmitRequest { report: Some(r), provenance: None })).await.unwrap();
    assert_eq!(a.into_inner().outcome, ack::Outcome::Accepted as i32);
    let rows = agg.wait_for_rows(WAIT, |rows| rows.len() > sent);
    let want = latest(&rows);
    assert_eq!(want[&("620982100".to_string(), "2024-03".to_string())], (2, 99.0));
    let t0 = Instant::now();
    while latest(&current_rows(&agg)) != want {
        assert!(t0.elapsed() < WAIT, "the correction never reached current/\n{}", agg.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    agg.stop();
    assert_eq!(queried(&agg.data_dir()), want);

    // A report file written after the derivation (as a flush does) is not hidden: `sifa query`
    // deduplicates that year's report files until the current figures cover it.
    let data = agg.data_dir();
    let extra = StoredReport::new(
        report("620982102", "2024-03", 2, &[("lectures", 77.0)]),
        "2024-03".parse().unwrap(),
        &sifa_proto::Registry::demo(),
        1_712_000_000_000,
        COUNTY,
    );
    let seq = sifa_store::list_files(&data).unwrap().iter().map(|(_, s, _)| *s).max().unwrap() + 1000;
    sifa_store::write_file(&data, &Catalog::builtin(), 2024, seq, &[extra]).unwrap();
    assert_eq!(sifa_store::current::stale_years(&data).unwrap(), vec![2024]);
    let mut want = want;
    want.insert(("620982102".to_string(), "2024-03".to_string()), (2, 77.0));
    assert_eq!(queried(&data), want, "the year not covered is deduplicated from reports/");
}
