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
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A drill that passed: what it restored and how long it took.
#[derive(Debug, Clone)]
pub struct Passed {
    pub summary: String,
    pub tables: usize,
    pub rows: u64,
    pub seconds: f64,
}

/// On success what was restored; otherwise every problem found. InfluxDB
/// backups are drilled by their kind (`resources::influxdb::drill`).
pub fn drill(bundle: &Bundle, printer: &Printer) -> Result<Passed, Vec<Problem>> {
    crate::resources::influxdb::drill::with_database(bundle, || drill_database(bundle, printer))
}

fn drill_database(bundle: &Bundle, printer: &Printer) -> Result<Passed, Vec<Problem>> {
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
    let seconds = started.elapsed().as_secs_f64();
    let summary = format!(
        "restored {} ({}) into a throwaway {used} in {}; {} {}, {} rows match the manifest; psql printed only the {} known harmless {}",
        db.file,
        HumanBytes(report.sql_bytes),
        humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
        expected.table_count(),
        if expected.table_count() == 1 { "table" } else { "tables" },
        expected.total_rows(),
        report.allowed.len(),
        if report.allowed.len() == 1 { "error" } else { "errors" },
    );
    Ok(Passed {
        summary,
        tables: expected.table_count(),
        rows: expected.total_rows(),
        seconds,
    })
}

/// The drill record, `drill.json` beside the bundles: only `verify --drill`
/// writes it (atomically); `audit --max-drill-age` and the metrics read it.
pub const RECORD: &str = "drill.json";

/// The last drill and the last successful one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format_version: u32,
    pub last: Run,
    pub last_success: Option<Run>,
}

/// One drill: when, which bundle, what it restored, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// When the drill finished, RFC 3339 UTC.
    pub time: String,
    /// The bundle's name (its timestamp) and its manifest's `created`.
    pub bundle: String,
    pub bundle_created: String,
    pub success: bool,
    pub tables: usize,
    pub rows: u64,
    /// Seconds the restore and the row count took.
    pub seconds: f64,
    /// Why it failed (the first problem; the rest are counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tool_version: String,
}

impl Run {
    pub fn of(bundle: &Bundle, outcome: &Result<Passed, Vec<Problem>>, seconds: f64) -> Run {
        let (success, tables, rows, reason) = match outcome {
            Ok(p) => (true, p.tables, p.rows, None),
            Err(problems) => {
                let mut why = problems
                    .first()
                    .map_or_else(|| "failed".to_string(), ToString::to_string);
                if problems.len() > 1 {
                    why.push_str(&format!(" (and {} more problems)", problems.len() - 1));
                }
                (false, 0, 0, Some(why))
            }
        };
        Run {
            time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            bundle: bundle.name(),
            bundle_created: bundle.manifest.created.clone(),
            success,
            tables,
            rows,
            seconds: match outcome {
                Ok(p) => p.seconds,
                Err(_) => seconds,
            },
            reason,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Seconds since the epoch of `time`.
    pub fn unix_time(&self) -> Option<u64> {
        unix(&self.time)
    }

    /// Seconds since the epoch the drilled bundle was made.
    pub fn bundle_unix_time(&self) -> Option<u64> {
        unix(&self.bundle_created)
    }
}

fn unix(t: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(t)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The record in the bundle directory that holds `bundle`, if any; a
/// damaged record reads as none (the next drill rewrites it).
pub fn read_record(bundle: &Bundle) -> Option<Record> {
    let path = bundle.dir.parent()?.join(RECORD);
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Records `run` as the last drill (and the last success if it passed),
/// keeping the previous success otherwise. Returns the record written.
pub fn write_record(bundle: &Bundle, run: Run) -> std::io::Result<(std::path::PathBuf, Record)> {
    let dir = bundle
        .dir
        .parent()
        .ok_or_else(|| std::io::Error::other("the bundle has no parent directory"))?;
    let previous = read_record(bundle).and_then(|r| r.last_success);
    let record = Record {
        format_version: 1,
        last_success: if run.success {
            Some(run.clone())
        } else {
            previous
        },
        last: run,
    };
    let path = dir.join(RECORD);
    let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
    crate::host::atomic::replace_small(&path, &json, 0o644)?;
    Ok((path, record))
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
