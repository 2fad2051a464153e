//! `imlrecover audit`: drift and health of the live host against a recipe
//! and its newest bundle, for CI and timers. Read-only. Exit 0 clean, 2
//! findings, 1 when the audit could not be done (never reported as drift).

use super::{load_recipe, CmdResult, Outcome};
use crate::audit;
use crate::bundle::Bundle;
use crate::cli::{AuditArgs, AuditFormat, TargetArgs};
use crate::host::fs::Root;
use crate::printer::Printer;

pub fn run(printer: &Printer, args: &AuditArgs) -> CmdResult {
    let recipe = load_recipe(&args.recipe)?;
    let root = Root::new(&args.root)?;
    let bundle = Bundle::open(&args.bundle)?;
    let target = TargetArgs {
        recipe: args.recipe.clone(),
        root: args.root.clone(),
        bundle: args.bundle.clone(),
        replace: Vec::new(),
    };
    // The plan's errors (an unreachable database, an unreadable file) are
    // the audit's errors: without a plan there is no drift to report.
    let plan = super::plan::make_plan(&recipe, &target, false).map_err(|e| {
        e.wrap_err("the audit could not compare the host with the recipe (an error, not drift)")
    })?;
    let report = audit::run(&audit::Inputs {
        recipe: &recipe,
        root: &root,
        bundle: &bundle,
        plan: &plan,
        max_age: args.max_age,
        cert_min_days: args.cert_min_days,
        now: std::time::SystemTime::now(),
    })?;
    match args.format {
        AuditFormat::Human => printer.out(&audit::human::report(printer, &report))?,
        AuditFormat::Json => printer.line(&audit::json(&report))?,
        AuditFormat::Junit => printer.out(&audit::junit::report(&report))?,
    }
    Ok(if report.clean() {
        Outcome::Clean
    } else {
        Outcome::Changes
    })
}
