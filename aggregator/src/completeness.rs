//! Completeness and timeliness of a month: the reporting units the registry
//! expects against those with at least one stored revision, the missing ones,
//! the late ones (first revision received after the deadline), per county and
//! city.

use std::collections::HashMap;

use sifa_proto::registry::UnitKind;
use sifa_proto::v1::{CompletenessReport, GroupCompleteness, UnitRef};
use sifa_proto::{Period, Registry};

use crate::index::Index;

/// The deadline of a period: the start of day `deadline_day + 1` of the next month, CST.
pub fn deadline_ms(period: Period, deadline_day: u8) -> i64 {
    period.next_month_day_start_ms(deadline_day + 1)
}

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
        if matches!(u.kind, UnitKind::County | UnitKind::City) {
            group_of.insert(u.code.clone(), groups.len());
            groups.push(GroupCompleteness {
                code: u.code.clone(),
                name: u.name.clone(),
                level: u.kind.as_str().to_string(),
                ..Default::default()
            });
        }
    }
    for u in registry.reporting_units(root) {
        out.expected += 1;
        let entry = index.get(&u.code, period);
        let late = entry.is_some_and(|e| e.first_received_ms > deadline);
        let unit_ref = || UnitRef { code: u.code.clone(), name: u.name.clone() };
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
        for node in [lineage.county, lineage.city].into_iter().flatten() {
            if let Some(&g) = group_of.get(&node.code) {
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

/// The report as a table for a person.
pub fn render(r: &CompletenessReport, root_name: &str) -> String {
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
        pct(r.received - r.late.len() as u32, r.expected)
    );
    if !r.groups.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<8} {:<12} {:<20} {:>8} {:>8} {:>6} {:>9} {:>8}",
            "level", "code", "name", "expected", "received", "late", "complete", "on time"
        );
        for g in &r.groups {
            let _ = writeln!(
                s,
                "{:<8} {:<12} {:<20} {:>8} {:>8} {:>6} {:>9} {:>8}",
                g.level,
                g.code,
                g.name,
                g.expected,
                g.received,
                g.late,
                pct(g.received, g.expected),
                pct(g.received - g.late, g.expected)
            );
        }
    }
    for (title, list) in [("missing", &r.missing), ("late", &r.late)] {
        if !list.is_empty() {
            let _ = writeln!(s, "\n{title} ({}):", list.len());
            for u in list {
                let _ = writeln!(s, "  {} {}", u.code, u.name);
            }
        }
    }
    s
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
        let text = render(&r, "敦煌市");
        assert!(text.contains("due by 2024-04-05 CST"), "{text}");
        assert!(text.contains("missing") && text.contains("620982101"), "{text}");
    }
}
