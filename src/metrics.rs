//! `--metrics-file PATH`: node_exporter textfile-collector metrics
//! (gauges, no sample timestamps). Every command may point at the same
//! file: a command replaces only its own metric families (all named
//! `imlrecover_<command>_…`, or `imlrecover_drill_…` / `imlrecover_certificate_…`)
//! and keeps the others' lines, under an exclusive lock on the directory,
//! and the file is replaced by rename, so node_exporter never reads half a
//! file. Commands add families with [`record`]; `commands::run` writes
//! them, with the success/duration families, once the command has ended.

use nix::fcntl::{Flock, FlockArg};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One gauge family: `# HELP`, `# TYPE … gauge` and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    pub fn gauge(name: &str, help: &str, value: f64) -> Family {
        Family {
            name: name.to_string(),
            help: help.to_string(),
            samples: vec![(Vec::new(), value)],
        }
    }

    pub fn labelled(name: &str, help: &str) -> Family {
        Family {
            name: name.to_string(),
            help: help.to_string(),
            samples: Vec::new(),
        }
    }

    pub fn sample(mut self, labels: &[(&str, &str)], value: f64) -> Family {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.push((labels, value));
        self
    }

    fn render(&self, out: &mut String) {
        let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", self.name);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, value) in &self.samples {
            out.push_str(&self.name);
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        let v = v
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n");
                        format!("{k}=\"{v}\"")
                    })
                    .collect();
                let _ = write!(out, "{{{}}}", inner.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot write the metrics file {}: {error}", path.display())]
#[diagnostic(
    code(imlrecover::metrics),
    help("--metrics-file must name a file in an existing, writable directory (node_exporter's --collector.textfile.directory), ending in .prom")
)]
pub struct MetricsError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

static PENDING: Mutex<Vec<Family>> = Mutex::new(Vec::new());

/// Adds a family for the metrics file of this run (if there is one).
pub fn record(family: Family) {
    if let Ok(mut p) = PENDING.lock() {
        p.retain(|f| f.name != family.name);
        p.push(family);
    }
}

/// The drill families, from the drill record (written by `verify --drill`,
/// read by `audit`): both write the same values from the same record.
pub fn drill(record: &crate::bundle::drill::Record) -> Vec<Family> {
    let mut out = vec![Family::gauge(
        "imlrecover_drill_success",
        "1 if the last restore drill (verify --drill) passed, 0 if it failed.",
        if record.last.success { 1.0 } else { 0.0 },
    )];
    if let Some(t) = record.last.unix_time() {
        out.push(Family::gauge(
            "imlrecover_drill_last_run_timestamp_seconds",
            "When the last restore drill ended (Unix time).",
            t as f64,
        ));
    }
    if let Some(good) = &record.last_success {
        if let Some(t) = good.unix_time() {
            out.push(Family::gauge(
                "imlrecover_drill_last_success_timestamp_seconds",
                "When the last successful restore drill ended (Unix time).",
                t as f64,
            ));
        }
        if let Some(t) = good.bundle_unix_time() {
            out.push(Family::gauge(
                "imlrecover_drill_bundle_timestamp_seconds",
                "When the bundle the last successful drill restored was made (Unix time).",
                t as f64,
            ));
        }
        out.push(Family::gauge(
            "imlrecover_drill_restore_seconds",
            "How long the last successful drill's restore and row count took.",
            good.seconds,
        ));
        out.push(Family::gauge(
            "imlrecover_drill_rows",
            "Rows the last successful drill restored and checked.",
            good.rows as f64,
        ));
    }
    out
}

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs() as f64)
}

/// Refuses, before any work, a metrics path whose directory does not exist.
pub fn check_path(path: &Path) -> Result<(), MetricsError> {
    let dir = parent(path);
    if dir.is_dir() {
        Ok(())
    } else {
        Err(MetricsError {
            path: path.to_path_buf(),
            error: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the directory {} does not exist", dir.display()),
            ),
        })
    }
}

/// Writes the families [`record`]ed during the run plus `<command>`'s
/// own: `imlrecover_<command>_success` (1/0), `…_last_run_timestamp_seconds`,
/// and on success `…_last_success_timestamp_seconds` and `…_duration_seconds`
/// (a failed run keeps the previous success's values).
pub fn finish(path: &Path, command: &str, elapsed: Duration, ok: bool) -> Result<(), MetricsError> {
    let now = unix(SystemTime::now());
    let mut families = PENDING
        .lock()
        .map(|mut p| p.split_off(0))
        .unwrap_or_default();
    let name = |what: &str| format!("imlrecover_{command}_{what}");
    families.push(Family::gauge(
        &name("success"),
        &format!("1 if the last `imlrecover {command}` succeeded, 0 if it failed."),
        if ok { 1.0 } else { 0.0 },
    ));
    families.push(Family::gauge(
        &name("last_run_timestamp_seconds"),
        &format!("When the last `imlrecover {command}` ended (Unix time)."),
        now,
    ));
    if ok {
        families.push(Family::gauge(
            &name("last_success_timestamp_seconds"),
            &format!("When the last successful `imlrecover {command}` ended (Unix time)."),
            now,
        ));
        families.push(Family::gauge(
            &name("duration_seconds"),
            &format!("How long the last successful `imlrecover {command}` took."),
            elapsed.as_secs_f64(),
        ));
    }
    update(path, &families)
}

/// Merges `families` into the file at `path` (see the module docs).
pub fn update(path: &Path, families: &[Family]) -> Result<(), MetricsError> {
    let err = |error| MetricsError {
        path: path.to_path_buf(),
        error,
    };
    let dir = std::fs::File::open(parent(path)).map_err(err)?;
    // Two commands ending at once must not lose each other's lines.
    let _lock = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| err(e.into()))?;
    let mut blocks = match std::fs::read_to_string(path) {
        Ok(text) => parse_blocks(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(err(e)),
    };
    for f in families {
        let mut text = String::new();
        f.render(&mut text);
        blocks.insert(f.name.clone(), text);
    }
    let text: String = blocks.into_values().collect();
    crate::host::atomic::replace_small(path, text.as_bytes(), 0o644).map_err(err)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The existing file's lines, grouped by metric family name.
fn parse_blocks(text: &str) -> BTreeMap<String, String> {
    let mut blocks: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# ") {
            Some(rest) => rest.split_whitespace().nth(1),
            None => line.split(['{', ' ']).next(),
        };
        let Some(name) = name.filter(|n| n.starts_with("imlrecover_")) else {
            continue;
        };
        let block = blocks.entry(name.to_string()).or_default();
        block.push_str(line);
        block.push('\n');
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_replaces_only_its_own_families() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("imlrecover.prom");
        update(
            &path,
            &[Family::gauge("imlrecover_backup_bytes", "b", 10.0)],
        )
        .unwrap();
        update(
            &path,
            &[Family::labelled("imlrecover_audit_findings", "f").sample(&[("kind", "a\"b")], 2.0)],
        )
        .unwrap();
        update(
            &path,
            &[Family::gauge("imlrecover_backup_bytes", "b", 12.0)],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# HELP imlrecover_audit_findings f\n# TYPE imlrecover_audit_findings gauge\n\
             imlrecover_audit_findings{kind=\"a\\\"b\"} 2\n\
             # HELP imlrecover_backup_bytes b\n# TYPE imlrecover_backup_bytes gauge\n\
             imlrecover_backup_bytes 12\n"
        );
        // Nothing but the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
