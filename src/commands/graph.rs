//! `imlrecover graph`: the dependency DAG as DOT on stdout.

use super::{CmdResult, Outcome};
use crate::cli::RecipeArgs;
use crate::graph::Graph;
use crate::printer::Printer;
use crate::target::load_recipe;

pub fn run(printer: &Printer, args: &RecipeArgs) -> CmdResult {
    let recipe = load_recipe(args)?;
    printer.out(&Graph::build(&recipe).to_dot())?;
    Ok(Outcome::Clean)
}
