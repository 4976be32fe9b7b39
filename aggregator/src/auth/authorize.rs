//! What a known caller may do: one pure function per rule of docs/SECURITY.md.
//! A refusal is a [`Denied`]; `crate::status` makes it a gRPC status.

use sifa_proto::identity::{Identity, Role};
use sifa_proto::{Registry, Unit};

use super::Denied;

/// The identity's unit in the registry, of a kind that fits its role.
fn known<'r>(id: &Identity, registry: &'r Registry) -> Result<&'r Unit, Denied> {
    let unit = registry
        .get(&id.unit)
        .ok_or_else(|| Denied::PermissionDenied(format!("{id}: unit {} is not in this tier's registry", id.unit)))?;
    if !id.role.fits(unit.kind) {
        return Err(Denied::PermissionDenied(format!(
            "{id}: unit {} is a {}, which cannot hold the role {}",
            id.unit, unit.kind, id.role
        )));
    }
    Ok(unit)
}

/// An office submits only its own unit's reports.
pub fn authorize_own_report(id: &Identity, report_unit: &str, registry: &Registry) -> Result<(), Denied> {
    known(id, registry)?;
    if id.role != Role::Office {
        return Err(Denied::PermissionDenied(format!("{id} is not an office")));
    }
    if report_unit != id.unit {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not submit a report for unit {report_unit}: an office submits only its own reports"
        )));
    }
    Ok(())
}

/// An aggregator forwards only reports of units in its own subtree.
pub fn authorize_forward(id: &Identity, report_unit: &str, registry: &Registry) -> Result<(), Denied> {
    known(id, registry)?;
    if id.role != Role::Aggregator {
        return Err(Denied::PermissionDenied(format!("{id} is not an aggregator")));
    }
    if !registry.is_within(report_unit, &id.unit) {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not forward a report for unit {report_unit}: it is not in {}'s subtree",
            id.unit
        )));
    }
    Ok(())
}

/// Submit and SubmitStream, per report: [`authorize_own_report`] for an office,
/// [`authorize_forward`] for an aggregator; analysts and admins submit nothing.
pub fn authorize_submit(id: &Identity, report_unit: &str, registry: &Registry) -> Result<(), Denied> {
    match id.role {
        Role::Office => authorize_own_report(id, report_unit, registry),
        Role::Aggregator => authorize_forward(id, report_unit, registry),
        Role::Analyst | Role::Admin => Err(Denied::PermissionDenied(format!(
            "{id} may not submit reports: only an office (its own) or an aggregator (its subtree's) does"
        ))),
    }
}

/// The provenance of a submitted report (`first_accepted_by`, empty when absent): an office sends
/// none; a forwarding aggregator's names a tier of its own subtree.
pub fn authorize_provenance(id: &Identity, first_accepted_by: &str, registry: &Registry) -> Result<(), Denied> {
    if first_accepted_by.is_empty() {
        return Ok(());
    }
    match id.role {
        Role::Aggregator if registry.is_within(first_accepted_by, &id.unit) => Ok(()),
        Role::Aggregator => Err(Denied::PermissionDenied(format!(
            "{id} may not forward a provenance naming {first_accepted_by}: it is not in {}'s subtree",
            id.unit
        ))),
        _ => Err(Denied::PermissionDenied(format!("{id} may not set a provenance: only a forwarding aggregator does"))),
    }
}

/// The subtree an identity may see at the tier `tier_unit`: its own unit's when that lies within the
/// tier, the tier's own when the identity is above it (a province analyst asking a county).
fn scope_at(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<String, Denied> {
    known(id, registry)?;
    if registry.is_within(&id.unit, tier_unit) {
        Ok(id.unit.to_string())
    } else if registry.is_within(tier_unit, &id.unit) {
        Ok(tier_unit.to_owned())
    } else {
        Err(Denied::PermissionDenied(format!("{id} is neither within nor above this tier ({tier_unit})")))
    }
}

/// GetCatalog: any identity within this tier's subtree, or above it.
pub fn authorize_catalog(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<(), Denied> {
    scope_at(id, tier_unit, registry).map(|_| ())
}

/// GetRegistry and GetCompleteness: `requested_root` (empty for "all I may see") must lie in the
/// caller's subtree. Returns the root to answer for.
pub fn authorize_subtree(
    id: &Identity,
    requested_root: &str,
    tier_unit: &str,
    registry: &Registry,
) -> Result<String, Denied> {
    let scope = scope_at(id, tier_unit, registry)?;
    let root = requested_root.trim();
    if root.is_empty() {
        return Ok(scope);
    }
    if !registry.is_within(root, &scope) {
        return Err(Denied::PermissionDenied(format!(
            "{id} may ask only about its own subtree {scope}; {root} is outside it"
        )));
    }
    Ok(root.to_owned())
}

/// The Flight SQL endpoint (docs/SQL.md): an analyst or an admin sees its unit's subtree (the tier's
/// whole store when it is above the tier); the tier itself, with its own certificate, sees it all.
/// Returns the unit whose subtree the caller may query.
pub fn authorize_sql(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<String, Denied> {
    match id.role {
        Role::Analyst | Role::Admin => scope_at(id, tier_unit, registry),
        Role::Aggregator if id.unit == tier_unit => Ok(tier_unit.to_owned()),
        Role::Aggregator | Role::Office => Err(Denied::PermissionDenied(format!(
            "{id} may not query this tier's SQL endpoint: that needs an analyst or admin certificate \
             (`sifa pki issue --role analyst --unit <your unit>`) or the tier's own"
        ))),
    }
}

/// LockPeriod and GrantOverride: an admin of this tier's unit or of a unit above it.
pub fn authorize_admin(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<(), Denied> {
    known(id, registry)?;
    if id.role != Role::Admin {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not lock or override: that needs an admin certificate of {tier_unit} or a tier above"
        )));
    }
    if !registry.is_within(tier_unit, &id.unit) {
        return Err(Denied::PermissionDenied(format!("{id} administers {}, not this tier ({tier_unit})", id.unit)));
    }
    Ok(())
}
