//! SSH boundary (ssh2/libssh2): connect with timeouts, verify the host key
//! against a known_hosts file with OpenSSH's rules, authenticate with
//! ssh-agent or an identity file, run commands with a deadline, and fan a job
//! out over many hosts.
//!
//! Everything that can block takes a bound: the TCP connect, the handshake
//! and authentication are each limited by [`SshTarget::connect_timeout`], and
//! [`Connection::run`] by its `timeout`; a host that accepts the connection
//! and then says nothing makes us fail, never hang.
//!
//! Host keys are checked by [`known_hosts`] before any credential is offered.
//! A known_hosts line without `[host]:port` only vouches for port 22 (OpenSSH
//! semantics, unlike libssh2's own matcher); see that module.

mod auth;
mod connect;
mod errors;
pub mod known_hosts;
mod session;
mod target;

use std::time::Duration;

pub use super::fanout::{fan_out, fan_out_with_progress, Progress};
pub use auth::{key_is_encrypted, prompt_passphrase, set_passphrase_prompt, PassphrasePrompt};
pub use connect::connect;
pub use errors::{HostKeyReport, SshError};
pub use known_hosts::{fingerprint_sha256, KnownHosts, Verdict};
pub use session::{run_on_all, CommandOutput, Connection};
pub use target::{shell_quote, SshTarget};

/// Environment variable holding the identity file's passphrase when the
/// caller passes none.
pub const PASSPHRASE_ENV: &str = "IMLRECOVER_SSH_PASSPHRASE";

/// Default bound for TCP connect, handshake and authentication (each).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this much of a command's merged output is kept; the rest is read
/// and discarded so the remote side never blocks on a full window.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
