//! What a known caller may do: one pure function per rule of docs/SECURITY.md.
//! A refusal is a [`Denied`]; `crate::status` makes it a gRPC status.

use sifa_proto::identity::{Identity, Role};
use sifa_proto::validate::echo;
use sifa_proto::{Registry, Unit, UnitKind};

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

/// An office (or other reporting unit) submits only its own unit's reports, and only to the tier
/// directly above it (its parent in the registry): every other tier gets them forwarded from below,
/// so each report has one path and every tier on it agrees what it holds.
pub fn authorize_own_report(
    id: &Identity,
    report_unit: &str,
    tier_unit: &str,
    registry: &Registry,
) -> Result<(), Denied> {
    let unit = known(id, registry)?;
    if id.role != Role::Office {
        return Err(Denied::PermissionDenied(format!("{id} is not an office")));
    }
    if report_unit != id.unit {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not submit a report for unit {}: an office submits only its own reports",
            echo(report_unit)
        )));
    }
    match registry.parent(unit) {
        Some(parent) if parent.code == tier_unit => Ok(()),
        Some(parent) => Err(Denied::PermissionDenied(format!(
            "{id} reports only to the tier directly above it, {} ({}), which forwards its reports up; this \
             tier is {tier_unit}: send the report to {}'s aggregator",
            parent.code, parent.name, parent.code
        ))),
        None => Err(Denied::PermissionDenied(format!("{id}: unit {} has no tier above it", id.unit))),
    }
}

/// An aggregator forwards (reports, approvals) only to a tier above it, and only for units of its
/// own subtree. A national tier takes them only from its provinces: every report reaches the nation
/// through its province, as the province's store holds it.
pub fn authorize_forward(id: &Identity, report_unit: &str, tier_unit: &str, registry: &Registry) -> Result<(), Denied> {
    let unit = known(id, registry)?;
    if id.role != Role::Aggregator {
        return Err(Denied::PermissionDenied(format!("{id} is not an aggregator")));
    }
    if id.unit == tier_unit || !registry.is_within(&id.unit, tier_unit) {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not forward to this tier ({tier_unit}): a tier takes forwarded reports only from the \
             aggregators below it"
        )));
    }
    let at_nation = registry.get(tier_unit).is_some_and(|t| t.kind == UnitKind::Nation);
    if at_nation && unit.kind != UnitKind::Province {
        let province = registry.lineage(&id.unit).province.map(|p| format!("{} ({})", p.code, p.name));
        return Err(Denied::PermissionDenied(format!(
            "{id} may not forward to the national tier ({tier_unit}): the nation takes forwarded reports only \
             from its provinces' aggregators; forward to {}'s aggregator, which forwards them up",
            province.as_deref().unwrap_or("your province")
        )));
    }
    if !registry.is_within(report_unit, &id.unit) {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not forward a report for unit {}: it is not in {}'s subtree",
            echo(report_unit),
            id.unit
        )));
    }
    Ok(())
}

/// Submit and SubmitStream, per report, at the tier of `tier_unit`: [`authorize_own_report`] for an
/// office, [`authorize_forward`] for an aggregator; analysts and admins submit nothing.
pub fn authorize_submit(id: &Identity, report_unit: &str, tier_unit: &str, registry: &Registry) -> Result<(), Denied> {
    match id.role {
        Role::Office => authorize_own_report(id, report_unit, tier_unit, registry),
        Role::Aggregator => authorize_forward(id, report_unit, tier_unit, registry),
        Role::Analyst | Role::Admin => Err(Denied::PermissionDenied(format!(
            "{id} may not submit reports: only an office (its own) or an aggregator (its subtree's) does"
        ))),
    }
}

/// The provenance of a submitted report (`first_accepted_by`, empty when absent): an office sends
/// none; a forwarding aggregator sends the one the first tier gave the report, naming that tier: the
/// tier directly above the report's unit (the only one that takes it from the unit itself), inside
/// the forwarding aggregator's subtree.
pub fn authorize_provenance(
    id: &Identity,
    first_accepted_by: &str,
    report_unit: &str,
    registry: &Registry,
) -> Result<(), Denied> {
    match id.role {
        Role::Aggregator if first_accepted_by.is_empty() => Err(Denied::PermissionDenied(format!(
            "{id} forwarded a report of unit {} without its provenance: a forwarded report carries the \
             provenance (first_accepted_by, received_at_ms) the first tier gave it",
            echo(report_unit)
        ))),
        Role::Aggregator => {
            let first = registry.get(first_accepted_by).filter(|u| !u.kind.is_reporting());
            let first_tier = registry.get(report_unit).and_then(|u| registry.parent(u));
            match (first, first_tier) {
                (Some(f), Some(t)) if f.code == t.code && registry.is_within(&f.code, &id.unit) => Ok(()),
                (Some(f), None) if registry.is_within(&f.code, &id.unit) => Ok(()),
                _ => Err(Denied::PermissionDenied(format!(
                    "{id} may not forward a provenance naming {}: the first tier of unit {} is the tier \
                     directly above it{}, inside {}'s subtree",
                    echo(first_accepted_by),
                    echo(report_unit),
                    first_tier.map(|t| format!(" ({})", t.code)).unwrap_or_default(),
                    id.unit
                ))),
            }
        }
        _ if first_accepted_by.is_empty() => Ok(()),
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

/// The HTTP side (status page, metrics) over HTTPS: an analyst or an admin of this tier's unit or of a
/// unit above it.
pub fn authorize_operator(id: &Identity, tier_unit: &str, registry: &Registry) -> Result<(), Denied> {
    known(id, registry)?;
    if !matches!(id.role, Role::Analyst | Role::Admin) {
        return Err(Denied::PermissionDenied(format!(
            "{id} may not see this tier's status page or metrics: that needs an analyst or admin certificate \
             of {tier_unit} or a tier above"
        )));
    }
    if !registry.is_within(tier_unit, &id.unit) {
        return Err(Denied::PermissionDenied(format!("{id} is not of this tier ({tier_unit}) or a tier above it")));
    }
    Ok(())
}
