//! Reaching one host: TCP with a bound, the handshake, the host key checked
//! against known_hosts before any credential is offered.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use ssh2::{ErrorCode, MethodType, Session};

use super::auth::authenticate;
use super::known_hosts::{self, fingerprint_sha256, KnownHosts, Verdict};
use super::session::Connection;
use super::{HostKeyReport, SshError, SshTarget, DEFAULT_CONNECT_TIMEOUT};

// libssh2 error codes (libssh2.h) that ssh2 does not name.
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;

/// libssh2 takes milliseconds as u32, and 0 means "wait forever": never pass 0.
pub(super) fn timeout_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

pub(super) fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT)
            | ErrorCode::Session(LIBSSH2_ERROR_SOCKET_TIMEOUT)
    )
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
