//! An aggregator's ingest, end to end with the real binary: offices → county →
//! province, duplicates, conflicts, units outside the subtree, invalid reports,
//! period locks with overrides, completeness.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sifa_aggregator::auth::Role;
use sifa_proto::v1::{Ack, SubmitRequest, ack};
use support::{TestAggregator, TierSpec, as_agent, from_sender, report};

const WAIT: Duration = Duration::from_secs(45);

/// Every row of every Parquet file under `data_dir/reports/`, read with the
/// plain Parquet reader (no sifa code): column name → value as text (null: ""),
/// plus `year` from the Hive directory `year=YYYY`.
fn parquet_rows(data_dir: &Path) -> Vec<BTreeMap<String, String>> {
    use arrow::util::display::array_value_to_string;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Vec::new();
    for year_dir in std::fs::read_dir(data_dir.join("reports")).unwrap() {
        let year_dir = year_dir.unwrap().path();
        let year =
            year_dir.file_name().unwrap().to_string_lossy().strip_prefix("year=").expect("year=YYYY").to_string();
        for file in std::fs::read_dir(&year_dir).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap().build().unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                for row in 0..batch.num_rows() {
                    let mut cells = BTreeMap::from([("year".to_string(), year.clone())]);
                    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                        let text = if column.is_null(row) {
                            String::new()
                        } else {
                            array_value_to_string(column, row).unwrap()
                        };
                        cells.insert(field.name().clone(), text);
                    }
                    out.push(cells);
                }
            }
        }
    }
    out
}

/// A Unix-ms instant as Arrow prints a `timestamp[ms, tz=UTC]` value.
fn timestamp_text(ms: i64) -> String {
    use arrow::array::{Array, TimestampMillisecondArray};
    let a = TimestampMillisecondArray::from(vec![ms]).with_timezone("UTC");
    arrow::util::display::array_value_to_string(&a as &dyn Array, 0).unwrap()
}

fn outcome(a: &Ack) -> ack::Outcome {
    ack::Outcome::try_from(a.outcome).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_reports_reach_the_province_store_unchanged() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    // The county fetched and cached the province's catalog and its own subtree of the registry.
    let cached = std::fs::read_to_string(county.data_dir().join("registry.csv")).unwrap();
    assert!(cached.contains("620982100,沙州镇司法所") && !cached.contains("620981100"), "{cached}");

    let mut c = county.client().await;
    let mut r1 = report("620982100", "2024-03", 1, &[("disputes_mediated", 12.0), ("office_area_m2", 120.5)]);
    r1.comment = Some("三月".into());
    let r2 = report("620982900", "2024-03", 1, &[("consultations", 40.0)]);
    let r3 = report("620982100", "2024-03", 2, &[("disputes_mediated", 13.0), ("disputes_resolved", 11.0)]);
    for r in [&r1, &r2, &r3] {
        let a = c.submit(as_agent(r.clone())).await.unwrap().into_inner();
        assert_eq!(outcome(&a), ack::Outcome::Accepted, "{a:?}");
        assert_eq!((a.unit_code.as_str(), a.revision), (r.unit_code.as_str(), r.revision));
    }

    let mut rows = province.wait_for_rows(WAIT, |rows| rows.len() >= 3);
    assert_eq!(rows.len(), 3, "each report exactly once at the province");
    rows.sort_by(|a, b| (&a.report.unit_code, a.report.revision).cmp(&(&b.report.unit_code, b.report.revision)));
    for (row, sent) in rows.iter().zip([&r1, &r3, &r2]) {
        assert_eq!(&row.report, sent, "the report arrives with its identity and values unchanged");
        assert_eq!(row.first_accepted_by, "620982", "provenance: the county accepted it first");
        assert_eq!(row.county_code.as_deref(), Some("620982"));
        assert_eq!(row.city_code.as_deref(), Some("6209"));
        assert_eq!(row.province_code.as_deref(), Some("62"));
        assert!(row.received_at_ms > 1_700_000_000_000);
    }
    assert_eq!(rows[2].unit_kind.as_str(), "mediation_centre");
    // The county's own rows are the very same rows (same received_at: timeliness is the first tier's).
    let mut county_rows = county.wait_for_rows(WAIT, |rows| rows.len() >= 3);
    county_rows.sort_by(|a, b| (&a.report.unit_code, a.report.revision).cmp(&(&b.report.unit_code, b.report.revision)));
    assert_eq!(county_rows, rows);
    // The same rows read from the province's Parquet files as any reader sees them, column by
    // column (docs/STORAGE.md): the tree above the unit, kind, year (the Hive directory), month,
    // revision, received time, the first tier, one column per metric.
    let parquet = parquet_rows(&province.data_dir());
    assert_eq!(parquet.len(), 3);
    let cell = |unit: &str, rev: &str, col: &str| {
        let row = parquet.iter().find(|r| r["unit_code"] == unit && r["revision"] == rev).expect("row");
        row.get(col).unwrap_or_else(|| panic!("no column {col}: {row:?}")).clone()
    };
    for (unit, rev) in [("620982100", "1"), ("620982100", "2"), ("620982900", "1")] {
        assert_eq!(cell(unit, rev, "year"), "2024", "Hive partition year=2024");
        assert_eq!(cell(unit, rev, "month"), "3");
        assert_eq!(cell(unit, rev, "period"), "2024-03");
        assert_eq!(cell(unit, rev, "province_code"), "62");
        assert_eq!(cell(unit, rev, "city_code"), "6209");
        assert_eq!(cell(unit, rev, "county_code"), "620982");
        assert_eq!(cell(unit, rev, "first_accepted_by"), "620982");
        let county_row =
            county_rows.iter().find(|r| r.report.unit_code == unit && r.report.revision.to_string() == rev);
        let received = county_row.unwrap().received_at_ms;
        assert_eq!(cell(unit, rev, "received_at"), timestamp_text(received), "received when the county accepted it");
    }
    assert_eq!(cell("620982100", "1", "unit_kind"), "office");
    assert_eq!(cell("620982900", "1", "unit_kind"), "mediation_centre");
    assert_eq!(cell("620982100", "1", "disputes_mediated"), "12");
    assert_eq!(cell("620982100", "1", "office_area_m2"), "120.5");
    assert_eq!(cell("620982100", "1", "comment"), "三月");
    assert_eq!(cell("620982100", "2", "disputes_resolved"), "11");
    assert_eq!(cell("620982100", "2", "office_area_m2"), "", "a metric not reported is null");
    assert_eq!(cell("620982900", "1", "consultations"), "40");

    // The store describes itself.
    let meta = std::fs::read_to_string(province.data_dir().join("store.toml")).unwrap();
    assert!(meta.contains("root_unit = \"62\""), "{meta}");

    // The province takes a forwarded report only from units of the forwarding aggregator's subtree.
    // The county's identity is its certificate, whatever the request claims.
    let mut p = province.client_as(Role::Aggregator, "620982").await;
    let foreign =
        SubmitRequest { report: Some(report("620981100", "2024-03", 1, &[("lectures", 1.0)])), provenance: None };
    let e = p.submit(from_sender("62", foreign)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("aggregator 620982 may not forward a report for unit 620981100"), "{}", e.message());
    assert!(e.message().contains("[not_authorized]"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_conflicts_subtree_and_invalid_reports() {
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let mut c = county.client().await;
    let r = report("620982101", "2024-02", 1, &[("lectures", 3.0), ("consultations", 20.0)]);
    assert_eq!(outcome(&c.submit(as_agent(r.clone())).await.unwrap().into_inner()), ack::Outcome::Accepted);
    // A retry (even generated again later) is a duplicate, stored once.
    let mut again = r.clone();
    again.generated_at_ms += 60_000;
    assert_eq!(outcome(&c.submit(as_agent(again)).await.unwrap().into_inner()), ack::Outcome::Duplicate);

    // Different content under the same revision is a conflict; the store keeps the first.
    let mut changed = r.clone();
    changed.values.insert("lectures".into(), 4.0);
    let e = c.submit(as_agent(changed)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
    assert!(
        e.message().contains("report 620982101 2024-02 rev 1 is already stored with different content"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("[conflict]"), "{}", e.message());

    // An office of another county, sending its own report to the wrong aggregator.
    let mut stranger = county.client_as(Role::Office, "620981100").await;
    let e = stranger.submit(as_agent(report("620981100", "2024-02", 1, &[("lectures", 1.0)]))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("[outside_subtree]"), "{}", e.message());
    // An office reporting for another office.
    let other =
        SubmitRequest { report: Some(report("620982102", "2024-02", 1, &[("lectures", 1.0)])), provenance: None };
    let mut office = county.client_as(Role::Office, "620982101").await;
    let e = office.submit(tonic::Request::new(other.clone())).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message()
            .contains("office 620982101 may not submit a report for unit 620982102: an office submits only its own"),
        "{}",
        e.message()
    );
    // An analyst reads; it submits nothing.
    let mut analyst = county.client_as(Role::Analyst, "620982").await;
    let e = analyst.submit(tonic::Request::new(other)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("analyst 620982 may not submit reports"), "{}", e.message());

    // Every problem of an invalid report, one per line.
    let bad = report("620982103", "2024-02", 1, &[("lectures", -1.5), ("disputes_mediatd", 2.0)]);
    let e = c.submit(as_agent(bad)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let m = e.message();
    assert!(m.starts_with("report 620982103 2024-02 rev 1\n"), "{m}");
    assert!(m.contains("lectures (法治讲座) = -1.5 is not a whole number") && m.contains("[negative]"), "{m}");
    assert!(m.contains("unknown metric \"disputes_mediatd\" = 2"), "{m}");
    assert_eq!(m.lines().count(), 4, "{m}");
    // A county node is not a reporting unit; a unit the registry does not have is said to be so.
    let e = c
        .submit(SubmitRequest { report: Some(report("620982", "2024-02", 1, &[("lectures", 1.0)])), provenance: None })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("[not_reporting_unit]"), "{}", e.message());
    let e = office
        .submit(SubmitRequest {
            report: Some(report("620982199", "2024-02", 1, &[("lectures", 1.0)])),
            provenance: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("unit 620982199 is not in the registry; ask the province to add it [unknown_unit]"),
        "{}",
        e.message()
    );

    // On a stream a rejection is an Ack and the stream goes on, acks in request order.
    let first = report("620982104", "2024-02", 1, &[("lectures", 1.0)]);
    let reqs = vec![
        SubmitRequest { report: Some(first.clone()), provenance: None },
        SubmitRequest { report: Some(report("620981100", "2024-02", 1, &[("lectures", 1.0)])), provenance: None },
        SubmitRequest { report: Some(first), provenance: None },
        SubmitRequest { report: Some(report("620982104", "2024-02", 1, &[("lectures", 2.0)])), provenance: None },
        SubmitRequest { report: Some(report("620982104", "2024-02", 2, &[("lectures", 2.0)])), provenance: None },
    ];
    let mut office = county.client_as(Role::Office, "620982104").await;
    let mut acks = office.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(a) = acks.message().await.unwrap() {
        got.push((a.unit_code.clone(), a.revision, outcome(&a), a.code));
    }
    use ack::Outcome::*;
    assert_eq!(
        got,
        vec![
            ("620982104".to_string(), 1, Accepted, 0),
            ("620981100".to_string(), 1, Rejected, tonic::Code::PermissionDenied as i32),
            ("620982104".to_string(), 1, Duplicate, 0),
            ("620982104".to_string(), 1, Rejected, tonic::Code::AlreadyExists as i32),
            ("620982104".to_string(), 2, Accepted, 0),
        ]
    );

    // Exactly the accepted revisions are stored, once each, with their first content.
    let rows = county.wait_for_rows(WAIT, |rows| rows.len() >= 3);
    std::thread::sleep(Duration::from_millis(500));
    let rows_later = county.rows();
    assert_eq!(rows.len(), rows_later.len());
    let mut keys: Vec<_> = rows_later.iter().map(|r| (r.report.unit_code.clone(), r.report.revision)).collect();
    keys.sort();
    assert_eq!(keys, [("620982101".into(), 1), ("620982104".into(), 1), ("620982104".into(), 2)]);
    let kept = rows_later.iter().find(|r| r.report.unit_code == "620982101").unwrap();
    assert_eq!(kept.report.values["lectures"], 3.0);
    assert_eq!(kept.report.generated_at_ms, r.generated_at_ms, "the first copy is the one kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_period_refuses_reports_except_by_a_recorded_override() {
    let agg = TestAggregator::spawn(TierSpec::top("620982"));
    let mut c = agg.client().await;
    let accepted = report("620982100", "2024-03", 1, &[("lectures", 1.0)]);
    assert_eq!(outcome(&c.submit(as_agent(accepted.clone())).await.unwrap().into_inner()), ack::Outcome::Accepted);

    let out = agg.cli(&["lock", "--period", "2024", "--reason", "annual close by the province"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("locked 12 month(s): 2024-01"), "{out:?}");

    let late = report("620982101", "2024-03", 1, &[("lectures", 2.0)]);
    let e = c.submit(as_agent(late.clone())).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("period 2024-03 is closed (annual close by the province)"), "{}", e.message());
    assert!(e.message().contains("[period_locked]"), "{}", e.message());
    // A revision of an already stored report is refused too; its retry is still a duplicate.
    let e = c.submit(as_agent(report("620982100", "2024-03", 2, &[("lectures", 5.0)]))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert_eq!(outcome(&c.submit(as_agent(accepted)).await.unwrap().into_inner()), ack::Outcome::Duplicate);

    let out =
        agg.cli(&["override", "--unit", "620982101", "--period", "2024-03", "--reason", "flood, approved by 张三"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outcome(&c.submit(as_agent(late)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    // One override admits one report.
    let e = c.submit(as_agent(report("620982101", "2024-03", 2, &[("lectures", 3.0)]))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    // The override is on record with its reason and the revision it admitted.
    let book =
        std::fs::read_to_string(sifa_store::layout::state_dir(&agg.data_dir()).join(sifa_store::layout::LOCKS_FILE))
            .unwrap();
    assert!(book.contains("flood, approved by 张三") && book.contains("\"used_by_revision\": 1"), "{book}");
    // And who granted it and who closed the year: the admin certificate that called.
    assert!(book.contains("\"granted_by\": \"admin 620982\""), "{book}");
    assert!(book.contains("\"locked_by\": \"admin 620982\""), "{book}");
    // The lock survives a restart.
    let mut agg = agg;
    agg.restart();
    let mut c = agg.client().await;
    let e = c.submit(as_agent(report("620982102", "2024-03", 1, &[("lectures", 1.0)]))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    // Other periods are open.
    let open = report("620982102", "2023-12", 1, &[("lectures", 1.0)]);
    assert_eq!(outcome(&c.submit(as_agent(open)).await.unwrap().into_inner()), ack::Outcome::Accepted);

    // A single month is locked on its own: its neighbours stay open.
    let out = agg.cli(&["lock", "--period", "2023-11", "--reason", "November closed early"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "locked 1 month(s): 2023-11");
    let e = c.submit(as_agent(report("620982102", "2023-11", 1, &[("lectures", 1.0)]))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("period 2023-11 is closed (November closed early)"), "{}", e.message());
    let open = report("620982102", "2023-10", 1, &[("lectures", 1.0)]);
    assert_eq!(outcome(&c.submit(as_agent(open)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    let open = report("620982102", "2023-12", 2, &[("lectures", 2.0)]);
    assert_eq!(outcome(&c.submit(as_agent(open)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    // A period that is neither a year nor a month is refused with what to type instead.
    let out = agg.cli(&["lock", "--period", "2023-1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a year YYYY nor a month YYYY-MM"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_completeness_and_timeliness() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let mut c = province.client().await;
    for unit in ["620982100", "620982101", "620981100"] {
        let r = report(unit, "2024-03", 1, &[("lectures", 1.0)]);
        assert_eq!(outcome(&c.submit(as_agent(r)).await.unwrap().into_inner()), ack::Outcome::Accepted);
    }
    let out = province.cli(&["status", "--period", "2024-03", "--root", "620982"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let registry = sifa_proto::Registry::demo();
    let expected = registry.reporting_units("620982").len();
    // Received today, long after 2024-04-05: both are late.
    assert!(text.contains(&format!("expected {expected}  received 2  missing {}  late 2", expected - 2)), "{text}");
    assert!(text.contains("due by 2024-04-05 CST"), "{text}");
    let missing_here = format!("\n  620982 敦煌市 ({}):\n    620982102 肃州镇司法所\n", expected - 2);
    assert!(text.contains(&missing_here), "missing units are listed under their county: {text}");
    let line = text.lines().find(|l| l.starts_with("county  620982  敦煌市")).expect(&text);
    let cells: Vec<&str> = line.split_whitespace().collect();
    let rate = |n: usize| format!("{:.1}%", 100.0 * n as f64 / expected as f64);
    let (exp, miss) = (expected.to_string(), (expected - 2).to_string());
    assert_eq!(cells, ["county", "620982", "敦煌市", &exp, "2", &miss, "2", &rate(2), &rate(0)], "{text}");

    // The whole province: one line per city and county, Chinese names of 3 to 10
    // characters, every column aligned in a terminal (CJK characters are two columns wide).
    let out = province.cli(&["status", "--period", "2024-03"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Completeness of 2024-03 for 62 甘肃省 (due by 2024-04-05 CST)\n"), "{text}");
    let table: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("level")).take_while(|l| !l.is_empty()).collect();
    let groups = registry.subtree("62").into_iter().filter(|u| matches!(u.kind.as_str(), "county" | "city")).count();
    assert_eq!(table.len(), 1 + groups, "{text}");
    assert!(table.iter().any(|l| l.contains("阿克塞哈萨克族自治县")), "{text}");
    use unicode_width::UnicodeWidthStr;
    // Where each right-aligned column ends, by display width: the same on every line.
    let column_ends = |l: &str| -> Vec<usize> {
        let mut ends = Vec::new();
        let mut width = 0;
        let mut prev_blank = true;
        for c in l.chars() {
            let blank = c == ' ';
            if blank && !prev_blank {
                ends.push(width);
            }
            width += c.to_string().width();
            prev_blank = blank;
        }
        ends.push(width);
        ends[ends.len() - 6..].to_vec()
    };
    let header_ends = column_ends(table[0].replace("on time", "on_time").as_str());
    for l in &table[1..] {
        assert_eq!(column_ends(l), header_ends, "misaligned line {l:?} in\n{text}");
    }

    // Over gRPC, per county and city of the whole province.
    let mut d = province.directory().await;
    let r = d
        .get_completeness(sifa_proto::v1::CompletenessRequest { period: "2024-03".into(), root: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.expected as usize, registry.reporting_units("62").len());
    assert_eq!((r.received, r.late.len()), (3, 3));
    let g = |code: &str| r.groups.iter().find(|g| g.code == code).unwrap().clone();
    assert_eq!((g("620981").received, g("620982").received, g("6209").received), (1, 2, 3));
    assert_eq!(g("6209").level, "city");
    let out = province.cli(&["status", "--period", "2024-3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_refused_upstream_is_recorded_and_forwarding_goes_on() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    // Closed at the province only: the county still accepts the month.
    let out = province.cli(&["lock", "--period", "2024-03", "--reason", "closed at the province"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut c = county.client().await;
    let locked = report("620982100", "2024-03", 1, &[("lectures", 1.0)]);
    let open = report("620982100", "2024-04", 1, &[("lectures", 2.0)]);
    for r in [&locked, &open] {
        assert_eq!(outcome(&c.submit(as_agent(r.clone())).await.unwrap().into_inner()), ack::Outcome::Accepted);
    }
    // The report after the refused one still reaches the province, which never stores the refused one.
    let rows = province.wait_for_rows(WAIT, |rows| !rows.is_empty());
    assert_eq!(rows.iter().map(|r| &r.report).collect::<Vec<_>>(), [&open]);
    // The refusal is on record at the county, with the upstream's reason; the county keeps the report.
    let rejected = std::fs::read_to_string(
        sifa_store::layout::state_dir(&county.data_dir()).join(sifa_store::layout::FORWARD_REJECTED_FILE),
    )
    .unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(
        rejected.contains("\"unit_code\":\"620982100\"") && rejected.contains("\"period\":\"2024-03\""),
        "{rejected}"
    );
    assert!(rejected.contains("period 2024-03 is closed (closed at the province)"), "{rejected}");
    assert!(rejected.contains("[period_locked]"), "{rejected}");
    assert!(county.log().contains("the upstream rejected a forwarded report"), "{}", county.log());
    assert_eq!(county.wait_for_rows(WAIT, |rows| rows.len() >= 2).len(), 2);
    // It is not sent again: the province's store stays as it is.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(province.rows().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_months_figures_to_check_before_approval() {
    let mut county = TestAggregator::spawn(TierSpec::top("620982"));
    let mut c = county.client().await;
    // Seven ordinary months, then August's 300 disputes received for about 20 (a typo).
    for (m, v) in [(1, 20.0), (2, 22.0), (3, 19.0), (4, 23.0), (5, 18.0), (6, 21.0), (7, 17.0), (8, 300.0)] {
        let r = report("620982101", &format!("2024-{m:02}"), 1, &[("disputes_received", v)]);
        assert_eq!(
            outcome(&c.submit(as_agent(r)).await.unwrap().into_inner()),
            ack::Outcome::Accepted,
            "never refused"
        );
    }
    county.stop(); // flushed to Parquet, where the rollup reads
    county.restart();
    let out = county.cli(&["status", "--period", "2024-08"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Figures to check in 2024-08 (never refused; look before approving): 3\n"), "{text}");
    for reason in ["far from the unit's own months", "a jump from the previous month", "beyond what the unit's size"] {
        let line = text.lines().find(|l| l.contains(reason)).unwrap_or_else(|| panic!("{reason}: {text}"));
        assert!(line.trim_start().starts_with("620982101 ") && line.contains("disputes_received = 300"), "{line}");
    }
    assert!(text.contains("sifa query --data") && text.contains("--rollup outliers --year 2024"), "{text}");
    let out = county.cli(&["status", "--period", "2024-03"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Figures to check in 2024-03 (never refused; look before approving): 0\n"), "{text}");
}
