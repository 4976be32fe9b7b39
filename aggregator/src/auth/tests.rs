//! Tests of certificates of the CA, the revocation list, every authorization rule, the limits, and
//! mutual TLS over real sockets. Every certificate is made by [`pki`].

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;

use sifa_pki::{self as pki, Ca, IssueRequest, Issued};
use sifa_proto::Registry;
use sifa_proto::certificate::{pem_block, serial_hex};
use sifa_proto::upstream::RETRY_AFTER_MS_METADATA_KEY;
use tonic::{Request, Status};

use super::*;

fn registry() -> Registry {
    Registry::demo()
}

fn id(role: Role, unit: &str) -> Identity {
    Identity::new(role, unit.parse().unwrap())
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from(pem_block(pem.as_bytes(), "CERTIFICATE").expect("PEM certificate"))
}

fn new_ca(dir: &Path) -> Ca {
    pki::init_ca(dir, "甘肃省司法厅", pki::CA_DAYS).unwrap();
    Ca::load(dir).unwrap()
}

fn issue(ca: &Ca, role: Role, unit: &str) -> Issued {
    ca.issue(&IssueRequest::new(id(role, unit), 30)).unwrap()
}

fn expired(ca: &Ca, role: Role, unit: &str) -> Issued {
    let mut req = IssueRequest::new(id(role, unit), 30);
    req.not_before = SystemTime::now() - Duration::from_secs(10 * 86_400);
    req.not_after = SystemTime::now() - Duration::from_secs(86_400);
    ca.issue(&req).unwrap()
}

/// The refusal as a caller sees it (through `crate::status`, the one map to gRPC).
fn assert_status<T: std::fmt::Debug, E: Into<Status>>(r: Result<T, E>, code: Code, needles: &[&str]) {
    let e: Status = r.map_err(Into::into).expect_err("expected a refusal");
    assert_eq!(e.code(), code, "{}", e.message());
    for n in needles {
        assert!(e.message().contains(n), "{:?} lacks {n:?}", e.message());
    }
}

// ---------------------------------------------------------------------------
// the CA

#[test]
fn revocation_reaches_a_loaded_list_without_reloading_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path());
    let a = issue(&ca, Role::Office, "620902001");
    let b = issue(&ca, Role::Office, "620902002");
    let list = RevocationList::load(&ca.paths().crl, ca.cert_pem().as_bytes()).unwrap();
    assert!(!list.is_revoked(&a.serial));

    let entry = ca.revoke_cert(a.cert_pem.as_bytes(), "key-compromise: laptop stolen").unwrap();
    assert_eq!(entry.identity, "urn:sifa:office:620902001");
    assert!(list.is_revoked(&a.serial), "picked up on use, no restart");
    assert!(!list.is_revoked(&b.serial));

    // By serial (a lost file), the identity from issued.csv; revoking twice is harmless.
    let entry = ca.revoke_serial(&b.serial.to_uppercase(), "superseded").unwrap();
    assert_eq!(entry.identity, "urn:sifa:office:620902002");
    assert!(list.is_revoked(&b.serial));
    assert_eq!(ca.revoke_serial(&b.serial, "again").unwrap().reason, "superseded");
    let record = ca.revoked_record().unwrap();
    assert_eq!(record.revoked.len(), 2);
    assert!(record.crl_number >= 3, "init, then two revocations");
    assert!(ca.revoke_serial("xyz", "").unwrap_err().to_string().contains("not hex"));

    // The CRL is a real one: parsed independently, it lists both serials.
    let crl_pem = std::fs::read(&ca.paths().crl).unwrap();
    let crl_der = pem_block(&crl_pem, "X509 CRL").unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
    let serials: Vec<String> = crl.iter_revoked_certificates().map(|r| serial_hex(r.raw_serial())).collect();
    assert!(serials.contains(&a.serial) && serials.contains(&b.serial));

    // A damaged file keeps the last good list in force.
    std::fs::write(&ca.paths().crl, b"garbage, not a CRL at all").unwrap();
    assert!(list.reload_if_changed().unwrap_err().to_string().contains("not an X.509 CRL"));
    assert!(list.is_revoked(&a.serial));
    assert_eq!(list.len(), 2);
}

#[test]
fn a_foreign_ca_cannot_revoke_or_sign_our_crl() {
    let dir = tempfile::tempdir().unwrap();
    let ours = new_ca(&dir.path().join("ours"));
    let theirs = new_ca(&dir.path().join("theirs"));
    let foreign = issue(&theirs, Role::Office, "620902001");
    let e = ours.revoke_cert(foreign.cert_pem.as_bytes(), "").unwrap_err().to_string();
    assert!(e.contains("was not issued by the CA"), "{e}");
    // Their CRL (same subject name, other key) is refused as ours.
    let e = RevocationList::load(&theirs.paths().crl, ours.cert_pem().as_bytes()).unwrap_err().to_string();
    assert!(e.contains("signature is not the CA's"), "{e}");
    let e = RevocationList::load(&dir.path().join("missing.pem"), ours.cert_pem().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

// ---------------------------------------------------------------------------
// authentication

#[test]
fn authenticate_refuses_missing_foreign_identityless_expired_and_revoked_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path());
    let list = RevocationList::load(&ca.paths().crl, ca.cert_pem().as_bytes()).unwrap();
    let good = issue(&ca, Role::Office, "620902001");
    assert_eq!(authenticate(Some(&[der(&good.cert_pem)]), &list).unwrap(), id(Role::Office, "620902001"));

    assert_status(authenticate(None, &list), Code::Unauthenticated, &["no client certificate"]);
    assert_status(authenticate(Some(&[]), &list), Code::Unauthenticated, &["no client certificate"]);
    let junk = CertificateDer::from(vec![1u8, 2, 3]);
    assert_status(authenticate(Some(&[junk]), &list), Code::Unauthenticated, &["not an X.509 certificate"]);

    // A certificate without a sifa identity.
    let key = rcgen::KeyPair::generate().unwrap();
    let plain = rcgen::CertificateParams::new(vec!["example.org".to_string()]).unwrap().self_signed(&key).unwrap();
    assert_status(
        authenticate(Some(&[plain.der().clone()]), &list),
        Code::Unauthenticated,
        &["names no sifa identity"],
    );

    let old = expired(&ca, Role::Office, "620902003");
    assert_status(
        authenticate(Some(&[der(&old.cert_pem)]), &list),
        Code::Unauthenticated,
        &["office 620902003", "expired", &old.serial],
    );

    ca.revoke_cert(good.cert_pem.as_bytes(), "").unwrap();
    assert_status(
        authenticate(Some(&[der(&good.cert_pem)]), &list),
        Code::Unauthenticated,
        &["office 620902001", "revoked"],
    );
}

#[test]
fn without_tls_a_caller_is_taken_at_its_word_only_as_far_as_the_registry_allows() {
    let reg = registry();
    let auth = Authenticator::InsecureLoopback;
    let ask = |pairs: &[(&'static str, &str)]| {
        let mut md = MetadataMap::new();
        for (k, v) in pairs {
            md.insert(*k, v.parse().unwrap());
        }
        auth.identify_parts(None, &md, &reg)
    };
    assert_eq!(ask(&[(IDENTITY_METADATA_KEY, "urn:sifa:admin:62")]).unwrap(), id(Role::Admin, "62"));
    assert_eq!(ask(&[(sifa_proto::SENDER_METADATA_KEY, "620902001")]).unwrap(), id(Role::Office, "620902001"));
    assert_eq!(ask(&[(sifa_proto::SENDER_METADATA_KEY, "620902900")]).unwrap(), id(Role::Office, "620902900"));
    assert_eq!(ask(&[(sifa_proto::SENDER_METADATA_KEY, "620902")]).unwrap(), id(Role::Aggregator, "620902"));
    assert_status(ask(&[]), Code::Unauthenticated, &["no identity", IDENTITY_METADATA_KEY]);
    assert_status(ask(&[(sifa_proto::SENDER_METADATA_KEY, "999")]), Code::Unauthenticated, &["999"]);
    assert_status(ask(&[(IDENTITY_METADATA_KEY, "urn:sifa:king:62")]), Code::Unauthenticated, &["no role"]);
    // With TLS the metadata is ignored: only a certificate counts.
    let tls = Authenticator::Tls { revocations: RevocationList::none(), certificates: Default::default() };
    let mut md = MetadataMap::new();
    md.insert(IDENTITY_METADATA_KEY, "urn:sifa:admin:62".parse().unwrap());
    assert_status(tls.identify_parts(None, &md, &reg), Code::Unauthenticated, &["no client certificate"]);
}

#[test]
fn a_certificate_read_once_per_connection_is_still_checked_for_revocation_and_expiry_on_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path());
    let list = RevocationList::load(&ca.paths().crl, ca.cert_pem().as_bytes()).unwrap();
    let tls = Authenticator::Tls { revocations: list, certificates: Default::default() };
    let reg = Registry::demo();
    let md = MetadataMap::new();
    let good = issue(&ca, Role::Office, "620902001");
    let old = expired(&ca, Role::Office, "620902003");
    for _ in 0..2 {
        assert_eq!(tls.identify_parts(Some(&[der(&good.cert_pem)]), &md, &reg).unwrap(), id(Role::Office, "620902001"));
        let e = tls.identify_parts(Some(&[der(&old.cert_pem)]), &md, &reg);
        assert_status(e, Code::Unauthenticated, &["office 620902003", "expired"]);
    }
    // Revoked after its certificate was read: the next call is refused.
    ca.revoke_cert(good.cert_pem.as_bytes(), "").unwrap();
    let e = tls.identify_parts(Some(&[der(&good.cert_pem)]), &md, &reg);
    assert_status(e, Code::Unauthenticated, &["office 620902001", "revoked"]);
}

// ---------------------------------------------------------------------------
// authorization

#[test]
fn the_nation_takes_forwards_only_from_its_provinces_of_their_own_subtrees() {
    let reg = Registry::demo_national();
    let nation = "100000";
    assert!(authorize_submit(&id(Role::Aggregator, "62"), "620982101", nation, &reg).is_ok());
    assert!(authorize_provenance(&id(Role::Aggregator, "62"), "620982", "620982101", &reg).is_ok());
    assert!(authorize_submit(&id(Role::Aggregator, "21"), "210000910", nation, &reg).is_ok());
    // A county or a city straight to the nation: refused, naming the province to go through.
    for below in ["620982", "6209"] {
        assert_status(
            authorize_submit(&id(Role::Aggregator, below), "620982101", nation, &reg),
            Code::PermissionDenied,
            &[
                &format!("aggregator {below} may not forward to the national tier (100000)"),
                "only from its provinces' aggregators; forward to 62 (甘肃省)'s aggregator",
            ],
        );
    }
    // A province forwarding a unit of the other province.
    assert_status(
        authorize_submit(&id(Role::Aggregator, "21"), "620982101", nation, &reg),
        Code::PermissionDenied,
        &["aggregator 21 may not forward a report for unit 620982101: it is not in 21's subtree"],
    );
    // An office straight to the nation, and the nation forwarding to itself.
    assert_status(
        authorize_submit(&id(Role::Office, "620982101"), "620982101", nation, &reg),
        Code::PermissionDenied,
        &["reports only to the tier directly above it, 620982 (敦煌市)"],
    );
    assert_status(
        authorize_submit(&id(Role::Aggregator, nation), "620982101", nation, &reg),
        Code::PermissionDenied,
        &["aggregator 100000 may not forward to this tier (100000)"],
    );
    // Below the nation, a county still forwards straight to its province.
    assert!(authorize_submit(&id(Role::Aggregator, "620982"), "620982101", "62", &reg).is_ok());
    // A national admin administers the provinces' tiers; a province's admin not the nation's.
    assert!(authorize_admin(&id(Role::Admin, nation), "62", &reg).is_ok());
    assert!(authorize_admin(&id(Role::Admin, "62"), nation, &reg).is_err());
}

#[test]
fn an_office_submits_only_its_own_reports_and_only_to_the_tier_above_it() {
    let reg = registry();
    let me = id(Role::Office, "620902001");
    assert!(authorize_submit(&me, "620902001", "620902", &reg).is_ok());
    assert!(authorize_own_report(&me, "620902001", "620902", &reg).is_ok());
    assert_status(
        authorize_submit(&me, "620902002", "620902", &reg),
        Code::PermissionDenied,
        &["office 620902001", "620902002", "only its own"],
    );
    // Straight to the city or the province: refused, naming the county it reports through.
    for tier in ["6209", "62"] {
        assert_status(
            authorize_submit(&me, "620902001", tier, &reg),
            Code::PermissionDenied,
            &[
                "office 620902001 reports only to the tier directly above it, 620902 (肃州区)",
                &format!("this tier is {tier}: send the report to 620902's aggregator"),
            ],
        );
    }
    // A mediation centre is an office for this purpose; a city's bureau reports to the city.
    assert!(authorize_submit(&id(Role::Office, "620902900"), "620902900", "620902", &reg).is_ok());
    assert!(authorize_submit(&id(Role::Office, "620900901"), "620900901", "6209", &reg).is_ok());
    assert_status(
        authorize_submit(&id(Role::Office, "620900901"), "620900901", "62", &reg),
        Code::PermissionDenied,
        &["6209 (酒泉市)"],
    );
    // Roles that fit no unit kind, and units the registry does not know.
    assert_status(
        authorize_submit(&id(Role::Office, "620902"), "620902", "6209", &reg),
        Code::PermissionDenied,
        &["county"],
    );
    assert_status(
        authorize_submit(&id(Role::Office, "999999999"), "999999999", "620902", &reg),
        Code::PermissionDenied,
        &["not in this tier's registry"],
    );
    assert_status(
        authorize_own_report(&id(Role::Aggregator, "620902"), "620902001", "6209", &reg),
        Code::PermissionDenied,
        &["not an office"],
    );
    // Analysts and admins submit nothing.
    for role in [Role::Analyst, Role::Admin] {
        assert_status(
            authorize_submit(&id(role, "620902"), "620902001", "620902", &reg),
            Code::PermissionDenied,
            &["may not submit reports"],
        );
    }
}

#[test]
fn an_aggregator_forwards_only_its_subtree_and_only_upward() {
    let reg = registry();
    let county = id(Role::Aggregator, "620902");
    for tier in ["6209", "62"] {
        assert!(authorize_submit(&county, "620902001", tier, &reg).is_ok());
        assert!(authorize_forward(&county, "620902900", tier, &reg).is_ok());
    }
    assert_status(
        authorize_submit(&county, "620921100", "6209", &reg),
        Code::PermissionDenied,
        &["aggregator 620902", "620921100", "subtree"],
    );
    assert_status(
        authorize_forward(&county, "does-not-exist", "6209", &reg),
        Code::PermissionDenied,
        &["does-not-exist"],
    );
    // Not to itself, a sibling or a tier below it.
    for tier in ["620902", "620921", "620902001"] {
        assert_status(
            authorize_submit(&county, "620902001", tier, &reg),
            Code::PermissionDenied,
            &[
                &format!("aggregator 620902 may not forward to this tier ({tier})"),
                "only from the aggregators below it",
            ],
        );
    }
    let city = id(Role::Aggregator, "6209");
    assert!(authorize_submit(&city, "620921100", "62", &reg).is_ok());
    assert!(authorize_submit(&city, "620900901", "62", &reg).is_ok(), "the city bureau is under the city");
    assert_status(authorize_submit(&city, "620702900", "62", &reg), Code::PermissionDenied, &["620702900"]);
    assert_status(
        authorize_forward(&id(Role::Office, "620902001"), "620902001", "620902", &reg),
        Code::PermissionDenied,
        &["not an aggregator"],
    );
}

#[test]
fn a_provenance_names_the_tier_directly_above_the_unit_inside_the_senders_subtree() {
    let reg = registry();
    let city = id(Role::Aggregator, "6209");
    let office = id(Role::Office, "620902001");
    assert!(authorize_provenance(&office, "", "620902001", &reg).is_ok());
    assert!(authorize_provenance(&city, "620902", "620902001", &reg).is_ok());
    assert!(authorize_provenance(&city, "6209", "620900901", &reg).is_ok(), "the city took its bureau's report");
    // Not a tier that never took the unit's report from the unit itself.
    for wrong in ["6209", "620921", "62", "620902001", "620702"] {
        assert_status(
            authorize_provenance(&city, wrong, "620902001", &reg),
            Code::PermissionDenied,
            &[&format!("aggregator 6209 may not forward a provenance naming {wrong}"), "directly above it (620902)"],
        );
    }
    assert_status(
        authorize_provenance(&city, "", "620902001", &reg),
        Code::PermissionDenied,
        &["without its provenance"],
    );
    assert_status(
        authorize_provenance(&office, "620902", "620902001", &reg),
        Code::PermissionDenied,
        &["office 620902001"],
    );
}

#[test]
fn directory_calls_answer_only_for_the_callers_subtree() {
    let reg = registry();
    let county = "620902";
    // An office of the county: its own unit only.
    let office = id(Role::Office, "620902001");
    assert!(authorize_catalog(&office, county, &reg).is_ok());
    assert_eq!(authorize_subtree(&office, "", county, &reg).unwrap(), "620902001");
    assert_eq!(authorize_subtree(&office, "620902001", county, &reg).unwrap(), "620902001");
    assert_status(
        authorize_subtree(&office, "620902", county, &reg),
        Code::PermissionDenied,
        &["office 620902001", "620902"],
    );
    assert_status(authorize_subtree(&office, "620902002", county, &reg), Code::PermissionDenied, &["620902002"]);
    // A neighbouring county's office or county asks this county nothing.
    let neighbour = id(Role::Office, "620921100");
    assert_status(authorize_catalog(&neighbour, county, &reg), Code::PermissionDenied, &["neither within nor above"]);
    assert_status(
        authorize_subtree(&id(Role::Analyst, "620921"), "", county, &reg),
        Code::PermissionDenied,
        &["620902"],
    );
    // A city analyst asking the county sees the county's subtree, and may narrow it.
    let city = id(Role::Analyst, "6209");
    assert_eq!(authorize_subtree(&city, "", county, &reg).unwrap(), "620902");
    assert_eq!(authorize_subtree(&city, " 620902001 ", county, &reg).unwrap(), "620902001");
    assert_status(authorize_subtree(&city, "620921", county, &reg), Code::PermissionDenied, &["620921"]);
    // At the province, the city analyst sees its city.
    assert_eq!(authorize_subtree(&city, "", "62", &reg).unwrap(), "6209");
    assert_status(authorize_subtree(&city, "6207", "62", &reg), Code::PermissionDenied, &["6207"]);
}

#[test]
fn the_sql_endpoint_serves_analysts_admins_and_the_tier_itself_each_its_subtree() {
    let reg = registry();
    let province = "62";
    assert_eq!(authorize_sql(&id(Role::Analyst, "620902"), province, &reg).unwrap(), "620902");
    assert_eq!(authorize_sql(&id(Role::Admin, "6209"), province, &reg).unwrap(), "6209");
    assert_eq!(authorize_sql(&id(Role::Aggregator, "62"), province, &reg).unwrap(), "62");
    // A province analyst asking a county sees the county's store, not more.
    assert_eq!(authorize_sql(&id(Role::Analyst, "62"), "620902", &reg).unwrap(), "620902");
    assert_status(authorize_sql(&id(Role::Analyst, "620921"), "620902", &reg), Code::PermissionDenied, &["neither"]);
    for (role, unit) in [(Role::Office, "620902001"), (Role::Aggregator, "620902")] {
        assert_status(
            authorize_sql(&id(role, unit), province, &reg),
            Code::PermissionDenied,
            &["may not query", "--role analyst"],
        );
    }
}

#[test]
fn lock_and_override_need_an_admin_of_this_tier_or_above() {
    let reg = registry();
    assert!(authorize_admin(&id(Role::Admin, "620902"), "620902", &reg).is_ok());
    assert!(authorize_admin(&id(Role::Admin, "6209"), "620902", &reg).is_ok());
    assert!(authorize_admin(&id(Role::Admin, "62"), "620902", &reg).is_ok());
    assert_status(
        authorize_admin(&id(Role::Admin, "620921"), "620902", &reg),
        Code::PermissionDenied,
        &["admin 620921", "620902"],
    );
    assert_status(authorize_admin(&id(Role::Admin, "620902"), "6209", &reg), Code::PermissionDenied, &["6209"]);
    for role in [Role::Aggregator, Role::Analyst] {
        assert_status(
            authorize_admin(&id(role, "620902"), "620902", &reg),
            Code::PermissionDenied,
            &["needs an admin certificate"],
        );
    }
    assert_status(
        authorize_admin(&id(Role::Office, "620902001"), "620902", &reg),
        Code::PermissionDenied,
        &["office 620902001"],
    );
}

#[test]
fn the_status_page_and_metrics_need_an_analyst_or_admin_of_this_tier_or_above() {
    let reg = registry();
    for role in [Role::Analyst, Role::Admin] {
        assert!(authorize_operator(&id(role, "620902"), "620902", &reg).is_ok());
        assert!(authorize_operator(&id(role, "62"), "620902", &reg).is_ok());
        // A county's analyst does not see its city's tier, nor a neighbour's.
        assert_status(authorize_operator(&id(role, "620902"), "6209", &reg), Code::PermissionDenied, &["6209"]);
        assert_status(
            authorize_operator(&id(role, "620921"), "620902", &reg),
            Code::PermissionDenied,
            &["620921", "620902"],
        );
    }
    assert_status(
        authorize_operator(&id(Role::Aggregator, "620902"), "620902", &reg),
        Code::PermissionDenied,
        &["needs an analyst or admin certificate"],
    );
    assert_status(
        authorize_operator(&id(Role::Office, "620902001"), "620902", &reg),
        Code::PermissionDenied,
        &["office 620902001"],
    );
}

// ---------------------------------------------------------------------------
// limits

#[test]
fn message_size_and_stream_length_limits_are_resource_exhausted() {
    let limits = Limits { max_message_bytes: 100, max_reports_per_stream: 3, ..Limits::default() };
    let me = id(Role::Office, "620902001");
    assert!(limits.check_message_size(&me, 100).is_ok());
    assert_status(limits.check_message_size(&me, 101), Code::ResourceExhausted, &["101 bytes", "100 bytes", "office"]);
    assert!((1..=3).all(|n| limits.check_stream_count(&me, n).is_ok()));
    assert_status(limits.check_stream_count(&me, 4), Code::ResourceExhausted, &["more than 3", "new stream"]);
    let parsed: Limits = toml::from_str("max_reports_per_stream = 5").unwrap();
    assert_eq!(parsed.max_reports_per_stream, 5);
    assert_eq!(parsed.max_message_bytes, Limits::default().max_message_bytes);
    assert!(toml::from_str::<Limits>("max_reports = 5").is_err());
}

#[test]
fn the_rate_limiter_is_a_token_bucket_per_identity() {
    let limiter = RateLimiter::new(10, 3);
    let a = id(Role::Office, "620902001");
    let b = id(Role::Office, "620902002");
    let t0 = Instant::now();
    for _ in 0..3 {
        limiter.check_at(&a, t0).unwrap();
    }
    let e = Status::from(limiter.check_at(&a, t0).unwrap_err());
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("office 620902001 may send 10 reports per second"), "{}", e.message());
    assert!(e.message().contains("retry in 100 ms"), "{}", e.message());
    assert_eq!(e.metadata().get(RETRY_AFTER_MS_METADATA_KEY).unwrap(), "100");
    // Another identity has its own bucket.
    limiter.check_at(&b, t0).unwrap();
    // A token every 100 ms, never more than the burst.
    assert!(limiter.check_at(&a, t0 + Duration::from_millis(50)).is_err());
    limiter.check_at(&a, t0 + Duration::from_millis(110)).unwrap();
    assert!(limiter.check_at(&a, t0 + Duration::from_millis(120)).is_err());
    let later = t0 + Duration::from_secs(60);
    for _ in 0..3 {
        limiter.check_at(&a, later).unwrap();
    }
    assert!(limiter.check_at(&a, later).is_err());
}

// ---------------------------------------------------------------------------
// mutual TLS over real sockets

mod sockets {
    use std::sync::{Arc, Mutex};

    use sifa_proto::tls::{TlsFiles, TlsMode, endpoint};
    use sifa_proto::v1::directory_service_client::DirectoryServiceClient;
    use sifa_proto::v1::directory_service_server::{DirectoryService, DirectoryServiceServer};
    use sifa_proto::v1::{
        CatalogDocument, CompletenessReport, CompletenessRequest, GetCatalogRequest, GetRegistryRequest,
        RegistryDocument,
    };
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    use tonic::{Response, Status};

    use super::super::tls::ServerSecurity;
    use super::*;

    /// A directory whose catalog answers with the caller's identity, and records each caller.
    struct Echo {
        auth: Authenticator,
        registry: Registry,
        seen: Arc<Mutex<Vec<Identity>>>,
    }

    #[tonic::async_trait]
    impl DirectoryService for Echo {
        async fn get_catalog(&self, request: Request<GetCatalogRequest>) -> Result<Response<CatalogDocument>, Status> {
            let who = self.auth.identify(&request, &self.registry)?;
            authorize_catalog(&who, "620902", &self.registry)?;
            self.seen.lock().unwrap().push(who.clone());
            Ok(Response::new(CatalogDocument { version: who.uri(), toml: String::new() }))
        }
        async fn get_registry(&self, _: Request<GetRegistryRequest>) -> Result<Response<RegistryDocument>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn get_completeness(
            &self,
            _: Request<CompletenessRequest>,
        ) -> Result<Response<CompletenessReport>, Status> {
            Err(Status::unimplemented("test"))
        }
    }

    fn write(dir: &Path, issued: &Issued) -> (std::path::PathBuf, std::path::PathBuf) {
        issued.write_to(dir).unwrap()
    }

    async fn call(ep: Endpoint) -> Result<String, Status> {
        let channel = ep
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("connect: {e:?}")))?;
        let mut client = DirectoryServiceClient::new(channel);
        Ok(client.get_catalog(GetCatalogRequest::default()).await?.into_inner().version)
    }

    #[tokio::test]
    async fn only_a_valid_unrevoked_certificate_of_our_ca_gets_through() {
        let dir = tempfile::tempdir().unwrap();
        let ca = new_ca(&dir.path().join("ca"));
        let other = new_ca(&dir.path().join("other-ca"));
        let certs = dir.path().join("certs");

        let server = ca.issue(&IssueRequest::new(id(Role::Aggregator, "620902"), 30)).unwrap();
        let (server_cert, server_key) = write(&certs, &server);
        let server_files = TlsFiles { ca: ca.paths().cert.clone(), cert: server_cert, key: server_key };
        let security = ServerSecurity::secure(&server_files, Some(&ca.paths().crl)).unwrap();

        let seen = Arc::new(Mutex::new(Vec::new()));
        let svc = Echo { auth: security.authenticator, registry: registry(), seen: seen.clone() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = security.tls.unwrap();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let failed = failures.clone();
        let server_task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(DirectoryServiceServer::new(svc))
                .serve_with_incoming(super::super::tls::tls_incoming(listener, tls, move |reason| {
                    failed.lock().unwrap().push(reason)
                }))
                .await
                .unwrap();
        });
        let url = format!("https://127.0.0.1:{port}");
        let mode_for = |issued: &Issued| {
            let sub = certs.join(format!("{}", issued.serial));
            let (cert, key) = write(&sub, issued);
            TlsMode::Secure { files: TlsFiles { ca: ca.paths().cert.clone(), cert, key }, crl: None }
        };

        // A good certificate works, and the server sees who it is.
        let good = issue(&ca, Role::Office, "620902001");
        let good_mode = mode_for(&good);
        assert_eq!(call(endpoint(&url, &good_mode).unwrap()).await.unwrap(), "urn:sifa:office:620902001");
        // Also by name (localhost is in every aggregator's certificate).
        let by_name = endpoint(&format!("https://localhost:{port}"), &good_mode).unwrap();
        assert_eq!(call(by_name).await.unwrap(), "urn:sifa:office:620902001");
        assert_eq!(seen.lock().unwrap().len(), 2);

        // A valid identity of another county: through TLS, then refused by authorization.
        let neighbour = issue(&ca, Role::Office, "620921100");
        let e = call(endpoint(&url, &mode_for(&neighbour)).unwrap()).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

        // Refused at the handshake: another CA's certificate, an expired one, none at all, plaintext.
        let foreign = issue(&other, Role::Office, "620902001");
        let e = call(endpoint(&url, &mode_for(&foreign)).unwrap()).await.expect_err("foreign CA");
        // Same CA name, other key: the signature check fails (UnknownCA for a CA of another name).
        assert!(format!("{e:?}").contains("DecryptError") || format!("{e:?}").contains("UnknownCA"), "{e:?}");
        let old = expired(&ca, Role::Office, "620902001");
        let e = call(endpoint(&url, &mode_for(&old)).unwrap()).await.expect_err("expired");
        assert!(format!("{e:?}").contains("CertificateExpired"), "{e:?}");
        let no_cert =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.cert_pem())).domain_name("127.0.0.1");
        let ep = Endpoint::from_shared(url.clone()).unwrap().tls_config(no_cert).unwrap();
        let e = call(ep).await.expect_err("no client certificate");
        assert!(format!("{e:?}").contains("CertificateRequired"), "{e:?}");
        let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        let e = call(plain).await.expect_err("plaintext to a TLS port");
        assert!(matches!(e.code(), Code::Unknown | Code::Unavailable | Code::Internal), "{e:?}");
        assert_eq!(seen.lock().unwrap().len(), 2, "no refused caller reached the service");
        // Each failed handshake was told, with its reason.
        let t0 = std::time::Instant::now();
        let expected = ["certificate_expired", "no_client_certificate", "protocol"];
        while !expected.iter().all(|r| failures.lock().unwrap().contains(r)) {
            assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", failures.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(failures.lock().unwrap().len(), 4, "{:?}", failures.lock().unwrap());

        // Revoked after it connected: the running server refuses it, no restart.
        let channel = endpoint(&url, &good_mode).unwrap().connect().await.unwrap();
        let mut client = DirectoryServiceClient::new(channel);
        client.get_catalog(GetCatalogRequest::default()).await.unwrap();
        ca.revoke_cert(good.cert_pem.as_bytes(), "superseded").unwrap();
        let e = client.get_catalog(GetCatalogRequest::default()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(e.message().contains("revoked"), "{}", e.message());
        let e = call(endpoint(&url, &good_mode).unwrap()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(seen.lock().unwrap().len(), 3);
        // Others still work.
        let second = issue(&ca, Role::Office, "620902002");
        assert_eq!(call(endpoint(&url, &mode_for(&second)).unwrap()).await.unwrap(), "urn:sifa:office:620902002");

        server_task.abort();
    }

    #[test]
    fn plaintext_is_refused_off_loopback_and_tls_needs_its_files() {
        let insecure = sifa_proto::tls::TlsConfig { insecure: true, ..Default::default() };
        let e = super::super::tls::server_security(&insecure, false, "0.0.0.0:7401".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        let ok = super::super::tls::server_security(&insecure, false, "127.0.0.1:7401".parse().unwrap()).unwrap();
        assert!(ok.tls.is_none() && matches!(ok.authenticator, Authenticator::InsecureLoopback));
        let flag = super::super::tls::server_security(&Default::default(), true, "[::1]:1".parse().unwrap()).unwrap();
        assert!(flag.tls.is_none());
        let e =
            super::super::tls::server_security(&Default::default(), false, "127.0.0.1:1".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("missing: ca, cert, key"), "{e}");
    }
}
