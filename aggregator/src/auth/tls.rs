//! The server side of mutual TLS for an aggregator's gRPC listener.
//!
//! ```ignore
//! let security = server_security(&config.tls, cli.insecure, config.listen)?;
//! let mut builder = tonic::transport::Server::builder();
//! if let Some(tls) = security.tls.clone() {
//!     builder = builder.tls_config(tls)?;
//! }
//! // ... and every handler starts with `security.authenticator.identify(&request, &registry)?`.
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use sifa_proto::tls::{TlsConfig, TlsFiles, TlsMaterial, TlsMode, check_plaintext_listen};
use tonic::transport::{Certificate, Endpoint, Identity as TlsIdentity, ServerTlsConfig};

use super::{Authenticator, RevocationList, SecurityError};

/// How long a client may take over the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's own certificate and key, and the province CA as the only root for client certificates,
/// which are required.
pub fn server_tls_config(material: &TlsMaterial) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(&material.cert_pem, &material.key_pem))
        .client_ca_root(Certificate::from_pem(&material.ca_pem))
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT)
}

/// What a listener needs: the TLS config (`None` in insecure mode) and how to tell the caller.
#[derive(Debug)]
pub struct ServerSecurity {
    pub tls: Option<ServerTlsConfig>,
    pub authenticator: Authenticator,
}

impl ServerSecurity {
    /// Mutual TLS with `files`, and `crl` as the revocation list if given.
    pub fn secure(files: &TlsFiles, crl: Option<&std::path::Path>) -> Result<ServerSecurity, SecurityError> {
        let material = TlsMaterial::load(files)?;
        let revocations = match crl {
            Some(path) => RevocationList::load(path, &material.ca_pem)?,
            None => {
                tracing::warn!(
                    "[tls] names no `crl`: revoked certificates are accepted until they expire; \
                     set crl = \"pki/crl.pem\" (`sifa pki init` creates it)"
                );
                RevocationList::none()
            }
        };
        Ok(ServerSecurity {
            tls: Some(server_tls_config(&material)),
            authenticator: Authenticator::Tls { revocations, certificates: Default::default() },
        })
    }
}

/// The security of a listener on `listen` from its `[tls]` table and the `--insecure` flag: plaintext only
/// when asked for explicitly and only on loopback.
pub fn server_security(
    config: &TlsConfig,
    insecure_flag: bool,
    listen: SocketAddr,
) -> Result<ServerSecurity, SecurityError> {
    match config.mode(insecure_flag)? {
        TlsMode::Insecure => {
            check_plaintext_listen(listen)?;
            tracing::warn!("{listen}: plaintext gRPC (insecure), loopback only; callers are trusted on their word");
            Ok(ServerSecurity { tls: None, authenticator: Authenticator::InsecureLoopback })
        }
        TlsMode::Secure { files, crl } => ServerSecurity::secure(&files, crl.as_deref()),
    }
}

/// An endpoint to another tier (the upstream, or this tier for the admin CLI) with this tier's `[tls]`
/// identity: `https://` with mutual TLS, or `http://` on loopback when insecure.
pub fn client_endpoint(url: &str, config: &TlsConfig, insecure_flag: bool) -> Result<Endpoint, SecurityError> {
    Ok(sifa_proto::tls::endpoint(url, &config.mode(insecure_flag)?)?)
}
