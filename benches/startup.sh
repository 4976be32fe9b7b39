#!/usr/bin/env bash
# Start-up time of an aggregator against the size of its store (issue 12): how
# long `sifa aggregator` takes from launch until its port accepts connections,
# and until its index of the store is loaded (reports queue until then; the
# `ms` of its "recovered the store" log line), on a store of ROWS rows.
#
#   benches/startup.sh                       (from the repository root; 5,000,000 rows)
#   ROWS=1000000 SIFA=target/debug/sifa benches/startup.sh
#   BEFORE=0 benches/startup.sh              (skip the start without key files)
#
# The store (`sifa sim store --rows ROWS`: the first ROWS unit-months of a
# synthetic national store, ~44,000 reporting units' monthly reports from
# 2015-01 on with a few percent corrected, a Parquet file per month and one of
# corrections per year; its registry.csv and root unit 99) is generated once into target/bench-startup/ and
# reused. Three starts are timed: without key files (the first start after
# the upgrade: every Parquet row is read, as every start did before issue 12,
# and the key files are written), then twice with them. Each start is stopped
# with SIGTERM once it listens. Results go in docs/PERFORMANCE.md ("Start-up").
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-5000000}
sifa=${SIFA:-target/release/sifa}
if [ -z "${SIFA:-}" ]; then cargo build --release --bin sifa --quiet; fi
work=target/bench-startup/rows-$rows
data=$work/data
if [ ! -f "$work/complete" ]; then
  rm -rf "$work"
  mkdir -p "$work"
  t0=$(date +%s.%N)
  "$sifa" sim store --rows "$rows" --out "$data" >/dev/null
  echo "generated a store of $rows rows in $(echo "$(date +%s.%N) - $t0" | bc) s: $(du -sh "$data/reports" | cut -f1) of Parquet"
  touch "$work/complete"
fi
cat > "$work/aggregator.toml" <<TOML
unit = "99"
listen = "127.0.0.1:0"
data_dir = "data"
registry = "$PWD/$data/registry.csv"
[tls]
insecure = true
TOML

pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi' EXIT
start() {
  rm -f "$data/aggregator.addr"
  local t0 t1 rss
  t0=$(date +%s.%N)
  "$sifa" aggregator --config "$work/aggregator.toml" >"$work/aggregator.log" 2>&1 &
  pid=$!
  until [ -f "$data/aggregator.addr" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/aggregator.log"; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  printf '%-62s port accepts after %6.2f s  (resident %d MB then)\n' "$1" "$(echo "$t1 - $t0" | bc)" "$((rss / 1024))"
  sed 's/\x1b\[[0-9;]*m//g' "$work/aggregator.log" | grep 'recovered the store' \
    | grep -o 'in_parquet=[0-9]* parquet_files_read=[0-9]*\|ms=[0-9]*' | tr '\n' ' ' | sed 's/^/    index: /; s/ms=/loaded in ms=/' || true
  echo
}
echo "start-up of a province aggregator on $rows stored rows ($sifa), $(date -u +%F), load $(cut -d' ' -f1-3 /proc/loadavg):"
if [ "${BEFORE:-1}" != 0 ] || [ ! -d "$data/state/index" ]; then
  rm -rf "$data/state/index"
  start "without key files (every Parquet row read, as before)"
fi
start "with key files"
start "with key files, again"
