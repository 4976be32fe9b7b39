//! Values every reader can read, with the real binary: a report is stored only if every Parquet
//! reader of the store reads it back as sent. Out-of-range values are rejected with what to fix,
//! in a bounded message; and any report the validator accepts — edge values included — comes back
//! equal from DuckDB's and pyarrow's `SELECT *` (docs/VALIDATION.md, docs/STORAGE.md).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use sifa_aggregator::auth::Role;
use sifa_proto::catalog::ValueType;
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::{Ack, Report, SubmitRequest, ack};
use sifa_proto::validate::{
    CLOCK_SKEW_MS, EARLIEST_TIME_MS, MAX_COMMENT_CHARS, MAX_GENERATOR_CHARS, MAX_MESSAGE_BYTES, MAX_REVISION, Now,
    check_report,
};
use sifa_proto::{Catalog, Period, Registry};
use sifa_sim::synth::Rng;
use support::{TestAggregator, TierSpec, report};
use tonic::Code;

fn outcome(a: &Ack) -> ack::Outcome {
    ack::Outcome::try_from(a.outcome).unwrap()
}

fn request(r: Report) -> SubmitRequest {
    SubmitRequest { report: Some(r), provenance: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_a_reader_cannot_read_are_rejected_with_what_to_fix() {
    let mut county = TestAggregator::spawn(TierSpec::top("620982"));
    let mut office = county.client_as(Role::Office, "620982101").await;
    let good = report("620982101", "2024-03", 1, &[("lectures", 2.0)]);
    let rejected = |r: Result<tonic::Response<Ack>, tonic::Status>, code: Code, words: &[&str]| {
        let e = r.expect_err("rejected");
        assert_eq!(e.code(), code, "{}", e.message());
        for w in words {
            assert!(e.message().contains(w), "{w:?} not in: {}", e.message());
        }
        e
    };

    // Generation times near the limits of i64 (they made DuckDB and pyarrow fail on the whole store).
    for t in [i64::MAX, i64::MIN, 0, EARLIEST_TIME_MS - 1, now_unix_ms() + 2 * CLOCK_SKEW_MS] {
        let r = Report { generated_at_ms: t, ..good.clone() };
        rejected(
            office.submit(request(r)).await,
            Code::InvalidArgument,
            &[
                &format!("generated_at_ms = {t} is not a time from 2000-01-01 00:00 to"),
                "check the clock of the computer that set it [generated_at]",
            ],
        );
    }
    // 2^63 was acknowledged, then stored negative: the revision in force was not the one acknowledged.
    rejected(
        office.submit(request(Report { revision: 1 << 63, ..good.clone() })).await,
        Code::InvalidArgument,
        &["revision 9223372036854775808 is above the highest allowed, 9223372036854775807", "[revision]"],
    );
    rejected(
        office.submit(request(Report { generator: "g".repeat(MAX_GENERATOR_CHARS + 1), ..good.clone() })).await,
        Code::InvalidArgument,
        &["the generator has 201 characters; at most 200 are allowed [generator_too_long]"],
    );
    rejected(
        office.submit(request(Report { comment: Some("注".repeat(MAX_COMMENT_CHARS + 1)), ..good.clone() })).await,
        Code::InvalidArgument,
        &["[comment_too_long]"],
    );

    // Thousands of problems: the first ones and a count of the rest, within the bound, and still
    // INVALID_ARGUMENT (never a metadata overflow a client takes for RESOURCE_EXHAUSTED).
    let mut many = good.clone();
    for i in 0..5000 {
        many.values.insert(format!("指标_{i:05}"), 1.0);
    }
    let e = rejected(
        office.submit(request(many.clone())).await,
        Code::InvalidArgument,
        &["report 620982101 2024-03 rev 1\n- unknown metric \"指标_00000\" = 1", "more problems (5000 in all)"],
    );
    assert!(e.message().len() <= MAX_MESSAGE_BYTES, "{} bytes", e.message().len());
    // On a stream the Ack carries the first hundred and a count of the rest.
    let mut acks = office.submit_stream(tokio_stream::iter(vec![request(many)])).await.unwrap().into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!((outcome(&a), a.code, a.problems.len()), (ack::Outcome::Rejected, Code::InvalidArgument as i32, 101));
    assert_eq!(a.problems[100].rule, "more_problems");
    assert_eq!(a.problems[100].message, "… and 4900 more problems (5000 in all)");

    // A unit code of 100,000 characters is repeated cut, not whole.
    let huge = Report { unit_code: "9".repeat(100_000), ..good.clone() };
    let e = rejected(
        office.submit(request(huge)).await,
        Code::InvalidArgument,
        &["… (100000 characters) is not in the registry", "[unknown_unit]"],
    );
    assert!(e.message().len() < 1000, "{} bytes", e.message().len());

    // Nothing of that was stored; the good report is.
    assert_eq!(outcome(&office.submit(request(good.clone())).await.unwrap().into_inner()), ack::Outcome::Accepted);
    county.stop();
    let rows = county.rows();
    assert_eq!(rows.iter().map(|r| &r.report).collect::<Vec<_>>(), [&good]);
}

/// Reads the store as docs/STORAGE.md shows, with DuckDB (`SELECT *` over `read_parquet`) and
/// pyarrow (a Hive dataset), and prints both as JSON: timestamps as Unix ms, doubles as their bits.
const READ_ALL: &str = r#"
import sys, json, struct, duckdb, pyarrow as pa, pyarrow.dataset as ds
root = sys.argv[1] + "/reports"
def plain(t):
    cols = {}
    for f in t.schema:
        col = t.column(f.name)
        if pa.types.is_timestamp(f.type):  # DuckDB answers in microseconds, the store keeps ms
            col = col.cast(pa.timestamp("ms", tz=f.type.tz)).cast(pa.int64())
        cols[f.name] = col.to_pylist()
    def cell(x):
        return {"f64": struct.unpack("<q", struct.pack("<d", x))[0]} if isinstance(x, float) else x
    return [{k: cell(v[i]) for k, v in cols.items()} for i in range(t.num_rows)]
con = duckdb.connect()
res = con.execute(f"SELECT * FROM read_parquet('{root}/*/*.parquet', hive_partitioning = true, union_by_name = true)").arrow()
duck = res.read_all() if hasattr(res, "read_all") else res
arrow = ds.dataset(root, format="parquet", partitioning="hive").to_table()
print(json.dumps({"duckdb": plain(duck), "pyarrow": plain(arrow)}))
"#;

/// Uniform in 0..n.
fn below(g: &mut Rng, n: u64) -> u64 {
    g.next() % n
}

/// Text of up to `max` characters (often exactly `max`): ASCII, CJK, emoji, combining marks,
/// controls, NUL, quotes and backslashes.
fn text(g: &mut Rng, max: usize) -> String {
    const CHARS: &[char] = &[
        'a', 'Z', '0', ' ', '司', '法', '所', '调', '解', '😀', '𠀀', 'é', '\u{301}', '\u{200b}', '\0', '\n', '\t',
        '"', '\'', '\\', ',', '\u{7f}', '\u{ffff}',
    ];
    let n = if g.chance(0.25) { max } else { below(g, max as u64 + 1) as usize };
    (0..n).map(|_| *g.pick(CHARS)).collect()
}

/// A value of metric `m` within its bounds, often one of them (or -0 where 0 is allowed).
fn value(g: &mut Rng, m: &sifa_proto::catalog::Metric) -> f64 {
    let (lo, hi) = (m.min, m.max.unwrap_or(1e9));
    let v = match below(g, 6) {
        0 => lo,
        1 => hi,
        2 if lo <= 0.0 => -0.0,
        _ => lo + (hi - lo) * g.f(),
    };
    match m.value_type {
        ValueType::Integer => v.floor().max(lo),
        ValueType::Decimal => v,
    }
}

/// A report the validator accepts, drawn from `g`, with edge values (the earliest and latest time
/// allowed, the highest revision, the longest generator and comment).
fn draw(g: &mut Rng, unit: &str, period: Period, revision: u64, catalog: &Catalog, now_ms: i64) -> Report {
    let metrics = catalog.metrics();
    let latest = now_ms + CLOCK_SKEW_MS - 3_600_000; // an hour of margin for the server's later clock
    let mut r = Report {
        unit_code: unit.into(),
        period: period.to_string(),
        revision,
        values: Default::default(),
        comment: match below(g, 3) {
            0 => None,
            1 if g.chance(0.3) => Some(String::new()),
            _ => Some(text(g, MAX_COMMENT_CHARS)),
        },
        generated_at_ms: match below(g, 3) {
            0 => EARLIEST_TIME_MS,
            1 => latest,
            _ => EARLIEST_TIME_MS + (g.next() % (latest - EARLIEST_TIME_MS) as u64) as i64,
        },
        generator: text(g, MAX_GENERATOR_CHARS),
    };
    for _ in 0..=below(g, metrics.len() as u64) {
        let m = g.pick(metrics);
        r.values.insert(m.code.clone(), value(g, m));
    }
    // Cross-field rules: drop the side a broken rule names until the validator accepts the report.
    let now = Now { month: Period::containing_unix_ms(now_ms), unix_ms: now_ms };
    loop {
        match check_report(&r, catalog, now) {
            Ok(_) => return r,
            Err(rej) => {
                for p in &rej.problems {
                    assert!(!p.metric.is_empty(), "only cross-field rules may fail: {p}");
                    r.values.remove(&p.metric);
                }
                if r.values.is_empty() {
                    r.values.insert("lectures".into(), 1.0);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_report_the_validator_accepts_reads_back_equal_in_duckdb_and_pyarrow() {
    let catalog = Catalog::builtin();
    let registry = Registry::demo();
    let units: Vec<String> = registry.reporting_units("620982").iter().map(|u| u.code.to_string()).collect();
    let now_ms = now_unix_ms();
    let months: Vec<Period> = {
        let (first, last) = ("2000-01".parse::<Period>().unwrap(), Period::containing_unix_ms(now_ms));
        std::iter::successors(Some(first), |p| Some(p.next()).filter(|n| *n <= last)).collect()
    };
    let mut g = Rng::new(&[b"any report the validator accepts"]);
    let mut seen = HashSet::new();
    let mut sent: Vec<Report> = Vec::new();
    while sent.len() < 400 {
        let unit = g.pick(&units).clone();
        let period = *g.pick(&months);
        let revision = match below(&mut g, 5) {
            0 => MAX_REVISION,
            1 => 1 + below(&mut g, 1 << 40),
            _ => 1 + below(&mut g, 3),
        };
        if seen.insert((unit.clone(), period, revision)) {
            sent.push(draw(&mut g, &unit, period, revision, &catalog, now_ms));
        }
    }

    let mut county = TestAggregator::spawn(TierSpec::top("620982"));
    let mut by_unit: BTreeMap<&str, Vec<SubmitRequest>> = BTreeMap::new();
    for r in &sent {
        by_unit.entry(r.unit_code.as_str()).or_default().push(request(r.clone()));
    }
    for (unit, reqs) in by_unit {
        let n = reqs.len();
        let mut office = county.client_as(Role::Office, unit).await;
        let mut acks = office.submit_stream(tokio_stream::iter(reqs)).await.unwrap().into_inner();
        let mut accepted = 0;
        while let Some(a) = acks.message().await.unwrap() {
            assert_eq!(outcome(&a), ack::Outcome::Accepted, "{a:?}");
            accepted += 1;
        }
        assert_eq!(accepted, n);
    }
    county.stop(); // a clean stop flushes the log to Parquet

    let out = Command::new(support::peers::python()).arg("-c").arg(READ_ALL).arg(county.data_dir()).output().unwrap();
    assert!(out.status.success(), "DuckDB or pyarrow failed on the store:\n{}", String::from_utf8_lossy(&out.stderr));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from the readers");
    for reader in ["duckdb", "pyarrow"] {
        let rows = read[reader].as_array().unwrap();
        assert_eq!(rows.len(), sent.len(), "{reader}: every report once");
        let by_key: BTreeMap<(String, String, i64), &serde_json::Value> = rows
            .iter()
            .map(|row| {
                let key = (row["unit_code"].as_str().unwrap().to_string(), row["period"].as_str().unwrap().to_string());
                ((key.0, key.1, row["revision"].as_i64().unwrap()), row)
            })
            .collect();
        for r in &sent {
            let row = by_key
                .get(&(r.unit_code.clone(), r.period.clone(), r.revision as i64))
                .unwrap_or_else(|| panic!("{reader}: no row for {} {} rev {}", r.unit_code, r.period, r.revision));
            let what = format!("{reader}, {} {} rev {}", r.unit_code, r.period, r.revision);
            assert_eq!(row["generated_at"].as_i64(), Some(r.generated_at_ms), "{what}");
            assert_eq!(row["generator"].as_str(), Some(r.generator.as_str()), "{what}");
            assert_eq!(row["comment"].as_str(), r.comment.as_deref(), "{what}");
            assert_eq!(row["year"].as_i64(), Some(i64::from(r.period[..4].parse::<u16>().unwrap())), "{what}");
            for m in catalog.metrics() {
                let cell = &row[m.code.as_str()];
                match (r.values.get(&m.code), m.value_type) {
                    (None, _) => assert!(cell.is_null(), "{what}: {} = {cell}, not reported", m.code),
                    (Some(v), ValueType::Integer) => assert_eq!(cell.as_i64(), Some(*v as i64), "{what}: {}", m.code),
                    // The same double (-0 and 0 are one figure, stored as 0), to the last bit.
                    (Some(v), ValueType::Decimal) => {
                        let got = cell["f64"].as_i64().map(|bits| f64::from_bits(bits as u64));
                        assert_eq!(got.map(f64::to_bits), Some((v + 0.0).to_bits()), "{what}: {} = {v}", m.code)
                    }
                }
            }
        }
    }
}
