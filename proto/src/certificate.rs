//! Reading sifa certificates (feature `x509`): the identity, serial and
//! validity of a DER certificate, PEM blocks, serial numbers as sifa prints
//! them. The aggregator reads its callers' certificates with it; the CA
//! (`sifa-pki`) reads the certificates it revokes. The office agent does not
//! need it and does not link it.

use crate::identity::{IDENTITY_URI_PREFIX, Identity, IdentityError};

/// Why a certificate does not name a sifa identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("not an X.509 certificate: {0}")]
    NotX509(String),
    #[error(
        "the certificate names no sifa identity (a URI {IDENTITY_URI_PREFIX}<role>:<unit>); issue one with `sifa pki issue`"
    )]
    NoIdentity,
    #[error("the certificate names {0} sifa identities; a certificate must name exactly one")]
    SeveralIdentities(usize),
    #[error(transparent)]
    Identity(#[from] IdentityError),
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
pub fn parse_certificate(der: &[u8]) -> Result<PeerCertificate, CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertificateError::NotX509(e.to_string()))?;
    let san = cert.subject_alternative_name().map_err(|e| CertificateError::NotX509(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) if u.starts_with(IDENTITY_URI_PREFIX) => Some(*u),
            _ => None,
        })
        .collect();
    let identity = match uris.as_slice() {
        [] => return Err(CertificateError::NoIdentity),
        [one] => Identity::from_uri(one)?,
        many => return Err(CertificateError::SeveralIdentities(many.len())),
    };
    Ok(PeerCertificate {
        identity,
        serial: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The first PEM block of `bytes` labelled `label` (`CERTIFICATE`, `X509 CRL`), as DER.
pub fn pem_block(bytes: &[u8], label: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bytes).filter_map(Result::ok).find(|p| p.label == label).map(|p| p.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x7f]), "7f");
        assert_eq!(serial_hex(&[0x00]), "00");
    }
}
