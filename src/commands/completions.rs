//! `imlrecover completions bash|zsh|fish`: generated from the clap
//! definitions, so they never drift from `--help`.

use super::{CmdResult, Outcome};
use crate::cli::{Cli, CompletionShell, CompletionsArgs};
use crate::printer::Printer;
use clap::CommandFactory;
use clap_complete::Shell;

pub fn run(printer: &Printer, args: &CompletionsArgs) -> CmdResult {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "imlrecover", &mut script);
    printer.out(&String::from_utf8_lossy(&script))?;
    Ok(Outcome::Clean)
}
