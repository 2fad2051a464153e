//! `imlrecover validate`: parse, type-check and build the graph; nothing else.

use super::{CmdResult, Outcome};
use crate::cli::RecipeArgs;
use crate::graph::Graph;
use crate::printer::Printer;
use crate::target::load_recipe;
use crate::views::plural;

pub fn run(printer: &Printer, args: &RecipeArgs) -> CmdResult {
    let recipe = load_recipe(args)?;
    let graph = Graph::build(&recipe);
    let vars = recipe.variables.len();
    printer.line(&format!(
        "{} {}: {} {}, {} {}, {} {}",
        printer.green("Valid."),
        args.recipe
            .as_deref()
            .unwrap_or(std::path::Path::new(""))
            .display(),
        graph.resource_count(),
        plural(graph.resource_count(), "resource", "resources"),
        vars,
        plural(vars, "variable", "variables"),
        graph.edge_count(),
        plural(graph.edge_count(), "edge", "edges"),
    ))?;
    Ok(Outcome::Clean)
}
