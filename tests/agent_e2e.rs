//! End to end: the real `sifa-agent` binary delivering an office's books to a
//! real `sifa aggregator` process — offline for weeks then reconnecting,
//! kill -9 between queueing and acknowledgement, rejections — with exact
//! counts read from the aggregator's Parquet store.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sifa_agent::config::{ConfigFile, TotalsSource};
use sifa_aggregator::auth::Role;
use sifa_sim::synth::{self, LedgerFormat, SynthSpec};
use support::{TestAggregator, TierSpec};

const WAIT: Duration = Duration::from_secs(60);

/// The `sifa-agent` binary, built next to `sifa` (agent/tests has integration tests).
fn agent_bin() -> PathBuf {
    let sifa = Path::new(support::sifa_bin());
    let p = sifa.with_file_name(format!("sifa-agent{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "{} is missing: build it with `cargo build -p sifa-agent`", p.display());
    p
}

fn agent(args: &[&str], config: &Path) -> Output {
    Command::new(agent_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sifa-agent")
}

fn ok(out: Output) -> String {
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "sifa-agent failed: {}\nstdout:\n{o}\nstderr:\n{e}", out.status);
    o
}

/// (accepted, duplicate) from the line `push --once` prints after delivering.
fn delivered(stdout: &str) -> (usize, usize) {
    let line = stdout.lines().find(|l| l.starts_with("已发送 delivered: ")).expect("a delivery line");
    let number = |word: &str| -> usize {
        let before = line.split(&format!(" {word}")).next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    (number("accepted"), number("duplicate"))
}

fn queued(outbox: &Path) -> usize {
    sifa_agent::outbox::list_queue(outbox).unwrap().len()
}

/// (unit, period, revision) of every stored row, and how often each occurs.
fn identities(agg: &TestAggregator) -> BTreeMap<(String, String, u64), usize> {
    let mut m = BTreeMap::new();
    for r in agg.rows() {
        *m.entry((r.report.unit_code.clone(), r.report.period.clone(), r.report.revision)).or_default() += 1;
    }
    m
}

#[test]
fn an_office_offline_for_weeks_delivers_everything_once_when_it_reconnects() {
    let mut county = TestAggregator::spawn(TierSpec::top("620982"));
    let url = county.url();
    county.kill9(); // the link is down
    let reg = sifa_proto::Registry::demo();
    let unit = reg.get("620982103").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let spec = SynthSpec { format: Some(LedgerFormat::CsvGbk), until_month: 2, ..SynthSpec::year(2024, 21) };
    let w = write_office(dir.path(), unit, &spec, &url);

    // Weeks offline: January and February, then March and a correction of
    // February, then April: each round queues, nothing is delivered.
    let out = ok(agent(&["push", "--once"], &w.config));
    assert!(out.contains("not delivered"), "{out}");
    write_office(dir.path(), unit, &SynthSpec { until_month: 3, corrections: vec![2], ..spec.clone() }, &url);
    ok(agent(&["push", "--once"], &w.config));
    let last = SynthSpec { until_month: 4, corrections: vec![2], ..spec.clone() };
    write_office(dir.path(), unit, &last, &url);
    ok(agent(&["push", "--once"], &w.config));
    let waiting: Vec<(String, u64)> =
        sifa_agent::outbox::list_queue(&outbox).unwrap().into_iter().map(|q| (q.period, q.revision)).collect();
    assert_eq!(
        waiting,
        [
            ("2024-01".into(), 1),
            ("2024-02".into(), 1),
            ("2024-02".into(), 2),
            ("2024-03".into(), 1),
            ("2024-04".into(), 1)
        ]
    );
    let status = ok(agent(&["status"], &w.config));
    assert!(status.contains("待发送 Waiting to be sent: 5"), "{status}");

    // The link is back.
    county.restart();
    let out = ok(agent(&["push", "--once"], &w.config));
    assert!(out.contains("5 accepted, 0 duplicate, 0 rejected; 0 份待发送 still queued"), "{out}");
    let rows = county.wait_for_rows(WAIT, |r| r.len() >= 5);
    let ids = identities(&county);
    let want: BTreeSet<_> = waiting.iter().map(|(p, r)| ("620982103".to_string(), p.clone(), *r)).collect();
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(ids.values().all(|&n| n == 1), "each revision stored once: {ids:?}");
    // The figures in force are the books' own, counted independently from the generated rows.
    let books = synth::books(unit, &last);
    for m in 1..=4u8 {
        let period = format!("2024-{m:02}");
        let latest = rows.iter().filter(|r| r.report.period == period).max_by_key(|r| r.report.revision).unwrap();
        let resolved = books
            .cases
            .iter()
            .filter(|r| r.day.month == m && r.category == "人民调解" && r.outcome == "调解成功")
            .count();
        assert_eq!(latest.report.values["disputes_resolved"], resolved as f64, "{period}");
        assert_eq!(latest.report.generator, sifa_agent::compute::GENERATOR);
        assert!(latest.report.values.contains_key("star_rating"));
    }
    // The catalog was fetched and cached for working offline.
    let cached = std::fs::read_to_string(outbox.join("catalog.toml")).unwrap();
    assert_eq!(cached, std::fs::read_to_string(county.data_dir().join("catalog.toml")).unwrap());

    // Nothing changed: nothing more is sent, the store is unchanged.
    let out = ok(agent(&["push", "--once"], &w.config));
    assert!(out.contains("0 份新排队 newly queued"), "{out}");
    assert_eq!(queued(&outbox), 0);
    assert_eq!(county.rows().len(), 5);
    let status = ok(agent(&["status"], &w.config));
    assert!(status.contains("待发送 Waiting to be sent: 0"), "{status}");
    assert!(status.contains("2024-04 第1版 rev 1  已接收 accepted"), "{status}");
}

/// An office's books and agent config, with the office's certificate in its `[tls]` table.
fn write_office(dir: &Path, unit: &sifa_proto::Unit, spec: &SynthSpec, url: &str) -> synth::Written {
    let tls = support::tls_config(Role::Office, &unit.code);
    synth::write_office(dir, unit, spec, url, Path::new("outbox"), &tls).unwrap()
}

/// A totals sheet with `months` months from 2000-01.
fn backlog_config(dir: &Path, unit: &str, url: &str, months: usize) -> PathBuf {
    let mut s = String::from("月份,法治讲座,专职人民调解员\n");
    let mut p: sifa_proto::Period = "2000-01".parse().unwrap();
    let mut last = p;
    for i in 0..months {
        s += &format!("{p},{},2\n", i % 40);
        last = p;
        p = p.next();
    }
    std::fs::write(dir.join("totals.csv"), s).unwrap();
    let cfg = dir.join("agent.toml");
    let file = ConfigFile {
        retry_min_seconds: 1,
        retry_max_seconds: 2,
        collect_interval_seconds: 3600,
        last_period: Some(last.to_string()),
        totals: vec![TotalsSource::new("totals.csv")],
        ..ConfigFile::new(unit, url, support::tls_config(Role::Office, unit))
    };
    std::fs::write(&cfg, file.to_toml()).unwrap();
    cfg
}

/// A running `sifa-agent run`, killed (SIGKILL) when dropped so a failing test leaves no process behind.
struct Daemon(Child);

impl Daemon {
    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn_daemon(config: &Path) -> Daemon {
    let child = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sifa-agent run");
    Daemon(child)
}

#[test]
fn kill_9_between_queueing_and_acknowledgement_delivers_each_report_once() {
    let mut county = TestAggregator::spawn(TierSpec::top("620982"));
    let url = county.url();
    county.kill9();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let months = 300;
    let cfg = backlog_config(dir.path(), "620982104", &url, months);

    // Queued while the aggregator is down; the daemon is killed with reports queued and unacknowledged.
    let mut daemon = spawn_daemon(&cfg);
    let t0 = Instant::now();
    while queued(&outbox) < months {
        assert!(t0.elapsed() < WAIT, "the daemon did not queue the backlog");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill9();

    // The aggregator comes back; a new daemon is killed -9 in the middle of delivering.
    county.restart();
    let mut daemon = spawn_daemon(&cfg);
    let t0 = Instant::now();
    while queued(&outbox) == months {
        assert!(t0.elapsed() < WAIT, "the daemon did not start delivering");
        std::thread::sleep(Duration::from_millis(2));
    }
    daemon.kill9();
    let left = queued(&outbox);
    assert!(left < months);

    // One more round delivers the rest; reports the aggregator had already
    // made durable come back as duplicates, and nothing is stored twice.
    let out = ok(agent(&["push", "--once"], &cfg));
    assert_eq!(queued(&outbox), 0);
    // Every report still queued is acknowledged exactly once: accepted, or duplicate when
    // the aggregator had stored it before the kill took its acknowledgement away.
    let (accepted, duplicate) = delivered(&out);
    assert_eq!(accepted + duplicate, left, "{out}");
    county.wait_for_rows(WAIT, |r| r.len() >= months);
    std::thread::sleep(Duration::from_millis(300));
    let ids = identities(&county);
    assert_eq!(ids.len(), months, "one stored revision per month");
    assert!(ids.values().all(|&n| n == 1), "a report stored twice: {:?}", ids.iter().find(|(_, n)| **n > 1));
    assert!(ids.keys().all(|(u, _, r)| u == "620982104" && *r == 1));
}

#[test]
fn a_rejected_report_moves_aside_with_its_reason_shown_by_status() {
    // An office of 玉门市 (620981) sending to Dunhuang's aggregator (620982): not its subtree.
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let reg = sifa_proto::Registry::demo();
    let stranger =
        reg.units().iter().find(|u| u.parent.as_deref() == Some("620981") && u.kind == sifa_proto::UnitKind::Office);
    let Some(stranger) = stranger else { panic!("the demo registry has an office under 620981") };
    let dir = tempfile::tempdir().unwrap();
    let cfg = backlog_config(dir.path(), &stranger.code, &county.url(), 2);
    let out = ok(agent(&["push", "--once"], &cfg));
    assert!(out.contains("0 accepted, 0 duplicate, 2 rejected"), "{out}");
    let outbox = dir.path().join("outbox");
    assert_eq!(queued(&outbox), 0);
    let rejected = sifa_agent::outbox::list_rejected(&outbox).unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].code, tonic::Code::PermissionDenied as i32);
    assert_eq!(rejected[0].problems[0].rule, "outside_subtree");
    let status = ok(agent(&["status"], &cfg));
    assert!(status.contains("被退回的报表 Rejected reports: 2"), "{status}");
    assert!(status.contains("[outside_subtree]"), "{status}");
    // The same content is not sent again.
    let out = ok(agent(&["push", "--once"], &cfg));
    assert!(out.contains("0 份新排队 newly queued"), "{out}");
    assert!(county.rows().is_empty());
}

/// When the daemon last read the books (from the outbox's state).
fn last_collection_ms(outbox: &Path) -> i64 {
    let state = sifa_agent::outbox::read_state(outbox).unwrap();
    state.last_collection.map_or(0, |c| c.at_ms)
}

#[test]
fn the_daemon_sends_a_new_revision_of_each_changed_month_on_its_schedule_and_nothing_else() {
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let reg = sifa_proto::Registry::demo();
    let unit = reg.get("620982105").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let spec = SynthSpec { format: Some(LedgerFormat::Xlsx), until_month: 3, ..SynthSpec::year(2024, 31) };
    let w = write_office(dir.path(), unit, &spec, &county.url());
    let mut file: ConfigFile = toml::from_str(&std::fs::read_to_string(&w.config).unwrap()).unwrap();
    assert_eq!(file.collect_interval_seconds, 60);
    file.collect_interval_seconds = 1;
    std::fs::write(&w.config, file.to_toml()).unwrap();

    let mut daemon = spawn_daemon(&w.config);
    county.wait_for_rows(WAIT, |r| r.len() >= 3);

    // A row of February corrected, saved as Excel saves: a new file put in place of the old one.
    let staged = tempfile::tempdir().unwrap();
    let corrected = SynthSpec { corrections: vec![2], ..spec.clone() };
    let w2 = write_office(staged.path(), unit, &corrected, &county.url());
    std::fs::rename(&w2.ledger, &w.ledger).unwrap();
    let rows = county.wait_for_rows(WAIT, |r| r.len() >= 4);

    // The daemon reads the unchanged books three more times, and sends nothing more.
    let mut seen = last_collection_ms(&outbox);
    for _ in 0..3 {
        let t0 = Instant::now();
        while last_collection_ms(&outbox) == seen {
            assert!(t0.elapsed() < WAIT, "the daemon stopped reading the books");
            std::thread::sleep(Duration::from_millis(50));
        }
        seen = last_collection_ms(&outbox);
    }
    assert_eq!(queued(&outbox), 0);
    daemon.kill9();
    let ids = identities(&county);
    let want: BTreeSet<_> = [("2024-01", 1), ("2024-02", 1), ("2024-02", 2), ("2024-03", 1)]
        .into_iter()
        .map(|(p, r)| (unit.code.to_string(), p.to_string(), r))
        .collect();
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(ids.values().all(|&n| n == 1), "each revision stored once: {ids:?}");
    assert_eq!(county.rows().len(), rows.len());
    // February's second revision holds the corrected books' figures, counted independently.
    let feb = rows.iter().find(|r| r.report.period == "2024-02" && r.report.revision == 2).unwrap();
    let books = synth::books(unit, &corrected);
    let count = |category: &str, outcome: &str| {
        books.cases.iter().filter(|r| r.day.month == 2 && r.category == category && r.outcome == outcome).count()
    };
    assert_eq!(feb.report.values["disputes_resolved"], count("人民调解", "调解成功") as f64);
    let before = synth::books(unit, &spec);
    let february = |b: &synth::OfficeBooks| -> Vec<(String, String)> {
        b.cases.iter().filter(|r| r.day.month == 2).map(|r| (r.category.to_string(), r.outcome.clone())).collect()
    };
    assert_ne!(february(&before), february(&books), "the correction changes February's rows");
}

/// January's figures as stored: (revision, disputes_resolved, consultations) of every stored row.
fn january(agg: &TestAggregator) -> Vec<(u64, f64, f64)> {
    let mut v: Vec<_> = agg
        .rows()
        .iter()
        .filter(|r| r.report.period == "2024-01")
        .map(|r| (r.report.revision, r.report.values["disputes_resolved"], r.report.values["consultations"]))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

/// (disputes_resolved, consultations) of January counted from generated books.
fn january_books(unit: &sifa_proto::Unit, spec: &SynthSpec) -> (f64, f64) {
    let books = synth::books(unit, spec);
    let jan = || books.cases.iter().filter(|r| r.day.month == 1);
    let resolved = jan().filter(|r| r.category == "人民调解" && r.outcome == "调解成功").count();
    let consultations: u32 = jan().filter(|r| r.category == "法律咨询").map(|r| r.people).sum();
    (resolved as f64, consultations as f64)
}

#[test]
fn an_outbox_lost_and_recreated_never_puts_old_figures_back_in_force() {
    let mut county = TestAggregator::spawn(TierSpec::top("620982"));
    let url = county.url();
    let reg = sifa_proto::Registry::demo();
    let unit = reg.get("620982106").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    // Three versions of January: to the 10th, the whole month, the whole month with a row corrected.
    let early = SynthSpec {
        format: Some(LedgerFormat::CsvUtf8),
        until_month: 1,
        until_day: Some(10),
        ..SynthSpec::year(2024, 41)
    };
    let whole = SynthSpec { until_day: None, ..early.clone() };
    let corrected = SynthSpec { corrections: vec![1], ..whole.clone() };
    let (x, y, z) = (january_books(unit, &early), january_books(unit, &whole), january_books(unit, &corrected));
    assert!(x != y && y != z, "three different contents: {x:?} {y:?} {z:?}");

    let w = write_office(dir.path(), unit, &early, &url);
    ok(agent(&["push", "--once"], &w.config));
    county.wait_for_rows(WAIT, |r| r.len() == 1);

    // The PC is reinstalled without its outbox, offline; January is typed in and then corrected:
    // the new outbox numbers them rev 1 and rev 2 again.
    std::fs::remove_dir_all(&outbox).unwrap();
    county.kill9();
    write_office(dir.path(), unit, &whole, &url);
    ok(agent(&["push", "--once"], &w.config));
    write_office(dir.path(), unit, &corrected, &url);
    ok(agent(&["push", "--once"], &w.config));
    assert_eq!(queued(&outbox), 2);

    // Back online: rev 1 conflicts with the stored rev 1, and is not sent again, since rev 2 is newer.
    county.restart();
    let out = ok(agent(&["push", "--once"], &w.config));
    assert!(out.contains("1 accepted, 0 duplicate, 1 rejected; 0 份待发送 still queued"), "{out}");
    county.wait_for_rows(WAIT, |r| r.len() == 2);
    assert_eq!(january(&county), [(1, x.0, x.1), (2, z.0, z.1)], "the corrected figures are in force");
    let status = ok(agent(&["status"], &w.config));
    assert!(status.contains("2024-01 第1版 rev 1") && status.contains("[conflict]"), "{status}");

    // Lost again, and the books go back to the uncorrected month: its only revision conflicts twice,
    // is re-sent under the next free number, and wins as the newest.
    std::fs::remove_dir_all(&outbox).unwrap();
    write_office(dir.path(), unit, &whole, &url);
    let out = ok(agent(&["push", "--once"], &w.config));
    assert!(out.contains("1 accepted, 0 duplicate, 2 rejected; 0 份待发送 still queued"), "{out}");
    county.wait_for_rows(WAIT, |r| r.len() == 3);
    assert_eq!(january(&county), [(1, x.0, x.1), (2, z.0, z.1), (3, y.0, y.1)]);
}

#[test]
fn an_office_whose_certificate_is_revoked_is_told_so_and_stops_hammering() {
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let unit = "620982108";
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let cfg = backlog_config(dir.path(), unit, &county.url(), 2);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("collect_interval_seconds = 3600", "collect_interval_seconds = 1");
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = spawn_daemon(&cfg);
    county.wait_for_rows(WAIT, |r| r.len() == 2);

    // The province revokes the office's certificate while the daemon runs; then January is corrected.
    support::pki().revoke(Role::Office, unit);
    let totals = dir.path().join("totals.csv");
    let books = std::fs::read_to_string(&totals).unwrap().replace("2000-01,0,2", "2000-01,7,2");
    std::fs::write(&totals, books).unwrap();
    let t0 = Instant::now();
    let state = loop {
        let state = sifa_agent::outbox::read_state(&outbox).unwrap();
        if state.retry.refused.is_some() {
            break state;
        }
        assert!(t0.elapsed() < WAIT, "the daemon never recorded the refusal: {:?}", state.retry);
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = ok(agent(&["status"], &cfg));
    assert!(status.contains(&format!("The aggregator {} refuses this office's certificate", county.url())), "{status}");
    assert!(status.contains("UNAUTHENTICATED: the certificate of office 620982108"), "{status}");
    assert!(status.contains("is revoked") && status.contains("ask the county for a new one"), "{status}");
    // It stops hammering: the next attempt is a quarter of an hour away, though its own backoff caps at 2 s.
    let wait_ms = state.retry.next_attempt_ms - sifa_proto::period::now_unix_ms();
    assert!(wait_ms > 10 * 60 * 1000, "next attempt in {wait_ms} ms");
    std::thread::sleep(Duration::from_secs(3));
    let again = sifa_agent::outbox::read_state(&outbox).unwrap();
    assert_eq!(again.retry.failures, state.retry.failures, "no attempt during the long wait");
    assert_eq!(queued(&outbox), 1, "the correction waits in the outbox");
    daemon.kill9();
    assert_eq!(county.rows().len(), 2);
}
