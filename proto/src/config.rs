//! The one config loader of sifa: every config file (the agent's, the
//! aggregator's, and the `[tls]` table inside both) is TOML, read by [`load`]:
//!
//! - the file is deserialized with serde into the file's struct (unknown keys
//!   are refused by the structs themselves, `deny_unknown_fields`);
//! - relative paths in it are taken relative to the config file's folder
//!   ([`RelativePaths`]), so a config and the files it names move together;
//! - every failure is one [`ConfigError`] naming the file and, where there is
//!   one, the key (`limits.max_message_bytes`, `ledger[1].count[2].metric`)
//!   and the line.
//!
//! The file structs also derive `Serialize`: the demo and the tests write
//! config files with `toml::to_string` of the same structs.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file was not accepted. Every message names the file, and the key when one is at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not TOML, a key has a value of the wrong type, a key is unknown or missing,
    /// or a value was checked and refused.
    Invalid {
        path: PathBuf,
        /// The key at fault as a path from the top of the file (`limits.burst`, `ledger[1].path`;
        /// arrays count from 1); `None` when the file is not TOML at all or the fault is the file's as a whole.
        key: Option<String>,
        /// The line (from 1) where the fault is, when known.
        line: Option<usize>,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "cannot read config {}: {source}", path.display()),
            ConfigError::Invalid { path, key, line, message } => {
                write!(f, "config {}", path.display())?;
                if let Some(line) = line {
                    write!(f, " line {line}")?;
                }
                if let Some(key) = key {
                    write!(f, ": key `{key}`")?;
                }
                write!(f, ": {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Invalid { .. } => None,
        }
    }
}

impl ConfigError {
    /// A value that deserialized but was checked and refused: `message` says what is wrong and what to write.
    pub fn invalid(path: &Path, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: path.to_path_buf(), key: Some(key.into()), line: None, message: message.into() }
    }

    /// A fault of the file as a whole (e.g. a key that must be present given another's value).
    pub fn whole_file(path: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: path.to_path_buf(), key: None, line: None, message: message.into() }
    }

    /// The key at fault, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            ConfigError::Read { .. } => None,
        }
    }
}

/// A config struct (or table) that names files: relative paths become relative to `base`,
/// the folder of the config file, and absolute ones stay as they are.
pub trait RelativePaths {
    fn resolve_against(&mut self, base: &Path);
}

/// `path` relative to `base` unless it is absolute.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

/// [`resolve`] in place, for an optional path.
pub fn resolve_option(base: &Path, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        *p = resolve(base, p);
    }
}

/// Reads the config file at `path`, deserializes it and resolves its relative paths against its folder.
pub fn load<T: DeserializeOwned + RelativePaths>(path: &Path) -> Result<T, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

/// [`load`] of a document already read: `path` names it in messages and anchors its relative paths.
pub fn parse<T: DeserializeOwned + RelativePaths>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let mut value: T = deserialize(text, path)?;
    value.resolve_against(path.parent().unwrap_or(Path::new("")));
    Ok(value)
}

/// Deserializes a TOML document into `T`, naming the key and the line at fault.
fn deserialize<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: None,
        line: line_of(text, e.span()),
        message: e.message().trim().to_string(),
    };
    let de = toml::Deserializer::parse(text).map_err(syntax)?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = key_path(e.path());
        let inner = e.into_inner();
        ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            line: line_of(text, inner.span()),
            message: inner.message().trim().to_string(),
        }
    })
}

/// `a.b[1].c` from serde's path (sequence indexes counted from 1, as people count tables); `None` at the top.
fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out += &format!("[{}]", index + 1),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out += key;
            }
            Segment::Unknown => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    let start = span?.start.min(text.len());
    Some(text.as_bytes()[..start].iter().filter(|&&b| b == b'\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        name: String,
        dir: PathBuf,
        #[serde(default)]
        limits: Limits,
        #[serde(default)]
        item: Vec<Item>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Limits {
        max_bytes: u32,
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        path: PathBuf,
    }

    impl RelativePaths for File {
        fn resolve_against(&mut self, base: &Path) {
            self.dir = resolve(base, &self.dir);
            for i in &mut self.item {
                i.path = resolve(base, &i.path);
            }
        }
    }

    const GOOD: &str =
        "name = \"x\"\ndir = \"data\"\n[limits]\nmax_bytes = 5\n[[item]]\npath = \"/abs/a\"\n[[item]]\npath = \"b\"\n";

    #[test]
    fn relative_paths_follow_the_config_file() {
        let f: File = parse(GOOD, Path::new("/etc/sifa/x.toml")).unwrap();
        assert_eq!(f.dir, Path::new("/etc/sifa/data"));
        assert_eq!(f.item[0].path, Path::new("/abs/a"));
        assert_eq!(f.item[1].path, Path::new("/etc/sifa/b"));
        let f: File = parse(GOOD, Path::new("x.toml")).unwrap();
        assert_eq!(f.dir, Path::new("data"), "a bare file name is in the current folder");
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_line() {
        let p = Path::new("/etc/sifa/aggregator.toml");
        let e = parse::<File>(&GOOD.replace("max_bytes = 5", "max_bytes = \"lots\""), p).unwrap_err();
        assert_eq!(e.key(), Some("limits.max_bytes"));
        let s = e.to_string();
        assert!(s.starts_with("config /etc/sifa/aggregator.toml line 4: key `limits.max_bytes`: invalid type"), "{s}");
        let e = parse::<File>(&GOOD.replace("path = \"b\"", "path = 3"), p).unwrap_err();
        assert_eq!(e.key(), Some("item[2].path"), "{e}");
        let e = parse::<File>(&GOOD.replace("[limits]", "[limits]\nmax_byte = 1"), p).unwrap_err().to_string();
        assert!(e.contains("line 4: key `limits.max_byte`: unknown field `max_byte`"), "{e}");
        let e = parse::<File>("dir = \"d\"\n", p).unwrap_err().to_string();
        assert!(e.contains("missing field `name`"), "{e}");
        let e = parse::<File>("name = \"x\"\ndir = \n", p).unwrap_err().to_string();
        assert!(e.starts_with("config /etc/sifa/aggregator.toml line 2: "), "{e}");
        let e = load::<File>(Path::new("/nonexistent/sifa.toml")).unwrap_err().to_string();
        assert!(e.starts_with("cannot read config /nonexistent/sifa.toml"), "{e}");
    }

    #[test]
    fn what_is_written_with_toml_reads_back() {
        let f: File = parse(GOOD, Path::new("/c/x.toml")).unwrap();
        let text = toml::to_string(&f).unwrap();
        assert_eq!(parse::<File>(&text, Path::new("/elsewhere/y.toml")).unwrap(), f);
    }
}
