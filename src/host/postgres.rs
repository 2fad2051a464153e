//! PostgreSQL processes: dumps, restores, fingerprints, throwaway clusters.
//!
//! Everything goes through PostgreSQL's own client programs (`psql`,
//! `pg_dumpall`, `initdb`, `pg_ctl`) spawned as processes; there is no
//! PostgreSQL client library. A [`PgTarget`] says how to reach a server and
//! as which OS user to run the programs (switched to in the child when we
//! are root and the user differs, as `runuser -u USER` would).
//!
//! The traps this module exists for (DESIGN.md §5):
//! * psql's exit status says nothing about a restore: [`restore`]
//!   classifies every `ERROR:` and accepts only those a `--clean` dump
//!   always prints, then compares the result with the dump's row counts.
//! * `ON_ERROR_STOP` would leave an empty cluster: it is never used for
//!   restores.
//! * A client connected to `chroma` makes `DROP DATABASE` fail while psql
//!   returns 0: [`restore`] refuses while clients are connected, and
//!   [`connected_backends`] / [`terminate_backends`] deal with them.
//!
//! Dumps are `pg_dumpall --clean` compressed as multi-member gzip on all
//! cores ([`dump_all`]); `zcat FILE | psql postgres` restores them as the
//! runbook does.

mod blocking;
mod cluster;
mod concurrent;
mod controldata;
mod dump;
mod error;
mod fingerprint;
mod ident;
mod meta;
mod process;
mod restore;
mod scan;
mod sql;
mod version;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use blocking::{blocked_sessions, Blocker, LockWatch, WatchReport, BACKUP_GIVE_UP};
pub use cluster::{cleanup_all, TempCluster};
pub use dump::{dump_all, dump_all_with, DumpOptions, DumpStats};
pub use error::{PgError, Result};
pub use fingerprint::{
    compare, fingerprint, fingerprint_in, fingerprint_of, fingerprint_with, qualified_name,
    CountPath, Fingerprint, FingerprintDiff,
};
pub use process::{find_program, ENV_BINDIR};
pub use restore::{
    restore, restore_with, AllowedError, FailedStatements, HarmlessError, RestoreMessage,
    RestoreOptions, RestoreReport,
};
pub use scan::{fingerprint_from_dump, DumpScanner};
pub use sql::{
    cluster_identity, cluster_view, cluster_view_via, connected_backends, execute, list_databases,
    ping, query, terminate_backends, Backend, ClusterIdentity, ClusterView, IdentitySource,
};
pub use version::{
    client_version, dir_for_major, local_server, major_num, major_of, program_version,
    server_client_dir, server_installations, version_num, LocalServer, CLIENT_PROGRAMS,
    ENV_BINDIRS, SERVER_PROGRAMS,
};

/// How to reach a PostgreSQL server and run its client programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgTarget {
    /// Socket directory (starts with `/`) or host name; `None`: libpq's
    /// default (`$PGHOST`, else the compiled-in socket directory).
    pub host: Option<String>,
    /// `None`: `$PGPORT`, else 5432.
    pub port: Option<u16>,
    /// Database superuser to connect as (`-U`).
    pub superuser: String,
    /// OS user to run the client programs as, e.g. `postgres` (used when we
    /// are root and it is not us).
    pub run_as: Option<String>,
    /// Directory of psql/pg_dumpall; `None`: `$IMLRECOVER_PG_BINDIR`, the
    /// newest `/usr/lib/postgresql/*/bin`, then `$PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl PgTarget {
    /// A target on the local default socket, as `superuser`.
    pub fn new(superuser: impl Into<String>) -> Self {
        PgTarget {
            host: None,
            port: None,
            superuser: superuser.into(),
            run_as: None,
            bin_dir: None,
        }
    }

    /// The usual manager-server setup: local socket, superuser `postgres`,
    /// programs run as OS user `postgres` (the runbook's `su - postgres`).
    pub fn local_postgres() -> Self {
        PgTarget {
            run_as: Some("postgres".into()),
            ..PgTarget::new("postgres")
        }
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL ")?;
        match &self.host {
            Some(h) if h.starts_with('/') => write!(f, "socket directory {h}")?,
            Some(h) => write!(f, "host {h}")?,
            None => write!(f, "default local socket")?,
        }
        match self.port {
            Some(p) => write!(f, " port {p}")?,
            None => write!(f, " default port")?,
        }
        write!(f, " as \"{}\"", self.superuser)?;
        if let Some(u) = self.effective_run_as() {
            write!(f, " (OS user {u})")?;
        }
        Ok(())
    }
}
