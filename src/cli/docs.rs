//! The arguments of the commands that write the documentation: shell
//! completions and man pages.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `completions bash|zsh|fish`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "bash: imlrecover completions bash > /etc/bash_completion.d/imlrecover\n\
                  zsh:  imlrecover completions zsh > /usr/share/zsh/site-functions/_imlrecover\n\
                  fish: imlrecover completions fish > /usr/share/fish/vendor_completions.d/imlrecover.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `man [DIR]`
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write imlrecover.1 and imlrecover-SUBCOMMAND.1 here (created if missing).
    /// Without it, imlrecover(1) goes to stdout (`imlrecover man | man -l -`).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
