//! `imlrecover verify BUNDLE [--drill]`: list every problem; exit 1 if any.

use super::validate::plural;
use super::{CmdResult, Outcome};
use crate::bundle::verify::ProblemKind;
use crate::bundle::Bundle;
use crate::cli::VerifyArgs;
use crate::printer::Printer;
use indicatif::HumanBytes;
use miette::Report;
use std::time::Instant;

pub fn run(printer: &Printer, args: &VerifyArgs) -> CmdResult {
    let started = Instant::now();
    let bundle = Bundle::open(&args.bundle).map_err(Report::new)?;
    let mut report = crate::bundle::check::check(&bundle, None);
    let mut drill_summary = None;
    if args.drill {
        match crate::bundle::drill::drill(&bundle, printer) {
            Ok(summary) => drill_summary = Some(summary),
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
    if let Some(s) = drill_summary {
        printer.line(&format!("{} {s}", printer.green("Drill passed:")))?;
    }
    printer.line(&printer.dim(&format!(
        "  checked in {}",
        humantime::format_duration(std::time::Duration::from_millis(
            started.elapsed().as_millis() as u64
        ))
    )))?;
    Ok(Outcome::Clean)
}
