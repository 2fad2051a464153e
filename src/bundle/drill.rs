//! `verify --drill`: the runbook says "test these processes"; this does it.
//! The dump is restored with psql into a throwaway cluster (its own initdb,
//! socket and port; stopped and deleted afterwards, also on failure and on
//! Ctrl-C), psql's stderr may hold only the known harmless errors, and the
//! restored row counts must equal the manifest's fingerprint.

use super::verify::{Problem, ProblemKind};
use super::{Bundle, MANIFEST};
use crate::host::postgres::{self as pg, TempCluster};
use crate::printer::Printer;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

/// On success a one-line summary; otherwise every problem found.
pub fn drill(bundle: &Bundle, printer: &Printer) -> Result<String, Vec<Problem>> {
    let started = Instant::now();
    let Some(db) = &bundle.manifest.database else {
        return Err(vec![problem(
            MANIFEST,
            "the bundle has no database dump to restore (the recipe declares no `database`)",
        )]);
    };
    let file = bundle
        .open_file(&db.file)
        .map_err(|e| vec![problem(&db.file, format!("cannot open the dump: {e}"))])?;

    super::interrupt::install();
    let server_dir = drill_server(db).map_err(|e| vec![problem(&db.file, e)])?;
    let mut cluster = TempCluster::start_with(server_dir.as_deref()).map_err(|e| {
        vec![problem(
            &db.file,
            format!("cannot start a throwaway PostgreSQL cluster: {e}"),
        )]
    })?;
    let target = cluster.target();
    // Which server the drill ran in, and the bundle's when its major differs.
    let ran = pg::program_version(&cluster.bin_dir().join("postgres"));
    let source = pg::version_num(&db.server_version);
    let used = format!(
        "PostgreSQL {} cluster ({}{})",
        ran.map(pg::major_of).unwrap_or_else(|| "?".into()),
        cluster.bin_dir().display(),
        match (ran, source) {
            (Some(r), Some(s)) if pg::major_num(r) != pg::major_num(s) =>
                format!("; the bundle's server is PostgreSQL {}", pg::major_of(s)),
            _ => String::new(),
        }
    );

    let bar = if printer.progress {
        let bar = ProgressBar::new(db.size).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("restoring {}", db.file));
        bar
    } else {
        ProgressBar::hidden()
    };
    let restored = pg::restore(&target, file, |n| bar.set_position(n));
    bar.finish_and_clear();
    let report =
        restored.map_err(|e| vec![problem(&db.file, format!("the test restore failed: {e}"))])?;

    let actual = pg::fingerprint(&target).map_err(|e| {
        vec![problem(
            &db.file,
            format!("cannot count the restored rows: {e}"),
        )]
    })?;
    let expected = pg::Fingerprint {
        databases: db.fingerprint.clone(),
    };
    // A restore never removes databases the dump does not mention (the
    // throwaway cluster's own `postgres` may be extra): those are fine.
    let mut problems: Vec<Problem> = pg::compare(&expected, &actual)
        .into_iter()
        .filter(|d| !d.is_extra_database())
        .map(|d| {
            problem(
                &db.file,
                format!("the restored cluster differs from the manifest's fingerprint: {d}"),
            )
        })
        .collect();
    for name in &db.databases {
        if !actual.databases.contains_key(name) {
            problems.push(problem(
                &db.file,
                format!("database \"{name}\" required by the recipe is missing after the restore"),
            ));
        }
    }
    let _ = cluster.stop();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(format!(
        "restored {} ({}) into a throwaway {used} in {}; {} {}, {} rows match the manifest; psql printed only the {} known harmless {}",
        db.file,
        HumanBytes(report.sql_bytes),
        humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
        expected.table_count(),
        if expected.table_count() == 1 { "table" } else { "tables" },
        expected.total_rows(),
        report.allowed.len(),
        if report.allowed.len() == 1 { "error" } else { "errors" },
    ))
}

/// The server programs to drill in: the bundle's own major where this
/// machine has it, else the next newer one (a dump loads into a newer
/// major, never an older one). `None`: the usual search (an explicit
/// `$IMLRECOVER_PG_BINDIR`, or no installation found by version).
fn drill_server(db: &super::DatabaseRecord) -> Result<Option<std::path::PathBuf>, String> {
    if std::env::var_os(pg::ENV_BINDIR).is_some_and(|v| !v.is_empty()) {
        return Ok(None);
    }
    let Some(needs) = db.loads_into_from() else {
        return Ok(None);
    };
    let installs = pg::server_installations();
    if installs.is_empty() {
        return Ok(None);
    }
    let major = pg::major_num(needs);
    installs
        .iter()
        .find(|(v, _)| pg::major_num(*v) == major)
        .or_else(|| installs.iter().find(|(v, _)| pg::major_num(*v) > major))
        .map(|(_, d)| Some(d.clone()))
        .ok_or_else(|| {
            format!(
                "the dump needs PostgreSQL {} or newer to load, and this machine has only {}; \
                 install that major's server (or name its bin directory in ${})",
                pg::major_of(needs),
                installs
                    .iter()
                    .map(|(v, _)| pg::major_of(*v))
                    .collect::<Vec<_>>()
                    .join(", "),
                pg::ENV_BINDIRS
            )
        })
}

fn problem(path: &str, message: impl Into<String>) -> Problem {
    // A failure caused by Ctrl-C (psql or the postmaster got the signal too)
    // is not the bundle's fault: let the watcher finish and exit 130.
    super::interrupt::wait_if_interrupted();
    Problem {
        path: path.to_string(),
        kind: ProblemKind::Drill,
        address: None,
        message: message.into(),
    }
}
