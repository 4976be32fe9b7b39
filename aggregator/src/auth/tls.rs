//! The server side of mutual TLS for an aggregator's listeners (gRPC, and the
//! HTTP side off loopback): rustls with the tier's certificate, client
//! certificates of the province CA required; each handshake in its own task,
//! and a failed one counted by its reason.
//!
//! ```ignore
//! let security = server_security(&config.tls, cli.insecure, config.listen)?;
//! match security.tls {
//!     Some(acceptor) => server.serve_with_incoming(tls_incoming(listener, acceptor, |reason| ...)),
//!     None => server.serve_with_incoming(TcpListenerStream::new(listener)),
//! }
//! // ... and every handler starts with `security.authenticator.identify(&request, &registry)?`.
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sifa_proto::tls::{TlsConfig, TlsFiles, TlsMaterial, TlsMode, check_plaintext_listen};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::Endpoint;

use super::{Authenticator, RevocationList, SecurityError};

/// How long a client may take over the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocol of gRPC.
pub const ALPN_H2: &[u8] = b"h2";

/// The server's own certificate and key, and the province CA as the only root for client certificates,
/// which are required; `alpn` the application protocol offered (`h2` for gRPC, `http/1.1`).
pub fn server_tls_config(material: &TlsMaterial, alpn: &[u8]) -> Result<rustls::ServerConfig, SecurityError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SecurityError::ServerTls(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&material.ca_pem) {
        let ca = ca.map_err(|e| bad("the CA file", &e))?;
        roots.add(ca).map_err(|e| bad("the CA certificate", &e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad("the CA as the root of client certificates", &e))?;
    let chain = CertificateDer::pem_slice_iter(&material.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("the certificate file", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&material.key_pem).map_err(|e| bad("the key file", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("the TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad("the certificate and its key", &e))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// What a listener needs: the TLS acceptor (`None` in insecure mode) and how to tell the caller.
pub struct ServerSecurity {
    pub tls: Option<TlsAcceptor>,
    pub authenticator: Authenticator,
}

impl std::fmt::Debug for ServerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSecurity")
            .field("tls", &self.tls.is_some())
            .field("authenticator", &self.authenticator)
            .finish()
    }
}

/// The connections of `listener` once their TLS handshakes succeed, each handshake in its own task
/// within [`HANDSHAKE_TIMEOUT`]; a failed one is dropped and its reason ([`handshake_failure`], or
/// `timeout`) given to `failed`.
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    failed: impl Fn(&'static str) + Send + Sync + 'static,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let failed = Arc::new(failed);
    tokio::spawn(async move {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                // The server is gone.
                return;
            }
            let _ = tcp.set_nodelay(true);
            let (acceptor, sender, failed) = (acceptor.clone(), tx.clone(), failed.clone());
            tokio::spawn(async move {
                let peer = tcp.peer_addr().ok();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = sender.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        let reason = handshake_failure(&e);
                        tracing::info!(?peer, reason, "TLS handshake failed: {e}");
                        failed(reason);
                    }
                    Err(_) => failed("timeout"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
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
            tls: Some(TlsAcceptor::from(Arc::new(server_tls_config(&material, ALPN_H2)?))),
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
