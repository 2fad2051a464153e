//! `imlrecover plan`: what a restore would change, read-only.

use super::{CmdResult, Outcome};
use crate::cli::PlanArgs;
use crate::plan;
use crate::printer::Printer;
use crate::target::{self, BundleCheck, Target};
use crate::views;

pub fn run(printer: &Printer, args: &PlanArgs) -> CmdResult {
    let t = &args.target;
    let recipe = target::load_recipe(&t.recipe)?;
    let replace = target::replace_addresses(&recipe, &args.replace.replace)?;
    let root = target::root(&t.root)?;
    let bundle = target::bundle_arg(t)?;
    let opened = target::open_bundle(bundle, &recipe, BundleCheck::Require)?;
    let services = target::services(&recipe, &root);
    let plan = Target::new(recipe, root, services, opened, replace)?.plan()?;
    if let Some(out) = &args.out {
        plan::saved::save(&plan, out)?;
    }
    if args.json {
        printer.line(&views::json(&plan))?;
    } else {
        printer.out(&views::human::plan(printer, &plan))?;
        if let Some(out) = &args.out {
            printer.line(&views::human::saved(out))?;
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Clean
    })
}
