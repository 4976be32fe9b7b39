//! Security with real processes: every way of reporting for somebody else, or
//! of calling without a good certificate, is refused with the right status and
//! leaves the store unchanged; the allowed paths keep working.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use sifa_aggregator::auth::{Identity, Limits, Role};
use sifa_aggregator::config::ConfigFile;
use sifa_pki::{Ca, IssueRequest, init_ca};
use sifa_proto::tls::{TlsConfig, TlsFiles, TlsMode};
use sifa_proto::v1::directory_service_client::DirectoryServiceClient;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{
    CompletenessRequest, GetCatalogRequest, GetRegistryRequest, LockRequest, Provenance, SubmitRequest, ack,
};
use support::{TestAggregator, TierSpec, pki, report};
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(60);

fn submission(unit: &str, period: &str) -> SubmitRequest {
    SubmitRequest { report: Some(report(unit, period, 1, &[("lectures", 2.0)])), provenance: None }
}

/// Connects to `url` with these files and submits one report; any failure (handshake or status) as text.
async fn submit_with(url: &str, files: TlsFiles, req: SubmitRequest) -> Result<ack::Outcome, (Option<Code>, String)> {
    let ep = sifa_proto::tls::endpoint(url, &TlsMode::Secure { files, crl: None }).unwrap();
    let channel = ep.connect().await.map_err(|e| (None, format!("{e:?}")))?;
    let ack = ReportServiceClient::new(channel)
        .submit(req)
        .await
        .map_err(|s| (Some(s.code()), s.message().to_string()))?
        .into_inner();
    Ok(ack::Outcome::try_from(ack.outcome).unwrap())
}

/// A refusal by the TLS handshake: the connection fails, or (TLS 1.3, where the client finishes its
/// side first) the first call is cut off: never a status from sifa's code.
fn refused_by_transport(r: &Result<ack::Outcome, (Option<Code>, String)>) -> bool {
    matches!(r, Err((None | Some(Code::Unavailable | Code::Unknown | Code::Cancelled), _)))
}

fn files_of(role: Role, unit: &str) -> TlsFiles {
    let (cert, key) = pki().files(role, unit);
    TlsFiles { ca: pki().ca_cert(), cert, key }
}

/// A certificate of the test CA valid only in the past.
fn expired(dir: &Path, unit: &str) -> TlsFiles {
    let ca = Ca::load(&pki().ca_dir()).unwrap();
    let mut req = IssueRequest::new(Identity::new(Role::Office, unit.parse().unwrap()), 1);
    req.not_before = SystemTime::now() - Duration::from_secs(10 * 86_400);
    req.not_after = SystemTime::now() - Duration::from_secs(86_400);
    let (cert, key) = ca.issue(&req).unwrap().write_to(dir).unwrap();
    TlsFiles { ca: pki().ca_cert(), cert, key }
}

/// A certificate for `unit` from a CA the province never heard of.
fn foreign(dir: &Path, unit: &str) -> TlsFiles {
    let paths = init_ca(&dir.join("other-ca"), "somebody else", 30).unwrap();
    let ca = Ca::load(&paths.dir).unwrap();
    let issued = ca.issue(&IssueRequest::new(Identity::new(Role::Office, unit.parse().unwrap()), 30)).unwrap();
    let (cert, key) = issued.write_to(&dir.join("other")).unwrap();
    // The client trusts the real CA (so the server is the real one); only its own certificate is foreign.
    TlsFiles { ca: pki().ca_cert(), cert, key }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_decide_who_may_report_and_bad_ones_change_nothing() {
    let county = TestAggregator::spawn(TierSpec::top("620982"));
    let url = county.url();
    let dir = tempfile::tempdir().unwrap();

    // The allowed path: an office reports its own figures.
    let ok = submit_with(&url, files_of(Role::Office, "620982101"), submission("620982101", "2024-03")).await;
    assert_eq!(ok, Ok(ack::Outcome::Accepted));

    // An office submitting for its neighbour.
    let e = submit_with(&url, files_of(Role::Office, "620982101"), submission("620982102", "2024-03")).await;
    let (code, message) = e.unwrap_err();
    assert_eq!(code, Some(Code::PermissionDenied), "{message}");
    assert!(message.contains("office 620982101 may not submit a report for unit 620982102"), "{message}");
    assert!(!message.contains("lectures"), "no figures in refusals: {message}");

    // A certificate from another CA, an expired one and none at all fail the handshake.
    let e = submit_with(&url, foreign(dir.path(), "620982103"), submission("620982103", "2024-03")).await;
    assert!(refused_by_transport(&e), "{e:?}");
    let e = submit_with(&url, expired(dir.path(), "620982104"), submission("620982104", "2024-03")).await;
    assert!(refused_by_transport(&e), "{e:?}");
    let no_cert = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(pki().ca_cert()).unwrap()))
        .domain_name("127.0.0.1");
    let anonymous = async {
        let ch = Channel::from_shared(url.clone()).unwrap().tls_config(no_cert).unwrap().connect().await?;
        Ok::<_, Box<dyn std::error::Error>>(
            ReportServiceClient::new(ch).submit(submission("620982105", "2024-03")).await?,
        )
    };
    assert!(anonymous.await.is_err(), "a client without a certificate is refused");
    // Plaintext to the TLS port.
    let plain = format!("http://{}", county.addr());
    let e = async {
        let ch = Channel::from_shared(plain).unwrap().connect().await?;
        Ok::<_, Box<dyn std::error::Error>>(
            ReportServiceClient::new(ch).submit(submission("620982106", "2024-03")).await?,
        )
    };
    assert!(e.await.is_err(), "plaintext to a TLS port is refused");

    // A certificate revoked while the server runs: refused at once, no restart.
    let good = files_of(Role::Office, "620982107");
    assert_eq!(submit_with(&url, good.clone(), submission("620982107", "2024-03")).await, Ok(ack::Outcome::Accepted));
    pki().revoke(Role::Office, "620982107");
    let e = submit_with(&url, good, submission("620982107", "2024-04")).await.unwrap_err();
    assert_eq!(e.0, Some(Code::Unauthenticated), "{}", e.1);
    assert!(e.1.contains("is revoked"), "{}", e.1);

    // Only the two allowed reports are stored.
    let want = vec![("620982101".to_string(), "2024-03".to_string()), ("620982107".into(), "2024-03".into())];
    county.wait_for_rows(WAIT, |r| r.len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(county.stored_months(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_forwards_only_its_own_subtree_and_reads_only_its_own() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    // 玉门市's aggregator certificate, forwarding an office of 敦煌市: every report refused, on a stream too.
    let mut yumen = province.client_as(Role::Aggregator, "620981").await;
    let stolen = SubmitRequest {
        report: Some(report("620982101", "2024-03", 1, &[("lectures", 1.0)])),
        provenance: Some(Provenance { first_accepted_by: "620982".into(), received_at_ms: 1_711_000_000_000 }),
    };
    let e = yumen.submit(stolen.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("aggregator 620981 may not forward a report for unit 620982101"), "{}", e.message());
    let mut acks = yumen.submit_stream(tokio_stream::iter(vec![stolen])).await.unwrap().into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!(
        (ack::Outcome::try_from(a.outcome).unwrap(), a.code),
        (ack::Outcome::Rejected, Code::PermissionDenied as i32)
    );
    // Its own office is fine, with its own provenance.
    let own = SubmitRequest {
        report: Some(report("620981100", "2024-03", 1, &[("lectures", 1.0)])),
        provenance: Some(Provenance { first_accepted_by: "620981".into(), received_at_ms: 1_711_000_000_000 }),
    };
    assert_eq!(yumen.submit(own).await.unwrap().into_inner().outcome, ack::Outcome::Accepted as i32);

    // The directory answers for the caller's subtree only.
    let mut d = DirectoryServiceClient::new(province.channel_as(Role::Aggregator, "620981").await);
    let reg = d.get_registry(GetRegistryRequest { root: String::new() }).await.unwrap().into_inner();
    assert!(reg.csv.contains("620981100") && !reg.csv.contains("620982101"), "only 玉门市's subtree");
    let e = d.get_registry(GetRegistryRequest { root: "620982".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e =
        d.get_completeness(CompletenessRequest { period: "2024-03".into(), root: "6207".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(d.get_catalog(GetCatalogRequest::default()).await.is_ok());

    // Lock and override need an admin of this tier; a county's admin is not the province's.
    let mut county_admin =
        sifa_proto::v1::admin_service_client::AdminServiceClient::new(province.channel_as(Role::Admin, "620981").await);
    let e = county_admin.lock_period(LockRequest { period: "2024".into(), reason: String::new() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("administers 620981, not this tier (62)"), "{}", e.message());
    let out = province.cli(&["lock", "--period", "2024-01"]);
    assert!(out.status.success(), "the province's admin may: {}", String::from_utf8_lossy(&out.stderr));

    province.wait_for_rows(WAIT, |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(province.stored_months(), vec![("620981100".to_string(), "2024-03".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_resource_exhausted_with_what_to_do() {
    let limits = Limits { reports_per_second: 1, burst: 3, max_reports_per_stream: 5, max_message_bytes: 400 };
    let spec = TierSpec { limits: Some(limits), ..TierSpec::top("620982") };
    let county = TestAggregator::spawn(spec);
    let mut office = county.client_as(Role::Office, "620982101").await;
    let mut refused = None;
    for m in 1..=6 {
        match office.submit(submission("620982101", &format!("2024-{m:02}"))).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the fourth report within a second is over the burst");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("may send 1 reports per second") && e.message().contains("retry in"),
        "{}",
        e.message()
    );

    // A message over the size limit.
    let mut big = submission("620982102", "2024-01");
    big.report.as_mut().unwrap().comment = Some("很长的备注".repeat(40));
    let e = county.client().await.submit(big).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("over the limit of 400 bytes per message"), "{}", e.message());

    // A stream over a limit: tests/one_path.rs (`a_refused_stream_stores_nothing_after_the_refusal`).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_whose_certificate_is_revoked_at_the_province_shows_the_refusal_in_its_status() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let county = TestAggregator::spawn(TierSpec::below("620923", &province.url()));
    let mut office = county.client_as(Role::Office, "620923100").await;
    office.submit(submission("620923100", "2024-03")).await.unwrap();
    province.wait_for_rows(WAIT, |r| r.len() == 1);
    let status = |c: &TestAggregator| {
        let out = c.cli(&["status", "--period", "2024-03"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = status(&county);
    assert!(before.contains(&format!("上级 Upstream {}: 正常 delivering", province.url())), "{before}");

    // The province revokes the county's certificate: the next forward is refused, for good.
    pki().revoke(Role::Aggregator, "620923");
    office.submit(submission("620923100", "2024-04")).await.unwrap();
    let t0 = std::time::Instant::now();
    let after = loop {
        let s = status(&county);
        if s.contains("REFUSED") {
            break s;
        }
        assert!(t0.elapsed() < WAIT, "the county never showed the refusal:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(after.contains("UNAUTHENTICATED: the certificate of aggregator 620923"), "{after}");
    assert!(after.contains("is revoked") && after.contains("ask the province for a new certificate"), "{after}");
    // Said once as an error in its log, not retried in a loop: the province stored nothing more.
    let t0 = std::time::Instant::now();
    while !county.log().contains("forwarding stopped") {
        assert!(t0.elapsed() < WAIT, "no error in the log:\n{}", county.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(county.log().matches("forwarding stopped").count(), 1, "{}", county.log());
    assert_eq!(province.rows().len(), 1);
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn plaintext_is_refused_off_loopback_and_tls_is_required_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let registry = support::demo_registry_path();
    let base = ConfigFile { registry: Some(registry), ..ConfigFile::new("620982", "0.0.0.0:0", "data") };
    let run = |config: &Path, extra: &[&str]| {
        Command::new(support::sifa_bin()).arg("aggregator").args(extra).arg("--config").arg(config).output().unwrap()
    };
    let insecure = ConfigFile { tls: Some(TlsConfig::insecure()), ..base.clone() };
    let cfg = write(&dir.path().join("a.toml"), &insecure.to_toml());
    let out = run(&cfg, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plaintext (insecure) is refused on 0.0.0.0"), "{out:?}");
    let cfg = write(&dir.path().join("b.toml"), &base.to_toml());
    let out = run(&cfg, &["--insecure"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is refused"), "{out:?}");
    let out = run(&cfg, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[tls] needs `ca`, `cert` and `key`"), "{out:?}");
}
