//! `imlrecover apply`: the apply protocol ([`crate::apply::protocol`]) on a
//! fresh or a saved plan, told to the human view, or gathered into the
//! document of `--format json|junit`.

use super::{CmdResult, Outcome};
use crate::apply::protocol;
use crate::cli::ApplyArgs;
use crate::printer::Printer;
use crate::views::apply::{ApplyView, Human};
use crate::views::apply_record::Gathered;
use crate::views::document;

pub fn run(printer: &Printer, args: &ApplyArgs) -> CmdResult {
    if !args.output.machine() {
        return apply(&Human::new(printer), args);
    }
    let quiet = printer.for_document();
    let view = Gathered::new(&quiet);
    let result = apply(&view, args);
    let record = view.into_record();
    document::finish(printer, args.output.format, "apply", &record, result)
}

fn apply(view: &dyn ApplyView, args: &ApplyArgs) -> CmdResult {
    match &args.plan {
        Some(planfile) => {
            protocol::saved(view, planfile, &args.target.recipe.var_input(), args.wait)?
        }
        None => protocol::fresh(
            view,
            &args.target,
            &args.replace,
            args.auto_approve,
            args.wait,
        )?,
    }
    Ok(Outcome::Clean)
}
