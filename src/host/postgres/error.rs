//! The one error type of the PostgreSQL boundary. Every message says what
//! failed, against which server (socket directory or host, port, user), what
//! the program printed last, and what the administrator can do about it.

use std::path::PathBuf;

use super::fingerprint::FingerprintDiff;
use super::restore::RestoreMessage;
use super::sql::Backend;

/// Result alias of this module.
pub type Result<T, E = PgError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PgError {
    /// A PostgreSQL program could not be found.
    #[error(
        "cannot find the PostgreSQL program `{program}` (looked in: {searched})\n  \
         hint: install the PostgreSQL client/server packages, or point `bin_dir` \
         (or the environment variable IMLRECOVER_PG_BINDIR) at the directory holding it"
    )]
    #[diagnostic(code(imlrecover::pg::program_not_found))]
    ProgramNotFound { program: String, searched: String },

    /// A program could not be started at all.
    #[error(
        "cannot start `{program}` for {target}: {source}\n  \
         hint: check that {program} is executable{user_hint}"
    )]
    #[diagnostic(code(imlrecover::pg::spawn))]
    Spawn {
        program: String,
        target: String,
        user_hint: String,
        #[source]
        source: std::io::Error,
    },

    /// A short client program (psql query, pg_ctl, initdb) failed.
    #[error("`{program}` failed on {target} ({status}) while {doing}:\n{stderr}\n  hint: {hint}")]
    #[diagnostic(code(imlrecover::pg::command))]
    Command {
        program: String,
        target: String,
        doing: String,
        status: std::process::ExitStatus,
        stderr: String,
        hint: &'static str,
    },

    /// pg_dumpall exited with an error or was killed: the dump is unusable.
    #[error(
        "pg_dumpall failed on {target} ({status}) after {sql_bytes} bytes of SQL; \
         the dump is incomplete and must not be used.\n  pg_dumpall said:\n{stderr}\n  hint: {hint}"
    )]
    #[diagnostic(code(imlrecover::pg::dump_failed))]
    DumpFailed {
        target: String,
        status: std::process::ExitStatus,
        sql_bytes: u64,
        stderr: String,
        hint: &'static str,
    },

    /// pg_dumpall said it succeeded but its output is not a complete dump.
    #[error(
        "pg_dumpall on {target} exited successfully but its output ({sql_bytes} bytes) \
         is not a complete dump: {problem}\n  hint: run the backup again; if it repeats, \
         run `pg_dumpall --clean` by hand and look at its end"
    )]
    #[diagnostic(code(imlrecover::pg::dump_incomplete))]
    DumpIncomplete {
        target: String,
        sql_bytes: u64,
        problem: String,
    },

    /// Writing the compressed dump to its destination failed.
    #[error(
        "writing the compressed dump of {target} failed after {gz_bytes} bytes: {source}\n  \
         hint: check free space and permissions where the bundle is written"
    )]
    #[diagnostic(code(imlrecover::pg::dump_write))]
    DumpWrite {
        target: String,
        gz_bytes: u64,
        #[source]
        source: std::io::Error,
    },

    /// The gzip stream fed to a restore is corrupt or truncated.
    #[error(
        "the dump archive is corrupt or truncated (after {gz_bytes} compressed bytes, \
         {sql_bytes} bytes of SQL already sent): {source}\n  \
         psql was killed; the cluster on {target} may now be PARTIALLY restored.\n  \
         hint: check the bundle with `imlrecover verify BUNDLE` and restore again from a good one"
    )]
    #[diagnostic(code(imlrecover::pg::corrupt_archive))]
    CorruptArchive {
        target: String,
        gz_bytes: u64,
        sql_bytes: u64,
        #[source]
        source: std::io::Error,
    },

    /// The SQL script itself is not what pg_dumpall writes (e.g. truncated).
    #[error("the dump is not a complete pg_dumpall script: {problem}\n  hint: {hint}")]
    #[diagnostic(code(imlrecover::pg::dump_format))]
    DumpFormat { problem: String, hint: &'static str },

    /// Reading a dump failed.
    #[error("cannot read the dump: {source}")]
    #[diagnostic(code(imlrecover::pg::dump_read))]
    DumpRead {
        #[source]
        source: std::io::Error,
    },

    /// Clients are connected to databases a restore would drop.
    #[error(
        "refusing to restore into {target}: {} client(s) are connected, and \
         PostgreSQL cannot drop a database that is in use (psql would report success \
         and leave the old data):\n{}\n  hint: stop the services that use the database \
         (the recipe's `quiesce` list), or terminate the backends, then run again",
        backends.len(),
        super::sql::format_backends(backends)
    )]
    #[diagnostic(code(imlrecover::pg::database_in_use))]
    DatabaseInUse {
        target: String,
        backends: Vec<Backend>,
    },

    /// psql reported errors that are not the known harmless ones, or died.
    #[error(
        "restore into {target} FAILED: {summary}\n{}\n  hint: {hint}",
        super::restore::format_messages(messages)
    )]
    #[diagnostic(code(imlrecover::pg::restore_failed))]
    RestoreFailed {
        target: String,
        summary: String,
        messages: Vec<RestoreMessage>,
        hint: &'static str,
    },

    /// The restored cluster does not hold what the dump contains.
    #[error(
        "restore into {target} finished but the cluster does not match the dump:\n{}\n  \
         hint: make sure no service wrote to the database during the restore, then restore again",
        differences.iter().map(|d| format!("    {d}")).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(code(imlrecover::pg::verify_failed))]
    VerifyFailed {
        target: String,
        differences: Vec<FingerprintDiff>,
    },

    /// A client program printed something this module cannot interpret.
    #[error("unexpected output from `{program}` on {target} while {doing}: {output:?}")]
    #[diagnostic(code(imlrecover::pg::unexpected_output))]
    UnexpectedOutput {
        program: String,
        target: String,
        doing: String,
        output: String,
    },

    /// Creating, starting or stopping a throwaway cluster failed.
    #[error("throwaway PostgreSQL cluster in {}: {step} failed: {detail}\n  hint: {hint}", dir.display())]
    #[diagnostic(code(imlrecover::pg::temp_cluster))]
    TempCluster {
        dir: PathBuf,
        step: String,
        detail: String,
        hint: &'static str,
    },

    /// Any other I/O failure, with what was being done.
    #[error("{doing}: {source}")]
    #[diagnostic(code(imlrecover::pg::io))]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

/// A hint derived from what a client program printed on stderr, so that the
/// common failures (server down, wrong socket, authentication) say what to do.
pub(crate) fn hint_for(stderr: &str) -> &'static str {
    let s = stderr.to_ascii_lowercase();
    if s.contains("no such file or directory") && s.contains("socket") {
        "the server is not running, or listens on another socket directory/port: \
         check `service postgresql status` and the `host`/`port` of the database block"
    } else if s.contains("connection refused") {
        "nothing listens on that host/port: start PostgreSQL or fix `host`/`port`"
    } else if s.contains("peer authentication failed") || s.contains("ident authentication") {
        "the OS user does not match the database superuser: set `run_as` to the OS user \
         (usually \"postgres\") and run imlrecover as root"
    } else if s.contains("pg_hba.conf") {
        "pg_hba.conf rejects this connection: allow local connections for the superuser \
         to every database"
    } else if s.contains("password") {
        "the superuser needs a password: use local peer/trust authentication via `run_as`, \
         or a ~/.pgpass file for the OS user that runs the client"
    } else if s.contains("permission denied to set parameter") || s.contains("must be superuser") {
        "the configured `superuser` is not a PostgreSQL superuser"
    } else if s.contains("fatal:  database") && s.contains("does not exist") {
        "that database does not exist on this server: is this the manager's cluster, \
         and has it been restored yet?"
    } else if s.contains("role") && s.contains("does not exist") {
        "the configured `superuser` role does not exist on this server"
    } else if s.contains("permission denied") {
        "a file or directory is not accessible to the OS user running the client: \
         check `run_as` and directory permissions"
    } else {
        "read the messages above; they come from PostgreSQL's own programs"
    }
}
