//! What `verify` tells a person: every problem, or what was found intact.

use super::document::Case;
use super::plural;
use crate::bundle::verify::{ProblemKind, Report};
use crate::bundle::Bundle;
use crate::printer::Printer;
use indicatif::HumanBytes;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// One line per problem (the error that follows counts them).
pub fn problems(p: &Printer, report: &Report) -> String {
    let mut out = String::new();
    for problem in &report.problems {
        let _ = writeln!(out, "{} {problem}", p.red("✗"));
    }
    out
}

/// A bundle that verified, as `verify` measured it.
pub struct Intact<'a> {
    pub bundle: &'a Bundle,
    pub report: &'a Report,
    pub drill_summary: Option<&'a str>,
    pub drill_record: Option<&'a Path>,
    pub elapsed: Duration,
}

pub fn intact(p: &Printer, i: &Intact) -> String {
    let (bundle, report) = (i.bundle, i.report);
    let mut out = String::new();
    if !report.sealed.is_empty() {
        let _ = writeln!(
            out,
            "{} {} age-encrypted {} checked as ciphertext only (no --age-identity / IMLRECOVER_AGE_IDENTITY): {}",
            p.yellow("note:"),
            report.sealed.len(),
            plural(report.sealed.len(), "file", "files"),
            report.sealed.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "{} {}: {} {} ({}) match the manifest",
        p.green("Bundle intact:"),
        p.bold(&bundle.dir.display().to_string()),
        report.files,
        plural(report.files, "file", "files"),
        HumanBytes(report.bytes)
    );
    for c in &report.certs {
        let _ = writeln!(out, "  {} {c}", p.green("✓"));
    }
    if crate::bundle::crypt::have_identity() {
        let encrypted = bundle
            .manifest
            .stored
            .values()
            .filter(|s| s.encrypted)
            .count();
        let ids = crate::bundle::crypt::identity_files();
        let _ = writeln!(
            out,
            "{}",
            if encrypted == 0 {
                format!(
                    "{} the bundle holds no age-encrypted files: there was nothing for {ids} to open",
                    p.yellow("note:")
                )
            } else {
                // Every encrypted file was decrypted and its plaintext hashed.
                format!(
                    "  {} the age identity {ids} opens all {encrypted} encrypted {} of {}",
                    p.green("✓"),
                    plural(encrypted, "file", "files"),
                    bundle.name()
                )
            }
        );
    }
    if let Some(s) = i.drill_summary {
        let _ = writeln!(out, "{} {s}", p.green("Drill passed:"));
    }
    if let Some(path) = i.drill_record {
        let _ = writeln!(
            out,
            "{}",
            p.dim(&format!("  drill recorded in {}", path.display()))
        );
    }
    let _ = writeln!(
        out,
        "{}",
        p.dim(&format!(
            "  checked in {}",
            humantime::format_duration(Duration::from_millis(i.elapsed.as_millis() as u64))
        ))
    );
    out
}

/// `verify --format json|junit`: every problem, what was found intact and
/// the drill (docs/output.md).
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyRecord {
    pub bundle: String,
    pub files: usize,
    pub bytes: u64,
    pub problems: Vec<ProblemRecord>,
    pub certificates: Vec<String>,
    /// Encrypted files checked as ciphertext only (no age identity given).
    pub sealed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillRecord>,
    pub seconds: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct ProblemRecord {
    pub path: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct DrillRecord {
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Where the result was recorded (drill.json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub seconds: f64,
}

/// The checks verify makes, as JUnit testcases: one per kind of problem.
const CHECKS: &[ProblemKind] = &[
    ProblemKind::Manifest,
    ProblemKind::Unsafe,
    ProblemKind::Missing,
    ProblemKind::Truncated,
    ProblemKind::Modified,
    ProblemKind::Extra,
    ProblemKind::Gzip,
    ProblemKind::Dump,
    ProblemKind::Permissions,
    ProblemKind::Cert,
    ProblemKind::Unreadable,
    ProblemKind::Signature,
];

impl VerifyRecord {
    pub fn checked(&mut self, report: &Report) {
        self.files = report.files;
        self.bytes = report.bytes;
        self.certificates = report.certs.clone();
        self.sealed = report.sealed.clone();
        self.problems = report
            .problems
            .iter()
            .map(|p| ProblemRecord {
                path: p.path.clone(),
                kind: p.kind.as_str(),
                address: p.address.as_ref().map(|a| a.to_string()),
                message: p.message.clone(),
            })
            .collect();
    }
}

impl super::document::Record for VerifyRecord {
    fn cases(&self, error: Option<&str>) -> Vec<Case> {
        let mut kinds: Vec<ProblemKind> = CHECKS.to_vec();
        if self.drill.is_some() {
            kinds.push(ProblemKind::Drill);
        }
        let mut cases: Vec<Case> = kinds
            .iter()
            .map(|k| {
                let found: Vec<String> = self
                    .problems
                    .iter()
                    .filter(|p| p.kind == k.as_str())
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect();
                let seconds = match k {
                    ProblemKind::Drill => self.drill.as_ref().map_or(0.0, |d| d.seconds),
                    _ => 0.0,
                };
                if found.is_empty() {
                    Case::passed(k.as_str(), seconds)
                } else {
                    Case::failed(k.as_str(), seconds, found.join("\n"))
                }
            })
            .collect();
        // A bundle that would not even open has no checks to show.
        if self.files == 0 && self.problems.is_empty() {
            if let Some(e) = error {
                cases = vec![Case::failed("open", 0.0, e)];
            }
        }
        cases
    }
}
