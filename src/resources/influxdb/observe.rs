//! Planning an InfluxDB resource: the live server's databases and counts
//! against what the bundle recorded at backup.

use super::server::Server;
use super::{Counts, InfluxRecord, InfluxdbSpec};
use crate::bundle::{Manifest, ResourceRecord};
use crate::host::service::{ServiceError, Services, Status};
use crate::plan::Action;
use crate::recipe::{Address, Recipe};
use crate::resources::kind::{Cx, ResourceError, Verdict};
use std::collections::BTreeMap;

#[derive(Debug, serde::Serialize)]
pub struct Observed {
    pub version: String,
    /// The recipe's databases as the live server holds them (counted up to
    /// the bundle's `counted_until`); `null`: it has no such database.
    pub databases: BTreeMap<String, Option<Counts>>,
}

/// The reason of a restore forced with `--replace` (apply tells it apart
/// from an interrupted one by it).
pub const FORCED: &str = "forced with --replace";

/// The bundle's record of this resource.
pub fn record<'m>(m: &'m Manifest, address: &Address) -> Option<&'m InfluxRecord> {
    m.resources.iter().find_map(|r| match r {
        ResourceRecord::Influxdb { address: a, record } if a == address => Some(record),
        _ => None,
    })
}

/// The InfluxDB service must be running: `Err` says what it is instead.
pub fn service_running(
    address: &Address,
    spec: &InfluxdbSpec,
    recipe: &Recipe,
    services: &Services,
) -> Result<(), ResourceError> {
    let name = recipe
        .resource(&spec.service)
        .and_then(crate::resources::registry::service_name)
        .unwrap_or(&spec.service.name)
        .to_string();
    let help = format!(
        "start it (the recipe's {} must be running before {address}), or check the recipe; nothing was changed",
        spec.service
    );
    match services.current(&name) {
        Ok(Status::Running) => Ok(()),
        Ok(Status::Stopped) => Err(ResourceError::new(
            address,
            format!("the InfluxDB service {name} ({}) is not running", spec.service),
        )
        .help(help)),
        Err(ServiceError::NotInstalled { .. }) => Err(ResourceError::new(
            address,
            format!("the InfluxDB service {name} ({}) is not installed", spec.service),
        )
        .help(help)),
        Err(e) => Err(ResourceError::new(address, e.to_string()).help(help)),
    }
}

/// The live counts of the recipe's databases.
pub fn live(
    address: &Address,
    spec: &InfluxdbSpec,
    until: i64,
) -> Result<Observed, ResourceError> {
    let server = Server::of(spec);
    let err = |m: String| {
        ResourceError::new(address, m).help(
            "is InfluxDB running, and do `http`/`rpc` in the recipe name its addresses? Nothing was changed",
        )
    };
    server.reachable().map_err(err)?;
    let live = server.databases().map_err(|e| err(e.to_string()))?;
    let mut databases = BTreeMap::new();
    for db in &spec.databases {
        let counts = if live.contains(db) {
            Some(server.counts(db, until).map_err(|e| err(e.to_string()))?)
        } else {
            None
        };
        databases.insert(db.clone(), counts);
    }
    Ok(Observed {
        version: super::server::version(&server),
        databases,
    })
}

pub(super) fn observe(
    address: &Address,
    spec: &InfluxdbSpec,
    cx: &Cx,
) -> Result<Observed, ResourceError> {
    service_running(address, spec, cx.recipe, cx.services)?;
    let until = record(&cx.bundle.manifest, address)
        .map(|r| r.counted_until)
        .unwrap_or_else(super::capture::now_ns);
    live(address, spec, until)
}

/// The databases to restore, each with why: missing, or short of the
/// bundle in any count (more is newer work, as for `database`).
pub fn differences(
    record: &InfluxRecord,
    seen: &BTreeMap<String, Option<Counts>>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (db, want) in &record.databases {
        let Some(want) = want else {
            continue; // absent at backup: nothing to bring back
        };
        match seen.get(db).copied().flatten() {
            None => out.push((
                db.clone(),
                format!("database {db} does not exist live (bundle: {want})"),
            )),
            Some(live) if live.short_of(want) => out.push((
                db.clone(),
                format!("database {db}: live {live}; bundle {want}"),
            )),
            Some(_) => {}
        }
    }
    out
}

pub(super) fn compare(
    address: &Address,
    _spec: &InfluxdbSpec,
    seen: &Observed,
    cx: &Cx,
) -> Result<Verdict, ResourceError> {
    let Some(record) = record(&cx.bundle.manifest, address) else {
        return Ok(Verdict::no_op(
            cx.bundle.manifest.why_missing(address),
            serde_json::Value::Null,
        ));
    };
    let after = serde_json::to_value(record).unwrap_or_default();
    let present: Vec<&String> = record
        .databases
        .iter()
        .filter(|(_, c)| c.is_some())
        .map(|(d, _)| d)
        .collect();
    let listed = present
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let diffs = differences(record, &seen.databases);
    let mut details: Vec<String> = diffs.iter().map(|(_, d)| d.clone()).collect();
    for (db, c) in &record.databases {
        if c.is_none() {
            details.push(format!("database {db} was absent at backup (optional): left alone"));
        }
    }
    let owed = cx.state.owed(&address.to_string(), cx.root.dir());
    if let Some((i, _)) = &owed {
        details.push(format!(
            "run {} started restoring bundle {} at {} and never checked its counts",
            i.run, i.bundle_id, i.time
        ));
    }
    let v = if cx.forced(address) {
        Verdict::new(Action::Restore, FORCED, after)
    } else if let Some((_, why)) = owed {
        Verdict::new(Action::Restore, why, after)
    } else if diffs.is_empty() {
        Verdict::no_op(
            format!("the live databases hold what the bundle holds ({listed})"),
            after,
        )
    } else if present
        .iter()
        .all(|d| seen.databases.get(*d).is_some_and(|c| c.is_none()))
    {
        // A restore onto nothing, as the database kind's onto a missing
        // database: its steps and its mark say the same.
        Verdict::new(
            Action::Restore,
            format!("InfluxDB has none of the bundle's databases ({listed})"),
            after,
        )
    } else {
        let names: Vec<&str> = diffs.iter().map(|(d, _)| d.as_str()).collect();
        Verdict::new(
            Action::Restore,
            format!(
                "database{} {} differ{} from the bundle",
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                if names.len() == 1 { "s" } else { "" }
            ),
            after,
        )
    };
    Ok(Verdict { details, ..v })
}
