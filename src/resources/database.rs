//! `database "x" { superuser, host?, port?, run_as?, databases?, quiesce }`:
//! the whole PostgreSQL cluster as one `pg_dumpall --clean` dump.

use super::{CaptureCx, CaptureError, Captured};
use crate::recipe::{Address, DatabaseSpec};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DatabaseError {
    #[error("{address}: database capture is not available in this build")]
    Unavailable { address: Address },
}

pub fn capture(
    _cx: &mut CaptureCx,
    address: &Address,
    _spec: &DatabaseSpec,
) -> Result<Captured, CaptureError> {
    Err(DatabaseError::Unavailable {
        address: address.clone(),
    }
    .into())
}

/// Planning the database: restore when the live cluster is not the one the
/// bundle was taken from and this bundle was never restored into it, when a
/// required database is missing, or when forced with `--replace`.
pub struct DatabaseKind;

#[derive(Debug, serde::Serialize)]
pub struct Observed {
    pub system_identifier: String,
    pub server_version: String,
    pub databases: Vec<String>,
}

impl super::kind::Kind for DatabaseKind {
    type Spec = DatabaseSpec;
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        _cx: &super::kind::Cx,
    ) -> Result<Observed, super::kind::ResourceError> {
        let target = crate::host::postgres::PgTarget::from_spec(spec);
        let err = |e: crate::host::postgres::PgError| {
            super::kind::ResourceError::new(address, e.to_string())
                .help("is PostgreSQL running, and do host/port/run_as in the recipe point at it? Nothing was changed")
        };
        let id = crate::host::postgres::cluster_identity(&target).map_err(err)?;
        let databases = crate::host::postgres::list_databases(&target).map_err(err)?;
        Ok(Observed {
            system_identifier: id.system_identifier,
            server_version: id.server_version,
            databases,
        })
    }

    fn compare(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        seen: &Observed,
        cx: &super::kind::Cx,
    ) -> Result<super::kind::Verdict, super::kind::ResourceError> {
        use super::kind::Verdict;
        use crate::plan::Action;
        let Some(db) = cx.bundle.manifest.database.as_ref().filter(|d| &d.address == address) else {
            return Ok(Verdict::no_op("not in the bundle (it was made from another recipe)", serde_json::Value::Null));
        };
        let after = serde_json::json!({
            "system_identifier": db.system_identifier,
            "server_version": db.server_version,
            "dump": db.file,
            "databases": db.databases,
        });
        let bundle_id = cx.bundle.name();
        let record = cx.state.restored(&address.to_string(), &bundle_id, &seen.system_identifier);
        let missing: Vec<&String> = spec.databases.iter().filter(|d| !seen.databases.contains(d)).collect();
        let evidence = vec![
            format!("live cluster:   system_identifier {} (PostgreSQL {})", seen.system_identifier, seen.server_version),
            format!("bundle cluster: system_identifier {} (PostgreSQL {}), dump {}", db.system_identifier, db.server_version, db.file),
            format!(
                "bundle holds {} tables, {} rows",
                db.fingerprint.values().map(|t| t.len()).sum::<usize>(),
                db.fingerprint.values().flat_map(|t| t.values()).sum::<u64>()
            ),
        ];
        let reason = if cx.forced(address) {
            Some("forced with --replace".to_string())
        } else if !missing.is_empty() {
            Some(format!(
                "database {} does not exist on the live cluster",
                missing.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            ))
        } else if seen.system_identifier != db.system_identifier && record.is_none() {
            Some(format!(
                "the live cluster ({}) is not the one backed up ({}) and bundle {bundle_id} was never restored into it",
                seen.system_identifier, db.system_identifier
            ))
        } else {
            None
        };
        let mut v = match reason {
            Some(r) => {
                dump_intact(cx.bundle, db).map_err(|e| {
                    super::kind::ResourceError::new(address, e)
                        .help("the bundle fails its integrity check: run `imlrecover verify BUNDLE`")
                })?;
                Verdict::new(Action::Restore, r, after)
            }
            None => {
                let why = match record {
                    Some(r) => format!("bundle {} was restored into this cluster at {}", r.bundle_id, r.time),
                    None => "the live cluster is the one the bundle was taken from".to_string(),
                };
                Verdict::no_op(why, after)
            }
        };
        v.details = evidence;
        Ok(v)
    }
}

/// The dump is read whole before a restore is planned on it: a corrupt
/// bundle must stop the plan, not the restore half-way.
fn dump_intact(bundle: &crate::bundle::Bundle, db: &crate::bundle::DatabaseRecord) -> Result<(), String> {
    let file = bundle.open_file(&db.file).map_err(|e| e.to_string())?;
    let (hash, size) = crate::host::fs::hash_reader(file).map_err(|e| format!("cannot read the dump {}: {e}", db.file))?;
    if hash != db.blake3 || size != db.size {
        return Err(format!("the dump {} does not match its manifest hash", db.file));
    }
    Ok(())
}
