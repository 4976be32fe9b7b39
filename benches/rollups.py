"""The rollups benchmark's driver: `sifa query` (whole process) against DuckDB (the query only).

Run by benches/rollups.sh, which documents what is measured. DuckDB gets the same SQL as sifa:
`sifa query --print-sql` prints the views' definitions and the rollup's statement, and the
dialect differences below are the only changes made to it. The small tables sifa builds from
registry.csv, catalog.toml and store.toml (units, metrics, periods, outlier_thresholds,
outlier_bounds, approvals) are read out of sifa once, with their column types, and loaded into
DuckDB before any timing.
"""

import argparse
import csv
import io
import math
import os
import statistics
import subprocess
import sys
import time

import duckdb

# DataFusion's spelling -> DuckDB's, for the functions the views use.
DIALECT = [
    ("make_array(", "list_value("),  # a list literal (the long views' unpivot)
    ("last_value(", "last("),  # the aggregate `last_value(x ORDER BY month)` (yearly)
]

# Arrow types of sifa's small tables -> DuckDB types.
TYPES = {
    "Utf8": "VARCHAR",
    "Boolean": "BOOLEAN",
    "Int32": "INTEGER",
    "Int64": "BIGINT",
    "UInt64": "UBIGINT",
    "Float64": "DOUBLE",
}
SMALL_TABLES = ["units", "metrics", "periods", "outlier_thresholds", "outlier_bounds", "approvals"]


def sifa_text(sifa, *args):
    return subprocess.run([sifa, *args], check=True, capture_output=True, text=True).stdout


def duckdb_type(arrow):
    if arrow.startswith("Timestamp("):
        return "TIMESTAMPTZ"
    return TYPES[arrow]


def load_small_tables(con, sifa, data, work):
    for table in SMALL_TABLES:
        cols = sifa_text(
            sifa, "query", "--data", data, "--format", "csv",
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
        columns = [(r["column_name"], duckdb_type(r["data_type"])) for r in csv.DictReader(io.StringIO(cols))]
        defs = ", ".join(f'"{n}" {t}' for n, t in columns)
        con.execute(f"CREATE TABLE {table} ({defs})")
        rows = sifa_text(sifa, "query", "--data", data, "--format", "csv", f"SELECT * FROM {table}")
        if len(rows.splitlines()) > 1:
            path = os.path.join(work, f"{table}.csv")
            with open(path, "w", encoding="utf-8") as f:
                f.write(rows)
            spec = ", ".join(f"'{n}': '{t}'" for n, t in columns)
            con.execute(f"INSERT INTO {table} SELECT * FROM read_csv('{path}', header = true, columns = {{{spec}}})")


def split_printed_sql(text):
    """`sifa query --print-sql`: the views' CREATE VIEW lines, then the statement."""
    lines = text.splitlines()
    views = [l.rstrip(";") for l in lines if l.startswith("CREATE VIEW ")]
    statement = "\n".join(l for l in lines if not l.startswith("CREATE VIEW "))
    return views, statement


def to_duckdb(sql):
    for a, b in DIALECT:
        sql = sql.replace(a, b)
    return sql


def cell(v):
    """A value as a comparable: None for NULL, a float for a number, else its text."""
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return str(v).lower()
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def sort_key(row):
    return tuple((0, "") if c is None else (1, round(c, 4)) if isinstance(c, float) else (2, c) for c in row)


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def compare(name, sifa_rows, duck_rows):
    s = sorted(([cell(c) for c in r] for r in sifa_rows), key=sort_key)
    d = sorted(([cell(c) for c in r] for r in duck_rows), key=sort_key)
    if len(s) != len(d):
        sys.exit(f"FAIL {name}: sifa gave {len(s)} rows, DuckDB {len(d)}")
    for i, (x, y) in enumerate(zip(s, d)):
        if len(x) != len(y) or not all(same(p, q) for p, q in zip(x, y)):
            sys.exit(f"FAIL {name}: row {i} of the sorted rows differs\n  sifa:   {x}\n  DuckDB: {y}")


# Runs sifa in a small Python process and prints its wall time and peak RSS. Linux folds the peak
# RSS of the process that forks into the child's (at exec), so sifa forked straight from this
# process, which holds DuckDB's data, would report this process's size as its own.
TIMER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.PIPE)
_, status, usage = os.wait4(p.pid, 0)
elapsed = time.perf_counter() - t0
code = os.waitstatus_to_exitcode(status)
if code != 0:
    sys.exit(f"exit {code}: {p.stderr.read().decode()}")
print(elapsed, usage.ru_maxrss / 1024.0)
"""


def run_sifa(sifa, data, name, year, out_path):
    cmd = [sifa, "query", "--data", data, "--rollup", name, "--year", str(year), "--format", "csv"]
    p = subprocess.run([sys.executable, "-c", TIMER, out_path, *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL sifa {name}: {p.stderr.strip()}")
    elapsed, rss = (float(x) for x in p.stdout.split())
    return elapsed, rss


def parquet(data, subdir):
    files = os.path.join(os.path.abspath(data), subdir, "*", "*.parquet")
    return f"read_parquet('{files}', hive_partitioning = true, hive_types = {{'year': INTEGER}})"


def connect(a, views, over_current):
    """DuckDB with sifa's small tables and views. The views read `current_files` for the years
    current/ covers: over_current reads them from current/; otherwise `current_files` is the
    deduplication of reports/ (the latest revision of each unit and month), so every figure comes
    from reports/, as an analyst with DuckDB and only the report files gets it."""
    con = duckdb.connect()
    load_small_tables(con, a.sifa, a.data, a.work)
    con.execute(f"CREATE VIEW report_files AS SELECT * FROM {parquet(a.data, 'reports')}")
    if over_current:
        con.execute(f"CREATE VIEW current_files AS SELECT * FROM {parquet(a.data, 'current')}")
    else:
        con.execute(
            "CREATE VIEW current_files AS SELECT * EXCLUDE (sifa_latest) FROM ("
            "SELECT *, row_number() OVER (PARTITION BY year, unit_code, period ORDER BY revision DESC) "
            "AS sifa_latest FROM report_files) WHERE sifa_latest = 1"
        )
    for v in views:
        con.execute(to_duckdb(v))
    return con


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sifa", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    rollups = [l.split()[0] for l in sifa_text(a.sifa, "query", "--list-rollups").splitlines() if l.strip()]
    years = sorted(int(d.split("=")[1]) for d in os.listdir(os.path.join(a.data, "reports")) if d.startswith("year="))
    year = years[-1]

    statements, views = {}, []
    for name in rollups:
        views, statement = split_printed_sql(
            sifa_text(a.sifa, "query", "--data", a.data, "--print-sql", "--rollup", name, "--year", str(year))
        )
        statements[name] = to_duckdb(statement)
    engines = {"duckdb": connect(a, views, over_current=False)}
    if any("current_files" in v for v in views):
        engines["duckdb_current"] = connect(a, views, over_current=True)

    print(f"store {a.data}: years {years[0]}-{year}; rollups for {year}; {a.rounds} rounds, interleaved")
    threads = engines["duckdb"].execute("SELECT current_setting('threads')").fetchone()[0]
    print(f"DuckDB {duckdb.__version__}, {threads} threads; columns: {', '.join(engines)}")
    times = {n: {"sifa": [], "rss": [], **{e: [] for e in engines}} for n in rollups}
    out_path = os.path.join(a.work, "sifa-out.csv")
    for r in range(a.rounds):
        for name in rollups:
            elapsed, rss = run_sifa(a.sifa, a.data, name, year, out_path)
            times[name]["sifa"].append(elapsed)
            times[name]["rss"].append(rss)
            if r == 0:
                with open(out_path, newline="", encoding="utf-8") as f:
                    sifa_rows = list(csv.reader(f))[1:]
            for engine, con in engines.items():
                t0 = time.perf_counter()
                rows = con.execute(statements[name]).fetchall()
                times[name][engine].append(time.perf_counter() - t0)
                if r == 0:
                    compare(f"{name} ({engine})", sifa_rows, rows)
            if r == 0:
                print(f"  {name}: the same {len(sifa_rows)} rows from sifa and {', '.join(engines)}", flush=True)

    print()
    over_current = "duckdb_current" in engines
    head = "| rollup | sifa median s | DuckDB over reports/ median s | sifa / DuckDB |"
    if over_current:
        head += " DuckDB over current/ median s | sifa / DuckDB over current/ |"
    print(head + " sifa peak RSS MB |")
    print("|---" * head.count("|") + "|")
    for name in rollups:
        t = times[name]
        s, d = statistics.median(t["sifa"]), statistics.median(t["duckdb"])
        line = f"| {name} | {s:.3f} | {d:.3f} | {s / d:.2f} |"
        if over_current:
            c = statistics.median(t["duckdb_current"])
            line += f" {c:.3f} | {s / c:.2f} |"
        print(line + f" {max(t['rss']):.0f} |")


if __name__ == "__main__":
    main()
