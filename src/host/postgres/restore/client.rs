//! The psql a restore runs, and how it says which statement failed.
//!
//! psql 9.5+ echoes each failed statement (`-b`). psql 8.4–9.4 (EL6's 8.4,
//! EL7's 9.2) cannot; it names the script line of each error instead, but
//! only for a script given by name (`-f -` gives no line numbers before
//! 9.x): so the old path reads `/dev/stdin`, and the restore looks the line
//! up in the dump it fed.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStderr, ChildStdout, Stdio};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use crate::host::postgres::error::{PgError, Result};
use crate::host::postgres::process::{program_name, spawn_error, OsUser};
use crate::host::postgres::version::{client_version, old_paths_forced};
use crate::host::postgres::PgTarget;

/// How psql tells which statement failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedStatements {
    /// By the client's version: echoed from psql 9.5 on, by line before
    /// (and by line when `IMLRECOVER_PG_OLD_PATHS` is set).
    #[default]
    Auto,
    /// psql echoes the failed statement (`-b`, psql 9.5+).
    Echoed,
    /// psql names the script line; the statement is that line of the dump
    /// (psql 8.4–9.4).
    ByLine,
}

/// The first psql that echoes failed statements (`-b`, `--echo-errors`).
const ECHO_ERRORS: u32 = 90500;

impl FailedStatements {
    /// The path a restore through `target`'s psql takes.
    pub(crate) fn resolve(self, target: &PgTarget) -> FailedStatements {
        match self {
            FailedStatements::Auto if old_paths_forced() => FailedStatements::ByLine,
            FailedStatements::Auto => match client_version(target, "psql") {
                Some(v) if v < ECHO_ERRORS => FailedStatements::ByLine,
                _ => FailedStatements::Echoed,
            },
            other => other,
        }
    }

    /// The script's name in psql's messages (`psql:<name>:<line>: ERROR:`).
    pub(crate) fn input_name(self) -> &'static str {
        match self {
            FailedStatements::ByLine => "/dev/stdin",
            _ => "<stdin>",
        }
    }
}

/// A running psql reading the script from `input`.
pub(crate) struct Psql {
    pub child: Child,
    pub input: File,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts psql on database `postgres` for a restore the `how` way
/// (resolved, not `Auto`).
pub(crate) fn spawn(target: &PgTarget, how: FailedStatements) -> Result<Psql> {
    let mut cmd = target.client("psql")?;
    // ON_ERROR_STOP stays unset (-X reads no psqlrc): before 9.5 any value
    // but "off", even "0", turns it on, and it would stop half-way.
    match how {
        // -b echoes each failed statement, which tells a harmless DROP
        // apart from anything else; -f - prefixes messages with line numbers.
        FailedStatements::Echoed | FailedStatements::Auto => {
            cmd.args(["-X", "-q", "-b", "-d", "postgres", "-f", "-"])
        }
        FailedStatements::ByLine => cmd.args(["-X", "-q", "-d", "postgres", "-f", "/dev/stdin"]),
    };
    let program = program_name(&cmd);
    let io_error = |doing: &str, source: std::io::Error| PgError::Io {
        doing: format!("{doing} for psql on {target}"),
        source,
    };
    // Our own pipe: psql reopens it as /dev/stdin, which the kernel allows
    // only to the pipe's owner, so it belongs to the OS user psql runs as.
    let (read, write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io_error("creating a pipe", e.into()))?;
    if let Some(name) = target.effective_run_as() {
        let user = OsUser::lookup(name).map_err(|e| spawn_error(&program, target, e))?;
        std::os::unix::fs::fchown(&read, Some(user.uid.as_raw()), None)
            .map_err(|e| io_error("handing the pipe to the OS user", e))?;
    }
    cmd.stdin(Stdio::from(read))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, target, e))?;
    // The read end goes with `cmd`: once psql is gone, writes fail at once.
    drop(cmd);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        crate::host::postgres::process::kill_tree(&mut child);
        return Err(io_error(
            "connecting to the output",
            std::io::Error::other("pipes not captured"),
        ));
    };
    Ok(Psql {
        child,
        input: File::from(write),
        stdout,
        stderr,
    })
}
