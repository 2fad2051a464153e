//! `database "x" { superuser, host?, port?, run_as?, databases?, quiesce }`:
//! the whole PostgreSQL cluster as one `pg_dumpall --clean` dump.

use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::{DatabaseRecord, ResourceRecord};
use crate::host::postgres::{self as pg, PgError, PgTarget};
use crate::recipe::{Address, DatabaseSpec};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DatabaseError {
    #[error("{address}: {error}")]
    #[diagnostic(code(imlrecover::database), help("no bundle was written"))]
    Pg {
        address: Address,
        // Boxed: PgError is large and this travels in every capture Result.
        error: Box<PgError>,
    },
    #[error("{address}: the dump was cancelled: it {why}")]
    #[diagnostic(
        code(imlrecover::database_blocked),
        help("a session kept a lock the dump needs; end it (or wait until it is done) and run backup again. No bundle was written")
    )]
    Blocked { address: Address, why: String },
    #[error("{address}: the cluster has no database {missing} (it has: {found})")]
    #[diagnostic(
        code(imlrecover::database_missing),
        help("a bundle must bring back the databases the recipe names; is this the manager's cluster? No bundle was written")
    )]
    MissingDatabase {
        address: Address,
        missing: String,
        found: String,
    },
}

/// How the recipe's block reaches the cluster, with the client programs
/// of the server's own major version: the recipe's `bindir`, else those
/// found from the running server (its socket's lock file, data directory
/// and executable), else the newest installed.
pub fn target(spec: &DatabaseSpec) -> PgTarget {
    let mut t = PgTarget {
        host: spec.host.clone(),
        port: spec.port,
        superuser: spec.superuser.clone(),
        run_as: spec.run_as.clone(),
        bin_dir: spec.bindir.as_ref().map(std::path::PathBuf::from),
    };
    if t.bin_dir.is_none() {
        t.bin_dir = pg::server_client_dir(&t);
    }
    t
}

/// `15.18` of `15.18 (Debian 15.18-0+deb12u1)`.
fn short_version(v: &str) -> &str {
    v.split_whitespace().next().unwrap_or(v)
}

/// A number of `server_version_num` as a version text: 150018 → `15.18`,
/// 90624 → `9.6.24`.
fn version_text(num: u32) -> String {
    if num >= 100_000 {
        format!("{}.{}", num / 10000, num % 10000)
    } else {
        format!("{}.{}.{}", num / 10000, num / 100 % 100, num % 100)
    }
}

/// Why a dump of `db` may or may not go into a live server of
/// `live_version`: `Err` when it was made by (or from) a newer major.
pub fn restore_compatibility(
    db: &crate::bundle::DatabaseRecord,
    live_version: &str,
) -> Result<Option<String>, String> {
    let (Some(live), Some(needs)) = (pg::version_num(live_version), db.loads_into_from()) else {
        return Ok(None);
    };
    let from = short_version(&db.server_version);
    let to = short_version(live_version);
    if pg::major_num(needs) > pg::major_num(live) {
        let by = db
            .dumped_by
            .as_deref()
            .filter(|b| pg::version_num(b) != pg::version_num(&db.server_version))
            .map(|b| format!(" by pg_dumpall {b}"))
            .unwrap_or_default();
        return Err(format!(
            "the dump {} was made from PostgreSQL {from}{by} and needs PostgreSQL {} or newer; \
             the live server is PostgreSQL {to}, into which a newer major's dump is not \
             guaranteed to load (its SQL may use what {to} lacks, and a --clean restore that \
             fails half-way leaves the cluster without its databases)",
            db.file,
            pg::major_of(needs),
        ));
    }
    let source = pg::version_num(&db.server_version).unwrap_or(needs);
    if pg::major_num(source) < pg::major_num(live) {
        return Ok(Some(format!(
            "PostgreSQL {from} → {to}: allowed, a dump loads into the same or a newer major \
             version (as IML 6.1's move from 9.2 to 9.6 did)"
        )));
    }
    Ok(None)
}

/// Streams `pg_dumpall --clean` through parallel gzip into the bundle and
/// records the cluster's identity and the dump's own row counts.
pub fn capture(
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
        crate::printer::eprint(&format!(
            "{} {address}: pg_dumpall {} is newer than the server (PostgreSQL {}): its dump \
             loads only into PostgreSQL {} or newer, not back into this server. Install the \
             server's own client programs (PostgreSQL {}) or set `bindir` in the recipe.\n",
            cx.printer.yellow("warning:"),
            version_text(by),
            short_version(&identity.server_version),
            pg::major_of(by),
            pg::major_of(identity.server_version_num),
        ));
    }
    let mut dump = cx.bundle.create_dump()?;
    let bar = if cx.printer.progress {
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {bytes} of SQL ({bytes_per_sec}, {elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("dumping {address}:"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    // A backup ends nobody's session, but says what it waits for.
    let printer = *cx.printer;
    let watch = pg::LockWatch::report_only(&target, pg::BACKUP_GIVE_UP, move |line| {
        let _ = printer.line(&format!("  {} {line}", printer.yellow("Blocked:")));
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

/// Planning the database: restore when the live cluster is not the one the
/// bundle was taken from and this bundle was never restored into it, when a
/// required database is missing, or when forced with `--replace`.
pub struct DatabaseKind;

#[derive(Debug, serde::Serialize)]
pub struct Observed {
    pub system_identifier: String,
    pub server_version: String,
    pub databases: Vec<String>,
    /// When this cluster was last restored from the bundle being planned:
    /// its tables that hold fewer rows than the bundle (counted live).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_of_bundle: Vec<String>,
}

impl super::kind::Kind for DatabaseKind {
    type Spec = DatabaseSpec;
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        cx: &super::kind::Cx,
    ) -> Result<Observed, super::kind::ResourceError> {
        let target = target(spec);
        let err = |e: PgError| {
            super::kind::ResourceError::new(address, e.to_string())
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

    fn compare(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        seen: &Observed,
        cx: &super::kind::Cx,
    ) -> Result<super::kind::Verdict, super::kind::ResourceError> {
        use super::kind::Verdict;
        use crate::plan::Action;
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
        let interrupted = cx.state.interrupted(&address.to_string());
        let reason = if cx.forced(address) {
            Some("forced with --replace".to_string())
        } else if let Some(i) = interrupted {
            let dir = crate::state::dir(cx.root.dir());
            Some(match crate::apply::lock::holder(&dir) {
                Some(pid) => format!(
                    "the restore of run {} is not verified: it is in progress or was interrupted (imlrecover pid {pid} holds the lock)",
                    i.run
                ),
                None => format!("the restore of run {} was interrupted", i.run),
            })
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
                        return Err(super::kind::ResourceError::new(address, e).help(
                            "restore it into a server of that major version or newer (a dump \
                             always loads into a newer one); nothing was changed",
                        ))
                    }
                    Ok(Some(upgrade)) => evidence.push(upgrade),
                    Ok(None) => {}
                }
                dump_intact(cx.bundle, db).map_err(|e| {
                    super::kind::ResourceError::new(address, e).help(
                        "the bundle fails its integrity check: run `imlrecover verify BUNDLE`",
                    )
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

    /// The runbook's restore, with its traps closed: a safety dump first;
    /// no client left on the databases (quiesce, then terminate the rest);
    /// the dump streamed into psql; only the known harmless errors allowed;
    /// the row counts checked against the bundle; the restore recorded.
    fn apply(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        _step: &crate::plan::Step,
        change: &crate::plan::ResourceChange,
        cx: &super::kind::ApplyCx,
    ) -> Result<super::kind::Applied, super::kind::ResourceError> {
        use super::kind::{Applied, ResourceError};
        let err = |what: &str, e: PgError| ResourceError::new(address, format!("{what}: {e}"));
        let db = cx
            .bundle
            .manifest
            .database
            .as_ref()
            .filter(|d| &d.address == address)
            .ok_or_else(|| {
                ResourceError::new(address, "the bundle holds no dump for this database")
            })?;
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
            let mut dumps = cx.safety_dumps.borrow_mut();
            let i = dumps.iter().position(|d| &d.address == address);
            i.map(|i| dumps.remove(i))
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
        {
            let mut state = cx.state.borrow_mut();
            state.start(crate::state::StartedRestore {
                address: address.to_string(),
                bundle_id: cx.bundle.name(),
                run: crate::apply::run_name(cx.run_dir),
                time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            });
            state
                .save(cx.root.dir())
                .map_err(|e| ResourceError::new(address, format!("{e}; nothing was restored")))?;
        }

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
}

/// The bundle's database record when the state says this very bundle was
/// the last one restored into this very cluster, and every database it
/// holds is there: then the live rows can be held against it.
fn restored_here<'b>(
    address: &Address,
    view: &pg::ClusterView,
    cx: &'b super::kind::Cx,
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

/// Ends the sessions that block ours (a client holding a table lock) and
/// says so at once; see [`pg::LockWatch`].
fn watch_locks(target: &PgTarget, printer: crate::printer::Printer) -> pg::LockWatch {
    pg::LockWatch::start(target, move |line| {
        let _ = printer.line(&format!("      {} {line}", printer.yellow("Blocked:")));
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
pub fn prepare(address: &Address, spec: &DatabaseSpec, cx: &super::kind::ApplyCx) {
    let target = target(spec);
    let run_dir = cx.run_dir.to_path_buf();
    let printer = *cx.printer;
    let handle = std::thread::Builder::new()
        .name("safety-dump".into())
        .spawn(move || take_safety_dump(&target, &run_dir, printer, |_| {}));
    // Without a thread the restore step takes the dump itself.
    if let Ok(h) = handle {
        cx.safety_dumps.borrow_mut().push(SafetyDump {
            address: address.clone(),
            handle: Some(h),
        });
    }
}

/// The dump is read whole before a restore is planned on it: a corrupt
/// bundle must stop the plan, not the restore half-way.
fn dump_intact(
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
