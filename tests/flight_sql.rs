//! The live Flight SQL endpoint (`[sql]`, docs/SQL.md) through real clients: Python ADBC
//! (`adbc-driver-flightsql`, mutual TLS through its options, pandas reading a result) and
//! `sifa query --connect`, against a real `sifa aggregator` whose flush interval is an hour, so
//! every row they see comes from the log's unflushed tail.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use sifa_aggregator::auth::Role;
use sifa_proto::v1::ack;
use support::{TestAggregator, TierSpec, as_agent, pki, report, sifa_bin};

/// Runs the statements of `plan` through ADBC as `role` of `unit` and prints one JSON result per
/// statement: `{"rows": [...]}` or `{"error": "..."}`; `{"df": [rows, columns]}` for `fetch_df`;
/// `{"tables": [...]}` for the catalog browse and `{"vendor": ...}` for GetSqlInfo.
const ADBC: &str = r#"
import json, sys
import adbc_driver_flightsql.dbapi as flightsql
from adbc_driver_flightsql import DatabaseOptions

uri, ca, cert, key, plan = sys.argv[1:6]
text = lambda p: open(p).read()
out = []
try:
    conn = flightsql.connect(uri, db_kwargs={
        DatabaseOptions.TLS_ROOT_CERTS.value: text(ca),
        DatabaseOptions.MTLS_CERT_CHAIN.value: text(cert),
        DatabaseOptions.MTLS_PRIVATE_KEY.value: text(key),
    })
except Exception as e:
    print(json.dumps([{"error": str(e)}]))
    sys.exit(0)
for step in json.loads(plan):
    try:
        if step == "browse":
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            out.append({"tables": sorted(
                t["table_name"] for c in objects for s in (c["catalog_db_schemas"] or [])
                for t in (s["db_schema_tables"] or []))})
        elif step == "info":
            out.append({"vendor": conn.adbc_get_info().get("vendor_name")})
        elif step.startswith("df:"):
            cur = conn.cursor()
            cur.execute(step[3:])
            df = cur.fetch_df()
            out.append({"df": [int(df.shape[0]), list(df.columns)]})
        else:
            cur = conn.cursor()
            cur.execute(step)
            out.append({"rows": [[str(v) for v in row] for row in cur.fetchall()]})
    except Exception as e:
        out.append({"error": str(e)})
print(json.dumps(out))
"#;

/// Runs `steps` through ADBC as `role` of `unit` against `tier`'s endpoint.
fn adbc(tier: &TestAggregator, role: Role, unit: &str, steps: &[&str]) -> Vec<Value> {
    let (cert, key) = pki().files(role, unit);
    let out = Command::new(support::peers::python())
        .arg("-c")
        .arg(ADBC)
        .arg(format!("grpc+tls://{}", tier.sql_addr()))
        .arg(pki().ca_cert())
        .arg(cert)
        .arg(key)
        .arg(json!(steps).to_string())
        .output()
        .expect("run python");
    assert!(out.status.success(), "ADBC client failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), tier.log()))
}

fn rows(answer: &Value) -> Vec<Vec<String>> {
    let rows = answer.get("rows").unwrap_or_else(|| panic!("expected rows, got {answer}"));
    serde_json::from_value(rows.clone()).unwrap()
}

fn error(answer: &Value) -> String {
    answer.get("error").and_then(Value::as_str).unwrap_or_else(|| panic!("expected an error, got {answer}")).to_string()
}

/// A province whose Flight SQL endpoint is on and which flushes once an hour, holding one
/// acknowledged report of an office in 肃州区 (620902) and one in 金塔县 (620921).
async fn province_with_unflushed_reports() -> TestAggregator {
    let province = TestAggregator::spawn(TierSpec { sql: true, flush_interval_ms: 3_600_000, ..TierSpec::top("62") });
    let mut client = province.client().await;
    for (unit, resolved) in [("620902001", 7.0), ("620921100", 5.0)] {
        let r = report(unit, "2024-03", 1, &[("disputes_mediated", resolved + 1.0), ("disputes_resolved", resolved)]);
        let a = client.submit(as_agent(r)).await.expect("submit").into_inner();
        assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
    }
    assert!(province.rows().is_empty(), "nothing is flushed to Parquet: what the endpoint shows is the log's tail");
    province
}

#[tokio::test(flavor = "multi_thread")]
async fn adbc_queries_acknowledged_reports_before_any_flush() {
    let province = province_with_unflushed_reports().await;
    let answers = adbc(
        &province,
        Role::Analyst,
        "62",
        &[
            "SELECT unit_code, county_code, disputes_resolved FROM reports ORDER BY unit_code",
            "SELECT code, value FROM rollup('totals', 2024) WHERE metric = 'disputes_resolved' AND level <> 'office' \
             ORDER BY code",
            "df:SELECT * FROM reports",
            "browse",
            "info",
        ],
    );
    assert_eq!(
        rows(&answers[0]),
        [["620902001", "620902", "7"], ["620921100", "620921", "5"]],
        "both acknowledged reports, straight from the log's tail"
    );
    assert_eq!(
        rows(&answers[1]),
        [["62", "12.0"], ["6209", "12.0"], ["620902", "7.0"], ["620921", "5.0"]],
        "the totals rollup as a table function: province, city and counties"
    );
    let df = &answers[2]["df"];
    assert_eq!(df[0], 2, "pandas reads both rows: {df}");
    assert!(df[1].as_array().unwrap().iter().any(|c| c == "disputes_resolved"), "{df}");
    let tables = &answers[3]["tables"];
    for t in ["reports", "units", "yearly", "report_files"] {
        assert!(tables.as_array().unwrap().iter().any(|x| x == t), "GetTables lists {t}: {tables}");
    }
    assert_eq!(answers[4]["vendor"], "sifa", "GetSqlInfo answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_of_one_county_sees_no_row_of_another() {
    let province = province_with_unflushed_reports().await;
    let answers = adbc(
        &province,
        Role::Analyst,
        "620902",
        &[
            "SELECT DISTINCT county_code FROM report_files",
            "SELECT count(*) FROM units WHERE county_code = '620921' OR code = '62'",
            "SELECT DISTINCT code FROM rollup('totals', 2024) WHERE level IN ('province', 'city', 'county')",
            "SELECT count(*) FROM yearly_facts WHERE unit_code LIKE '620921%'",
        ],
    );
    assert_eq!(rows(&answers[0]), [["620902"]], "only 肃州区's reports");
    assert_eq!(rows(&answers[1]), [["0"]], "neither 金塔县's units nor the province above");
    let codes: Vec<String> = rows(&answers[2]).into_iter().flatten().collect();
    assert!(!codes.contains(&"620921".to_string()), "the rollup knows no 金塔县: {codes:?}");
    assert!(codes.contains(&"620902".to_string()), "{codes:?}");
    assert_eq!(rows(&answers[3]), [["0"]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_refused_bad_sql_gets_datafusions_message_and_offices_cannot_query() {
    let province = province_with_unflushed_reports().await;
    let answers = adbc(
        &province,
        Role::Admin,
        "62",
        &[
            "INSERT INTO units (code) VALUES ('99')",
            "CREATE VIEW mine AS SELECT 1",
            "SELECT no_such_column FROM reports",
        ],
    );
    for refused in &answers[..2] {
        let e = error(refused);
        assert!(e.contains("this endpoint is read-only"), "{e}");
    }
    let e = error(&answers[2]);
    assert!(e.contains("no_such_column") && e.contains("No field named"), "DataFusion's own words: {e}");

    let office = adbc(&province, Role::Office, "620902001", &["SELECT 1"]);
    let e = error(&office[0]);
    assert!(e.contains("may not query") && e.contains("--role analyst"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sifa_query_connect_runs_sql_and_rollups_against_a_live_tier() {
    let province = province_with_unflushed_reports().await;
    let (cert, key) = pki().files(Role::Analyst, "620921");
    let url = format!("https://{}", province.sql_addr());
    let query = |extra: &[&str]| {
        let out = Command::new(sifa_bin())
            .args(["query", "--connect", &url, "--ca"])
            .arg(pki().ca_cert())
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) =
        query(&["--format", "csv", "SELECT unit_code, disputes_resolved FROM reports; SELECT 1 AS one"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["unit_code,disputes_resolved", "620921100,5", "one", "1"],
        "金塔县's analyst sees its own office only"
    );

    // The same through a config file (config/analyst.example.toml's form), its paths relative to it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&cert, dir.path().join("me.pem")).unwrap();
    std::fs::copy(&key, dir.path().join("me.key")).unwrap();
    let file = dir.path().join("analyst.toml");
    let tls = format!("[tls]\nca = {:?}\ncert = \"me.pem\"\nkey = \"me.key\"\n", pki().ca_cert());
    std::fs::write(&file, format!("connect = \"{url}\"\n{tls}")).unwrap();
    let from_file = |file: &std::path::Path| {
        let out = Command::new(sifa_bin())
            .arg("query")
            .arg("--config")
            .arg(file)
            .args(["--format", "csv", "SELECT unit_code FROM reports"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = from_file(&file);
    assert!(ok && out == "unit_code\n620921100\n", "{out}{err}");
    std::fs::write(&file, format!("{tls}")).unwrap();
    let (ok, _, err) = from_file(&file);
    assert!(!ok && err.contains("which tier?"), "{err}");
    std::fs::write(&file, format!("connect = \"{url}\"\n[tls]\ncert = \"me.pem\"\n")).unwrap();
    let (ok, _, err) = from_file(&file);
    assert!(!ok && err.contains("--ca, --key") && err.contains("[tls]"), "{err}");

    let (ok, out, err) = query(&["--rollup", "totals", "--year", "2024", "--format", "csv"]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("county,620921,") && l.contains(",disputes_resolved,")), "{out}");
    assert!(!out.contains("620902"), "{out}");

    let (ok, _, err) = query(&["DROP VIEW reports"]);
    assert!(!ok && err.contains("read-only"), "{err}");

    // The endpoint keeps 金塔县's session between queries: a report acknowledged since is in the next one.
    let count = "SELECT count(*) AS n FROM reports";
    assert_eq!(query(&["--format", "csv", count]).1, "n\n1\n");
    let r = report("620921101", "2024-03", 1, &[("disputes_mediated", 2.0), ("disputes_resolved", 2.0)]);
    let a = province.client().await.submit(as_agent(r)).await.expect("submit").into_inner();
    assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
    let (ok, out, err) = query(&["--format", "csv", count]);
    assert!(ok && out == "n\n2\n", "{out}{err}");
}
