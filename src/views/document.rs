//! The machine-readable result of a command run (`--format json|junit`):
//! one JSON document or one JUnit testsuite on stdout, also when the
//! command failed (docs/output.md). The command's own views fill in what
//! it did; this module adds the envelope and writes it.

use super::audit::junit::escape;
use crate::cli::Format;
use crate::commands::{CmdResult, Outcome};
use crate::printer::Printer;
use serde::Serialize;
use std::fmt::Write;
use std::sync::Mutex;

/// The version of every command's document; bumped on incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// One JUnit testcase: a step, a check or a host.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub name: String,
    pub seconds: f64,
    pub failure: Option<String>,
    /// Why it was not run (a step after a failure).
    pub skipped: Option<String>,
}

impl Case {
    pub fn passed(name: impl Into<String>, seconds: f64) -> Case {
        Case {
            name: name.into(),
            seconds,
            ..Case::default()
        }
    }

    pub fn failed(name: impl Into<String>, seconds: f64, message: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            seconds,
            failure: Some(message.into()),
            skipped: None,
        }
    }
}

/// What a command run contributes to its document.
pub trait Record: Serialize {
    /// Its testcases, in order; `error` is what stopped the command.
    fn cases(&self, error: Option<&str>) -> Vec<Case>;
}

#[derive(Serialize)]
struct Envelope<'a> {
    format_version: u32,
    command: &'a str,
    outcome: &'a str,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A document waiting for the run's final result: `--metrics-file` is
/// written after the command and can still fail it.
struct Pending {
    printer: Printer,
    format: Format,
    command: &'static str,
    /// The command's own fields, a pretty JSON object.
    record: String,
    cases: Vec<Case>,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

/// The exit code `commands::run` gives this result.
pub fn exit_code(result: &CmdResult) -> u8 {
    match result {
        Ok(Outcome::Clean) => 0,
        Ok(Outcome::Changes) => 2,
        Ok(Outcome::Code(c)) => *c,
        Err(_) => 1,
    }
}

/// The error as one line: its message and every cause.
fn error_text(report: &miette::Report) -> String {
    let chain: Vec<String> = report.chain().map(|e| e.to_string()).collect();
    // As the diagnostic on stderr reads: without Rust's `(os error N)`.
    let mut text = crate::printer::without_os_error_numbers(&chain.join(": "));
    if let Some(help) = report.help() {
        let _ = write!(text, " (help: {help})");
    }
    text
}

/// Keeps the document of `command` (nothing for `human`) for [`flush`] and
/// hands the result on unchanged: its error still goes to stderr.
pub fn finish<T: Record>(
    printer: &Printer,
    format: Format,
    command: &'static str,
    record: &T,
    result: CmdResult,
) -> CmdResult {
    if format == Format::Human {
        return result;
    }
    let error = result.as_ref().err().map(error_text);
    let pending = Pending {
        printer: *printer,
        format,
        command,
        // Plain data with string keys: serialisation cannot fail.
        record: serde_json::to_string_pretty(record).unwrap_or_else(|_| "{}".into()),
        cases: record.cases(error.as_deref()),
    };
    if let Ok(mut p) = PENDING.lock() {
        *p = Some(pending);
    }
    result
}

/// Writes the kept document with the run's final result (its outcome and
/// exit code are the process's). A closed stdout is left to the exit code.
pub fn flush(result: &CmdResult) {
    let Some(p) = PENDING.lock().ok().and_then(|mut p| p.take()) else {
        return;
    };
    let error = result.as_ref().err().map(error_text);
    let text = match p.format {
        Format::Human => return,
        Format::Json => json(p.command, &p.record, result, error),
        Format::Junit => junit(p.command, p.cases, error),
    };
    // `out` redacts sensitive values, here as everywhere.
    let _ = p.printer.out(&text);
}

fn json(command: &str, record: &str, result: &CmdResult, error: Option<String>) -> String {
    let envelope = Envelope {
        format_version: FORMAT_VERSION,
        command,
        outcome: if result.is_ok() { "ok" } else { "failed" },
        exit_code: exit_code(result),
        error,
    };
    let head = serde_json::to_string_pretty(&envelope)
        .unwrap_or_else(|e| format!("{{\n  \"format_version\": 1,\n  \"error\": \"{e}\"\n}}"));
    // Two pretty objects made one: the envelope first, then the record's fields.
    match (head.strip_suffix("\n}"), record.strip_prefix("{\n")) {
        (Some(head), Some(fields)) => format!("{head},\n{fields}\n"),
        _ => format!("{head}\n"),
    }
}

/// One testsuite named after the command, in the shape of audit's JUnit.
/// An error no testcase carries is a failing testcase of its own.
pub fn junit(command: &str, mut cases: Vec<Case>, error: Option<String>) -> String {
    if let Some(e) = error {
        if !cases.iter().any(|c| c.failure.is_some()) {
            cases.push(Case::failed(command, 0.0, e));
        }
    }
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\"",
        cases.len()
    );
    let _ = writeln!(out, "<testsuites name=\"imlrecover {command}\" {counts}>");
    let _ = writeln!(
        out,
        "  <testsuite name=\"{command}\" {counts} timestamp=\"{}\">",
        // JUnit's timestamp has no zone designator.
        stamp.trim_end_matches('Z')
    );
    for c in &cases {
        let _ = write!(
            out,
            "    <testcase classname=\"imlrecover.{command}\" name=\"{}\" time=\"{:.3}\"",
            escape(&c.name),
            c.seconds
        );
        match (&c.failure, &c.skipped) {
            (Some(f), _) => {
                let first = f.lines().next().unwrap_or_default();
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{command}\">{}</failure>\n    </testcase>",
                    escape(first),
                    escape(f)
                );
            }
            (None, Some(s)) => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(s)
                );
            }
            (None, None) => out.push_str("/>\n"),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// The command and format of a run that writes a document, if it does.
pub fn requested(command: &crate::cli::Command) -> Option<(&'static str, Format)> {
    use crate::cli::Command as C;
    let (name, output) = match command {
        C::Backup(a) => ("backup", a.output),
        C::Verify(a) => ("verify", a.output),
        C::Apply(a) => ("apply", a.output),
        C::Push(a) => ("push", a.output),
        C::Pull(a) => ("pull", a.output),
        C::Demo(a) => ("demo", a.output),
        _ => return None,
    };
    output.machine().then_some((name, output.format))
}

/// Nothing done: refused before the command began (an unreadable age
/// identity, a bad `--metrics-file`).
#[derive(Serialize)]
struct NotStarted {}

impl Record for NotStarted {
    fn cases(&self, _error: Option<&str>) -> Vec<Case> {
        Vec::new()
    }
}

/// The document of a run refused before its command began.
pub fn refused(
    printer: &Printer,
    command: &crate::cli::Command,
    report: miette::Report,
) -> CmdResult {
    let Some((name, format)) = requested(command) else {
        return Err(report);
    };
    let result = finish(printer, format, name, &NotStarted {}, Err(report));
    flush(&result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_and_the_record_make_one_object() {
        let failed: CmdResult = Err(miette::miette!("boom"));
        for (record, result) in [
            ("{}", Ok(Outcome::Clean)),
            ("{\n  \"files\": 3,\n  \"entries\": []\n}", failed),
        ] {
            let text = json("backup", record, &result, None);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["format_version"], 1);
            assert_eq!(v["exit_code"], exit_code(&result));
            assert_eq!(v["outcome"], if result.is_ok() { "ok" } else { "failed" });
            assert_eq!(
                v.as_object().unwrap().len(),
                if record == "{}" { 4 } else { 6 }
            );
        }
    }
}
