//! One path per report, with the real binaries and certificates: an office reports only to the tier
//! directly above it, a tier takes forwarded reports only from the aggregators below it with a
//! provenance of their subtree, and a stream refused midway stores nothing after the refusal
//! (docs/SECURITY.md).

mod support;

use std::time::Duration;

use sifa_aggregator::auth::{Limits, Role};
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::{Ack, Provenance, SubmitRequest, ack};
use support::{TestAggregator, TierSpec, report};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(45);

fn outcome(a: &Ack) -> ack::Outcome {
    ack::Outcome::try_from(a.outcome).unwrap()
}

fn own(unit: &str, period: &str) -> SubmitRequest {
    SubmitRequest { report: Some(report(unit, period, 1, &[("lectures", 2.0)])), provenance: None }
}

fn forwarded(unit: &str, period: &str, first: &str, received_at_ms: i64) -> SubmitRequest {
    SubmitRequest {
        report: Some(report(unit, period, 1, &[("lectures", 2.0)])),
        provenance: Some(Provenance { first_accepted_by: first.into(), received_at_ms }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_reports_only_to_the_tier_directly_above_it() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));

    // Straight to the province: refused, naming the county the office reports through.
    let mut office_at_province = province.client_as(Role::Office, "620982101").await;
    let e = office_at_province.submit(own("620982101", "2024-03")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    assert!(
        e.message().contains(
            "office 620982101 reports only to the tier directly above it, 620982 (敦煌市), which forwards its \
             reports up; this tier is 62: send the report to 620982's aggregator"
        ),
        "{}",
        e.message()
    );
    assert!(e.message().contains("[not_authorized]"), "{}", e.message());
    // On a stream too (a rejection, and the stream goes on).
    let mut acks = office_at_province
        .submit_stream(tokio_stream::iter(vec![own("620982101", "2024-04")]))
        .await
        .unwrap()
        .into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!((outcome(&a), a.code), (ack::Outcome::Rejected, Code::PermissionDenied as i32));

    // Through its county: accepted there, forwarded, and at the province with the county's provenance.
    let mut office = county.client_as(Role::Office, "620982101").await;
    let a = office.submit(own("620982101", "2024-05")).await.unwrap().into_inner();
    assert_eq!(outcome(&a), ack::Outcome::Accepted);
    let rows = province.wait_for_rows(WAIT, |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        province.stored_months(),
        [("620982101".to_string(), "2024-05".to_string())],
        "nothing straight from the office"
    );
    assert_eq!(rows[0].first_accepted_by, "620982");
    assert_eq!(county.stored_months(), province.stored_months(), "the county and the province hold the same reports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_come_only_from_aggregators_below_with_a_provenance_of_their_subtree() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    let now = now_unix_ms();
    let refused = |r: Result<tonic::Response<Ack>, tonic::Status>, code: Code, words: &[&str]| {
        let e = r.expect_err("refused");
        assert_eq!(e.code(), code, "{}", e.message());
        for w in words {
            assert!(e.message().contains(w), "{w:?} not in: {}", e.message());
        }
    };

    // The province's own certificate is not below the province.
    let mut itself = province.client_as(Role::Aggregator, "62").await;
    refused(
        itself.submit(forwarded("620982101", "2024-03", "620982", now)).await,
        Code::PermissionDenied,
        &["aggregator 62 may not forward to this tier (62)", "only from the aggregators below it"],
    );
    // A city forwarding to a county of its own: a tier above is not below.
    let mut city_at_county = county.client_as(Role::Aggregator, "6209").await;
    refused(
        city_at_county.submit(forwarded("620982101", "2024-03", "620982", now)).await,
        Code::PermissionDenied,
        &["aggregator 6209 may not forward to this tier (620982)"],
    );

    let mut c = province.client_as(Role::Aggregator, "620982").await;
    // Without a provenance, the province would take itself for the first tier: refused.
    refused(
        c.submit(own("620982101", "2024-03")).await,
        Code::PermissionDenied,
        &["aggregator 620982 forwarded a report of unit 620982101 without its provenance"],
    );
    // A provenance naming a tier outside the county's subtree, or not the office's own county.
    for first in ["620981", "62", "6209", "620982101"] {
        refused(
            c.submit(forwarded("620982101", "2024-03", first, now)).await,
            Code::PermissionDenied,
            &[
                &format!("aggregator 620982 may not forward a provenance naming {first}"),
                "the first tier of unit 620982101 is the tier directly above it (620982)",
            ],
        );
    }
    // A provenance time outside the window.
    for t in [i64::MAX, i64::MIN, 0, now + 2 * 86_400_000] {
        refused(
            c.submit(forwarded("620982101", "2024-03", "620982", t)).await,
            Code::InvalidArgument,
            &[&format!("provenance received_at_ms = {t} is not a time from 2000-01-01 00:00 to"), "[received_at]"],
        );
    }

    // The one path: the county forwards its office's report with its own provenance.
    let a = c.submit(forwarded("620982101", "2024-03", "620982", now)).await.unwrap().into_inner();
    assert_eq!(outcome(&a), ack::Outcome::Accepted);
    let rows = province.wait_for_rows(WAIT, |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(province.stored_months(), [("620982101".to_string(), "2024-03".to_string())]);
    assert_eq!((rows[0].first_accepted_by.as_str(), rows[0].received_at_ms), ("620982", now));
    assert!(county.rows().is_empty(), "the county took nothing from above");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_stores_nothing_after_the_refusal() {
    // Over the reports of one stream: a county forwarding eight to a province that takes five.
    let per_stream = Limits { max_reports_per_stream: 5, ..Limits::default() };
    let mut province = TestAggregator::spawn(TierSpec { limits: Some(per_stream), ..TierSpec::top("62") });
    let reqs: Vec<_> =
        (1..=8).map(|m| forwarded("620982101", &format!("2024-{m:02}"), "620982", now_unix_ms())).collect();
    let mut c = province.client_as(Role::Aggregator, "620982").await;
    let (acked, end) = acks_until_refused(c.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner()).await;
    assert_eq!(acked, 5);
    assert_eq!(end.code(), Code::ResourceExhausted);
    assert!(end.message().contains("open a new stream for the rest"), "{}", end.message());

    // Over the rate: an office sending eight at once to a county whose burst is three.
    let rate = Limits { reports_per_second: 1, burst: 3, ..Limits::default() };
    let mut county = TestAggregator::spawn(TierSpec { limits: Some(rate), ..TierSpec::top("620982") });
    let reqs: Vec<_> = (1..=8).map(|m| own("620982102", &format!("2024-{m:02}"))).collect();
    let mut office = county.client_as(Role::Office, "620982102").await;
    let (acked, end) =
        acks_until_refused(office.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner()).await;
    assert_eq!(acked, 3);
    assert_eq!(end.code(), Code::ResourceExhausted);
    assert!(end.message().contains("retry in"), "{}", end.message());

    // A clean stop flushes the log: exactly the acknowledged reports are stored, nothing sent after.
    province.stop();
    county.stop();
    let months = |agg: &TestAggregator| agg.stored_months().into_iter().map(|(_, p)| p).collect::<Vec<_>>();
    assert_eq!(months(&province), ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]);
    assert_eq!(months(&county), ["2024-01", "2024-02", "2024-03"]);
}

/// Counts the acknowledgements until the stream breaks; the status it broke with.
async fn acks_until_refused(mut acks: tonic::Streaming<Ack>) -> (usize, tonic::Status) {
    let mut n = 0;
    loop {
        match acks.message().await {
            Ok(Some(a)) => {
                assert_eq!(outcome(&a), ack::Outcome::Accepted, "{a:?}");
                n += 1;
            }
            Ok(None) => panic!("the stream ended without a refusal"),
            Err(e) => return (n, e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_without_a_report_is_invalid_argument() {
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let mut office = county.client_as(Role::Office, "620982101").await;
    let empty = SubmitRequest { report: None, provenance: None };
    let e = office.submit(empty.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("the request carries no report"), "{}", e.message());
    // On a stream: a rejected Ack, and the stream goes on.
    let reqs = vec![empty, own("620982101", "2024-03")];
    let mut acks = office.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!((outcome(&a), a.code), (ack::Outcome::Rejected, Code::InvalidArgument as i32));
    assert_eq!(a.problems[0].rule, "no_report");
    assert_eq!(outcome(&acks.message().await.unwrap().unwrap()), ack::Outcome::Accepted);
    // The server is whole: the same connection goes on.
    let a = office.submit(own("620982101", "2024-04")).await.unwrap().into_inner();
    assert_eq!(outcome(&a), ack::Outcome::Accepted);
}
