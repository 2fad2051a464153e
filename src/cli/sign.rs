//! The signing options (#22), beside the target options they go with.

use clap::Args;
use std::path::PathBuf;

/// `--trust KEY`, on the commands that read bundles (README "Signed bundles").
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// Use only bundles signed by this ed25519 public key: a file
    /// (sign.key.pub from ssh-keygen, or a PEM from `openssl pkey -pubout`)
    /// or the `ssh-ed25519 AAAA…` line. Repeatable; adds to the recipe's `trust`.
    #[arg(long, value_name = "KEY")]
    pub trust: Vec<String>,
}

/// `backup --sign-key FILE` (README "Signed bundles").
#[derive(Debug, Clone, Default, Args)]
pub struct SignArgs {
    /// Sign the bundle's manifest with this ed25519 private key (from
    /// `ssh-keygen -t ed25519` or `openssl genpkey -algorithm ed25519`; mode
    /// 0600, kept off the backup store). Overrides the recipe's `sign_key`.
    #[arg(long = "sign-key", value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}
