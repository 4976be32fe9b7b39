#!/usr/bin/env python3
"""Writes demo.csv, the demo registry sifa ships (see docs/REGISTRY.md), and
national.csv, the same provinces under the nation 100000 (中华人民共和国司法部)
for `sifa demo --national`.

Real places from DOMAIN.md with their real division codes: Gansu's Jiuquan and
Zhangye cities (Dunhuang, 620982, with its nine real towns) and Liaoning's
Panjin city (48 offices over its four real counties). Township names other than
Dunhuang's are generated. Deterministic: rerunning gives the same file.
"""
import csv, os, random, sys

rng = random.Random(2260)
SYL = "安 宝 北 昌 长 大 东 丰 福 高 古 广 和 河 红 黄 吉 金 康 乐 联 临 隆 明 南 平 清 泉 仁 瑞 三 沙 胜 石 顺 太 田 万 西 祥 新 兴 阳 永 裕 源 泽 镇 中".split()

rows = [("code", "name", "kind", "parent", "population", "villages")]
used = set()

def town_name(street):
    while True:
        n = rng.choice(SYL) + rng.choice(SYL)
        if n not in used and n[0] != n[1]:
            used.add(n)
            return n + ("街道" if street else "镇")

def offices(county, n, names=None, district=False):
    for i in range(n):
        street = district and i < n // 2
        name = names[i] if names else town_name(street)
        code = f"{county}{(i + 1) if street else 100 + i:03d}"
        rows.append((code, f"{name}司法所", "office", county, rng.randrange(8, 80) * 1000, rng.randrange(4, 26)))

def non_office(county, county_name):
    rows.append((f"{county}900", f"{county_name}人民调解中心", "mediation_centre", county, "", ""))

PROVINCES = [
    ("62", "甘肃省", [
        ("6209", "酒泉市", [("620902", "肃州区", 10, True), ("620921", "金塔县", 6, False), ("620922", "瓜州县", 8, False),
                          ("620923", "肃北蒙古族自治县", 4, False), ("620924", "阿克塞哈萨克族自治县", 3, False),
                          ("620981", "玉门市", 9, False), ("620982", "敦煌市", 9, False)]),
        ("6207", "张掖市", [("620702", "甘州区", 12, True), ("620721", "肃南裕固族自治县", 5, False), ("620722", "民乐县", 8, False),
                          ("620723", "临泽县", 7, False), ("620724", "高台县", 9, False), ("620725", "山丹县", 6, False)]),
    ], ["甘肃省医疗纠纷人民调解委员会", "甘肃省劳动人事争议人民调解委员会"]),
    ("21", "辽宁省", [
        ("2111", "盘锦市", [("211102", "双台子区", 8, True), ("211103", "兴隆台区", 12, True), ("211104", "大洼区", 14, False),
                          ("211122", "盘山县", 14, False)]),
    ], ["辽宁省物业纠纷人民调解委员会"]),
]
DUNHUANG = ["沙州镇", "七里镇", "肃州镇", "莫高镇", "转渠口镇", "阳关镇", "月牙泉镇", "郭家堡镇", "黄渠镇"]
INDUSTRY = ["医疗纠纷", "道路交通事故纠纷", "婚姻家庭纠纷"]

for pcode, pname, cities, provincial_committees in PROVINCES:
    rows.append((pcode, pname, "province", "", "", ""))
    for cc, cname, counties in cities:
        rows.append((cc, cname, "city", pcode, "", ""))
        for code, name, n, district in counties:
            rows.append((code, name, "county", cc, "", ""))
            offices(code, n, DUNHUANG if code == "620982" else None, district)
            non_office(code, name)
        rows.append((f"{cc}00901", f"{cname}司法局", "bureau", cc, "", ""))
        for i, kind in enumerate(INDUSTRY[:2]):
            rows.append((f"{cc}00{910 + i}", f"{cname}{kind}人民调解委员会", "industry_committee", cc, "", ""))
    for i, name in enumerate(provincial_committees):
        rows.append((f"{pcode}0000{910 + i}", name, "industry_committee", pcode, "", ""))

NATION = ("100000", "中华人民共和国司法部", "nation", "", "", "")
national = [rows[0], NATION] + [r[:3] + (NATION[0],) + r[4:] if r[2] == "province" else r for r in rows[1:]]

out = sys.argv[1] if len(sys.argv) > 1 else "demo.csv"
for path, table in [(out, rows), (os.path.join(os.path.dirname(out), "national.csv"), national)]:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(table)
