//! The code of a unit of the tree: a Chinese administrative division code
//! (province `62`, city `6209`, county `620982`, township `620982100`) or a
//! code the province assigns in the same form, 2 to 12 ASCII digits.
//!
//! The one rule for a unit code. It is checked once, where a code enters sifa
//! (a registry file, a config file, a certificate, a report on the wire), and a
//! [`UnitCode`] is valid from then on. Which unit lies under which is the
//! registry's business (`parent`), never read from the digits; so is a unit's
//! kind: the nation's code (`100000`, 中华人民共和国司法部) has six digits like a
//! county's, and only its registry row (`kind = nation`) says what it is
//! (docs/REGISTRY.md; the registry refuses a nation code that begins with one of
//! its provinces' codes).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// Shortest and longest unit code, in digits.
pub const MIN_DIGITS: usize = 2;
pub const MAX_DIGITS: usize = 12;

/// A valid unit code: 2 to 12 ASCII digits. `{:?}` prints it as a quoted string, like `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitCode(String);

/// Why a text is not a unit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unit code {0:?} is not a division code of 2 to 12 digits")]
pub struct UnitCodeError(pub String);

impl UnitCode {
    /// Checks `text`, exactly as given (a caller trims what a person typed).
    pub fn parse(code: &str) -> Result<UnitCode, UnitCodeError> {
        if (MIN_DIGITS..=MAX_DIGITS).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(UnitCode(code.to_owned()))
        } else {
            Err(UnitCodeError(code.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for UnitCode {
    type Err = UnitCodeError;
    fn from_str(s: &str) -> Result<UnitCode, UnitCodeError> {
        UnitCode::parse(s)
    }
}

impl TryFrom<String> for UnitCode {
    type Error = UnitCodeError;
    fn try_from(s: String) -> Result<UnitCode, UnitCodeError> {
        UnitCode::parse(&s)
    }
}

impl From<UnitCode> for String {
    fn from(c: UnitCode) -> String {
        c.0
    }
}

impl fmt::Debug for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Deref for UnitCode {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for UnitCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for UnitCode {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for UnitCode {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UnitCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for UnitCode {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<UnitCode> for String {
    fn eq(&self, other: &UnitCode) -> bool {
        *self == other.0
    }
}

impl PartialEq<UnitCode> for &str {
    fn eq(&self, other: &UnitCode) -> bool {
        *self == other.0
    }
}

impl serde::Serialize for UnitCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for UnitCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UnitCode, D::Error> {
        let s = String::deserialize(d)?;
        UnitCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_to_twelve_digits_and_nothing_else() {
        for good in ["62", "6209", "620982", "620982100", "620982100123", "100000"] {
            assert_eq!(good.parse::<UnitCode>().unwrap().as_str(), good, "{good}");
        }
        for bad in ["", "6", "62x", "6209821001234", "62 09", "６２", "-62", "urn:62", " 620982"] {
            let e = bad.parse::<UnitCode>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("2 to 12 digits"), "{bad}: {e}");
        }
    }

    #[test]
    fn compares_with_text_and_travels_as_a_string() {
        let c: UnitCode = "620982".parse().unwrap();
        assert!(c == "620982" && "620982" == c && c == String::from("620982"));
        assert_eq!(c.to_string(), "620982");
        #[derive(serde::Deserialize, serde::Serialize)]
        struct T {
            unit: UnitCode,
        }
        let t: T = toml::from_str("unit = \"620982\"").unwrap();
        assert_eq!(t.unit, c);
        assert_eq!(toml::to_string(&t).unwrap().trim(), "unit = \"620982\"");
        let e = toml::from_str::<T>("unit = \"62a\"").err().unwrap().to_string();
        assert!(e.contains("\"62a\" is not a division code"), "{e}");
    }
}
