//! What `verify` tells a person: every problem, or what was found intact.

use super::plural;
use crate::bundle::verify::Report;
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
