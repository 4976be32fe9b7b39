//! TLS settings shared by every part of sifa that speaks gRPC: the `[tls]`
//! table of a config file, the client side of mutual TLS (an office's agent, a
//! forwarding aggregator, the admin CLI) and the rule that plaintext is only
//! ever allowed on loopback.
//!
//! ```toml
//! [tls]
//! ca   = "pki/ca.pem"      # the province's certificate authority
//! cert = "pki/county.pem"  # this unit's certificate (sifa pki issue)
//! key  = "pki/county.key"  # and its private key
//! crl  = "pki/crl.pem"     # servers only: the revocation list, reloaded when it changes
//! # insecure = true        # plaintext, refused unless the address is loopback
//! ```
//!
//! The server side (`ServerTlsConfig`, the revocation list) lives in the
//! aggregator (`sifa_aggregator::auth`); this crate only uses tonic's TLS types.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::{RelativePaths, resolve_option};

/// The `[tls]` table of a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The province CA's certificate (PEM): the only root trusted, for servers and clients alike.
    pub ca: Option<PathBuf>,
    /// This unit's certificate (PEM), issued by `sifa pki issue`.
    pub cert: Option<PathBuf>,
    /// This unit's private key (PEM).
    pub key: Option<PathBuf>,
    /// Servers only: the CA's certificate revocation list (`sifa pki revoke` writes it).
    pub crl: Option<PathBuf>,
    /// Plaintext gRPC. Refused unless the address is loopback (127.0.0.0/8, ::1, localhost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// The three files of a unit's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a `[tls]` table asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Mutual TLS with these files (and, on a server, this revocation list).
    Secure { files: TlsFiles, crl: Option<PathBuf> },
    /// Plaintext, on loopback only.
    Insecure,
}

/// The PEM contents of a unit's TLS identity, read and checked.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsMaterial").field("ca_pem_bytes", &self.ca_pem.len()).finish_non_exhaustive()
    }
}

/// Why TLS could not be set up. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "[tls] needs `ca`, `cert` and `key` (missing: {missing}); issue them with `sifa pki issue`, \
         or set `insecure = true` for plaintext on a loopback address only"
    )]
    Missing { missing: String },
    #[error("[tls] sets `insecure = true` and also {also}: choose one")]
    Contradictory { also: String },
    #[error("cannot read the TLS {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the TLS {what} {path} is not PEM ({expected}); `sifa pki` writes PEM files")]
    NotPem { what: &'static str, path: PathBuf, expected: &'static str },
    #[error(
        "plaintext (insecure) is refused on {addr}: it is not a loopback address. \
         Remove `insecure`/`--insecure` and configure [tls], or listen on 127.0.0.1"
    )]
    PlaintextNotLoopback { addr: String },
    #[error("endpoint {url}: {message}")]
    Endpoint { url: String, message: String },
}

impl RelativePaths for TlsConfig {
    fn resolve_against(&mut self, base: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key, &mut self.crl] {
            resolve_option(base, p);
        }
    }
}

impl TlsConfig {
    /// Plaintext on loopback: `[tls] insecure = true`.
    pub fn insecure() -> TlsConfig {
        TlsConfig { insecure: true, ..TlsConfig::default() }
    }

    /// Mutual TLS with these files (`crl` for a server).
    pub fn secure(files: TlsFiles, crl: Option<PathBuf>) -> TlsConfig {
        TlsConfig { ca: Some(files.ca), cert: Some(files.cert), key: Some(files.key), crl, insecure: false }
    }

    /// Plaintext (`--insecure` on the command line wins over the file) or mutual TLS with every file named.
    pub fn mode(&self, insecure_flag: bool) -> Result<TlsMode, TlsError> {
        if self.insecure || insecure_flag {
            let named: Vec<&str> = [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key), ("crl", &self.crl)]
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k)
                .collect();
            // `--insecure` on the command line overrides a configured [tls]; the file alone may not say both.
            if self.insecure && !named.is_empty() {
                return Err(TlsError::Contradictory { also: format!("names {}", named.join(", ")) });
            }
            return Ok(TlsMode::Insecure);
        }
        let missing: Vec<&str> = [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(TlsMode::Secure {
                files: TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() },
                crl: self.crl.clone(),
            }),
            _ => Err(TlsError::Missing { missing: missing.join(", ") }),
        }
    }
}

fn read_pem(what: &'static str, path: &Path, markers: &[&str], expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    if !markers.iter().any(|m| text.contains(m)) {
        return Err(TlsError::NotPem { what, path: path.to_owned(), expected });
    }
    Ok(bytes)
}

impl TlsMaterial {
    /// Reads the CA certificate, the unit's certificate and its key, checking each is the PEM it should be.
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        const CERT: &[&str] = &["-----BEGIN CERTIFICATE-----"];
        Ok(TlsMaterial {
            ca_pem: read_pem("CA certificate", &files.ca, CERT, "-----BEGIN CERTIFICATE-----")?,
            cert_pem: read_pem("certificate", &files.cert, CERT, "-----BEGIN CERTIFICATE-----")?,
            key_pem: read_pem(
                "private key",
                &files.key,
                &["-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----"],
                "-----BEGIN PRIVATE KEY-----",
            )?,
        })
    }

    /// The client side of mutual TLS: trust only the province CA, present this unit's certificate,
    /// and check the server's certificate names `domain` (a DNS name or IP address).
    pub fn client_config(&self, domain: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(domain)
    }
}

/// The client TLS config for `files`, checking the server is `domain`.
pub fn client_tls_config(files: &TlsFiles, domain: &str) -> Result<ClientTlsConfig, TlsError> {
    Ok(TlsMaterial::load(files)?.client_config(domain))
}

/// The host of an endpoint URL such as `https://county.example:7443` (`[::1]` as `::1`).
pub fn endpoint_host(url: &str) -> Option<String> {
    let uri: http_uri::Uri = url.parse().ok()?;
    let host = uri.host()?;
    Some(host.trim_start_matches('[').trim_end_matches(']').to_owned())
}

/// `tonic`'s re-export of the `http` crate's URI type, without a new dependency.
mod http_uri {
    pub use tonic::codegen::http::Uri;
}

/// Whether `host` (a name or an IP address, as in a URL) is loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Plaintext is allowed only for a listener on a loopback address; `0.0.0.0` and `::` are not loopback.
pub fn check_plaintext_listen(addr: SocketAddr) -> Result<(), TlsError> {
    if addr.ip().is_loopback() { Ok(()) } else { Err(TlsError::PlaintextNotLoopback { addr: addr.to_string() }) }
}

/// A client may speak plaintext only to a loopback endpoint (figures never cross a network unencrypted).
pub fn check_plaintext_endpoint(url: &str) -> Result<(), TlsError> {
    match endpoint_host(url) {
        Some(host) if is_loopback_host(&host) => Ok(()),
        Some(_) => Err(TlsError::PlaintextNotLoopback { addr: url.to_owned() }),
        None => Err(TlsError::Endpoint { url: url.to_owned(), message: "not a URL with a host".into() }),
    }
}

/// A gRPC endpoint for `url` configured by `mode`: `https://` with mutual TLS (the server's name checked
/// against `url`'s host), or `http://` to a loopback address when insecure.
pub fn endpoint(url: &str, mode: &TlsMode) -> Result<Endpoint, TlsError> {
    let bad = |message: String| TlsError::Endpoint { url: url.to_owned(), message };
    let host = endpoint_host(url).ok_or_else(|| bad("not a URL with a host, e.g. https://127.0.0.1:7401".into()))?;
    match mode {
        TlsMode::Insecure => {
            check_plaintext_endpoint(url)?;
            if !url.starts_with("http://") {
                return Err(bad("plaintext (insecure) needs an http:// URL".into()));
            }
            Endpoint::from_shared(url.to_owned()).map_err(|e| bad(e.to_string()))
        }
        TlsMode::Secure { files, .. } => {
            if !url.starts_with("https://") {
                return Err(bad(
                    "with [tls] the URL must start with https:// (plaintext only with `insecure = true` on loopback)"
                        .into(),
                ));
            }
            let tls = client_tls_config(files, &host)?;
            Endpoint::from_shared(url.to_owned()).and_then(|e| e.tls_config(tls)).map_err(|e| bad(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> TlsConfig {
        #[derive(Deserialize)]
        struct File {
            tls: TlsConfig,
        }
        toml::from_str::<File>(toml_text).unwrap().tls
    }

    #[test]
    fn a_full_table_is_secure_and_resolves_relative_paths() {
        let c =
            parse("[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/c.pem\"\nkey = \"/abs/c.key\"\ncrl = \"pki/crl.pem\"\n");
        let mut r = c.clone();
        r.resolve_against(Path::new("/etc/sifa"));
        assert_eq!(r.ca.as_deref(), Some(Path::new("/etc/sifa/pki/ca.pem")));
        assert_eq!(r.key.as_deref(), Some(Path::new("/abs/c.key")));
        match r.mode(false).unwrap() {
            TlsMode::Secure { files, crl } => {
                assert_eq!(files.cert, PathBuf::from("/etc/sifa/pki/c.pem"));
                assert_eq!(crl, Some(PathBuf::from("/etc/sifa/pki/crl.pem")));
            }
            TlsMode::Insecure => panic!("secure expected"),
        }
        // The command line's --insecure wins over a configured table.
        assert_eq!(r.mode(true).unwrap(), TlsMode::Insecure);
    }

    #[test]
    fn missing_files_are_named_and_insecure_must_be_explicit() {
        let e = parse("[tls]\nca = \"ca.pem\"\n").mode(false).unwrap_err().to_string();
        assert!(e.contains("missing: cert, key") && e.contains("sifa pki issue"), "{e}");
        let e = TlsConfig::default().mode(false).unwrap_err().to_string();
        assert!(e.contains("missing: ca, cert, key"), "{e}");
        assert_eq!(parse("[tls]\ninsecure = true\n").mode(false).unwrap(), TlsMode::Insecure);
        let e = parse("[tls]\ninsecure = true\ncert = \"c.pem\"\n").mode(false).unwrap_err().to_string();
        assert!(e.contains("choose one") && e.contains("cert"), "{e}");
        assert!(toml::from_str::<TlsConfig>("cafile = \"x\"").is_err(), "unknown keys are refused");
    }

    #[test]
    fn plaintext_listeners_only_on_loopback() {
        for ok in ["127.0.0.1:7401", "127.0.0.2:1", "[::1]:7401"] {
            assert!(check_plaintext_listen(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:7401", "[::]:7401", "10.1.2.3:7401", "192.168.0.5:80"] {
            let e = check_plaintext_listen(bad.parse().unwrap()).unwrap_err().to_string();
            assert!(e.contains("not a loopback address") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn plaintext_clients_only_to_loopback() {
        for ok in ["http://127.0.0.1:7401", "http://localhost:7401", "http://[::1]:7401"] {
            assert!(check_plaintext_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in ["http://county.example:7401", "http://10.0.0.1:7401"] {
            assert!(matches!(check_plaintext_endpoint(bad), Err(TlsError::PlaintextNotLoopback { .. })), "{bad}");
        }
        assert_eq!(endpoint_host("https://[::1]:7401").as_deref(), Some("::1"));
        assert_eq!(endpoint_host("https://county.example:7443/").as_deref(), Some("county.example"));
        assert!(endpoint("http://10.0.0.1:1", &TlsMode::Insecure).is_err());
        assert!(endpoint("https://127.0.0.1:1", &TlsMode::Insecure).is_err());
        assert!(endpoint("http://127.0.0.1:1", &TlsMode::Insecure).is_ok());
    }

    #[test]
    fn material_is_checked_to_be_pem() {
        let dir = tempfile::tempdir().unwrap();
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("ca.pem"), cert).unwrap();
        std::fs::write(dir.path().join("c.pem"), cert).unwrap();
        std::fs::write(dir.path().join("c.key"), "not a key").unwrap();
        let files =
            TlsFiles { ca: dir.path().join("ca.pem"), cert: dir.path().join("c.pem"), key: dir.path().join("c.key") };
        let e = TlsMaterial::load(&files).unwrap_err().to_string();
        assert!(e.contains("private key") && e.contains("c.key") && e.contains("not PEM"), "{e}");
        let missing = TlsFiles { ca: dir.path().join("nope.pem"), ..files.clone() };
        let e = TlsMaterial::load(&missing).unwrap_err().to_string();
        assert!(e.contains("CA certificate") && e.contains("nope.pem"), "{e}");
        // A secure endpoint needs https and readable files.
        let mode = TlsMode::Secure { files, crl: None };
        let e = endpoint("http://127.0.0.1:1", &mode).unwrap_err().to_string();
        assert!(e.contains("https://"), "{e}");
        std::fs::write(dir.path().join("c.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap();
        let m = TlsMaterial::load(&TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("c.pem"),
            key: dir.path().join("c.key"),
        })
        .unwrap();
        assert!(!format!("{m:?}").contains("PRIVATE"), "Debug never prints the key");
    }
}
