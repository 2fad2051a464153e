//! `database "x" { superuser, host?, port?, run_as?, databases?, quiesce }`:
//! the whole PostgreSQL cluster as one `pg_dumpall --clean` dump.

mod capture;
mod observe;
mod restore;

use super::kind::{Applied, ApplyCx, Cx, Kind, Phase, ResourceError, Verdict};
use super::{CaptureCx, CaptureError, Captured};
use crate::host::postgres::{self as pg, PgError, PgTarget};
use crate::plan::{Op, ResourceChange, Step};
use crate::recipe::{Address, BlockSchema, BlockValues, EdgeKind, RefTarget};

#[derive(Debug, Clone)]
pub struct DatabaseSpec {
    /// The databases the bundle must bring back (default: the block's name).
    pub databases: Vec<String>,
    pub superuser: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub run_as: Option<String>,
    /// Directory of the server's own client programs (`/usr/pgsql-9.6/bin`);
    /// on the live host like `host`, not under `--root`. Default: found
    /// from the running server.
    pub bindir: Option<String>,
    /// Services stopped before the restore and started after it.
    pub quiesce: Vec<Address>,
}

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

impl Kind for DatabaseKind {
    type Spec = DatabaseSpec;
    type Observed = Observed;
    const KEYWORD: &'static str = "database";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("superuser", true),
            ("databases", false),
            ("host", false),
            ("port", false),
            ("run_as", false),
            ("bindir", false),
            ("quiesce", false),
            ("depends_on", false),
        ],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Restore;
    const CAPTURES: bool = true;

    fn decode(b: &mut BlockValues) -> Option<DatabaseSpec> {
        let superuser = b.string("superuser");
        let databases = if b.has("databases") {
            b.string_list("databases")
        } else {
            Some(vec![b.name().to_string()])
        };
        let host = b.string("host");
        let port = b.port("port");
        let run_as = b.string("run_as");
        let bindir = b.path("bindir");
        // Only services can be stopped around the restore.
        let quiesce_refs = b.addresses("quiesce", EdgeKind::Quiesce, |k| {
            k.phase() == Phase::Service
        });
        let quiesce = quiesce_refs
            .iter()
            .filter_map(|r| match &r.target {
                RefTarget::Resource(a) => Some(a.clone()),
                RefTarget::Variable(_) => None,
            })
            .collect();
        for r in quiesce_refs {
            b.reference(r);
        }
        Some(DatabaseSpec {
            databases: databases?,
            superuser: superuser?,
            host,
            port,
            run_as,
            bindir,
            quiesce,
        })
    }

    fn capture(
        &self,
        cx: &mut CaptureCx,
        address: &Address,
        spec: &DatabaseSpec,
    ) -> Result<Captured, CaptureError> {
        capture::capture(cx, address, spec)
    }

    fn observe(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        cx: &Cx,
    ) -> Result<Observed, ResourceError> {
        observe::observe(address, spec, cx)
    }

    fn compare(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        seen: &Observed,
        cx: &Cx,
    ) -> Result<Verdict, ResourceError> {
        observe::compare(address, spec, seen, cx)
    }

    fn apply(
        &self,
        address: &Address,
        spec: &DatabaseSpec,
        step: &Step,
        change: &ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        restore::apply(address, spec, step, change, cx)
    }

    /// The safety dump of a restore starts on its own thread as soon as
    /// the engine allows, to overlap the file steps.
    fn prepare(&self, address: &Address, spec: &DatabaseSpec, step: &Step, cx: &ApplyCx) {
        if step.op == Op::Restore {
            restore::prepare(address, spec, cx);
        }
    }

    fn quiesces(spec: &DatabaseSpec) -> &[Address] {
        &spec.quiesce
    }

    /// The dump is the manifest's `database` record, never an entry.
    fn owns_entry(_spec: &DatabaseSpec, entry: &crate::bundle::Entry) -> Result<(), String> {
        Err(format!(
            "{}: this kind of resource captures no files",
            crate::bundle::normalize(&entry.path)
        ))
    }
}
