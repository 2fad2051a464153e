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

pub mod known_hosts;

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssh2::{ErrorCode, ExtendedData, MethodType, Session};

pub use super::fanout::{fan_out, fan_out_with_progress, Progress};
pub use known_hosts::{fingerprint_sha256, KnownHosts, Verdict};

/// Environment variable holding the identity file's passphrase when the
/// caller passes none.
pub const PASSPHRASE_ENV: &str = "IMLRECOVER_SSH_PASSPHRASE";

/// Default bound for TCP connect, handshake and authentication (each).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this much of a command's merged output is kept; the rest is read
/// and discarded so the remote side never blocks on a full window.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

// libssh2 error codes (libssh2.h) that ssh2 does not name.
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;

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
    /// [`PASSPHRASE_ENV`], then to no passphrase.
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
    fn keyscan_command(&self) -> String {
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

/// The resolver's own words, without std's "failed to lookup address information: ".
fn dns_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix("failed to lookup address information: ") {
        Some(reason) => reason.to_string(),
        None => text,
    }
}

fn human(d: &Duration) -> humantime::FormattedDuration {
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

/// libssh2 takes milliseconds as u32, and 0 means "wait forever": never pass 0.
fn timeout_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT)
            | ErrorCode::Session(LIBSSH2_ERROR_SOCKET_TIMEOUT)
    )
}

/// An authenticated SSH session to one host.
pub struct Connection {
    session: Session,
    target: SshTarget,
    endpoint: String,
    host_key_type: String,
    host_key_fingerprint: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .finish_non_exhaustive()
    }
}

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The remote exit status (0 also when the command died of a signal:
    /// check `exit_signal`, or use [`CommandOutput::success`]).
    pub exit_status: i32,
    /// The signal name (`TERM`, `KILL`, ...) if the command died of one.
    pub exit_signal: Option<String>,
    /// stdout and stderr merged in arrival order, lossily decoded as UTF-8,
    /// at most [`MAX_OUTPUT_BYTES`]. The server forwards the two streams
    /// independently, so lines of stdout and stderr may interleave
    /// differently than they were written.
    pub output: String,
    /// True when output beyond [`MAX_OUTPUT_BYTES`] was discarded.
    pub output_truncated: bool,
    pub duration: Duration,
}

impl CommandOutput {
    /// Exited with status 0 and not by a signal.
    pub fn success(&self) -> bool {
        self.exit_status == 0 && self.exit_signal.is_none()
    }
}

/// Connects to `target`, verifies its host key and authenticates.
pub fn connect(target: &SshTarget) -> Result<Connection, SshError> {
    let endpoint = target.endpoint();
    let target = &effective(target);
    let timeout = target.connect_timeout;

    // Read known_hosts before touching the network: a broken file is a local
    // problem and should be reported as such.
    let known = if target.insecure_accept_any_host_key {
        None
    } else {
        Some(
            KnownHosts::load(&target.known_hosts).map_err(|source| SshError::KnownHostsRead {
                endpoint: endpoint.clone(),
                path: target.known_hosts.clone(),
                source,
            })?,
        )
    };

    let stream = tcp_connect(target, &endpoint)?;
    let _ = stream.set_nodelay(true);

    let mut session = Session::new().map_err(|source| SshError::Session {
        endpoint: endpoint.clone(),
        during: "creating a session",
        source,
    })?;
    session.set_timeout(timeout_ms(timeout));
    if let Some(known) = &known {
        prefer_known_key_types(&session, &known.known_key_types(&target.host, target.port));
    }
    session.set_tcp_stream(stream);
    session.handshake().map_err(|source| {
        if is_timeout(&source) {
            SshError::HandshakeTimeout {
                endpoint: endpoint.clone(),
                timeout,
            }
        } else {
            SshError::Handshake {
                endpoint: endpoint.clone(),
                source,
            }
        }
    })?;

    let (key_blob, _) = session.host_key().ok_or_else(|| SshError::Handshake {
        endpoint: endpoint.clone(),
        source: ssh2::Error::new(ErrorCode::Session(-1), "server sent no host key"),
    })?;
    let host_key_type = known_hosts::key_type_of_blob(key_blob).unwrap_or_else(|| "unknown".into());
    let host_key_fingerprint = fingerprint_sha256(key_blob);

    if let Some(known) = &known {
        verify_host_key(
            target,
            &endpoint,
            known,
            key_blob,
            &host_key_type,
            &host_key_fingerprint,
        )?;
    }

    authenticate(&session, target, &endpoint)?;

    Ok(Connection {
        session,
        target: target.clone(),
        endpoint,
        host_key_type,
        host_key_fingerprint,
    })
}

/// `target` with a zero connect timeout replaced by the default (a zero
/// timeout would mean "fail at once" for TCP and "wait forever" for libssh2).
fn effective(target: &SshTarget) -> SshTarget {
    let mut t = target.clone();
    if t.connect_timeout.is_zero() {
        t.connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    }
    t
}

fn tcp_connect(target: &SshTarget, endpoint: &str) -> Result<TcpStream, SshError> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| SshError::Dns {
            endpoint: endpoint.to_string(),
            source,
        })?
        .collect();
    let mut last_err = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, target.connect_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some((*addr, e)),
        }
    }
    let endpoint = endpoint.to_string();
    Err(match last_err {
        None => SshError::Dns {
            endpoint,
            source: io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address"),
        },
        Some((addr, e)) => match e.kind() {
            io::ErrorKind::ConnectionRefused => SshError::Refused {
                endpoint,
                addr,
                port: target.port,
            },
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => SshError::ConnectTimeout {
                endpoint,
                addr,
                timeout: target.connect_timeout,
            },
            _ => SshError::Unreachable {
                endpoint,
                addr,
                source: e,
            },
        },
    })
}

/// Puts the host key algorithms we have a known_hosts entry for first, so a
/// server with several host keys presents one we can verify (as OpenSSH
/// does). The other algorithms stay allowed, so a server with only an
/// unrecorded key type still gets an "unknown/mismatch" error with its
/// fingerprint instead of an opaque negotiation failure. Best effort.
fn prefer_known_key_types(session: &Session, known_types: &[String]) {
    if known_types.is_empty() {
        return;
    }
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let mut order: Vec<&str> = Vec::new();
    for t in known_types {
        let algs: &[&str] = match t.as_str() {
            // an ssh-rsa key signs with any of these
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => &[other],
        };
        for alg in algs {
            if supported.contains(alg) && !order.contains(alg) {
                order.push(alg);
            }
        }
    }
    if order.is_empty() {
        return;
    }
    for alg in &supported {
        if !order.contains(alg) {
            order.push(alg);
        }
    }
    let _ = session.method_pref(MethodType::HostKey, &order.join(","));
}

fn verify_host_key(
    target: &SshTarget,
    endpoint: &str,
    known: &KnownHosts,
    key_blob: &[u8],
    key_type: &str,
    fingerprint: &str,
) -> Result<(), SshError> {
    let key = Box::new(HostKeyReport {
        endpoint: endpoint.to_string(),
        lookup: known_hosts::lookup_name(&target.host, target.port),
        key_type: key_type.to_string(),
        fingerprint: fingerprint.to_string(),
        known_hosts: target.known_hosts.clone(),
        keyscan: target.keyscan_command(),
    });
    match known.check(&target.host, target.port, key_blob) {
        Verdict::Trusted { .. } => Ok(()),
        Verdict::Mismatch { lines } => Err(SshError::HostKeyMismatch { key, lines }),
        Verdict::Revoked { line } => Err(SshError::HostKeyRevoked { key, line }),
        Verdict::Unknown { portless_lines } => Err(SshError::UnknownHostKey {
            key,
            known_hosts_exists: known.exists(),
            portless_lines,
        }),
    }
}

/// ssh-agent first, then the identity file. Each attempt is recorded so the
/// error can say exactly what was offered.
fn authenticate(session: &Session, target: &SshTarget, endpoint: &str) -> Result<(), SshError> {
    let user = target.user.as_str();
    let mut tried = Vec::new();

    if let Some(socket) = &target.agent_socket {
        match try_agent(session, user, socket) {
            Ok(()) => return Ok(()),
            Err(what) => tried.push(what),
        }
    }

    if let Some(identity) = &target.identity_file {
        let from_env = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
        let passphrase = target.passphrase.as_deref().or(from_env.as_deref());
        if !identity.exists() {
            tried.push(format!(
                "identity file {} (it does not exist)",
                identity.display()
            ));
        } else {
            match session.userauth_pubkey_file(user, None, identity, passphrase) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!(
                    "identity file {} (not accepted)",
                    identity.display()
                )),
                Err(e) if is_timeout(&e) => {
                    tried.push(format!(
                        "identity file {} (timed out after {})",
                        identity.display(),
                        human(&target.connect_timeout)
                    ));
                }
                Err(e) => tried.push(format!(
                    "identity file {}{} (rejected: {})",
                    identity.display(),
                    if passphrase.is_some() {
                        " with passphrase"
                    } else {
                        ""
                    },
                    e.message()
                )),
            }
        }
    }

    if tried.is_empty() {
        tried.push("nothing: no ssh-agent (SSH_AUTH_SOCK unset) and no identity file given".into());
    }
    Err(SshError::Auth {
        endpoint: endpoint.to_string(),
        user: user.to_string(),
        tried,
    })
}

fn try_agent(session: &Session, user: &str, socket: &Path) -> Result<(), String> {
    let where_ = socket.display();
    let mut agent = session
        .agent()
        .map_err(|e| format!("ssh-agent at {where_} (unavailable: {})", e.message()))?;
    agent
        .set_identity_path(socket)
        .map_err(|e| format!("ssh-agent at {where_} (unusable path: {})", e.message()))?;
    agent
        .connect()
        .map_err(|e| format!("ssh-agent at {where_} (cannot connect: {})", e.message()))?;
    let result = (|| {
        agent
            .list_identities()
            .map_err(|e| format!("ssh-agent at {where_} (cannot list keys: {})", e.message()))?;
        let identities = agent
            .identities()
            .map_err(|e| format!("ssh-agent at {where_} (cannot list keys: {})", e.message()))?;
        if identities.is_empty() {
            return Err(format!("ssh-agent at {where_} (it holds no keys)"));
        }
        for id in &identities {
            if agent.userauth(user, id).is_ok() && session.authenticated() {
                return Ok(());
            }
        }
        Err(format!(
            "ssh-agent at {where_} ({} key(s), none accepted)",
            identities.len()
        ))
    })();
    let _ = agent.disconnect();
    result
}

impl Connection {
    /// The underlying libssh2 session (for SFTP and other channels).
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// `host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The host key algorithm, e.g. `ssh-ed25519`.
    pub fn host_key_type(&self) -> &str {
        &self.host_key_type
    }

    /// The host key's fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// Runs `command` through the remote user's shell and collects its
    /// merged stdout and stderr. The whole exchange is bounded by `timeout`:
    /// past it the channel is abandoned and [`SshError::CommandTimeout`] is
    /// returned (the remote process is not killed: SSH without a pty has no
    /// portable way to signal it; closing the channel closes its pipes).
    pub fn run(&self, command: &str, timeout: Duration) -> Result<CommandOutput, SshError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut output = Vec::new();
        let mut truncated = false;

        let timed_out = |output: &[u8]| SshError::CommandTimeout {
            endpoint: self.endpoint.clone(),
            command: command.to_string(),
            timeout,
            partial_output: String::from_utf8_lossy(output).into_owned(),
        };
        let ssh_err = |during: &'static str, output: &[u8], source: ssh2::Error| {
            if is_timeout(&source) {
                timed_out(output)
            } else {
                SshError::Session {
                    endpoint: self.endpoint.clone(),
                    during,
                    source,
                }
            }
        };
        // Each blocking libssh2 call gets only the time left until the deadline.
        let arm = || -> bool {
            let left = deadline.saturating_duration_since(Instant::now());
            self.session.set_timeout(timeout_ms(left));
            !left.is_zero()
        };

        arm();
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| ssh_err("opening a channel", &output, e))?;
        // Merge stderr into stdout: reading only stdout while the remote
        // fills the stderr window would deadlock.
        let result = (|| {
            channel
                .handle_extended_data(ExtendedData::Merge)
                .map_err(|e| ssh_err("setting up the channel", &output, e))?;
            arm();
            channel
                .exec(command)
                .map_err(|e| ssh_err("starting the command", &output, e))?;
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                if !arm() {
                    return Err(timed_out(&output));
                }
                match channel.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_OUTPUT_BYTES.saturating_sub(output.len());
                        if n > room {
                            truncated = true;
                        }
                        output.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        return Err(timed_out(&output))
                    }
                    Err(source) => {
                        return Err(SshError::Io {
                            endpoint: self.endpoint.clone(),
                            during: "reading command output",
                            source,
                        })
                    }
                }
            }
            if !arm() {
                return Err(timed_out(&output));
            }
            // EOF comes when the pipes close; the exit status follows it.
            channel
                .wait_close()
                .map_err(|e| ssh_err("waiting for the command to exit", &output, e))?;
            let exit_status = channel
                .exit_status()
                .map_err(|e| ssh_err("reading the exit status", &output, e))?;
            let exit_signal = channel
                .exit_signal()
                .ok()
                .and_then(|s| s.exit_signal)
                .filter(|s| !s.is_empty());
            Ok((exit_status, exit_signal))
        })();

        let (exit_status, exit_signal) = match result {
            Ok(r) => r,
            Err(e) => {
                // Give up on the channel without waiting for the peer: a
                // peer still running the command answers neither close
                // nor free, and 200 ms keeps the overrun small.
                self.session.set_timeout(200);
                let _ = channel.close();
                return Err(e);
            }
        };
        Ok(CommandOutput {
            exit_status,
            exit_signal,
            output: String::from_utf8_lossy(&output).into_owned(),
            output_truncated: truncated,
            duration: start.elapsed(),
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A polite disconnect, bounded so a dead peer cannot stall a drop.
        self.session.set_timeout(1000);
        let _ = self.session.disconnect(
            Some(ssh2::DisconnectCode::ByApplication),
            "imlrecover done",
            None,
        );
    }
}

/// Connects to every target and runs `command` there, at most `parallelism`
/// hosts at once; results come back in the order of `targets`. Each host's
/// connection is closed as soon as its command is done, so at most
/// `parallelism` connections are open at any time.
pub fn run_on_all<P: FnMut(Progress)>(
    targets: &[SshTarget],
    command: &str,
    timeout: Duration,
    parallelism: usize,
    progress: P,
) -> Vec<Result<CommandOutput, SshError>> {
    fan_out_with_progress(
        targets,
        parallelism,
        |target| connect(target)?.run(command, timeout),
        progress,
    )
}

/// Does this private key file need a passphrase? OpenSSH's own format
/// names its cipher (`none` when clear); PEM keys say `ENCRYPTED`.
pub fn key_is_encrypted(path: &Path) -> io::Result<bool> {
    let text = std::fs::read_to_string(path)?;
    if text.contains("ENCRYPTED") {
        return Ok(true);
    }
    let Some(body) = text
        .split("-----BEGIN OPENSSH PRIVATE KEY-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END").next())
    else {
        return Ok(false);
    };
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = openssl::base64::decode_block(&b64).map_err(io::Error::other)?;
    // "openssh-key-v1\0", then a length-prefixed cipher name.
    let rest = raw.strip_prefix(b"openssh-key-v1\0").unwrap_or(&[]);
    let len = rest
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    Ok(rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none"))
}

/// The passphrase for an encrypted identity file when none is in
/// [`PASSPHRASE_ENV`]: asked once per file on a terminal (the first host to
/// need it asks; the others wait for the answer), never without one.
pub fn prompt_passphrase(path: &Path) -> Option<String> {
    use std::io::IsTerminal;
    type Cache = std::sync::Mutex<std::collections::HashMap<PathBuf, Option<String>>>;
    static ASKED: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    if std::env::var_os(PASSPHRASE_ENV).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    if !key_is_encrypted(path).unwrap_or(false) {
        return None;
    }
    let mut cache = ASKED.get_or_init(Default::default).lock().ok()?;
    if let Some(known) = cache.get(path) {
        return known.clone();
    }
    let answer = if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        dialoguer::Password::new()
            .with_prompt(format!("Passphrase for {}", path.display()))
            .allow_empty_password(true)
            .interact()
            .ok()
    } else {
        None
    };
    cache.insert(path.to_path_buf(), answer.clone());
    answer
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
    fn tells_encrypted_keys_from_clear_ones() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind, pass, encrypted) in [
            ("clear_ed", "ed25519", "", false),
            ("locked_ed", "ed25519", "s3cret", true),
            ("clear_rsa", "rsa", "", false),
            ("locked_rsa", "rsa", "s3cret", true),
        ] {
            let key = dir.path().join(name);
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", pass, "-f"])
                .arg(&key)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ssh-keygen: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(key_is_encrypted(&key).unwrap(), encrypted, "{name}");
        }
        // A legacy PEM key with a passphrase.
        let pem = dir.path().join("locked_pem");
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-m", "PEM", "-N", "s3cret", "-f"])
            .arg(&pem)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(key_is_encrypted(&pem).unwrap());
    }

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

    #[test]
    fn errors_stay_small() {
        // Results of SshError travel through fan-out vectors of hundreds.
        assert!(std::mem::size_of::<SshError>() <= 128);
    }
}
