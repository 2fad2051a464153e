//! `imlrecover validate`: parse, type-check and build the graph; nothing else.

use super::{load_recipe, CmdResult, Outcome};
use crate::cli::RecipeArgs;
use crate::graph::Graph;
use crate::printer::Printer;

pub fn run(printer: &Printer, args: &RecipeArgs) -> CmdResult {
    let recipe = load_recipe(args)?;
    let graph = Graph::build(&recipe);
    let vars = recipe.variables.len();
    printer.line(&format!(
        "{} {}: {} {}, {} {}, {} {}",
        printer.green("Valid."),
        args.recipe.display(),
        graph.resource_count(),
        plural(graph.resource_count(), "resource", "resources"),
        vars,
        plural(vars, "variable", "variables"),
        graph.edge_count(),
        plural(graph.edge_count(), "edge", "edges"),
    ))?;
    Ok(Outcome::Clean)
}

pub(crate) fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
