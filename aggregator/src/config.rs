//! The aggregator's configuration file (`config/aggregator.example.toml`).
//!
//! Relative paths are relative to the directory of the config file, so a
//! config and its data directory can be moved together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sifa_proto::UnitCode;
use sifa_proto::tls::TlsConfig;

use crate::auth::Limits;

/// Default interval between flushes of the write-ahead log to Parquet.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;

/// Why a config file was not accepted. Every message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read aggregator config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("aggregator config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("aggregator config {path}: key `{key}` = {value:?}: {message}")]
    Key { path: PathBuf, key: &'static str, value: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    unit: String,
    listen: String,
    data_dir: String,
    upstream: Option<String>,
    deadline_day: Option<i64>,
    catalog: Option<String>,
    registry: Option<String>,
    flush_interval_ms: Option<i64>,
    tls: Option<TlsConfig>,
    limits: Option<Limits>,
}

/// A checked aggregator configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// This tier's unit code: it accepts reports of units at or under it.
    pub unit: UnitCode,
    /// The gRPC listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The store (docs/STORAGE.md).
    pub data_dir: PathBuf,
    /// The tier above, e.g. `http://127.0.0.1:7400`.
    pub upstream: Option<String>,
    /// A month's report is due by this day of the next month (CST).
    pub deadline_day: u8,
    /// The catalog file (top tier); `None`: the built-in catalog, or fetched from upstream below the top.
    pub catalog: Option<PathBuf>,
    /// The registry file (required at the top tier; fetched from upstream below it).
    pub registry: Option<PathBuf>,
    /// How often the write-ahead log is flushed to Parquet.
    pub flush_interval_ms: u64,
    /// The `[tls]` table, paths resolved (docs/SECURITY.md): this tier's certificate as a server and as a
    /// client of its upstream, the CA, the revocation list; or `insecure = true` on loopback.
    pub tls: TlsConfig,
    /// The `[limits]` table: message size, reports per stream, rate per office.
    pub limits: Limits,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Parses and checks the text of a config file read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let p = path.to_path_buf();
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: p.clone(), message: e.to_string() })?;
        let key = |key: &'static str, value: &dyn std::fmt::Display, message: &str| ConfigError::Key {
            path: p.clone(),
            key,
            value: value.to_string(),
            message: message.to_string(),
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |s: &str| {
            let q = Path::new(s);
            if q.is_absolute() { q.to_path_buf() } else { base.join(q) }
        };
        let unit = UnitCode::parse(raw.unit.trim()).map_err(|_| {
            key("unit", &raw.unit, "must be this tier's division code of 2 to 12 digits, e.g. \"620982\"")
        })?;
        let listen: SocketAddr = raw.listen.trim().parse().map_err(|_| {
            key("listen", &raw.listen, "must be an IP address and port, e.g. \"127.0.0.1:7401\" (port 0 picks one)")
        })?;
        if raw.data_dir.trim().is_empty() {
            return Err(key("data_dir", &raw.data_dir, "must name the data directory, e.g. \"data\""));
        }
        let upstream = match raw.upstream.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(u.to_string()),
            Some(u) => return Err(key("upstream", &u, "must be a URL like \"https://province.example:7400\"")),
        };
        let deadline_day = match raw.deadline_day {
            None => 5,
            Some(d @ 1..=28) => d as u8,
            Some(d) => return Err(key("deadline_day", &d, "must be a day of the month from 1 to 28")),
        };
        let flush_interval_ms = match raw.flush_interval_ms {
            None => DEFAULT_FLUSH_INTERVAL_MS,
            Some(ms @ 10..=3_600_000) => ms as u64,
            Some(ms) => {
                return Err(key("flush_interval_ms", &ms, "must be between 10 and 3600000 milliseconds"));
            }
        };
        let registry = raw.registry.as_deref().map(resolve);
        if upstream.is_none() && registry.is_none() {
            return Err(ConfigError::Parse {
                path: p.clone(),
                message: "key `registry` is missing: the top tier (no `upstream`) must name its registry file, \
                          e.g. registry = \"registry.csv\""
                    .into(),
            });
        }
        Ok(Config {
            path: p.clone(),
            unit,
            listen,
            data_dir: resolve(raw.data_dir.trim()),
            upstream,
            deadline_day,
            catalog: raw.catalog.as_deref().map(resolve),
            registry,
            flush_interval_ms,
            tls: raw.tls.unwrap_or_default().resolved(&base),
            limits: raw.limits.unwrap_or_default(),
        })
    }

    /// Where the running server writes its bound address.
    pub fn addr_file(&self) -> PathBuf {
        sifa_store::layout::addr_file(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/sifa/county.toml"))
    }

    #[test]
    fn a_full_config_resolves_paths_against_its_directory() {
        let c = parse(
            r#"
            unit = "620982"
            listen = "127.0.0.1:0"
            data_dir = "data"
            upstream = "http://127.0.0.1:7400"
            deadline_day = 6
            catalog = "/opt/catalog.toml"
            registry = "registry.csv"
            flush_interval_ms = 250
            "#,
        )
        .unwrap();
        assert_eq!(c.unit, "620982");
        assert_eq!(c.data_dir, Path::new("/etc/sifa/data"));
        assert_eq!(c.catalog.as_deref(), Some(Path::new("/opt/catalog.toml")));
        assert_eq!(c.registry.as_deref(), Some(Path::new("/etc/sifa/registry.csv")));
        assert_eq!((c.deadline_day, c.flush_interval_ms), (6, 250));
        assert_eq!(c.addr_file(), Path::new("/etc/sifa/data/aggregator.addr"));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let base = "listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\nregistry = \"r.csv\"\n";
        let e = parse(&format!("unit = \"62a\"\n{base}")).unwrap_err().to_string();
        assert!(e.contains("/etc/sifa/county.toml") && e.contains("`unit` = \"62a\""), "{e}");
        let e = parse(&format!("unit = \"62\"\n{base}deadline_day = 31\n")).unwrap_err().to_string();
        assert!(e.contains("`deadline_day` = \"31\": must be a day of the month from 1 to 28"), "{e}");
        let e = parse("unit = \"62\"\nlisten = \"localhost\"\ndata_dir = \"d\"\nregistry = \"r\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`listen`"), "{e}");
        let e = parse(&format!("unit = \"62\"\n{base}upstream = \"127.0.0.1:1\"\n")).unwrap_err().to_string();
        assert!(e.contains("`upstream`") && e.contains("URL"), "{e}");
        let e = parse(&format!("unit = \"62\"\n{base}colour = 1\n")).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let e = parse("unit = \"62\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n").unwrap_err().to_string();
        assert!(e.contains("`registry` is missing"), "{e}");
        let e = parse("listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\n").unwrap_err().to_string();
        assert!(e.contains("unit"), "{e}");
    }

    #[test]
    fn the_shipped_example_parses_with_tls_and_limits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/aggregator.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.unit, "620982");
        assert!(c.tls.cert.as_ref().unwrap().ends_with("certs/aggregator-620982.pem"));
        assert!(c.tls.crl.is_some() && !c.tls.insecure);
        assert_eq!(c.limits, Limits::default());
    }
}
