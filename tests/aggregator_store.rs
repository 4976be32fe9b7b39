//! The Parquet store of a running aggregator, with the real binary: each flush
//! writes new files, small files are compacted into one without losing or
//! doubling a row, and a restart rebuilds from the compacted store.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sifa_proto::v1::{SubmitRequest, ack};
use support::{TestAggregator, TierSpec, from_sender, report};

const WAIT: Duration = Duration::from_secs(50);
const ROUNDS: usize = 12;
const PER_ROUND: usize = 5;

fn parquet_files(agg: &TestAggregator) -> usize {
    sifa_store::list_files(&agg.data_dir()).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_compacted_and_every_row_kept_once() {
    // Flushes every 100 ms; compaction looks every tenth flush.
    let mut agg = TestAggregator::spawn(TierSpec { flush_interval_ms: 100, ..TierSpec::top("620982") });
    let mut c = agg.client().await;
    let mut sent = BTreeMap::new();
    let mut most_files = 0;
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            let unit = format!("620982{}", 100 + i);
            let r = report(&unit, &format!("2024-{:02}", round + 1), 1, &[("lectures", (round * 10 + i) as f64)]);
            let req = from_sender("620982", SubmitRequest { report: Some(r.clone()), provenance: None });
            let a = c.submit(req).await.unwrap().into_inner();
            assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
            sent.insert((r.unit_code.clone(), r.period.clone()), r);
        }
        // Each round is flushed on its own, so it becomes a file of its own.
        let want = (round + 1) * PER_ROUND;
        agg.wait_for_rows(WAIT, |rows| rows.len() >= want);
        most_files = most_files.max(parquet_files(&agg));
    }
    assert!(most_files >= 2, "the rounds were flushed separately ({most_files} files at most)");

    // Twelve flushes made twelve small files; compaction leaves fewer than its threshold (8).
    let t0 = Instant::now();
    while parquet_files(&agg) >= 8 {
        assert!(t0.elapsed() < WAIT, "never compacted: {} files\n{}", parquet_files(&agg), agg.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agg.log().contains("compacted small Parquet files"), "{}", agg.log());
    let check = |agg: &TestAggregator, what: &str| {
        let rows = agg.rows();
        assert_eq!(rows.len(), ROUNDS * PER_ROUND, "{what}: every row once");
        let got: BTreeMap<_, _> =
            rows.into_iter().map(|r| ((r.report.unit_code.clone(), r.report.period.clone()), r.report)).collect();
        assert_eq!(got, sent, "{what}: the rows are unchanged");
    };
    check(&agg, "after compaction");
    // No temporary or orphaned file is left beside the store's files.
    let year = agg.data_dir().join("reports/year=2024");
    let names: Vec<String> =
        std::fs::read_dir(&year).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("part-") && n.ends_with(".parquet")), "{names:?}");
    assert!(!sifa_store::layout::state_dir(&agg.data_dir()).join(sifa_store::layout::COMPACTION_FILE).exists());

    // A restart rebuilds its index from the compacted files: a resent report is a duplicate.
    agg.kill9();
    agg.restart();
    check(&agg, "after a restart");
    let mut c = agg.client().await;
    let (_, again) = sent.iter().next().unwrap();
    let req = from_sender("620982", SubmitRequest { report: Some(again.clone()), provenance: None });
    assert_eq!(c.submit(req).await.unwrap().into_inner().outcome, ack::Outcome::Duplicate as i32);
}
