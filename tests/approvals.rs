//! Approval (审核) through the real binaries: a county approves a month for
//! its subtree with `sifa aggregator approve` (admin certificate); the month is
//! then closed there to new reports and revisions except through a recorded
//! override; the approval travels up after the month's reports, and the
//! province accepts it; `status` shows the state at each tier; a withdrawal
//! reopens the month and travels up too.

mod support;

use std::time::Duration;

use sifa_proto::v1::{Ack, ack};
use support::{TestAggregator, TierSpec, as_agent, report};

fn outcome(a: &Ack) -> ack::Outcome {
    ack::Outcome::try_from(a.outcome).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_approves_a_month_the_province_accepts_it_and_revisions_need_an_override() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    let mut c = county.client().await;
    let first = report("620982101", "2024-03", 1, &[("lectures", 2.0)]);
    assert_eq!(outcome(&c.submit(as_agent(first)).await.unwrap().into_inner()), ack::Outcome::Accepted);

    let text = county.cli_ok(&["status", "--period", "2024-03"]);
    assert!(text.contains("Approval (审核): not approved at this tier"), "{text}");
    let text = county.cli_ok(&["approve", "--period", "2024-03"]);
    assert!(text.starts_with("2024-03 620982 approved (已审核): approved by admin 620982 at "), "{text}");

    // Closed for the county's subtree: a revision and a first report alike.
    for r in [
        report("620982101", "2024-03", 2, &[("lectures", 3.0)]),
        report("620982102", "2024-03", 1, &[("lectures", 1.0)]),
    ] {
        let e = c.submit(as_agent(r)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains("period 2024-03 is approved for 620982 by admin 620982"), "{}", e.message());
        assert!(e.message().contains("[period_approved]"), "{}", e.message());
    }
    // Other months stay open.
    let april = report("620982102", "2024-04", 1, &[("lectures", 1.0)]);
    assert_eq!(outcome(&c.submit(as_agent(april)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    // A recorded override admits one revision, which the province takes from the county.
    county.cli_ok(&["override", "--unit", "620982101", "--period", "2024-03", "--reason", "复核更正讲座次数"]);
    let fixed = report("620982101", "2024-03", 2, &[("lectures", 3.0)]);
    assert_eq!(outcome(&c.submit(as_agent(fixed)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    province.wait_for_rows(Duration::from_secs(60), |rows| {
        rows.iter().any(|r| r.report.unit_code == "620982101" && r.report.revision == 2)
    });

    // The approval travelled up: the province shows it as approved by the county.
    let text = province.status_when("2024-03", |t| t.contains("620982 approved (已审核)"));
    assert!(text.contains("approved by admin 620982") && text.contains("reported by tier 620982"), "{text}");
    // Not closed at the province until it accepts; then it is.
    let text = province.cli_ok(&["approve", "--period", "2024-03", "--unit", "620982"]);
    assert!(text.contains("2024-03 620982 accepted (已审核)") && text.contains("accepted by admin 62 at "), "{text}");
    let text = province.cli_ok(&["status", "--period", "2024-03", "--root", "620982"]);
    assert!(text.contains("accepted by admin 62"), "{text}");

    // On record where other readers find it (docs/STORAGE.md).
    let csv = std::fs::read_to_string(province.data_dir().join("approvals.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("2024-03,620982,accepted,admin 620982,")), "{csv}");

    // Withdrawn at the county (with a reason): open again there, and withdrawn above.
    let out = county.cli(&["unapprove", "--period", "2024-03", "--reason", ""]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("needs a reason"), "{out:?}");
    let text = county.cli_ok(&["unapprove", "--period", "2024-03", "--reason", "漏报一个司法所"]);
    assert!(text.contains("2024-03 620982 withdrawn by admin 620982") && text.contains("open again"), "{text}");
    let late = report("620982102", "2024-03", 1, &[("lectures", 1.0)]);
    assert_eq!(outcome(&c.submit(as_agent(late)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    province.status_when("2024-03", |t| t.contains("Approval (审核): not approved at this tier"));
    let out = county.cli(&["unapprove", "--period", "2024-03", "--reason", "again"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no approval of 620982 for 2024-03"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_of_the_tier_or_above_approves() {
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let mut admin = county.admin().await;
    let e = admin
        .approve(sifa_proto::v1::ApproveRequest { period: "2024-3".into(), unit_code: String::new() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    let e = admin
        .approve(sifa_proto::v1::ApproveRequest { period: "2024-03".into(), unit_code: "620981".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "another county: {}", e.message());
    let tier = support::connect(&county.url(), sifa_aggregator::auth::Role::Aggregator, "620982").await;
    let e = sifa_proto::v1::admin_service_client::AdminServiceClient::new(tier)
        .approve(sifa_proto::v1::ApproveRequest { period: "2024-03".into(), unit_code: String::new() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_waiting_for_a_tier_that_is_down_shows_in_status_and_arrives_when_it_is_back() {
    let mut province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    let mut c = county.client().await;
    let first = report("620982101", "2024-03", 1, &[("lectures", 2.0)]);
    assert_eq!(outcome(&c.submit(as_agent(first)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    province.wait_for_rows(Duration::from_secs(60), |rows| rows.len() == 1);
    county.status_when("2024-03", |t| t.contains(": 正常 delivering"));

    // Every report is forwarded; the province goes down; then the county approves the month. Only the
    // approval waits: on the forwarder's connection, its backoff, and the link's state in `status`.
    province.kill9();
    county.cli_ok(&["approve", "--period", "2024-03"]);
    let text = county.status_when("2024-03", |t| t.contains(": unreachable since"));
    assert!(text.contains(&format!("上级 Upstream {}: unreachable since", province.url())), "{text}");

    province.restart();
    province.status_when("2024-03", |t| t.contains("620982 approved (已审核)"));
    county.status_when("2024-03", |t| t.contains(": 正常 delivering"));
}
