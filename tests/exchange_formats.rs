//! `sifa publish` writes the year's figures as SDMX-CSV 2.0 and IHE ADX, and
//! outside tools read them: pysdmx's SDMX-CSV 2.0 reader, and lxml validating
//! the ADX message against an ADX schema (tests/peers/adx.xsd). The numbers
//! they read are figures.json's. The readers are the pinned versions of
//! tests/peers/requirements.txt, provisioned by the test itself.

#[path = "../queries/tests/fixtures/mod.rs"]
mod fixtures;
mod support;

use std::collections::BTreeSet;
use std::process::Command;

const READ: &str = r#"
import sys
from pysdmx.io.csv.sdmx20.reader import read
from lxml import etree
out, xsd = sys.argv[1], sys.argv[2]
datasets = read(open(out + "/figures.sdmx.csv", encoding="utf-8").read())
for d in datasets:
    print("sdmx dataset", d.short_urn, d.action)
    for r in d.data.itertuples(index=False):
        print("sdmx", r.REF_AREA, r.REPORTING_UNITS, r.TIME_PERIOD, r.INDICATOR, r.OBS_VALUE, r.UNIT_MEASURE)
schema = etree.XMLSchema(etree.parse(xsd))
doc = etree.parse(out + "/figures.adx.xml")
schema.assertValid(doc)
ns = {"adx": "urn:ihe:qrph:adx:2015"}
print("adx exported", doc.getroot().get("exported"))
for g in doc.getroot().iterfind("adx:group", ns):
    for v in g.iterfind("adx:dataValue", ns):
        print("adx", g.get("orgUnit"), g.get("REPORTING_UNITS"), g.get("period"), v.get("dataElement"), v.get("value"), v.get("UNIT_MEASURE"))
# The schema is no rubber stamp: a data value without its data element is refused.
bad = etree.fromstring(b'<adx xmlns="urn:ihe:qrph:adx:2015" exported="2025-01-01T00:00:00Z"><group orgUnit="37" period="2024-01-01/P1Y" dataSet="X"><dataValue value="1"/></group></adx>')
print("check: ADX schema refuses a value without dataElement:", not schema.validate(bad))
"#;

/// (area, reporting units, statistic, value) as figures.json states them.
fn expected(fig: &serde_json::Value) -> BTreeSet<(String, String, String, String)> {
    let root = fig["root"]["code"].as_str().unwrap().to_string();
    let num = |v: &serde_json::Value| format!("{}", v.as_f64().unwrap());
    let mut out = BTreeSet::new();
    for t in fig["office_totals"].as_array().unwrap() {
        out.insert((root.clone(), "OFFICES".into(), t["metric"].as_str().unwrap().into(), num(&t["value"])));
    }
    let areas = std::iter::once(&fig["root"])
        .chain(fig["cities"].as_array().unwrap())
        .chain(fig["counties"].as_array().unwrap());
    for a in areas {
        let code = a["code"].as_str().unwrap().to_string();
        out.insert((code.clone(), "ALL".into(), "disputes_resolved".into(), num(&a["all_resolved"])));
        out.insert((code, "OFFICES".into(), "disputes_resolved".into(), num(&a["office_resolved"])));
    }
    out
}

#[test]
fn sdmx_csv_and_adx_are_read_by_outside_tools_with_figures_jsons_numbers() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::province(dir.path());
    let out = dir.path().join("pub");
    let run = Command::new(env!("CARGO_BIN_EXE_sifa"))
        .args(["publish", "--data", dir.path().to_str().unwrap(), "--year", "2024", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let fig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("figures.json")).unwrap()).unwrap();

    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/adx.xsd");
    let read = Command::new(support::peers::python()).arg("-c").arg(READ).arg(&out).arg(xsd).output().unwrap();
    let stderr = String::from_utf8_lossy(&read.stderr);
    assert!(read.status.success(), "reading the exchange files with pysdmx and lxml failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&read.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"sdmx dataset Dataflow=SIFA:JUDICIAL_OFFICE_FIGURES(2024.2) Information"), "{stdout}");
    assert!(lines.contains(&"check: ADX schema refuses a value without dataElement: True"), "{stdout}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("sdmx dataset")).count(), 1, "{stdout}");
    // exported: when the newest revision of 2024 was received (December's reports, 2 January 2025 10:00 CST).
    assert!(lines.contains(&format!("adx exported {}", fig["data_as_of"].as_str().unwrap()).as_str()), "{stdout}");
    assert_eq!(fig["data_as_of"], "2025-01-02T02:00:00Z");

    let want = expected(&fig);
    let unit_of = |metric: &str| {
        fig["definitions"].as_array().unwrap().iter().find(|d| d["code"] == metric).unwrap()["unit"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (tag, period) in [("sdmx", "2024"), ("adx", "2024-01-01/P1Y")] {
        let mut got = BTreeSet::new();
        let observations = lines.iter().filter(|l| {
            l.starts_with(&format!("{tag} ")) && !l.starts_with("sdmx dataset") && !l.starts_with("adx exported")
        });
        for l in observations {
            let w: Vec<&str> = l.split(' ').collect();
            assert_eq!(w.len(), 7, "{l}");
            assert_eq!(w[3], period, "{l}");
            assert_eq!(w[6], unit_of(w[4]), "the catalog's unit of {}: {l}", w[4]);
            let value: f64 = w[5].parse().unwrap();
            assert!(
                got.insert((w[1].to_string(), w[2].to_string(), w[4].to_string(), format!("{value}"))),
                "{l} twice"
            );
        }
        assert_eq!(got, want, "{tag} holds figures.json's numbers");
    }
    // The registry's codes and the catalog's: the province, a county, every statistic the offices reported.
    assert!(want.contains(&("37".into(), "ALL".into(), "disputes_resolved".into(), "1497288".into())));
    assert!(want.contains(&("370102".into(), "OFFICES".into(), "disputes_resolved".into(), "343200".into())));
    assert!(want.iter().any(|(_, _, m, _)| m == "fengqiao_style"));
}
