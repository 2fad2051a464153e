//! Which of psql's errors during a restore are harmless: those a
//! `pg_dumpall --clean` script always causes, and only when the failed
//! statement is the one that causes them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::stderr::RestoreMessage;
use crate::host::postgres::scan::StatementLines;

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

/// An old psql (8.4–9.4, no `-b`) names only the script line of a failed
/// statement: the statement is that line of the dump, where it is a whole
/// one-line statement (every statement a harmless error can come from is).
pub(super) fn statements_from_lines(errors: &mut [RestoreMessage], lines: &StatementLines) {
    for m in errors.iter_mut().filter(|m| m.statement.is_none()) {
        if let Some(text) = m.line.and_then(|n| lines.get(n)) {
            m.statement = Some(text.to_string());
        }
    }
}

/// Splits psql's errors into the harmless ones a `--clean` dump always
/// causes and everything else. A harmless message only counts when the
/// failed statement is the one that causes it (a DROP, or CREATE ROLE of
/// the superuser we are connected as).
pub(super) fn classify(
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
    use crate::host::postgres::restore::stderr::parse_stderr;

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
        let parsed = parse_stderr(STDERR.as_bytes(), "<stdin>");
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
            "<stdin>",
        );
        let (allowed, unexpected) = classify(parsed.errors, "postgres");
        assert!(allowed.is_empty());
        assert_eq!(unexpected.len(), 1);
        assert_eq!(unexpected[0].severity, "psql");
    }

    /// psql 8.4–9.4 prints no statements: the line it names is looked up in
    /// the script fed, whose one-line statements outside COPY data are kept.
    #[test]
    fn an_old_psqls_lines_name_the_statements() {
        let script = "DROP DATABASE chroma;\n\
DROP ROLE postgres;\n\
CREATE ROLE postgres;\n\
\\connect chroma\n\
CREATE TABLE t (\n    a nosuchtype\n);\n\
COPY public.t (a) FROM stdin;\n\
DROP ROLE chroma;\n\
\\.\n\
-- PostgreSQL database cluster dump complete\n";
        let mut scanner = crate::host::postgres::DumpScanner::new().keeping_statements();
        scanner.feed(script.as_bytes());
        let lines = scanner.take_statements();
        assert_eq!(lines.get(1), Some("DROP DATABASE chroma;"));
        assert_eq!(lines.get(7), None, "`);` closes a statement, it is none");
        assert_eq!(lines.get(9), None, "COPY data is never a statement");

        let stderr = "psql:/dev/stdin:1: ERROR:  database \"chroma\" does not exist\n\
psql:/dev/stdin:2: ERROR:  current user cannot be dropped\n\
psql:/dev/stdin:3: ERROR:  role \"postgres\" already exists\n\
psql:/dev/stdin:7: ERROR:  type \"nosuchtype\" does not exist\n\
LINE 2:     a nosuchtype\n\
              ^\n\
psql:/dev/stdin:10: ERROR:  role \"chroma\" does not exist\n";
        let mut errors = parse_stderr(stderr.as_bytes(), "/dev/stdin").errors;
        statements_from_lines(&mut errors, &lines);
        let (allowed, unexpected) = classify(errors, "postgres");
        let kinds: Vec<HarmlessError> = allowed.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![
                HarmlessError::DatabaseDidNotExist,
                HarmlessError::CurrentUserCannotBeDropped,
                HarmlessError::SuperuserAlreadyExists,
            ]
        );
        // No statement for line 7; line 10 is the end of COPY data, not the
        // `DROP ROLE chroma;` row inside it.
        let bad: Vec<(Option<u64>, Option<&str>)> = unexpected
            .iter()
            .map(|m| (m.line, m.statement.as_deref()))
            .collect();
        assert_eq!(bad, vec![(Some(7), None), (Some(10), None)]);
        assert!(unexpected[0].detail.iter().any(|d| d.contains("LINE 2")));
        // The other prefix is not this script's: `<stdin>` lines are not read.
        let other = parse_stderr(stderr.as_bytes(), "<stdin>").errors;
        assert!(other.iter().all(|m| m.line.is_none()));
    }
}
