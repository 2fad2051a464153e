//! Off-host copies of bundles over SFTP (`push`, `pull`, `backup --push`).
//!
//! The remote side mirrors a local bundle directory: `PATH/<timestamp>/`
//! with the same files. A push writes into `PATH/.incomplete-<name>-…`,
//! hashes every byte it sends and compares it with the manifest, checks
//! every remote size with `stat`, and only then renames the directory to
//! its timestamp name — so a push that fails or is killed never leaves
//! anything that looks complete. `pull` fetches into a local temporary
//! name, runs the full `verify` and renames. The SSH connection (host key
//! pinned in known_hosts, agent then identity file) is the one
//! `remote_service` uses: [`crate::host::ssh::connect`]. Files of 64 MiB and
//! more to an OpenSSH server also use a second connection, and are flushed
//! while they are sent ([`lanes`]). The names in a bundle directory
//! (temporary, pruning, `latest`) are [`crate::bundle::store`]'s.
//!
//! The engine says nothing itself: it reports the bytes it moves to an
//! [`Events`] (`views::transfer` draws the bar and words the results).

mod lanes;
mod pull;
mod push;
mod remote;
pub mod target;

pub use pull::pull;
pub use push::{push, push_path};
pub use target::{RemoteTarget, SshOptions, TargetError};

use crate::bundle::Manifest;
use crate::host::ssh::SshError;
use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

const CHUNK: usize = 1 << 20;
const DIR_MODE: i32 = 0o700;
const FILE_MODE: i32 = 0o644;
const SENSITIVE_MODE: i32 = 0o600;

/// What a transfer reports while it runs.
pub trait Events: Sync {
    /// `total` bytes are about to move; `what` is `push` or `pull`.
    fn started(&self, what: &'static str, total: u64);
    /// `n` more bytes arrived on the other side.
    fn moved(&self, n: u64);
    /// No more bytes will move (done or failed).
    fn ended(&self);
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TransferError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] TargetError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Ssh(#[from] SshError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Open(#[from] crate::bundle::OpenError),

    #[error("SFTP error on {endpoint} while {during} {}: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::transfer::sftp),
        help("{}", sftp_help(.status))
    )]
    Sftp {
        endpoint: String,
        during: &'static str,
        path: PathBuf,
        status: Option<i32>,
        message: String,
    },

    #[error("cannot {during} {}: {error}", path.display())]
    #[diagnostic(code(imlrecover::transfer::local))]
    Local {
        during: &'static str,
        path: PathBuf,
        error: io::Error,
    },

    #[error("the local bundle is damaged: {rel} does not match its manifest ({detail})")]
    #[diagnostic(
        code(imlrecover::transfer::damaged),
        help("run `imlrecover verify` on it; nothing complete was left on the remote side")
    )]
    LocalDamaged { rel: String, detail: String },

    #[error("{rel} on {endpoint} is {got} bytes after the transfer, {expected} were sent")]
    #[diagnostic(
        code(imlrecover::transfer::remote_size),
        help("the remote file system lost data (full or failing disk?); the incomplete copy was removed")
    )]
    RemoteSize {
        endpoint: String,
        rel: String,
        expected: u64,
        got: u64,
    },

    #[error("{target} holds no complete bundle{}", if .incomplete > &0 { format!(" (only {} incomplete `.incomplete-*` director{} of pushes that did not finish)", .incomplete, if *.incomplete == 1 { "y" } else { "ies" }) } else { String::new() })]
    #[diagnostic(
        code(imlrecover::transfer::no_bundle),
        help("push one first: `imlrecover push BUNDLE {target}` or `imlrecover backup ... --push {target}`")
    )]
    NoBundle { target: String, incomplete: usize },

    #[error("{target} has no complete bundle named `{name}`; it has: {}", if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    #[diagnostic(code(imlrecover::transfer::no_such_bundle))]
    NoSuchBundle {
        target: String,
        name: String,
        available: Vec<String>,
    },

    #[error("the remote manifest {} is unusable: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::transfer::manifest),
        help("the remote copy is damaged or was not written by imlrecover; pull another bundle with --bundle NAME")
    )]
    Manifest { path: PathBuf, message: String },

    #[error("{} already exists; refusing to overwrite a bundle", path.display())]
    #[diagnostic(
        code(imlrecover::transfer::exists),
        help("pull into another directory, or remove the old copy first")
    )]
    LocalExists { path: PathBuf },

    #[error("the pulled bundle {name} does not verify ({} problem{}):\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.join("\n"))]
    #[diagnostic(
        code(imlrecover::transfer::pulled_damaged),
        help("the remote copy is damaged; nothing was kept locally. Pull an older bundle with --bundle NAME")
    )]
    PulledDamaged { name: String, problems: Vec<String> },
}

fn sftp_help(status: &Option<i32>) -> &'static str {
    match status {
        Some(2) => "the path does not exist on the remote side",
        Some(3) => "the remote user may not write there: check ownership and permissions of the target directory",
        Some(4) => "the remote server refused the operation: the remote disk may be full or over quota; the incomplete copy was removed (if the connection still allowed it)",
        Some(7) => "the connection was lost",
        _ => "nothing complete was left on the remote side; retry when the problem is fixed",
    }
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    /// The bundle's name.
    pub name: String,
    /// The remote bundle directory.
    pub remote: String,
    pub files: usize,
    pub bytes: u64,
    /// The bundle was already on the remote side: nothing was sent.
    pub already_there: bool,
    /// Remote bundles removed by the retention rules (`--keep-*`).
    pub pruned: Vec<String>,
    /// Big files were to go over a second connection, which failed (why):
    /// they went over the first alone, slower but whole.
    pub one_connection: Option<String>,
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub path: PathBuf,
    pub name: String,
    pub files: usize,
    pub bytes: u64,
}

/// A file of a bundle as it is stored: what push sends and pull fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub rel: String,
    pub size: u64,
    pub blake3: String,
    pub sensitive: bool,
}

/// Every file a bundle stores (manifest.json excluded), each once.
pub fn stored_files(m: &Manifest) -> Vec<StoredFile> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    // A file stored encrypted or split travels as its parts.
    let mut add = |f: StoredFile| match m.stored.get(&f.rel) {
        Some(stored) => {
            for p in &stored.parts {
                if seen.insert(p.file.clone()) {
                    out.push(StoredFile {
                        rel: p.file.clone(),
                        size: p.size,
                        blake3: p.blake3.clone(),
                        sensitive: f.sensitive,
                    });
                }
            }
        }
        None => {
            if seen.insert(f.rel.clone()) {
                out.push(f);
            }
        }
    };
    for e in &m.entries {
        if let (Some(rel), Some(size), Some(hash)) = (&e.file, e.size, &e.blake3) {
            add(StoredFile {
                rel: rel.clone(),
                size,
                blake3: hash.clone(),
                sensitive: e.sensitive,
            });
        }
    }
    if let Some(db) = &m.database {
        add(StoredFile {
            rel: db.file.clone(),
            size: db.size,
            blake3: db.blake3.clone(),
            sensitive: true,
        });
    }
    out
}
