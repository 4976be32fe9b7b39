//! index.html: one self-contained page (inline CSS and SVG, no script, no font
//! or image fetched), Chinese first, then the same figures in English.

use std::fmt::Write as _;

use super::numbers::{grouped, integer, pct, wan};
use super::svg::{self, esc};
use super::{Area, Figures, HEADLINE_METRICS, reason_text};

const CSS: &str = "body{font-family:'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',\
'WenQuanYi Micro Hei',sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#1f2933;line-height:1.6}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #cbd2d9}\
nav a{margin-right:1em}p.lead{font-size:1.08em}ul.headline li{margin:.35em 0}\
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #cbd2d9;padding:.25em .6em}\
th{background:#f0f4f8;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.ct{font-size:15px;font-weight:bold;fill:#1f2933}.cl{font-size:12px;fill:#3e4c59}.cv{font-size:11px;fill:#3e4c59}\
.s1{fill:#b8322a}.s2{fill:#9aa5b1}.grid{stroke:#e4e7eb}.l1{stroke:#b8322a;stroke-width:2;fill:none}\
.l2{stroke:#52606d;stroke-width:2;fill:none}.l1d{fill:#b8322a}.l2d{fill:#52606d}\
footer{margin-top:2em;font-size:.85em;color:#616e7c}section{margin-bottom:3em}";

struct Lang {
    zh: bool,
}

impl Lang {
    fn scope(&self, level: &str) -> &'static str {
        match (self.zh, level) {
            (true, "nation") => "全国",
            (true, "province") => "全省",
            (true, "city") => "全市",
            (true, _) => "全县（区）",
            (false, "nation") => "the nation",
            (false, "province") => "the province",
            (false, "city") => "the city",
            (false, _) => "the county",
        }
    }
}

fn headline_zh(fig: &Figures) -> Vec<String> {
    let l = Lang { zh: true };
    let scope = l.scope(&fig.root_level);
    let r = &fig.root;
    let mut out = vec![format!(
        "{scope}司法所指导调解矛盾纠纷{}件，占{scope}矛盾纠纷调处总量的{}。",
        wan(r.office_resolved),
        pct(r.office_share_pct)
    )];
    let marks = "人员不少于3名、业务用房面积不少于100平方米、村（社区）法律顾问全覆盖";
    if r.offices > 0 && r.meets_all == r.offices {
        out.push(format!("{scope}{}个司法所均达到规范化建设要求（{marks}）。", r.offices));
    } else if r.offices > 0 {
        out.push(format!(
            "{scope}{}个司法所中，{}个达到规范化建设要求（{marks}），占{}。",
            r.offices,
            r.meets_all,
            pct(r.meets_all_pct)
        ));
    }
    let star_names = ["五星级", "四星级", "三星级", "二星级", "一星级"];
    let stars: Vec<String> =
        r.stars.iter().zip(star_names).filter(|(n, _)| **n > 0).map(|(n, name)| format!("{name}{n}个")).collect();
    if !stars.is_empty() {
        out.push(format!("{scope}司法所星级评定：{}。", stars.join("、")));
    }
    let flows: Vec<String> = HEADLINE_METRICS
        .iter()
        .skip(1)
        .filter_map(|code| fig.office_totals.iter().find(|t| t.metric == *code))
        .map(|t| format!("{}{}{}", t.name_zh, wan(t.value), t.unit))
        .collect();
    if !flows.is_empty() {
        out.push(format!("全年{scope}司法所{}。", flows.join("，")));
    }
    let c = &fig.completeness;
    out.push(format!(
        "全年应报月报{}份，实报{}份，缺报{}份，逾期报送{}份，按时报送率{}。",
        c.expected,
        c.received,
        c.missing,
        c.late,
        pct(c.on_time_pct)
    ));
    let months: Vec<String> =
        c.approved_months.iter().map(|p| format!("{}月", p[5..].trim_start_matches('0'))).collect();
    out.push(if months.is_empty() {
        format!("{scope}尚无已审核的月份。")
    } else {
        format!("{scope}已审核月份：{}（共{}个月）。", months.join("、"), months.len())
    });
    out
}

fn headline_en(fig: &Figures) -> Vec<String> {
    let l = Lang { zh: false };
    let scope = l.scope(&fig.root_level);
    let r = &fig.root;
    let mut out = vec![format!(
        "Judicial offices across {scope} guided the mediation of {} disputes resolved, {} of all disputes resolved by mediation in {scope} ({} in total).",
        grouped(r.office_resolved),
        pct(r.office_share_pct),
        grouped(r.all_resolved)
    )];
    if r.offices > 0 {
        out.push(format!(
            "{} of {scope}'s {} judicial offices ({}) meet the standardisation marks: at least 3 staff, at least 100 m² of office space, and a legal adviser for every village or community.",
            r.meets_all,
            r.offices,
            pct(r.meets_all_pct)
        ));
    }
    let stars: Vec<String> =
        r.stars.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| format!("{n} {}-star", 5 - i)).collect();
    if !stars.is_empty() {
        out.push(format!("Star ratings of the offices: {}.", stars.join(", ")));
    }
    let flows: Vec<String> = HEADLINE_METRICS
        .iter()
        .skip(1)
        .filter_map(|code| fig.office_totals.iter().find(|t| t.metric == *code))
        .map(|t| format!("{} {}", t.name_en.to_lowercase(), grouped(t.value)))
        .collect();
    if !flows.is_empty() {
        out.push(format!("In the year the offices reported: {}.", flows.join("; ")));
    }
    let c = &fig.completeness;
    out.push(format!(
        "Monthly reports: {} expected, {} received, {} missing, {} late; {} on time.",
        c.expected,
        c.received,
        c.missing,
        c.late,
        pct(c.on_time_pct)
    ));
    out.push(if c.approved_months.is_empty() {
        "No month has been approved (已审核) yet.".to_string()
    } else {
        format!("Approved (已审核) months: {} ({} of 12).", c.approved_months.join(", "), c.approved_months.len())
    });
    out
}

fn area_table(s: &mut String, zh: bool, areas: &[Area]) {
    let heads: &[&str] = if zh {
        &[
            "名称",
            "代码",
            "司法所",
            "司法所调解成功(件)",
            "全部单位调解成功(件)",
            "司法所占比",
            "占全省比重",
            "规范化达标",
            "达标率",
            "五星",
            "四星",
            "三星",
        ]
    } else {
        &[
            "Name",
            "Code",
            "Offices",
            "Resolved by offices",
            "Resolved, all units",
            "Offices' share",
            "Share of province",
            "Meeting standards",
            "Rate",
            "5★",
            "4★",
            "3★",
        ]
    };
    s.push_str("<table><thead><tr>");
    for h in heads {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for a in areas {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&a.name),
            esc(&a.code),
            a.offices,
            grouped(a.office_resolved),
            grouped(a.all_resolved),
            pct(a.office_share_pct),
            pct(a.share_of_province_pct),
            a.meets_all,
            pct(a.meets_all_pct),
            a.stars[0],
            a.stars[1],
            a.stars[2]
        );
    }
    s.push_str("</tbody></table>");
}

fn section(s: &mut String, fig: &Figures, zh: bool) {
    let r = &fig.root;
    let (id, lang) = if zh { ("zh", "zh-CN") } else { ("en", "en") };
    let _ = write!(s, "<section id=\"{id}\" lang=\"{lang}\">");
    if zh {
        let _ = write!(s, "<h1>{}{}年司法所工作统计</h1>", esc(&r.name), fig.year);
        s.push_str("<nav><a href=\"#en\">English</a></nav>");
    } else {
        let _ = write!(s, "<h1>Judicial offices of {} ({}): figures for {}</h1>", esc(&r.name), esc(&r.code), fig.year);
        s.push_str("<nav><a href=\"#zh\">中文</a></nav>");
    }
    let _ = write!(s, "<h2>{}</h2><ul class=\"headline\">", if zh { "要点" } else { "Headlines" });
    for line in if zh { headline_zh(fig) } else { headline_en(fig) } {
        let _ = write!(s, "<li>{}</li>", esc(&line));
    }
    s.push_str("</ul>");

    // Charts: the areas one level below the root, and the monthly trend.
    let below: &[Area] = [&fig.provinces, &fig.cities, &fig.counties]
        .into_iter()
        .find(|areas| !areas.is_empty())
        .map_or(&[], |areas| areas.as_slice());
    if !below.is_empty() {
        let labels: Vec<String> = below.iter().map(|a| a.name.clone()).collect();
        let office: Vec<f64> = below.iter().map(|a| a.office_resolved).collect();
        let all: Vec<f64> = below.iter().map(|a| a.all_resolved).collect();
        let (title, la, lb) = if zh {
            ("调解成功矛盾纠纷（件）", "司法所", "全部单位")
        } else {
            ("Disputes resolved by mediation", "Judicial offices", "All reporting units")
        };
        let _ = write!(s, "<h2>{}</h2>", if zh { "主要数据" } else { "Main figures" });
        s.push_str(&svg::bars(title, &labels, (la, &office), (lb, &all)));
    }
    let office: Vec<(u8, f64)> = fig.monthly.iter().map(|m| (m.month, m.office_resolved)).collect();
    let all: Vec<(u8, f64)> = fig.monthly.iter().map(|m| (m.month, m.all_resolved)).collect();
    let _ = write!(s, "<h2>{}</h2>", if zh { "月度趋势" } else { "Monthly trend" });
    let label_zh = |m: u8| format!("{m}月");
    let label_en = |m: u8| {
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m as usize - 1].to_string()
    };
    if zh {
        s.push_str(&svg::monthly("每月调解成功矛盾纠纷（件）", &label_zh, ("司法所", &office), ("全部单位", &all)));
    } else {
        s.push_str(&svg::monthly(
            "Disputes resolved each month",
            &label_en,
            ("Judicial offices", &office),
            ("All reporting units", &all),
        ));
    }

    if !fig.provinces.is_empty() {
        let _ = write!(s, "<h2>{}</h2>", if zh { "各省（区、市）" } else { "By province" });
        area_table(s, zh, &fig.provinces);
    }
    if !fig.cities.is_empty() {
        let _ = write!(s, "<h2>{}</h2>", if zh { "各市" } else { "By city" });
        area_table(s, zh, &fig.cities);
    }
    if !fig.counties.is_empty() {
        let _ = write!(s, "<h2>{}</h2>", if zh { "各县（区）" } else { "By county" });
        area_table(s, zh, &fig.counties);
    }

    let _ =
        write!(s, "<h2>{}</h2><table><thead><tr>", if zh { "司法所全年合计" } else { "Offices' totals for the year" });
    let heads = if zh {
        ["指标", "代码", "数值", "单位", "类型"]
    } else {
        ["Statistic", "Code", "Value", "Unit", "Kind"]
    };
    for h in heads {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for t in &fig.office_totals {
        let kind = match (zh, t.kind.as_str()) {
            (true, "stock") => "存量（年末）",
            (true, _) => "流量（全年合计）",
            (false, "stock") => "stock (year end)",
            (false, _) => "flow (year total)",
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>",
            esc(if zh { &t.name_zh } else { &t.name_en }),
            esc(&t.metric),
            if zh { integer(t.value) } else { grouped(t.value) },
            esc(&t.unit),
            kind
        );
    }
    s.push_str("</tbody></table>");

    to_check_table(s, fig, zh);

    let _ = write!(s, "<h2>{}</h2><p>", if zh { "口径说明" } else { "Definitions" });
    if zh {
        s.push_str(
            "流量指标（如调解成功、法律咨询）全年数为各月之和；存量指标（如人员、业务用房面积、星级）全年数取各单位当年最后一次报送月份的数值，不跨月相加。\
             同一单位同一月份多次报送的，以最新一次更正为准。“全部单位”包括司法所、司法局、人民调解中心和行业性专业性人民调解委员会。",
        );
    } else {
        s.push_str(
            "Flows (e.g. disputes resolved, consultations) are the sum of the year's months; stocks (staff, floor area, \
             star rating) are each unit's value in its last reported month of the year, never summed across months. \
             Where a month was corrected, the latest revision is used. \"All reporting units\" are judicial offices, \
             bureaus, mediation centres and industry mediation committees.",
        );
    }
    let _ = write!(
        s,
        "</p><footer>{} {} · catalog {} · figures.csv, figures.json</footer></section>",
        if zh { "数据来源：sifa 统计库" } else { "Source: the sifa store of" },
        esc(&r.code),
        esc(&fig.catalog_version)
    );
}

/// The figures the `outliers` rollup flags: published as reported, listed for checking.
fn to_check_table(s: &mut String, fig: &Figures, zh: bool) {
    let _ = write!(s, "<h2>{}</h2><p>", if zh { "待核实数据" } else { "Figures to check" });
    s.push_str(if zh {
        "下列数据偏离本单位历史水平、较上月突变或超出单位规模的合理范围，已按报送数值计入统计，请报送单位核实。"
    } else {
        "These figures are far from the unit's own months, jump from the previous month or exceed what the unit's \
         size makes plausible. They are counted as reported; the reporting units are asked to check them."
    });
    s.push_str("</p>");
    if fig.figures_to_check.is_empty() {
        let _ = write!(s, "<p>{}</p>", if zh { "未发现需核实的数据。" } else { "No figure was flagged." });
        return;
    }
    let heads = if zh {
        ["单位", "月份", "指标", "数值", "原因", "参照值", "得分", "阈值"]
    } else {
        ["Unit", "Month", "Statistic", "Value", "Reason", "Reference", "Score", "Threshold"]
    };
    s.push_str("<table><thead><tr>");
    for h in heads {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for x in &fig.figures_to_check {
        let metric = fig.definitions.iter().find(|d| d.code == x.metric);
        let metric_name = metric.map(|d| if zh { d.name_zh.as_str() } else { d.name_en.as_str() }).unwrap_or(&x.metric);
        let (reason_zh, reason_en) = reason_text(&x.reason);
        let _ = write!(
            s,
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&x.unit_code),
            esc(&x.name),
            esc(&x.period),
            esc(metric_name),
            grouped(x.value),
            if zh { reason_zh } else { reason_en },
            x.reference,
            x.score,
            x.threshold
        );
    }
    s.push_str("</tbody></table>");
}

/// The page.
pub fn render(fig: &Figures) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}{}年司法所工作统计 · Judicial offices {}</title><style>{CSS}</style></head><body>",
        esc(&fig.root.name),
        fig.year,
        fig.year
    );
    section(&mut s, fig, true);
    section(&mut s, fig, false);
    s.push_str("</body></html>\n");
    s
}
