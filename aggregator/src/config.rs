//! The aggregator's configuration file (`config/aggregator.example.toml`),
//! read by the one config loader, `sifa_proto::config`.
//!
//! Relative paths are relative to the directory of the config file, so a
//! config and its data directory can be moved together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sifa_proto::UnitCode;
pub use sifa_proto::config::ConfigError;
use sifa_proto::config::{RelativePaths, resolve, resolve_option};
use sifa_proto::tls::TlsConfig;

use crate::auth::Limits;
use crate::disk::DiskConfig;
use crate::http::{HttpConfig, HttpSide};

/// Default interval between flushes of the write-ahead log to Parquet.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;

/// The aggregator's config file as written: its keys, before they are checked ([`Config`] is the
/// checked form). The demo and the tests build one and write it with `toml::to_string`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub unit: String,
    pub listen: String,
    pub data_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_day: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// The `[sql]` table as written: the tier's Arrow Flight SQL endpoint for analysts (docs/SQL.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSection {
    /// Where the endpoint listens, e.g. "0.0.0.0:7443" (port 0 picks one).
    pub listen: String,
}

impl ConfigFile {
    /// A tier `unit` listening on `listen` with its store in `data_dir`, every optional key unset.
    pub fn new(unit: &str, listen: &str, data_dir: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile {
            unit: unit.into(),
            listen: listen.into(),
            data_dir: data_dir.into(),
            upstream: None,
            deadline_day: None,
            catalog: None,
            registry: None,
            flush_interval_ms: None,
            tls: None,
            limits: None,
            http: None,
            disk: None,
            sql: None,
            store: None,
        }
    }

    /// The file's TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an aggregator config is always TOML")
    }
}

impl RelativePaths for ConfigFile {
    fn resolve_against(&mut self, base: &Path) {
        // An empty data_dir stays empty, to be refused by the check.
        if !self.data_dir.to_str().is_some_and(|d| d.trim().is_empty()) {
            self.data_dir = resolve(base, &self.data_dir);
        }
        resolve_option(base, &mut self.catalog);
        resolve_option(base, &mut self.registry);
        if let Some(tls) = &mut self.tls {
            tls.resolve_against(base);
        }
    }
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
    /// The `[disk]` table: the free space below which new reports are refused.
    pub disk: DiskConfig,
    /// The `[http]` table: the HTTP side (metrics, health, status page), if any.
    pub http: Option<HttpSide>,
    /// The `[sql]` table's `listen`: the Flight SQL endpoint's address, if the tier serves one.
    pub sql_listen: Option<SocketAddr>,
    /// `store`: the bucket and prefix on S3-compatible storage (`s3://BUCKET/PREFIX`) holding the
    /// tier's Parquet store instead of its data directory (the `report_files` module), if any.
    pub store: Option<String>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::checked(sifa_proto::config::load(path)?, path)
    }

    /// Parses and checks the text of a config file read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::checked(sifa_proto::config::parse(text, path)?, path)
    }

    /// Checks a config file's keys (its paths already resolved).
    fn checked(raw: ConfigFile, path: &Path) -> Result<Config, ConfigError> {
        let key = |key: &str, value: &dyn std::fmt::Display, message: &str| {
            ConfigError::invalid(path, key, format!("{:?} {message}", value.to_string()))
        };
        let unit = UnitCode::parse(raw.unit.trim()).map_err(|_| {
            key("unit", &raw.unit, "must be this tier's division code of 2 to 12 digits, e.g. \"620982\"")
        })?;
        let listen: SocketAddr = raw.listen.trim().parse().map_err(|_| {
            key("listen", &raw.listen, "must be an IP address and port, e.g. \"127.0.0.1:7401\" (port 0 picks one)")
        })?;
        if raw.data_dir.to_str().is_some_and(|d| d.trim().is_empty()) {
            return Err(key("data_dir", &raw.data_dir.display(), "must name the data directory, e.g. \"data\""));
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
        let sql_listen = match &raw.sql {
            None => None,
            Some(sql) => Some(sql.listen.trim().parse::<SocketAddr>().map_err(|_| {
                key(
                    "sql.listen",
                    &sql.listen,
                    "must be an IP address and port, e.g. \"0.0.0.0:7443\" (port 0 picks one)",
                )
            })?),
        };
        let store = match raw.store.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.strip_prefix("s3://").is_some_and(|rest| !rest.trim_matches('/').is_empty()) => {
                Some(u.to_string())
            }
            Some(u) => {
                return Err(key("store", &u, "must be a bucket and prefix, e.g. \"s3://statistics/gansu\""));
            }
        };
        if upstream.is_none() && raw.registry.is_none() {
            return Err(ConfigError::whole_file(
                path,
                "key `registry` is missing: the top tier (no `upstream`) must name its registry file, \
                 e.g. registry = \"registry.csv\"",
            ));
        }
        let http = match &raw.http {
            None => None,
            Some(h) => Some(HttpSide {
                listen: h.listen.trim().parse().map_err(|_| {
                    key(
                        "http.listen",
                        &h.listen,
                        "must be an IP address and port, e.g. \"127.0.0.1:9400\" (port 0 picks one)",
                    )
                })?,
                https: h.https,
            }),
        };
        Ok(Config {
            path: path.to_path_buf(),
            http,
            unit,
            listen,
            data_dir: raw.data_dir,
            upstream,
            deadline_day,
            catalog: raw.catalog,
            registry: raw.registry,
            flush_interval_ms,
            tls: raw.tls.unwrap_or_default(),
            limits: raw.limits.unwrap_or_default(),
            disk: raw.disk.unwrap_or_default(),
            sql_listen,
            store,
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
        assert!(e.contains("/etc/sifa/county.toml") && e.contains("key `unit`: \"62a\""), "{e}");
        let e = parse(&format!("unit = \"62\"\n{base}deadline_day = 31\n")).unwrap_err().to_string();
        assert!(e.contains("key `deadline_day`: \"31\" must be a day of the month from 1 to 28"), "{e}");
        let e = parse("unit = \"62\"\nlisten = \"localhost\"\ndata_dir = \"d\"\nregistry = \"r\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`listen`"), "{e}");
        let e = parse(&format!("unit = \"62\"\n{base}upstream = \"127.0.0.1:1\"\n")).unwrap_err().to_string();
        assert!(e.contains("`upstream`") && e.contains("URL"), "{e}");
        let e = parse(&format!("unit = \"62\"\n{base}[http]\nlisten = \"localhost:80\"\n")).unwrap_err().to_string();
        assert!(e.contains("key `http.listen`: \"localhost:80\" must be an IP address and port"), "{e}");
        let c = parse(&format!(
            "unit = \"62\"\n{base}[http]\nlisten = \"0.0.0.0:9400\"\nhttps = true\n[disk]\nreserve_mb = 2\n"
        ))
        .unwrap();
        assert_eq!((c.http.map(|h| h.https), c.disk.reserve_bytes()), (Some(true), 2 << 20));
        let e = parse(&format!("unit = \"62\"\n{base}colour = 1\n")).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let e = parse("unit = \"62\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n").unwrap_err().to_string();
        assert!(e.contains("`registry` is missing"), "{e}");
        let e = parse("listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\n").unwrap_err().to_string();
        assert!(e.contains("unit"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key_path() {
        let base = "unit = \"62\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\nregistry = \"r.csv\"\n";
        let e = parse(&format!("{base}[limits]\nmax_message_bytes = \"big\"\n")).unwrap_err().to_string();
        assert!(e.contains("/etc/sifa/county.toml line 6: key `limits.max_message_bytes`: invalid type"), "{e}");
        let e = parse(&format!("{base}data_dir = \"again\"\n")).unwrap_err().to_string();
        assert!(e.contains("/etc/sifa/county.toml line 5") && e.contains("duplicate key"), "{e}");
        let e = parse(&base.replace("\"d\"", "\" \"")).unwrap_err().to_string();
        assert!(e.contains("key `data_dir`"), "{e}");
    }

    #[test]
    fn a_config_written_with_toml_reads_back_the_same() {
        let mut file = ConfigFile::new("620982", "127.0.0.1:0", "data");
        file.upstream = Some("https://127.0.0.1:7400".into());
        file.flush_interval_ms = Some(200);
        file.limits = Some(Limits { burst: 7, ..Limits::default() });
        file.tls = Some(TlsConfig::insecure());
        file.disk = Some(DiskConfig { reserve_mb: 64 });
        let c = parse(&file.to_toml()).unwrap();
        assert_eq!(c.disk.reserve_bytes(), 64 << 20);
        assert_eq!(c.data_dir, Path::new("/etc/sifa/data"));
        assert_eq!((c.flush_interval_ms, c.limits.burst, c.tls.insecure), (200, 7, true));
        assert_eq!(c.upstream.as_deref(), Some("https://127.0.0.1:7400"));
    }

    #[test]
    fn the_shipped_example_parses_with_tls_and_limits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/aggregator.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.unit, "620982");
        assert!(c.tls.cert.as_ref().unwrap().ends_with("certs/aggregator-620982.pem"));
        assert!(c.tls.crl.is_some() && !c.tls.insecure);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.disk, DiskConfig::default());
        assert_eq!(c.http, Some(HttpSide { listen: "127.0.0.1:9401".parse().unwrap(), https: false }));
        assert_eq!(c.sql_listen, Some("127.0.0.1:7443".parse().unwrap()));
    }

    #[test]
    fn the_sql_listen_address_is_checked() {
        let base = "unit = \"62\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\nregistry = \"r.csv\"\n";
        let e = parse(&format!("{base}[sql]\nlisten = \"somewhere\"\n")).unwrap_err().to_string();
        assert!(e.contains("key `sql.listen`: \"somewhere\" must be an IP address and port"), "{e}");
        assert_eq!(parse(base).unwrap().sql_listen, None);
    }

    #[test]
    fn the_store_must_name_a_bucket() {
        let base = "unit = \"62\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\nregistry = \"r.csv\"\n";
        for bad in ["/mnt/share", "s3://", "https://bucket"] {
            let e = parse(&format!("{base}store = \"{bad}\"\n")).unwrap_err().to_string();
            assert!(e.contains("key `store`") && e.contains("must be a bucket and prefix, e.g. \"s3://"), "{e}");
        }
        let c = parse(&format!("{base}store = \"s3://statistics/gansu\"\n")).unwrap();
        assert_eq!(c.store.as_deref(), Some("s3://statistics/gansu"));
        assert_eq!(parse(base).unwrap().store, None);
    }
}
