//! The status page at `/`: what a county clerk needs at a glance, Chinese
//! first (`?lang=en` for English). Plain HTML with inline SVG bars, no script,
//! nothing fetched from the network; it reloads itself every
//! [`REFRESH_SECONDS`].
//!
//! The completeness of the month being reported now (last calendar month, due
//! by `deadline_day` of this one) and of the month before, per county (or
//! city), with the missing and late units named (`crate::completeness`, the one definition),
//! corrections received, the reports rejected since the tier started and why,
//! forwarding, the last flush, locked periods and overrides, and disk.
//! Every string from a report, the registry or a caller is escaped.

use std::fmt::Write;

use sifa_proto::period::format_cst;
use sifa_proto::v1::{CompletenessReport, GroupCompleteness};
use sifa_proto::{Period, Registry};

use super::snapshot::Snapshot;
use crate::completeness::{by_county, completeness};
use crate::locks::{Lock, Override};
use crate::rejections::Rejected;
use crate::service::Tier;

/// The page reloads itself this often.
pub const REFRESH_SECONDS: u32 = 30;

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `lang=en` in the query string: English; anything else: Chinese.
    pub fn from_query(query: &str) -> Lang {
        if query.split('&').any(|kv| kv == "lang=en") { Lang::En } else { Lang::Zh }
    }

    fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// One month as the page shows it.
pub struct Month {
    pub report: CompletenessReport,
    /// Units with more than one revision of the month: (code, name, latest revision).
    pub corrections: Vec<(String, String, u64)>,
}

/// Everything the page shows, read from the tier at one moment.
pub struct PageData {
    pub unit: String,
    pub unit_name: String,
    pub registry: std::sync::Arc<Registry>,
    /// The month being reported now (the last calendar month), then the one before.
    pub months: Vec<Month>,
    pub rejections: Vec<Rejected>,
    pub rejections_total: u64,
    pub since_ms: i64,
    pub locks: Vec<Lock>,
    pub overrides: Vec<Override>,
    pub now: Snapshot,
}

/// Reads the page's data from the tier.
pub fn collect(tier: &Tier, now: &Snapshot) -> PageData {
    let unit = tier.unit.to_string();
    let reported_now = Period::containing_unix_ms(now.at_ms).prev();
    let months = [reported_now, reported_now.prev()]
        .into_iter()
        .map(|period| {
            let index = tier.index.lock().expect("index");
            let report = completeness(&tier.registry, &index, &unit, period, tier.deadline_day);
            let corrections = tier
                .registry
                .reporting_units(&unit)
                .into_iter()
                .filter_map(|u| {
                    let e = index.get(&u.code, period)?;
                    let latest = e.revisions().iter().map(|(r, _)| *r).max()?;
                    (e.revisions().len() > 1).then(|| (u.code.to_string(), u.name.clone(), latest))
                })
                .collect();
            Month { report, corrections }
        })
        .collect();
    let book = tier.locks.lock().expect("locks").book().clone();
    PageData {
        unit_name: tier.registry.get(&unit).map(|u| u.name.clone()).unwrap_or_default(),
        unit,
        registry: tier.registry.clone(),
        months,
        rejections: tier.rejections.newest_first(),
        rejections_total: tier.rejections.total(),
        since_ms: tier.rejections.since_ms(),
        locks: book.locks,
        overrides: book.overrides,
        now: now.clone(),
    }
}

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cst(ms: i64) -> String {
    format!("{} CST", format_cst(ms))
}

fn pct(a: u32, b: u32) -> String {
    if b == 0 { "-".into() } else { format!("{:.1}%", 100.0 * a as f64 / b as f64) }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn seconds(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// A bar of `expected` units: on time (green), late (amber), missing (grey); an SVG of 240×14.
fn bar(received: u32, late: u32, expected: u32, label: &str) -> String {
    const W: f64 = 240.0;
    let part = |n: u32| if expected == 0 { 0.0 } else { W * n as f64 / expected as f64 };
    let on_time = part(received.saturating_sub(late));
    let late_w = part(late.min(received));
    format!(
        "<svg width=\"240\" height=\"14\" viewBox=\"0 0 240 14\" role=\"img\" aria-label=\"{label}\">\
         <rect width=\"240\" height=\"14\" fill=\"#d9d9d9\"/>\
         <rect width=\"{on_time:.1}\" height=\"14\" fill=\"#2e7d32\"/>\
         <rect x=\"{on_time:.1}\" width=\"{late_w:.1}\" height=\"14\" fill=\"#f9a825\"/></svg>",
        label = escape(label)
    )
}

const STYLE: &str = "body{font-family:'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif;\
margin:1.5em;color:#222;max-width:1200px}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:2px solid #444;\
margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.25em .6em;\
text-align:left;vertical-align:top}th{background:#eee}.num{text-align:right}.tiles{display:flex;flex-wrap:wrap;\
gap:.8em}.tile{border:1px solid #bbb;padding:.5em .9em;min-width:11em}.tile b{display:block;font-size:1.3em}\
.bad{color:#b71c1c}.ok{color:#2e7d32}.missing li{margin:.1em 0}.note{color:#666;font-size:.9em}";

/// The page's HTML.
pub fn render(d: &PageData, lang: Lang) -> String {
    let t = |zh, en| lang.pick(zh, en);
    let mut h = String::new();
    let title = format!("{} {} — {}", escape(&d.unit_name), escape(&d.unit), t("报送运行状态", "reporting status"));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title><style>{STYLE}</style></head><body>\n",
        t("zh-CN", "en"),
    );
    let other = match lang {
        Lang::Zh => "<a href=\"?lang=en\">English</a>",
        Lang::En => "<a href=\"?lang=zh\">中文</a>",
    };
    let _ = writeln!(
        h,
        "<h1>{title}</h1><p class=\"note\">{} {} · {} {REFRESH_SECONDS} {} · {other}</p>",
        t("更新于", "As of"),
        cst(d.now.at_ms),
        t("每", "reloads every"),
        t("秒自动刷新", "seconds"),
    );
    tiles(&mut h, d, lang);
    for (i, m) in d.months.iter().enumerate() {
        month(&mut h, d, m, i == 0, lang);
    }
    rejections(&mut h, d, lang);
    locks(&mut h, d, lang);
    h.push_str("</body></html>\n");
    h
}

fn tiles(h: &mut String, d: &PageData, lang: Lang) {
    let t = |zh, en| lang.pick(zh, en);
    let n = &d.now;
    h.push_str("<div class=\"tiles\">");
    let mut tile = |label: &str, value: String, bad: bool| {
        let class = if bad { "bad" } else { "ok" };
        let _ = write!(h, "<div class=\"tile\">{label}<b class=\"{class}\">{value}</b></div>");
    };
    match &n.forwarding {
        None => tile(t("向上级转发", "Forwarding up"), t("本级为最高级", "top tier: none").into(), false),
        Some(f) => {
            let state = f.link_state.as_deref().unwrap_or("-");
            let state_text = match (state, lang) {
                ("delivering", Lang::Zh) => "正常".to_string(),
                ("delivering", Lang::En) => "delivering".to_string(),
                ("-", Lang::Zh) => "尚未连接".to_string(),
                ("-", Lang::En) => "not yet connected".to_string(),
                (s, _) => s.to_string(),
            };
            tile(t("上级连接", "Upstream link"), escape(&state_text), state != "delivering" && f.backlog > 0);
            let wait = f.oldest_age.map(seconds).unwrap_or_else(|| "0".into());
            tile(
                t("待转发报表", "Waiting to forward"),
                format!("{} ({} {wait})", f.backlog, t("最久", "oldest")),
                f.oldest_age.is_some_and(|a| a.as_secs() > 300),
            );
        }
    }
    let flush = match n.last_flush_ms {
        Some(ms) => format!("{} {}", seconds(n.flush_age), t("前", "ago")) + &format!(" ({})", cst(ms)),
        None => t("尚未写入", "not yet").to_string(),
    };
    tile(t("上次写入存储", "Last flush to the store"), flush, n.flush_age.as_secs() > 60);
    tile(t("待写入行数", "Rows waiting for the flush"), n.flush_pending_rows.to_string(), false);
    tile(
        t("预写日志", "Write-ahead log"),
        format!("{} / {} {}", bytes(n.wal_bytes), n.wal_segments, t("个分段", "segments")),
        false,
    );
    let disk = match n.disk_free_bytes {
        Some(free) => format!("{} ({} {})", bytes(free), t("预留", "reserve"), bytes(n.disk_reserve_bytes)),
        None => t("无法读取", "cannot be read").to_string(),
    };
    tile(
        t("可用磁盘", "Free disk"),
        disk,
        n.disk_free_bytes.is_none_or(|f| f <= n.disk_reserve_bytes.saturating_mul(2)),
    );
    h.push_str("</div>\n");
}

fn group_row(h: &mut String, g: &GroupCompleteness, due: bool, lang: Lang) {
    let level = match (g.level.as_str(), lang) {
        ("county", Lang::Zh) => "县区",
        ("city", Lang::Zh) => "市州",
        (l, _) => l,
    };
    let missing = g.expected.saturating_sub(g.received);
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td>{} {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num{}\">{missing}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
        escape(level),
        escape(&g.code),
        escape(&g.name),
        g.expected,
        g.received,
        if missing > 0 && due { " bad" } else { "" },
        g.late,
        pct(g.received, g.expected),
        bar(g.received, g.late, g.expected, &format!("{} {}/{}", g.name, g.received, g.expected)),
    );
}

fn month(h: &mut String, d: &PageData, m: &Month, current: bool, lang: Lang) {
    let t = |zh, en| lang.pick(zh, en);
    let r = &m.report;
    let (y, mo, day) = sifa_proto::period::civil_from_unix_ms(r.deadline_ms - 1);
    let due = d.now.at_ms >= r.deadline_ms;
    let _ = writeln!(
        h,
        "<section id=\"period-{}\"><h2>{} {} {} <span class=\"note\">({} {y:04}-{mo:02}-{day:02}{})</span></h2>",
        escape(&r.period),
        escape(&r.period),
        if current { t("本期月报", "reported now") } else { t("上期月报", "the month before") },
        t("报送完整性", "completeness"),
        t("截止", "due by"),
        if due { "" } else { t("，尚未到期", ", not yet due") },
    );
    let _ = writeln!(
        h,
        "<p>{} {} · {} {} · <span class=\"{}\">{} {}</span> · {} {} · {} {}</p>",
        t("应报", "expected"),
        r.expected,
        t("已报", "received"),
        r.received,
        if r.missing.is_empty() || !due { "ok" } else { "bad" },
        t("未报", "missing"),
        r.missing.len(),
        t("迟报", "late"),
        r.late.len(),
        t("完整率", "complete"),
        pct(r.received, r.expected),
    );
    if !r.groups.is_empty() {
        let _ = writeln!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("级别", "level"),
            t("单位", "unit"),
            t("应报", "expected"),
            t("已报", "received"),
            t("未报", "missing"),
            t("迟报", "late"),
            t("完整率", "complete"),
            t("按时 / 迟报 / 未报", "on time / late / missing"),
        );
        r.groups.iter().for_each(|g| group_row(h, g, due, lang));
        h.push_str("</table>\n");
    }
    for (title, list) in [(t("未报单位", "Missing"), &r.missing), (t("迟报单位", "Late"), &r.late)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<h3>{title} ({})</h3><ul class=\"missing\">", list.len());
        for (county, units) in by_county(list, &d.registry) {
            let names: Vec<String> = units
                .iter()
                .map(|u| format!("{} <span class=\"note\">{}</span>", escape(&u.name), escape(&u.code)))
                .collect();
            let _ = writeln!(h, "<li><b>{}</b> ({}): {}</li>", escape(&county), units.len(), names.join("、"));
        }
        h.push_str("</ul>\n");
    }
    if !m.corrections.is_empty() {
        let _ = writeln!(h, "<h3>{} ({})</h3><ul>", t("收到更正", "Corrections received"), m.corrections.len());
        for (code, name, rev) in &m.corrections {
            let _ = writeln!(
                h,
                "<li>{} <span class=\"note\">{}</span>: {} {rev}</li>",
                escape(name),
                escape(code),
                t("最新修订版", "latest revision"),
            );
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");
}

fn rejections(h: &mut String, d: &PageData, lang: Lang) {
    let t = |zh, en| lang.pick(zh, en);
    let _ = writeln!(
        h,
        "<h2>{} <span class=\"note\">({} {}, {} {}{})</span></h2>",
        t("被拒报表", "Rejected reports"),
        t("自本级启动", "since this tier started at"),
        cst(d.since_ms),
        t("共", "total"),
        d.rejections_total,
        if d.rejections_total as usize > d.rejections.len() {
            format!(", {} {}", t("显示最近", "showing the newest"), d.rejections.len())
        } else {
            String::new()
        },
    );
    if d.rejections.is_empty() {
        let _ = writeln!(h, "<p class=\"ok\">{}</p>", t("无", "none"));
        return;
    }
    let _ = writeln!(
        h,
        "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t("时间", "time"),
        t("单位", "unit"),
        t("月份", "month"),
        t("发送方", "sender"),
        t("规则", "rule"),
        t("原因", "why"),
    );
    for r in &d.rejections {
        let name = d.registry.get(&r.unit).map(|u| u.name.as_str()).unwrap_or("");
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{} <span class=\"note\">{}</span></td><td>{} r{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            cst(r.at_ms),
            escape(name),
            escape(&r.unit),
            escape(&r.period),
            r.revision,
            escape(&r.sender),
            escape(&r.rule),
            escape(&r.message),
        );
    }
    h.push_str("</table>\n");
}

fn locks(h: &mut String, d: &PageData, lang: Lang) {
    let t = |zh, en| lang.pick(zh, en);
    let _ = writeln!(h, "<h2>{}</h2>", t("已锁定月份与特许补报", "Locked periods and overrides"));
    if d.locks.is_empty() && d.overrides.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", t("无", "none"));
        return;
    }
    h.push_str("<ul>");
    for l in &d.locks {
        let _ = write!(
            h,
            "<li>{} {} {} {} ({}: {})</li>",
            escape(&l.period),
            t("已锁定", "locked by"),
            escape(&l.locked_by),
            cst(l.locked_at_ms),
            t("原因", "reason"),
            escape(&l.reason),
        );
    }
    for o in &d.overrides {
        let name = d.registry.get(&o.unit_code).map(|u| u.name.as_str()).unwrap_or("");
        let used = match o.used_by_revision {
            Some(rev) => format!("{} r{rev}", t("已使用", "used by")),
            None => t("未使用", "not yet used").to_string(),
        };
        let _ = write!(
            h,
            "<li>{} {} {} {}: {} {} {} ({}: {}); {used}</li>",
            t("特许补报", "Override"),
            escape(name),
            escape(&o.unit_code),
            escape(&o.period),
            t("批准人", "granted by"),
            escape(&o.granted_by),
            cst(o.granted_at_ms),
            t("原因", "reason"),
            escape(&o.reason),
        );
    }
    h.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape("<b a=\"1\">&'x'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;x&#39;");
        assert_eq!(Lang::from_query("x=1&lang=en"), Lang::En);
        assert_eq!(Lang::from_query("lang=zh"), Lang::Zh);
        assert_eq!(Lang::from_query(""), Lang::Zh);
    }

    #[test]
    fn a_bar_splits_on_time_late_and_missing() {
        let svg = bar(6, 2, 12, "敦煌市 <6/12>");
        assert!(svg.contains("width=\"80.0\" height=\"14\" fill=\"#2e7d32\""), "{svg}");
        assert!(svg.contains("x=\"80.0\" width=\"40.0\""), "{svg}");
        assert!(svg.contains("aria-label=\"敦煌市 &lt;6/12&gt;\""), "{svg}");
    }
}
