//! The CA's certificate revocation list (`crl.pem`), checked against the CA's
//! signature, and reloaded when the file changes (checked on every use: one
//! `stat`), so a revocation takes effect without restarting the aggregator.
//! A file that fails to load keeps the last good list in force (and logs why).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sifa_proto::certificate::{pem_block, serial_hex};

use super::SecurityError;

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
    pub fn load(crl_path: &Path, ca_pem: &[u8]) -> Result<RevocationList, SecurityError> {
        let ca_der = pem_block(ca_pem, "CERTIFICATE").ok_or_else(|| SecurityError::Crl {
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
    pub fn reload_if_changed(&self) -> Result<bool, SecurityError> {
        let Some(src) = &self.source else { return Ok(false) };
        let read_err = |source| SecurityError::Read { what: "revocation list", path: src.path.clone(), source };
        let meta = std::fs::metadata(&src.path).map_err(read_err)?;
        let stamp = (meta.modified().map_err(read_err)?, meta.len());
        let mut state = self.state.lock().expect("crl lock");
        if state.stamp == Some(stamp) {
            return Ok(false);
        }
        // Remember the stamp even on failure, so a bad file is reported once, not on every call.
        state.stamp = Some(stamp);
        let bytes = std::fs::read(&src.path).map_err(read_err)?;
        state.serials =
            parse_crl(&bytes, &src.ca_der).map_err(|why| SecurityError::Crl { path: src.path.clone(), why })?;
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
