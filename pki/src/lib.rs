//! Crate `sifa-pki`: the province's certificate authority: creating it, issuing certificates
//! that name a unit and a role, and revoking them (`sifa pki`).
//!
//! A CA directory holds:
//!
//! - `ca.pem`, `ca.key` (mode 0600): the CA certificate and its key;
//! - `crl.pem`: the certificate revocation list, signed by the CA, which
//!   aggregators read (`[tls] crl`) and reload when it changes;
//! - `revoked.toml`: the record the CRL is regenerated from;
//! - `issued.csv`: one line per certificate issued (serial, role, unit, expiry),
//!   so a certificate whose file is lost can still be revoked by serial.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType,
    SerialNumber,
};
use serde::{Deserialize, Serialize};
use sifa_proto::fs::{write_atomic_mode, write_new};
use time::OffsetDateTime;

use sifa_proto::certificate::{parse_certificate, pem_block, serial_hex};
use sifa_proto::{Identity, Role};

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const CRL_FILE: &str = "crl.pem";
pub const REVOKED_FILE: &str = "revoked.toml";
pub const ISSUED_FILE: &str = "issued.csv";
/// Held exclusively while a revocation reads and rewrites `revoked.toml` and `crl.pem`.
pub const REVOKE_LOCK_FILE: &str = "revoke.lock";

/// Default lifetimes, in days.
pub const CA_DAYS: u32 = 3650;
pub const CERT_DAYS: u32 = 730;
/// A CRL's `nextUpdate`: sifa reloads on change and does not expire a CRL, but other tools read it.
const CRL_DAYS: u32 = 365;

const DAY: Duration = Duration::from_secs(86_400);

/// Why a CA operation failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path} already holds a CA ({CA_KEY_FILE}); a CA is never overwritten: choose another --out directory")]
    CaExists { path: PathBuf },
    #[error(
        "{path} is not a CA directory (no {CA_CERT_FILE} and {CA_KEY_FILE}); create one with `sifa pki init --out DIR`"
    )]
    NoCa { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("{0}")]
    Request(String),
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io { action, path: path.to_owned(), source }
}

impl From<sifa_proto::fs::FsError> for PkiError {
    fn from(e: sifa_proto::fs::FsError) -> Self {
        PkiError::Io { action: e.action, path: e.path, source: e.source }
    }
}

/// The files of a CA directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub crl: PathBuf,
}

impl CaPaths {
    pub fn new(dir: &Path) -> CaPaths {
        CaPaths {
            dir: dir.to_owned(),
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
            crl: dir.join(CRL_FILE),
        }
    }
}

/// Creates a CA in `dir` (created if needed) named `name` (e.g. "甘肃省司法厅"), valid for `days`,
/// with an empty revocation list. Refuses to overwrite an existing CA.
pub fn init_ca(dir: &Path, name: &str, days: u32) -> Result<CaPaths, PkiError> {
    let paths = CaPaths::new(dir);
    if paths.key.exists() || paths.cert.exists() {
        return Err(PkiError::CaExists { path: dir.to_owned() });
    }
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    let key = KeyPair::generate()?;
    let params = ca_params(name, days)?;
    let cert = params.self_signed(&key)?;
    write_new(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    let ca = Ca::load(dir)?;
    ca.write_crl(&RevokedRecord::default())?;
    Ok(paths)
}

fn ca_params(name: &str, days: u32) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "sifa");
    dn.push(DnType::CommonName, format!("sifa CA {name}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = SystemTime::now();
    params.not_before = OffsetDateTime::from(now - Duration::from_secs(3600));
    params.not_after = OffsetDateTime::from(now + DAY * days);
    Ok(params)
}

/// What to issue: a certificate naming `identity`, for the server names `names` (aggregators only),
/// valid from `not_before` to `not_after`.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub identity: Identity,
    /// Extra DNS names or IP addresses for an aggregator, besides `localhost`, `127.0.0.1` and `::1`.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl IssueRequest {
    /// Valid from an hour ago (clock skew) for `days` days.
    pub fn new(identity: Identity, days: u32) -> IssueRequest {
        let now = SystemTime::now();
        IssueRequest {
            identity,
            names: Vec::new(),
            not_before: now - Duration::from_secs(3600),
            not_after: now + DAY * days,
        }
    }
}

/// A certificate and its new key, in PEM.
#[derive(Clone)]
pub struct Issued {
    pub identity: Identity,
    pub serial: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("identity", &self.identity).field("serial", &self.serial).finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes `<role>-<unit>.pem` and `<role>-<unit>.key` (mode 0600) into `dir`, refusing to overwrite.
    pub fn write_to(&self, dir: &Path) -> Result<(PathBuf, PathBuf), PkiError> {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let stem = format!("{}-{}", self.identity.role, self.identity.unit);
        let (cert, key) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
        for p in [&cert, &key] {
            if p.exists() {
                return Err(PkiError::Request(format!(
                    "{} already exists; move it away first (revoke the old certificate with `sifa pki revoke` if it \
                     is being replaced)",
                    p.display()
                )));
            }
        }
        write_new(&key, self.key_pem.as_bytes(), 0o600)?;
        write_new(&cert, self.cert_pem.as_bytes(), 0o644)?;
        Ok((cert, key))
    }
}

/// The record of revoked certificates (`revoked.toml`) the CRL is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedRecord {
    /// The number of the last CRL written (CRL numbers only increase).
    #[serde(default)]
    pub crl_number: u64,
    #[serde(default)]
    pub revoked: Vec<RevokedEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedEntry {
    /// [`serial_hex`].
    pub serial: String,
    /// `urn:sifa:<role>:<unit>` when known.
    #[serde(default)]
    pub identity: String,
    /// Seconds since the Unix epoch.
    pub revoked_at: i64,
    #[serde(default)]
    pub reason: String,
}

/// A CA loaded from its directory, able to issue and revoke.
pub struct Ca {
    paths: CaPaths,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.paths.dir).finish_non_exhaustive()
    }
}

impl Ca {
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let paths = CaPaths::new(dir);
        if !paths.cert.exists() || !paths.key.exists() {
            return Err(PkiError::NoCa { path: dir.to_owned() });
        }
        let cert_pem = fs::read_to_string(&paths.cert).map_err(io("read", &paths.cert))?;
        let key_pem = fs::read_to_string(&paths.key).map_err(io("read", &paths.key))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| PkiError::Invalid { path: paths.key.clone(), why: format!("not a private key ({e})") })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| PkiError::Invalid { path: paths.cert.clone(), why: format!("not a CA certificate ({e})") })?;
        Ok(Ca { paths, cert_pem, issuer })
    }

    pub fn paths(&self) -> &CaPaths {
        &self.paths
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a key and certificate naming the request's unit and role (URI SAN `urn:sifa:<role>:<unit>`,
    /// CN `<role> <unit>`). Aggregators are servers too: they also get `localhost`, `127.0.0.1`, `::1` and
    /// `names`, and both the server and client purposes. Recorded in `issued.csv`.
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued, PkiError> {
        let id = &req.identity;
        if !req.names.is_empty() && id.role != Role::Aggregator {
            return Err(PkiError::Request(format!(
                "--name is for aggregator certificates (servers); a {} certificate names no host",
                id.role
            )));
        }
        if req.not_after <= req.not_before {
            return Err(PkiError::Request("the certificate would expire before it starts".into()));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "sifa");
        dn.push(DnType::CommonName, id.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names.push(SanType::URI(id.uri().try_into()?));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if id.role == Role::Aggregator {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
            let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            for n in &req.names {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            for n in names {
                let san = match n.parse::<IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        n.clone()
                            .try_into()
                            .map_err(|_| PkiError::Request(format!("--name {n:?} is not a DNS name")))?,
                    ),
                };
                params.subject_alt_names.push(san);
            }
        }
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::from(req.not_before);
        params.not_after = OffsetDateTime::from(req.not_after);
        let mut serial = [0u8; 16];
        rand::fill(&mut serial[..]);
        serial[0] = (serial[0] & 0x7f) | 0x01; // positive, and never a leading zero byte
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let issued = Issued {
            identity: id.clone(),
            serial: serial_hex(&serial),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        self.record_issued(&issued, req.not_after)?;
        Ok(issued)
    }

    fn record_issued(&self, issued: &Issued, not_after: SystemTime) -> Result<(), PkiError> {
        let path = self.paths.dir.join(ISSUED_FILE);
        let new = !path.exists();
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io("write", &path))?;
        let mut line = String::new();
        if new {
            line.push_str("serial,role,unit,issued_at,not_after\n");
        }
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        line.push_str(&format!(
            "{},{},{},{},{}\n",
            issued.serial,
            issued.identity.role,
            issued.identity.unit,
            secs(SystemTime::now()),
            secs(not_after)
        ));
        f.write_all(line.as_bytes()).and_then(|_| f.sync_all()).map_err(io("write", &path))
    }

    /// The identity recorded in `issued.csv` for `serial`, if any.
    fn issued_identity(&self, serial: &str) -> Option<String> {
        let text = fs::read_to_string(self.paths.dir.join(ISSUED_FILE)).ok()?;
        text.lines().skip(1).find_map(|l| {
            let mut f = l.split(',');
            (f.next()? == serial).then(|| {
                let role = f.next().unwrap_or_default();
                let unit = f.next().unwrap_or_default();
                format!("urn:sifa:{role}:{unit}")
            })
        })
    }

    pub fn revoked_record(&self) -> Result<RevokedRecord, PkiError> {
        let path = self.paths.dir.join(REVOKED_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| PkiError::Invalid { path, why: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RevokedRecord::default()),
            Err(e) => Err(PkiError::Io { action: "read", path, source: e }),
        }
    }

    /// Revokes the certificate in `cert_pem`, which must have been issued by this CA.
    pub fn revoke_cert(&self, cert_pem: &[u8], reason: &str) -> Result<RevokedEntry, PkiError> {
        let der = pem_block(cert_pem, "CERTIFICATE")
            .ok_or_else(|| PkiError::Request("the file holds no PEM CERTIFICATE".into()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::Request(format!("not an X.509 certificate ({e})")))?;
        let ca_der = pem_block(self.cert_pem.as_bytes(), "CERTIFICATE").expect("loaded CA is PEM");
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("loaded CA parses");
        if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
            return Err(PkiError::Request(format!(
                "this certificate ({}) was not issued by the CA in {}",
                cert.subject(),
                self.paths.dir.display()
            )));
        }
        let identity = parse_certificate(&der).map(|c| c.identity.uri()).unwrap_or_default();
        self.revoke(&serial_hex(cert.raw_serial()), identity, reason)
    }

    /// Revokes by serial (hex, as `sifa pki issue` printed it and `issued.csv` lists it).
    pub fn revoke_serial(&self, serial: &str, reason: &str) -> Result<RevokedEntry, PkiError> {
        let raw: Vec<u8> = {
            let s: String = serial.chars().filter(|c| *c != ':').collect();
            if s.is_empty() || s.len() % 2 != 0 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(PkiError::Request(format!("serial {serial:?} is not hex (e.g. 4f09a1...)")));
            }
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex checked")).collect()
        };
        let serial = serial_hex(&raw);
        let identity = self.issued_identity(&serial).unwrap_or_default();
        self.revoke(&serial, identity, reason)
    }

    fn revoke(&self, serial: &str, identity: String, reason: &str) -> Result<RevokedEntry, PkiError> {
        // Two revocations at once (two operators, two scripts) each read the record, add their serial
        // and write it back: without the lock the second write would drop the first's serial.
        let _lock = self.lock_for_revocation()?;
        let mut record = self.revoked_record()?;
        if let Some(e) = record.revoked.iter().find(|e| e.serial == serial) {
            return Ok(e.clone());
        }
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let entry = RevokedEntry { serial: serial.to_owned(), identity, revoked_at: now, reason: reason.to_owned() };
        record.revoked.push(entry.clone());
        self.write_crl(&record)?;
        Ok(entry)
    }

    /// The CA directory's revocation lock, held until the returned file is dropped.
    fn lock_for_revocation(&self) -> Result<std::fs::File, PkiError> {
        let path = self.paths.dir.join(REVOKE_LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        file.lock().map_err(io("lock", &path))?;
        Ok(file)
    }

    /// Signs a new CRL listing `record`'s serials, with the next CRL number, and writes
    /// `crl.pem` then `revoked.toml` (each atomically).
    pub fn write_crl(&self, record: &RevokedRecord) -> Result<(), PkiError> {
        let mut record = record.clone();
        record.crl_number += 1;
        let now = SystemTime::now();
        let revoked_certs = record
            .revoked
            .iter()
            .map(|e| {
                let raw: Vec<u8> = (0..e.serial.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&e.serial[i..(i + 2).min(e.serial.len())], 16))
                    .collect::<Result<_, _>>()
                    .map_err(|_| PkiError::Invalid {
                        path: self.paths.dir.join(REVOKED_FILE),
                        why: format!("serial {:?} is not hex", e.serial),
                    })?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&raw),
                    revocation_time: OffsetDateTime::from_unix_timestamp(e.revoked_at)
                        .unwrap_or_else(|_| OffsetDateTime::from(now)),
                    reason_code: Some(reason_code(&e.reason)),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: OffsetDateTime::from(now),
            next_update: OffsetDateTime::from(now + DAY * CRL_DAYS),
            crl_number: SerialNumber::from_slice(&record.crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        // Replaced atomically (the one durable write, sifa_proto::fs): a reader never sees half a CRL.
        write_atomic_mode(&self.paths.dir, CRL_FILE, crl.pem()?.as_bytes(), 0o644)?;
        let text = toml::to_string(&record).map_err(|e| PkiError::Request(format!("revoked.toml: {e}")))?;
        write_atomic_mode(&self.paths.dir, REVOKED_FILE, text.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// The RFC 5280 reason code for a free-text reason (`key-compromise`, `superseded`, ...).
fn reason_code(reason: &str) -> RevocationReason {
    let r = reason.to_ascii_lowercase().replace(['_', ' '], "-");
    if r.contains("key-compromise") || r.contains("compromise") || r.contains("stolen") || r.contains("lost") {
        RevocationReason::KeyCompromise
    } else if r.contains("superseded") || r.contains("replaced") {
        RevocationReason::Superseded
    } else if r.contains("affiliation") || r.contains("moved") {
        RevocationReason::AffiliationChanged
    } else if r.contains("cessation") || r.contains("closed") || r.contains("merged") {
        RevocationReason::CessationOfOperation
    } else {
        RevocationReason::Unspecified
    }
}

#[cfg(test)]
mod tests;
