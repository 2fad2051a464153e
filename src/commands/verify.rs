//! `imlrecover verify BUNDLE [--drill]`: list every problem; exit 1 if any.

use super::validate::plural;
use super::{CmdResult, Outcome};
use crate::bundle::drill;
use crate::bundle::verify::{self, ProblemKind};
use crate::bundle::Bundle;
use crate::cli::VerifyArgs;
use crate::metrics::{self, Family};
use crate::printer::Printer;
use indicatif::HumanBytes;
use miette::Report;
use std::time::Instant;

pub fn run(printer: &Printer, args: &VerifyArgs) -> CmdResult {
    let started = Instant::now();
    let bundle = Bundle::open(&args.bundle).map_err(Report::new)?;
    let mut report = crate::bundle::check::check(&bundle, None);
    metrics::record(Family::gauge(
        "imlrecover_verify_files",
        "Files the last verify checked.",
        report.files as f64,
    ));
    metrics::record(Family::gauge(
        "imlrecover_verify_bytes",
        "Bytes the last verify read.",
        report.bytes as f64,
    ));
    let mut drill_summary = None;
    let mut drill_record = None;
    // An untrusted dump is not restored, even into a throwaway cluster.
    let untrusted = report
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::Signature);
    if args.drill && !untrusted {
        let drill_started = Instant::now();
        let outcome = drill::drill(&bundle, printer);
        let run = drill::Run::of(&bundle, &outcome, drill_started.elapsed().as_secs_f64());
        match drill::write_record(&bundle, run) {
            Ok((path, record)) => {
                for f in metrics::drill(&record) {
                    metrics::record(f);
                }
                drill_record = Some(path);
            }
            Err(e) => report.problems.push(verify::Problem {
                path: drill::RECORD.to_string(),
                kind: ProblemKind::Drill,
                address: None,
                message: format!(
                    "the drill ran, but its record could not be written to {}: {e}",
                    bundle
                        .dir
                        .parent()
                        .unwrap_or(&bundle.dir)
                        .join(drill::RECORD)
                        .display()
                ),
            }),
        }
        match outcome {
            Ok(passed) => drill_summary = Some(passed.summary),
            Err(problems) => report.problems.extend(problems),
        }
    }

    let name = bundle.dir.display().to_string();
    for p in &report.problems {
        printer.line(&format!("{} {p}", printer.red("✗")))?;
    }
    let n = report.problems.len();
    if n > 0 {
        let drill_failed = report.problems.iter().any(|p| p.kind == ProblemKind::Drill);
        return Err(miette::miette!(
            help = if drill_failed {
                "the dump does not restore to what the manifest recorded; do not rely on this bundle"
            } else {
                "this bundle is not what backup wrote; restore from another bundle"
            },
            "bundle {name} has {n} {}",
            plural(n, "problem", "problems")
        ));
    }
    if !report.sealed.is_empty() {
        printer.line(&format!(
            "{} {} age-encrypted {} checked as ciphertext only (no --age-identity / IMLRECOVER_AGE_IDENTITY): {}",
            printer.yellow("note:"),
            report.sealed.len(),
            plural(report.sealed.len(), "file", "files"),
            report.sealed.join(", ")
        ))?;
    }
    printer.line(&format!(
        "{} {}: {} {} ({}) match the manifest",
        printer.green("Bundle intact:"),
        printer.bold(&name),
        report.files,
        plural(report.files, "file", "files"),
        HumanBytes(report.bytes)
    ))?;
    for c in &report.certs {
        printer.line(&format!("  {} {c}", printer.green("✓")))?;
    }
    if crate::bundle::crypt::have_identity() {
        let encrypted = bundle
            .manifest
            .stored
            .values()
            .filter(|s| s.encrypted)
            .count();
        let ids = crate::bundle::crypt::identity_files();
        printer.line(&if encrypted == 0 {
            format!(
                "{} the bundle holds no age-encrypted files: there was nothing for {ids} to open",
                printer.yellow("note:")
            )
        } else {
            // Every encrypted file was decrypted and its plaintext hashed above.
            format!(
                "  {} the age identity {ids} opens all {encrypted} encrypted {} of {}",
                printer.green("✓"),
                plural(encrypted, "file", "files"),
                bundle.name()
            )
        })?;
    }
    if let Some(s) = drill_summary {
        printer.line(&format!("{} {s}", printer.green("Drill passed:")))?;
    }
    if let Some(path) = drill_record {
        printer.line(&printer.dim(&format!("  drill recorded in {}", path.display())))?;
    }
    printer.line(&printer.dim(&format!(
        "  checked in {}",
        humantime::format_duration(std::time::Duration::from_millis(
            started.elapsed().as_millis() as u64
        ))
    )))?;
    Ok(Outcome::Clean)
}
