//! `sifa publish`: the year's official figures of a store's root unit.
//!
//! Every number comes from SQL over the store (the standard rollups and the
//! monthly trend below) and is written three ways with the same values:
//! `index.html` (one self-contained page, Chinese then English, SVG charts),
//! `figures.csv` (long form, one number per line with its definition) and
//! `figures.json`, plus `figures.sdmx.csv` (SDMX-CSV 2.0) and `figures.adx.xml`
//! (IHE ADX) for exchange with other statistical systems. Output is deterministic: no clock, everything sorted, fixed
//! number formats; publishing twice from the same data gives identical bytes.

pub mod exchange;
mod html;
pub mod numbers;
mod svg;

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::{Map, Value};
use sifa_proto::registry::UnitKind;

use crate::error::{QueryError, Result};
use crate::rollup::{self, Params};
use crate::session::Store;
use crate::{format, query};

/// The statistics reported as offices' headline totals, in this order.
pub const HEADLINE_METRICS: &[&str] = &[
    "disputes_resolved",
    "consultations",
    "legal_aid_cases",
    "legal_opinions",
    "legality_reviews",
    "education_events",
    "legal_literates_trained",
    "missing_persons_located",
];

/// One area (the root, a city or a county) and its figures.
#[derive(Debug, Clone, Serialize)]
pub struct Area {
    pub level: String,
    pub code: String,
    pub name: String,
    pub offices: i64,
    pub office_resolved: f64,
    pub all_resolved: f64,
    pub office_share_pct: Option<f64>,
    pub share_of_province_pct: Option<f64>,
    pub meets_all: i64,
    pub meets_all_pct: Option<f64>,
    pub stars: [i64; 5],
}

/// A statistic's year total over the root's judicial offices.
#[derive(Debug, Clone, Serialize)]
pub struct Total {
    pub metric: String,
    pub name_zh: String,
    pub name_en: String,
    pub unit: String,
    pub kind: String,
    pub value: f64,
}

/// One month of the trend: disputes resolved by offices and by all units.
#[derive(Debug, Clone, Serialize)]
pub struct Month {
    pub month: u8,
    pub office_resolved: f64,
    pub all_resolved: f64,
    pub reports: i64,
}

/// The year's reports expected, received and late.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Completeness {
    pub expected: i64,
    pub received: i64,
    pub missing: i64,
    pub late: i64,
    pub on_time_pct: Option<f64>,
    /// Months whose figures are approved (已审核) for the root at the store's
    /// tier, "YYYY-MM" ascending (the completeness rollup's `approved`).
    pub approved_months: Vec<String>,
}

/// A figure the `outliers` rollup flags: published as reported, listed for checking.
#[derive(Debug, Clone, Serialize)]
pub struct FigureToCheck {
    pub unit_code: String,
    pub name: String,
    pub period: String,
    pub metric: String,
    pub value: f64,
    /// `far_from_history`, `jump` or `beyond_size` (queries/README.md).
    pub reason: String,
    pub reference: f64,
    pub score: f64,
    pub threshold: f64,
}

/// What an outlier reason means, in Chinese and English.
pub fn reason_text(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "far_from_history" => ("偏离本单位历史水平", "far from the unit's own months"),
        "jump" => ("较上月突变", "a jump from the previous month"),
        "beyond_size" => ("超出单位规模的合理范围", "beyond what the unit's size makes plausible"),
        _ => ("待核实", "to check"),
    }
}

/// A definition used by the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Definition {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub unit: String,
    pub kind: String,
    pub definition: String,
}

/// Everything published for a year.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub year: u16,
    pub catalog_version: String,
    /// When the newest report revision of the year was received (UTC,
    /// RFC 3339): the state of the data these figures show.
    pub data_as_of: String,
    pub root: Area,
    /// "nation", "province", "city" or "county".
    pub root_level: String,
    /// A national tier's provinces (none below a province).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<Area>,
    pub cities: Vec<Area>,
    pub counties: Vec<Area>,
    pub office_totals: Vec<Total>,
    pub monthly: Vec<Month>,
    pub completeness: Completeness,
    /// Figures the `outliers` rollup flags (published as reported).
    pub figures_to_check: Vec<FigureToCheck>,
    pub definitions: Vec<Definition>,
}

impl Figures {
    /// Every published area: the root, then its provinces, cities and counties.
    pub fn areas(&self) -> impl Iterator<Item = &Area> {
        std::iter::once(&self.root).chain(&self.provinces).chain(&self.cities).chain(&self.counties)
    }
}

fn f(row: &Map<String, Value>, key: &str) -> f64 {
    row.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}
fn fo(row: &Map<String, Value>, key: &str) -> Option<f64> {
    row.get(key).and_then(Value::as_f64)
}
fn i(row: &Map<String, Value>, key: &str) -> i64 {
    row.get(key).and_then(Value::as_i64).unwrap_or(0)
}
fn s(row: &Map<String, Value>, key: &str) -> String {
    row.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Map<String, Value>>> {
    format::json_rows(&query::run_one(ctx, sql).await?)
}

/// The monthly trend of disputes resolved (offices and all units).
const MONTHLY_SQL: &str = "SELECT month, \
       coalesce(sum(disputes_resolved) FILTER (WHERE unit_kind = 'office'), 0) AS office_resolved, \
       coalesce(sum(disputes_resolved), 0) AS all_resolved, count(*) AS reports \
     FROM reports WHERE year = $year GROUP BY month ORDER BY month";

/// The offices' totals of every statistic (flows summed, stocks at year end).
const OFFICE_TOTALS_SQL: &str = "SELECT metric, sum(value) AS value FROM yearly_facts \
     WHERE year = $year AND unit_kind = 'office' GROUP BY metric ORDER BY metric";

/// The rows of the `outliers` rollup for `year`: figures to check.
pub async fn figures_to_check(store: &Store, ctx: &SessionContext, year: u16) -> Result<Vec<FigureToCheck>> {
    let sql = rollup::find("outliers")?.sql_for(&Params::year(year), &store.catalog)?;
    Ok(rows(ctx, &sql)
        .await?
        .iter()
        .map(|r| FigureToCheck {
            unit_code: s(r, "unit_code"),
            name: s(r, "name"),
            period: s(r, "period"),
            metric: s(r, "metric"),
            value: f(r, "value"),
            reason: s(r, "reason"),
            reference: f(r, "reference"),
            score: f(r, "score"),
            threshold: f(r, "threshold"),
        })
        .collect())
}

/// When the newest revision of the year was received.
const DATA_AS_OF_SQL: &str = "SELECT to_char(max(received_at), '%Y-%m-%dT%H:%M:%SZ') AS data_as_of \
     FROM report_revisions WHERE year = $year";

/// Computes the year's figures from the store.
pub async fn figures(store: &Store, ctx: &SessionContext, year: u16) -> Result<Figures> {
    if !store.years.contains(&year) {
        let have = store.years.iter().map(|y| y.to_string()).collect::<Vec<_>>().join(", ");
        return Err(QueryError::Sql(format!(
            "the store {} has no reports for {year} (it has: {}); publish a year it holds",
            store.location(),
            if have.is_empty() { "none".to_string() } else { have }
        )));
    }
    let root = store.root().clone();
    let run = |name: &str| -> Result<String> { rollup::find(name)?.sql_for(&Params::year(year), &store.catalog) };
    let shares = rows(ctx, &run("share_of_mediations")?).await?;
    let standards = rows(ctx, &run("standards")?).await?;
    let completeness = rows(ctx, &run("completeness")?).await?;
    let figures_to_check = figures_to_check(store, ctx, year).await?;
    let area = |row: &Map<String, Value>| {
        let code = s(row, "code");
        let std = standards.iter().find(|r| s(r, "code") == code);
        Area {
            level: s(row, "level"),
            name: s(row, "name"),
            offices: i(row, "offices"),
            office_resolved: f(row, "office_resolved"),
            all_resolved: f(row, "all_resolved"),
            office_share_pct: fo(row, "office_share_pct"),
            share_of_province_pct: fo(row, "share_of_province_pct"),
            meets_all: std.map(|r| i(r, "meets_all")).unwrap_or(0),
            meets_all_pct: std.and_then(|r| fo(r, "meets_all_pct")),
            stars: std
                .map(|r| [i(r, "stars_5"), i(r, "stars_4"), i(r, "stars_3"), i(r, "stars_2"), i(r, "stars_1")])
                .unwrap_or_default(),
            code,
        }
    };
    let areas: Vec<Area> = shares.iter().map(area).collect();
    let root_level = match root.kind {
        UnitKind::Nation => "nation",
        UnitKind::Province => "province",
        UnitKind::City => "city",
        _ => "county",
    };
    let root_area = areas.iter().find(|a| a.code == root.code).cloned().unwrap_or(Area {
        level: root_level.to_string(),
        code: root.code.to_string(),
        name: root.name.clone(),
        offices: 0,
        office_resolved: 0.0,
        all_resolved: 0.0,
        office_share_pct: None,
        share_of_province_pct: None,
        meets_all: 0,
        meets_all_pct: None,
        stars: [0; 5],
    });
    let within = |a: &&Area| store.registry.is_within(&a.code, &root.code) && a.code != root.code;
    let provinces: Vec<Area> = areas.iter().filter(|a| a.level == "province").filter(within).cloned().collect();
    let cities: Vec<Area> = areas.iter().filter(|a| a.level == "city").filter(within).cloned().collect();
    let counties: Vec<Area> = areas.iter().filter(|a| a.level == "county").filter(within).cloned().collect();

    let data_as_of = rows(ctx, &DATA_AS_OF_SQL.replace("$year", &year.to_string()))
        .await?
        .first()
        .map(|r| s(r, "data_as_of"))
        .unwrap_or_default();
    let totals = rows(ctx, &OFFICE_TOTALS_SQL.replace("$year", &year.to_string())).await?;
    let office_totals = store
        .catalog
        .metrics()
        .iter()
        .filter_map(|m| {
            let row = totals.iter().find(|r| s(r, "metric") == m.code)?;
            Some(Total {
                metric: m.code.clone(),
                name_zh: m.name_zh.clone(),
                name_en: m.name_en.clone(),
                unit: m.unit.clone(),
                kind: m.kind.as_str().to_string(),
                value: f(row, "value"),
            })
        })
        .collect();
    let monthly = rows(ctx, &MONTHLY_SQL.replace("$year", &year.to_string()))
        .await?
        .iter()
        .map(|r| Month {
            month: i(r, "month") as u8,
            office_resolved: f(r, "office_resolved"),
            all_resolved: f(r, "all_resolved"),
            reports: i(r, "reports"),
        })
        .collect();
    let mut c = Completeness::default();
    for r in completeness.iter().filter(|r| s(r, "code") == root.code) {
        c.expected += i(r, "expected");
        c.received += i(r, "received");
        c.late += i(r, "late");
        if !s(r, "approved").is_empty() {
            c.approved_months.push(s(r, "period"));
        }
    }
    c.missing = c.expected - c.received;
    c.on_time_pct =
        (c.expected > 0).then(|| (1000.0 * (c.received - c.late) as f64 / c.expected as f64).round() / 10.0);
    let definitions = store
        .catalog
        .metrics()
        .iter()
        .map(|m| Definition {
            code: m.code.clone(),
            name_zh: m.name_zh.clone(),
            name_en: m.name_en.clone(),
            unit: m.unit.clone(),
            kind: m.kind.as_str().to_string(),
            definition: match m.kind {
                sifa_proto::MetricKind::Flow => "flow: the year is the sum of its months".to_string(),
                sifa_proto::MetricKind::Stock => {
                    "stock: each unit's value in its last reported month of the year, summed over units; never summed over months"
                        .to_string()
                }
            },
        })
        .collect();
    Ok(Figures {
        year,
        catalog_version: store.catalog.version.clone(),
        data_as_of,
        root: root_area,
        root_level: root_level.to_string(),
        provinces,
        cities,
        counties,
        office_totals,
        monthly,
        completeness: c,
        figures_to_check,
        definitions,
    })
}

/// The definitions of the derived measures, as stated in figures.csv and figures.json.
pub const MEASURES: &[(&str, &str)] = &[
    (
        "office_resolved",
        "disputes resolved by mediation (disputes_resolved) reported by judicial offices, summed over the year",
    ),
    (
        "all_resolved",
        "disputes resolved by mediation reported by every reporting unit of the area (offices, bureaus, mediation centres, industry committees)",
    ),
    ("office_share_pct", "office_resolved / all_resolved × 100, one decimal"),
    ("share_of_province_pct", "the area's all_resolved / its province's all_resolved × 100, one decimal"),
    ("offices", "judicial offices that reported in the year"),
    (
        "meets_all",
        "offices meeting every standardisation mark at year end: staff_actual + staff_contracted ≥ 3, office_area_m2 ≥ 100, villages_with_adviser ≥ villages_total",
    ),
    ("meets_all_pct", "meets_all / offices × 100, one decimal"),
    ("stars_5..stars_1", "offices by year-end star_rating"),
    ("reports_expected", "monthly reports expected: every reporting unit of the registry × 12 months"),
    ("reports_received", "monthly reports with at least one revision received"),
    (
        "reports_late",
        "received reports whose first revision arrived after the deadline (deadline_day of the next month, China Standard Time)",
    ),
    ("reports_missing", "reports_expected − reports_received"),
    ("on_time_pct", "(reports_received − reports_late) / reports_expected × 100, one decimal"),
    (
        "approved_months",
        "months whose figures are approved (已审核) for the area at the publishing tier: approved there, or approved below and accepted there",
    ),
    (
        "to_check",
        "a figure the outliers rollup flags (far from the unit's own months, a jump from the previous month, or beyond the unit's size; thresholds in the catalog's [outliers]); published as reported",
    ),
];

fn measure_definition(name: &str) -> &'static str {
    MEASURES
        .iter()
        .find(|(m, _)| *m == name || (name.starts_with("stars_") && m.starts_with("stars_")))
        .map(|(_, d)| *d)
        .unwrap_or("")
}

/// figures.csv: one number per line with what it is.
pub fn to_csv(fig: &Figures) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut put =
        |section: &str, level: &str, code: &str, name: &str, measure: &str, value: String, unit: &str, def: &str| {
            w.write_record([section, level, code, name, measure, &value, unit, def]).expect("in memory");
        };
    put("section", "level", "code", "name", "measure", "value".to_string(), "unit", "definition");
    let num = |v: f64| numbers::integer(v);
    let opt = |v: Option<f64>| v.map(|p| format!("{p:.1}")).unwrap_or_default();
    for a in fig.areas() {
        let section = if a.code == fig.root.code { "headline" } else { "area" };
        let rows: Vec<(&str, String, &str)> = vec![
            ("offices", a.offices.to_string(), "个"),
            ("office_resolved", num(a.office_resolved), "件"),
            ("all_resolved", num(a.all_resolved), "件"),
            ("office_share_pct", opt(a.office_share_pct), "%"),
            ("share_of_province_pct", opt(a.share_of_province_pct), "%"),
            ("meets_all", a.meets_all.to_string(), "个"),
            ("meets_all_pct", opt(a.meets_all_pct), "%"),
            ("stars_5", a.stars[0].to_string(), "个"),
            ("stars_4", a.stars[1].to_string(), "个"),
            ("stars_3", a.stars[2].to_string(), "个"),
            ("stars_2", a.stars[3].to_string(), "个"),
            ("stars_1", a.stars[4].to_string(), "个"),
        ];
        for (measure, value, unit) in rows {
            put(section, &a.level, &a.code, &a.name, measure, value, unit, measure_definition(measure));
        }
    }
    for t in &fig.office_totals {
        let def = fig.definitions.iter().find(|d| d.code == t.metric).map(|d| d.definition.as_str()).unwrap_or("");
        put("office_totals", &fig.root.level, &fig.root.code, &fig.root.name, &t.metric, num(t.value), &t.unit, def);
    }
    for m in &fig.monthly {
        let measure = format!("{}-{:02}", fig.year, m.month);
        put(
            "monthly",
            &fig.root.level,
            &fig.root.code,
            &fig.root.name,
            &format!("office_resolved {measure}"),
            num(m.office_resolved),
            "件",
            measure_definition("office_resolved"),
        );
        put(
            "monthly",
            &fig.root.level,
            &fig.root.code,
            &fig.root.name,
            &format!("all_resolved {measure}"),
            num(m.all_resolved),
            "件",
            measure_definition("all_resolved"),
        );
    }
    let c = &fig.completeness;
    for (measure, value, unit) in [
        ("reports_expected", c.expected.to_string(), "份"),
        ("reports_received", c.received.to_string(), "份"),
        ("reports_late", c.late.to_string(), "份"),
        ("reports_missing", c.missing.to_string(), "份"),
        ("on_time_pct", opt(c.on_time_pct), "%"),
        ("approved_months", c.approved_months.join(" "), "月"),
    ] {
        put(
            "completeness",
            &fig.root.level,
            &fig.root.code,
            &fig.root.name,
            measure,
            value,
            unit,
            measure_definition(measure),
        );
    }
    for x in &fig.figures_to_check {
        let (_, reason) = reason_text(&x.reason);
        let unit = fig.definitions.iter().find(|d| d.code == x.metric).map(|d| d.unit.as_str()).unwrap_or("");
        let what = format!(
            "{} {}: {reason} ({}; reference {}, score {}, threshold {})",
            x.metric, x.period, x.reason, x.reference, x.score, x.threshold
        );
        put(
            "to_check",
            "unit",
            &x.unit_code,
            &x.name,
            &what,
            numbers::integer(x.value),
            unit,
            measure_definition("to_check"),
        );
    }
    for d in &fig.definitions {
        put("definition", "", &d.code, &d.name_zh, &d.name_en, d.kind.clone(), &d.unit, &d.definition);
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8")
}

/// figures.json: the same numbers, structured.
pub fn to_json(fig: &Figures) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        #[serde(flatten)]
        figures: &'a Figures,
        measures: Vec<Map<String, Value>>,
    }
    let measures = MEASURES
        .iter()
        .map(|(m, d)| {
            let mut o = Map::new();
            o.insert("measure".into(), Value::from(*m));
            o.insert("definition".into(), Value::from(*d));
            o
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&Doc { figures: fig, measures }).expect("serialisable");
    s.push('\n');
    s
}

/// Writes index.html, figures.csv, figures.json, figures.sdmx.csv and figures.adx.xml for `year` into `out`.
pub async fn publish(store: &Store, ctx: &SessionContext, year: u16, out: &Path) -> Result<Vec<PathBuf>> {
    let fig = figures(store, ctx, year).await?;
    std::fs::create_dir_all(out).map_err(|source| QueryError::Io {
        what: "cannot create the output directory",
        path: out.to_path_buf(),
        source,
    })?;
    let files = [
        ("index.html", html::render(&fig)),
        ("figures.csv", to_csv(&fig)),
        ("figures.json", to_json(&fig)),
        ("figures.sdmx.csv", exchange::to_sdmx_csv(&fig)),
        ("figures.adx.xml", exchange::to_adx(&fig)),
    ];
    let mut written = Vec::new();
    for (name, body) in files {
        written.push(sifa_proto::fs::write_atomic(out, name, body.as_bytes())?);
    }
    Ok(written)
}
