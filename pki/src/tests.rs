//! The CA: creating it, issuing certificates that name a unit and a role.
//! Revocation as an aggregator sees it is tested with its revocation list
//! (sifa-aggregator, auth/tests.rs) and through the real binaries (tests/security.rs).

use sifa_proto::certificate::{parse_certificate, pem_block};
use sifa_proto::{Identity, Role};

use super::*;

fn id(role: Role, unit: &str) -> Identity {
    Identity::new(role, unit.parse().unwrap())
}

fn new_ca(dir: &Path) -> Ca {
    init_ca(dir, "甘肃省司法厅", CA_DAYS).unwrap();
    Ca::load(dir).unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    pem_block(pem.as_bytes(), "CERTIFICATE").expect("PEM certificate")
}

fn parsed_der(i: &Issued) -> Vec<u8> {
    der(&i.cert_pem)
}

#[test]
fn init_creates_a_private_key_a_ca_and_an_empty_crl_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("pki");
    let paths = crate::init_ca(&ca_dir, "甘肃省司法厅", 3650).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "ca.key must be private");
    }
    let ca_pem = std::fs::read(&paths.cert).unwrap();
    let ca_der = pem_block(&ca_pem, "CERTIFICATE").unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());
    assert!(ca.subject().to_string().contains("甘肃省司法厅"), "{}", ca.subject());
    let crl_der = pem_block(&std::fs::read(&paths.crl).unwrap(), "X509 CRL").unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0, "an empty revocation list");
    let e = crate::init_ca(&ca_dir, "again", 10).unwrap_err().to_string();
    assert!(e.contains("never overwritten"), "{e}");
    let e = Ca::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("sifa pki init"), "{e}");
}

#[test]
fn issued_certificates_name_the_unit_and_role_and_aggregators_are_servers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path());
    let office = ca.issue(&IssueRequest::new(id(Role::Office, "620902001"), 30)).unwrap();
    let parsed = parse_certificate(&der(&office.cert_pem)).unwrap();
    assert_eq!(parsed.identity, id(Role::Office, "620902001"));
    assert_eq!(parsed.serial, office.serial);
    assert!(parsed.not_after > parsed.not_before);

    let mut req = IssueRequest::new(id(Role::Aggregator, "620902"), 30);
    req.names = vec!["suzhou.example".into(), "10.9.8.7".into()];
    let agg = ca.issue(&req).unwrap();
    let d = der(&agg.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&d).unwrap();
    let san: Vec<String> =
        cert.subject_alternative_name().unwrap().unwrap().value.general_names.iter().map(|n| format!("{n}")).collect();
    let all = san.join(" ");
    // x509-parser prints IP addresses as hex bytes: 127.0.0.1 and 10.9.8.7.
    for want in [
        "URI(urn:sifa:aggregator:620902)",
        "DNSName(localhost)",
        "DNSName(suzhou.example)",
        "7f:00:00:01",
        "0a:09:08:07",
    ] {
        assert!(all.contains(want), "{want} not in {all}");
    }
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let office_der = parsed_der(&office);
    let (_, office_cert) = x509_parser::parse_x509_certificate(&office_der).unwrap();
    let eku = office_cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(office_cert.subject().to_string().contains("office 620902001"));

    let mut bad = IssueRequest::new(id(Role::Office, "620902001"), 30);
    bad.names = vec!["x.example".into()];
    assert!(ca.issue(&bad).unwrap_err().to_string().contains("--name is for aggregator"));

    // Written with a private key, never over an existing pair.
    let out = dir.path().join("out");
    let (c, k) = office.write_to(&out).unwrap();
    assert!(c.ends_with("office-620902001.pem") && k.ends_with("office-620902001.key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(office.write_to(&out).unwrap_err().to_string().contains("already exists"));
    let issued = std::fs::read_to_string(dir.path().join(crate::ISSUED_FILE)).unwrap();
    assert!(issued.contains(&format!("{},office,620902001,", office.serial)), "{issued}");
    assert!(!format!("{office:?}").contains("PRIVATE"), "Debug never prints the key");
}

#[test]
fn revocations_made_at_the_same_time_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path());
    let certs: Vec<Issued> =
        (0..8).map(|i| ca.issue(&IssueRequest::new(id(Role::Office, &format!("62090200{i}")), 30)).unwrap()).collect();
    // Each revocation loads the CA on its own, as separate `sifa pki revoke` processes do.
    std::thread::scope(|s| {
        for cert in &certs {
            let dir = dir.path();
            s.spawn(move || Ca::load(dir).unwrap().revoke_cert(cert.cert_pem.as_bytes(), "superseded").unwrap());
        }
    });
    let record = ca.revoked_record().unwrap();
    let mut serials: Vec<&str> = record.revoked.iter().map(|e| e.serial.as_str()).collect();
    serials.sort();
    let mut want: Vec<&str> = certs.iter().map(|c| c.serial.as_str()).collect();
    want.sort();
    assert_eq!(serials, want, "every revocation is in the record");
    let crl = std::fs::read(&ca.paths().crl).unwrap();
    let der = pem_block(&crl, "X509 CRL").unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), certs.len(), "and in the signed list");
}
