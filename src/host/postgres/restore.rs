//! Restoring a gzip'd `pg_dumpall --clean` script with `psql`, safely.
//!
//! psql's exit status says nothing (it returns 0 when statements fail), and
//! `ON_ERROR_STOP` would stop right after the roles are dropped and leave an
//! empty cluster. So the script runs to its end, every `ERROR:` on stderr is
//! classified, and only the errors a `--clean` dump always produces are
//! accepted; anything else fails the restore. The result is then compared
//! with the dump's own row counts, because "psql finished" is not "the data
//! is there" (a connected client makes `DROP DATABASE` fail and the old data
//! stays).

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use flate2::bufread::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use super::error::{PgError, Result};
use super::fingerprint::{fingerprint_in, Fingerprint, FingerprintDiff};
use super::process::{
    for_each_line_capped, kill_tree, program_name, spawn_error, truncate, OUR_APP, TAIL_LINE_CAP,
};
use super::scan::{DumpScanner, COMPLETE_MARKER};
use super::sql::{cluster_view, connected_backends, ClusterIdentity};
use super::PgTarget;

/// Most psql messages kept (a broken dump can fail on every statement).
const MAX_MESSAGES: usize = 500;
/// Longest echoed statement kept in a message.
const STATEMENT_CAP: usize = 600;

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
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            allow_connected_clients: false,
            verify: true,
        }
    }
}

/// The errors every `pg_dumpall --clean` restore prints and that do no harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HarmlessError {
    /// `DROP ROLE <superuser>` while connected as it.
    CurrentUserCannotBeDropped,
    /// `CREATE ROLE <superuser>` after that role could not be dropped.
    SuperuserAlreadyExists,
    /// `DROP DATABASE x` on a cluster that never had it (fresh install).
    DatabaseDidNotExist,
    /// `DROP ROLE x` on a cluster that never had it (fresh install).
    RoleDidNotExist,
}

impl fmt::Display for HarmlessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HarmlessError::CurrentUserCannotBeDropped => "current user cannot be dropped",
            HarmlessError::SuperuserAlreadyExists => "superuser role already exists",
            HarmlessError::DatabaseDidNotExist => "database to drop did not exist",
            HarmlessError::RoleDidNotExist => "role to drop did not exist",
        })
    }
}

/// An accepted error, as psql printed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedError {
    pub kind: HarmlessError,
    /// e.g. `role "postgres" already exists`.
    pub message: String,
    /// Line of the SQL script.
    pub line: Option<u64>,
}

/// One message psql printed on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMessage {
    /// Line of the SQL script it refers to, when psql says.
    pub line: Option<u64>,
    /// `ERROR`, `FATAL`, `PANIC`, `WARNING`, or `psql` for psql's own errors.
    pub severity: String,
    pub message: String,
    /// The failed statement (psql `-b`), shortened.
    pub statement: Option<String>,
    /// DETAIL / HINT / CONTEXT lines.
    pub detail: Vec<String>,
}

impl fmt::Display for RestoreMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        write!(f, "{}: {}", self.severity, self.message)?;
        for d in &self.detail {
            write!(f, "\n        {d}")?;
        }
        if let Some(s) = &self.statement {
            write!(
                f,
                "\n        statement: {}",
                s.replace('\n', "\n          ")
            )?;
        }
        Ok(())
    }
}

pub(crate) fn format_messages(messages: &[RestoreMessage]) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = messages
        .iter()
        .take(SHOWN)
        .map(|m| format!("    {m}"))
        .collect();
    if messages.len() > SHOWN {
        out.push(format!("    … and {} more", messages.len() - SHOWN));
    }
    out.join("\n")
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

    let mut cmd = super::version::restore_client(target)?.client("psql")?;
    // -b echoes each failed statement, which tells a harmless DROP apart
    // from anything else; -f - makes psql prefix messages with line numbers.
    cmd.args(["-X", "-q", "-b", "-d", "postgres", "-f", "-"]);
    let program = program_name(&cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, target, e))?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill_tree(&mut child);
        return Err(PgError::Io {
            doing: "connecting to psql's input and output".into(),
            source: io::Error::other("pipes not captured"),
        });
    };

    let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(
        256 << 10,
        Counting {
            inner: gz_reader,
            count: 0,
        },
    ));
    let mut scanner = DumpScanner::new();
    let mut sql_bytes = 0u64;
    let mut corrupt: Option<io::Error> = None;
    let mut hostile: Option<String> = None;
    let mut pipe_closed = false;

    let (parsed, status) = std::thread::scope(|s| {
        // Both output streams are drained concurrently so psql never blocks.
        s.spawn(move || io::copy(&mut stdout, &mut io::sink()));
        let stderr_thread = s.spawn(move || parse_stderr(stderr));

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

    let (allowed, unexpected) = classify(parsed.errors, &target.superuser);
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
    })
}

#[derive(Debug, Default)]
struct ParsedStderr {
    errors: Vec<RestoreMessage>,
    warnings: Vec<RestoreMessage>,
    /// Errors beyond MAX_MESSAGES (counted, not kept).
    dropped: usize,
}

/// Where the last message went, so continuation lines can follow it.
#[derive(Clone, Copy, PartialEq)]
enum Last {
    None,
    Error,
    Warning,
    Statement,
}

fn parse_stderr(stderr: impl Read) -> ParsedStderr {
    let mut p = ParsedStderr::default();
    let mut last = Last::None;
    let _ = for_each_line_capped(BufReader::new(stderr), TAIL_LINE_CAP, |raw| {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        let (line, body) = split_location(text);
        let Some(body) = body else {
            // A continuation: statement text, `LINE n:` excerpt, caret line.
            match last {
                Last::Statement => {
                    if let Some(st) = p.errors.last_mut().and_then(|m| m.statement.as_mut()) {
                        if st.len() < STATEMENT_CAP {
                            st.push('\n');
                            st.push_str(&truncate(text, STATEMENT_CAP));
                        }
                    }
                }
                Last::Error => {
                    if let Some(m) = p.errors.last_mut() {
                        if m.detail.len() < 8 {
                            m.detail.push(truncate(text.trim(), TAIL_LINE_CAP));
                        }
                    }
                }
                Last::Warning => {}
                Last::None => {
                    // psql's own messages without a script location.
                    push_error(&mut p, None, "psql", text);
                    last = Last::Error;
                }
            }
            return;
        };
        let (severity, message) = split_severity(body);
        match severity {
            "ERROR" | "FATAL" | "PANIC" | "psql" => {
                push_error(&mut p, line, severity, message);
                last = Last::Error;
            }
            "STATEMENT" => {
                if let Some(m) = p.errors.last_mut() {
                    if m.statement.is_none() {
                        m.statement = Some(truncate(message, STATEMENT_CAP));
                    }
                }
                last = Last::Statement;
            }
            "DETAIL" | "HINT" | "CONTEXT" => {
                if last == Last::Error || last == Last::Statement {
                    if let Some(m) = p.errors.last_mut() {
                        if m.detail.len() < 8 {
                            m.detail
                                .push(format!("{severity}: {}", truncate(message, 300)));
                        }
                    }
                }
            }
            "WARNING" => {
                if p.warnings.len() < MAX_MESSAGES {
                    p.warnings.push(RestoreMessage {
                        line,
                        severity: severity.into(),
                        message: message.into(),
                        statement: None,
                        detail: Vec::new(),
                    });
                }
                last = Last::Warning;
            }
            _ => last = Last::Warning, // NOTICE, INFO, LOG: informational
        }
    });
    p
}

fn push_error(p: &mut ParsedStderr, line: Option<u64>, severity: &str, message: &str) {
    if p.errors.len() >= MAX_MESSAGES {
        p.dropped += 1;
        return;
    }
    p.errors.push(RestoreMessage {
        line,
        severity: severity.into(),
        message: truncate(message, TAIL_LINE_CAP),
        statement: None,
        detail: Vec::new(),
    });
}

/// `psql:<stdin>:12: ERROR:  x` → (Some(12), Some("ERROR:  x")); psql's own
/// `psql: error: …` → (None, Some("error: …")); anything else is a
/// continuation line.
fn split_location(text: &str) -> (Option<u64>, Option<&str>) {
    if let Some(rest) = text.strip_prefix("psql:<stdin>:") {
        if let Some((n, body)) = rest.split_once(": ") {
            if let Ok(n) = n.parse() {
                return (Some(n), Some(body));
            }
        }
    }
    if let Some(body) = text.strip_prefix("psql: ") {
        return (None, Some(body));
    }
    (None, None)
}

/// `ERROR:  msg` → ("ERROR", "msg"); psql's `error: msg` → ("psql", "msg").
fn split_severity(body: &str) -> (&str, &str) {
    for sev in [
        "ERROR",
        "FATAL",
        "PANIC",
        "WARNING",
        "NOTICE",
        "INFO",
        "LOG",
        "DETAIL",
        "HINT",
        "CONTEXT",
        "STATEMENT",
    ] {
        if let Some(rest) = body.strip_prefix(sev).and_then(|r| r.strip_prefix(':')) {
            return (sev, rest.trim_start());
        }
    }
    let msg = body.strip_prefix("error:").unwrap_or(body).trim_start();
    ("psql", msg)
}

/// Splits psql's errors into the harmless ones a `--clean` dump always
/// causes and everything else. A harmless message only counts when the
/// failed statement is the one that causes it (a DROP, or CREATE ROLE of
/// the superuser we are connected as).
fn classify(
    errors: Vec<RestoreMessage>,
    superuser: &str,
) -> (Vec<AllowedError>, Vec<RestoreMessage>) {
    let mut allowed = Vec::new();
    let mut unexpected = Vec::new();
    let superuser_exists = format!("role \"{superuser}\" already exists");
    for m in errors {
        let stmt = m.statement.as_deref().unwrap_or("").trim_start();
        let quoted_object = |prefix: &str, suffix: &str| {
            m.message
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .is_some()
        };
        let kind = if m.severity != "ERROR" {
            None
        } else if m.message == "current user cannot be dropped" && stmt.starts_with("DROP ROLE ") {
            Some(HarmlessError::CurrentUserCannotBeDropped)
        } else if m.message == superuser_exists && stmt.starts_with("CREATE ROLE ") {
            Some(HarmlessError::SuperuserAlreadyExists)
        } else if quoted_object("database \"", "\" does not exist")
            && stmt.starts_with("DROP DATABASE ")
        {
            Some(HarmlessError::DatabaseDidNotExist)
        } else if quoted_object("role \"", "\" does not exist") && stmt.starts_with("DROP ROLE ") {
            Some(HarmlessError::RoleDidNotExist)
        } else {
            None
        };
        match kind {
            Some(kind) => allowed.push(AllowedError {
                kind,
                message: m.message,
                line: m.line,
            }),
            None => unexpected.push(m),
        }
    }
    (allowed, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDERR: &str = "psql:<stdin>:14: ERROR:  database \"chroma\" does not exist\n\
psql:<stdin>:14: STATEMENT:  DROP DATABASE chroma;\n\
psql:<stdin>:22: ERROR:  role \"chroma\" does not exist\n\
psql:<stdin>:22: STATEMENT:  DROP ROLE chroma;\n\
psql:<stdin>:23: ERROR:  current user cannot be dropped\n\
psql:<stdin>:23: STATEMENT:  DROP ROLE postgres;\n\
psql:<stdin>:30: ERROR:  role \"postgres\" already exists\n\
psql:<stdin>:30: STATEMENT:  CREATE ROLE postgres;\n\
psql:<stdin>:31: ERROR:  role \"chroma\" already exists\n\
psql:<stdin>:31: STATEMENT:  CREATE ROLE chroma;\n\
psql:<stdin>:40: ERROR:  type \"nosuchtype\" does not exist\n\
LINE 3:  b nosuchtype\n\
           ^\n\
psql:<stdin>:40: STATEMENT:  CREATE TABLE x (\n a int,\n b nosuchtype\n);\n\
psql:<stdin>:41: WARNING:  something odd\n\
psql:<stdin>:50: ERROR:  database \"gone\" does not exist\n\
psql:<stdin>:50: STATEMENT:  ALTER DATABASE gone OWNER TO chroma;\n\
psql:<stdin>:60: error: \\connect: connection to server failed: FATAL:  database \"x\" does not exist\n";

    #[test]
    fn only_the_clean_dump_errors_are_harmless() {
        let parsed = parse_stderr(STDERR.as_bytes());
        assert_eq!(parsed.warnings.len(), 1);
        let (allowed, unexpected) = classify(parsed.errors, "postgres");
        let kinds: Vec<HarmlessError> = allowed.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![
                HarmlessError::DatabaseDidNotExist,
                HarmlessError::RoleDidNotExist,
                HarmlessError::CurrentUserCannotBeDropped,
                HarmlessError::SuperuserAlreadyExists,
            ]
        );
        let bad: Vec<String> = unexpected.iter().map(|m| m.message.clone()).collect();
        assert_eq!(
            bad,
            vec![
                "role \"chroma\" already exists".to_string(),
                "type \"nosuchtype\" does not exist".to_string(),
                "database \"gone\" does not exist".to_string(),
                "\\connect: connection to server failed: FATAL:  database \"x\" does not exist"
                    .to_string(),
            ]
        );
        assert_eq!(unexpected[1].line, Some(40));
        assert!(unexpected[1]
            .statement
            .as_deref()
            .is_some_and(|s| s.contains("b nosuchtype")));
        assert!(unexpected[1].detail.iter().any(|d| d.contains("LINE 3")));
    }

    #[test]
    fn psql_connection_errors_are_failures() {
        let parsed = parse_stderr(
            &b"psql: error: connection to server on socket \"/x/.s.PGSQL.1\" failed: No such file or directory\n"[..],
        );
        let (allowed, unexpected) = classify(parsed.errors, "postgres");
        assert!(allowed.is_empty());
        assert_eq!(unexpected.len(), 1);
        assert_eq!(unexpected[0].severity, "psql");
    }
}
