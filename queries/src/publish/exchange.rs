//! The year's figures in the formats statistical offices exchange: SDMX-CSV 2.0
//! (`figures.sdmx.csv`) and IHE ADX (`figures.adx.xml`), with the catalog's
//! codes as indicators / data elements and the registry's codes as areas /
//! organisation units. The same numbers as figures.json, deterministic.
//!
//! The observations: for every published area (the root, its provinces, cities and
//! counties) disputes resolved by all reporting units (`REPORTING_UNITS` =
//! `ALL`) and by judicial offices (`OFFICES`); for the root, every statistic's
//! year total over its offices (`OFFICES`). Flows are the year's sum, stocks
//! the year-end value (docs/CATALOG.md).

use std::fmt::Write as _;

use super::numbers::integer;
use super::{Area, Figures};

/// The SDMX agency and dataflow (and the ADX data set) of sifa's figures.
pub const AGENCY: &str = "SIFA";
pub const DATAFLOW: &str = "JUDICIAL_OFFICE_FIGURES";

/// Which units an observation sums.
const ALL: &str = "ALL";
const OFFICES: &str = "OFFICES";

/// One observation: area, which units, statistic, value and unit of measure.
pub struct Observation<'a> {
    pub area: &'a str,
    pub reporting_units: &'static str,
    pub indicator: &'a str,
    pub value: f64,
    pub unit: &'a str,
}

/// Every observation of the figures, in a fixed order.
pub fn observations(fig: &Figures) -> Vec<Observation<'_>> {
    let unit_of = |code: &str| fig.definitions.iter().find(|d| d.code == code).map(|d| d.unit.as_str()).unwrap_or("");
    let resolved_unit = unit_of("disputes_resolved");
    let mut out = Vec::new();
    for t in &fig.office_totals {
        out.push(Observation {
            area: &fig.root.code,
            reporting_units: OFFICES,
            indicator: &t.metric,
            value: t.value,
            unit: &t.unit,
        });
    }
    let areas: Vec<&Area> = fig.areas().collect();
    for a in areas {
        out.push(Observation {
            area: &a.code,
            reporting_units: ALL,
            indicator: "disputes_resolved",
            value: a.all_resolved,
            unit: resolved_unit,
        });
        if a.code != fig.root.code {
            out.push(Observation {
                area: &a.code,
                reporting_units: OFFICES,
                indicator: "disputes_resolved",
                value: a.office_resolved,
                unit: resolved_unit,
            });
        }
    }
    out
}

/// A CSV field, quoted when it needs to be (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// figures.sdmx.csv: SDMX-CSV 2.0, one observation a line; dimensions REF_AREA
/// (registry code), REPORTING_UNITS, TIME_PERIOD (the year), INDICATOR (catalog
/// code); attribute UNIT_MEASURE (the catalog's unit).
pub fn to_sdmx_csv(fig: &Figures) -> String {
    let structure_id = format!("{AGENCY}:{DATAFLOW}({})", fig.catalog_version);
    let mut s = String::from(
        "STRUCTURE,STRUCTURE_ID,ACTION,REF_AREA,REPORTING_UNITS,TIME_PERIOD,INDICATOR,OBS_VALUE,UNIT_MEASURE\n",
    );
    for o in observations(fig) {
        let _ = writeln!(
            s,
            "dataflow,{},I,{},{},{},{},{},{}",
            field(&structure_id),
            field(o.area),
            o.reporting_units,
            fig.year,
            field(o.indicator),
            integer(o.value),
            field(o.unit)
        );
    }
    s
}

/// XML text escaped for an attribute value.
fn attr(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// figures.adx.xml: an IHE ADX message, one `group` per area and set of
/// reporting units for the year (`period` = `YYYY-01-01/P1Y`), one `dataValue`
/// per statistic; `exported` is when the newest report in the figures was
/// received (publishing twice gives the same bytes).
pub fn to_adx(fig: &Figures) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(s, "<adx xmlns=\"urn:ihe:qrph:adx:2015\" exported=\"{}\">", attr(&fig.data_as_of));
    let observations = observations(fig);
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for o in &observations {
        if !groups.contains(&(o.area, o.reporting_units)) {
            groups.push((o.area, o.reporting_units));
        }
    }
    for (area, units) in groups {
        let _ = writeln!(
            s,
            "  <group orgUnit=\"{}\" period=\"{}-01-01/P1Y\" dataSet=\"{DATAFLOW}\" REPORTING_UNITS=\"{units}\">",
            attr(area),
            fig.year
        );
        for o in observations.iter().filter(|o| o.area == area && o.reporting_units == units) {
            let _ = writeln!(
                s,
                "    <dataValue dataElement=\"{}\" value=\"{}\" UNIT_MEASURE=\"{}\"/>",
                attr(o.indicator),
                integer(o.value),
                attr(o.unit)
            );
        }
        s.push_str("  </group>\n");
    }
    s.push_str("</adx>\n");
    s
}
