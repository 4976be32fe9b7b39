//! Who is calling, and what they may do.
//!
//! Every gRPC connection to an aggregator is mutual TLS with certificates of
//! the province's CA (`sifa pki`, [`pki`]). The caller's [`Identity`] — a unit
//! code and a [`Role`] — comes from its certificate (URI SAN
//! `urn:sifa:<role>:<unit>`), never from what the request claims. One pure
//! function per rule of docs/SECURITY.md decides what the identity may do:
//!
//! - [`authorize_submit`]: an office submits only its own unit's reports
//!   ([`authorize_own_report`]); an aggregator forwards only units of its
//!   subtree ([`authorize_forward`]), with a provenance of its subtree
//!   ([`authorize_provenance`]);
//! - [`authorize_catalog`], [`authorize_subtree`]: the catalog, registry and
//!   completeness answer only for the caller's subtree;
//! - [`authorize_admin`]: lock and override need an admin of this tier or above.
//!
//! Failures are gRPC statuses: UNAUTHENTICATED when the caller is not known
//! (no certificate, not a sifa identity, revoked, expired), PERMISSION_DENIED
//! when a known identity asks for what it may not do, RESOURCE_EXHAUSTED for
//! the [`Limits`] and the per-identity [`RateLimiter`]. Messages name the
//! identity and the unit concerned, never a figure.
//!
//! [`tls`] builds the server's `ServerTlsConfig`; the client side is
//! `sifa_proto::tls`.

pub mod pki;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sifa_proto::{Registry, Unit, UnitKind};
use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;
use tonic::{Request, Status};

/// The prefix of the URI SAN naming a certificate's identity: `urn:sifa:<role>:<unit>`.
pub const IDENTITY_URI_PREFIX: &str = "urn:sifa:";

/// Insecure (loopback-only) mode: metadata a caller may use to claim a full identity
/// (`urn:sifa:admin:62`). Ignored when TLS is on.
pub const IDENTITY_METADATA_KEY: &str = "x-sifa-identity";

/// What a certificate allows its holder to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A reporting unit (司法所, bureau, mediation centre, committee): submits its own reports.
    Office,
    /// A tier of the tree: serves the units below it and forwards their reports upward.
    Aggregator,
    /// Reads catalog, registry and completeness of its subtree.
    Analyst,
    /// Administers a tier (lock, override) and every tier below it.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Office, Role::Aggregator, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Office => "office",
            Role::Aggregator => "aggregator",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// Whether a unit of `kind` may hold this role: offices are reporting units,
    /// the others nodes of the tree (province, city, county).
    pub fn fits(self, kind: UnitKind) -> bool {
        match self {
            Role::Office => kind.is_reporting(),
            Role::Aggregator | Role::Analyst | Role::Admin => !kind.is_reporting(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Role, AuthError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| AuthError::Role(s.to_owned()))
    }
}

/// Who a caller is: a unit of the registry in a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub unit: String,
    pub role: Role,
}

impl Identity {
    /// Checks the unit code is usable in a URI and a file name: ASCII letters, digits, `-` or `_`.
    pub fn new(role: Role, unit: &str) -> Result<Identity, AuthError> {
        if unit.is_empty() || !unit.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(AuthError::UnitCode(unit.to_owned()));
        }
        Ok(Identity { unit: unit.to_owned(), role })
    }

    /// `urn:sifa:<role>:<unit>`, as written in the certificate.
    pub fn uri(&self) -> String {
        format!("{IDENTITY_URI_PREFIX}{}:{}", self.role, self.unit)
    }

    pub fn from_uri(uri: &str) -> Result<Identity, AuthError> {
        let bad = |why: &str| AuthError::IdentityUri { uri: uri.to_owned(), why: why.to_owned() };
        let rest = uri.strip_prefix(IDENTITY_URI_PREFIX).ok_or_else(|| bad("does not start with urn:sifa:"))?;
        let (role, unit) = rest.split_once(':').ok_or_else(|| bad("is not urn:sifa:<role>:<unit>"))?;
        let role: Role = role.parse().map_err(|_| bad("names no role of office, aggregator, analyst, admin"))?;
        Identity::new(role, unit).map_err(|_| bad("has a unit code that is not letters and digits"))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.unit)
    }
}

/// Why an identity, a certificate or a revocation list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown role {0:?}: use office, aggregator, analyst or admin")]
    Role(String),
    #[error("unit code {0:?} must be letters and digits (a registry code such as 620902001)")]
    UnitCode(String),
    #[error("identity {uri:?} {why}")]
    IdentityUri { uri: String, why: String },
    #[error("not an X.509 certificate: {0}")]
    Certificate(String),
    #[error(
        "the certificate names no sifa identity (a URI {IDENTITY_URI_PREFIX}<role>:<unit>); issue one with `sifa pki issue`"
    )]
    NoIdentity,
    #[error("the certificate names {0} sifa identities; a certificate must name exactly one")]
    SeveralIdentities(usize),
    #[error("cannot read {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("revocation list {path}: {why}; regenerate it with `sifa pki revoke` against this CA")]
    Crl { path: PathBuf, why: String },
    #[error(transparent)]
    Tls(#[from] sifa_proto::tls::TlsError),
}

/// A certificate's serial number as lowercase hex without leading zero bytes
/// (the form the CRL, `sifa pki` and the logs use).
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// What sifa reads from a peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    pub identity: Identity,
    /// [`serial_hex`] of the serial number.
    pub serial: String,
    /// Validity, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads the identity, serial and validity of a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<PeerCertificate, AuthError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| AuthError::Certificate(e.to_string()))?;
    let san = cert.subject_alternative_name().map_err(|e| AuthError::Certificate(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) if u.starts_with(IDENTITY_URI_PREFIX) => Some(*u),
            _ => None,
        })
        .collect();
    let identity = match uris.as_slice() {
        [] => return Err(AuthError::NoIdentity),
        [one] => Identity::from_uri(one)?,
        many => return Err(AuthError::SeveralIdentities(many.len())),
    };
    Ok(PeerCertificate {
        identity,
        serial: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Reads the first PEM block of `bytes` labelled `label`, as DER.
pub(crate) fn pem_block(bytes: &[u8], label: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bytes).filter_map(Result::ok).find(|p| p.label == label).map(|p| p.contents)
}

// ---------------------------------------------------------------------------
// The revocation list

/// The CA's certificate revocation list (`crl.pem`), checked against the CA's
/// signature, and reloaded when the file changes (checked on every use: one
/// `stat`), so a revocation takes effect without restarting the aggregator.
/// A file that fails to load keeps the last good list in force (and logs why).
pub struct RevocationList {
    source: Option<CrlSource>,
    state: Mutex<CrlState>,
}

struct CrlSource {
    path: PathBuf,
    ca_der: Vec<u8>,
}

#[derive(Default)]
struct CrlState {
    serials: HashSet<String>,
    /// (modification time, length) of the file last looked at.
    stamp: Option<(SystemTime, u64)>,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("path", &self.source.as_ref().map(|s| &s.path))
            .field("revoked", &self.len())
            .finish()
    }
}

impl RevocationList {
    /// No revocation list: nothing is ever revoked (a server without `crl`; insecure mode).
    pub fn none() -> RevocationList {
        RevocationList { source: None, state: Mutex::new(CrlState::default()) }
    }

    /// Loads `crl_path` (PEM or DER), which must be signed by the CA in `ca_pem`.
    pub fn load(crl_path: &Path, ca_pem: &[u8]) -> Result<RevocationList, AuthError> {
        let ca_der = pem_block(ca_pem, "CERTIFICATE").ok_or_else(|| AuthError::Crl {
            path: crl_path.to_owned(),
            why: "the CA file holds no PEM CERTIFICATE".into(),
        })?;
        let list = RevocationList {
            source: Some(CrlSource { path: crl_path.to_owned(), ca_der }),
            state: Mutex::new(CrlState::default()),
        };
        list.reload_if_changed()?;
        Ok(list)
    }

    pub fn path(&self) -> Option<&Path> {
        self.source.as_ref().map(|s| s.path.as_path())
    }

    /// The number of revoked serials in force.
    pub fn len(&self) -> usize {
        self.state.lock().expect("crl lock").serials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file if its modification time or length changed. `Ok(true)` when a new list is in force.
    pub fn reload_if_changed(&self) -> Result<bool, AuthError> {
        let Some(src) = &self.source else { return Ok(false) };
        let read_err = |source| AuthError::Read { what: "revocation list", path: src.path.clone(), source };
        let meta = std::fs::metadata(&src.path).map_err(read_err)?;
        let stamp = (meta.modified().map_err(read_err)?, meta.len());
        let mut state = self.state.lock().expect("crl lock");
        if state.stamp == Some(stamp) {
            return Ok(false);
        }
        // Remember the stamp even on failure, so a bad file is reported once, not on every call.
        state.stamp = Some(stamp);
        let bytes = std::fs::read(&src.path).map_err(read_err)?;
        state.serials = parse_crl(&bytes, &src.ca_der).map_err(|why| AuthError::Crl { path: src.path.clone(), why })?;
        Ok(true)
    }

    /// Whether the certificate with this [`serial_hex`] is revoked, after picking up a changed file.
    pub fn is_revoked(&self, serial: &str) -> bool {
        if let Err(e) = self.reload_if_changed() {
            tracing::error!("{e}; the previous revocation list stays in force");
        }
        self.state.lock().expect("crl lock").serials.contains(serial)
    }
}

/// The revoked serials of a CRL (PEM `X509 CRL` or DER), checking it is signed by the CA `ca_der`.
fn parse_crl(bytes: &[u8], ca_der: &[u8]) -> Result<HashSet<String>, String> {
    let der = pem_block(bytes, "X509 CRL").unwrap_or_else(|| bytes.to_vec());
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| format!("not an X.509 CRL ({e})"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| format!("the CA certificate: {e}"))?;
    if crl.issuer() != ca.subject() {
        return Err(format!("issued by {}, not by this CA ({})", crl.issuer(), ca.subject()));
    }
    crl.verify_signature(ca.public_key()).map_err(|e| format!("its signature is not the CA's ({e})"))?;
    Ok(crl.iter_revoked_certificates().map(|r| serial_hex(r.raw_serial())).collect())
}

// ---------------------------------------------------------------------------
// Authentication

/// How a server learns who is calling.
#[derive(Debug)]
pub enum Authenticator {
    /// Mutual TLS: the identity of the client certificate, unless revoked or expired.
    Tls { revocations: RevocationList },
    /// Plaintext on loopback only (tests, a demo on one machine): the caller's claim in
    /// `x-sifa-identity` (`urn:sifa:<role>:<unit>`), or else its `x-sifa-sender` unit code, an office
    /// if the registry says it is a reporting unit and an aggregator otherwise.
    InsecureLoopback,
}

impl Authenticator {
    /// The caller of `request`. UNAUTHENTICATED when it cannot be told.
    pub fn identify<T>(&self, request: &Request<T>, registry: &Registry) -> Result<Identity, Status> {
        let certs = request.peer_certs();
        self.identify_parts(certs.as_deref().map(Vec::as_slice), request.metadata(), registry)
    }

    /// [`Authenticator::identify`] from the peer's certificate chain (leaf first) and the request's metadata.
    pub fn identify_parts(
        &self,
        peer_certs: Option<&[CertificateDer<'_>]>,
        metadata: &MetadataMap,
        registry: &Registry,
    ) -> Result<Identity, Status> {
        match self {
            Authenticator::Tls { revocations } => authenticate(peer_certs, revocations),
            Authenticator::InsecureLoopback => claimed_identity(metadata, registry),
        }
    }
}

/// The identity of a TLS peer's leaf certificate. The handshake has already checked the chain against
/// the CA and the validity period; this re-checks expiry (a connection can outlive its certificate)
/// and the revocation list.
pub fn authenticate(
    peer_certs: Option<&[CertificateDer<'_>]>,
    revocations: &RevocationList,
) -> Result<Identity, Status> {
    let leaf = peer_certs.and_then(|c| c.first()).ok_or_else(|| {
        Status::unauthenticated(
            "no client certificate: connect with TLS and the certificate `sifa pki issue` made for your unit",
        )
    })?;
    let cert = parse_certificate(leaf).map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
    if unix_now() > cert.not_after {
        return Err(Status::unauthenticated(format!(
            "the certificate of {} (serial {}) has expired; ask the province for a new one",
            cert.identity, cert.serial
        )));
    }
    if revocations.is_revoked(&cert.serial) {
        return Err(Status::unauthenticated(format!(
            "the certificate of {} (serial {}) is revoked; ask the province for a new one",
            cert.identity, cert.serial
        )));
    }
    Ok(cert.identity)
}

fn claimed_identity(metadata: &MetadataMap, registry: &Registry) -> Result<Identity, Status> {
    let text = |key: &str| -> Result<Option<String>, Status> {
        match metadata.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| Status::unauthenticated(format!("{key} is not ASCII"))),
        }
    };
    if let Some(uri) = text(IDENTITY_METADATA_KEY)? {
        return Identity::from_uri(&uri).map_err(|e| Status::unauthenticated(e.to_string()));
    }
    let Some(unit) = text(sifa_proto::SENDER_METADATA_KEY)? else {
        return Err(Status::unauthenticated(format!(
            "no identity: without TLS a caller names itself in {IDENTITY_METADATA_KEY} (urn:sifa:<role>:<unit>) \
             or {} (its unit code)",
            sifa_proto::SENDER_METADATA_KEY
        )));
    };
    let role = match registry.get(&unit) {
        Some(u) if u.kind.is_reporting() => Role::Office,
        Some(_) => Role::Aggregator,
        None => return Err(Status::unauthenticated(format!("sender {unit} is not in this tier's registry"))),
    };
    Identity::new(role, &unit).map_err(|e| Status::unauthenticated(e.to_string()))
}

// ---------------------------------------------------------------------------
// Authorization: one function per rule

/// The identity's unit in the registry, of a kind that fits its role.
fn known<'r>(id: &Identity, registry: &'r Registry) -> Result<&'r Unit, Status> {
    let unit = registry
        .get(&id.unit)
        .ok_or_else(|| Status::permission_denied(format!("{id}: unit {} is not in this tier's registry", id.unit)))?;
    if !id.role.fits(unit.kind) {
        return Err(Status::permission_denied(format!(
            "{id}: unit {} is a {}, which cannot hold the role {}",
            id.unit, unit.kind, id.role
        )));
    }
    Ok(unit)
}

/// An office submits only its own unit's reports.
pub fn authorize_own_report(id: &Identity, report_unit: &str, registry: &Registry) -> Result<(), Status> {
    known(id, registry)?;
    if id.role != Role::Office {
        return Err(Status::permission_denied(format!("{id} is not an office")));
    }
    if report_unit != id.unit {
        return Err(Status::permission_denied(format!(
            "{id} may not submit a report for unit {report_unit}: an office submits only its own reports"
        )));
    }
    Ok(())
}

/// An aggregator forwards only reports of units in its own subtree.
pub fn authorize_forward(id: &Identity, report_unit: &str, registry: &Registry) -> Result<(), Status> {
    known(id, registry)?;
    if id.role != Role::Aggregator {
        return Err(Status::permission_denied(format!("{id} is not an aggregator")));
    }
    if !registry.is_within(report_unit, &id.unit) {
        return Err(Status::permission_denied(format!(
            "{id} may not forward a report for unit {report_unit}: it is not in {}'s subtree",
            id.unit
        )));
    }
    Ok(())
}

/// Submit and SubmitStream, per report: [`authorize_own_report`] for an office,
/// [`authorize_forward`] for an aggregator; analysts and admins submit nothing.
pub fn authorize_submit(id: &Identity, report_unit: &str, registry: &Registry) -> Result<(), Status> {
    match id.role {
        Role::Office => authorize_own_report(id, report_unit, registry),
        Role::Aggregator => authorize_forward(id, report_unit, registry),
        Role::Analyst | Role::Admin => Err(Status::permission_denied(format!(
            "{id} may not submit reports: only an office (its own) or an aggregator (its subtree's) does"
        ))),
    }
}

/// The provenance of a submitted report (`first_accepted_by`, empty when absent): an office sends
/// none; a forwarding aggregator's names a tier of its own subtree.
pub fn authorize_provenance(id: &Identity, first_accepted_by: &str, registry: &Registry) -> Result<(), Status> {
    if first_accepted_by.is_empty() {
        return Ok(());
    }
    match id.role {
        Role::Aggregator if registry.is_within(first_accepted_by, &id.unit) => Ok(()),
        Role::Aggregator => Err(Status::permission_denied(format!(
            "{id} may not forward a provenance naming {first_accepted_by}: it is not in {}'s subtree",
            id.unit
        ))),
        _ => {
            Err(Status::permission_denied(format!("{id} may not set a provenance: only a forwarding aggregator does")))
        }
    }
}

/// The subtree an identity may see at the tier `tier_unit`: its own unit's when that lies within the
/// tier, the tier's own when the identity is above it (a province analyst asking a county).
fn scope_at(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<String, Status> {
    known(id, registry)?;
    if registry.is_within(&id.unit, tier_unit) {
        Ok(id.unit.clone())
    } else if registry.is_within(tier_unit, &id.unit) {
        Ok(tier_unit.to_owned())
    } else {
        Err(Status::permission_denied(format!("{id} is neither within nor above this tier ({tier_unit})")))
    }
}

/// GetCatalog: any identity within this tier's subtree, or above it.
pub fn authorize_catalog(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<(), Status> {
    scope_at(id, tier_unit, registry).map(|_| ())
}

/// GetRegistry and GetCompleteness: `requested_root` (empty for "all I may see") must lie in the
/// caller's subtree. Returns the root to answer for.
pub fn authorize_subtree(
    id: &Identity,
    requested_root: &str,
    tier_unit: &str,
    registry: &Registry,
) -> Result<String, Status> {
    let scope = scope_at(id, tier_unit, registry)?;
    let root = requested_root.trim();
    if root.is_empty() {
        return Ok(scope);
    }
    if !registry.is_within(root, &scope) {
        return Err(Status::permission_denied(format!(
            "{id} may ask only about its own subtree {scope}; {root} is outside it"
        )));
    }
    Ok(root.to_owned())
}

/// LockPeriod and GrantOverride: an admin of this tier's unit or of a unit above it.
pub fn authorize_admin(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<(), Status> {
    known(id, registry)?;
    if id.role != Role::Admin {
        return Err(Status::permission_denied(format!(
            "{id} may not lock or override: that needs an admin certificate of {tier_unit} or a tier above"
        )));
    }
    if !registry.is_within(tier_unit, &id.unit) {
        return Err(Status::permission_denied(format!("{id} administers {}, not this tier ({tier_unit})", id.unit)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Limits

/// A hard cap for tonic's own decoder (`max_decoding_message_size`): above it tonic answers
/// OUT_OF_RANGE before sifa sees the message; [`Limits::max_message_bytes`] is checked below it.
pub const TRANSPORT_MESSAGE_CAP: usize = 4 * 1024 * 1024;

/// Gauges of what one identity may send. The `[limits]` table of an aggregator's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest encoded request message (one report), in bytes.
    pub max_message_bytes: usize,
    /// Reports in one SubmitStream; a sender with more opens another stream.
    pub max_reports_per_stream: u64,
    /// Sustained reports per second per identity ...
    pub reports_per_second: u32,
    /// ... and the burst above it.
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_message_bytes: 256 * 1024, max_reports_per_stream: 10_000, reports_per_second: 100, burst: 2_000 }
    }
}

impl Limits {
    /// A request message of `encoded_len` bytes (`prost::Message::encoded_len`).
    pub fn check_message_size(&self, id: &Identity, encoded_len: usize) -> Result<(), Status> {
        if encoded_len > self.max_message_bytes {
            return Err(Status::resource_exhausted(format!(
                "message of {encoded_len} bytes from {id} is over the limit of {} bytes per message",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// The `n`th report (counting from 1) of one stream.
    pub fn check_stream_count(&self, id: &Identity, n: u64) -> Result<(), Status> {
        if n > self.max_reports_per_stream {
            return Err(Status::resource_exhausted(format!(
                "{id} sent more than {} reports in one stream; end it and open a new stream for the rest",
                self.max_reports_per_stream
            )));
        }
        Ok(())
    }

    pub fn rate_limiter(&self) -> RateLimiter {
        RateLimiter::new(self.reports_per_second, self.burst)
    }
}

/// The gRPC metadata of a RESOURCE_EXHAUSTED status from the [`RateLimiter`]: milliseconds to wait.
pub const RETRY_AFTER_MS_METADATA_KEY: &str = "x-sifa-retry-after-ms";

/// A token bucket per identity: `per_second` reports sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Identity, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one report's token for `id` now.
    pub fn check(&self, id: &Identity) -> Result<(), Status> {
        self.check_at(id, Instant::now())
    }

    /// Takes one token for `id` at `now`; RESOURCE_EXHAUSTED saying the limit and when to retry.
    pub fn check_at(&self, id: &Identity, now: Instant) -> Result<(), Status> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let b = buckets.entry(id.clone()).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now.max(b.at);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / self.per_second);
        let ms = wait.as_millis().max(1);
        let mut status = Status::resource_exhausted(format!(
            "rate limit: {id} may send {} reports per second (bursts of {}); retry in {ms} ms",
            self.per_second, self.burst
        ));
        status.metadata_mut().insert(RETRY_AFTER_MS_METADATA_KEY, ms.to_string().parse().expect("digits are ASCII"));
        Err(status)
    }
}

#[cfg(test)]
mod tests;
