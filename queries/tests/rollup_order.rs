//! A rollup called as the table function `rollup(...)` (what `sifa query --connect --rollup` and
//! the Flight SQL endpoint run) gives the very rows of its SQL run directly (`sifa query --data
//! --rollup`), in the same order: a table function's rows come in no particular order, so
//! `Rollup::call_sql` orders them by `Rollup::order`, which must agree with the SQL's `ORDER BY`.

mod fixtures;

use std::path::Path;

use sifa_queries::rollup::{Params, ROLLUPS};
use sifa_queries::{Store, format, query};

async fn rows(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<Vec<Option<String>>> {
    let answer = query::run_one(ctx, sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    format::cells(&answer.schema, &answer.batches).unwrap().rows
}

/// Checks every rollup on `fixture`; returns how many rows each gave.
async fn check(fixture: fn(&Path), year: u16) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let ctx = store.session().await.unwrap();
    let mut counts = Vec::new();
    for rollup in ROLLUPS {
        let params = Params::year(year);
        let direct = rows(&ctx, &rollup.sql_for(&params, &store.catalog).unwrap()).await;
        let called = rows(&ctx, &rollup.call_sql(&params)).await;
        assert_eq!(called, direct, "{}: rollup(...) differs from its SQL", rollup.name);
        counts.push(direct.len());
    }
    counts
}

#[tokio::test]
async fn the_table_function_keeps_each_rollups_order() {
    let mut most = vec![0; ROLLUPS.len()];
    for fixture in [fixtures::province, fixtures::national, fixtures::outliers] {
        for (m, n) in most.iter_mut().zip(check(fixture, 2024).await) {
            *m = (*m).max(n);
        }
    }
    for (rollup, n) in ROLLUPS.iter().zip(most) {
        assert!(n > 3, "{}: {n} rows at most, too few to show an order", rollup.name);
    }
}
