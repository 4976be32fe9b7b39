#!/usr/bin/env bash
# The office agent reading a large ledger: peak resident memory of
# `sifa-agent check` on a 200 MB CSV case ledger (about 2.7 million rows over
# twelve months), and on a 4 MB .xlsx that expands to 1 GB (a zip bomb,
# refused under the default max_ledger_mb = 256), measured with
# /usr/bin/time -v (GNU time; `apt-get install time`).
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
        k, r = kinds[(i // 12) % 4]
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
# 200,000 rows a month are far above any office's: the catalog's maxima hold the months back (check exits 1); what is measured is the reading.
grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/err"
grep -E "^problem|^error" "$work/err" | head -5 || true

echo "zip bomb: an .xlsx whose worksheet expands to 1 GB"
python3 - "$work/bomb.xlsx" <<'PY'
import sys, zipfile
head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("[Content_Types].xml", head + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
    z.writestr("_rels/.rels", head + f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    z.writestr("xl/workbook.xml", head + f'<workbook xmlns="{NS}" xmlns:r="{REL}"><sheets><sheet name="台账" sheetId="1" r:id="rId1"/></sheets></workbook>')
    z.writestr("xl/_rels/workbook.xml.rels", head + f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
    with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
        f.write((head + f'<worksheet xmlns="{NS}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>日期</t></is></c></row>').encode())
        row = b'<row><c t="inlineStr"><is><t>2024-01-05</t></is></c><c t="inlineStr"><is><t>' + b"A" * 73 + b"</t></is></c></row>"
        chunk, n = row * 10000, 0
        while n < 1 << 30:
            f.write(chunk)
            n += len(chunk)
        f.write(b"</sheetData></worksheet>")
PY
sed -e 's/台账.csv/bomb.xlsx/' -e '/^max_ledger_mb/d' "$work/agent.toml" >"$work/bomb.toml"
ls -l "$work/bomb.xlsx" | awk '{printf "workbook: %.1f MB\n", $5 / 1048576}'
/usr/bin/time -v "$bin" check --config "$work/bomb.toml" >"$work/out" 2>"$work/err" || true
grep -E "^problem" "$work/err" | cut -c1-160
grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$work/err"
