//! psql's stderr during a restore, read into messages: each `ERROR:` with
//! the script line psql names, the statement it echoes (`-b`), and the
//! DETAIL/HINT/CONTEXT lines that follow.

use std::fmt;
use std::io::{BufReader, Read};

use serde::{Deserialize, Serialize};

use crate::host::postgres::process::{for_each_line_capped, truncate, TAIL_LINE_CAP};

/// Most psql messages kept (a broken dump can fail on every statement).
const MAX_MESSAGES: usize = 500;
/// Longest echoed statement kept in a message.
pub(crate) const STATEMENT_CAP: usize = 600;

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

#[derive(Debug, Default)]
pub(super) struct ParsedStderr {
    pub(super) errors: Vec<RestoreMessage>,
    pub(super) warnings: Vec<RestoreMessage>,
    /// Errors beyond MAX_MESSAGES (counted, not kept).
    pub(super) dropped: usize,
}

/// Where the last message went, so continuation lines can follow it.
#[derive(Clone, Copy, PartialEq)]
enum Last {
    None,
    Error,
    Warning,
    Statement,
}

/// Reads psql's stderr; `input` is the script's name as psql prints it
/// (`<stdin>` for `-f -`, `/dev/stdin`).
pub(super) fn parse_stderr(stderr: impl Read, input: &str) -> ParsedStderr {
    let prefix = format!("psql:{input}:");
    let mut p = ParsedStderr::default();
    let mut last = Last::None;
    let _ = for_each_line_capped(BufReader::new(stderr), TAIL_LINE_CAP, |raw| {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        let (line, body) = split_location(text, &prefix);
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

/// `psql:<stdin>:12: ERROR:  x` (prefix `psql:<stdin>:`) → (Some(12),
/// Some("ERROR:  x")); psql's own `psql: error: …` → (None, Some("error:
/// …")); anything else is a continuation line.
fn split_location<'a>(text: &'a str, prefix: &str) -> (Option<u64>, Option<&'a str>) {
    if let Some(rest) = text.strip_prefix(prefix) {
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
