//! A national tier (100000, 中华人民共和国司法部) above two provinces, through the real binaries with
//! mutual TLS: each province forwards to the nation exactly as a county forwards to its province;
//! the nation's store holds exactly the rows of the provinces' stores; its rollups and `status`
//! cover the provinces; a province's approval travels up and the nation accepts it; and the one-path
//! rules hold at the nation (only its provinces forward to it, each only its own subtree); its
//! Flight SQL endpoint and status page show the provinces.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use sifa_aggregator::auth::Role;
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::{Ack, Provenance, SubmitRequest, ack};
use sifa_store::StoredReport;
use support::{TestAggregator, TierSpec, http_get, http_on_loopback, pki, report, sifa_bin};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

fn outcome(a: &Ack) -> ack::Outcome {
    ack::Outcome::try_from(a.outcome).unwrap()
}

/// A unit's own report of `resolved` disputes resolved (of `resolved + 2` mediated).
fn own(unit: &str, period: &str, resolved: f64) -> SubmitRequest {
    let values = [("disputes_mediated", resolved + 2.0), ("disputes_resolved", resolved)];
    SubmitRequest { report: Some(report(unit, period, 1, &values)), provenance: None }
}

/// The rows of a store sorted by unit, period and revision.
fn sorted(mut rows: Vec<StoredReport>) -> Vec<StoredReport> {
    rows.sort_by(|a, b| {
        (&a.report.unit_code, &a.report.period, a.report.revision).cmp(&(
            &b.report.unit_code,
            &b.report.period,
            b.report.revision,
        ))
    });
    rows
}

/// `sifa query --rollup share_of_mediations --year 2024 --format csv` on a tier's store.
fn share_of_mediations(tier: &TestAggregator) -> String {
    let out = Command::new(sifa_bin())
        .args(["query", "--data"])
        .arg(tier.data_dir())
        .args(["--rollup", "share_of_mediations", "--year", "2024", "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_provinces_forward_into_the_nation_which_holds_exactly_their_rows() {
    let mut nation = TestAggregator::spawn(TierSpec { sql: true, http: http_on_loopback(false), ..TierSpec::nation() });
    let mut gansu = TestAggregator::spawn(TierSpec::below("62", &nation.url()));
    let mut liaoning = TestAggregator::spawn(TierSpec::below("21", &nation.url()));
    let mut dunhuang = TestAggregator::spawn(TierSpec::below("620982", &gansu.url()));
    let mut dawa = TestAggregator::spawn(TierSpec::below("211104", &liaoning.url()));

    // Each unit reports to the tier directly above it: offices to their counties, a province-wide
    // committee to its province. Three months each.
    let units: [(&TestAggregator, &str, f64); 4] = [
        (&dunhuang, "620982101", 7.0),
        (&dunhuang, "620982102", 5.0),
        (&dawa, "211104100", 3.0),
        (&liaoning, "210000910", 11.0),
    ];
    for (tier, unit, resolved) in units {
        let mut client = tier.client_as(Role::Office, unit).await;
        for m in 1..=3 {
            let a = client.submit(own(unit, &format!("2024-{m:02}"), resolved)).await.unwrap().into_inner();
            assert_eq!(outcome(&a), ack::Outcome::Accepted, "{unit}: {a:?}");
        }
    }
    nation.wait_for_rows(WAIT, |r| r.len() == 12);

    // The nation's Flight SQL endpoint, through `sifa query --connect`: its analysts get the
    // national rollup; a province's analyst sees only that province's rows there.
    let live = |unit: &str, args: &[&str]| {
        let (cert, key) = pki().files(Role::Analyst, unit);
        let out = Command::new(sifa_bin())
            .args(["query", "--connect", &format!("https://{}", nation.sql_addr()), "--ca"])
            .arg(pki().ca_cert())
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--format", "csv"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let csv = live("100000", &["--rollup", "share_of_mediations", "--year", "2024"]);
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').take(3).collect();
    assert_eq!(first, ["nation", "100000", "中华人民共和国司法部"], "{csv}");
    let csv = live("62", &["SELECT DISTINCT province_code FROM reports"]);
    assert_eq!(csv.lines().collect::<Vec<_>>(), ["province_code", "62"], "甘肃省's analyst at the nation");

    // The nation's status page names both provinces.
    let (code, _, page) = http_get(&nation.http_addr(), "/?lang=zh");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("甘肃省") && page.contains("辽宁省"), "{page}");

    // A province approves its own month after the county's approval reached it; the approval
    // travels up to the nation, which accepts it.
    dunhuang.cli_ok(&["approve", "--period", "2024-01"]);
    gansu.status_when("2024-01", |t| t.contains("620982 approved (已审核)"));
    gansu.cli_ok(&["approve", "--period", "2024-01", "--unit", "620982"]);
    let text = gansu.cli_ok(&["approve", "--period", "2024-01"]);
    assert!(text.starts_with("2024-01 62 approved (已审核): approved by admin 62 at "), "{text}");
    let text = nation.status_when("2024-01", |t| t.contains("2024-01 62 approved (已审核)"));
    assert!(text.contains("reported by tier 62"), "{text}");
    let text = nation.cli_ok(&["approve", "--period", "2024-01", "--unit", "62"]);
    assert!(text.contains("2024-01 62 accepted (已审核)") && text.contains("accepted by admin 100000"), "{text}");
    // A county's approval is the province's to accept, never reported to the nation directly.
    let e = nation.cli(&["approve", "--period", "2024-01", "--unit", "620982"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("620982 has reported no approval of 2024-01"), "{e:?}");

    // Completeness at the nation: a group per province, city and county below it.
    let text = nation.cli_ok(&["status", "--period", "2024-02"]);
    let groups: Vec<&str> = text.lines().filter(|l| l.starts_with("province ")).collect();
    assert_eq!(groups.len(), 2, "{text}");
    assert!(groups[0].contains("62") && groups[0].contains("甘肃省"), "{text}");
    assert!(groups[1].contains("21") && groups[1].contains("辽宁省"), "{text}");

    // Stopped cleanly, each tier flushes: the nation holds exactly the two provinces' rows, each
    // with the provenance its county (or province) gave it.
    for t in [&mut dunhuang, &mut dawa, &mut gansu, &mut liaoning, &mut nation] {
        t.stop();
    }
    let held = sorted(nation.rows());
    let union = sorted(gansu.rows().into_iter().chain(liaoning.rows()).collect());
    assert_eq!(held.len(), 12);
    assert_eq!(held, union, "the nation's rows are the provinces' rows");
    let first: BTreeMap<&str, &str> =
        held.iter().map(|r| (r.report.unit_code.as_str(), r.first_accepted_by.as_str())).collect();
    assert_eq!(
        first,
        BTreeMap::from([
            ("210000910", "21"),
            ("211104100", "211104"),
            ("620982101", "620982"),
            ("620982102", "620982")
        ])
    );
    assert!(held.iter().all(|r| r.province_code.as_deref() == Some(&r.report.unit_code[..2])));

    // The national rollup: the nation, then each province.
    let csv = share_of_mediations(&nation);
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').take(7).collect()).collect();
    // 3 months: 620982 (7 + 5) × 3 = 36; 21: 211104100 3 × 3 = 9 and the committee 11 × 3 = 33.
    assert_eq!(rows[0], ["nation", "100000", "中华人民共和国司法部", "3", "4", "45", "78"], "{csv}");
    assert_eq!(rows[1], ["province", "21", "辽宁省", "1", "2", "9", "42"], "{csv}");
    assert_eq!(rows[2], ["province", "62", "甘肃省", "2", "2", "36", "36"], "{csv}");
    // A province's own store has no nation row: its root is the province.
    let csv = share_of_mediations(&gansu);
    assert!(csv.lines().nth(1).unwrap().starts_with("province,62,甘肃省,"), "{csv}");
    assert!(!csv.contains("nation"), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_provinces_forward_to_the_nation_and_only_their_own_subtrees() {
    let nation = TestAggregator::spawn(TierSpec::nation());
    let now = now_unix_ms();
    let forwarded = |unit: &str, first: &str| SubmitRequest {
        report: Some(report(unit, "2024-03", 1, &[("lectures", 2.0)])),
        provenance: Some(Provenance { first_accepted_by: first.into(), received_at_ms: now }),
    };
    let refused = |r: Result<tonic::Response<Ack>, tonic::Status>, words: &[&str]| {
        let e = r.expect_err("refused");
        assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
        for w in words {
            assert!(e.message().contains(w), "{w:?} not in: {}", e.message());
        }
    };

    // An office straight to the nation.
    let mut office = nation.client_as(Role::Office, "620982101").await;
    refused(
        office.submit(own("620982101", "2024-03", 1.0)).await,
        &["office 620982101 reports only to the tier directly above it, 620982 (敦煌市)", "this tier is 100000"],
    );
    // A county, or a city, straight to the nation: only provinces forward to it.
    for below in ["620982", "6209"] {
        let mut c = nation.client_as(Role::Aggregator, below).await;
        refused(
            c.submit(forwarded("620982101", "620982")).await,
            &[
                &format!("aggregator {below} may not forward to the national tier (100000)"),
                "forward to 62 (甘肃省)'s aggregator",
            ],
        );
    }
    // A province forwarding a row outside its subtree, or with a provenance outside it.
    let mut liaoning = nation.client_as(Role::Aggregator, "21").await;
    refused(
        liaoning.submit(forwarded("620982101", "620982")).await,
        &["aggregator 21 may not forward a report for unit 620982101: it is not in 21's subtree"],
    );
    refused(
        liaoning.submit(forwarded("211104100", "620982")).await,
        &["aggregator 21 may not forward a provenance naming 620982"],
    );
    // Nothing of that reached the store; the one path does.
    let a = liaoning.submit(forwarded("211104100", "211104")).await.unwrap().into_inner();
    assert_eq!(outcome(&a), ack::Outcome::Accepted);
    let rows = nation.wait_for_rows(WAIT, |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(nation.stored_months(), [("211104100".to_string(), "2024-03".to_string())]);
    assert_eq!(rows[0].first_accepted_by, "211104");
}
