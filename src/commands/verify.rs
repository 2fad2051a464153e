//! `imlrecover verify BUNDLE [--drill]`: list every problem; exit 1 if any.

use super::{CmdResult, Outcome};
use crate::bundle::drill;
use crate::bundle::verify::{self, ProblemKind};
use crate::bundle::Bundle;
use crate::cli::VerifyArgs;
use crate::metrics::{self, Family};
use crate::printer::Printer;
use crate::views::verify::{DrillRecord, VerifyRecord};
use crate::views::{self, plural};
use miette::Report;
use std::time::Instant;

pub fn run(printer: &Printer, args: &VerifyArgs) -> CmdResult {
    let machine = args.output.machine();
    let quiet = printer.for_document();
    let p = if machine { &quiet } else { printer };
    let mut record = VerifyRecord {
        bundle: args.bundle.display().to_string(),
        ..VerifyRecord::default()
    };
    let result = verify(p, args, machine, &mut record);
    views::document::finish(printer, args.output.format, "verify", &record, result)
}

fn verify(
    printer: &Printer,
    args: &VerifyArgs,
    machine: bool,
    record: &mut VerifyRecord,
) -> CmdResult {
    let started = Instant::now();
    let bundle = Bundle::open(&args.bundle).map_err(Report::new)?;
    record.bundle = bundle.dir.display().to_string();
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
        let drilled = record.drill.insert(DrillRecord {
            passed: outcome.is_ok(),
            record: drill_record.as_ref().map(|p| p.display().to_string()),
            seconds: drill_started.elapsed().as_secs_f64(),
            ..DrillRecord::default()
        });
        match outcome {
            Ok(passed) => {
                drilled.summary = Some(passed.summary.clone());
                drill_summary = Some(passed.summary)
            }
            Err(problems) => report.problems.extend(problems),
        }
    }

    let name = bundle.dir.display().to_string();
    record.checked(&report);
    record.seconds = started.elapsed().as_secs_f64();
    if !machine {
        printer.out(&views::verify::problems(printer, &report))?;
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
    if machine {
        return Ok(Outcome::Clean);
    }
    printer.out(&views::verify::intact(
        printer,
        &views::verify::Intact {
            bundle: &bundle,
            report: &report,
            drill_summary: drill_summary.as_deref(),
            drill_record: drill_record.as_deref(),
            elapsed: started.elapsed(),
        },
    ))?;
    Ok(Outcome::Clean)
}
