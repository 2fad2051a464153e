//! Planning a database: what the live cluster is, and whether the
//! bundle's dump must be restored into it.

use super::{restore_compatibility, target, DatabaseSpec, Observed};
use crate::host::postgres::{self as pg, PgError};
use crate::recipe::Address;

pub(super) fn observe(
    address: &Address,
    spec: &DatabaseSpec,
    cx: &crate::resources::kind::Cx,
) -> Result<Observed, crate::resources::kind::ResourceError> {
    let target = target(spec);
    let err = |e: PgError| {
        crate::resources::kind::ResourceError::new(address, e.to_string())
            .help("is PostgreSQL running, and do host/port/run_as in the recipe point at it? Nothing was changed")
    };
    let view = pg::cluster_view(&target).map_err(err)?;
    // An apply's re-plan need not count again the rows it just verified.
    let just_verified = cx.state.verified_now.contains(&address.to_string());
    let short_of_bundle = match restored_here(address, &view, cx).filter(|_| !just_verified) {
        Some(db) => {
            let wanted: Vec<String> = db.fingerprint.keys().cloned().collect();
            let live = pg::fingerprint_of(&target, &wanted).map_err(err)?;
            shortfall(db, &live, &cx.bundle.name())
        }
        None => Vec::new(),
    };
    Ok(Observed {
        system_identifier: view.identity.system_identifier,
        server_version: view.identity.server_version,
        databases: view.databases,
        short_of_bundle,
    })
}

pub(super) fn compare(
    address: &Address,
    spec: &DatabaseSpec,
    seen: &Observed,
    cx: &crate::resources::kind::Cx,
) -> Result<crate::resources::kind::Verdict, crate::resources::kind::ResourceError> {
    use crate::plan::Action;
    use crate::resources::kind::Verdict;
    let Some(db) = cx
        .bundle
        .manifest
        .database
        .as_ref()
        .filter(|d| &d.address == address)
    else {
        return Ok(Verdict::no_op(
            cx.bundle.manifest.why_missing(address),
            serde_json::Value::Null,
        ));
    };
    let after = serde_json::json!({
        "system_identifier": db.system_identifier,
        "server_version": db.server_version,
        "dump": db.file,
        "databases": db.databases,
    });
    let bundle_id = cx.bundle.name();
    let record = cx
        .state
        .restored(&address.to_string(), &bundle_id, &seen.system_identifier);
    let missing: Vec<&String> = spec
        .databases
        .iter()
        .filter(|d| !seen.databases.contains(d))
        .collect();
    let evidence: Vec<String> = vec![
        format!(
            "live cluster:   system_identifier {} (PostgreSQL {})",
            seen.system_identifier, seen.server_version
        ),
        format!(
            "bundle cluster: system_identifier {} (PostgreSQL {}), dump {}",
            if db.system_identifier == crate::bundle::UNKNOWN_IDENTIFIER {
                "unknown (imported from a runbook dump)"
            } else {
                &db.system_identifier
            },
            db.server_version,
            db.file
        ),
        format!(
            "bundle holds {} tables, {} rows",
            db.fingerprint.values().map(|t| t.len()).sum::<usize>(),
            db.fingerprint
                .values()
                .flat_map(|t| t.values())
                .sum::<u64>()
        ),
    ];
    let owed = cx.state.owed(&address.to_string(), cx.root.dir());
    let interrupted = owed.as_ref().map(|(i, _)| *i);
    let reason = if cx.forced(address) {
        Some("forced with --replace".to_string())
    } else if let Some((_, why)) = &owed {
        Some(why.clone())
    } else if !missing.is_empty() {
        Some(format!(
            "database {} does not exist on the live cluster",
            missing
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else if db.system_identifier == crate::bundle::UNKNOWN_IDENTIFIER && record.is_none() {
        // An imported runbook dump: no identity to compare, so it is
        // restored once and the state then records it.
        Some(format!(
            "bundle {bundle_id} was imported from a runbook dump, which does not record its cluster's system_identifier, and was never restored into this cluster"
        ))
    } else if seen.system_identifier != db.system_identifier && record.is_none() {
        Some(format!(
            "the live cluster ({}) is not the one backed up ({}) and bundle {bundle_id} was never restored into it",
            seen.system_identifier, db.system_identifier
        ))
    } else if !seen.short_of_bundle.is_empty() {
        Some(format!(
            "{} of the tables restored from bundle {bundle_id} hold fewer rows than the bundle",
            seen.short_of_bundle.len()
        ))
    } else {
        None
    };
    let mut evidence = evidence;
    if let Some(i) = interrupted {
        evidence.push(format!(
            "run {} started restoring bundle {} at {} and never verified it",
            i.run, i.bundle_id, i.time
        ));
    }
    evidence.extend(seen.short_of_bundle.iter().cloned());
    // Worth a line only when it is not the server's own major.
    if let Some(by) = db.dumped_by.as_deref().filter(|by| {
        pg::version_num(by).map(pg::major_num)
            != pg::version_num(&db.server_version).map(pg::major_num)
    }) {
        evidence.push(format!("dump written by pg_dumpall {by}"));
    }
    let mut v = match reason {
        Some(r) => {
            match restore_compatibility(db, &seen.server_version) {
                Err(e) => {
                    return Err(crate::resources::kind::ResourceError::new(address, e).help(
                        "restore it into a server of that major version or newer (a dump \
                         always loads into a newer one); nothing was changed",
                    ))
                }
                Ok(Some(upgrade)) => evidence.push(upgrade),
                Ok(None) => {}
            }
            dump_intact(cx.bundle, db).map_err(|e| {
                crate::resources::kind::ResourceError::new(address, e)
                    .help("the bundle fails its integrity check: run `imlrecover verify BUNDLE`")
            })?;
            Verdict::new(Action::Restore, r, after)
        }
        None => {
            let why = match record {
                Some(r) => format!(
                    "bundle {} was restored into this cluster at {}",
                    r.bundle_id, r.time
                ),
                None => "the live cluster is the one the bundle was taken from".to_string(),
            };
            Verdict::no_op(why, after)
        }
    };
    v.details = evidence;
    Ok(v)
}

/// The bundle's database record when the state says this very bundle was
/// the last one restored into this very cluster, and every database it
/// holds is there: then the live rows can be held against it.
fn restored_here<'b>(
    address: &Address,
    view: &pg::ClusterView,
    cx: &'b crate::resources::kind::Cx,
) -> Option<&'b crate::bundle::DatabaseRecord> {
    let db = cx
        .bundle
        .manifest
        .database
        .as_ref()
        .filter(|d| &d.address == address)?;
    let last = cx.state.last_restore(&address.to_string())?;
    let all_there = db.fingerprint.keys().all(|d| view.databases.contains(d));
    (last.bundle_id == cx.bundle.name()
        && last.system_identifier == view.identity.system_identifier
        && all_there)
        .then_some(db)
}

/// Tables with fewer rows live than in the bundle (more is newer work).
fn shortfall(
    db: &crate::bundle::DatabaseRecord,
    live: &pg::Fingerprint,
    bundle_id: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, tables) in &db.fingerprint {
        let here = live.databases.get(name);
        for (table, &want) in tables {
            match here.and_then(|t| t.get(table)) {
                Some(&n) if n >= want => {}
                Some(&n) => out.push(format!(
                    "table {table} in database \"{name}\": {want} rows in bundle {bundle_id}, {n} live"
                )),
                None => out.push(format!(
                    "table {table} in database \"{name}\" is missing ({want} rows in bundle {bundle_id})"
                )),
            }
        }
    }
    out
}

/// The dump is read whole before a restore is planned on it: a corrupt
/// bundle must stop the plan, not the restore half-way.
pub(super) fn dump_intact(
    bundle: &crate::bundle::Bundle,
    db: &crate::bundle::DatabaseRecord,
) -> Result<(), String> {
    let file = bundle.open_file(&db.file).map_err(|e| e.to_string())?;
    let (hash, size) = crate::host::fs::hash_reader(file)
        .map_err(|e| format!("cannot read the dump {}: {e}", db.file))?;
    if hash != db.blake3 || size != db.size {
        return Err(format!(
            "the dump {} does not match its manifest hash",
            db.file
        ));
    }
    Ok(())
}
