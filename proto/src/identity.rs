//! Who a caller is: a unit of the registry in a [`Role`], as a certificate of
//! the province's CA names it (URI SAN `urn:sifa:<role>:<unit>`, docs/SECURITY.md).
//!
//! The CA writes these identities (`sifa pki`, crate `sifa-pki`) and the
//! aggregator reads them from client certificates; both use this one type.

use std::fmt;
use std::str::FromStr;

use crate::registry::UnitKind;
use crate::unit_code::UnitCode;

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
    /// the others nodes of the tree (nation, province, city, county).
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
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Role, IdentityError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| IdentityError::Role(s.to_owned()))
    }
}

/// Why a role or an identity URI was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("unknown role {0:?}: use office, aggregator, analyst or admin")]
    Role(String),
    #[error("identity {uri:?} {why}")]
    Uri { uri: String, why: String },
}

/// Who a caller is: a unit of the registry in a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub unit: UnitCode,
    pub role: Role,
}

impl Identity {
    pub fn new(role: Role, unit: UnitCode) -> Identity {
        Identity { unit, role }
    }

    /// `urn:sifa:<role>:<unit>`, as written in the certificate.
    pub fn uri(&self) -> String {
        format!("{IDENTITY_URI_PREFIX}{}:{}", self.role, self.unit)
    }

    pub fn from_uri(uri: &str) -> Result<Identity, IdentityError> {
        let bad = |why: String| IdentityError::Uri { uri: uri.to_owned(), why };
        let rest = uri.strip_prefix(IDENTITY_URI_PREFIX).ok_or_else(|| bad("does not start with urn:sifa:".into()))?;
        let (role, unit) = rest.split_once(':').ok_or_else(|| bad("is not urn:sifa:<role>:<unit>".into()))?;
        let role: Role = role.parse().map_err(|_| bad("names no role of office, aggregator, analyst, admin".into()))?;
        let unit = UnitCode::parse(unit).map_err(|e| bad(format!("has a bad unit: {e}")))?;
        Ok(Identity { unit, role })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uris_round_trip_and_bad_ones_are_named() {
        for role in Role::ALL {
            let i = Identity::new(role, "620902001".parse().unwrap());
            assert_eq!(Identity::from_uri(&i.uri()).unwrap(), i);
            assert_eq!(i.uri(), format!("urn:sifa:{role}:620902001"));
        }
        assert_eq!(Identity::from_uri("urn:sifa:office:620902001").unwrap().to_string(), "office 620902001");
        for (bad, why) in [
            ("urn:other:office:1", "urn:sifa:"),
            ("urn:sifa:office", "<role>:<unit>"),
            ("urn:sifa:king:62", "no role"),
            ("urn:sifa:office:62:1", "2 to 12 digits"),
            ("urn:sifa:office:", "2 to 12 digits"),
            ("urn:sifa:office:abc", "2 to 12 digits"),
        ] {
            let e = Identity::from_uri(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!("admin".parse::<Role>().is_ok());
        assert!("Admin".parse::<Role>().unwrap_err().to_string().contains("office, aggregator, analyst or admin"));
        assert!(Role::Office.fits(UnitKind::MediationCentre) && !Role::Office.fits(UnitKind::County));
        assert!(Role::Admin.fits(UnitKind::Province) && !Role::Aggregator.fits(UnitKind::Office));
    }
}
