//! Raw command-line arguments (clap). Each subcommand's module turns these
//! into validated inputs before touching anything.

use crate::recipe::VarInput;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "imlrecover",
    version,
    about = "Plan/apply backup and restore for the Integrated Manager for Lustre server",
    long_about = "imlrecover turns the IML backup/restore runbook into a declarative recipe: \
                  back the manager server up into a verifiable bundle, plan a restore against \
                  the live host, apply it in dependency order, and audit drift in CI.",
    after_help = "Exit codes: 0 success / no changes, 1 error, 2 changes present (with --detailed-exitcode, and audit findings)."
)]
pub struct Cli {
    /// When to use colour: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and type-check a recipe and build its dependency graph.
    Validate(RecipeArgs),
    /// Print the dependency graph in DOT (pipe to `dot -Tsvg`).
    Graph(RecipeArgs),
}

/// `-r RECIPE [--var K=V]... [--var-file F]...`
#[derive(Debug, Clone, Args)]
pub struct RecipeArgs {
    /// The recipe (HCL), e.g. plans/iml-manager.hcl.
    #[arg(short = 'r', long = "recipe", value_name = "RECIPE")]
    pub recipe: PathBuf,

    /// Set a variable: --var agents='["oss1","oss2"]'. Repeatable; later wins.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = VarInput::parse_pair)]
    pub vars: Vec<(String, String)>,

    /// Read variables from an HCL file of `name = value` lines. Repeatable.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

impl RecipeArgs {
    pub fn var_input(&self) -> VarInput {
        VarInput {
            vars: self.vars.clone(),
            files: self.var_files.clone(),
        }
    }
}
