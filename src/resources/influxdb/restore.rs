//! Restoring InfluxDB databases without losing the live copy first: each
//! database the bundle brings back is restored beside the live one as
//! `<db>_imlrecover_tmp` and its counts checked; only then is the live one
//! dropped and the bundle's restored under its own name, checked, and the
//! temporary copy dropped. If a step fails, the live database or the
//! checked temporary copy still holds the data (and the bundle does).

use super::observe::{differences, live, record, service_running, FORCED};
use super::server::Server;
use super::{Counts, InfluxRecord, InfluxdbSpec};
use crate::bundle::{Bundle, EntryKind};
use crate::recipe::Address;
use crate::resources::kind::{Applied, ApplyCx, ResourceError};
use std::io::Write;
use std::path::Path;

/// The temporary copy of `db` a restore makes first.
pub fn tmp_name(db: &str) -> String {
    format!("{db}_imlrecover_tmp")
}

/// Copies the bundle's backup files of `db` into `dir` (plaintext, their
/// hashes checked on the way).
pub fn extract(
    bundle: &Bundle,
    address: &Address,
    db: &str,
    dir: &Path,
) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let prefix = format!("{}/", super::entry_path(address, db, None));
    let mut n = 0;
    for e in bundle.manifest.entries.iter().filter(|e| {
        &e.address == address && e.kind == EntryKind::File && e.path.starts_with(&prefix)
    }) {
        let name = &e.path[prefix.len()..];
        let (Some(rel), Some(want)) = (&e.file, &e.blake3) else {
            return Err(format!("the manifest entry {} lacks its file or hash", e.path));
        };
        let mut src = bundle.open_file(rel).map_err(|err| err.to_string())?;
        let dest = dir.join(name);
        let out = std::fs::File::create(&dest)
            .map_err(|err| format!("cannot write {}: {err}", dest.display()))?;
        let mut w = HashWrite(out, blake3::Hasher::new());
        std::io::copy(&mut src, &mut w).map_err(|err| format!("cannot copy {rel}: {err}"))?;
        let got = w.1.finalize().to_hex().to_string();
        if &got != want {
            return Err(format!(
                "the bundle's copy of {} ({rel}) does not match its manifest hash",
                e.path
            ));
        }
        n += 1;
    }
    if n == 0 {
        return Err(format!("the bundle holds no backup files of database {db}"));
    }
    Ok(n)
}

struct HashWrite(std::fs::File, blake3::Hasher);

impl Write for HashWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `db` on `server` holds at least what the bundle recorded.
pub fn check_counts(
    server: &Server,
    db: &str,
    record: &InfluxRecord,
    want: &Counts,
) -> Result<Counts, String> {
    let got = server
        .counts_settled(db, record.counted_until)
        .map_err(|e| e.to_string())?;
    if got.short_of(want) {
        return Err(format!("database {db} holds {got}; the bundle {want}"));
    }
    Ok(got)
}

/// Restores one database as described at the top; a live one is first
/// backed up into `safety` (the run directory), as the database's safety dump.
fn restore_one(
    server: &Server,
    record: &InfluxRecord,
    db: &str,
    want: &Counts,
    dir: &Path,
    safety: &Path,
) -> Result<String, String> {
    let live = server.databases().map_err(|e| e.to_string())?;
    let tmp = tmp_name(db);
    let has_tmp = live.contains(&tmp);
    if live.contains(&db.to_string()) {
        if has_tmp {
            // A leftover of an earlier run; the live database is there.
            server.drop_database(&tmp).map_err(|e| e.to_string())?;
        }
        server.restore(db, Some(&tmp), dir)?;
        check_counts(server, &tmp, record, want).map_err(|e| {
            format!("{e}: the restored copy {tmp} is short; the live {db} was left as it was")
        })?;
        server.backup(db, safety).map_err(|e| {
            format!("{e}: the safety backup of the live {db} failed; it was left as it was (and {tmp} holds the bundle's copy)")
        })?;
        server.drop_database(db).map_err(|e| {
            format!("{e} (the live {db} and the checked copy {tmp} are both there)")
        })?;
        crate::fault::at("influxdb-dropped");
    }
    server.restore(db, None, dir).map_err(|e| {
        if live.contains(&db.to_string()) || has_tmp {
            format!("{e}: database {db} is gone; {tmp} holds the bundle's data")
        } else {
            e
        }
    })?;
    let got = check_counts(server, db, record, want)?;
    crate::fault::at("influxdb-restored");
    if server.databases().map_err(|e| e.to_string())?.contains(&tmp) {
        server.drop_database(&tmp).map_err(|e| e.to_string())?;
    }
    Ok(format!("{db}: {got}"))
}

pub(super) fn apply(
    address: &Address,
    spec: &InfluxdbSpec,
    change: &crate::plan::ResourceChange,
    cx: &ApplyCx,
) -> Result<Applied, ResourceError> {
    service_running(address, spec, cx.recipe, cx.services)?;
    let Some(record) = record(&cx.bundle.manifest, address) else {
        return Err(ResourceError::new(
            address,
            "the bundle holds no InfluxDB backup for this resource",
        ));
    };
    let seen = live(address, spec, record.counted_until)?;
    let mut todo: Vec<String> = differences(record, &seen.databases)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let interrupted = cx.state.borrow().interrupted(&address.to_string()).cloned();
    if let Some(i) = interrupted.filter(|_| todo.is_empty() && change.reason != FORCED) {
        // Killed after its last restore, before it recorded the check.
        return finish_interrupted(address, record, &Server::of(spec), &i, cx);
    }
    if todo.is_empty() {
        // Forced (`--replace`): every database the bundle holds.
        todo = record
            .databases
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(d, _)| d.clone())
            .collect();
    }
    let server = Server::of(spec);
    let work = cx.run_dir.join(format!("influxdb-{}", address.name));
    let mut details = Vec::new();
    let mut started = false;
    let result = (|| -> Result<(), ResourceError> {
        for db in &todo {
            let Some(Some(want)) = record.databases.get(db) else {
                continue;
            };
            let dir = work.join(db);
            let fail = |m: String| {
                ResourceError::new(address, m).help(
                    "fix the cause and run apply again: the bundle still holds the backup, and the message says where the data is now",
                )
            };
            extract(cx.bundle, address, db, &dir).map_err(fail)?;
            let safety = cx
                .run_dir
                .join(format!("influxdb-safety-{}", address.name))
                .join(db);
            if !started {
                owe(address, cx).map_err(fail)?;
                started = true;
            }
            let line = restore_one(&server, record, db, want, &dir, &safety).map_err(fail)?;
            details.push(format!("restored {line}"));
            if safety.exists() {
                details.push(format!(
                    "the live {db} before it: {} (influxd restore -portable)",
                    safety.display()
                ));
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    settled(address, cx)?;
    Ok(Applied {
        message: format!(
            "restored InfluxDB database{} {}, counts checked",
            if todo.len() == 1 { "" } else { "s" },
            todo.join(", ")
        ),
        warnings: Vec::new(),
        details,
    })
}

/// Records in the state file, before the first change to InfluxDB, that
/// this run restores `address`: a kill or a failed check leaves the record,
/// and the next plan owes the restore until its counts are checked.
fn owe(address: &Address, cx: &ApplyCx) -> Result<(), String> {
    cx.state
        .borrow_mut()
        .owe(
            cx.root.dir(),
            &address.to_string(),
            cx.bundle.name(),
            crate::apply::run_name(cx.run_dir),
        )
        .map_err(|e| format!("{e}; nothing was restored"))
}

/// Every database's counts checked: the restore is no longer owed.
fn settled(address: &Address, cx: &ApplyCx) -> Result<(), ResourceError> {
    let mut state = cx.state.borrow_mut();
    if state.interrupted(&address.to_string()).is_some() {
        state.started.retain(|s| s.address != address.to_string());
        state
            .save(cx.root.dir())
            .map_err(|e| ResourceError::new(address, e.to_string()))?;
    }
    Ok(())
}

/// An interrupted restore whose databases all hold the bundle's counts
/// (killed after the last restore, before it was recorded): checked again,
/// its leftover copies dropped, and no longer owed. Nothing is restored.
fn finish_interrupted(
    address: &Address,
    record: &InfluxRecord,
    server: &Server,
    i: &crate::state::StartedRestore,
    cx: &ApplyCx,
) -> Result<Applied, ResourceError> {
    let fail = |m: String| {
        ResourceError::new(address, m)
            .help("fix the cause and run apply again: the restore stays owed until its counts check")
    };
    let live = server.databases().map_err(|e| fail(e.to_string()))?;
    let mut details = Vec::new();
    let mut checked = Vec::new();
    for (db, want) in &record.databases {
        let Some(want) = want else { continue };
        let got = check_counts(server, db, record, want).map_err(fail)?;
        details.push(format!("checked {db}: {got}"));
        checked.push(db.as_str());
        let tmp = tmp_name(db);
        if live.contains(&tmp) {
            server.drop_database(&tmp).map_err(|e| fail(e.to_string()))?;
            details.push(format!("dropped the leftover copy {tmp}"));
        }
    }
    settled(address, cx)?;
    Ok(Applied {
        message: format!(
            "finished the interrupted restore of run {}: {} hold the bundle's counts",
            i.run,
            checked.join(", ")
        ),
        warnings: Vec::new(),
        details,
    })
}
