#!/usr/bin/env bash
# The office agent reading a large ledger: peak resident memory of
# `sifa-agent check` on a 200 MB CSV case ledger (about 3.3 million rows over
# twelve months), measured with /usr/bin/time -v (GNU time; `apt-get install time`).
#
#   benches/agent_big_ledger.sh [MB]      (from the repository root; default 200 MB; writes only in a temp dir)
#
# Results go in docs/PERFORMANCE.md ("Agent: a large ledger"). Target: peak RSS <= 100 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-200}
cargo build --release -p sifa-agent --quiet
bin=$PWD/target/release/sifa-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/台账.csv" "$mb" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
kinds = [("人民调解", "调解成功"), ("人民调解", "调解不成功"), ("法律咨询", "已解答"), ("法治宣传", "已开展")]
target = mb * 1024 * 1024
with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("序号,日期,类别,事项,结果,人数,备注\r\n")
    i, size = 0, 0
    while size < target:
        i += 1
        k, r = kinds[i % 4]
        line = f"{i},2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},{k},邻里纠纷（第{i}号）,{r},{i % 5 + 1},备注{i % 97}\r\n"
        f.write(line)
        size += len(line.encode("utf-8"))
PY
cat > "$work/agent.toml" <<TOML
unit = "620982101"
aggregator = "http://127.0.0.1:9"
first_period = "2024-01"
last_period = "2024-12"
max_ledger_mb = $((mb + 56))
[[ledger]]
path = "台账.csv"
[[ledger.count]]
metric = "disputes_mediated"
where = { "类别" = "人民调解" }
[[ledger.count]]
metric = "disputes_resolved"
where = { "类别" = "人民调解", "结果" = "调解成功" }
[[ledger.count]]
metric = "consultations"
where = { "类别" = "法律咨询" }
sum = "人数"
[tls]
insecure = true
TOML
ls -l "$work/台账.csv" | awk '{printf "ledger: %.1f MB\n", $5 / 1048576}'
/usr/bin/time -v "$bin" check --config "$work/agent.toml" >"$work/out" 2>"$work/err" || true
head -3 "$work/out"
grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/err"
grep -E "^problem|^error" "$work/err" | head -5 || true
