//! Messy and hostile books through the real `sifa-agent` binary: each case
//! either is read as Excel shows it or is refused with a message naming the
//! file, the row or cell and what to do; none changes a figure unseen.
//! (Delivery is to an address nothing listens on: the office is offline.)

mod common;
use common::*;

use std::path::Path;

use sifa_agent::dates::Day;
use sifa_sim::xlsx_writer::{self, XCell, XSheet};

fn t(s: &str) -> XCell {
    XCell::Text(s.into())
}

fn day(m: i64, d: i64) -> XCell {
    XCell::Date(Day::new(2024, m, d).unwrap())
}

const HEADERS: [&str; 7] = ["序号", "日期", "类别", "事项", "结果", "人数", "备注"];

fn case(seq: f64, date: XCell, kind: XCell, outcome: &str, people: f64) -> Vec<XCell> {
    vec![XCell::Number(seq), date, kind, t("事项"), t(outcome), XCell::Number(people), XCell::Empty]
}

/// Rows 2..: January two mediations (one resolved), February a consultation of 3 and a resolved mediation.
fn good_rows() -> Vec<Vec<XCell>> {
    vec![
        Vec::from(HEADERS.map(t)),
        case(1.0, day(1, 5), t("人民调解"), "调解成功", 2.0),
        case(2.0, day(1, 20), t("人民调解"), "调解不成功", 2.0),
        case(3.0, day(2, 3), t("法律咨询"), "已解答", 3.0),
        case(4.0, day(2, 10), t("人民调解"), "调解成功", 2.0),
    ]
}

fn sheet<'a>(name: &'a str, rows: &'a [Vec<XCell>]) -> XSheet<'a> {
    XSheet { name, rows, hidden: false, merged: &[] }
}

#[test]
fn a_hidden_sheet_placed_first_is_not_read_and_the_sheet_read_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A leftover template, hidden, with rows that would count in January.
    let template = vec![
        Vec::from(HEADERS.map(t)),
        case(1.0, day(1, 2), t("人民调解"), "调解成功", 1.0),
        case(2.0, day(1, 3), t("人民调解"), "调解成功", 1.0),
        case(3.0, day(1, 4), t("人民调解"), "调解成功", 1.0),
    ];
    let rows = good_rows();
    xlsx_writer::write_sheets(
        &dir.path().join("台账.xlsx"),
        &[XSheet { hidden: true, ..sheet("模板", &template) }, sheet("2024年", &rows)],
    )
    .unwrap();
    let cfg = write_config(dir.path(), "台账.xlsx", |_| {});
    let (out, _) = ok(&agent(&["check"], &cfg));
    assert!(out.contains("台账.xlsx, worksheet \"2024年\": 4 row(s)"), "{out}");
    let f = figures(&out);
    assert_eq!(f["2024-01"], "disputes_mediated=2 disputes_resolved=1 consultations=0", "{out}");
    assert_eq!(f["2024-02"], "disputes_mediated=1 disputes_resolved=1 consultations=3", "{out}");

    // Configured, the hidden sheet is read: the clerk asked for it.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("path = \"台账.xlsx\"", "path = \"台账.xlsx\"\nsheet = \"模板\""),
    )
    .unwrap();
    let (out, _) = ok(&agent(&["check"], &cfg));
    assert!(out.contains("worksheet \"模板\": 3 row(s)"), "{out}");
    assert_eq!(figures(&out)["2024-01"], "disputes_mediated=3 disputes_resolved=3 consultations=0", "{out}");
}

#[test]
fn a_merged_range_counts_in_every_row_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    // 类别 merged over rows 2 to 4 (C2:C4), as a clerk merges a run of the same category.
    let rows = vec![
        Vec::from(HEADERS.map(t)),
        case(1.0, day(1, 5), t("人民调解"), "调解成功", 2.0),
        case(2.0, day(1, 20), XCell::Empty, "调解不成功", 2.0),
        case(3.0, day(2, 10), XCell::Empty, "调解成功", 2.0),
        case(4.0, day(2, 3), t("法律咨询"), "已解答", 3.0),
    ];
    xlsx_writer::write_sheets(
        &dir.path().join("台账.xlsx"),
        &[XSheet { merged: &["C2:C4"], ..sheet("2024年", &rows) }],
    )
    .unwrap();
    let cfg = write_config(dir.path(), "台账.xlsx", |_| {});
    let (out, _) = ok(&agent(&["check"], &cfg));
    let f = figures(&out);
    assert_eq!(f["2024-01"], "disputes_mediated=2 disputes_resolved=1 consultations=0", "{out}");
    assert_eq!(f["2024-02"], "disputes_mediated=1 disputes_resolved=1 consultations=3", "{out}");
}

#[test]
fn a_number_merged_down_rows_is_not_counted_once_per_row() {
    let dir = tempfile::tempdir().unwrap();
    // 人数 merged over two consultations (F2:F3): one figure, 3, not 3 for each row.
    let mut rows = vec![
        Vec::from(HEADERS.map(t)),
        case(1.0, day(2, 3), t("法律咨询"), "已解答", 3.0),
        case(2.0, day(2, 4), t("法律咨询"), "已解答", 0.0),
    ];
    rows[2][5] = XCell::Empty;
    xlsx_writer::write_sheets(
        &dir.path().join("台账.xlsx"),
        &[XSheet { merged: &["F2:F3"], ..sheet("2024年", &rows) }],
    )
    .unwrap();
    let cfg = write_config(dir.path(), "台账.xlsx", |_| {});
    let out = agent(&["check"], &cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("consultations=6"), "the merged figure was counted twice:\n{stdout}");
}

#[test]
fn a_formula_without_a_saved_result_is_refused_naming_the_cell() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = good_rows();
    rows[3][2] = XCell::Formula("VLOOKUP(D4,类别表!A:B,2,0)".into());
    xlsx_writer::write(&dir.path().join("台账.xlsx"), "2024年", &rows).unwrap();
    let cfg = write_config(dir.path(), "台账.xlsx", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(
        err.contains("台账.xlsx: worksheet \"2024年\": the formula cell(s) C4 have no saved result")
            && err.contains("open the book in Excel and save it"),
        "{err}"
    );
    assert!(figures(&out).is_empty(), "no month goes out with a category unknown:\n{out}");
}

#[test]
fn two_columns_with_one_header_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("台账.csv"),
        "序号,日期,类别,事项,结果,人数,类别\n1,2024-01-05,人民调解,邻里纠纷,调解成功,2,法律咨询\n",
    )
    .unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("columns C and G are both headed \"类别\" (row 1)"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
}

#[test]
fn a_fraction_in_a_count_is_refused_naming_its_row() {
    let dir = tempfile::tempdir().unwrap();
    // 1.5 + 0.5 = 2 persons: a whole sum of impossible values.
    std::fs::write(
        dir.path().join("台账.csv"),
        "序号,日期,类别,事项,结果,人数,备注\n1,2024-01-05,法律咨询,咨询,已解答,1.5,\n2,2024-01-06,法律咨询,咨询,已解答,0.5,\n3,2024-02-06,法律咨询,咨询,已解答,1,\n",
    )
    .unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("row 2, column 人数 (value \"1.5\"): is not a whole number"), "{err}");
    assert!(err.contains("row 3, column 人数 (value \"0.5\"): is not a whole number"), "{err}");
    assert!(out.contains("2024-01 HELD BACK"), "{out}");
    assert_eq!(figures(&out)["2024-02"], "disputes_mediated=0 disputes_resolved=0 consultations=1", "{out}");
}

const LEDGER_HEAD: &str = "序号,日期,类别,事项,结果,人数,备注\n";

/// `n` mediations, spread over January to March.
fn mediations(n: usize) -> String {
    let mut s = LEDGER_HEAD.to_string();
    for i in 0..n {
        s += &format!("{},2024-{:02}-{:02},人民调解,纠纷,调解成功,2,\n", i + 1, i % 3 + 1, i % 28 + 1);
    }
    s
}

#[test]
fn an_emptied_ledger_is_held_for_confirmation_and_sent_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("台账.csv");
    std::fs::write(&ledger, mediations(30)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    ok(&agent(&["push", "--once"], &cfg));
    let outbox = dir.path().join("outbox");
    let first = vec![("2024-01".to_string(), 1), ("2024-02".into(), 1), ("2024-03".into(), 1)];
    assert_eq!(queue(&outbox), first);

    // Wiped: only the header is left. Nothing new is queued, and the clerk is told why and what to do.
    std::fs::write(&ledger, LEDGER_HEAD).unwrap();
    let (out, _) = ok(&agent(&["push", "--once"], &cfg));
    assert_eq!(queue(&outbox), first, "{out}");
    assert!(out.contains("台账.csv has 0 row(s) below its header, where it had 30"), "{out}");
    assert!(out.contains("2024-02: every figure would become 0"), "{out}");
    assert!(out.contains("--confirm-drop"), "{out}");
    assert!(out.contains("held back 2024-01"), "{out}");
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(out.contains("push would hold this for confirmation: "), "{out}\n{err}");
    let (status, _) = ok(&agent(&["status"], &cfg));
    assert!(status.contains("Held for confirmation: figures would fall away: "), "{status}");

    // Confirmed: the months go out as zeros, once.
    ok(&agent(&["push", "--once", "--confirm-drop"], &cfg));
    let second: Vec<(String, u64)> = first.iter().flat_map(|(p, _)| [(p.clone(), 1), (p.clone(), 2)]).collect();
    assert_eq!(queue(&outbox), second);
    ok(&agent(&["push", "--once"], &cfg));
    assert_eq!(queue(&outbox), second, "nothing more to confirm or send");
}

#[test]
fn a_ledger_cut_short_at_a_row_boundary_is_held_for_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("台账.csv");
    std::fs::write(&ledger, mediations(30)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    ok(&agent(&["push", "--once"], &cfg));
    // A copy that stopped after 10 rows: every month still has cases, fewer.
    let cut: String = mediations(30).lines().take(11).map(|l| format!("{l}\n")).collect();
    std::fs::write(&ledger, cut).unwrap();
    let (out, _) = ok(&agent(&["push", "--once"], &cfg));
    assert!(out.contains("台账.csv has 10 row(s) below its header, where it had 30"), "{out}");
    assert_eq!(queue(&dir.path().join("outbox")).len(), 3, "nothing new queued:\n{out}");
    // A ledger that grows is no drop.
    std::fs::write(&ledger, mediations(33)).unwrap();
    let (out, _) = ok(&agent(&["push", "--once"], &cfg));
    assert!(!out.contains("held for confirmation"), "{out}");
    assert_eq!(queue(&dir.path().join("outbox")).len(), 6, "{out}");
}

#[test]
fn rows_dated_outside_the_months_reported_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}5,2023-01-09,人民调解,纠纷,调解成功,2,\n", mediations(4));
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (_, err) = ok(&agent(&["check"], &cfg));
    assert!(
        err.contains(
            "1 row(s) dated outside the months reported (2024-01 to 2024-03) are not counted: row 6 (2023-01-09)"
        ),
        "{err}"
    );
}

/// A GBK ledger of 50 rows (row 1 the header).
fn gbk_ledger() -> Vec<u8> {
    let mut s = LEDGER_HEAD.to_string();
    for i in 2..=50 {
        s += &format!("{i},2024-01-{:02},人民调解,邻里纠纷,调解成功,2,\n", i % 28 + 1);
    }
    encoding_rs::GBK.encode(&s).0.into_owned()
}

#[test]
fn an_undecodable_cell_is_named_by_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gbk_ledger();
    // Row 45's 事项 gets a byte that is no GBK character.
    let row45 = encoding_rs::GBK.encode("45,2024-01-18,人民调解,邻里纠纷").0.into_owned();
    let at = bytes.windows(row45.len()).position(|w| w == row45.as_slice()).unwrap() + row45.len() - 2;
    bytes[at] = 0xFF;
    std::fs::write(dir.path().join("台账.csv"), bytes).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("台账.csv, row 45, column 事项 (value \"bytes "), "{err}");
    assert!(err.contains("neither UTF-8 nor GBK"), "{err}");
    // Its date is readable: its month alone is held back.
    assert!(out.contains("2024-01 HELD BACK"), "{out}");
    assert_eq!(figures(&out)["2024-02"], "disputes_mediated=0 disputes_resolved=0 consultations=0", "{out}");
}

#[test]
fn a_ledger_in_two_encodings_is_refused_naming_a_row_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gbk_ledger();
    bytes.extend_from_slice("51,2024-01-20,人民调解,邻里纠纷,调解成功,2,\n".as_bytes());
    std::fs::write(dir.path().join("台账.csv"), bytes).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("mixes two encodings: row 51 is UTF-8 text and row 1 is GBK"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
}

#[test]
fn an_unclosed_quote_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let text = mediations(6).replacen("人民调解,纠纷,调解成功,2,\n4,", "人民调解,\"纠纷,调解成功,2,\n4,", 1);
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("row 4 has a quote mark (\") that opens a cell and is never closed"), "{err}");
    assert!(!err.contains("date is empty"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
}

#[test]
fn a_lone_quote_inside_the_last_rows_text_is_text_not_an_unclosed_cell() {
    let dir = tempfile::tempdir().unwrap();
    // 5" (five inches) in the last row's note: a quote that does not open its cell.
    let text = format!("{}6,2024-01-20,人民调解,纠纷,调解成功,2,屏幕5\"\n", mediations(5));
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let out = agent(&["check"], &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("quote mark"), "{stderr}");
    assert!(figures(&String::from_utf8_lossy(&out.stdout)).contains_key("2024-01"));
}

#[test]
fn check_prints_each_problem_once_and_exits_with_1() {
    let dir = tempfile::tempdir().unwrap();
    // 结果 is missing: two mappings need it, three months are held.
    std::fs::write(dir.path().join("台账.csv"), mediations(6).replace(",结果,", ",处理结果,")).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let out = agent(&["check"], &cfg);
    let (stdout, err) = found_problems(&out);
    assert_eq!(err.matches("has no column \"结果\"").count(), 1, "{err}");
    assert!(err.contains("the mapping for disputes_mediated, disputes_resolved needs it"), "{err}");
    assert_eq!(stdout.matches("HELD BACK (problems below)").count(), 3, "{stdout}");
    assert!(!stdout.contains("has no column"), "not repeated under each month:\n{stdout}");
    assert!(err.contains("error: the books have 1 problem(s), 3 month(s) held back"), "{err}");
}

/// A workbook whose one sheet holds `rows` ledger rows (about 100 bytes of XML each).
fn big_workbook(path: &Path, rows: usize) {
    let mut all = vec![Vec::from(HEADERS.map(t))];
    for i in 0..rows {
        all.push(case(i as f64, day(1, 5), t("人民调解"), "调解成功", 2.0));
    }
    xlsx_writer::write(path, "2024年", &all).unwrap();
}

#[test]
fn a_workbook_that_expands_past_the_limit_is_refused_naming_it_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    big_workbook(&dir.path().join("台账.xlsx"), 20_000);
    let small = std::fs::metadata(dir.path().join("台账.xlsx")).unwrap().len();
    assert!(small < 1 << 20, "compressed it is under the limit: {small} bytes");
    let cfg = write_config(dir.path(), "台账.xlsx", |c| c.max_ledger_mb = 1);
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("台账.xlsx: expands to "), "{err}");
    assert!(err.contains("more than the 1 MB one ledger may take (max_ledger_mb"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
    // Under a higher limit the same book is read.
    let cfg = write_config(dir.path(), "台账.xlsx", |c| c.max_ledger_mb = 64);
    let (out, _) = ok(&agent(&["check"], &cfg));
    assert_eq!(figures(&out)["2024-01"], "disputes_mediated=20000 disputes_resolved=20000 consultations=0");
}

#[test]
fn a_csv_over_the_limit_is_refused_naming_it_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("台账.csv"), mediations(30_000)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |c| c.max_ledger_mb = 1);
    let (_, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("台账.csv: is ") && err.contains(" MB, more than the 1 MB one ledger may take"), "{err}");
}

#[test]
fn a_ledger_that_keeps_changing_while_it_is_read_is_named_and_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("台账.csv");
    std::fs::write(&ledger, mediations(50_000)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    // A sync tool rewriting the file while the agent reads it, for longer than its three attempts.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, ledger) = (stop.clone(), ledger.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let mut f = std::fs::OpenOptions::new().append(true).open(&ledger).unwrap();
                std::io::Write::write_all(&mut f, format!("{n},2024-01-05,人民调解,纠纷,调解成功,2,\n").as_bytes())
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let out = agent(&["check"], &cfg);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let (out, err) = found_problems(&out);
    assert!(err.contains("台账.csv: changed while it was read, 3 times in a row"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
}

#[test]
fn without_first_period_a_row_in_a_stray_year_is_named_and_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    // 2014 for 2024: counted, it would make the agent report every month since March 2014.
    let text = format!("{}31,2014-03-05,人民调解,纠纷,调解成功,2,\n", mediations(30));
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace("first_period = \"2024-01\"\n", "")).unwrap();
    let (out, err) = ok(&agent(&["check"], &cfg));
    assert_eq!(figures(&out).keys().collect::<Vec<_>>(), ["2024-01", "2024-02", "2024-03"], "{out}");
    assert!(
        err.contains("1 row(s) dated in 2014, far from the ledger's other rows, are not counted: row 32 (2014-03-05)"),
        "{err}"
    );
}
