//! Where and how to connect to one host.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::DEFAULT_CONNECT_TIMEOUT;

/// Where and how to connect.
#[derive(Clone)]
pub struct SshTarget {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key tried after the agent. `None`: agent only.
    pub identity_file: Option<PathBuf>,
    /// Passphrase of `identity_file`; `None` falls back to
    /// [`super::PASSPHRASE_ENV`], then to no passphrase.
    pub passphrase: Option<String>,
    /// ssh-agent socket tried first. [`SshTarget::new`] takes it from
    /// `SSH_AUTH_SOCK`; `None` disables the agent (useful when the agent
    /// holds many keys and the server's `MaxAuthTries` would be exhausted).
    pub agent_socket: Option<PathBuf>,
    /// The known_hosts file the host key must be in.
    pub known_hosts: PathBuf,
    /// Bound on each of TCP connect, handshake and authentication (zero
    /// means [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Skip host key verification entirely. Anyone able to intercept the
    /// connection can then impersonate the host: for throwaway test rigs only.
    pub insecure_accept_any_host_key: bool,
}

impl SshTarget {
    /// A target on port 22 with no identity file, the agent from
    /// `SSH_AUTH_SOCK` (if set) and [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new(
        host: impl Into<String>,
        user: impl Into<String>,
        known_hosts: impl Into<PathBuf>,
    ) -> Self {
        SshTarget {
            host: host.into(),
            port: 22,
            user: user.into(),
            identity_file: None,
            passphrase: None,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            known_hosts: known_hosts.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            insecure_accept_any_host_key: false,
        }
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn with_identity_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.identity_file = Some(path.into());
        self
    }

    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(passphrase.into());
        self
    }

    pub fn with_agent_socket(mut self, socket: Option<PathBuf>) -> Self {
        self.agent_socket = socket;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// `host:port`, with brackets around IPv6 literals; used in every error.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `ssh-keyscan` command that would record this host's key.
    pub(super) fn keyscan_command(&self) -> String {
        let port = if self.port == 22 {
            String::new()
        } else {
            format!("-p {} ", self.port)
        };
        format!(
            "ssh-keyscan {port}{} >> {}",
            shell_quote(&self.host),
            shell_quote(&self.known_hosts.to_string_lossy())
        )
    }
}

impl fmt::Debug for SshTarget {
    // Hand-written so a passphrase never ends up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("identity_file", &self.identity_file)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("agent_socket", &self.agent_socket)
            .field("known_hosts", &self.known_hosts)
            .field("connect_timeout", &self.connect_timeout)
            .field(
                "insecure_accept_any_host_key",
                &self.insecure_accept_any_host_key,
            )
            .finish()
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.endpoint())
    }
}

/// Quotes `s` for a POSIX shell (remote commands, suggested commands).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("chroma-agent"), "chroma-agent");
        assert_eq!(shell_quote("/tmp/known_hosts"), "/tmp/known_hosts");
        // brackets are glob characters
        assert_eq!(shell_quote("[oss1]:2222"), "'[oss1]:2222'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn endpoint_brackets_ipv6_and_debug_hides_the_passphrase() {
        let t = SshTarget::new("::1", "root", "/k")
            .with_port(2222)
            .with_passphrase("s3cret");
        assert_eq!(t.endpoint(), "[::1]:2222");
        assert_eq!(t.to_string(), "root@[::1]:2222");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.keyscan_command(), "ssh-keyscan -p 2222 ::1 >> /k");
    }
}
