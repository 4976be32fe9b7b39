//! Who is calling, and what they may do.
//!
//! Every gRPC connection to an aggregator is mutual TLS with certificates of
//! the province's CA (`sifa pki`, crate `sifa-pki`). The caller's
//! [`Identity`] — a unit code and a [`Role`] (`sifa_proto::identity`) — comes
//! from its certificate (URI SAN `urn:sifa:<role>:<unit>`), never from what the
//! request claims. Along its seams:
//!
//! - [`revocation`]: the CA's revocation list, reloaded when it changes;
//! - [`authenticate`]: the caller's identity from its certificate (or, on
//!   loopback in insecure mode, its word);
//! - [`authorize`]: one pure function per rule of docs/SECURITY.md;
//! - [`limits`]: message size, reports per stream, reports per second;
//! - [`tls`]: the server's rustls config and its handshakes (each failure counted by reason), for the
//!   gRPC listener and the HTTP side; the client side is `sifa_proto::tls`.
//!
//! Refusals are domain errors, [`Denied`] and [`OverLimit`]; `crate::status` is
//! the one place they become gRPC statuses. Messages name the identity and the
//! unit concerned, never a figure.

pub mod authenticate;
pub mod authorize;
pub mod limits;
pub mod revocation;
pub mod tls;

use std::path::PathBuf;

pub use authenticate::{Authenticator, authenticate};
pub use authorize::{
    authorize_admin, authorize_catalog, authorize_forward, authorize_operator, authorize_own_report,
    authorize_provenance, authorize_sql, authorize_submit, authorize_subtree,
};
pub use limits::{Limits, OverLimit, RateLimiter, TRANSPORT_MESSAGE_CAP};
pub use revocation::RevocationList;
pub use sifa_proto::identity::{IDENTITY_METADATA_KEY, IDENTITY_URI_PREFIX, Identity, Role};

/// Why a caller is refused: it cannot be told (UNAUTHENTICATED: no certificate, not a sifa identity,
/// revoked, expired), or a known identity asks for what it may not do (PERMISSION_DENIED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
}

/// Why a server's security could not be set up: its TLS files or its revocation list.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("cannot read {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("revocation list {path}: {why}; regenerate it with `sifa pki revoke` against this CA")]
    Crl { path: PathBuf, why: String },
    #[error(transparent)]
    Tls(#[from] sifa_proto::tls::TlsError),
    #[error("the server's TLS configuration, {0}; use the PEM files `sifa pki issue` made for this tier")]
    ServerTls(String),
}

#[cfg(test)]
mod tests;
