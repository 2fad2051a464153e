//! Restoring a database: the safety dump (started ahead by `prepare`),
//! then the bundle's dump streamed into the live cluster.

use super::observe::dump_intact;
use super::{restore_compatibility, target, DatabaseSpec};
use crate::host::postgres::{self as pg, PgError, PgTarget};
use crate::recipe::Address;
use crate::views::progress::Progress;

/// The runbook's restore, with its traps closed: a safety dump first;
/// no client left on the databases (quiesce, then terminate the rest);
/// the dump streamed into psql; only the known harmless errors allowed;
/// the row counts checked against the bundle; the restore recorded.
pub(super) fn apply(
    address: &Address,
    spec: &DatabaseSpec,
    _step: &crate::plan::Step,
    change: &crate::plan::ResourceChange,
    cx: &crate::resources::kind::ApplyCx,
) -> Result<crate::resources::kind::Applied, crate::resources::kind::ResourceError> {
    use crate::resources::kind::{Applied, ResourceError};
    let err = |what: &str, e: PgError| ResourceError::new(address, format!("{what}: {e}"));
    let db = cx
        .bundle
        .manifest
        .database
        .as_ref()
        .filter(|d| &d.address == address)
        .ok_or_else(|| ResourceError::new(address, "the bundle holds no dump for this database"))?;
    dump_intact(cx.bundle, db).map_err(|e| ResourceError::new(address, e))?;
    // The plan refuses a dump of a newer major; a saved plan is checked
    // again against the server it observed, before the safety dump.
    if let Some(live) = change.before.get("server_version").and_then(|v| v.as_str()) {
        restore_compatibility(db, live)
            .map_err(|e| ResourceError::new(address, e).help("nothing was restored"))?;
    }
    let target = target(spec);
    let mut applied = Applied::default();

    // 1. Never lose the only copy: the live cluster, as it is now
    // (usually already taken on a thread while the file steps ran).
    let pending = {
        let mut prepared = cx.prepared.borrow_mut();
        let i = prepared.iter().position(|p| {
            p.downcast_ref::<SafetyDump>()
                .is_some_and(|d| &d.address == address)
        });
        i.and_then(|i| prepared.remove(i).downcast::<SafetyDump>().ok())
    };
    let safety = match pending {
        Some(d) => d.wait(),
        None => {
            let bar = cx.printer.bytes_bar(None, "safety dump");
            let r = take_safety_dump(&target, cx.run_dir, *cx.printer, |n| bar.set_position(n));
            bar.finish_and_clear();
            r
        }
    }
    .map_err(|e| ResourceError::new(address, e))?;
    let safety_path = safety.path;
    applied.details.push(format!(
        "safety dump of the live cluster: {} ({} of SQL)",
        safety_path.display(),
        indicatif::HumanBytes(safety.sql_bytes)
    ));

    // 2. Nothing may stay connected: DROP DATABASE would fail and psql
    // would still exit 0 with the old data in place. terminate_backends
    // ends every client session (a backend of ours may outlive its psql
    // for a moment) and waits until they are gone; a client may
    // reconnect meanwhile, so go again until a pass finds none.
    let mut ended: Vec<pg::Backend> = Vec::new();
    let mut clear = false;
    for _ in 0..50 {
        let gone = pg::terminate_backends(&target, &[])
            .map_err(|e| err("cannot end the sessions on the cluster", e))?;
        if gone.is_empty() {
            clear = true;
            break;
        }
        for b in gone {
            if !ended.iter().any(|e| e.pid == b.pid) {
                ended.push(b);
            }
        }
    }
    if !clear {
        return Err(ResourceError::new(
            address,
            format!(
                "clients keep connecting to the cluster ({} sessions ended, new ones came); nothing was restored",
                ended.len()
            ),
        )
        .help("stop what connects (add its service to the database's `quiesce` list), then run apply again"));
    }
    for b in &ended {
        applied.details.push(format!("ended session: {b}"));
    }

    // 3. From the first statement on, the restore is owed until verified:
    // a kill or a lost server leaves this record for the next plan.
    cx.state
        .borrow_mut()
        .owe(
            cx.root.dir(),
            &address.to_string(),
            cx.bundle.name(),
            crate::apply::run_name(cx.run_dir),
        )
        .map_err(|e| ResourceError::new(address, format!("{e}; nothing was restored")))?;

    // 4. Stream the dump into psql, reading every message it prints.
    let file = cx
        .bundle
        .open_file(&db.file)
        .map_err(|e| ResourceError::new(address, format!("cannot open the dump: {e}")))?;
    let bar = cx.printer.bytes_bar(Some(db.size), "restore");
    // The loop above just found no session left: that was the check.
    let options = pg::RestoreOptions {
        allow_connected_clients: true,
        ..pg::RestoreOptions::default()
    };
    let watch = watch_locks(&target, *cx.printer);
    let report = pg::restore_with(&target, file, &options, |n| {
        bar.set_position(n);
        crate::fault::restore_progress(n);
    });
    bar.finish_and_clear();
    let watched = watch.finish();
    let report = report.map_err(|e| {
        ResourceError::new(
            address,
            format!("the restore failed: {e}{}", gave_up(&watched)),
        )
        .help(format!(
            "the cluster may be partly restored; the safety dump {} holds it as it was (zcat it into psql to go back), or fix the cause and run apply again",
            safety_path.display()
        ))
    })?;
    for a in report.allowed_messages() {
        applied
            .details
            .push(format!("harmless, as the runbook says: {a}"));
    }
    for w in &report.warnings {
        applied.warnings.push(format!("psql: {w}"));
    }

    // 5. Trust rows, not exit codes: restore() compared the live cluster
    // with the dump's own row counts; those must be the bundle's.
    let expected = pg::Fingerprint {
        databases: db.fingerprint.clone(),
    };
    let diffs: Vec<String> = pg::compare(&expected, &report.dump_fingerprint)
        .into_iter()
        .map(|d| d.to_string())
        .collect();
    let identity = report.identity.clone().filter(|_| report.verified);
    let (true, Some(id)) = (diffs.is_empty(), identity) else {
        return Err(ResourceError::new(
            address,
            format!(
                "the restored cluster does not match the bundle: {}",
                if diffs.is_empty() {
                    "it was not verified".to_string()
                } else {
                    diffs.join("; ")
                }
            ),
        )
        .help(format!(
            "psql's exit status is not trusted; the safety dump {} holds the cluster as it was",
            safety_path.display()
        )));
    };

    // 6. Verified: remember it, so the next plan shows no change.
    let mut state = cx.state.borrow_mut();
    state.record(crate::state::RestoreRecord {
        address: address.to_string(),
        bundle_id: cx.bundle.name(),
        system_identifier: id.system_identifier,
        time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    state
        .save(cx.root.dir())
        .map_err(|e| ResourceError::new(address, e.to_string()))?;
    applied.message = format!(
        "restored {} ({} tables, {} rows verified)",
        db.file,
        expected.table_count(),
        expected.total_rows()
    );
    Ok(applied)
}

/// Ends the sessions that block ours (a client holding a table lock) and
/// says so at once; see [`pg::LockWatch`].
fn watch_locks(target: &PgTarget, printer: crate::printer::Printer) -> pg::LockWatch {
    pg::LockWatch::start(target, move |line| {
        printer.blocked("      ", line);
    })
}

fn gave_up(w: &pg::WatchReport) -> String {
    w.gave_up
        .as_ref()
        .map(|why| format!(" (cancelled: it {why})"))
        .unwrap_or_default()
}

/// A safety dump on disk, complete and synced.
pub struct SafetyFile {
    pub path: std::path::PathBuf,
    pub sql_bytes: u64,
}

/// `pg_dumpall` of the live cluster into the run directory, written under a
/// `.partial` name and renamed only once complete and synced, so a crash
/// never leaves a truncated dump that looks whole.
fn take_safety_dump(
    target: &PgTarget,
    run_dir: &std::path::Path,
    printer: crate::printer::Printer,
    progress: impl FnMut(u64),
) -> Result<SafetyFile, String> {
    let stamp = crate::bundle::Stamp::new(std::time::SystemTime::now());
    let path = run_dir.join(format!("safety-{}", stamp.dump_name()));
    let partial = run_dir.join(format!("safety-{}.partial", stamp.dump_name()));
    let cannot = |what: &str, e: &dyn std::fmt::Display| {
        format!(
            "cannot {what} the safety dump {}: {e}; nothing was restored",
            path.display()
        )
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|e| cannot("create", &e))?;
    let mut out = std::io::BufWriter::new(file);
    let watch = watch_locks(target, printer);
    let stats = pg::dump_all(target, &mut out, progress);
    let watched = watch.finish();
    let stats = stats.map_err(|e| {
        format!(
            "the safety dump of the live cluster failed, nothing was restored: {e}{}",
            gave_up(&watched)
        )
    })?;
    std::io::Write::flush(&mut out)
        .and_then(|()| out.get_ref().sync_all())
        .and_then(|()| std::fs::rename(&partial, &path))
        .and_then(|()| crate::host::atomic::sync_dir(run_dir))
        .map_err(|e| cannot("write", &e))?;
    Ok(SafetyFile {
        path,
        sql_bytes: stats.sql_bytes,
    })
}

/// A safety dump being taken on its own thread, started by
/// [`prepare`] as soon as nothing before the restore can change the
/// cluster any more, so it overlaps the file and certificate steps.
/// Dropping it waits for the thread: no dump is left half-written by us.
pub struct SafetyDump {
    address: Address,
    handle: Option<std::thread::JoinHandle<Result<SafetyFile, String>>>,
}

impl SafetyDump {
    fn wait(mut self) -> Result<SafetyFile, String> {
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the safety dump's thread panicked; nothing was restored".into()),
            None => Err("the safety dump was already collected".into()),
        }
    }
}

impl Drop for SafetyDump {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts the safety dump of a database about to be restored.
pub(super) fn prepare(
    address: &Address,
    spec: &DatabaseSpec,
    cx: &crate::resources::kind::ApplyCx,
) {
    let target = target(spec);
    let run_dir = cx.run_dir.to_path_buf();
    let printer = *cx.printer;
    let handle = std::thread::Builder::new()
        .name("safety-dump".into())
        .spawn(move || take_safety_dump(&target, &run_dir, printer, |_| {}));
    // Without a thread the restore step takes the dump itself.
    if let Ok(h) = handle {
        cx.prepared.borrow_mut().push(Box::new(SafetyDump {
            address: address.clone(),
            handle: Some(h),
        }));
    }
}
