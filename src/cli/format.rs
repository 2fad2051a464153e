//! `--format human|json|junit`: one flattened option for the commands whose
//! result a program may read (backup, verify, apply, push, pull, demo).

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Junit,
}

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct FormatArgs {
    /// Output: human (for people), json (one document on stdout, docs/output.md),
    /// junit (one testsuite, for GitLab and Jenkins). Errors still go to stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Human)]
    pub format: Format,
}

impl FormatArgs {
    /// A document for programs: stdout holds it and nothing else.
    pub fn machine(&self) -> bool {
        self.format != Format::Human
    }
}

/// `audit --format`: the three above and a Nagios plugin's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Human,
    Json,
    Junit,
    Nagios,
}
