//! Completeness has one definition (docs/STORAGE.md, "Completeness and
//! lateness"), computed twice: by the aggregator from its index (gRPC
//! `GetCompleteness`, `sifa aggregator status`) and by `sifa query`'s
//! `completeness` rollup in SQL over the Parquet store. Both real binaries,
//! the same data directory, the same numbers: on-time, late and missing
//! units, a correction that must not count twice, and revisions that arrived
//! out of order (a later revision received before an earlier one).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sifa_aggregator::auth::Role;
use sifa_proto::Period;
use sifa_proto::v1::{CompletenessRequest, Provenance, SubmitRequest, ack};
use support::{TestAggregator, TierSpec, as_agent, report};

const WAIT: Duration = Duration::from_secs(45);
const HOUR: i64 = 3_600_000;

/// (expected, received, late) of one level's row.
type Counts = (u64, u64, u64);
/// (unit, revision, received_at in Unix ms) of a forwarded report.
type Arrival = (&'static str, u64, i64);

/// `sifa query --rollup completeness` for the month, as level/code → counts.
fn rollup(data_dir: &std::path::Path, period: &str) -> BTreeMap<(String, String), Counts> {
    let out = std::process::Command::new(support::sifa_bin())
        .args(["query", "--data"])
        .arg(data_dir)
        .args(["--rollup", "completeness", "--year", &period[..4], "--format", "json"])
        .output()
        .expect("run sifa query");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON rows");
    let n = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    rows.iter()
        .filter(|r| r["period"] == period)
        .map(|r| {
            assert_eq!(n(r, "missing"), n(r, "expected") - n(r, "received"), "{r}");
            let key = (r["level"].as_str().unwrap().to_string(), r["code"].as_str().unwrap().to_string());
            (key, (n(r, "expected"), n(r, "received"), n(r, "late")))
        })
        .collect()
}

/// `sifa aggregator status` for the month: the totals line and the per-county/city table.
fn status(agg: &TestAggregator, period: &str) -> (Counts, BTreeMap<(String, String), Counts>) {
    let out = agg.cli(&["status", "--period", period]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let totals = text.lines().find(|l| l.starts_with("expected ")).expect(&text);
    let words: Vec<&str> = totals.split_whitespace().collect();
    let num = |label: &str| -> u64 {
        let i = words.iter().position(|w| *w == label).unwrap_or_else(|| panic!("{label} in {totals}"));
        words[i + 1].parse().unwrap()
    };
    let total = (num("expected"), num("received"), num("late"));
    assert_eq!(num("missing"), total.0 - total.1, "{text}");
    let table = text
        .lines()
        .skip_while(|l| !l.starts_with("level"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            // level, code, name, expected, received, missing, late, complete, on time
            let c: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| c[i].parse::<u64>().unwrap_or_else(|_| panic!("column {i} of {l:?}"));
            ((c[0].to_string(), c[1].to_string()), (n(3), n(4), n(6)))
        })
        .collect();
    (total, table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_grpc_and_the_sql_rollup_agree() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let month = "2024-03";
    let deadline = sifa_store::deadline_ms(month.parse::<Period>().unwrap(), province.spec.deadline_day);

    // Reports forwarded by two counties, each with the time its county first made it durable.
    let mut stored = 0;
    let forwarded: [(&str, &[Arrival]); 2] = [
        (
            "620982",
            &[
                ("620982100", 1, deadline - HOUR),      // on time
                ("620982101", 1, deadline + 24 * HOUR), // late
                ("620982102", 1, deadline - 1),         // on time, corrected after the deadline:
                ("620982102", 2, deadline + HOUR),      //   still on time, received once
                ("620982103", 2, deadline - HOUR),      // revision 2 arrived first, on time;
                ("620982103", 1, deadline + HOUR),      //   the late revision 1 does not make it late
                ("620982104", 1, deadline),             // exactly at the deadline: on time
            ],
        ),
        ("620981", &[("620981100", 1, deadline + 1), ("620981101", 1, deadline - 24 * HOUR)]),
    ];
    for (county, reports) in forwarded {
        let mut c = province.client_as(Role::Aggregator, county).await;
        for &(unit, revision, received_at_ms) in reports {
            let request = SubmitRequest {
                report: Some(report(unit, month, revision, &[("lectures", revision as f64)])),
                provenance: Some(Provenance { first_accepted_by: county.into(), received_at_ms }),
            };
            let a = c.submit(request).await.unwrap().into_inner();
            assert_eq!(ack::Outcome::try_from(a.outcome), Ok(ack::Outcome::Accepted), "{unit} r{revision}: {a:?}");
            stored += 1;
        }
    }
    // An office of another city delivering straight to the province today: long after the deadline.
    let mut c = province.client().await;
    let a = c.submit(as_agent(report("620702001", month, 1, &[("lectures", 1.0)]))).await.unwrap().into_inner();
    assert_eq!(ack::Outcome::try_from(a.outcome), Ok(ack::Outcome::Accepted), "{a:?}");
    stored += 1;
    province.wait_for_rows(WAIT, |rows| rows.len() == stored);

    // The aggregator over gRPC.
    let r = province
        .directory()
        .await
        .get_completeness(CompletenessRequest { period: month.into(), root: String::new() })
        .await
        .unwrap()
        .into_inner();
    let mut late: Vec<&str> = r.late.iter().map(|u| u.code.as_str()).collect();
    late.sort_unstable();
    assert_eq!(late, ["620702001", "620981100", "620982101"], "the late units, by the one definition");
    assert_eq!(r.received, 8);
    let grpc_total: Counts = (r.expected.into(), r.received.into(), r.late.len() as u64);
    let grpc_groups: BTreeMap<(String, String), Counts> = r
        .groups
        .iter()
        .filter(|g| g.expected > 0)
        .map(|g| ((g.level.clone(), g.code.clone()), (g.expected.into(), g.received.into(), g.late.into())))
        .collect();

    // The same through `sifa aggregator status`.
    let (status_total, status_groups) = status(&province, month);
    assert_eq!(status_total, grpc_total);
    assert_eq!(status_groups.into_iter().filter(|(_, c)| c.0 > 0).collect::<BTreeMap<_, _>>(), grpc_groups);

    // The SQL rollup over the Parquet files of the same data directory.
    let mut sql = rollup(&province.data_dir(), month);
    assert_eq!(sql.remove(&("province".to_string(), "62".to_string())), Some(grpc_total), "province totals");
    assert_eq!(sql, grpc_groups, "per city and county: SQL left, gRPC right");
    assert_eq!(grpc_groups[&("county".to_string(), "620982".to_string())].1, 5, "{grpc_groups:?}");
}
