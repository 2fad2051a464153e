//! `influxdb "x" { databases, service, rpc?, http?, bindir?, quiesce?,
//! optional? }`: InfluxDB 1.x databases (IML 5.1+'s `iml`, `iml_stats`,
//! `iml_stratagem_scans`), backed up and restored by influxd's own portable
//! backup (`influxd backup -portable` / `influxd restore -portable`).

use super::kind::{Applied, ApplyCx, Cx, Kind, Phase, ResourceError, Verdict};
use super::{CaptureCx, CaptureError, Captured};
use crate::plan::{ResourceChange, Step};
use crate::recipe::{Address, BlockSchema, BlockValues, EdgeKind, ErrorKind, RefTarget};
use std::collections::BTreeMap;

/// influxd's backup/restore RPC address when the recipe names none.
pub const DEFAULT_RPC: &str = "127.0.0.1:8088";
/// InfluxDB's HTTP API address when the recipe names none.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8086";

#[derive(Debug, Clone)]
pub struct InfluxdbSpec {
    /// The databases the bundle must bring back.
    pub databases: Vec<String>,
    /// The service that must run for backup and restore.
    pub service: Address,
    /// `host:port` of influxd's backup/restore RPC (`bind-address`).
    pub rpc: String,
    /// `host:port` of the HTTP API.
    pub http: String,
    /// Where `influxd` is (default: `PATH`); on the live host.
    pub bindir: Option<String>,
    /// Services stopped around the restore (never InfluxDB itself).
    pub quiesce: Vec<Address>,
    /// A database missing at backup is recorded absent, not an error.
    pub optional: bool,
}

pub struct InfluxdbKind;

/// What a resource's databases held at backup: the manifest's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InfluxRecord {
    /// influxd's version (`X-Influxdb-Version`).
    pub version: String,
    /// The counts are of points timed at or before this (ns since the
    /// epoch, the start of the backup); points written while it ran may
    /// be in the backup too, uncounted.
    pub counted_until: i64,
    /// By database; `null`: an `optional` database missing at backup.
    pub databases: BTreeMap<String, Option<Counts>>,
}

/// What one database holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub measurements: u64,
    /// Series with points at or before the backup time.
    pub series: u64,
    /// Points (a series' timestamps), from `count(*)` per series: the most
    /// values of any one field (exact when each point has that field).
    pub points: u64,
    /// Field values (`count(*)` summed over every field).
    pub values: u64,
}

impl Counts {
    /// Fewer of anything than `want`.
    pub fn short_of(&self, want: &Counts) -> bool {
        self.measurements < want.measurements
            || self.series < want.series
            || self.points < want.points
            || self.values < want.values
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} measurements, {} series, {} points, {} values",
            self.measurements, self.series, self.points, self.values
        )
    }
}

/// A manifest entry's path (not a host path: relative, under the
/// resource's address): `influxdb.stats/iml/20261203T173809Z.s1.tar.gz`,
/// or `influxdb.stats/iml` for a database recorded absent.
pub fn entry_path(address: &Address, db: &str, file: Option<&str>) -> String {
    match file {
        Some(f) => format!("{address}/{db}/{f}"),
        None => format!("{address}/{db}"),
    }
}

/// An influxd backup file name: `20261203T173809Z.meta`, `….manifest`,
/// `….s12.tar.gz`.
fn backup_file_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

/// `host:port` with a port from 1 to 65535.
fn host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) && !host.contains('/')
        }
        None => false,
    }
}

/// A database name safe in InfluxQL identifiers, URLs and file names.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !s.starts_with('.')
}

fn address_of(b: &mut BlockValues, key: &str) -> Option<Address> {
    let mut refs = b.addresses(key, EdgeKind::Reference, |k| k.phase() == Phase::Service);
    if b.is_list(key) || refs.len() > 1 {
        b.invalid(
            key,
            ErrorKind::WrongType,
            format!("`{key}` takes one service address, e.g. {key} = service.influxdb"),
            "not a single address",
        );
        return None;
    }
    let r = refs.pop()?;
    let a = match &r.target {
        RefTarget::Resource(a) => Some(a.clone()),
        RefTarget::Variable(_) => None,
    };
    b.reference(r);
    a
}

impl Kind for InfluxdbKind {
    type Spec = InfluxdbSpec;
    type Observed = observe::Observed;
    const KEYWORD: &'static str = "influxdb";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("databases", true),
            ("service", true),
            ("rpc", false),
            ("http", false),
            ("bindir", false),
            ("quiesce", false),
            ("optional", false),
            ("depends_on", false),
        ],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Restore;
    const CAPTURES: bool = true;

    fn decode(b: &mut BlockValues) -> Option<InfluxdbSpec> {
        let mut ok = true;
        let databases = b.string_list("databases");
        if let Some(dbs) = &databases {
            let bad: Vec<&String> = dbs.iter().filter(|d| !valid_name(d)).collect();
            let mut seen = std::collections::BTreeSet::new();
            let dup: Vec<&String> = dbs.iter().filter(|d| !seen.insert(*d)).collect();
            if dbs.is_empty() {
                b.invalid(
                    "databases",
                    ErrorKind::InvalidValue,
                    "`databases` must name at least one database, e.g. [\"iml\", \"iml_stats\"]"
                        .into(),
                    "empty list",
                );
                ok = false;
            } else if let Some(d) = bad.first() {
                b.invalid(
                    "databases",
                    ErrorKind::InvalidValue,
                    format!("`{d}` is not an InfluxDB database name imlrecover handles (letters, digits, `_`, `-`, `.`)"),
                    "invalid name",
                );
                ok = false;
            } else if let Some(d) = dup.first() {
                b.invalid(
                    "databases",
                    ErrorKind::Duplicate,
                    format!("`databases` names `{d}` twice"),
                    "listed twice",
                );
                ok = false;
            }
        }
        let service = address_of(b, "service");
        let addr = |b: &mut BlockValues, key: &str| -> Option<String> {
            if !b.has(key) {
                return Some(match key {
                    "rpc" => DEFAULT_RPC.to_string(),
                    _ => DEFAULT_HTTP.to_string(),
                });
            }
            let s = b.string(key)?;
            if host_port(&s) {
                Some(s)
            } else {
                b.invalid(
                    key,
                    ErrorKind::InvalidValue,
                    format!("`{key}` must be host:port, e.g. \"127.0.0.1:8088\", found `{s}`"),
                    "not host:port",
                );
                None
            }
        };
        let rpc = addr(b, "rpc");
        let http = addr(b, "http");
        let bindir = b.path("bindir");
        let optional = b.bool("optional").unwrap_or(false);
        let quiesce_refs = b.addresses("quiesce", EdgeKind::Quiesce, |k| {
            k.phase() == Phase::Service
        });
        let quiesce: Vec<Address> = quiesce_refs
            .iter()
            .filter_map(|r| match &r.target {
                RefTarget::Resource(a) => Some(a.clone()),
                RefTarget::Variable(_) => None,
            })
            .collect();
        for r in quiesce_refs {
            b.reference(r);
        }
        if let Some(s) = service.as_ref().filter(|s| quiesce.contains(s)) {
            b.invalid(
                "quiesce",
                ErrorKind::InvalidValue,
                format!("`quiesce` names {s}, the InfluxDB service itself: it must run for the restore"),
                "InfluxDB must keep running",
            );
            ok = false;
        }
        let spec = InfluxdbSpec {
            databases: databases?,
            service: service?,
            rpc: rpc?,
            http: http?,
            bindir,
            quiesce,
            optional,
        };
        ok.then_some(spec)
    }

    fn capture(
        &self,
        cx: &mut CaptureCx,
        address: &Address,
        spec: &InfluxdbSpec,
    ) -> Result<Captured, CaptureError> {
        capture::capture(cx, address, spec)
    }

    fn observe(
        &self,
        address: &Address,
        spec: &InfluxdbSpec,
        cx: &Cx,
    ) -> Result<observe::Observed, ResourceError> {
        observe::observe(address, spec, cx)
    }

    fn compare(
        &self,
        address: &Address,
        spec: &InfluxdbSpec,
        seen: &observe::Observed,
        cx: &Cx,
    ) -> Result<Verdict, ResourceError> {
        observe::compare(address, spec, seen, cx)
    }

    fn apply(
        &self,
        address: &Address,
        spec: &InfluxdbSpec,
        _step: &Step,
        _change: &ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        restore::apply(address, spec, cx)
    }

    fn quiesces(spec: &InfluxdbSpec) -> &[Address] {
        &spec.quiesce
    }

    /// `<address>/<database>/<backup file>` (or `<address>/<database>`,
    /// absent) of a database the block names; stored under `files/`.
    fn owns_entry(spec: &InfluxdbSpec, entry: &crate::bundle::Entry) -> Result<(), String> {
        let prefix = format!("{}/", entry.address);
        let rest = entry.path.strip_prefix(&prefix).unwrap_or("");
        let (db, file) = match rest.split_once('/') {
            Some((db, f)) => (db, Some(f)),
            None => (rest, None),
        };
        let absent = entry.kind == crate::bundle::EntryKind::Absent;
        let shaped = match file {
            Some(f) => !absent && backup_file_name(f),
            None => absent,
        };
        if shaped && spec.databases.iter().any(|d| d == db) {
            Ok(())
        } else {
            Err(format!(
                "{} is not an InfluxDB backup file of its databases ({})",
                entry.path,
                spec.databases.join(", ")
            ))
        }
    }
}

mod capture;
pub mod drill;
pub mod http;
pub mod observe;
pub mod restore;
pub mod server;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InfluxError {
    #[error("{address}: {message}")]
    #[diagnostic(code(imlrecover::influxdb), help("{help}"))]
    Failed {
        address: Address,
        message: String,
        help: String,
    },
}

impl InfluxError {
    pub fn new(address: &Address, message: impl Into<String>, help: impl Into<String>) -> Self {
        InfluxError::Failed {
            address: address.clone(),
            message: message.into(),
            help: help.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Entry, EntryKind};

    fn spec() -> InfluxdbSpec {
        InfluxdbSpec {
            databases: vec!["iml".into(), "iml_stats".into()],
            service: "service.influxdb".parse().unwrap(),
            rpc: DEFAULT_RPC.into(),
            http: DEFAULT_HTTP.into(),
            bindir: None,
            quiesce: Vec::new(),
            optional: false,
        }
    }

    fn entry(path: &str, kind: EntryKind) -> Entry {
        let mut e = Entry::absent("influxdb.stats".parse().unwrap(), path.into(), false);
        e.kind = kind;
        e
    }

    #[test]
    fn owns_only_backup_files_of_its_databases() {
        let s = spec();
        let own = |p: &str, k| InfluxdbKind::owns_entry(&s, &entry(p, k));
        assert_eq!(
            entry_path(&"influxdb.stats".parse().unwrap(), "iml", Some("x.meta")),
            "influxdb.stats/iml/x.meta"
        );
        assert!(own("influxdb.stats/iml/20261203T173809Z.s1.tar.gz", EntryKind::File).is_ok());
        assert!(own("influxdb.stats/iml_stats/20261203T173809Z.meta", EntryKind::File).is_ok());
        assert!(own("influxdb.stats/iml_stats", EntryKind::Absent).is_ok());
        for bad in [
            "influxdb.stats/other/x.meta",
            "influxdb.stats/iml/../../etc/shadow",
            "influxdb.stats/iml/.hidden",
            "influxdb.other/iml/x.meta",
            "/etc/shadow",
            "influxdb.stats/iml",
        ] {
            assert!(own(bad, EntryKind::File).is_err(), "{bad}");
        }
        assert_eq!(
            own("/etc/shadow", EntryKind::File).unwrap_err(),
            "/etc/shadow is not an InfluxDB backup file of its databases (iml, iml_stats)"
        );
    }

    #[test]
    fn addresses_and_names() {
        assert!(host_port("127.0.0.1:8088"));
        assert!(host_port("localhost:1"));
        assert!(!host_port("8088"));
        assert!(!host_port("127.0.0.1:0"));
        assert!(!host_port(":8086"));
        assert!(!host_port("h:99999"));
        assert!(valid_name("iml_stratagem_scans"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("x\"y"));
        assert!(!valid_name(""));
    }

    #[test]
    fn short_of_any_count() {
        let want = Counts {
            measurements: 2,
            series: 6,
            points: 1200,
            values: 2400,
        };
        assert!(!want.short_of(&want));
        let more = Counts {
            points: 1300,
            values: 2600,
            ..want
        };
        assert!(!more.short_of(&want));
        let fewer = Counts {
            series: 5,
            ..want
        };
        assert!(fewer.short_of(&want));
    }
}
