//! `imlrecover apply`: the apply protocol ([`crate::apply::protocol`]) on a
//! fresh or a saved plan, told to the human view.

use super::{CmdResult, Outcome};
use crate::apply::protocol;
use crate::cli::ApplyArgs;
use crate::printer::Printer;
use crate::views::apply::Human;

pub fn run(printer: &Printer, args: &ApplyArgs) -> CmdResult {
    let view = Human::new(printer);
    match &args.plan {
        Some(planfile) => {
            protocol::saved(&view, planfile, &args.target.recipe.var_input(), args.wait)?
        }
        None => protocol::fresh(
            &view,
            &args.target,
            &args.replace,
            args.auto_approve,
            args.wait,
        )?,
    }
    Ok(Outcome::Clean)
}
