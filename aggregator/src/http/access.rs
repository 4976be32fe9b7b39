//! Who may reach a tier's HTTP side. On a loopback address: plaintext, as the
//! machine's own operator and its Prometheus reach it. On any other address:
//! HTTPS with the tier's own certificate (`[tls]`), client certificates of
//! the same CA required, the revocation list checked, and only an analyst or
//! an admin of this tier's unit or of a unit above it let in — the rules of
//! the gRPC side (docs/SECURITY.md).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sifa_proto::tls::{TlsConfig, TlsMaterial, TlsMode};
use tokio_rustls::TlsAcceptor;

use crate::auth::{RevocationList, SecurityError};

/// How the HTTP listener talks to its callers.
pub enum Access {
    /// Loopback only: no TLS, every local caller let in.
    Plaintext,
    /// HTTPS with client certificates of the province's CA.
    Tls { acceptor: TlsAcceptor, revocations: RevocationList },
}

/// Why the HTTP side cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "[http] listen = \"{listen}\": the status page and metrics are served over HTTPS (off loopback, or with \
         https = true) with this tier's certificate; give [tls] its ca, cert and key (not insecure), or listen \
         on 127.0.0.1 without https"
    )]
    NeedsTls { listen: SocketAddr },
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error("the HTTPS configuration from [tls]: {0}; check that cert and key are the PEM files `sifa pki issue` made")]
    Rustls(String),
}

impl Access {
    /// The access of a listener on `listen` (HTTPS if `https` or off loopback), with the tier's `[tls]` table.
    pub fn for_listen(listen: SocketAddr, https: bool, tls: &TlsConfig) -> Result<Access, AccessError> {
        if listen.ip().is_loopback() && !https {
            return Ok(Access::Plaintext);
        }
        let (files, crl) = match tls.mode(false).map_err(SecurityError::from)? {
            TlsMode::Insecure => return Err(AccessError::NeedsTls { listen }),
            TlsMode::Secure { files, crl } => (files, crl),
        };
        let material = TlsMaterial::load(&files).map_err(SecurityError::from)?;
        let revocations = match crl {
            Some(path) => RevocationList::load(&path, &material.ca_pem)?,
            None => RevocationList::none(),
        };
        let config = server_config(&material).map_err(|e| AccessError::Rustls(e.to_string()))?;
        Ok(Access::Tls { acceptor: TlsAcceptor::from(Arc::new(config)), revocations })
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Access::Plaintext => "http",
            Access::Tls { .. } => "https",
        }
    }
}

/// A rustls server config: this tier's certificate, client certificates of the CA required.
fn server_config(material: &TlsMaterial) -> Result<rustls::ServerConfig, Box<dyn std::error::Error>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&material.ca_pem) {
        roots.add(ca?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let chain = CertificateDer::pem_slice_iter(&material.cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&material.key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Why a TLS handshake failed, as a short label (metric `sifa_tls_handshake_failures_total`).
pub fn handshake_failure(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::NoCertificatesPresented) => "no_client_certificate",
        Some(Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            "certificate_expired"
        }
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => "unknown_ca",
        Some(Error::InvalidCertificate(CertificateError::Revoked)) => "certificate_revoked",
        Some(Error::InvalidCertificate(_)) => "bad_certificate",
        Some(Error::AlertReceived(_)) => "alert_from_client",
        Some(Error::PeerIncompatible(_) | Error::NoApplicationProtocol) => "incompatible",
        Some(_) => "protocol",
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => "closed",
        None => "io",
    }
}
