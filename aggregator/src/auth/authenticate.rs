//! Who is calling: the identity of the client certificate (unless revoked or
//! expired), or on loopback in insecure mode the caller's own word.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sifa_proto::certificate::{CertificateError, PeerCertificate, parse_certificate};
use sifa_proto::identity::{IDENTITY_METADATA_KEY, Identity, Role};
use sifa_proto::{Registry, UnitCode};
use tonic::Request;
use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;

use super::{Denied, RevocationList};

/// How a server learns who is calling.
#[derive(Debug)]
pub enum Authenticator {
    /// Mutual TLS: the identity of the client certificate, unless revoked or expired.
    Tls { revocations: RevocationList, certificates: CertificateCache },
    /// Plaintext on loopback only (tests, a demo on one machine): the caller's claim in
    /// `x-sifa-identity` (`urn:sifa:<role>:<unit>`), or else its `x-sifa-sender` unit code, an office
    /// if the registry says it is a reporting unit and an aggregator otherwise.
    InsecureLoopback,
}

impl Authenticator {
    /// The caller of `request` ([`Denied::Unauthenticated`] when it cannot be told).
    pub fn identify<T>(&self, request: &Request<T>, registry: &Registry) -> Result<Identity, Denied> {
        let certs = request.peer_certs();
        self.identify_parts(certs.as_deref().map(Vec::as_slice), request.metadata(), registry)
    }

    /// [`Authenticator::identify`] from the peer's certificate chain (leaf first) and the request's metadata.
    pub fn identify_parts(
        &self,
        peer_certs: Option<&[CertificateDer<'_>]>,
        metadata: &MetadataMap,
        registry: &Registry,
    ) -> Result<Identity, Denied> {
        match self {
            Authenticator::Tls { revocations, certificates } => {
                check_leaf(peer_certs, revocations, |der| certificates.read(der))
            }
            Authenticator::InsecureLoopback => claimed_identity(metadata, registry),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The identity of a TLS peer's leaf certificate. The handshake has already checked the chain against
/// the CA and the validity period; this re-checks expiry (a connection can outlive its certificate)
/// and the revocation list.
pub fn authenticate(
    peer_certs: Option<&[CertificateDer<'_>]>,
    revocations: &RevocationList,
) -> Result<Identity, Denied> {
    check_leaf(peer_certs, revocations, |der| parse_certificate(der).map(Arc::new))
}

/// [`authenticate`], reading the leaf certificate with `read`.
fn check_leaf(
    peer_certs: Option<&[CertificateDer<'_>]>,
    revocations: &RevocationList,
    read: impl FnOnce(&[u8]) -> Result<Arc<PeerCertificate>, CertificateError>,
) -> Result<Identity, Denied> {
    let leaf = peer_certs.and_then(|c| c.first()).ok_or_else(|| {
        Denied::Unauthenticated(
            "no client certificate: connect with TLS and the certificate `sifa pki issue` made for your unit".into(),
        )
    })?;
    let cert = read(leaf).map_err(|e| Denied::Unauthenticated(format!("client certificate: {e}")))?;
    if unix_now() > cert.not_after {
        return Err(Denied::Unauthenticated(format!(
            "the certificate of {} (serial {}) has expired; ask the province for a new one",
            cert.identity, cert.serial
        )));
    }
    if revocations.is_revoked(&cert.serial) {
        return Err(Denied::Unauthenticated(format!(
            "the certificate of {} (serial {}) is revoked; ask the province for a new one",
            cert.identity, cert.serial
        )));
    }
    Ok(cert.identity.clone())
}

/// The certificates already read, by their DER bytes. Every call on a connection carries the same
/// client certificate; it is parsed on the first call only (expiry and revocation are still checked on
/// every call, by [`check_leaf`]). Holds at most [`CertificateCache::CAPACITY`] and starts afresh
/// when full.
#[derive(Debug, Default)]
pub struct CertificateCache(Mutex<HashMap<Box<[u8]>, Arc<PeerCertificate>>>);

impl CertificateCache {
    /// More distinct certificates than a province has offices and tiers calling at once.
    pub const CAPACITY: usize = 16_384;

    fn read(&self, der: &[u8]) -> Result<Arc<PeerCertificate>, CertificateError> {
        if let Some(cert) = self.0.lock().expect("certificate cache").get(der) {
            return Ok(cert.clone());
        }
        let cert = Arc::new(parse_certificate(der)?);
        let mut cache = self.0.lock().expect("certificate cache");
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        cache.insert(der.into(), cert.clone());
        Ok(cert)
    }
}

fn claimed_identity(metadata: &MetadataMap, registry: &Registry) -> Result<Identity, Denied> {
    let text = |key: &str| -> Result<Option<String>, Denied> {
        match metadata.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| Denied::Unauthenticated(format!("{key} is not ASCII"))),
        }
    };
    if let Some(uri) = text(IDENTITY_METADATA_KEY)? {
        return Identity::from_uri(&uri).map_err(|e| Denied::Unauthenticated(e.to_string()));
    }
    let Some(unit) = text(sifa_proto::SENDER_METADATA_KEY)? else {
        return Err(Denied::Unauthenticated(format!(
            "no identity: without TLS a caller names itself in {IDENTITY_METADATA_KEY} (urn:sifa:<role>:<unit>) \
             or {} (its unit code)",
            sifa_proto::SENDER_METADATA_KEY
        )));
    };
    let unit = UnitCode::parse(&unit).map_err(|e| Denied::Unauthenticated(format!("sender: {e}")))?;
    let role = match registry.get(&unit) {
        Some(u) if u.kind.is_reporting() => Role::Office,
        Some(_) => Role::Aggregator,
        None => return Err(Denied::Unauthenticated(format!("sender {unit} is not in this tier's registry"))),
    };
    Ok(Identity::new(role, unit))
}
