//! Held for confirmation: figures that fall away. A ledger wiped by mistake
//! (only its header left) or cut short (a copy that stopped halfway) reads as
//! months without cases, and sending them would replace figures already
//! delivered upstream with zeros, as new revisions. So when, since the
//! figures were last queued,
//!
//! - a case ledger lost most of its rows (fewer than half are left), or
//! - a month that had figures now has none at all,
//!
//! nothing that changed is queued: the months are held back with a message
//! saying what would change, until the clerk restores the file or confirms
//! the drop with `sifa-agent push --once --confirm-drop`.

use sifa_proto::Period;

use crate::compute::Collection;
use crate::outbox::State;

/// A ledger has "lost most of its rows" when fewer than 1 in this many remain.
const KEPT_FRACTION_DENOMINATOR: u64 = 2;

/// What would fall away, in sentences a clerk can act on; empty when nothing does.
pub fn find(state: &State, collection: &Collection) -> Vec<String> {
    let mut found = Vec::new();
    for (file, &before) in &state.ledger_rows {
        let Some(&now) = collection.ledger_rows.get(file) else { continue };
        if now * KEPT_FRACTION_DENOMINATOR < before {
            found.push(format!(
                "{file} has {now} row(s) below its header, where it had {before} when its figures were last sent: it may have been emptied or cut short"
            ));
        }
    }
    for report in &collection.reports {
        let had = state.periods.get(&report.period).and_then(|p| p.value_sum).unwrap_or(0.0);
        let now: f64 = report.values.values().sum();
        if had > 0.0 && now == 0.0 {
            found.push(format!(
                "{}: every figure would become 0, where the last report of the month had some (in all {})",
                report.period,
                crate::ledger::format_number(had)
            ));
        }
    }
    found
}

/// The months `find`'s findings hold back: every month whose figures would change.
pub fn held_months(collection: &Collection, would_change: impl Fn(&sifa_proto::v1::Report) -> bool) -> Vec<Period> {
    collection.reports.iter().filter(|r| would_change(r)).filter_map(|r| r.period.parse::<Period>().ok()).collect()
}

/// How the reason of a month held for confirmation begins.
pub const FALL_AWAY: &str = "figures would fall away";

/// The instruction that ends every hold for confirmation.
pub const HOW_TO_CONFIRM: &str = "if the ledger is right as it is now, send it with `sifa-agent push --once --confirm-drop --config <agent.toml>`; otherwise restore the ledger (e.g. from its backup) and run again";
