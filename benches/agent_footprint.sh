#!/usr/bin/env bash
# The office agent's footprint: the stripped release binary, and its resident
# memory while idle with 1,000 reports queued and the aggregator unreachable.
#
#   benches/agent_footprint.sh            (from the repository root; writes nothing outside a temp dir)
#
# Results go in docs/PERFORMANCE.md ("Agent"). Targets: binary < 10 MB, idle RSS < 15 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sifa-agent --quiet
bin=target/release/sifa-agent
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# 250 months of totals (2000-01 .. 2020-10), changed four times while the aggregator is unreachable:
# each change queues a new revision of every month, so 1,000 reports wait in the outbox.
books() {
python3 - "$work" "$1" <<'PY'
import sys, os
d, round_ = sys.argv[1], int(sys.argv[2])
rows = ["月份,法治讲座,专职人民调解员"]
y, m = 2000, 1
for i in range(250):
    rows.append(f"{y}-{m:02d},{(i + round_) % 40},2")
    last = f"{y}-{m:02d}"
    m += 1
    if m == 13: y, m = y + 1, 1
open(os.path.join(d, "totals.csv"), "w", encoding="utf-8").write("\n".join(rows) + "\n")
open(os.path.join(d, "agent.toml"), "w", encoding="utf-8").write(f'''unit = "620982101"
aggregator = "http://127.0.0.1:9"
outbox_dir = "outbox"
first_period = "2000-01"
last_period = "{last}"
collect_interval_seconds = 3600
retry_min_seconds = 3600
retry_max_seconds = 3600
connect_timeout_seconds = 1
[[totals]]
path = "totals.csv"
[tls]
insecure = true
''')
PY
}
for round in 1 2 3 4; do
  books "$round"
  "$bin" push --once --config "$work/agent.toml" >/dev/null 2>&1 || true
done

"$bin" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  n=$( (ls "$work/outbox/queue" 2>/dev/null || true) | wc -l)
  [ "$n" -ge 1000 ] && break
  sleep 0.1
done
sleep 5   # idle: the books are read, the delivery failed, the next attempt is an hour away
queued=$(ls "$work/outbox/queue" | wc -l)
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
size=$(stat -c %s "$bin")
printf 'sifa-agent binary (stripped, release): %.1f MB (%d bytes)\n' "$(echo "$size/1048576" | bc -l)" "$size"
printf 'queued reports: %d\n' "$queued"
printf 'idle resident memory: %.1f MB (peak %.1f MB)\n' "$(echo "$rss/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)"
