//! `sftp://USER@HOST[:PORT]/PATH` and the SSH options that go with it.

use crate::host::ssh::SshTarget;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where bundles are kept off-host: a directory on an SFTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    pub user: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Absolute directory on the remote side that holds the bundles.
    pub path: String,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{input}` is not an SFTP target: {reason}")]
#[diagnostic(
    code(imlrecover::transfer::target),
    help("write it as sftp://USER@HOST[:PORT]/ABSOLUTE/PATH, e.g. sftp://backup@vault.example.com/srv/iml-backups")
)]
pub struct TargetError {
    pub input: String,
    pub reason: String,
}

impl RemoteTarget {
    /// Parses `sftp://USER@HOST[:PORT]/PATH`; `USER@` defaults to the
    /// invoking user (as ssh does), the port to 22.
    pub fn parse(input: &str) -> Result<RemoteTarget, TargetError> {
        let err = |reason: &str| TargetError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let rest = input
            .strip_prefix("sftp://")
            .ok_or_else(|| err("it does not start with sftp://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => return Err(err("it names no directory after the host")),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (u.to_string(), h),
            Some(_) => return Err(err("the user before `@` is empty")),
            None => (
                current_user()
                    .ok_or_else(|| err("no user given and the invoking user is unknown"))?,
                authority,
            ),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| err("an IPv6 address in [ ] is not closed"))?;
            match after {
                "" => (h.to_string(), 22),
                p => (
                    h.to_string(),
                    parse_port(p.strip_prefix(':').unwrap_or(p))
                        .ok_or_else(|| err("the port is not a number from 1 to 65535"))?,
                ),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    parse_port(p).ok_or_else(|| err("the port is not a number from 1 to 65535"))?,
                ),
                None => (hostport.to_string(), 22),
            }
        };
        if host.is_empty() {
            return Err(err("the host is empty"));
        }
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        if path.split('/').any(|c| c == "..") {
            return Err(err("the path contains `..`"));
        }
        Ok(RemoteTarget {
            user,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// A remote path below the target directory.
    pub fn join(&self, rel: &str) -> PathBuf {
        Path::new(&self.path).join(rel)
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

impl fmt::Display for RemoteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 22 {
            write!(f, "sftp://{}@{}{}", self.user, host, self.path)
        } else {
            write!(
                f,
                "sftp://{}@{}:{}{}",
                self.user, host, self.port, self.path
            )
        }
    }
}

/// `--identity` and `--known-hosts`; `None` means the invoking user's
/// `~/.ssh`, as `ssh` does.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

impl From<&crate::cli::SftpArgs> for SshOptions {
    fn from(args: &crate::cli::SftpArgs) -> SshOptions {
        SshOptions {
            identity: args.identity.clone(),
            known_hosts: args.known_hosts.clone(),
        }
    }
}

impl SshOptions {
    /// The SSH target for `remote`: host key pinned in the known_hosts file,
    /// ssh-agent first (from `SSH_AUTH_SOCK`), then the identity file.
    pub fn ssh_target(&self, remote: &RemoteTarget) -> SshTarget {
        let ssh_dir = home_dir().map(|h| h.join(".ssh"));
        let known_hosts = self.known_hosts.clone().unwrap_or_else(|| {
            ssh_dir
                .as_ref()
                .map(|d| d.join("known_hosts"))
                .unwrap_or_else(|| PathBuf::from("~/.ssh/known_hosts"))
        });
        let identity = self.identity.clone().or_else(|| {
            let d = ssh_dir.as_ref()?;
            ["id_ed25519", "id_rsa"]
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
        });
        let mut t = SshTarget::new(&remote.host, &remote.user, known_hosts)
            .with_port(remote.port)
            .with_connect_timeout(Duration::from_secs(15));
        if let Some(id) = identity {
            t = t.with_identity_file(id);
            // An explicit key is what the user asked for: do not let a full
            // agent exhaust the server's MaxAuthTries first.
            if self.identity.is_some() {
                t = t.with_agent_socket(None);
            }
        }
        t
    }
}

fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

fn current_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = RemoteTarget::parse("sftp://backup@vault:2222/srv/iml/").unwrap();
        assert_eq!(
            (t.user.as_str(), t.host.as_str(), t.port, t.path.as_str()),
            ("backup", "vault", 2222, "/srv/iml")
        );
        assert_eq!(t.to_string(), "sftp://backup@vault:2222/srv/iml");
        let t = RemoteTarget::parse("sftp://root@[::1]:22/b").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 22));
        assert_eq!(t.to_string(), "sftp://root@[::1]/b");
        assert!(RemoteTarget::parse("scp://a@b/c").is_err());
        assert!(RemoteTarget::parse("sftp://a@b").is_err());
        assert!(RemoteTarget::parse("sftp://a@b:0/x").is_err());
        assert!(RemoteTarget::parse("sftp://a@b:x/x").is_err());
        assert!(RemoteTarget::parse("sftp://a@b/x/../y").is_err());
        assert!(RemoteTarget::parse("sftp://@b/x").is_err());
    }
}
