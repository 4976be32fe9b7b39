//! The HTTP side of a tier (issue 15), end to end with the real binary: the
//! metrics parse with the Python `prometheus-client`'s OpenMetrics parser and
//! move when reports arrive, are refused, are forwarded or wait; health and
//! readiness; the status page rendered by headless Chromium names the office
//! that has not reported.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sifa_aggregator::auth::{Limits, Role};
use sifa_proto::v1::SubmitRequest;
use sifa_proto::{Period, Registry};
use support::{TestAggregator, TierSpec, http_get, http_on_loopback, peers, pki, report};

/// One sample of a scrape as the OpenMetrics parser read it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// A scrape of `/metrics`, parsed by the reference parser (which refuses anything not OpenMetrics).
fn scrape(tier: &TestAggregator) -> Vec<Sample> {
    let (status, headers, body) = http_get(&tier.http_addr(), "/metrics");
    assert_eq!(status, 200, "{body}");
    let ct = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str()).unwrap_or("");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let mut py = Command::new(peers::python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the scrape: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    parsed
        .into_iter()
        .map(|s| Sample {
            name: s["name"].as_str().expect("a name").to_string(),
            labels: s["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a label value").to_string()))
                .collect(),
            value: s["value"].as_f64().expect("a value"),
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels` (0 when none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v)))
        .map(|s| s.value)
        .sum()
}

fn has(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|s| s.name == name)
}

fn last_month() -> String {
    Period::current().prev().to_string()
}

fn submit(r: sifa_proto::v1::Report) -> tonic::Request<SubmitRequest> {
    tonic::Request::new(SubmitRequest { report: Some(r), provenance: None })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_when_reports_arrive_are_refused_or_limited() {
    let limits = Limits { reports_per_second: 1, burst: 3, ..Limits::default() };
    let spec = TierSpec { http: http_on_loopback(false), limits: Some(limits), ..TierSpec::top("620982") };
    let tier = TestAggregator::spawn(spec);
    let addr = tier.http_addr();
    let (status, _, body) = http_get(&addr, "/healthz");
    assert_eq!((status, body.starts_with("ok")), (200, true), "{body}");
    let (status, _, body) = http_get(&addr, "/readyz");
    assert_eq!((status, body.starts_with("ready")), (200, true), "{body}");
    let (status, _, body) = http_get(&addr, "/nothing-here");
    assert_eq!(status, 404);
    assert!(body.contains("/metrics") && body.contains("/healthz"), "{body}");

    let before = scrape(&tier);
    assert_eq!(value(&before, "sifa_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("unit", "620982")]), 1.0);
    assert!(value(&before, "sifa_disk_free_bytes", &[]) > 0.0);
    assert_eq!(value(&before, "sifa_reports_accepted_total", &[]), 0.0);
    assert!(!has(&before, "sifa_upstream_state"), "a top tier has no upstream");

    let month = last_month();
    let office = |unit: &str| report(unit, &month, 1, &[("lectures", 3.0), ("consultations", 10.0)]);
    // An office: one stored, the same again (duplicate), one invalid.
    let mut c = tier.client_as(Role::Office, "620982100").await;
    c.submit(submit(office("620982100"))).await.expect("accepted");
    c.submit(submit(office("620982100"))).await.expect("duplicate");
    let mut c1 = tier.client_as(Role::Office, "620982101").await;
    let bad = report("620982101", &month, 1, &[("lectures", -2.0)]);
    let e = c1.submit(submit(bad)).await.unwrap_err();
    assert!(e.message().contains("[negative]"), "{}", e.message());
    // Another office, along its one path (its own certificate; forwards from a tier below, counted
    // as sender "aggregator", are in forwarding_metrics_show_the_backlog_and_the_upstream_link).
    tier.client().await.submit(submit(office("620982102"))).await.expect("accepted");
    // Over the rate: a burst of 3, the 4th at once is refused.
    let mut c3 = tier.client_as(Role::Office, "620982103").await;
    let (mut refused, sent) = (0, 6);
    for rev in 1..=sent {
        let r = report("620982103", &month, rev, &[("lectures", rev as f64)]);
        if let Err(e) = c3.submit(submit(r)).await {
            assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{}", e.message());
            refused += 1;
        }
    }
    assert!(refused >= 1, "the rate limit never refused");

    let after = scrape(&tier);
    let delta = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(delta("sifa_reports_accepted_total", &[("sender", "office")]), 2.0 + (sent - refused) as f64);
    assert_eq!(delta("sifa_reports_accepted_total", &[("sender", "aggregator")]), 0.0);
    assert_eq!(delta("sifa_reports_duplicate_total", &[("sender", "office")]), 1.0);
    assert_eq!(delta("sifa_reports_rejected_total", &[("sender", "office"), ("rule", "negative")]), 1.0);
    assert_eq!(delta("sifa_reports_received_total", &[("sender", "office")]), 4.0 + (sent - refused) as f64);
    assert_eq!(delta("sifa_limit_refusals_total", &[("limit", "rate")]), refused as f64);
    // Every accepted report went through a group commit with an fsync.
    let groups = delta("sifa_wal_group_commit_reports_count", &[]);
    assert!(groups >= 1.0, "{groups}");
    assert_eq!(delta("sifa_wal_group_commit_reports_sum", &[]), 2.0 + (sent - refused) as f64);
    assert_eq!(delta("sifa_wal_fsync_seconds_count", &[]), groups);
    assert!(delta("sifa_wal_fsync_seconds_sum", &[]) > 0.0);
    assert!(value(&after, "sifa_wal_size_bytes", &[]) > 0.0 && value(&after, "sifa_wal_segments", &[]) >= 1.0);

    // The flusher empties what waits for it, and says when it last did.
    tier.wait_for_rows(Duration::from_secs(30), |rows| rows.len() == 2 + (sent - refused) as usize);
    let t0 = Instant::now();
    loop {
        let now = scrape(&tier);
        if value(&now, "sifa_flush_pending_rows", &[]) == 0.0 {
            assert!(value(&now, "sifa_flush_age_seconds", &[]) < 30.0);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "rows never left the flush queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_metrics_show_the_backlog_and_the_upstream_link() {
    // Provisioned before any deadline below starts to run.
    peers::python();
    let http = http_on_loopback(false);
    let mut province = TestAggregator::spawn(TierSpec { http: http.clone(), ..TierSpec::top("62") });
    let county = TestAggregator::spawn(TierSpec { http, ..TierSpec::below("620982", &province.url()) });
    let month = last_month();
    let mut c = county.client_as(Role::Office, "620982104").await;
    c.submit(submit(report("620982104", &month, 1, &[("lectures", 1.0)]))).await.unwrap();
    let until = |what: &str, pred: &dyn Fn(&[Sample]) -> bool| {
        let t0 = Instant::now();
        loop {
            let s = scrape(&county);
            if pred(&s) {
                return s;
            }
            let shown: Vec<String> = s
                .iter()
                .filter(|s| s.name.contains("forward") || s.name.contains("upstream"))
                .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
                .collect();
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{what} never happened: {shown:#?}\ncounty log:\n{}",
                county.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until("delivery", &|s| {
        value(s, "sifa_upstream_state", &[("state", "delivering")]) == 1.0
            && value(s, "sifa_forward_backlog_reports", &[]) == 0.0
    });
    // The province received it as a forwarded report.
    let p = scrape(&province);
    assert_eq!(value(&p, "sifa_reports_accepted_total", &[("sender", "aggregator")]), 1.0);

    // The province goes away (a graceful stop, whatever its HTTP side holds): what the county accepts
    // now waits, and ages.
    let t0 = Instant::now();
    province.stop();
    assert!(t0.elapsed() < Duration::from_secs(20), "the province took {:?} to stop", t0.elapsed());
    assert!(province.log().contains("stopped"), "{}", province.log());
    c.submit(submit(report("620982104", &month, 2, &[("lectures", 2.0)]))).await.unwrap();
    let s = until("a waiting backlog on an unreachable link", &|s| {
        value(s, "sifa_forward_backlog_reports", &[]) == 1.0
            && value(s, "sifa_upstream_state", &[("state", "unreachable")]) == 1.0
            && value(s, "sifa_forward_oldest_age_seconds", &[]) > 0.5
    });
    assert_eq!(value(&s, "sifa_upstream_state", &[("state", "delivering")]), 0.0);
}

/// Every `sifa_…` series name in a text.
fn series_named(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("sifa_") {
        let tail = &rest[i..];
        let end =
            tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        if end > "sifa_".len() {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The demo registry's reporting units under `root`, as (code, name).
fn offices(root: &str) -> Vec<(String, String)> {
    let registry = Registry::load(&support::demo_registry_path()).unwrap();
    registry.reporting_units(root).into_iter().map(|u| (u.code.to_string(), u.name.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_headless_chromium_names_the_missing_office() {
    let Some(chromium) = peers::chromium() else { return };
    let spec = TierSpec { http: http_on_loopback(false), ..TierSpec::top("620982") };
    let tier = TestAggregator::spawn(spec);
    let month = last_month();
    let units = offices("620982");
    let (missing, present) = units.split_last().expect("offices under 620982");
    let mut client = tier.client().await;
    for (code, _) in present {
        client.submit(submit(report(code, &month, 1, &[("lectures", 2.0)]))).await.unwrap();
    }
    // A correction, and a rejected report naming its rule.
    let (corrected, corrected_name) = &present[0];
    client.submit(submit(report(corrected, &month, 2, &[("lectures", 3.0)]))).await.unwrap();
    let (bad_unit, bad_name) = &present[1];
    client.submit(submit(report(bad_unit, &month, 2, &[("lectures", -1.0)]))).await.unwrap_err();

    let url = format!("http://{}/", tier.http_addr());
    let dom = peers::chromium_headless(chromium, &url, &["--dump-dom"]);
    let section = format!("id=\"period-{month}\"");
    let last = dom.split(&section).nth(1).and_then(|s| s.split("</section>").next()).unwrap_or_else(|| panic!("{dom}"));
    let missing_section =
        last.split("未报单位").nth(1).and_then(|s| s.split("</ul>").next()).unwrap_or_else(|| panic!("{dom}"));
    assert!(missing_section.contains(&missing.1) && missing_section.contains(&missing.0), "{missing_section}");
    for (code, _) in present {
        assert!(!missing_section.contains(code.as_str()), "{code} reported but is listed missing: {missing_section}");
    }
    let corrections = last.split("收到更正").nth(1).expect(&dom);
    assert!(corrections.contains(corrected_name.as_str()), "{corrections}");
    let rejected = dom.split("被拒报表").nth(1).expect(&dom);
    assert!(rejected.contains(bad_name.as_str()) && rejected.contains("negative"), "{rejected}");
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
    assert!(dom.contains("<svg"), "{dom}");

    // English on request.
    let en = peers::chromium_headless(chromium, &format!("{url}?lang=en"), &["--dump-dom"]);
    let missing_en = en.split(&section).nth(1).and_then(|m| m.split("Missing").nth(1)).expect(&en);
    assert!(missing_en.contains(&missing.1) && en.contains("Rejected reports"), "{en}");

    // A screenshot: in target/ on every run; into docs/ with SIFA_UPDATE_SCREENSHOT=1.
    let shot = match std::env::var_os("SIFA_UPDATE_SCREENSHOT") {
        Some(_) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png"),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png"),
    };
    let _ = std::fs::remove_file(&shot);
    peers::chromium_headless(
        chromium,
        &url,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1280,1600", "--hide-scrollbars"],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "{} bytes", png.len());
}

const HTTPS_GET: &str = r#"
import http.client, json, ssl, sys
host, port, path, ca, cert, key = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
try:
    c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=20)
    c.request("GET", path)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode()}))
except Exception as e:
    print(json.dumps({"status": 0, "body": type(e).__name__ + ": " + str(e)}))
"#;

/// A GET over HTTPS with Python's `ssl` (the server checked against the test CA), as `client` (a role
/// and unit whose certificate it presents) or with no client certificate: (status, body); status 0
/// when the connection failed.
fn https_get(addr: &str, path: &str, client: Option<(Role, &str)>) -> (u16, String) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let (cert, key) = client.map(|(role, unit)| pki().files(role, unit)).unwrap_or_default();
    let out = Command::new(peers::python())
        .args(["-c", HTTPS_GET, host, port, path])
        .arg(pki().ca_cert())
        .arg(cert)
        .arg(key)
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    (v["status"].as_u64().unwrap() as u16, v["body"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_only_analysts_and_admins_of_this_tier_or_above_get_in() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let spec = TierSpec { http: http_on_loopback(true), ..TierSpec::below("620982", &province.url()) };
    let tier = TestAggregator::spawn(spec);
    let addr = tier.http_addr();
    let (status, body) = https_get(&addr, "/metrics", Some((Role::Analyst, "620982")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sifa_build_info{"), "{body}");
    let (status, body) = https_get(&addr, "/?lang=en", Some((Role::Admin, "62")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Missing"), "{body}");
    // Another role, another subtree: 403 saying what is needed.
    let (status, body) = https_get(&addr, "/", Some((Role::Office, "620982100")));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("needs an analyst or admin certificate of 620982"), "{body}");
    let (status, body) = https_get(&addr, "/healthz", Some((Role::Analyst, "620921")));
    assert_eq!(status, 403, "{body}");
    // A revoked certificate: 401, naming it.
    pki().revoke(Role::Analyst, "6209");
    let (status, body) = https_get(&addr, "/metrics", Some((Role::Analyst, "6209")));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("is revoked"), "{body}");
    // Plaintext, and TLS without a client certificate: no answer, and the handshake failures counted.
    assert!(std::panic::catch_unwind(|| http_get(&addr, "/healthz")).map_or(true, |(s, _, _)| s != 200));
    let (status, body) = https_get(&addr, "/healthz", None);
    assert_eq!(status, 0, "{body}");
    let (_, metrics) = https_get(&addr, "/metrics", Some((Role::Analyst, "620982")));
    assert!(
        metrics.contains(r#"sifa_tls_handshake_failures_total{listener="http",reason="no_client_certificate"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sifa_tls_handshake_failures_total{listener="http",reason="protocol"} 1"#), "{metrics}");

    // The gRPC listener counts its failed handshakes too.
    let no_cert = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(pki().ca_cert()).unwrap()))
        .domain_name("127.0.0.1");
    let anonymous = async {
        let ch = tonic::transport::Channel::from_shared(tier.url()).unwrap().tls_config(no_cert)?.connect().await?;
        let r = report("620982100", &last_month(), 1, &[("lectures", 1.0)]);
        sifa_proto::v1::report_service_client::ReportServiceClient::new(ch).submit(submit(r)).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(anonymous.await.is_err(), "a gRPC client without a certificate is refused");
    let t0 = Instant::now();
    let grpc_failure = r#"sifa_tls_handshake_failures_total{listener="grpc",reason="no_client_certificate"} "#;
    loop {
        let metrics = https_get(&addr, "/metrics", Some((Role::Analyst, "620982"))).1;
        if metrics.contains(grpc_failure) {
            break;
        }
        let failures: Vec<&str> = metrics.lines().filter(|l| l.contains("handshake_failures")).collect();
        assert!(t0.elapsed() < Duration::from_secs(10), "no {grpc_failure}: {failures:#?}\n{}", tier.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // With a rejection and a link to the tier above, every series the docs name is served.
    let bad = report("620982100", &last_month(), 1, &[("lectures", -3.0)]);
    tier.client().await.submit(submit(bad)).await.unwrap_err();
    let t0 = Instant::now();
    let metrics = loop {
        let (_, metrics) = https_get(&addr, "/metrics", Some((Role::Analyst, "620982")));
        if metrics.contains("sifa_upstream_state{") || t0.elapsed() > Duration::from_secs(30) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_docs_name_only_served_series(&metrics);
}

/// Every series docs/OPERATIONS.md and the Grafana dashboard name is one of the families of `scrape`.
fn assert_docs_name_only_served_series(scrape: &str) {
    let families: Vec<&str> =
        scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_whitespace().next()).collect();
    let served = |name: &str| {
        families.iter().any(|f| {
            name == *f || ["_total", "_info", "_bucket", "_count", "_sum"].iter().any(|x| name == format!("{f}{x}"))
        })
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let operations = std::fs::read_to_string(root.join("docs/OPERATIONS.md")).unwrap();
    let watching = operations.split("## Watching a tier").nth(1).expect("docs/OPERATIONS.md: Watching a tier");
    let dashboard = std::fs::read_to_string(root.join("config/grafana-dashboard.json")).unwrap();
    let dashboard_json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(dashboard_json["panels"].as_array().is_some_and(|p| p.len() >= 10), "{dashboard}");
    for (file, text) in [("docs/OPERATIONS.md", watching), ("config/grafana-dashboard.json", dashboard.as_str())] {
        let names = series_named(text);
        assert!(names.len() >= 10, "{file}: {names:?}");
        for name in names {
            assert!(served(&name), "{file} names {name}, which /metrics does not serve: {families:?}");
        }
    }
}

const READ_PROMETHEUS_CONFIG: &str = r#"
import json, sys, yaml
print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding="utf-8"))))
"#;

#[test]
fn the_prometheus_scrape_config_names_tiers_and_their_client_certificates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus.yml");
    let out = Command::new(peers::python()).args(["-c", READ_PROMETHEUS_CONFIG]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    assert!(jobs.len() >= 2, "{config}");
    for job in jobs {
        let targets: Vec<&str> = job["static_configs"]
            .as_array()
            .expect("static_configs")
            .iter()
            .flat_map(|c| c["targets"].as_array().expect("targets").iter().map(|t| t.as_str().unwrap()))
            .collect();
        assert!(!targets.is_empty(), "{job}");
        for t in &targets {
            let (host, port) = t.rsplit_once(':').unwrap_or_else(|| panic!("{t} is not HOST:PORT"));
            assert!(!host.is_empty() && port.parse::<u16>().is_ok(), "{t}");
            // Off loopback the HTTP side is HTTPS with a client certificate.
            if !host.starts_with("127.") && host != "localhost" {
                assert_eq!(job["scheme"], "https", "{job}");
                for key in ["ca_file", "cert_file", "key_file"] {
                    assert!(job["tls_config"][key].is_string(), "{job} needs tls_config.{key}");
                }
            }
        }
    }
}
