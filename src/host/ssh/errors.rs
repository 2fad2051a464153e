//! What can go wrong talking to one host, in words that say what to do.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::shell_quote;

/// The resolver's own words, without std's "failed to lookup address information: ".
fn dns_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix("failed to lookup address information: ") {
        Some(reason) => reason.to_string(),
        None => text,
    }
}

pub(super) fn human(d: &Duration) -> humantime::FormattedDuration {
    humantime::format_duration(*d)
}

/// Everything that can go wrong talking to one host. Every message names the
/// host as `host:port`.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum SshError {
    #[error("cannot resolve {endpoint}: {}", dns_reason(.source))]
    #[diagnostic(
        code(imlrecover::ssh::dns),
        help("check the host name, /etc/hosts and DNS")
    )]
    Dns {
        endpoint: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "connection to {endpoint}{} refused: no SSH server is listening on port {port}",
        via(.endpoint, .addr)
    )]
    #[diagnostic(
        code(imlrecover::ssh::refused),
        help("is sshd running on that host, and is the port right?")
    )]
    Refused {
        endpoint: String,
        addr: SocketAddr,
        port: u16,
    },

    #[error("{endpoint}{} is unreachable: {source}", via(.endpoint, .addr))]
    #[diagnostic(code(imlrecover::ssh::unreachable))]
    Unreachable {
        endpoint: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("connecting to {endpoint}{} timed out after {}", via(.endpoint, .addr), human(.timeout))]
    #[diagnostic(
        code(imlrecover::ssh::connect_timeout),
        help("the host is down or a firewall drops the traffic")
    )]
    ConnectTimeout {
        endpoint: String,
        addr: SocketAddr,
        timeout: Duration,
    },

    #[error(
        "SSH handshake with {endpoint} timed out after {}: the port accepts connections but no SSH server answered in time",
        human(.timeout)
    )]
    #[diagnostic(code(imlrecover::ssh::handshake_timeout))]
    HandshakeTimeout { endpoint: String, timeout: Duration },

    #[error("SSH handshake with {endpoint} failed: {source}")]
    #[diagnostic(code(imlrecover::ssh::handshake))]
    Handshake {
        endpoint: String,
        #[source]
        source: ssh2::Error,
    },

    #[error("cannot read known_hosts file {} to verify {endpoint}: {source}", .path.display())]
    #[diagnostic(code(imlrecover::ssh::known_hosts))]
    KnownHostsRead {
        endpoint: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "host key of {} is not known: {} has no entry for `{}`{}. \
         The server presented {} key {}. \
         Check that fingerprint out of band (on the host: `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub`), \
         then record it with `{}`{}",
        .key.endpoint,
        .key.known_hosts.display(),
        .key.lookup,
        if *.known_hosts_exists { "" } else { " (the file does not exist)" },
        .key.key_type,
        .key.fingerprint,
        short_key_type(&.key.key_type),
        .key.keyscan,
        portless_note(.portless_lines)
    )]
    #[diagnostic(code(imlrecover::ssh::unknown_host_key))]
    UnknownHostKey {
        key: Box<HostKeyReport>,
        known_hosts_exists: bool,
        /// Lines naming the bare host (port 22 only) when another port was asked for.
        portless_lines: Vec<usize>,
    },

    #[error(
        "HOST KEY MISMATCH for {}: the server presented {} key {}, \
         which is not the key recorded for `{}` in {} (line {}). \
         Someone may be intercepting the connection, or the host was reinstalled. \
         Verify the new fingerprint out of band (on the host: `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub`); \
         if it is legitimate, remove the old entry with `ssh-keygen -R {} -f {}` and record the new key with `{}`",
        .key.endpoint,
        .key.key_type,
        .key.fingerprint,
        .key.lookup,
        .key.known_hosts.display(),
        join_lines(.lines),
        short_key_type(&.key.key_type),
        shell_quote(&.key.lookup),
        shell_quote(&.key.known_hosts.to_string_lossy()),
        .key.keyscan
    )]
    #[diagnostic(code(imlrecover::ssh::host_key_mismatch))]
    HostKeyMismatch {
        key: Box<HostKeyReport>,
        /// The known_hosts lines holding other keys for this host.
        lines: Vec<usize>,
    },

    #[error(
        "host key of {} ({} {}) is marked @revoked in {} line {line}: refusing to connect",
        .key.endpoint,
        .key.key_type,
        .key.fingerprint,
        .key.known_hosts.display()
    )]
    #[diagnostic(code(imlrecover::ssh::host_key_revoked))]
    HostKeyRevoked {
        key: Box<HostKeyReport>,
        line: usize,
    },

    #[error("authentication as `{user}` on {endpoint} failed; tried: {}", .tried.join("; "))]
    #[diagnostic(
        code(imlrecover::ssh::auth),
        help("is the public key in ~{user}/.ssh/authorized_keys on that host, and is the passphrase right?")
    )]
    Auth {
        endpoint: String,
        user: String,
        tried: Vec<String>,
    },

    #[error(
        "command on {endpoint} did not finish within {} (it may still be running there): {command}",
        human(.timeout)
    )]
    #[diagnostic(code(imlrecover::ssh::command_timeout))]
    CommandTimeout {
        endpoint: String,
        command: String,
        timeout: Duration,
        /// Merged output received before the deadline.
        partial_output: String,
    },

    #[error("SSH error on {endpoint} while {during}: {source}")]
    #[diagnostic(code(imlrecover::ssh::session))]
    Session {
        endpoint: String,
        during: &'static str,
        #[source]
        source: ssh2::Error,
    },

    #[error("I/O error on {endpoint} while {during}: {source}")]
    #[diagnostic(code(imlrecover::ssh::io))]
    Io {
        endpoint: String,
        during: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SshError {
    /// The `host:port` the error is about.
    pub fn endpoint(&self) -> &str {
        match self {
            SshError::Dns { endpoint, .. }
            | SshError::Refused { endpoint, .. }
            | SshError::Unreachable { endpoint, .. }
            | SshError::ConnectTimeout { endpoint, .. }
            | SshError::HandshakeTimeout { endpoint, .. }
            | SshError::Handshake { endpoint, .. }
            | SshError::KnownHostsRead { endpoint, .. }
            | SshError::Auth { endpoint, .. }
            | SshError::CommandTimeout { endpoint, .. }
            | SshError::Session { endpoint, .. }
            | SshError::Io { endpoint, .. } => endpoint,
            SshError::UnknownHostKey { key, .. }
            | SshError::HostKeyMismatch { key, .. }
            | SshError::HostKeyRevoked { key, .. } => &key.endpoint,
        }
    }
}

/// The presented host key and what to do about it (boxed in [`SshError`]
/// to keep the error small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyReport {
    /// `host:port`.
    pub endpoint: String,
    /// The name looked up in known_hosts: `host` or `[host]:port`.
    pub lookup: String,
    /// e.g. `ssh-ed25519`.
    pub key_type: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub known_hosts: PathBuf,
    /// The `ssh-keyscan ... >> FILE` command that records the key.
    pub keyscan: String,
}

/// `ssh-ed25519` -> `ed25519`, `ecdsa-sha2-nistp256` -> `ecdsa`, as in the
/// host key file names under /etc/ssh.
fn short_key_type(key_type: &str) -> &str {
    match key_type {
        "ssh-ed25519" => "ed25519",
        "ssh-rsa" => "rsa",
        "ssh-dss" => "dsa",
        t if t.starts_with("ecdsa-") => "ecdsa",
        t => t,
    }
}

/// ` (ADDR)` when the resolved address adds information to `host:port`.
fn via(endpoint: &str, addr: &SocketAddr) -> String {
    let addr = addr.to_string();
    if addr == endpoint {
        String::new()
    } else {
        format!(" ({addr})")
    }
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn portless_note(lines: &[usize]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(
            ". Note: line{} {} name{} this host without a port; such a line only covers port 22, \
             a `[host]:port` line is needed for any other port",
            if lines.len() == 1 { "" } else { "s" },
            join_lines(lines),
            if lines.len() == 1 { "s" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dns_failure_says_its_cause_once_in_the_resolvers_words() {
        // As std reports getaddrinfo's EAI_NONAME.
        let err = SshError::Dns {
            endpoint: "oss9:22".into(),
            source: io::Error::other(
                "failed to lookup address information: Name or service not known",
            ),
        };
        let text = crate::printer::ErrorRenderer::plain().render(&err);
        assert_eq!(
            text.matches("Name or service not known").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("cannot resolve oss9:22: Name or service not known"),
            "{text}"
        );
        assert!(
            !text.contains("failed to lookup") && !text.contains("imlrecover::"),
            "{text}"
        );
    }

    #[test]
    fn errors_stay_small() {
        // Results of SshError travel through fan-out vectors of hundreds.
        assert!(std::mem::size_of::<SshError>() <= 128);
    }
}
