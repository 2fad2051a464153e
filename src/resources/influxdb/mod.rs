//! `influxdb "x" { databases, service, rpc?, http?, bindir?, quiesce?,
//! optional? }`: InfluxDB 1.x databases (IML 5.1+'s `iml`, `iml_stats`,
//! `iml_stratagem_scans`), backed up and restored by influxd's own portable
//! backup (`influxd backup -portable` / `influxd restore -portable`).

use super::kind::{Applied, ApplyCx, Cx, Kind, Phase, ResourceError, Verdict};
use super::{CaptureCx, CaptureError, Captured};
use crate::plan::{ResourceChange, Step};
use crate::recipe::{Address, BlockSchema, BlockValues, EdgeKind, ErrorKind, RefTarget};

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
        let _ = (cx, spec);
        Err(InfluxError::new(address, "capture not implemented yet", "").into())
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
        _spec: &InfluxdbSpec,
        _step: &Step,
        _change: &ResourceChange,
        _cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        Err(ResourceError::new(address, "restore not implemented yet"))
    }

    fn quiesces(spec: &InfluxdbSpec) -> &[Address] {
        &spec.quiesce
    }
}

mod observe;

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
