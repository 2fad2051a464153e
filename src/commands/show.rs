//! `imlrecover show PLANFILE`: a saved plan, for people or as JSON.

use super::{CmdResult, Outcome};
use crate::cli::ShowArgs;
use crate::printer::Printer;
use crate::views;

pub fn run(printer: &Printer, args: &ShowArgs) -> CmdResult {
    let plan = super::plan::load(&args.plan)?;
    if args.json {
        printer.line(&views::json(&plan))?;
    } else {
        printer.line(&format!(
            "Plan made {} from recipe {} and bundle {} for root {}.\n",
            plan.created, plan.recipe.path, plan.bundle.id, plan.root
        ))?;
        printer.out(&views::human::plan(printer, &plan))?;
    }
    Ok(Outcome::Clean)
}
