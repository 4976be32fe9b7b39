//! The views every query sees, as SQL. Their columns depend on the catalog (one
//! column per metric), so the SQL is generated here from it; queries/README.md
//! documents each view.
//!
//! Speed notes (a national store is ~5M rows × ~45 columns per 10 years):
//! - the figures in force of a year are read from `current/` when the aggregator has derived them
//!   for the year's report files as they are (no window at all), else deduplicated:
//! - every window partitions by `year` first: `year` is functionally determined
//!   by `period`, so the result is unchanged, and a filter on `year` is pushed
//!   through the window down to the listing table, which then opens only that
//!   year's partition directory;
//! - `yearly` is one grouped pass (`sum` for flows, `last_value(.. ORDER BY month)`
//!   for stocks), with `year` a group key so the same pruning applies;
//! - the long forms unpivot with `unnest` of parallel arrays: one pass over the
//!   wide rows, not one `UNION ALL` branch (and one scan) per metric.

use sifa_proto::MetricKind;
use sifa_proto::catalog::Catalog;

/// Columns a report row has besides the metrics (the store's fixed columns).
const ROW_COLUMNS: &str = "unit_code, unit_kind, province_code, city_code, county_code, period, month, revision, \
     received_at, first_accepted_by, generated_at, generator, comment";

/// Quotes an identifier for SQL (metric codes are lower-case identifiers, but a
/// code such as `group` would otherwise be a keyword).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal for SQL.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `CREATE VIEW` statements, in dependency order, as (name, SQL). `current_years`: the years whose
/// current figures (the table `current_files`, `current/` of docs/STORAGE.md) cover their report files.
pub fn all(catalog: &Catalog, current_years: &[u16]) -> Vec<(&'static str, String)> {
    vec![
        ("report_revisions", report_revisions(catalog)),
        ("reports", reports(catalog, current_years)),
        ("facts", facts(catalog)),
        ("yearly", yearly(catalog)),
        ("yearly_facts", yearly_facts(catalog)),
    ]
}

fn metric_list(catalog: &Catalog) -> String {
    catalog.metrics().iter().map(|m| ident(&m.code)).collect::<Vec<_>>().join(", ")
}

/// Every accepted revision once: a row that compaction briefly left in two
/// files is the same (unit, period, revision) and is kept once.
fn report_revisions(catalog: &Catalog) -> String {
    format!(
        "CREATE VIEW report_revisions AS \
         SELECT {ROW_COLUMNS}, {metrics}, year FROM ( \
           SELECT *, row_number() OVER (PARTITION BY year, unit_code, period, revision) AS sifa_copy \
           FROM report_files) \
         WHERE sifa_copy = 1",
        metrics = metric_list(catalog)
    )
}

/// The figures in force: the latest revision of each unit and month. Read from `current_files` for
/// `current_years` (derived by the aggregator, already deduplicated), deduplicated from
/// `report_files` for the other years.
fn reports(catalog: &Catalog, current_years: &[u16]) -> String {
    let metrics = metric_list(catalog);
    let dedupe = |filter: &str| {
        format!(
            "SELECT {ROW_COLUMNS}, {metrics}, year FROM ( \
               SELECT *, row_number() OVER (PARTITION BY year, unit_code, period ORDER BY revision DESC) AS sifa_latest \
               FROM report_files{filter}) \
             WHERE sifa_latest = 1"
        )
    };
    if current_years.is_empty() {
        return format!("CREATE VIEW reports AS {}", dedupe(""));
    }
    let years = current_years.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    format!(
        "CREATE VIEW reports AS \
         SELECT {ROW_COLUMNS}, {metrics}, year FROM current_files WHERE year IN ({years}) \
         UNION ALL {}",
        dedupe(&format!(" WHERE year NOT IN ({years})"))
    )
}

/// Unpivots wide rows into (metric, kind, value), dropping absent values.
fn unpivot(catalog: &Catalog, keys: &str, from: &str) -> String {
    let names = catalog.metrics().iter().map(|m| literal(&m.code)).collect::<Vec<_>>().join(", ");
    let kinds = catalog.metrics().iter().map(|m| literal(m.kind.as_str())).collect::<Vec<_>>().join(", ");
    let values =
        catalog.metrics().iter().map(|m| format!("CAST({} AS DOUBLE)", ident(&m.code))).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {keys}, metric, kind, value FROM ( \
           SELECT {keys}, unnest(make_array({names})) AS metric, unnest(make_array({kinds})) AS kind, \
                  unnest(make_array({values})) AS value \
           FROM {from}) \
         WHERE value IS NOT NULL"
    )
}

fn facts(catalog: &Catalog) -> String {
    format!(
        "CREATE VIEW facts AS {}",
        unpivot(
            catalog,
            "unit_code, unit_kind, province_code, city_code, county_code, year, period, month, revision",
            "reports"
        )
    )
}

/// One row per unit and year: flows summed over the months, stocks taken at the
/// unit's last reported month of the year (null if that month did not carry
/// the stock) — never summed.
fn yearly(catalog: &Catalog) -> String {
    let last = |col: &str| format!("last_value({col} ORDER BY month) AS {col}");
    let mut cols = vec![
        last("unit_kind"),
        last("province_code"),
        last("city_code"),
        last("county_code"),
        "CAST(count(*) AS INT) AS months_reported".to_string(),
        "max(month) AS last_month".to_string(),
    ];
    for m in catalog.metrics() {
        let c = ident(&m.code);
        cols.push(match m.kind {
            MetricKind::Flow => format!("sum({c}) AS {c}"),
            MetricKind::Stock => last(&c),
        });
    }
    format!("CREATE VIEW yearly AS SELECT unit_code, year, {} FROM reports GROUP BY year, unit_code", cols.join(", "))
}

fn yearly_facts(catalog: &Catalog) -> String {
    format!(
        "CREATE VIEW yearly_facts AS {}",
        unpivot(catalog, "unit_code, unit_kind, province_code, city_code, county_code, year", "yearly")
    )
}
