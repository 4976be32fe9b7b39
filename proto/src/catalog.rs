//! The catalog: the data dictionary every report is checked against.
//!
//! A versioned TOML document (`proto/catalog/catalog.toml` is the default; see
//! docs/CATALOG.md). The province serves it to the tiers below, which cache the
//! document as-is.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// The catalog sifa ships, holding every statistic of a judicial office's monthly report.
pub const DEFAULT_CATALOG_TOML: &str = include_str!("../catalog/catalog.toml");

/// Flow or stock: how a statistic adds up over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Counted per month; a quarter's or a year's value is the sum of its months.
    Flow,
    /// A size at the end of the month; a quarter's or a year's value is its last
    /// reported month's value, never a sum.
    Stock,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Flow => "flow",
            MetricKind::Stock => "stock",
        }
    }
}

/// Whole numbers or decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    #[default]
    Integer,
    Decimal,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Integer => "integer",
            ValueType::Decimal => "decimal",
        }
    }
}

/// One statistic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub unit: String,
    pub kind: MetricKind,
    #[serde(default, rename = "type")]
    pub value_type: ValueType,
    #[serde(default)]
    pub min: f64,
    pub max: Option<f64>,
    pub group: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// A cross-field rule: `left <= right` whenever both are reported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossRule {
    pub name: String,
    pub left: String,
    pub right: String,
    pub description_zh: String,
    pub description_en: String,
}

/// The thresholds of the `outliers` rollup: figures a supervisor should check
/// before approving a month. They never block a report. Every key is optional;
/// the defaults are documented in docs/CATALOG.md.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierChecks {
    /// Flag a flow whose robust score |x − median| / (1.4826 · MAD) over the
    /// unit's own months is at least this (3.5, Iglewicz and Hoaglin's cut).
    pub robust_score: f64,
    /// Months of the unit's own history a robust score needs (6).
    pub min_months: u32,
    /// Flag a flow that grows or shrinks by at least this factor from the
    /// unit's previous month (3).
    pub jump_ratio: f64,
    /// Differences smaller than this from the median or the previous month are
    /// never flagged: small counts move by large factors (10).
    pub small_difference: f64,
    /// Plausible bounds for the unit's size.
    #[serde(rename = "bound")]
    pub bounds: Vec<SizeBound>,
}

impl Default for OutlierChecks {
    fn default() -> Self {
        OutlierChecks { robust_score: 3.5, min_months: 6, jump_ratio: 3.0, small_difference: 10.0, bounds: Vec::new() }
    }
}

/// What a size bound divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeMeasure {
    /// Villages and communities in the jurisdiction: the registry's `villages`,
    /// else the month's `villages_total`.
    Village,
    /// People in post that month: `staff_actual + staff_contracted`.
    Staff,
    /// Ten thousand residents: the registry's `population` / 10,000.
    TenThousandPeople,
}

impl SizeMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            SizeMeasure::Village => "village",
            SizeMeasure::Staff => "staff",
            SizeMeasure::TenThousandPeople => "ten_thousand_people",
        }
    }
}

/// `metric` above `max` per `per` in one month is implausible for the unit's size.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeBound {
    pub metric: String,
    pub per: SizeMeasure,
    pub max: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: String,
    title_zh: String,
    title_en: String,
    #[serde(default, rename = "metric")]
    metrics: Vec<Metric>,
    #[serde(default, rename = "rule")]
    rules: Vec<CrossRule>,
    #[serde(default)]
    outliers: OutlierChecks,
}

/// Why a catalog document was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("catalog is not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("catalog is inconsistent: {0}")]
    Invalid(String),
}

/// A loaded, checked catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub version: String,
    pub title_zh: String,
    pub title_en: String,
    metrics: Vec<Metric>,
    rules: Vec<CrossRule>,
    outliers: OutlierChecks,
    by_code: HashMap<String, usize>,
    by_name_zh: HashMap<String, usize>,
    source: String,
}

impl Catalog {
    /// The catalog sifa ships.
    pub fn builtin() -> Catalog {
        Catalog::from_toml(DEFAULT_CATALOG_TOML).expect("the shipped catalog is valid (tested)")
    }

    /// Reads and checks a catalog file.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CatalogError::Read { path: path.display().to_string(), source })?;
        Catalog::from_toml(&text)
    }

    /// Parses and checks a catalog document: codes are unique lower-case
    /// identifiers, names are unique, bounds are ordered, and rules name known
    /// metrics of the same kind.
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text)?;
        let invalid = |m: String| Err(CatalogError::Invalid(m));
        if file.version.trim().is_empty() {
            return invalid("`version` is empty".into());
        }
        let mut by_code = HashMap::new();
        let mut by_name_zh = HashMap::new();
        for (i, m) in file.metrics.iter().enumerate() {
            let ok_code = !m.code.is_empty()
                && m.code.len() <= 63
                && m.code.starts_with(|c: char| c.is_ascii_lowercase())
                && m.code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok_code {
                return invalid(format!(
                    "metric code {:?} must be a lower-case identifier (a-z, 0-9, _), starting with a letter",
                    m.code
                ));
            }
            if RESERVED_COLUMNS.contains(&m.code.as_str()) {
                return invalid(format!("metric code {:?} is reserved for a column of the store", m.code));
            }
            if by_code.insert(m.code.clone(), i).is_some() {
                return invalid(format!("metric code {:?} appears twice", m.code));
            }
            if by_name_zh.insert(m.name_zh.clone(), i).is_some() {
                return invalid(format!("Chinese name {:?} is used by two metrics", m.name_zh));
            }
            if !m.min.is_finite() || m.max.is_some_and(|max| !max.is_finite() || max < m.min) {
                return invalid(format!("metric {}: bounds min={} max={:?} are not ordered", m.code, m.min, m.max));
            }
        }
        for r in &file.rules {
            for side in [&r.left, &r.right] {
                let Some(&i) = by_code.get(side) else {
                    return invalid(format!("rule {} names unknown metric {:?}", r.name, side));
                };
                let _ = i;
            }
            let (l, rt) = (&file.metrics[by_code[&r.left]], &file.metrics[by_code[&r.right]]);
            if l.kind != rt.kind {
                return invalid(format!("rule {} compares a {} with a {}", r.name, l.kind.as_str(), rt.kind.as_str()));
            }
        }
        let o = &file.outliers;
        for (key, value) in [("robust_score", o.robust_score), ("jump_ratio", o.jump_ratio)] {
            if !value.is_finite() || value <= 1.0 {
                return invalid(format!("[outliers] {key} = {value} must be a number above 1"));
            }
        }
        if !o.small_difference.is_finite() || o.small_difference < 0.0 {
            return invalid(format!("[outliers] small_difference = {} must be 0 or more", o.small_difference));
        }
        if o.min_months < 3 {
            return invalid(format!("[outliers] min_months = {} must be at least 3", o.min_months));
        }
        for b in &o.bounds {
            if !by_code.contains_key(&b.metric) {
                return invalid(format!("[[outliers.bound]] names unknown metric {:?}", b.metric));
            }
            if !b.max.is_finite() || b.max <= 0.0 {
                return invalid(format!(
                    "[[outliers.bound]] {} per {}: max = {} must be above 0",
                    b.metric,
                    b.per.as_str(),
                    b.max
                ));
            }
        }
        Ok(Catalog {
            version: file.version,
            title_zh: file.title_zh,
            title_en: file.title_en,
            metrics: file.metrics,
            rules: file.rules,
            outliers: file.outliers,
            by_code,
            by_name_zh,
            source: text.to_string(),
        })
    }

    /// Metrics in catalog order (the order of the store's columns).
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    pub fn rules(&self) -> &[CrossRule] {
        &self.rules
    }

    /// The thresholds of the `outliers` rollup.
    pub fn outliers(&self) -> &OutlierChecks {
        &self.outliers
    }

    pub fn metric(&self, code: &str) -> Option<&Metric> {
        self.by_code.get(code).map(|&i| &self.metrics[i])
    }

    /// The metric a ledger column header means: its code or its Chinese name,
    /// ignoring surrounding white space.
    pub fn metric_for_header(&self, header: &str) -> Option<&Metric> {
        let h = header.trim();
        self.by_code.get(h).or_else(|| self.by_name_zh.get(h)).map(|&i| &self.metrics[i])
    }

    /// The TOML document this catalog was read from, byte for byte (what the
    /// aggregator serves and what lower tiers cache).
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Column names of the store that no metric may take (docs/STORAGE.md).
pub const RESERVED_COLUMNS: &[&str] = &[
    "unit_code",
    "unit_kind",
    "province_code",
    "city_code",
    "county_code",
    "period",
    "year",
    "month",
    "revision",
    "received_at",
    "first_accepted_by",
    "generated_at",
    "generator",
    "comment",
    "content_digest",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statistic listed in docs/DOMAIN.md, with its kind.
    const DOMAIN: &[(&str, &str, MetricKind)] = &[
        ("disputes_screened", "矛盾纠纷排查", MetricKind::Flow),
        ("disputes_received", "受理矛盾纠纷", MetricKind::Flow),
        ("disputes_mediated", "调解矛盾纠纷", MetricKind::Flow),
        ("disputes_resolved", "调解成功", MetricKind::Flow),
        ("consultations", "法律咨询", MetricKind::Flow),
        ("legal_aid_cases", "法律援助案件", MetricKind::Flow),
        ("legal_opinions", "为基层政府提供法律意见建议", MetricKind::Flow),
        ("legality_reviews", "参与重大事项合法性审查", MetricKind::Flow),
        ("education_events", "法治宣传教育活动", MetricKind::Flow),
        ("lectures", "法治讲座", MetricKind::Flow),
        ("legal_literates_trained", "培养\"法律明白人\"", MetricKind::Flow),
        ("staff_training_attendances", "业务培训", MetricKind::Flow),
        ("corrections_received", "新接收社区矫正对象", MetricKind::Flow),
        ("corrections_released", "解除社区矫正", MetricKind::Flow),
        ("released_prisoners_assisted", "安置帮教刑满释放人员", MetricKind::Flow),
        ("missing_persons_located", "查明失联人员", MetricKind::Flow),
        ("video_mediations", "远程视频调解", MetricKind::Flow),
        ("investment_yuan", "建设投入", MetricKind::Flow),
        ("correction_subjects", "在册社区矫正对象", MetricKind::Stock),
        ("staff_authorized", "政法专项编制", MetricKind::Stock),
        ("staff_actual", "实有在编人数", MetricKind::Stock),
        ("staff_contracted", "购买服务聘用人员", MetricKind::Stock),
        ("judicial_assistants", "司法协理员", MetricKind::Stock),
        ("mediators_fulltime", "专职人民调解员", MetricKind::Stock),
        ("office_area_m2", "业务用房面积", MetricKind::Stock),
        ("mediation_committees", "人民调解委员会", MetricKind::Stock),
        ("mediation_studios", "个人调解工作室", MetricKind::Stock),
        ("service_rooms", "公共法律服务工作室", MetricKind::Stock),
        ("villages_total", "辖区村(社区)数", MetricKind::Stock),
        ("villages_with_adviser", "配备法律顾问的村(社区)数", MetricKind::Stock),
        ("star_rating", "星级评定", MetricKind::Stock),
        ("fengqiao_style", "枫桥式司法所", MetricKind::Stock),
    ];

    #[test]
    fn builtin_holds_every_statistic_of_the_domain() {
        let c = Catalog::builtin();
        assert_eq!(c.metrics().len(), DOMAIN.len());
        for (code, zh, kind) in DOMAIN {
            let m = c.metric(code).unwrap_or_else(|| panic!("{code} missing"));
            assert_eq!(&m.name_zh, zh);
            assert_eq!(m.kind, *kind, "{code}");
            assert!(!m.name_en.is_empty() && !m.unit.is_empty(), "{code}");
            assert_eq!(c.metric_for_header(zh).unwrap().code, *code);
            assert_eq!(c.metric_for_header(&format!(" {code} ")).unwrap().code, *code);
        }
        let star = c.metric("star_rating").unwrap();
        assert_eq!((star.min, star.max), (1.0, Some(5.0)));
        let fengqiao = c.metric("fengqiao_style").unwrap();
        assert_eq!((fengqiao.min, fengqiao.max, fengqiao.value_type), (0.0, Some(1.0), ValueType::Integer));
        assert_eq!(c.metric("office_area_m2").unwrap().value_type, ValueType::Decimal);
        let rules: Vec<_> = c.rules().iter().map(|r| (r.left.as_str(), r.right.as_str())).collect();
        assert!(rules.contains(&("disputes_resolved", "disputes_mediated")));
        assert!(rules.contains(&("villages_with_adviser", "villages_total")));
        assert_eq!(c.source(), DEFAULT_CATALOG_TOML);
        let o = c.outliers();
        assert_eq!((o.robust_score, o.min_months, o.jump_ratio, o.small_difference), (3.5, 6, 3.0, 10.0));
        assert!(o.bounds.iter().any(|b| b.metric == "disputes_received" && b.per == SizeMeasure::Village));
    }

    #[test]
    fn outlier_thresholds_default_when_the_catalog_leaves_them_out() {
        let c = Catalog::from_toml(&with_metric(M)).unwrap();
        assert_eq!(c.outliers(), &OutlierChecks::default());
        let c = Catalog::from_toml(&with_metric(&format!("{M}[outliers]\njump_ratio = 5\n"))).unwrap();
        assert_eq!((c.outliers().jump_ratio, c.outliers().robust_score), (5.0, 3.5));
    }

    fn with_metric(extra: &str) -> String {
        format!("version = \"t\"\ntitle_zh = \"t\"\ntitle_en = \"t\"\n{extra}")
    }

    const M: &str =
        "[[metric]]\ncode = \"a\"\nname_zh = \"甲\"\nname_en = \"A\"\nunit = \"件\"\nkind = \"flow\"\ngroup = \"g\"\n";

    #[test]
    fn inconsistent_catalogs_are_refused_with_the_reason() {
        let cases = [
            (with_metric(&format!("{M}{M}")), "appears twice"),
            (with_metric(&M.replace("\"a\"", "\"Bad-Code\"")), "lower-case identifier"),
            (with_metric(&M.replace("\"a\"", "\"period\"")), "reserved"),
            (with_metric(&format!("{M}max = -1\n")), "not ordered"),
            (
                with_metric(&format!(
                    "{M}[[rule]]\nname = \"r\"\nleft = \"a\"\nright = \"zz\"\ndescription_zh = \"\"\ndescription_en = \"\"\n"
                )),
                "unknown metric \"zz\"",
            ),
            (with_metric(&M.replace("flow", "flux")), "unknown variant"),
            (
                with_metric(&format!("{M}[outliers]\nrobust_score = 0.5\n")),
                "robust_score = 0.5 must be a number above 1",
            ),
            (
                with_metric(&format!("{M}[[outliers.bound]]\nmetric = \"zz\"\nper = \"village\"\nmax = 1\n")),
                "[[outliers.bound]] names unknown metric \"zz\"",
            ),
            (
                with_metric(&format!("{M}[[outliers.bound]]\nmetric = \"a\"\nper = \"hectare\"\nmax = 1\n")),
                "unknown variant",
            ),
            ("version = \"\"\ntitle_zh = \"t\"\ntitle_en = \"t\"\n".to_string(), "`version` is empty"),
        ];
        for (doc, want) in cases {
            let e = Catalog::from_toml(&doc).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        }
        let e = Catalog::load(Path::new("/nonexistent/catalog.toml")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/catalog.toml"), "{e}");
    }
}
