//! `init [--root DIR] [--var NAME=VALUE]... [-o FILE [--force]]`

use crate::recipe::VarInput;
use clap::Args;
use std::path::PathBuf;

/// `imlrecover init`: a recipe drafted for the live host.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Reads the host (read-only): the IML release (rpm database, egg-info or scm_version.py), \
                  SysV or systemd, PostgreSQL's service, data directory and socket, InfluxDB, and the \
                  managed storage servers from the manager's database. Exit 1 on a host that is not an \
                  IML manager, writing nothing.\n\n\
                  imlrecover init -o /etc/imlrecover/manager.hcl"
)]
pub struct InitArgs {
    #[command(flatten)]
    pub root: super::RootArgs,

    /// Set a variable of the drafted recipe: --var agents='["oss1","oss2"]'. Wins over detection.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = VarInput::parse_pair)]
    pub vars: Vec<(String, String)>,

    /// Write the recipe to FILE (refused if it exists, unless --force); default: stdout.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// With -o: replace FILE if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}
