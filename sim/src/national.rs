//! A synthetic national registry and its units' monthly figures, for benchmarks
//! at national scale (`sifa sim store`; benches/rollups.sh).
//!
//! The registry has the national breadth of docs/DOMAIN.md: about 333 cities,
//! 2,850 counties and 41,000 judicial offices (司法所), plus 3,349 other
//! reporting units (a mediation centre in every county and every city, an
//! industry committee in every other city). The registry has no kind above `province`, so the whole
//! breadth hangs under ONE synthetic province, [`ROOT`] (a store's root unit must
//! hold every unit it stores).
//!
//! Figures follow the magnitudes of [`crate::synth`] (an office mediates a few
//! disputes a month, ~88% resolved; 2–3 posts; a star rating of 3–5; about one
//! office in ten Fengqiao-style), drawn directly per unit and month rather than
//! from a generated case ledger, so ten years of a nation take seconds. A few
//! percent of unit-months are corrected (a revision 2, a tenth of those a
//! revision 3). Deterministic: the same seed gives the same registry and figures.

use sifa_proto::Period;
use sifa_proto::registry::{Registry, Unit, UnitKind};
use sifa_proto::unit_code::UnitCode;

use crate::synth::Rng;

/// The synthetic province every unit lies under.
pub const ROOT: &str = "99";
const CITIES: usize = 333;
const COUNTIES: usize = 2_850;
/// Offices per county: uniform in this range (mean 14.4, about 41,000 in all).
const OFFICES_PER_COUNTY: (u32, u32) = (6, 23);
/// The units of `registry` (the synthetic one) under its first `n` cities, and [`ROOT`].
pub fn first_cities(registry: &Registry, n: usize) -> Registry {
    // A city is ROOT and three digits, its own number; every unit under it begins with them.
    let within = |u: &Unit| {
        let code = u.code.as_str();
        code == ROOT
            || code.get(ROOT.len()..ROOT.len() + 3).and_then(|c| c.parse::<usize>().ok()).is_some_and(|c| c <= n)
    };
    let units = registry.units().iter().filter(|u| within(u)).cloned().collect();
    Registry::from_units(units).expect("a subtree of a valid registry is valid")
}

/// Share of unit-months given a revision 2, and of those a revision 3.
const CORRECTED: f64 = 0.03;
const CORRECTED_TWICE: f64 = 0.1;
/// Share of first revisions received after the deadline.
const LATE: f64 = 0.02;

const DAY_MS: i64 = 86_400_000;

/// The synthetic national registry of `seed`: province [`ROOT`], its cities,
/// counties, offices and other reporting units, in tree order.
pub fn registry(seed: u64) -> Registry {
    let code = |c: String| UnitCode::parse(&c).expect("generated codes are 2 to 12 digits");
    let mut units = vec![Unit {
        code: code(ROOT.into()),
        name: "全国(合成)".into(),
        kind: UnitKind::Province,
        parent: None,
        population: None,
        villages: None,
    }];
    let seed = seed.to_le_bytes();
    for c in 0..CITIES {
        let city = format!("{ROOT}{:03}", c + 1);
        let node = |code_text: String, name: String, kind, parent: &str| Unit {
            code: code(code_text),
            name,
            kind,
            parent: Some(code(parent.to_string())),
            population: None,
            villages: None,
        };
        units.push(node(city.clone(), format!("合成{:03}市", c + 1), UnitKind::City, ROOT));
        units.push(node(
            format!("{city}900"),
            format!("合成{:03}市人民调解中心", c + 1),
            UnitKind::MediationCentre,
            &city,
        ));
        if c % 2 == 1 {
            units.push(node(
                format!("{city}901"),
                format!("合成{:03}市医疗纠纷人民调解委员会", c + 1),
                UnitKind::IndustryCommittee,
                &city,
            ));
        }
        // Counties spread evenly over the cities (8 or 9 each).
        let (first, last) = (c * COUNTIES / CITIES, (c + 1) * COUNTIES / CITIES);
        for k in first..last {
            let county = format!("{city}{:02}", k - first + 1);
            let county_name = format!("合成{:03}市{}县", c + 1, k - first + 1);
            units.push(node(county.clone(), county_name.clone(), UnitKind::County, &city));
            units.push(node(
                format!("{county}900"),
                format!("{county_name}人民调解中心"),
                UnitKind::MediationCentre,
                &county,
            ));
            let mut rng = Rng::new(&[county.as_bytes(), &seed, b"offices"]);
            for o in 0..rng.int(OFFICES_PER_COUNTY.0, OFFICES_PER_COUNTY.1) {
                let mut office = node(
                    format!("{county}{:03}", 100 + o),
                    format!("{county_name}第{}司法所", o + 1),
                    UnitKind::Office,
                    &county,
                );
                office.population = Some(u64::from(rng.int(8, 90)) * 1_000);
                office.villages = Some(rng.int(4, 25));
                units.push(office);
            }
        }
    }
    Registry::from_units(units).expect("the generated registry is a valid tree")
}

/// One revision of a unit's month.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub revision: u64,
    /// When the first tier made it durable (Unix ms).
    pub received_at_ms: i64,
    pub values: Vec<(&'static str, f64)>,
}

/// A unit's month: its first revision and, for a few, its corrections.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitMonth {
    pub first: Revision,
    pub corrections: Vec<Revision>,
}

/// A month's weight for disputes: more around the Spring Festival and harvest (as [`crate::synth`]).
const SEASON: [f64; 12] = [1.4, 1.3, 1.0, 0.9, 0.9, 1.0, 1.0, 0.9, 1.0, 1.1, 1.0, 1.2];

/// The figures of `unit` for `period` (revision 1 and any corrections), `deadline_ms` being the
/// month's deadline.
pub fn unit_month(unit: &Unit, period: Period, deadline_ms: i64, seed: u64) -> UnitMonth {
    let seed = seed.to_le_bytes();
    let text = period.to_string();
    let mut rng = Rng::new(&[unit.code.as_bytes(), &seed, text.as_bytes()]);
    let values = match unit.kind {
        UnitKind::Office => office_values(unit, period, &seed, &mut rng),
        _ => area_unit_values(unit.kind, period, &mut rng),
    };
    let received_at_ms = if rng.chance(LATE) {
        deadline_ms + i64::from(rng.int(1, 10)) * DAY_MS
    } else {
        deadline_ms - i64::from(rng.int(1, 20 * 24)) * 3_600_000
    };
    let first = Revision { revision: 1, received_at_ms, values };
    let mut corrections = Vec::new();
    if rng.chance(CORRECTED) {
        let times = if rng.chance(CORRECTED_TWICE) { 2 } else { 1 };
        let mut previous = first.clone();
        for _ in 0..times {
            let mut next = previous.clone();
            next.revision += 1;
            next.received_at_ms = previous.received_at_ms.max(deadline_ms) + i64::from(rng.int(1, 40)) * DAY_MS;
            correct(&mut next.values, &mut rng);
            corrections.push(next.clone());
            previous = next;
        }
    }
    UnitMonth { first, corrections }
}

/// A correction: a mediation later resolved, or consultations recounted.
fn correct(values: &mut [(&'static str, f64)], rng: &mut Rng) {
    let get = |values: &[(&str, f64)], code: &str| values.iter().find(|(c, _)| *c == code).map(|(_, v)| *v);
    let (Some(mediated), Some(resolved)) = (get(values, "disputes_mediated"), get(values, "disputes_resolved")) else {
        return;
    };
    let consultations = get(values, "consultations").unwrap_or(0.0);
    for (code, v) in values.iter_mut() {
        match *code {
            "disputes_resolved" if resolved < mediated => *v = resolved + 1.0,
            "consultations" => *v = (consultations + f64::from(rng.int(0, 4)) - 1.0).max(0.0),
            _ => {}
        }
    }
}

/// An office's month: flows drawn around the domain's means, stocks from the office's year.
fn office_values(unit: &Unit, period: Period, seed: &[u8], rng: &mut Rng) -> Vec<(&'static str, f64)> {
    let population = unit.population.unwrap_or(30_000) as f64;
    let scale = (population / 30_000.0).clamp(0.3, 3.0);
    let s = SEASON[period.month() as usize - 1];
    let received = f64::from(rng.poisson(3.5 * scale * s));
    let mediated = (received - f64::from(rng.poisson(0.15 * received))).max(0.0);
    let resolved = (mediated - f64::from(rng.poisson(0.08 * mediated))).max(0.0);
    let mut v = vec![
        ("disputes_screened", f64::from(rng.poisson(3.0))),
        ("disputes_received", received),
        ("disputes_mediated", mediated),
        ("disputes_resolved", resolved),
        ("video_mediations", f64::from(rng.poisson(0.12 * mediated)).min(mediated)),
        ("consultations", f64::from(rng.poisson(10.0 * scale))),
        ("legal_aid_cases", f64::from(rng.poisson(0.7 * scale))),
        ("legal_opinions", f64::from(rng.poisson(0.6))),
        ("legality_reviews", f64::from(rng.poisson(1.5))),
        ("education_events", f64::from(rng.poisson(1.6))),
        ("lectures", f64::from(rng.poisson(0.8))),
        ("legal_literates_trained", f64::from(rng.poisson(30.0 * scale.sqrt()))),
        ("staff_training_attendances", f64::from(rng.poisson(2.0))),
        ("corrections_received", f64::from(rng.poisson(0.7 * scale))),
        ("corrections_released", f64::from(rng.poisson(0.7 * scale))),
        ("released_prisoners_assisted", f64::from(rng.poisson(0.9 * scale))),
        ("missing_persons_located", if rng.chance(0.06) { 1.0 } else { 0.0 }),
    ];
    // Stocks: drawn once per office and year, with the odd change during the year.
    let year = period.year().to_le_bytes();
    let mut y = Rng::new(&[unit.code.as_bytes(), seed, &year, b"stocks"]);
    let m = period.month() as u32;
    let villages = f64::from(unit.villages.unwrap_or(12));
    let staff_authorized = f64::from(y.int(2, 3));
    let short = y.chance(0.1);
    let fill_month = y.int(3, 11);
    let staff_actual = if short && m < fill_month { staff_authorized - 1.0 } else { staff_authorized };
    let hire_month = if y.chance(0.3) { y.int(4, 10) } else { 13 };
    let contracted = f64::from(y.int(1, 2)) + if m >= hire_month { 1.0 } else { 0.0 };
    let area =
        if y.chance(0.9) { 100.0 + f64::from(y.int(0, 320)) * 0.5 } else { 60.0 + f64::from(y.int(0, 78)) * 0.5 };
    let with_adviser = if y.chance(0.85) { villages } else { (villages - f64::from(y.int(1, 3))).max(1.0) };
    let fengqiao_from = if y.chance(0.08) {
        1
    } else if y.chance(0.03) {
        y.int(4, 12)
    } else {
        13
    };
    let invest_month = if y.chance(0.5) { y.int(3, 10) } else { 13 };
    let invest = f64::from(y.int(20, 300)) * 1000.0 + f64::from(y.int(0, 99)) * 0.01;
    let subjects = (8.0 * scale).round() + f64::from(y.int(0, 4)) + f64::from(m % 3);
    v.extend([
        ("correction_subjects", subjects),
        ("staff_authorized", staff_authorized),
        ("staff_actual", staff_actual),
        ("staff_contracted", contracted),
        ("judicial_assistants", f64::from(y.int(0, 3))),
        ("mediators_fulltime", f64::from(y.int(1, 2))),
        ("investment_yuan", if m == invest_month { invest } else { 0.0 }),
        ("office_area_m2", area),
        ("mediation_committees", villages + 1.0),
        ("mediation_studios", *y.pick(&[1.0, 1.0, 1.0, 0.0, 2.0])),
        ("service_rooms", villages),
        ("villages_total", villages),
        ("villages_with_adviser", with_adviser),
        ("star_rating", *y.pick(&[3.0, 4.0, 4.0, 4.0, 5.0, 5.0])),
        ("fengqiao_style", if m >= fengqiao_from { 1.0 } else { 0.0 }),
    ]);
    v
}

/// A mediation centre's or industry committee's month: disputes and consultations only.
fn area_unit_values(kind: UnitKind, period: Period, rng: &mut Rng) -> Vec<(&'static str, f64)> {
    let size = if kind == UnitKind::IndustryCommittee { 8.0 } else { 20.0 };
    let received = f64::from(rng.poisson(size * SEASON[period.month() as usize - 1]));
    let mediated = (received - f64::from(rng.poisson(0.1 * received))).max(0.0);
    let resolved = (mediated - f64::from(rng.poisson(0.15 * mediated))).max(0.0);
    vec![
        ("disputes_received", received),
        ("disputes_mediated", mediated),
        ("disputes_resolved", resolved),
        ("video_mediations", f64::from(rng.poisson(0.1 * mediated)).min(mediated)),
        ("consultations", f64::from(rng.poisson(size * 1.5))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_breadth_under_one_root() {
        let r = registry(1);
        let count = |k: UnitKind| r.units().iter().filter(|u| u.kind == k).count();
        assert_eq!(count(UnitKind::City), CITIES);
        assert_eq!(count(UnitKind::County), COUNTIES);
        let offices = count(UnitKind::Office);
        assert!((39_000..=43_000).contains(&offices), "{offices} offices");
        let others = count(UnitKind::MediationCentre) + count(UnitKind::IndustryCommittee);
        assert_eq!(others, COUNTIES + CITIES + CITIES / 2, "a centre per county and city, a committee per other city");
        assert_eq!(r.reporting_units(ROOT).len(), offices + others);
        assert_eq!(registry(1).to_csv(), r.to_csv(), "deterministic");
    }

    #[test]
    fn the_first_cities_keep_whole_subtrees() {
        let r = registry(1);
        let small = first_cities(&r, 2);
        assert_eq!(small.units().iter().filter(|u| u.kind == UnitKind::City).count(), 2);
        for u in small.units() {
            if u.code.as_str() != ROOT {
                assert!(
                    small.is_within(u.code.as_str(), "99001") || small.is_within(u.code.as_str(), "99002"),
                    "{}",
                    u.code.as_str()
                );
            }
        }
        let under = |reg: &Registry, city: &str| reg.subtree(city).len();
        assert_eq!(under(&small, "99002"), under(&r, "99002"), "a kept city keeps all its units");
        assert!(small.get("99003").is_none());
    }

    #[test]
    fn a_few_percent_of_months_are_corrected_and_figures_hold_the_catalog_rules() {
        let r = registry(1);
        let period = Period::new(2024, 3).unwrap();
        let deadline = 1_712_332_800_000;
        let months: Vec<UnitMonth> =
            r.reporting_units(ROOT).iter().take(5_000).map(|u| unit_month(u, period, deadline, 1)).collect();
        let corrected = months.iter().filter(|m| !m.corrections.is_empty()).count();
        assert!((75..=225).contains(&corrected), "{corrected} of 5000 corrected");
        let catalog = sifa_proto::Catalog::builtin();
        for m in &months {
            for r in std::iter::once(&m.first).chain(&m.corrections) {
                for (code, v) in &r.values {
                    let metric = catalog.metric(code).unwrap_or_else(|| panic!("{code} is not in the catalog"));
                    assert!(*v >= metric.min && metric.max.is_none_or(|max| *v <= max), "{code} = {v}");
                }
                let get = |c: &str| r.values.iter().find(|(k, _)| *k == c).map(|(_, v)| *v).unwrap();
                assert!(get("disputes_resolved") <= get("disputes_mediated"));
                assert!(get("disputes_mediated") <= get("disputes_received"));
            }
        }
    }
}
