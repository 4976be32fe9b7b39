//! `sifa demo`, end to end, on a small province (two counties of 甘肃省) and
//! on a small nation (`--national`, a county of each province): the
//! published figures must equal sums computed here from the books the demo
//! left on disk — each office's case ledger (CSV in UTF-8 or GBK, or .xlsx)
//! and each other unit's totals sheet — read without any of sifa's code
//! beyond text decoding.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use calamine::{Data, Reader};

/// Rows of a ledger or totals sheet as header → cell text.
fn sheet(path: &Path) -> Vec<BTreeMap<String, String>> {
    let rows: Vec<Vec<String>> = if path.extension().is_some_and(|e| e == "xlsx") {
        let mut wb = calamine::open_workbook_auto(path).unwrap();
        let name = wb.sheet_names()[0].clone();
        let range = wb.worksheet_range(&name).unwrap();
        range
            .rows()
            .map(|r| {
                r.iter()
                    .map(|c| match c {
                        Data::String(s) => s.clone(),
                        Data::Float(f) => f.to_string(),
                        Data::Int(i) => i.to_string(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect()
    } else {
        let (text, _) = sifa_proto::text::decode(&std::fs::read(path).unwrap()).unwrap();
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
        r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect()
    };
    let header = rows[0].clone();
    rows[1..].iter().map(|r| header.iter().cloned().zip(r.iter().cloned()).collect()).collect()
}

#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Resolved {
    offices: u64,
    all: u64,
}

/// Runs `sifa demo ARGS --dir DIR` and returns what it printed; it must succeed, with TLS.
fn run_demo(args: &[&str], demo: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sifa")).arg("demo").args(args).arg("--dir").arg(demo).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("kill -9 the county aggregator"), "{stdout}");
    assert!(stdout.contains("is back online"), "{stdout}");
    assert!(stdout.contains("listening on https://"), "the demo runs with TLS: {stdout}");
    stdout
}

/// Sums the books the demo left, per county, city, province and nation, from the registry the demo
/// wrote; returns them and how many reporting units there are.
fn books_by_area(demo: &Path) -> (BTreeMap<String, Resolved>, u64) {
    let registry = sifa_proto::Registry::load(&demo.join("registry.csv")).unwrap();
    let mut by_area: BTreeMap<String, Resolved> = BTreeMap::new();
    let mut units = 0;
    for entry in std::fs::read_dir(demo.join("offices")).unwrap() {
        let unit_dir = entry.unwrap().path();
        let code = unit_dir.file_name().unwrap().to_string_lossy().into_owned();
        let unit = registry.get(&code).unwrap();
        units += 1;
        let file = |prefix: &str| {
            std::fs::read_dir(&unit_dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        };
        let resolved = match file("台账_") {
            // An office: one ledger row per case; 人民调解 rows with 调解成功 are resolved disputes.
            Some(ledger) => Resolved {
                offices: sheet(&ledger).iter().filter(|r| r["类别"] == "人民调解" && r["结果"] == "调解成功").count()
                    as u64,
                all: 0,
            },
            // Another reporting unit: the 调解成功 column of its monthly totals.
            None => Resolved {
                offices: 0,
                all: sheet(&file("月度汇总_").unwrap()).iter().map(|r| r["调解成功"].parse::<u64>().unwrap()).sum(),
            },
        };
        let l = registry.lineage(&code);
        for area in [l.nation, l.province, l.city, l.county].into_iter().flatten() {
            let a = by_area.entry(area.code.to_string()).or_default();
            a.offices += resolved.offices;
            a.all += resolved.offices + resolved.all;
        }
        assert!(unit.kind.is_reporting());
    }
    (by_area, units)
}

/// Checks the published figures.json against the books: the root `root`, and every `below` level's
/// areas (e.g. "provinces", "cities", "counties"). Returns the figures.
fn check_published(demo: &Path, root: &str, below: &[&str]) -> serde_json::Value {
    let (by_area, units) = books_by_area(demo);
    let fig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("publish/figures.json")).unwrap()).unwrap();
    let check = |area: &serde_json::Value| {
        let code = area["code"].as_str().unwrap();
        let want = by_area[code];
        assert_eq!(area["office_resolved"].as_f64().unwrap(), want.offices as f64, "{code}");
        assert_eq!(area["all_resolved"].as_f64().unwrap(), want.all as f64, "{code}");
        let share = (1000.0 * want.offices as f64 / want.all as f64).round() / 10.0;
        assert_eq!(area["office_share_pct"].as_f64().unwrap(), share, "{code}");
    };
    check(&fig["root"]);
    assert_eq!(fig["root"]["code"], root);
    let areas: Vec<&serde_json::Value> = below.iter().flat_map(|level| fig[level].as_array().unwrap()).collect();
    assert_eq!(areas.len() + 1, by_area.len(), "every area with reporting units is published");
    for a in areas {
        check(a);
    }
    // Every unit reported every month of the year, none missing.
    assert_eq!(fig["completeness"]["expected"], units * 12);
    assert_eq!(fig["completeness"]["received"], units * 12);
    assert_eq!(fig["completeness"]["missing"], 0);
    fig
}

#[test]
fn the_demo_publishes_exactly_what_the_books_say() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    run_demo(&["--counties", "2"], &demo);
    let fig = check_published(&demo, "62", &["cities", "counties"]);
    assert!(fig.get("provinces").is_none(), "a province's figures have no provinces");
    // The page is there and names the headline.
    let html = std::fs::read_to_string(demo.join("publish/index.html")).unwrap();
    assert!(html.contains("甘肃省"), "index.html names the province");

    // Rerunning replaces the previous demo; an unrelated directory is never cleared.
    let stranger = dir.path().join("mine");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("thesis.docx"), "precious").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sifa")).args(["demo", "--dir"]).arg(&stranger).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not made by `sifa demo`"), "{out:?}");
    assert!(stranger.join("thesis.docx").exists());
}

/// `sifa demo --national`: 甘肃省 and 辽宁省 (a county each) forward into the national tier over mutual
/// TLS; the nation's store holds exactly the two provinces' rows, and its published figures (the
/// nation, each province, city and county) equal the books.
#[test]
fn the_national_demo_runs_two_provinces_into_the_nation() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let stdout = run_demo(&["--national", "--counties", "1"], &demo);
    for line in [
        "100000 中华人民共和国司法部: provinces 62 甘肃省, 21 辽宁省; 2 counties",
        "nation aggregator 中华人民共和国司法部 listening on https://",
        "2 province, 3 city and 2 county aggregators listening",
        "exact: the nation holds",
        "exact: the nation store holds the very rows of its provinces' stores",
        "年，全国司法所调解成功矛盾纠纷",
        "占全国调解成功总量",
        "── 各省合计 Totals per province",
    ] {
        assert!(stdout.contains(line), "want {line:?} in:\n{stdout}");
    }
    let fig = check_published(&demo, "100000", &["provinces", "cities", "counties"]);
    assert_eq!(fig["root_level"], "nation");
    let provinces: Vec<&str> =
        fig["provinces"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(provinces, ["辽宁省", "甘肃省"]);
    let html = std::fs::read_to_string(demo.join("publish/index.html")).unwrap();
    assert!(html.contains("全国") && html.contains("各省（区、市）"), "index.html names the nation and its provinces");
    // Each province's own store was written by a province tier under the nation.
    assert!(demo.join("provinces/62/data/store.toml").exists() && demo.join("provinces/21/data/store.toml").exists());
}
