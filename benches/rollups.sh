#!/usr/bin/env bash
# The standard rollups on a national store, `sifa query` against DuckDB (issue 13).
#
#   benches/rollups.sh                       (from the repository root; 5 rounds)
#   ROUNDS=3 benches/rollups.sh
#   SIFA=target/debug/sifa YEARS=2 benches/rollups.sh   (a quick check of the script itself)
#
# 1. Builds release `sifa` (`cargo build --release --bin sifa`) unless SIFA names a binary.
# 2. Generates once, into target/bench-rollups/, a national store with `sifa sim store`
#    (sim/src/national.rs: ~41,000 offices and 3,349 other reporting units under one
#    synthetic root, YEARS years of months from 2015, ~3% of unit-months corrected).
# 3. Makes a Python virtual environment with DuckDB at the version tests/peers/requirements.txt
#    pins (target/bench-rollups/venv), and runs benches/rollups.py: for every rollup of
#    `sifa query --list-rollups`, interleaved, ROUNDS rounds of
#      - sifa: the whole process `sifa query --data DIR --rollup NAME --year Y --format csv`,
#        its wall time and peak resident memory (getrusage of the child);
#      - DuckDB (in-process, the query only): the SAME SQL, printed by
#        `sifa query --print-sql` (the views' definitions and the rollup's statement), over
#        `read_parquet('DIR/reports/*/*.parquet', hive_partitioning = true)`;
#    and checks on the first round that both give the same rows (sorted; numbers to 1e-9
#    relative), failing loudly when they do not.
#    Prints a table: rollup, sifa median s, DuckDB median s, ratio, sifa peak RSS MB.
#    Y is the store's last year (yoy and outliers read the year before too).
# Results go in docs/PERFORMANCE.md ("Rollups against DuckDB").
set -euo pipefail
cd "$(dirname "$0")/.."
years=${YEARS:-10}
sifa=${SIFA:-target/release/sifa}
if [ -z "${SIFA:-}" ]; then cargo build --release --bin sifa --quiet; fi
work=target/bench-rollups
data=$work/national-$years-years
if [ ! -f "$data.complete" ]; then
  rm -rf "$data"
  mkdir -p "$work"
  t0=$(date +%s.%N)
  "$sifa" sim store --years "$years" --out "$data"
  echo "generated in $(echo "$(date +%s.%N) - $t0" | bc) s: $(du -sh "$data/reports" | cut -f1) of Parquet"
  touch "$data.complete"
fi
duckdb_pin=$(grep -E '^duckdb==' tests/peers/requirements.txt)
venv=$work/venv-${duckdb_pin#duckdb==}
if [ ! -f "$venv/.provisioned" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "$duckdb_pin"
  touch "$venv/.provisioned"
fi
exec "$venv/bin/python" benches/rollups.py --sifa "$sifa" --data "$data" --rounds "${ROUNDS:-5}" --work "$work"
