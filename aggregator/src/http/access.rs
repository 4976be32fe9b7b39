//! Who may reach a tier's HTTP side. On a loopback address: plaintext, as the
//! machine's own operator and its Prometheus reach it. On any other address:
//! HTTPS with the tier's own certificate (`[tls]`), client certificates of
//! the same CA required, the revocation list checked, and only an analyst or
//! an admin of this tier's unit or of a unit above it let in — the rules of
//! the gRPC side (docs/SECURITY.md).

use std::net::SocketAddr;
use std::sync::Arc;

use sifa_proto::tls::{TlsConfig, TlsMaterial, TlsMode};
use tokio_rustls::TlsAcceptor;

use crate::auth::tls::server_tls_config;
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
        let config = server_tls_config(&material, b"http/1.1")?;
        Ok(Access::Tls { acceptor: TlsAcceptor::from(Arc::new(config)), revocations })
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Access::Plaintext => "http",
            Access::Tls { .. } => "https",
        }
    }
}
