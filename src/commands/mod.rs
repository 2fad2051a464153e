//! One module per subcommand; `run` parses arguments, installs the
//! diagnostic hook and maps outcomes to exit codes (0 ok, 1 error, 2 changes).

mod apply;
mod audit;
mod backup;
mod completions;
mod demo;
mod graph;
mod man;
pub(crate) mod plan;
mod pull;
mod push;
mod show;
mod validate;
mod verify;

use crate::cli::{Cli, Command};
use crate::printer::Printer;
use clap::Parser;
use std::process::ExitCode;

/// What a successful command found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// Changes or drift present; exit 2 where the command says so.
    Changes,
}

pub type CmdResult = miette::Result<Outcome>;

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    let printer = Printer::detect(cli.color);
    install_hook(&printer);
    if let Err(e) = crate::bundle::crypt::load_identities(&cli.age_identity) {
        eprintln!("{:?}", miette::Report::new(e));
        return ExitCode::from(1);
    }
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&printer, args),
        Command::Graph(args) => graph::run(&printer, args),
        Command::Backup(args) => backup::run(&printer, args),
        Command::Verify(args) => verify::run(&printer, args),
        Command::Plan(args) => plan::run(&printer, args),
        Command::Show(args) => show::run(&printer, args),
        Command::Apply(args) => apply::run(&printer, args),
        Command::Audit(args) => audit::run(&printer, args),
        Command::Demo(args) => demo::run(&printer, args),
        Command::Push(args) => push::run(&printer, args),
        Command::Pull(args) => pull::run(&printer, args),
        Command::Completions(args) => completions::run(&printer, args),
        Command::Man(args) => man::run(&printer, args),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(report) if is_broken_pipe(&report) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
    }
}

/// Must run before any `Report` is created (DESIGN.md §5).
fn install_hook(printer: &Printer) {
    let color = printer.color;
    // Wrap for a person at a terminal; keep lines whole for logs and grep.
    let wrap = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let unicode = color || std::env::var("LANG").is_ok_and(|l| l.contains("UTF-8"));
    let _ = miette::set_hook(Box::new(move |_| {
        let theme = match (color, unicode) {
            (true, _) => miette::GraphicalTheme::unicode(),
            (false, true) => miette::GraphicalTheme::unicode_nocolor(),
            (false, false) => miette::GraphicalTheme::ascii(),
        };
        Box::new(
            miette::MietteHandlerOpts::new()
                .graphical_theme(theme)
                .terminal_links(false)
                .wrap_lines(wrap)
                .build(),
        )
    }));
}

fn is_broken_pipe(report: &miette::Report) -> bool {
    report
        .downcast_ref::<crate::printer::PipeClosed>()
        .is_some()
}

/// Loads the recipe named by `-r`, as every recipe-taking command does.
pub(crate) fn load_recipe(args: &crate::cli::RecipeArgs) -> miette::Result<crate::recipe::Recipe> {
    crate::recipe::load(&args.recipe, &args.var_input()).map_err(miette::Report::new)
}
