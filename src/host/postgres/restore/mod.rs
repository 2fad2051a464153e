//! Restoring a gzip'd `pg_dumpall --clean` script with `psql`, safely.
//!
//! psql's exit status says nothing (it returns 0 when statements fail), and
//! `ON_ERROR_STOP` would stop right after the roles are dropped and leave an
//! empty cluster. So the script runs to its end, every `ERROR:` on stderr is
//! classified, and only the errors a `--clean` dump always produces are
//! accepted; anything else fails the restore. The result is then compared
//! with the dump's own row counts, because "psql finished" is not "the data
//! is there" (a connected client makes `DROP DATABASE` fail and the old data
//! stays). Which statement an error came from is echoed by psql 9.5+ and
//! looked up by line for older ones ([`FailedStatements`], `client.rs`).

mod classify;
mod client;
mod stderr;

use std::io::{self, BufReader, Read, Write};
use std::time::{Duration, Instant};

use flate2::bufread::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use super::error::{PgError, Result};
use super::fingerprint::{fingerprint_in, Fingerprint, FingerprintDiff};
use super::process::{kill_tree, OUR_APP};
use super::scan::{DumpScanner, COMPLETE_MARKER};
use super::sql::{cluster_view, connected_backends, ClusterIdentity};
use super::PgTarget;

pub use classify::{AllowedError, HarmlessError};
pub use client::FailedStatements;
pub use stderr::RestoreMessage;
pub(crate) use stderr::{format_messages, STATEMENT_CAP};

/// How a restore behaves.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Start even when clients are connected to the cluster. Default
    /// `false`: refuse before touching anything, since a connected client
    /// makes `DROP DATABASE` fail and the old data stay.
    pub allow_connected_clients: bool,
    /// After psql, compare the cluster's row counts with the dump's.
    /// Default `true`.
    pub verify: bool,
    /// How psql says which statement failed. Default `Auto`: by the
    /// client's version.
    pub failed_statements: FailedStatements,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            allow_connected_clients: false,
            verify: true,
            failed_statements: FailedStatements::Auto,
        }
    }
}

/// What a successful restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The harmless errors psql printed, by name.
    pub allowed: Vec<AllowedError>,
    /// Warnings psql printed (not failures).
    pub warnings: Vec<RestoreMessage>,
    /// Compressed bytes read.
    pub gz_bytes: u64,
    /// SQL bytes fed to psql.
    pub sql_bytes: u64,
    /// Row counts carried by the dump.
    pub dump_fingerprint: Fingerprint,
    /// Whether the cluster was compared with `dump_fingerprint` (and matched).
    pub verified: bool,
    /// Databases in the cluster that the dump does not mention (a restore
    /// leaves them alone).
    pub extra_databases: Vec<String>,
    /// The cluster restored into, read while verifying (`None` unverified).
    pub identity: Option<ClusterIdentity>,
    pub elapsed: Duration,
    /// How psql said which statements failed (`Echoed` or `ByLine`).
    #[serde(default)]
    pub failed_statements: FailedStatements,
}

impl RestoreReport {
    /// The accepted errors as psql printed them, e.g. `ERROR: current user
    /// cannot be dropped`.
    pub fn allowed_messages(&self) -> Vec<String> {
        self.allowed
            .iter()
            .map(|a| format!("ERROR: {}", a.message))
            .collect()
    }
}

/// Restores a gzip'd `pg_dumpall --clean` script into `target` with the
/// default [`RestoreOptions`]. `progress` gets the compressed bytes read.
pub fn restore(
    target: &PgTarget,
    gz_reader: impl Read,
    progress: impl FnMut(u64),
) -> Result<RestoreReport> {
    restore_with(target, gz_reader, &RestoreOptions::default(), progress)
}

/// Counts the compressed bytes the decoder pulls.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// [`restore`] with explicit options.
pub fn restore_with(
    target: &PgTarget,
    gz_reader: impl Read,
    options: &RestoreOptions,
    mut progress: impl FnMut(u64),
) -> Result<RestoreReport> {
    let started = Instant::now();
    if !options.allow_connected_clients {
        // A psql of ours that just exited leaves its backend for a moment:
        // wait (bounded) for those; anyone else's session refuses at once.
        let mut tries = 0;
        loop {
            let backends = connected_backends(target, &[])?;
            let lingering = backends.iter().all(|b| b.application_name == OUR_APP);
            if backends.is_empty() {
                break;
            }
            tries += 1;
            if !lingering || tries >= 40 {
                return Err(PgError::DatabaseInUse {
                    target: target.to_string(),
                    backends,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    let how = options.failed_statements.resolve(target);
    let client::Psql {
        mut child,
        input: mut stdin,
        mut stdout,
        stderr,
    } = client::spawn(target, how)?;

    let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(
        256 << 10,
        Counting {
            inner: gz_reader,
            count: 0,
        },
    ));
    let mut scanner = DumpScanner::new();
    if how == FailedStatements::ByLine {
        scanner = scanner.keeping_statements();
    }
    let mut sql_bytes = 0u64;
    let mut corrupt: Option<io::Error> = None;
    let mut hostile: Option<String> = None;
    let mut pipe_closed = false;

    let (parsed, status) = std::thread::scope(|s| {
        // Both output streams are drained concurrently so psql never blocks.
        s.spawn(move || io::copy(&mut stdout, &mut io::sink()));
        let stderr_thread = s.spawn(move || stderr::parse_stderr(stderr, how.input_name()));

        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    corrupt = Some(e);
                    break;
                }
            };
            scanner.feed(&buf[..n]);
            // Checked before psql gets the line: psql acts on a line only
            // once its newline arrives, and is killed below without one.
            if let Some(h) = scanner.hostile_content() {
                hostile = Some(h.to_string());
                break;
            }
            if stdin.write_all(&buf[..n]).is_err() {
                // psql is gone (connection lost, FATAL): its stderr says why.
                pipe_closed = true;
                break;
            }
            sql_bytes += n as u64;
            progress(decoder.get_ref().get_ref().count);
        }
        if corrupt.is_some() || hostile.is_some() {
            // Kill before closing stdin: at end of input psql would run the
            // half-received statement and commit a half-received COPY.
            kill_tree(&mut child);
        }
        drop(stdin);
        let status = child.wait();
        let parsed = stderr_thread.join().unwrap_or_default();
        (parsed, status)
    });
    let gz_bytes = decoder.get_ref().get_ref().count;

    if hostile.is_some() && corrupt.is_none() {
        // Garbage from a damaged archive looks hostile too: say "corrupt"
        // when the stream is (psql got nothing more either way).
        if let Err(e) = io::copy(&mut decoder, &mut io::sink()) {
            corrupt = Some(e);
        }
    }
    if let Some(source) = corrupt {
        return Err(PgError::CorruptArchive {
            target: target.to_string(),
            gz_bytes,
            sql_bytes,
            source,
        });
    }
    if let Some(problem) = hostile {
        return Err(PgError::DumpFormat {
            problem,
            hint: super::scan::HOSTILE_HINT,
        });
    }
    let status = status.map_err(|source| PgError::Io {
        doing: format!("waiting for psql on {target}"),
        source,
    })?;

    let mut errors = parsed.errors;
    if how == FailedStatements::ByLine {
        classify::statements_from_lines(&mut errors, &scanner.take_statements());
    }
    let (allowed, unexpected) = classify::classify(errors, &target.superuser);
    let failed = |summary: String, messages: Vec<RestoreMessage>| {
        let in_use = messages
            .iter()
            .any(|m| m.message.contains("is being accessed by other users"));
        let hint = if in_use {
            "clients were connected, so databases could not be dropped and the old data \
             is still there: stop the services that use the database, terminate the \
             backends, and restore again"
        } else {
            "the cluster may be partially restored: fix the cause and restore the same \
             dump again (a --clean dump can be restored repeatedly)"
        };
        PgError::RestoreFailed {
            target: target.to_string(),
            summary,
            messages,
            hint,
        }
    };
    if !unexpected.is_empty() {
        let summary = format!(
            "psql reported {} error(s) that are not the known harmless ones{}",
            unexpected.len() + parsed.dropped,
            if status.success() {
                " (psql itself exited with status 0)"
            } else {
                ""
            }
        );
        return Err(failed(summary, unexpected));
    }
    if !status.success() || pipe_closed {
        return Err(failed(
            format!("psql stopped before the end of the dump ({status})"),
            Vec::new(),
        ));
    }
    if !scanner.is_complete() {
        return Err(failed(
            format!(
                "the dump ends after {sql_bytes} bytes without pg_dumpall's `{COMPLETE_MARKER}` \
                 line: it is truncated, and only part of it was restored"
            ),
            Vec::new(),
        ));
    }
    let dump_fingerprint = scanner.finish().map_err(|e| match e {
        PgError::DumpFormat { problem, .. } => failed(problem, Vec::new()),
        other => other,
    })?;

    let mut extra_databases = Vec::new();
    let mut identity = None;
    if options.verify {
        // One session for what the cluster is and holds, one for its rows.
        let view = cluster_view(target)?;
        let live = fingerprint_in(target, &view)?;
        identity = Some(view.identity);
        let mut differences = Vec::new();
        for d in dump_fingerprint.diff(&live) {
            match d {
                FingerprintDiff::ExtraDatabase { database } => extra_databases.push(database),
                other => differences.push(other),
            }
        }
        if !differences.is_empty() {
            return Err(PgError::VerifyFailed {
                target: target.to_string(),
                differences,
            });
        }
    }
    Ok(RestoreReport {
        allowed,
        warnings: parsed.warnings,
        gz_bytes,
        sql_bytes,
        dump_fingerprint,
        verified: options.verify,
        extra_databases,
        identity,
        elapsed: started.elapsed(),
        failed_statements: how,
    })
}
