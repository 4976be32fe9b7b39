//! Shared end-to-end helpers: a real `sifa aggregator` process in a temporary
//! directory, its gRPC clients, kill -9 and restart, and the rows of its
//! Parquet store (read as docs/STORAGE.md describes, through the store's schema).
//!
//! Every tier runs with mutual TLS, as in production, with certificates of
//! one test CA per test process ([`pki`]); `TierSpec::insecure` is for the
//! tests of plaintext mode itself.
//!
//! Use from a test file with `mod support;`.
#![allow(dead_code)]

pub mod link;
pub mod moto;
pub mod peers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sifa_aggregator::auth::{Identity, Limits, Role};
use sifa_aggregator::config::{ConfigFile, SqlSection};
use sifa_aggregator::disk::DiskConfig;
use sifa_aggregator::http::HttpConfig;
use sifa_pki::{Ca, IssueRequest, init_ca};
use sifa_proto::tls::{TlsConfig, TlsFiles, TlsMode};
use sifa_sim::supervisor::Supervised;

use sifa_proto::Catalog;
use sifa_proto::v1::admin_service_client::AdminServiceClient;
use sifa_proto::v1::directory_service_client::DirectoryServiceClient;
use sifa_proto::v1::report_service_client::ReportServiceClient;
use sifa_proto::v1::{Ack, Provenance, Report, SubmitRequest};
use sifa_store::StoredReport;
use sifa_store::layout;
use tonic::transport::Channel;

/// The demo registry shipped in the repository.
pub fn demo_registry_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/registry/demo.csv")
}

/// The demo's provinces under the nation 100000 (中华人民共和国司法部), shipped in the repository.
pub fn national_registry_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/registry/national.csv")
}

/// The `sifa` binary under test.
pub fn sifa_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sifa")
}

/// What one tier is: the keys of its config file.
#[derive(Debug, Clone)]
pub struct TierSpec {
    pub unit: String,
    /// The tier above, e.g. `other.url()`.
    pub upstream: Option<String>,
    /// The registry file (top tier); lower tiers fetch it from upstream.
    pub registry: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
    pub deadline_day: u8,
    pub flush_interval_ms: u64,
    /// Plaintext on loopback (`[tls] insecure = true`) instead of mutual TLS.
    pub insecure: bool,
    /// The `[limits]` table, if any.
    pub limits: Option<Limits>,
    /// The `[disk]` table, if any.
    pub disk: Option<DiskConfig>,
    /// The `[http]` table, if any.
    pub http: Option<HttpConfig>,
    /// Serve the Flight SQL endpoint (`[sql] listen` on a free loopback port; [`TestAggregator::sql_url`]).
    pub sql: bool,
    /// `store`: the bucket holding the tier's Parquet store, if any (with the AWS_* variables of `env`).
    pub store: Option<String>,
    /// Environment variables of the process.
    pub env: Vec<(&'static str, String)>,
}

impl TierSpec {
    /// A top tier (no upstream) with the demo registry.
    pub fn top(unit: &str) -> TierSpec {
        TierSpec {
            unit: unit.into(),
            upstream: None,
            registry: Some(demo_registry_path()),
            catalog: None,
            deadline_day: 5,
            flush_interval_ms: 100,
            insecure: false,
            limits: None,
            disk: None,
            http: None,
            sql: false,
            store: None,
            env: Vec::new(),
        }
    }

    /// The national tier 100000 at the top, with the national demo registry.
    pub fn nation() -> TierSpec {
        TierSpec { registry: Some(national_registry_path()), ..TierSpec::top("100000") }
    }

    /// A tier forwarding to `upstream` (a URL such as `TestAggregator::url()`).
    pub fn below(unit: &str, upstream: &str) -> TierSpec {
        TierSpec { upstream: Some(upstream.into()), registry: None, ..TierSpec::top(unit) }
    }
}

/// A running (or stopped) `sifa aggregator` process with its own temporary directory.
pub struct TestAggregator {
    pub spec: TierSpec,
    /// Dropped (killed) before its directory is removed.
    process: Supervised,
    dir: tempfile::TempDir,
    /// The listen address written into the config: port 0 at first, then the
    /// bound address, so a restart keeps the URL lower tiers forward to.
    listen: String,
}

impl TestAggregator {
    /// Writes a config for `spec` in a new temporary directory, starts the
    /// aggregator and waits until it has written DATA_DIR/aggregator.addr.
    pub fn spawn(spec: TierSpec) -> TestAggregator {
        TestAggregator::spawn_on(spec, |_| {})
    }

    /// [`TestAggregator::spawn`], calling `prepare` with the (created, empty) data directory first,
    /// e.g. to mount a small file system on it.
    pub fn spawn_on(spec: TierSpec, prepare: impl FnOnce(&Path)) -> TestAggregator {
        let dir = tempfile::Builder::new().prefix(&format!("sifa-agg-{}-", spec.unit)).tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("data")).expect("create the data directory");
        prepare(&dir.path().join("data"));
        let config = dir.path().join("aggregator.toml");
        let addr_file = sifa_store::layout::addr_file(&dir.path().join("data"));
        let mut process = Supervised::aggregator(sifa_bin(), &config, &addr_file, dir.path().join("aggregator.log"))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
        for (k, v) in &spec.env {
            process = process.env(k, v);
        }
        let mut a = TestAggregator { spec, process, dir, listen: "127.0.0.1:0".into() };
        a.start();
        a
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("aggregator.toml")
    }

    /// Everything the process logged since its last start.
    pub fn log(&self) -> String {
        self.process.log_since_start()
    }

    fn write_config(&self) {
        let s = &self.spec;
        let file = ConfigFile {
            upstream: s.upstream.clone(),
            registry: s.registry.clone(),
            catalog: s.catalog.clone(),
            deadline_day: Some(s.deadline_day.into()),
            flush_interval_ms: Some(s.flush_interval_ms as i64),
            limits: s.limits.clone(),
            disk: s.disk.clone(),
            http: s.http.clone(),
            sql: s.sql.then(|| SqlSection { listen: "127.0.0.1:0".into() }),
            store: s.store.clone(),
            tls: Some(if s.insecure { TlsConfig::insecure() } else { tls_config(Role::Aggregator, &s.unit) }),
            ..ConfigFile::new(&s.unit, &self.listen, "data")
        };
        std::fs::write(self.config_path(), file.to_toml()).expect("write config");
    }

    fn start(&mut self) {
        self.write_config();
        match self.process.start() {
            Ok(addr) => self.listen = addr,
            Err(e) => panic!("aggregator {}: {e}", self.spec.unit),
        }
    }

    /// The bound address, e.g. `127.0.0.1:45123`.
    pub fn addr(&self) -> &str {
        self.process.addr().expect("started")
    }

    /// The bound address of the HTTP side (`[http] listen`), e.g. `127.0.0.1:45124`.
    pub fn http_addr(&self) -> String {
        let file = layout::http_addr_file(&self.data_dir());
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}; log:\n{}", file.display(), self.log()))
    }

    /// The URL a client or a lower tier connects to.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.spec.insecure { "http" } else { "https" }, self.addr())
    }

    /// The Flight SQL endpoint's URL (`grpc+tls://127.0.0.1:PORT`, as ADBC spells it; `sifa query --connect`
    /// takes the same address with `https://`), from DATA_DIR/sql.addr.
    pub fn sql_addr(&self) -> String {
        let path = sifa_store::layout::sql_addr_file(&self.data_dir());
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; is `sql: true` in the TierSpec?", path.display()))
            .trim()
            .to_string()
    }

    /// A connection as `role` of `unit` (its certificate; in insecure mode the requests' own claims count).
    pub async fn channel_as(&self, role: Role, unit: &str) -> Channel {
        if self.spec.insecure {
            return Channel::from_shared(self.url()).unwrap().connect().await.expect("connect to aggregator");
        }
        connect(&self.url(), role, unit).await
    }

    /// A client that sends each report along its one path to this tier ([`Submitter`]).
    pub async fn client(&self) -> Submitter {
        Submitter {
            url: self.url(),
            tier_unit: self.spec.unit.clone(),
            insecure: self.spec.insecure,
            registry: sifa_proto::Registry::demo(),
            clients: HashMap::new(),
        }
    }

    /// A client with the certificate of `role` for `unit`.
    pub async fn client_as(&self, role: Role, unit: &str) -> ReportServiceClient<Channel> {
        ReportServiceClient::new(self.channel_as(role, unit).await)
    }

    pub async fn directory(&self) -> DirectoryServiceClient<Channel> {
        DirectoryServiceClient::new(self.channel_as(Role::Aggregator, &self.spec.unit).await)
    }

    /// An admin client of this tier (its admin certificate).
    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel_as(Role::Admin, &self.spec.unit).await)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Stops the process with SIGTERM (graceful shutdown) and waits for it.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(30));
    }

    /// Starts the process again on the same address and data directory (after `kill9` or `stop`).
    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Runs `sifa aggregator ARGS --config CONFIG` (status, lock, override) as this tier's admin
    /// and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(sifa_bin());
        c.arg("aggregator").args(args).arg("--config").arg(self.config_path());
        if !self.spec.insecure {
            let (cert, key) = pki().files(Role::Admin, &self.spec.unit);
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        c.output().expect("run sifa aggregator")
    }

    /// [`TestAggregator::cli`] that must succeed; its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "sifa aggregator {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `status --period P` once it satisfies `pred` (the forwarder reports approvals within seconds).
    pub fn status_when(&self, period: &str, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let text = self.cli_ok(&["status", "--period", period]);
            if pred(&text) {
                return text;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "status never got there:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every row of the Parquet store, as written (a row stored twice shows twice).
    /// A compaction may replace files while they are read; the read is repeated
    /// until the listing is the same before and after it.
    pub fn rows(&self) -> Vec<StoredReport> {
        let data = self.data_dir();
        let catalog = Catalog::load(&data.join(layout::CATALOG_FILE)).unwrap_or_else(|_| Catalog::builtin());
        'again: loop {
            let files = sifa_store::list_files(&data).expect("list store");
            let mut rows = Vec::new();
            for (_, _, path) in &files {
                match sifa_store::read_file(path, &catalog) {
                    Ok(r) => rows.extend(r),
                    Err(_) if !path.exists() => continue 'again,
                    Err(e) => panic!("{e}"),
                }
            }
            if sifa_store::list_files(&data).expect("list store") == files {
                return rows;
            }
        }
    }

    /// The (unit, period) of every row of the store, sorted (a row stored twice shows twice).
    pub fn stored_months(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.rows().into_iter().map(|r| (r.report.unit_code, r.report.period)).collect();
        v.sort();
        v
    }

    /// Polls the store until `pred(rows)` holds, or panics after `timeout`.
    pub fn wait_for_rows(&self, timeout: Duration, pred: impl Fn(&[StoredReport]) -> bool) -> Vec<StoredReport> {
        let t0 = Instant::now();
        loop {
            let rows = self.rows();
            if pred(&rows) {
                return rows;
            }
            assert!(
                t0.elapsed() < timeout,
                "store of {} never reached the expected state; it has {} rows; log:\n{}",
                self.spec.unit,
                rows.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends each report along its one path to a tier (docs/SECURITY.md): with the certificate of the
/// report's own unit when the tier is directly above it; otherwise forwarded by the aggregator below
/// the tier on the way to the unit, with the provenance the tier directly above the unit gave it
/// (received now) unless the request has one. A unit outside the tier's subtree is sent with its own
/// certificate (and refused).
pub struct Submitter {
    url: String,
    tier_unit: String,
    insecure: bool,
    registry: sifa_proto::Registry,
    clients: HashMap<(Role, String), ReportServiceClient<Channel>>,
}

impl Submitter {
    /// Who sends `record` to the tier, and the provenance it adds.
    fn path(&self, record: &SubmitRequest) -> (Role, String, Option<Provenance>) {
        let unit = record.report.as_ref().map_or("", |r| r.unit_code.as_str());
        let chain: Vec<&sifa_proto::Unit> = self.registry.ancestry(unit).collect();
        match chain.iter().position(|u| u.code == self.tier_unit.as_str()) {
            Some(i) if i >= 2 => {
                let first = Provenance {
                    first_accepted_by: chain[1].code.to_string(),
                    received_at_ms: sifa_proto::period::now_unix_ms(),
                };
                (Role::Aggregator, chain[i - 1].code.to_string(), Some(first))
            }
            _ if unit.parse::<sifa_proto::UnitCode>().is_ok() => (Role::Office, unit.to_string(), None),
            _ => (Role::Aggregator, self.tier_unit.clone(), None),
        }
    }

    async fn client_for(&mut self, role: Role, unit: &str) -> &mut ReportServiceClient<Channel> {
        if !self.clients.contains_key(&(role, unit.to_string())) {
            let channel = if self.insecure {
                Channel::from_shared(self.url.clone()).unwrap().connect().await.expect("connect to aggregator")
            } else {
                connect(&self.url, role, unit).await
            };
            self.clients.insert((role, unit.to_string()), ReportServiceClient::new(channel));
        }
        self.clients.get_mut(&(role, unit.to_string())).expect("inserted")
    }

    /// One report, as `Submit`.
    pub async fn submit(
        &mut self,
        request: impl tonic::IntoRequest<SubmitRequest>,
    ) -> Result<tonic::Response<Ack>, tonic::Status> {
        let mut request = request.into_request();
        let (role, unit, provenance) = self.path(request.get_ref());
        if request.get_ref().provenance.is_none() {
            request.get_mut().provenance = provenance;
        }
        self.client_for(role, &unit).await.submit(request).await
    }

    /// Reports of one unit on one `SubmitStream`.
    pub async fn submit_stream(
        &mut self,
        records: Vec<SubmitRequest>,
    ) -> Result<tonic::Response<tonic::Streaming<Ack>>, tonic::Status> {
        let (role, unit, _) = self.path(records.first().expect("a report to send"));
        let records: Vec<SubmitRequest> = records
            .into_iter()
            .map(|mut r| {
                let (r_role, r_unit, provenance) = self.path(&r);
                assert_eq!((r_role, &r_unit), (role, &unit), "one stream carries reports of one path");
                if r.provenance.is_none() {
                    r.provenance = provenance;
                }
                r
            })
            .collect();
        self.client_for(role, &unit).await.submit_stream(tokio_stream::iter(records)).await
    }
}

/// A report of `unit` for `period`, revision `revision`, with `values`.
pub fn report(unit: &str, period: &str, revision: u64, values: &[(&str, f64)]) -> Report {
    Report {
        unit_code: unit.into(),
        period: period.into(),
        revision,
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        comment: None,
        generated_at_ms: 1_711_000_000_000,
        generator: "sifa-test/1".into(),
    }
}

/// A gRPC request carrying the `x-sifa-sender` metadata.
pub fn from_sender<T>(sender: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(sifa_proto::SENDER_METADATA_KEY, sender.parse().expect("ascii sender"));
    r
}

/// A submission as an agent of `report.unit_code` sends it (sender = the unit itself).
pub fn as_agent(report: Report) -> tonic::Request<SubmitRequest> {
    let sender = report.unit_code.clone();
    from_sender(&sender, SubmitRequest { report: Some(report), provenance: None })
}

/// The test CA of this test process, in a temporary directory kept until the process ends, and the
/// certificates it issued (made on first use).
pub struct TestPki {
    pub dir: PathBuf,
    issued: Mutex<std::collections::HashSet<(Role, String)>>,
}

/// The test CA (created on first use).
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("sifa-test-pki-").tempdir().expect("temp dir").keep();
        init_ca(&dir.join("ca"), "test province", 30).expect("test CA");
        TestPki { dir, issued: Mutex::new(Default::default()) }
    })
}

impl TestPki {
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join("ca.pem")
    }

    pub fn crl(&self) -> PathBuf {
        self.ca_dir().join("crl.pem")
    }

    /// The certificate and key of `role` for `unit`, issued by the test CA on first use.
    pub fn files(&self, role: Role, unit: &str) -> (PathBuf, PathBuf) {
        let stem = self.dir.join(format!("{role}-{unit}"));
        let (cert, key) = (stem.with_extension("pem"), stem.with_extension("key"));
        let mut issued = self.issued.lock().unwrap();
        if issued.insert((role, unit.to_string())) {
            let ca = Ca::load(&self.ca_dir()).expect("test CA");
            let id = Identity::new(role, unit.parse().expect("unit code"));
            ca.issue(&IssueRequest::new(id, 30)).expect("issue").write_to(&self.dir).expect("write certificate");
        }
        (cert, key)
    }
}

impl TestPki {
    /// Revokes the certificate of `role` for `unit` with the real `sifa pki revoke`, as a province would.
    pub fn revoke(&self, role: Role, unit: &str) {
        let (cert, _) = self.files(role, unit);
        let out = Command::new(sifa_bin())
            .args(["pki", "revoke", "--reason", "key-compromise", "--ca"])
            .arg(self.ca_dir())
            .arg("--cert")
            .arg(&cert)
            .output()
            .expect("run sifa pki revoke");
        assert!(out.status.success(), "sifa pki revoke: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The `[tls]` table of a config for `role` of `unit` (servers also get the revocation list).
pub fn tls_config(role: Role, unit: &str) -> TlsConfig {
    let p = pki();
    let (cert, key) = p.files(role, unit);
    TlsConfig::secure(TlsFiles { ca: p.ca_cert(), cert, key }, (role == Role::Aggregator).then(|| p.crl()))
}

/// A mutual-TLS connection to `url` as `role` of `unit`.
pub async fn connect(url: &str, role: Role, unit: &str) -> Channel {
    try_connect(url, role, unit).await.expect("connect to aggregator")
}

/// [`connect`], or the transport's error.
pub async fn try_connect(url: &str, role: Role, unit: &str) -> Result<Channel, tonic::transport::Error> {
    let (cert, key) = pki().files(role, unit);
    let files = TlsFiles { ca: pki().ca_cert(), cert, key };
    let mode = TlsMode::Secure { files, crl: None };
    sifa_proto::tls::endpoint(url, &mode).expect("endpoint").connect().await
}

/// An `[http]` table on a free loopback port: plaintext, or HTTPS with client certificates.
pub fn http_on_loopback(https: bool) -> Option<HttpConfig> {
    Some(HttpConfig { listen: "127.0.0.1:0".into(), https })
}

/// A plain HTTP/1.1 GET of `path` from `addr` (a loopback HTTP side): the status code, the headers
/// (names lower-case) and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("read GET {path} from {addr}: {e}"));
    let raw = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers: {raw}"));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect(head);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    (status, headers, if chunked { dechunk(body) } else { body.to_string() })
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}
