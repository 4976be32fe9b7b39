//! `sifa query` and `sifa publish`, as a statistician runs them: the real
//! binary on a fixture store written by the aggregator's own store code
//! (queries/tests/fixtures: a province whose offices resolve 55.3% of its
//! disputes).

#[path = "../queries/tests/fixtures/mod.rs"]
mod fixtures;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sifa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sifa")).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "sifa failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "sifa should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixtures::province(dir.path());
    dir
}

fn data(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[test]
fn rollups_in_every_format() {
    let dir = store();
    let d = data(&dir);
    let csv = ok(sifa(&["query", "--data", d, "--rollup", "share_of_mediations", "--year", "2024", "--format", "csv"]));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("level,code,name,offices,units,office_resolved,all_resolved,office_share_pct,share_of_province_pct")
    );
    assert_eq!(lines.next(), Some("province,37,山东省,10,16,828000,1497288,55.3,100.0"));

    let json =
        ok(sifa(&["query", "--data", d, "--rollup", "share_of_mediations", "--year", "2024", "--format", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["office_share_pct"], 55.3);
    assert_eq!(rows[0]["office_resolved"], 828000);

    // The table lines up Chinese text by display width (a CJK character is two columns).
    let table = ok(sifa(&["query", "--data", d, "SELECT code, name FROM units WHERE kind = 'county' ORDER BY code"]));
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("3701") || l.starts_with("3702")).collect();
    assert_eq!(rows, ["370102  历下区", "370103  市中区", "370202  市南区"], "{table}");
    assert!(table.contains("(3 rows)"), "{table}");

    // Ranking takes a statistic and a limit.
    let csv = ok(sifa(&[
        "query",
        "--data",
        d,
        "--rollup",
        "ranking",
        "--year",
        "2024",
        "--metric",
        "consultations",
        "--limit",
        "1",
        "--format",
        "csv",
    ]));
    assert!(csv.contains("office,top,1,"), "{csv}");
    assert_eq!(csv.lines().count(), 5, "header + county top/bottom + office top/bottom: {csv}");
}

#[test]
fn sql_from_a_file_and_from_stdin() {
    let dir = store();
    let d = data(&dir);
    let file = dir.path().join("mine.sql");
    std::fs::write(
        &file,
        "-- offices per city\nSELECT city_code, count(*) AS n FROM units WHERE kind = 'office' GROUP BY 1 ORDER BY 1;",
    )
    .unwrap();
    let out = ok(sifa(&["query", "--data", d, "-f", file.to_str().unwrap(), "--format", "csv"]));
    assert_eq!(out, "city_code,n\n3701,7\n3702,3\n");

    let mut child = Command::new(env!("CARGO_BIN_EXE_sifa"))
        .args(["query", "--data", d, "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"SELECT sum(disputes_resolved) AS s FROM yearly WHERE year = 2024").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(out), "s\n1497288\n");
}

#[test]
fn errors_name_what_is_wrong_and_what_exists() {
    let dir = store();
    let d = data(&dir);
    let e = err(sifa(&["query", "--data", d, "SELECT * FROM report"]));
    assert!(e.contains("report") && e.contains("the tables and views are: reports, report_revisions, units"), "{e}");
    let e = err(sifa(&["query", "--data", d, "--rollup", "shares", "--year", "2024"]));
    assert!(e.contains("unknown rollup \"shares\"") && e.contains("share_of_mediations"), "{e}");
    let e = err(sifa(&["query", "--data", d, "--rollup", "ranking", "--year", "2024", "--metric", "lecture"]));
    assert!(e.contains("\"lecture\" is not in the store's catalog") && e.contains("lectures"), "{e}");
    let e = err(sifa(&["query", "--data", dir.path().join("nope").to_str().unwrap(), "SELECT 1"]));
    assert!(e.contains("is not a sifa data directory"), "{e}");
    // The store is read, never written.
    let e = err(sifa(&["query", "--data", d, "COPY (SELECT 1) TO '/tmp/x.csv'"]));
    assert!(!e.is_empty());
    let files_before = std::fs::read_dir(dir.path().join("reports/year=2024")).unwrap().count();
    let e = err(sifa(&["query", "--data", d, "INSERT INTO metrics VALUES (1)"]));
    assert!(!e.is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("reports/year=2024")).unwrap().count(), files_before);
}

fn publish(data: &str, out: &Path) {
    ok(sifa(&["publish", "--data", data, "--year", "2024", "--out", out.to_str().unwrap()]));
}

#[test]
fn publishing_is_reproducible_self_contained_and_matches_the_rollups() {
    let dir = store();
    let d = data(&dir);
    let (a, b) = (dir.path().join("pub-a"), dir.path().join("pub-b"));
    publish(d, &a);
    publish(d, &b);
    for f in ["index.html", "figures.csv", "figures.json", "figures.sdmx.csv", "figures.adx.xml"] {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x == y, "{f} differs between two runs on the same data");
    }

    // The page works offline: no external scripts, styles, images or fonts.
    let html = std::fs::read_to_string(a.join("index.html")).unwrap();
    for needle in ["src=\"http", "href=\"http", "src='http", "url(http", "@import"] {
        assert!(!html.contains(needle), "index.html refers to something outside it: {needle}");
    }
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(html.contains("55.3%"), "the headline share");
    assert!(html.contains("lang=\"en\"") || html.contains("English"), "an English version");

    // figures.json holds the rollups' numbers.
    let fig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("figures.json")).unwrap()).unwrap();
    let share =
        ok(sifa(&["query", "--data", d, "--rollup", "share_of_mediations", "--year", "2024", "--format", "json"]));
    let share: Vec<serde_json::Value> = serde_json::from_str(&share).unwrap();
    let published: Vec<&serde_json::Value> = std::iter::once(&fig["root"])
        .chain(fig["cities"].as_array().unwrap())
        .chain(fig["counties"].as_array().unwrap())
        .collect();
    assert_eq!(published.len(), share.len());
    for (p, r) in published.iter().zip(&share) {
        assert_eq!(p["code"], r["code"]);
        for k in ["office_resolved", "all_resolved"] {
            assert_eq!(p[k].as_f64(), r[k].as_f64(), "{k} of {}", r["code"]);
        }
        for k in ["office_share_pct", "share_of_province_pct"] {
            assert_eq!(p[k], r[k], "{k} of {}", r["code"]);
        }
    }
    // Completeness stated plainly: 16 units × 12 months expected, one December missing, one March late.
    let c = &fig["completeness"];
    assert_eq!(
        (c["expected"].as_i64(), c["received"].as_i64(), c["missing"].as_i64()),
        (Some(192), Some(191), Some(1))
    );
    assert_eq!(c["late"].as_i64(), Some(1));
    // Approval (已审核): January is approved for the whole province; February only for some counties.
    assert_eq!(c["approved_months"], serde_json::json!(["2024-01"]));
    assert!(html.contains("全省已审核月份：1月（共1个月）。"), "{html}");
    assert!(html.contains("Approved (已审核) months: 2024-01 (1 of 12)."), "{html}");
    // figures.csv carries the same share.
    let csv = std::fs::read_to_string(a.join("figures.csv")).unwrap();
    assert!(csv.contains("55.3"), "{csv}");
}

#[test]
fn publishing_lists_the_figures_the_outliers_rollup_flags_for_checking() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::outliers(dir.path());
    let d = data(&dir);
    // The county sees them before approving: `sifa query --rollup outliers`.
    let flagged = ok(sifa(&["query", "--data", d, "--rollup", "outliers", "--year", "2024", "--format", "json"]));
    let flagged: Vec<serde_json::Value> = serde_json::from_str(&flagged).unwrap();
    assert_eq!(flagged.len(), 19, "{flagged:?}");
    let out = dir.path().join("pub");
    publish(d, &out);
    let fig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("figures.json")).unwrap()).unwrap();
    let listed = fig["figures_to_check"].as_array().unwrap();
    assert_eq!(listed.len(), flagged.len());
    for (p, r) in listed.iter().zip(&flagged) {
        for k in ["unit_code", "period", "metric", "reason"] {
            assert_eq!(p[k], r[k], "{k}");
        }
        for k in ["value", "reference", "score", "threshold"] {
            assert_eq!(p[k].as_f64(), r[k].as_f64(), "{k} of {p}");
        }
    }
    // Flagged figures are published as reported: the typo's 250 is in the totals.
    let received =
        fig["office_totals"].as_array().unwrap().iter().find(|t| t["metric"] == "disputes_received").unwrap();
    assert!(received["value"].as_f64().unwrap() > 250.0);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<h2>待核实数据</h2>") && html.contains("<h2>Figures to check</h2>"), "{html}");
    assert!(html.contains("<td>370105002 制锦市街道司法所</td><td>2024-07</td><td>受理矛盾纠纷</td><td class=n>250</td><td>偏离本单位历史水平</td>"), "{html}");
    let csv = std::fs::read_to_string(out.join("figures.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.starts_with("to_check,")).count(), 19, "{csv}");
    assert!(
        csv.contains(
            "to_check,unit,370105005,泺口街道司法所,\"consultations 2024-12: far from the unit's own months \
             (far_from_history; reference 15, score 11.24, threshold 3.5)\",40,人次,"
        ),
        "{csv}"
    );
}
