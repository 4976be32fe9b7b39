//! The standard rollups: SQL files in `queries/sql/`, compiled into the binary,
//! run by name with `--rollup NAME --year YYYY`.
//!
//! A rollup's SQL names its parameters `$year`, `$metric` and `$limit`. They are
//! substituted as SQL literals after being checked here (a year is a number in
//! range, a metric a code of the store's catalog, a limit a positive number),
//! so no text a user typed reaches the SQL unchecked.
//!
//! In SQL (every session, and so the Flight SQL endpoint) a rollup is the table function
//! `rollup(name, year [, metric [, limit]])`, e.g.
//! `SELECT * FROM rollup('ranking', 2024, 'consultations', 5) WHERE level = 'county'`.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider, view::ViewTable};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
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
    /// The order of its rows (its SQL's final `ORDER BY`) over its own columns `r.*` and, where a
    /// statistic's catalog position orders them, the table `metrics` as `m`: a table function's
    /// rows, like any table's, come in no particular order, so [`Rollup::call_sql`] orders them
    /// (queries/tests/rollup_order.rs holds the two orders equal).
    pub order: &'static str,
}

/// Areas from the top down: the nation, provinces, cities, counties, then units.
macro_rules! level_order {
    () => {
        "CASE r.level WHEN 'nation' THEN 0 WHEN 'province' THEN 1 WHEN 'city' THEN 2 WHEN 'county' THEN 3 ELSE 4 END"
    };
}

/// Every standard rollup, in the order the README lists them.
pub const ROLLUPS: &[Rollup] = &[
    Rollup {
        name: "share_of_mediations",
        summary: "offices' share of all resolved disputes per province, city and county; each area's share of its province",
        sql: include_str!("../sql/share_of_mediations.sql"),
        order: concat!(level_order!(), ", r.code"),
    },
    Rollup {
        name: "totals",
        summary: "per level, the year's total of every flow and year-end value of every stock",
        sql: include_str!("../sql/totals.sql"),
        order: concat!(level_order!(), ", r.code, m.position"),
    },
    Rollup {
        name: "yoy",
        summary: "year-on-year growth per level and statistic",
        sql: include_str!("../sql/yoy.sql"),
        order: concat!(level_order!(), ", r.code, m.position"),
    },
    Rollup {
        name: "completeness",
        summary: "expected against received reports per month and level, late reports, on-time rate",
        sql: include_str!("../sql/completeness.sql"),
        order: concat!("r.period, ", level_order!(), ", r.code"),
    },
    Rollup {
        name: "standards",
        summary: "offices meeting the standardisation marks (staff, floor area, village advisers) and star ratings",
        sql: include_str!("../sql/standards.sql"),
        order: concat!(level_order!(), ", r.code"),
    },
    Rollup {
        name: "outliers",
        summary: "figures to check before approval: far from the unit's own months, month-over-month jumps, beyond the unit's size",
        sql: include_str!("../sql/outliers.sql"),
        order: "r.county_code, r.unit_code, r.period, r.metric, r.reason",
    },
    Rollup {
        name: "ranking",
        summary: "top and bottom offices and counties (provinces too, nationally) by a statistic (--metric, --limit)",
        sql: include_str!("../sql/ranking.sql"),
        order: "CASE r.level WHEN 'province' THEN 0 WHEN 'county' THEN 1 ELSE 2 END, \
                CASE r.side WHEN 'top' THEN 1 ELSE 2 END, r.rank",
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
    /// The query that runs this rollup through the table function `rollup(...)`, its rows in the
    /// rollup's order.
    pub fn call_sql(&self, params: &Params) -> String {
        let mut args = vec![literal(self.name), params.year.to_string()];
        if params.metric.is_some() || params.limit.is_some() {
            args.push(literal(params.metric.as_deref().unwrap_or(DEFAULT_RANKING_METRIC)));
        }
        if let Some(limit) = params.limit {
            args.push(limit.to_string());
        }
        let call = format!("{}({})", RollupFunction::NAME, args.join(", "));
        if self.order.contains("m.") {
            format!("SELECT r.* FROM {call} AS r LEFT JOIN metrics AS m ON m.code = r.metric ORDER BY {}", self.order)
        } else {
            format!("SELECT r.* FROM {call} AS r ORDER BY {}", self.order)
        }
    }

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

/// The table function `rollup(name, year [, metric [, limit]])`: a standard rollup as a table, its
/// parameters checked as for `--rollup` (the arguments are literals).
#[derive(Debug)]
pub struct RollupFunction {
    catalog: Catalog,
}

impl RollupFunction {
    pub const NAME: &'static str = "rollup";

    pub fn new(catalog: Catalog) -> RollupFunction {
        RollupFunction { catalog }
    }

    /// The rollup and its parameters named by the call's arguments.
    fn parse(&self, args: &[Expr]) -> Result<(&'static Rollup, Params), String> {
        const USAGE: &str = "call it as rollup('name', year [, 'metric' [, limit]]), e.g. rollup('totals', 2024)";
        let literal = |i: usize| match args.get(i) {
            None => Ok(None),
            Some(Expr::Literal(v, _)) if v.is_null() => Ok(None),
            Some(Expr::Literal(v, _)) => Ok(Some(v.clone())),
            Some(other) => Err(format!("argument {} ({other}) is not a literal; {USAGE}", i + 1)),
        };
        let text = |v: ScalarValue| match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Ok(s),
            other => Err(format!("{other} is not text; {USAGE}")),
        };
        let number = |v: ScalarValue| {
            v.cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                .ok()
                .and_then(|n| if let ScalarValue::Int64(Some(n)) = n { Some(n) } else { None })
                .ok_or_else(|| format!("{v} is not a whole number; {USAGE}"))
        };
        if args.len() > 4 {
            return Err(format!("{} arguments given; {USAGE}", args.len()));
        }
        let name = literal(0)?.ok_or_else(|| format!("no rollup named; {USAGE}")).and_then(text)?;
        let rollup = find(&name).map_err(|e| e.to_string())?;
        let year = literal(1)?.ok_or_else(|| format!("no year given; {USAGE}")).and_then(number)?;
        let year = u16::try_from(year).map_err(|_| format!("year {year} is out of range"))?;
        let metric = literal(2)?.map(text).transpose()?;
        let limit = literal(3)?.map(number).transpose()?;
        let limit = limit.map(|l| u32::try_from(l).map_err(|_| format!("limit {l} is out of range"))).transpose()?;
        Ok((rollup, Params { year, metric, limit }))
    }
}

impl TableFunctionImpl for RollupFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let (rollup, params) = self.parse(args.exprs()).map_err(|e| DataFusionError::Plan(format!("rollup: {e}")))?;
        let sql = rollup.sql_for(&params, &self.catalog).map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("rollup() needs a DataFusion SessionState".into()))?;
        // Planning resolves the session's own in-memory tables and views: it never waits on I/O.
        let plan = futures::executor::block_on(state.create_logical_plan(&sql))?;
        Ok(Arc::new(ViewTable::new(plan, Some(sql))))
    }
}
