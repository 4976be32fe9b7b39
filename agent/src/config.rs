//! The agent's config file (`config/agent.example.toml` is the commented
//! reference): which office this is, where its aggregator is, which ledger
//! files to read and how their rows map to statistics, the schedule and the
//! outbox directory. It is read by the one config loader, `sifa_proto::config`:
//! relative paths are relative to the config file's folder, and every error
//! names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use sifa_proto::config::ConfigError;
use sifa_proto::config::{RelativePaths, resolve};
use sifa_proto::tls::TlsConfig;
use sifa_proto::{Catalog, MetricKind, Period, UnitCode};

/// One accepted value, or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.trim()],
            OneOrMany::Many(v) => v.iter().map(|s| s.trim()).collect(),
        }
    }
}

/// A rule of the mapping: which rows of a case ledger count toward a statistic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CountRule {
    /// The catalog code of the statistic (a flow).
    pub metric: String,
    /// Column header → the value(s) a row must have in that column to count.
    /// An empty table counts every row.
    #[serde(rename = "where", default)]
    pub conditions: BTreeMap<String, OneOrMany>,
    /// A column whose number is added for each matching row (e.g. 人数 for
    /// person-times) instead of counting the row once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
}

/// A case ledger (台账): one row per case or activity.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSource {
    pub path: PathBuf,
    /// The worksheet of an .xlsx file; default the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The header of the column holding each row's date.
    #[serde(default = "default_date_column")]
    pub date_column: String,
    #[serde(default, rename = "count")]
    pub rules: Vec<CountRule>,
}

/// A totals sheet (月度汇总): one row per month, one column per statistic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TotalsSource {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The header of the column holding the month.
    #[serde(default = "default_period_column")]
    pub period_column: String,
    /// Columns that are not statistics (remarks, who filled it in).
    #[serde(default = "default_ignore_columns")]
    pub ignore_columns: Vec<String>,
}

impl LedgerSource {
    /// The ledger at `path`, dates in 日期, no rules yet.
    pub fn new(path: impl Into<PathBuf>) -> LedgerSource {
        LedgerSource { path: path.into(), sheet: None, date_column: default_date_column(), rules: vec![] }
    }
}

impl TotalsSource {
    /// The totals sheet at `path`, months in 月份, the usual remark columns ignored.
    pub fn new(path: impl Into<PathBuf>) -> TotalsSource {
        TotalsSource {
            path: path.into(),
            sheet: None,
            period_column: default_period_column(),
            ignore_columns: default_ignore_columns(),
        }
    }
}

fn default_date_column() -> String {
    "日期".into()
}
fn default_period_column() -> String {
    "月份".into()
}
fn default_ignore_columns() -> Vec<String> {
    ["备注", "说明", "填表人", "填报人", "审核人", "序号"].map(String::from).to_vec()
}
fn default_max_ledger_mb() -> u64 {
    crate::ledger::SheetLimits::DEFAULT_MB
}
fn default_outbox() -> PathBuf {
    PathBuf::from("outbox")
}
fn default_collect_interval() -> u64 {
    300
}
fn default_retry_min() -> u64 {
    5
}
fn default_retry_max() -> u64 {
    3600
}
fn default_connect_timeout() -> u64 {
    10
}

/// The agent's config file as written: its keys, before they are checked ([`Config`] is the checked
/// form). The demo and the tests build one and write it with `toml::to_string`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub unit: String,
    pub aggregator: String,
    #[serde(default = "default_outbox")]
    pub outbox_dir: PathBuf,
    #[serde(default)]
    pub skip_bad_rows: bool,
    #[serde(default = "default_max_ledger_mb")]
    pub max_ledger_mb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_period: Option<String>,
    #[serde(default = "default_collect_interval")]
    pub collect_interval_seconds: u64,
    #[serde(default = "default_retry_min")]
    pub retry_min_seconds: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub totals: Vec<TotalsSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<LedgerSource>,
    #[serde(default)]
    pub tls: TlsConfig,
}

impl ConfigFile {
    /// A config of `unit` delivering to `aggregator`, every other key at its default
    /// (no books yet: add [[ledger]] or [[totals]] files).
    pub fn new(unit: &str, aggregator: &str, tls: TlsConfig) -> ConfigFile {
        ConfigFile {
            unit: unit.into(),
            aggregator: aggregator.into(),
            outbox_dir: default_outbox(),
            skip_bad_rows: false,
            max_ledger_mb: default_max_ledger_mb(),
            first_period: None,
            last_period: None,
            collect_interval_seconds: default_collect_interval(),
            retry_min_seconds: default_retry_min(),
            retry_max_seconds: default_retry_max(),
            connect_timeout_seconds: default_connect_timeout(),
            totals: vec![],
            ledger: vec![],
            tls,
        }
    }

    /// The file's TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an agent config is always TOML")
    }
}

impl RelativePaths for ConfigFile {
    fn resolve_against(&mut self, base: &Path) {
        self.outbox_dir = resolve(base, &self.outbox_dir);
        for l in &mut self.ledger {
            l.path = resolve(base, &l.path);
        }
        for t in &mut self.totals {
            t.path = resolve(base, &t.path);
        }
        self.tls.resolve_against(base);
    }
}

/// A loaded, checked config with paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself (named in messages).
    pub path: PathBuf,
    /// The office's own unit code; also its sender identity (`x-sifa-sender`).
    pub unit: UnitCode,
    /// The aggregator's URL, e.g. `http://10.1.2.3:7401`.
    pub aggregator: String,
    pub outbox_dir: PathBuf,
    /// Deliver the other rows' figures even when some rows are malformed.
    pub skip_bad_rows: bool,
    /// The most one ledger file may be, or expand to (an .xlsx is compressed), in MB;
    /// a larger one is refused (a damaged file or a zip bomb, not an office's book).
    pub max_ledger_mb: u64,
    /// Rows and totals before this month are not reported.
    pub first_period: Option<Period>,
    /// Rows and totals after this month are not reported (default: the current month).
    pub last_period: Option<Period>,
    pub collect_interval_seconds: u64,
    pub retry_min_seconds: u64,
    pub retry_max_seconds: u64,
    pub connect_timeout_seconds: u64,
    pub ledgers: Vec<LedgerSource>,
    pub totals: Vec<TotalsSource>,
    /// The `[tls]` table, paths resolved: the province CA, this office's certificate and key
    /// (`sifa pki issue --role office`), or `insecure = true` for plaintext to a loopback aggregator.
    pub tls: TlsConfig,
}

impl Config {
    /// The aggregator's gRPC endpoint, secured as `[tls]` says (a clear error if it is incomplete).
    pub fn endpoint(&self) -> Result<tonic::transport::Endpoint, sifa_proto::tls::TlsError> {
        sifa_proto::tls::endpoint(&self.aggregator, &self.tls.mode(false)?)
    }
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::checked(sifa_proto::config::load(path)?, path)
    }

    /// Parses a config document; `path` names it in messages and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::checked(sifa_proto::config::parse(text, path)?, path)
    }

    /// Checks a config file's keys (its paths already resolved).
    fn checked(file: ConfigFile, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::invalid(path, key, message);
        let unit = UnitCode::parse(file.unit.trim()).map_err(|_| {
            invalid("unit", format!("= {:?} is not a division code of 2 to 12 digits (e.g. \"620982100\")", file.unit))
        })?;
        let aggregator = file.aggregator.trim().to_string();
        if !(aggregator.starts_with("http://") || aggregator.starts_with("https://")) {
            return Err(invalid(
                "aggregator",
                format!(
                    "{aggregator:?} must be a URL starting with http:// or https:// (e.g. \"http://10.0.0.5:7401\")"
                ),
            ));
        }
        let period = |key: &str, v: &Option<String>| -> Result<Option<Period>, ConfigError> {
            v.as_deref().map(|s| s.parse::<Period>().map_err(|e| invalid(key, e.to_string()))).transpose()
        };
        let first_period = period("first_period", &file.first_period)?;
        let last_period = period("last_period", &file.last_period)?;
        if let (Some(f), Some(l)) = (first_period, last_period)
            && f > l
        {
            return Err(invalid("last_period", format!("{l} is before first_period = {f}")));
        }
        if file.retry_min_seconds == 0 || file.retry_max_seconds < file.retry_min_seconds {
            return Err(invalid(
                "retry_max_seconds",
                format!(
                    "retry_min_seconds = {} must be at least 1 and at most retry_max_seconds = {}",
                    file.retry_min_seconds, file.retry_max_seconds
                ),
            ));
        }
        if file.max_ledger_mb == 0 {
            return Err(invalid("max_ledger_mb", "must be at least 1 (MB)".into()));
        }
        if file.collect_interval_seconds == 0 {
            return Err(invalid("collect_interval_seconds", "must be at least 1".into()));
        }
        if file.ledger.is_empty() && file.totals.is_empty() {
            return Err(invalid(
                "ledger",
                "and `totals` are both missing: name at least one [[ledger]] or [[totals]] file to read".into(),
            ));
        }
        for (i, l) in file.ledger.iter().enumerate() {
            if l.rules.is_empty() {
                return Err(invalid(
                    &format!("ledger[{}]", i + 1),
                    format!(
                        "({}) has no [[ledger.count]] rule: say which rows count toward which statistic",
                        l.path.display()
                    ),
                ));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            unit,
            aggregator,
            outbox_dir: file.outbox_dir,
            skip_bad_rows: file.skip_bad_rows,
            max_ledger_mb: file.max_ledger_mb,
            first_period,
            last_period,
            collect_interval_seconds: file.collect_interval_seconds,
            retry_min_seconds: file.retry_min_seconds,
            retry_max_seconds: file.retry_max_seconds,
            connect_timeout_seconds: file.connect_timeout_seconds,
            ledgers: file.ledger,
            totals: file.totals,
            tls: file.tls,
        })
    }

    /// Checks the mapping against the catalog in force: every rule names a
    /// known flow statistic (stocks come from a totals sheet).
    pub fn check_mapping(&self, catalog: &Catalog) -> Result<(), ConfigError> {
        for (i, l) in self.ledgers.iter().enumerate() {
            for (j, r) in l.rules.iter().enumerate() {
                let key = format!("ledger[{}].count[{}].metric", i + 1, j + 1);
                let invalid = |message: String| ConfigError::invalid(&self.path, key.clone(), message);
                match catalog.metric(&r.metric).or_else(|| catalog.metric_for_header(&r.metric)) {
                    None => {
                        return Err(invalid(format!(
                            "{:?} is not a statistic of catalog {} (see docs/CATALOG.md for the codes)",
                            r.metric, catalog.version
                        )));
                    }
                    Some(m) if m.kind == MetricKind::Stock => {
                        return Err(invalid(format!(
                            "{:?} ({}) is a stock, a size at the end of the month: give it in a [[totals]] sheet, not by counting ledger rows",
                            r.metric, m.name_zh
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The catalog code a count rule's `metric` means (a code or a Chinese name).
    pub fn rule_metric<'c>(&self, catalog: &'c Catalog, rule: &CountRule) -> Option<&'c str> {
        catalog.metric(&rule.metric).or_else(|| catalog.metric_for_header(&rule.metric)).map(|m| m.code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
unit = "620982100"
aggregator = "http://127.0.0.1:7401"
outbox_dir = "box"
[[ledger]]
path = "台账.csv"
[[ledger.count]]
metric = "disputes_resolved"
where = { "类别" = "人民调解", "结果" = ["调解成功", "成功"] }
[[ledger.count]]
metric = "consultations"
where = { "类别" = "法律咨询" }
sum = "人数"
"#;

    #[test]
    fn a_good_config_resolves_paths_relative_to_its_file() {
        let c = Config::from_toml(GOOD, Path::new("/office/agent.toml")).unwrap();
        assert_eq!(c.unit, "620982100");
        assert_eq!(c.outbox_dir, Path::new("/office/box"));
        assert_eq!(c.ledgers[0].path, Path::new("/office/台账.csv"));
        assert_eq!(c.ledgers[0].date_column, "日期");
        assert_eq!(c.ledgers[0].rules[0].conditions["结果"].values(), ["调解成功", "成功"]);
        assert_eq!(c.ledgers[0].rules[1].sum.as_deref(), Some("人数"));
        c.check_mapping(&Catalog::builtin()).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let p = Path::new("/office/agent.toml");
        let e = Config::from_toml(&GOOD.replace("620982100", "62098x"), p).unwrap_err().to_string();
        assert!(e.contains("/office/agent.toml") && e.contains("`unit`") && e.contains("62098x"), "{e}");
        let e = Config::from_toml(&GOOD.replace("http://", "tcp://"), p).unwrap_err().to_string();
        assert!(e.contains("`aggregator`"), "{e}");
        let e = Config::from_toml(&GOOD.replace("outbox_dir", "outbox_folder"), p).unwrap_err().to_string();
        assert!(e.contains("outbox_folder"), "{e}");
        let e = Config::from_toml(&format!("{GOOD}first_period = \"2024-3\"\n"), p);
        // A top-level key after a table belongs to that table: TOML puts it in [[ledger.count]].
        assert!(e.is_err());
        let e = Config::from_toml(&GOOD.replace("unit = ", "first_period = \"2024-3\"\nunit = "), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`first_period`") && e.contains("YYYY-MM"), "{e}");
        let c = Config::from_toml(&GOOD.replace("disputes_resolved", "disputes_resolvd"), p).unwrap();
        let e = c.check_mapping(&Catalog::builtin()).unwrap_err().to_string();
        assert!(e.contains("ledger[1].count[1].metric") && e.contains("disputes_resolvd"), "{e}");
        let c = Config::from_toml(&GOOD.replace("disputes_resolved", "staff_actual"), p).unwrap();
        let e = c.check_mapping(&Catalog::builtin()).unwrap_err().to_string();
        assert!(e.contains("is a stock"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../config/agent.example.toml");
        let c = Config::from_toml(text, Path::new("/office/agent.toml")).unwrap();
        c.check_mapping(&Catalog::builtin()).unwrap();
        assert_eq!(c.totals[0].path, Path::new("/office/月度汇总.csv"));
        assert!(!c.skip_bad_rows);
    }

    #[test]
    fn a_config_written_with_toml_reads_back_the_same() {
        let c = Config::from_toml(GOOD, Path::new("/office/agent.toml")).unwrap();
        let mut file = ConfigFile::new("620982100", "https://127.0.0.1:7401", TlsConfig::insecure());
        file.ledger = c.ledgers.clone();
        file.first_period = Some("2024-01".into());
        let back = Config::from_toml(&file.to_toml(), Path::new("/elsewhere/agent.toml")).unwrap();
        assert_eq!(back.ledgers, c.ledgers, "absolute paths stay, rules and conditions survive");
        assert_eq!(back.outbox_dir, Path::new("/elsewhere/outbox"));
        assert_eq!(back.first_period, Some(Period::new(2024, 1).unwrap()));
        assert!(back.tls.insecure);
    }

    #[test]
    fn the_shipped_example_parses_and_asks_for_tls() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.example.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.unit, "620982100");
        assert!(c.tls.key.as_ref().unwrap().ends_with("certs/office-620982100.key"));
        // Without [tls] there is no connection, and the error says what to do.
        let bare = Config::from_toml(GOOD, Path::new("/x/agent.toml")).unwrap();
        let e = bare.endpoint().unwrap_err().to_string();
        assert!(e.contains("sifa pki issue") && e.contains("insecure = true"), "{e}");
    }
}
