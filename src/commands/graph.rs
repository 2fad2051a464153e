//! `imlrecover graph`: the dependency DAG as DOT on stdout.

use super::{load_recipe, CmdResult, Outcome};
use crate::cli::RecipeArgs;
use crate::graph::Graph;
use crate::printer::Printer;

pub fn run(printer: &Printer, args: &RecipeArgs) -> CmdResult {
    let recipe = load_recipe(args)?;
    printer.out(&Graph::build(&recipe).to_dot())?;
    Ok(Outcome::Clean)
}
