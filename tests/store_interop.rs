//! The store is plain Parquet: DuckDB and pyarrow read a real aggregator's
//! data directory without sifa, with the queries docs/STORAGE.md gives, and
//! find exactly what was acknowledged. The readers are the pinned versions of
//! tests/peers/requirements.txt, provisioned by the test itself.

mod support;

use std::process::Command;

use sifa_proto::v1::SubmitRequest;
use support::{TestAggregator, TierSpec, report};

const READ: &str = r#"
import sys, duckdb, pyarrow.dataset as ds
root = sys.argv[1] + "/reports"
# DuckDB, as docs/STORAGE.md shows: the figures in force are each unit and month's latest revision.
con = duckdb.connect()
rows = con.execute(f"""
    SELECT year, unit_code, period, revision, lectures
    FROM read_parquet('{root}/*/*.parquet', hive_partitioning = true, union_by_name = true)
    QUALIFY row_number() OVER (PARTITION BY unit_code, period ORDER BY revision DESC) = 1
    ORDER BY unit_code, period""").fetchall()
for r in rows:
    print("duckdb", *r)
print("duckdb revisions", con.execute(f"SELECT count(*) FROM read_parquet('{root}/*/*.parquet')").fetchone()[0])
# pyarrow: a Hive-partitioned dataset.
t = ds.dataset(root, format="parquet", partitioning="hive").to_table()
print("pyarrow rows", t.num_rows)
print("pyarrow years", sorted(set(t.column("year").to_pylist())))
print("pyarrow received_at", t.schema.field("received_at").type)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_and_pyarrow_read_the_store_without_sifa() {
    let mut agg = TestAggregator::spawn(TierSpec::top("620982"));
    let mut c = agg.client().await;
    for r in [
        report("620982101", "2023-12", 1, &[("lectures", 4.0)]),
        report("620982101", "2024-01", 1, &[("lectures", 2.0)]),
        report("620982101", "2024-01", 2, &[("lectures", 3.0)]),
        report("620982102", "2024-01", 1, &[("lectures", 7.0)]),
    ] {
        c.submit(SubmitRequest { report: Some(r), provenance: None }).await.unwrap();
    }
    agg.stop(); // a clean stop flushes the log to Parquet

    let out = Command::new(support::peers::python()).arg("-c").arg(READ).arg(agg.data_dir()).output().expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reading the store with DuckDB and pyarrow failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "duckdb 2023 620982101 2023-12 1 4",
            "duckdb 2024 620982101 2024-01 2 3",
            "duckdb 2024 620982102 2024-01 1 7",
            "duckdb revisions 4",
            "pyarrow rows 4",
            "pyarrow years [2023, 2024]",
            "pyarrow received_at timestamp[ms, tz=UTC]",
        ],
        "{stdout}"
    );
}
