//! Capturing a database: the whole cluster as one `pg_dumpall --clean`
//! dump, streamed through parallel gzip into the bundle.

use super::{short_version, target, version_text, DatabaseError, DatabaseSpec};
use crate::bundle::{DatabaseRecord, ResourceRecord};
use crate::host::postgres::{self as pg};
use crate::recipe::Address;
use crate::resources::{CaptureCx, CaptureError, Captured};
use crate::views::progress::Progress;

/// Streams `pg_dumpall --clean` through parallel gzip into the bundle and
/// records the cluster's identity and the dump's own row counts.
pub(super) fn capture(
    cx: &mut CaptureCx,
    address: &Address,
    spec: &DatabaseSpec,
) -> Result<Captured, CaptureError> {
    let pg_err = |error| DatabaseError::Pg {
        address: address.clone(),
        error: Box::new(error),
    };
    let target = target(spec);
    let identity = pg::cluster_identity(&target).map_err(pg_err)?;
    let dumped_by = pg::client_version(&target, "pg_dumpall");
    if let Some(by) = dumped_by.filter(|by| {
        pg::major_num(*by) > pg::major_num(identity.server_version_num)
            && identity.server_version_num != 0
    }) {
        // Still a good backup for this server's upgrade, not for itself.
        cx.printer.warning(&format!(
            "{address}: pg_dumpall {} is newer than the server (PostgreSQL {}): its dump \
             loads only into PostgreSQL {} or newer, not back into this server. Install the \
             server's own client programs (PostgreSQL {}) or set `bindir` in the recipe.",
            version_text(by),
            short_version(&identity.server_version),
            pg::major_of(by),
            pg::major_of(identity.server_version_num),
        ));
    }
    let mut dump = cx.bundle.create_dump()?;
    let bar = cx.printer.dump_spinner(&format!("dumping {address}:"));
    // A backup ends nobody's session, but says what it waits for.
    let printer = *cx.printer;
    let watch = pg::LockWatch::report_only(&target, pg::BACKUP_GIVE_UP, move |line| {
        printer.blocked("  ", line);
    });
    let stats = pg::dump_all(&target, dump.writer(), |sql| bar.set_position(sql));
    let watched = watch.finish();
    bar.finish_and_clear();
    let stats = match (stats, watched.gave_up) {
        (Ok(s), _) => s,
        (Err(_), Some(why)) => {
            return Err(DatabaseError::Blocked {
                address: address.clone(),
                why,
            }
            .into())
        }
        (Err(e), None) => return Err(pg_err(e).into()),
    };
    let name = dump.name.clone();
    let (blake3, size) = dump.finish()?;
    let fingerprint = stats.fingerprint.databases;
    let missing: Vec<&str> = spec
        .databases
        .iter()
        .filter(|d| !fingerprint.contains_key(*d))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(DatabaseError::MissingDatabase {
            address: address.clone(),
            missing: missing.join(", "),
            found: fingerprint.keys().cloned().collect::<Vec<_>>().join(", "),
        }
        .into());
    }
    cx.bundle.push_resource(ResourceRecord::Database {
        address: address.clone(),
    });
    cx.bundle.set_database(DatabaseRecord {
        address: address.clone(),
        file: name,
        size,
        blake3,
        sql_size: stats.sql_bytes,
        system_identifier: identity.system_identifier,
        server_version: identity.server_version,
        dumped_by: dumped_by.map(version_text),
        databases: spec.databases.clone(),
        fingerprint,
    });
    // The dump is summarised from the manifest's database record.
    Ok(Captured::default())
}
