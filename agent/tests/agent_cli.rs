//! The `sifa-agent` binary on real files: ledgers in UTF-8, GBK and .xlsx,
//! malformed rows, revisions, and the outbox across restarts and kill -9.
//! Delivery here is to an address nothing listens on (the office is
//! offline); delivery to a real aggregator is tests/agent_e2e.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sifa_agent::config::{ConfigFile, TotalsSource};
use sifa_proto::Registry;
use sifa_proto::tls::TlsConfig;
use sifa_sim::synth::{self, LedgerFormat, SynthSpec};

mod common;
use common::*;

#[test]
fn the_office_agent_ships_no_demo_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_sifa-agent")).args(["synth", "--help"]).output().unwrap();
    assert!(!out.status.success(), "demo books are `sifa sim books`, not the agent's");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand 'synth'"), "{out:?}");
}

/// A hand-written ledger with a title row above the headers, dates in four
/// styles, and (when `bad`) a consultation whose 人数 reads "两人".
fn hand_ledger(bad: bool) -> String {
    format!(
        "沙州镇司法所工作台账（2024年）\r\n序号,日期,类别,事项,结果,人数,备注\r\n\
1,2024-01-05,人民调解,邻里纠纷,调解成功,2,\r\n\
2,2024/1/20,人民调解,婚姻家庭纠纷,调解不成功,2,引导诉讼\r\n\
3,2024年2月3日,法律咨询,劳动报酬咨询,已解答,3,\r\n\
4,20240210,人民调解,土地承包纠纷,调解成功,2,\r\n\
5,2024-03-02,法律咨询,继承咨询,已解答,{},\r\n\
6,2024-03-09,人民调解,合同纠纷,调解成功,2,\r\n",
        if bad { "两人" } else { "2" }
    )
}

#[test]
fn a_hand_written_ledger_in_utf8_and_gbk_is_counted_by_the_mapping() {
    // GBK as Excel on Chinese Windows saves "CSV", UTF-8 with the BOM of "CSV UTF-8", and plain UTF-8.
    for encoding in ["gbk", "utf-8 bom", "utf-8"] {
        let dir = tempfile::tempdir().unwrap();
        let text = hand_ledger(false);
        let bytes = match encoding {
            "gbk" => encoding_rs::GBK.encode(&text).0.into_owned(),
            "utf-8 bom" => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
            _ => text.into_bytes(),
        };
        std::fs::write(dir.path().join("台账.csv"), bytes).unwrap();
        let cfg = write_config(dir.path(), "台账.csv", |_| {});
        let (out, _) = ok(&agent(&["check"], &cfg));
        let f = figures(&out);
        assert_eq!(f["2024-01"], "disputes_mediated=2 disputes_resolved=1 consultations=0", "{encoding}\n{out}");
        assert_eq!(f["2024-02"], "disputes_mediated=1 disputes_resolved=1 consultations=3");
        assert_eq!(f["2024-03"], "disputes_mediated=1 disputes_resolved=1 consultations=2");
    }
}

#[test]
fn a_bad_row_is_named_holds_back_its_month_only_and_is_sent_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("台账.csv");
    std::fs::write(&ledger, hand_ledger(true)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = ok(&agent(&["push", "--once"], &cfg));
    // The problem names the file, the row as Excel numbers it, the column and the value.
    assert!(
        err.contains(
            "台账.csv, row 7, column 人数 (value \"两人\"): is not a number; consultations adds up this column"
        ),
        "{err}"
    );
    assert!(out.contains("held back 2024-03"), "{out}");
    let outbox = dir.path().join("outbox");
    assert_eq!(queue(&outbox), [("2024-01".into(), 1), ("2024-02".into(), 1)]);
    let (status, _) = ok(&agent(&["status"], &cfg));
    assert!(status.contains("待发送 Waiting to be sent: 2"), "{status}");
    assert!(status.contains("Months held back until the ledger is fixed: 2024-03"), "{status}");
    assert!(status.contains("row 7, column 人数"), "{status}");
    assert!(status.contains("failed attempt(s) in a row"), "the offline attempt is shown:\n{status}");

    // Fixed: March goes out, January and February are unchanged and not sent again.
    std::fs::write(&ledger, hand_ledger(false)).unwrap();
    ok(&agent(&["push", "--once"], &cfg));
    assert_eq!(queue(&outbox), [("2024-01".into(), 1), ("2024-02".into(), 1), ("2024-03".into(), 1)]);
}

#[test]
fn skip_bad_rows_sends_the_rest_of_the_month() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("台账.csv"), hand_ledger(true)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |c| c.skip_bad_rows = true);
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("row 7"), "the problem is still reported: {err}");
    assert_eq!(figures(&out)["2024-03"], "disputes_mediated=1 disputes_resolved=1 consultations=0", "{out}");
}

#[test]
fn an_unreadable_date_or_a_missing_column_holds_back_every_month() {
    let dir = tempfile::tempdir().unwrap();
    let text = hand_ledger(false).replace("2024/1/20", "1月20日");
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("row 4, column 日期 (value \"1月20日\"): is not a date"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
    assert_eq!(out.matches("HELD BACK").count(), 3, "{out}");

    // A slip of the year: the row's month is unknown, so no month goes out with the row missing.
    let text = hand_ledger(false).replace("2024-03-09", "2042-03-09");
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("row 8, column 日期 (value \"2042-03-09\"): the date 2042-03-09 is in the future"), "{err}");
    assert_eq!(out.matches("HELD BACK").count(), 3, "{out}");

    let text = hand_ledger(false).replace(",结果,", ",处理结果,");
    std::fs::write(dir.path().join("台账.csv"), text).unwrap();
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("has no column \"结果\""), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
}

#[test]
fn a_report_the_validation_refuses_is_held_back_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("台账.csv"), hand_ledger(false)).unwrap();
    std::fs::write(
        dir.path().join("汇总.csv"),
        "月份,辖区村(社区)数,配备法律顾问的村(社区)数,星级评定\n2024-01,12,12,4\n2024-02,12,14,4\n",
    )
    .unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |c| c.totals = vec![TotalsSource::new("汇总.csv")]);
    let (out, _) = found_problems(&agent(&["check"], &cfg));
    let f = figures(&out);
    assert!(f["2024-01"].ends_with("villages_total=12 villages_with_adviser=12 star_rating=4"), "{out}");
    assert!(out.contains("2024-02 HELD BACK"), "{out}");
    assert!(out.contains("[adviser_villages_le_villages]"), "{out}");
    // February's stocks are refused, so March inherits them and is held back too.
    assert!(out.contains("2024-03 HELD BACK"), "{out}");
}

#[test]
fn synthesised_books_read_the_same_in_utf8_gbk_and_xlsx_and_match_their_rows() {
    let reg = Registry::demo();
    let unit = reg.get("620982101").unwrap();
    let mut outputs = Vec::new();
    for format in [LedgerFormat::CsvUtf8, LedgerFormat::CsvGbk, LedgerFormat::Xlsx] {
        let dir = tempfile::tempdir().unwrap();
        let spec = SynthSpec { format: Some(format), until_month: 6, ..SynthSpec::year(2024, 11) };
        let w =
            synth::write_office(dir.path(), unit, &spec, OFFLINE, Path::new("outbox"), &TlsConfig::insecure()).unwrap();
        if format == LedgerFormat::CsvGbk {
            assert!(std::str::from_utf8(&std::fs::read(&w.ledger).unwrap()).is_err(), "really GBK");
        }
        let (out, err) = ok(&agent(&["check"], &w.config));
        assert!(!err.contains("problem"), "{err}");
        outputs.push(figures(&out));
    }
    assert_eq!(outputs[0].len(), 6);
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    // Counted independently from the generated rows.
    let books = synth::books(unit, &SynthSpec { until_month: 6, ..SynthSpec::year(2024, 11) });
    for m in 1..=6u8 {
        let rows = books.cases.iter().filter(|r| r.day.month == m);
        let resolved = rows.clone().filter(|r| r.category == "人民调解" && r.outcome == "调解成功").count();
        let consult: u32 = rows.clone().filter(|r| r.category == "法律咨询").map(|r| r.people).sum();
        let line = &outputs[0][&format!("2024-{m:02}")];
        assert!(line.contains(&format!(" disputes_resolved={resolved} ")), "{line}");
        assert!(line.contains(&format!(" consultations={consult} ")), "{line}");
        assert!(line.contains(" office_area_m2=") && line.contains(" star_rating="), "{line}");
    }
}

#[test]
fn an_unchanged_month_sends_nothing_and_a_changed_one_gets_the_next_revision() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::demo();
    let unit = reg.get("620982102").unwrap();
    let spec = SynthSpec { format: Some(LedgerFormat::CsvUtf8), until_month: 3, ..SynthSpec::year(2024, 5) };
    let w = synth::write_office(dir.path(), unit, &spec, OFFLINE, Path::new("outbox"), &TlsConfig::insecure()).unwrap();
    let outbox = dir.path().join("outbox");
    ok(&agent(&["push", "--once"], &w.config));
    let first = queue(&outbox);
    assert_eq!(first, [("2024-01".into(), 1), ("2024-02".into(), 1), ("2024-03".into(), 1)]);
    let (out, _) = ok(&agent(&["push", "--once"], &w.config));
    assert!(out.contains("0 份新排队 newly queued, 3 个月无变化 unchanged"), "{out}");
    assert_eq!(queue(&outbox), first);
    // April appended, February corrected.
    let spec = SynthSpec { until_month: 4, corrections: vec![2], ..spec };
    synth::write_office(dir.path(), unit, &spec, OFFLINE, Path::new("outbox"), &TlsConfig::insecure()).unwrap();
    ok(&agent(&["push", "--once"], &w.config));
    assert_eq!(
        queue(&outbox),
        [
            ("2024-01".into(), 1),
            ("2024-02".into(), 1),
            ("2024-02".into(), 2),
            ("2024-03".into(), 1),
            ("2024-04".into(), 1)
        ]
    );
}

/// A totals sheet of `months` months from 2000-01, every value shifted by `k`.
fn write_big_totals(path: &Path, months: usize, k: usize) {
    let mut s = String::from("月份,法治讲座,专职人民调解员\n");
    let mut p: sifa_proto::Period = "2000-01".parse().unwrap();
    for i in 0..months {
        s += &format!("{p},{},{}\n", (i + k) % 50, k % 7 + 1);
        p = p.next();
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn kill_9_at_any_moment_never_reuses_a_revision_with_other_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = ConfigFile {
        last_period: Some("2019-12".into()),
        totals: vec![TotalsSource::new("totals.csv")],
        ..offline_config()
    };
    let cfg = write(dir.path(), &file);
    let outbox = dir.path().join("outbox");
    let months = 240;
    // Every (period, revision) ever seen in the queue, with its content.
    let mut seen: BTreeMap<(String, u64), Vec<u8>> = BTreeMap::new();
    let record = |seen: &mut BTreeMap<(String, u64), Vec<u8>>| {
        for q in sifa_agent::outbox::list_queue(&outbox).unwrap() {
            let content = sifa_agent::outbox::read_report(&q.path).expect("a queued file is whole");
            let digest = sifa_proto::validate::content_digest(&content).to_vec();
            let prev = seen.entry((q.period.clone(), q.revision)).or_insert_with(|| digest.clone());
            assert_eq!(*prev, digest, "{} rev {} was queued twice with different content", q.period, q.revision);
        }
    };
    let mut interrupted = 0;
    for k in 0..6usize {
        write_big_totals(&dir.path().join("totals.csv"), months, k);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sifa-agent"))
            .args(["push", "--once", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it while it is queueing: after it has queued something new, at a varying moment.
        let before = queue(&outbox).len();
        let t0 = Instant::now();
        while queue(&outbox).len() < before + 1 + k * 17 && t0.elapsed() < Duration::from_secs(30) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        if queue(&outbox).len() < before + months {
            interrupted += 1;
        }
        record(&mut seen);
    }
    assert!(interrupted >= 3, "only {interrupted} of 6 runs were killed while queueing");
    // A clean run completes the last version: every month's newest revision holds its final content.
    ok(&agent(&["push", "--once"], &cfg));
    record(&mut seen);
    let q = sifa_agent::outbox::list_queue(&outbox).unwrap();
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    for e in &q {
        let l = latest.entry(e.period.clone()).or_default();
        assert!(e.revision > *l, "revisions of {} in order and unique", e.period);
        *l = e.revision;
    }
    assert_eq!(latest.len(), months);
    let mut p: sifa_proto::Period = "2000-01".parse().unwrap();
    for i in 0..months {
        let e = q.iter().rfind(|e| e.period == p.to_string()).unwrap();
        let r = sifa_agent::outbox::read_report(&e.path).unwrap();
        assert_eq!(r.values["lectures"], ((i + 5) % 50) as f64, "{p}");
        assert_eq!(r.revision, e.revision);
        p = p.next();
    }
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(outbox.join("queue"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn an_xlsx_ledger_is_read_with_excel_dates_and_its_bad_row_is_named_by_excel_row_number() {
    use sifa_agent::dates::Day;
    use sifa_sim::xlsx_writer::{self, XCell};
    let t = |s: &str| XCell::Text(s.into());
    let day = |m: i64, d: i64| XCell::Date(Day::new(2024, m, d).unwrap());
    let case = |seq: f64, date: XCell, kind: &str, outcome: &str, people: XCell| {
        vec![XCell::Number(seq), date, t(kind), t("事项"), t(outcome), people, XCell::Empty]
    };
    let rows = vec![
        vec![t("沙州镇司法所工作台账（2024年）")],
        Vec::from(["序号", "日期", "类别", "事项", "结果", "人数", "备注"].map(t)),
        case(1.0, day(1, 5), "人民调解", "调解成功", XCell::Number(2.0)),
        case(2.0, t("2024/1/20"), "人民调解", "调解不成功", XCell::Number(2.0)),
        case(3.0, day(2, 3), "法律咨询", "已解答", XCell::Number(3.0)),
        case(4.0, day(2, 10), "人民调解", "调解成功", XCell::Number(2.0)),
        case(5.0, day(3, 2), "法律咨询", "已解答", t("两人")),
        case(6.0, day(3, 9), "人民调解", "调解成功", XCell::Number(2.0)),
    ];
    let dir = tempfile::tempdir().unwrap();
    xlsx_writer::write(&dir.path().join("台账.xlsx"), "2024年", &rows).unwrap();
    let cfg = write_config(dir.path(), "台账.xlsx", |_| {});
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    let f = figures(&out);
    assert_eq!(f["2024-01"], "disputes_mediated=2 disputes_resolved=1 consultations=0", "{out}");
    assert_eq!(f["2024-02"], "disputes_mediated=1 disputes_resolved=1 consultations=3", "{out}");
    assert!(!f.contains_key("2024-03"), "{out}");
    assert!(out.contains("2024-03 HELD BACK"), "{out}");
    // Row 7 as Excel shows it: the title is row 1, the headers row 2.
    assert!(err.contains("台账.xlsx, row 7, column 人数 (value \"两人\"): is not a number"), "{err}");
    // A worksheet that is not there is named with the ones that are.
    let cfg = write_config(dir.path(), "台账.xlsx", |c| c.ledger[0].sheet = Some("2023年".into()));
    let (_, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("has no worksheet \"2023年\"; its worksheets are: 2024年"), "{err}");
}

/// A config reading one totals sheet only, reporting 2024-01 to 2024-04.
fn totals_only_config(dir: &Path, totals: &str) -> PathBuf {
    let file =
        ConfigFile { last_period: Some("2024-04".into()), totals: vec![TotalsSource::new(totals)], ..offline_config() };
    write(dir, &file)
}

#[test]
fn a_totals_only_office_reports_exactly_the_months_its_sheet_fills_in() {
    let dir = tempfile::tempdir().unwrap();
    // Headed by catalog codes and Chinese names alike; March prepared but not filled in yet;
    // the stock (专职人民调解员) given in January only carries into February.
    std::fs::write(
        dir.path().join("汇总.csv"),
        "月份,lectures,法律咨询,专职人民调解员,备注\n2024年1月,3,10,2,\n2024年2月,1,,,春节\n2024年3月,,,,\n",
    )
    .unwrap();
    let cfg = totals_only_config(dir.path(), "汇总.csv");
    let (out, err) = ok(&agent(&["check"], &cfg));
    assert!(!err.contains("problem"), "{err}");
    let f = figures(&out);
    assert_eq!(f.keys().collect::<Vec<_>>(), ["2024-01", "2024-02"], "{out}");
    assert_eq!(f["2024-01"], "consultations=10 lectures=3 mediators_fulltime=2", "{out}");
    assert_eq!(f["2024-02"], "lectures=1 mediators_fulltime=2", "{out}");
    ok(&agent(&["push", "--once"], &cfg));
    assert_eq!(queue(&dir.path().join("outbox")), [("2024-01".into(), 1), ("2024-02".into(), 1)]);

    // March filled in: March alone is queued, and it inherits the stock.
    std::fs::write(
        dir.path().join("汇总.csv"),
        "月份,lectures,法律咨询,专职人民调解员,备注\n2024年1月,3,10,2,\n2024年2月,1,,,春节\n2024年3月,0,4,,\n",
    )
    .unwrap();
    let (out, _) = ok(&agent(&["push", "--once"], &cfg));
    assert!(out.contains("1 份新排队 newly queued, 2 个月无变化 unchanged"), "{out}");
    let q = sifa_agent::outbox::list_queue(&dir.path().join("outbox")).unwrap();
    let march = sifa_agent::outbox::read_report(&q[2].path).unwrap();
    assert_eq!((march.period.as_str(), march.revision), ("2024-03", 1));
    assert_eq!(march.values["mediators_fulltime"], 2.0);
    assert_eq!(march.values["consultations"], 4.0);

    // A header that is neither a code nor a name is named, and holds every month back.
    std::fs::write(dir.path().join("汇总.csv"), "月份,法治讲座次数\n2024-01,3\n").unwrap();
    let (out, err) = found_problems(&agent(&["check"], &cfg));
    assert!(err.contains("column header \"法治讲座次数\" is neither a statistic's code nor its Chinese name"), "{err}");
    assert!(figures(&out).is_empty(), "{out}");
}

#[test]
fn the_backoff_is_kept_in_the_outbox_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("台账.csv"), hand_ledger(false)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |c| c.retry_max_seconds = 600);
    for _ in 0..3 {
        ok(&agent(&["push", "--once"], &cfg));
    }
    let state = sifa_agent::outbox::read_state(&dir.path().join("outbox")).unwrap();
    assert_eq!(state.retry.failures, 3, "each run counts on from the last");
    // The third failure waits between half and all of 1 s × 2².
    let wait = state.retry.next_attempt_ms - sifa_proto::period::now_unix_ms();
    assert!((0..=4000).contains(&wait), "{wait} ms");
    let error = state.retry.last_error.as_deref().unwrap_or("");
    assert!(error.contains("127.0.0.1:1") && error.contains("not reachable"), "a real attempt: {error}");
    let (status, _) = ok(&agent(&["status"], &cfg));
    assert!(status.contains("连续 3 次发送失败") && status.contains("3 failed attempt(s) in a row"), "{status}");
}

#[test]
fn the_cached_catalog_is_used_while_the_aggregator_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("汇总.csv"), "月份,法治讲座(场次)\n2024-01,3\n").unwrap();
    let cfg = totals_only_config(dir.path(), "汇总.csv");
    // Without a cache the built-in catalog does not know this header.
    let (out, err) = ok(&agent(&["push", "--once"], &cfg));
    assert!(out.contains("(catalog 2024.1)") && err.contains("法治讲座(场次)"), "{out}\n{err}");
    assert!(queue(&dir.path().join("outbox")).is_empty());
    // The catalog fetched earlier from the aggregator (as cached in the outbox) names it so.
    let shipped = include_str!("../../proto/catalog/catalog.toml");
    let fetched = shipped
        .replace("version = \"2024.1\"", "version = \"2025.2\"")
        .replace("name_zh = \"法治讲座\"", "name_zh = \"法治讲座(场次)\"");
    assert_ne!(fetched, shipped);
    std::fs::write(dir.path().join("outbox/catalog.toml"), fetched).unwrap();
    let (out, err) = ok(&agent(&["push", "--once"], &cfg));
    assert!(out.contains("(catalog 2025.2)") && out.contains("not delivered"), "{out}\n{err}");
    let q = sifa_agent::outbox::list_queue(&dir.path().join("outbox")).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(sifa_agent::outbox::read_report(&q[0].path).unwrap().values["lectures"], 3.0);
}

#[test]
fn a_broken_mapping_stops_reading_the_books_but_not_delivering_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("台账.csv"), hand_ledger(false)).unwrap();
    let cfg = write_config(dir.path(), "台账.csv", |_| {});
    ok(&agent(&["push", "--once"], &cfg));
    let outbox = dir.path().join("outbox");
    assert_eq!(queue(&outbox).len(), 3);
    // E.g. a statistic the catalog in force no longer has.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace("\"disputes_resolved\"", "\"disputes_settled\""),
    )
    .unwrap();
    let out = agent(&["push", "--once"], &cfg);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a config error is a failure for cron to see");
    assert!(stderr.contains("ledger[1].count[2].metric") && stderr.contains("disputes_settled"), "{stderr}");
    assert!(
        stdout.contains("books not read") && stdout.contains("未能发送 not delivered"),
        "delivery was tried:\n{stdout}"
    );
    assert_eq!(queue(&outbox).len(), 3, "nothing queued is lost");
    let (status, _) = ok(&agent(&["status"], &cfg));
    assert!(status.contains("配置错误 Config error") && status.contains("disputes_settled"), "{status}");
}
