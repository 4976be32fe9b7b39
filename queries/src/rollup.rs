//! The standard rollups: SQL files in `queries/sql/`, compiled into the binary,
//! run by name with `--rollup NAME --year YYYY`.
//!
//! A rollup's SQL names its parameters `$year`, `$metric` and `$limit`. They are
//! substituted as SQL literals after being checked here (a year is a number in
//! range, a metric a code of the store's catalog, a limit a positive number),
//! so no text a user typed reaches the SQL unchecked.

use sifa_proto::Period;
use sifa_proto::catalog::Catalog;

use crate::error::{QueryError, Result};
use crate::views::literal;

/// A standard rollup: its name, what it computes and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Rollup {
    pub name: &'static str,
    pub summary: &'static str,
    pub sql: &'static str,
}

/// Every standard rollup, in the order the README lists them.
pub const ROLLUPS: &[Rollup] = &[
    Rollup {
        name: "share_of_mediations",
        summary: "offices' share of all resolved disputes per province, city and county; each area's share of its province",
        sql: include_str!("../sql/share_of_mediations.sql"),
    },
    Rollup {
        name: "totals",
        summary: "per level, the year's total of every flow and year-end value of every stock",
        sql: include_str!("../sql/totals.sql"),
    },
    Rollup { name: "yoy", summary: "year-on-year growth per level and statistic", sql: include_str!("../sql/yoy.sql") },
    Rollup {
        name: "completeness",
        summary: "expected against received reports per month and level, late reports, on-time rate",
        sql: include_str!("../sql/completeness.sql"),
    },
    Rollup {
        name: "standards",
        summary: "offices meeting the standardisation marks (staff, floor area, village advisers) and star ratings",
        sql: include_str!("../sql/standards.sql"),
    },
    Rollup {
        name: "outliers",
        summary: "figures to check before approval: far from the unit's own months, month-over-month jumps, beyond the unit's size",
        sql: include_str!("../sql/outliers.sql"),
    },
    Rollup {
        name: "ranking",
        summary: "top and bottom offices and counties by a statistic (--metric, --limit)",
        sql: include_str!("../sql/ranking.sql"),
    },
];

/// The parameters of a rollup run.
#[derive(Debug, Clone)]
pub struct Params {
    pub year: u16,
    /// The statistic to rank by (ranking); a catalog code.
    pub metric: Option<String>,
    /// How many at each end (ranking).
    pub limit: Option<u32>,
}

impl Params {
    pub fn year(year: u16) -> Params {
        Params { year, metric: None, limit: None }
    }
}

pub const DEFAULT_RANKING_METRIC: &str = "disputes_resolved";
pub const DEFAULT_RANKING_LIMIT: u32 = 10;

/// The rollup of a name, or an error listing the known ones.
pub fn find(name: &str) -> Result<&'static Rollup> {
    ROLLUPS.iter().find(|r| r.name == name).ok_or_else(|| QueryError::UnknownRollup {
        name: name.to_string(),
        known: ROLLUPS.iter().map(|r| r.name).collect::<Vec<_>>().join(", "),
    })
}

impl Rollup {
    /// The rollup's SQL with its parameters checked and filled in.
    pub fn sql_for(&self, params: &Params, catalog: &Catalog) -> Result<String> {
        let err = |message: String| QueryError::RollupParameter { rollup: self.name.to_string(), message };
        if !(Period::MIN_YEAR..=Period::MAX_YEAR).contains(&params.year) {
            return Err(err(format!(
                "year {} is outside {}..={}; give --year YYYY",
                params.year,
                Period::MIN_YEAR,
                Period::MAX_YEAR
            )));
        }
        let metric = params.metric.as_deref().unwrap_or(DEFAULT_RANKING_METRIC);
        if catalog.metric(metric).is_none() {
            let known = catalog.metrics().iter().map(|m| m.code.as_str()).collect::<Vec<_>>().join(", ");
            return Err(err(format!("--metric {metric:?} is not in the store's catalog; the metrics are: {known}")));
        }
        let limit = params.limit.unwrap_or(DEFAULT_RANKING_LIMIT);
        if limit == 0 {
            return Err(err("--limit must be at least 1".to_string()));
        }
        // Longest name first, so `$year` never eats the start of a longer name.
        Ok(self
            .sql
            .replace("$metric", &literal(metric))
            .replace("$limit", &limit.to_string())
            .replace("$year", &params.year.to_string()))
    }
}
