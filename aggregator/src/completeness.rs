//! Completeness and timeliness of a month: the reporting units the registry
//! expects against those with at least one stored revision, the missing ones,
//! the late ones, per county and city (and per province at a national tier).
//!
//! The definition (docs/STORAGE.md, "Completeness") is the one the `completeness`
//! rollup of `sifa query` computes in SQL: expected = the registry's reporting
//! units of the subtree; received = at least one revision stored; late = the
//! earliest `received_at` of its revisions is after [`sifa_store::deadline_ms`]
//! ([`sifa_store::is_late`]). tests/completeness_agrees.rs holds the two equal
//! on the same data directory.

use std::collections::HashMap;

use sifa_proto::registry::UnitKind;
use sifa_proto::v1::{CompletenessReport, GroupCompleteness, UnitRef};
use sifa_proto::{Period, Registry};

use sifa_store::{deadline_ms, is_late};

use crate::index::Index;

/// Completeness of `period` for the subtree of `root`.
pub fn completeness(
    registry: &Registry,
    index: &Index,
    root: &str,
    period: Period,
    deadline_day: u8,
) -> CompletenessReport {
    let deadline = deadline_ms(period, deadline_day);
    let mut out = CompletenessReport { period: period.to_string(), deadline_ms: deadline, ..Default::default() };
    let mut groups: Vec<GroupCompleteness> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for u in registry.subtree(root) {
        // A national tier's provinces are groups too; a province tier's own totals are the report's.
        if matches!(u.kind, UnitKind::County | UnitKind::City) || (u.kind == UnitKind::Province && u.code != root) {
            group_of.insert(u.code.to_string(), groups.len());
            groups.push(GroupCompleteness {
                code: u.code.to_string(),
                name: u.name.clone(),
                level: u.kind.as_str().to_string(),
                ..Default::default()
            });
        }
    }
    for u in registry.reporting_units(root) {
        out.expected += 1;
        let entry = index.get(&u.code, period);
        let late = entry.as_ref().is_some_and(|e| is_late(e.first_received_ms, deadline));
        let unit_ref = || UnitRef { code: u.code.to_string(), name: u.name.clone() };
        match entry {
            None => out.missing.push(unit_ref()),
            Some(_) => {
                out.received += 1;
                if late {
                    out.late.push(unit_ref());
                }
            }
        }
        let lineage = registry.lineage(&u.code);
        for node in [lineage.county, lineage.city, lineage.province].into_iter().flatten() {
            if let Some(&g) = group_of.get(node.code.as_str()) {
                let g = &mut groups[g];
                g.expected += 1;
                g.received += entry.is_some() as u32;
                g.late += late as u32;
            }
        }
    }
    out.groups = groups;
    out
}

/// One approval as a line: "2024-03 620982 approved by admin 620982 at 2024-04-06 10:00 CST; accepted by ...".
pub fn approval_line(a: &sifa_proto::v1::Approval) -> String {
    let at = |ms: i64| format!("{} CST", sifa_proto::period::format_cst(ms));
    let mut s = format!(
        "{} {} {} (已审核): approved by {} at {}",
        a.period,
        a.unit_code,
        a.state,
        a.approved_by,
        at(a.approved_at_ms)
    );
    if !a.via.is_empty() {
        s.push_str(&format!(", reported by tier {}", a.via));
    }
    if !a.accepted_by.is_empty() {
        s.push_str(&format!("; accepted by {} at {}", a.accepted_by, at(a.accepted_at_ms)));
    }
    if a.state == crate::approvals::WITHDRAWN {
        s = format!(
            "{} {} withdrawn by {} at {} ({}): open again",
            a.period,
            a.unit_code,
            a.withdrawn_by,
            at(a.withdrawn_at_ms),
            a.withdraw_reason
        );
    }
    s
}

/// The report as a table for a person: the totals, one line per county and
/// city (expected, received, missing, late, completeness and on-time rates),
/// then the missing and the late units, under their county (or city) when the
/// `registry` is at hand. Columns are aligned by display width, so Chinese
/// names (two columns per character in a terminal) line up.
pub fn render(r: &CompletenessReport, root_name: &str, registry: Option<&Registry>) -> String {
    use std::fmt::Write;
    let pct = |a: u32, b: u32| if b == 0 { "-".to_string() } else { format!("{:.1}%", 100.0 * a as f64 / b as f64) };
    let mut s = String::new();
    let (y, m, d) = sifa_proto::period::civil_from_unix_ms(r.deadline_ms - 1);
    let _ = writeln!(s, "Completeness of {} for {root_name} (due by {y:04}-{m:02}-{d:02} CST)", r.period);
    let _ = writeln!(
        s,
        "expected {}  received {}  missing {}  late {}  completeness {}  on time {}",
        r.expected,
        r.received,
        r.missing.len(),
        r.late.len(),
        pct(r.received, r.expected),
        pct(r.received.saturating_sub(r.late.len() as u32), r.expected)
    );
    if !r.groups.is_empty() {
        let header = ["level", "code", "name", "expected", "received", "missing", "late", "complete", "on time"];
        let mut table = vec![header.map(str::to_string).to_vec()];
        for g in &r.groups {
            table.push(vec![
                g.level.clone(),
                g.code.clone(),
                g.name.clone(),
                g.expected.to_string(),
                g.received.to_string(),
                g.expected.saturating_sub(g.received).to_string(),
                g.late.to_string(),
                pct(g.received, g.expected),
                pct(g.received.saturating_sub(g.late), g.expected),
            ]);
        }
        let _ = writeln!(s);
        // The first three columns (text) align left, the counts and rates right.
        s += &aligned(&table, 3);
    }
    for (title, list) in [("missing", &r.missing), ("late", &r.late)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title} ({}):", list.len());
        let Some(registry) = registry else {
            list.iter().for_each(|u| _ = writeln!(s, "  {} {}", u.code, u.name));
            continue;
        };
        for (label, units) in by_county(list, registry) {
            let _ = writeln!(s, "  {label} ({}):", units.len());
            units.iter().for_each(|u| _ = writeln!(s, "    {} {}", u.code, u.name));
        }
    }
    if r.approvals.is_empty() {
        let _ = writeln!(s, "\nApproval (审核): not approved at this tier");
    } else {
        let _ = writeln!(s, "\nApproval (审核):");
        r.approvals.iter().for_each(|a| _ = writeln!(s, "  {}", approval_line(a)));
    }
    s
}

/// `units` grouped under the nearest county (else city) above each, labelled "code name", in the order
/// first met.
pub fn by_county<'a>(units: &'a [UnitRef], registry: &Registry) -> Vec<(String, Vec<&'a UnitRef>)> {
    let mut groups: Vec<(String, Vec<&UnitRef>)> = Vec::new();
    for u in units {
        let lineage = registry.lineage(&u.code);
        let label = match lineage.county.or(lineage.city) {
            Some(g) => format!("{} {}", g.code, g.name),
            None => "(no county or city)".to_string(),
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, units)) => units.push(u),
            None => groups.push((label, vec![u])),
        }
    }
    groups
}

/// Rows of cells as lines, each column padded to its widest cell by display
/// width; the first `left` columns are left-aligned, the rest right-aligned.
fn aligned(rows: &[Vec<String>], left: usize) -> String {
    use unicode_width::UnicodeWidthStr;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|x| x.width()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.width());
            if c > 0 {
                line.push_str("  ");
            }
            if c < left {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::v1::Report;

    #[test]
    fn expected_received_missing_late_per_group() {
        let reg = Registry::demo();
        let p: Period = "2024-03".parse().unwrap();
        let deadline = deadline_ms(p, 5);
        let mut ix = Index::new();
        let rep = |u: &str| Report {
            unit_code: u.into(),
            period: "2024-03".into(),
            revision: 1,
            values: [("lectures".to_string(), 1.0)].into(),
            ..Default::default()
        };
        ix.insert(&rep("620982100"), p, deadline - 1);
        ix.insert(&rep("620982101"), p, deadline + 1);
        let r = completeness(&reg, &ix, "620982", p, 5);
        let expected = reg.reporting_units("620982").len() as u32;
        assert_eq!((r.expected, r.received), (expected, 2));
        assert_eq!(r.missing.len() as u32, expected - 2);
        assert_eq!(r.late.iter().map(|u| u.code.as_str()).collect::<Vec<_>>(), ["620982101"]);
        assert_eq!(r.groups.len(), 1);
        assert_eq!((r.groups[0].code.as_str(), r.groups[0].received, r.groups[0].late), ("620982", 2, 1));
        let city = completeness(&reg, &ix, "6209", p, 5);
        let g = city.groups.iter().find(|g| g.code == "6209").unwrap();
        assert_eq!((g.level.as_str(), g.expected), ("city", reg.reporting_units("6209").len() as u32));
        assert_eq!(g.received, 2);
        let text = render(&r, "敦煌市", None);
        assert!(text.contains("due by 2024-04-05 CST"), "{text}");
        assert!(text.contains("missing") && text.contains("620982101"), "{text}");
        // Per group: expected, received, missing, late and the rates, columns aligned
        // by display width whatever the names (酒泉市 is three characters, six columns).
        let text = render(&city, "酒泉市", Some(&reg));
        let lines: Vec<&str> =
            text.lines().skip_while(|l| !l.starts_with("level")).take_while(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1 + city.groups.len(), "{text}");
        use unicode_width::UnicodeWidthStr;
        let widths: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "every line as wide as the header: {text}");
        let g = lines.iter().find(|l| l.starts_with("county  620982")).expect(&text);
        // Missing and late units under their county.
        let late = text.split("\nlate (1):\n").nth(1).and_then(|l| l.split("\nApproval (审核)").next()).expect(&text);
        assert_eq!(late, "  620982 敦煌市 (1):\n    620982101 七里镇司法所\n", "{text}");
        let missing = text.split("\nmissing (").nth(1).and_then(|m| m.split("\nlate (").next()).expect(&text);
        assert!(missing.contains("\n  620982 敦煌市 (8):\n    620982102 "), "{text}");
        let listed = missing.lines().filter(|l| l.starts_with("    ")).count() as u32;
        assert_eq!(listed, city.expected - 2, "{text}");
        assert!(text.ends_with("\nApproval (审核): not approved at this tier\n"), "{text}");
        let cells: Vec<&str> = g.split_whitespace().collect();
        let missing = expected - 2;
        assert_eq!(
            cells,
            [
                "county",
                "620982",
                "敦煌市",
                &expected.to_string(),
                "2",
                &missing.to_string(),
                "1",
                &format!("{:.1}%", 200.0 / expected as f64),
                &format!("{:.1}%", 100.0 / expected as f64)
            ],
            "{text}"
        );
    }
}
