//! `imlrecover prune --bundle-dir DIR [--keep-* ...] [--dry-run]`: the
//! retention rules of `backup` on their own, with every decision explained.

use super::{CmdResult, Outcome};
use crate::bundle::retention;
use crate::cli::PruneArgs;
use crate::printer::Printer;
use miette::Report;

pub fn run(printer: &Printer, args: &PruneArgs) -> CmdResult {
    let policy = args.retention.policy();
    if policy.is_empty() {
        return Err(miette::miette!(
            help = "give at least one of --keep-last N (or --keep N), --keep-daily N, --keep-weekly N, --keep-monthly N, --keep-within DURATION",
            "no retention rule given: prune would not know what to keep (nothing was removed)"
        ));
    }
    if !args.bundle_dir.is_dir() {
        return Err(miette::miette!(
            help = "pass the directory `imlrecover backup --bundle-dir` writes to",
            "{} is not a directory",
            args.bundle_dir.display()
        ));
    }
    let pruned =
        retention::prune_dir(&args.bundle_dir, &policy, None, args.dry_run).map_err(Report::new)?;
    for (name, why) in &pruned.unverified {
        printer.line(&format!(
            "{} {name} does not verify: {why}",
            printer.yellow("note:")
        ))?;
    }
    if !pruned.decisions.is_empty() && pruned.unverified.len() == pruned.decisions.len() {
        printer.line(&format!(
            "{} no bundle in {} verifies: only the rules decide (run `imlrecover verify` on them)",
            printer.yellow("warning:"),
            args.bundle_dir.display()
        ))?;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut removed = 0usize;
    for d in &pruned.decisions {
        if d.keep() {
            printer.line(&format!(
                "{} {}  ({})",
                printer.green("keep  "),
                d.name,
                d.reasons.join("; ")
            ))?;
        } else {
            removed += 1;
            printer.line(&format!(
                "{} {}  (no rule keeps it: {})",
                printer.red("remove"),
                d.name,
                policy.describe()
            ))?;
        }
    }
    for name in &pruned.busy {
        printer.line(&format!(
            "{} {name}  (being written or left by an interrupted run; never pruned)",
            printer.dim("skip  ")
        ))?;
    }
    let kept = pruned.decisions.len() - removed;
    printer.line(&format!(
        "{}{removed} {verb}, {kept} kept ({}).",
        if args.dry_run { "Dry run: " } else { "" },
        policy.describe()
    ))?;
    Ok(Outcome::Clean)
}
