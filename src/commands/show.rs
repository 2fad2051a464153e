//! `imlrecover show PLANFILE`: a saved plan, for people or as JSON.

use super::{CmdResult, Outcome};
use crate::cli::ShowArgs;
use crate::printer::Printer;
use crate::views;

pub fn run(printer: &Printer, args: &ShowArgs) -> CmdResult {
    let plan = crate::plan::saved::load(&args.plan)?;
    if args.json {
        printer.line(&views::json(&plan))?;
    } else {
        printer.line(&views::human::made(&plan))?;
        printer.out(&views::human::plan(printer, &plan))?;
    }
    Ok(Outcome::Clean)
}
