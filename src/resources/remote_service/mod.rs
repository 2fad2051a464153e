//! `remote_service`: the agents on the MDS/OSS servers. Planning only looks:
//! it connects to each host (host key pinned, authenticated) and runs
//! nothing. The action is planned when something it depends on changes in
//! this run, or with `--replace`.
//!
//! Time bounds. `timeout` is each host's budget for the whole exchange:
//! connecting, the action and every `check` try. Connecting has three
//! blocking phases (TCP connect, SSH handshake, authentication), each bounded
//! by [`connect_timeout`]: a third of `timeout`, at least 1 s and at most
//! [`ssh::DEFAULT_CONNECT_TIMEOUT`] (10 s), so that a dead host cannot use up
//! more than `timeout` before a command runs (for a `timeout` of 3 s or
//! more) and a fleet with many dead hosts still finishes in bounded time.
//! The action and the checks then share what is left of `timeout`; a host
//! with nothing left fails at once instead of starting a command. A command
//! still running at the deadline is abandoned and the host fails with a
//! timeout error; abandoning its channel costs up to 0.4 s more
//! ([`ssh::Connection::run`] gives libssh2 200 ms to close the channel and
//! 200 ms to free it, and a peer whose command still runs answers neither).
//! `plan` uses the same connect bound.

mod host;

use super::kind::{Applied, ApplyCx, Cx, Kind, Phase, ResourceError, Verdict};
use crate::host::ssh::{self, SshError, SshTarget};
use crate::plan::Action;
use crate::recipe::{Address, BlockSchema, BlockValues, ServiceBackend};
use host::act_on_host;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteAction {
    Restart,
    Start,
    Stop,
}

impl RemoteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteAction::Restart => "restart",
            RemoteAction::Start => "start",
            RemoteAction::Stop => "stop",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SshSpec {
    pub user: String,
    pub port: u16,
    pub identity_file: Option<String>,
    pub known_hosts: String,
}

#[derive(Debug, Clone)]
pub struct RemoteServiceSpec {
    pub name: String,
    pub hosts: Vec<String>,
    pub action: RemoteAction,
    pub optional: bool,
    pub parallelism: usize,
    pub timeout: Duration,
    pub check: Option<String>,
    /// `sysv` runs `service NAME ACTION`, `systemd` runs `systemctl ACTION NAME`.
    pub init: ServiceBackend,
    pub ssh: SshSpec,
}

/// The nested `ssh { ... }` block.
const SSH: BlockSchema = BlockSchema {
    attrs: &[
        ("user", true),
        ("port", false),
        ("identity_file", false),
        ("known_hosts", true),
    ],
    blocks: &[],
};

pub struct RemoteServiceKind;

#[derive(Debug, Serialize)]
pub struct HostSeen {
    pub host: String,
    /// Connected, host key verified and authenticated: the action can run.
    pub reachable: bool,
    /// `ready`, `unreachable`, `host key refused`, `authentication failed`
    /// or `error`.
    pub status: &'static str,
    /// The verified host key: `ssh-ed25519 SHA256:...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Observed {
    pub hosts: Vec<HostSeen>,
}

/// The bound on each connect phase for a host budget of `timeout` (see the
/// module documentation).
pub fn connect_timeout(timeout: Duration) -> Duration {
    (timeout / 3).clamp(Duration::from_secs(1), ssh::DEFAULT_CONNECT_TIMEOUT)
}

/// The SSH target for one host; identity and known_hosts live under --root.
/// The ssh-agent of the environment (`SSH_AUTH_SOCK`) is tried first.
pub fn target(
    spec: &RemoteServiceSpec,
    host: &str,
    cx_root: &crate::host::fs::Root,
) -> Result<SshTarget, String> {
    let known_hosts = cx_root
        .path(&spec.ssh.known_hosts)
        .map_err(|e| e.to_string())?;
    let mut t = SshTarget::new(host, &spec.ssh.user, known_hosts)
        .with_port(spec.ssh.port)
        .with_connect_timeout(connect_timeout(spec.timeout));
    if let Some(id) = &spec.ssh.identity_file {
        let path = cx_root.path(id).map_err(|e| e.to_string())?;
        if let Some(p) = ssh::prompt_passphrase(&path) {
            t = t.with_passphrase(p);
        }
        t = t.with_identity_file(path);
    }
    Ok(t)
}

/// A short word for what stands between us and the host.
fn status_of(e: &SshError) -> &'static str {
    match e {
        SshError::Dns { .. }
        | SshError::Refused { .. }
        | SshError::Unreachable { .. }
        | SshError::ConnectTimeout { .. }
        | SshError::HandshakeTimeout { .. }
        | SshError::Handshake { .. } => "unreachable",
        SshError::KnownHostsRead { .. }
        | SshError::UnknownHostKey { .. }
        | SshError::HostKeyMismatch { .. }
        | SshError::HostKeyRevoked { .. } => "host key refused",
        SshError::Auth { .. } => "authentication failed",
        _ => "error",
    }
}

impl Kind for RemoteServiceKind {
    type Spec = RemoteServiceSpec;
    const KEYWORD: &'static str = "remote_service";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("name", true),
            ("hosts", true),
            ("action", false),
            ("optional", false),
            ("parallelism", false),
            ("timeout", false),
            ("check", false),
            ("init", false),
            ("depends_on", false),
        ],
        blocks: &[("ssh", true)],
    };
    const PHASE: Phase = Phase::Remote;

    fn decode(b: &mut BlockValues) -> Option<RemoteServiceSpec> {
        let svc = b.string("name");
        let hosts = b.string_list("hosts");
        let action = if b.has("action") {
            b.one_of(
                "action",
                "action",
                &[
                    ("restart", RemoteAction::Restart),
                    ("start", RemoteAction::Start),
                    ("stop", RemoteAction::Stop),
                ],
            )
        } else {
            Some(RemoteAction::Restart)
        };
        let optional = b.bool("optional").unwrap_or(false);
        let parallelism = if b.has("parallelism") {
            let v = b.value("parallelism")?;
            b.number("parallelism", v, 1024).map(|n| n as usize)
        } else {
            Some(32)
        };
        let timeout = if b.has("timeout") {
            b.duration("timeout")
        } else {
            Some(Duration::from_secs(60))
        };
        let check = b.string("check");
        let init = if b.has("init") {
            b.backend("init")
        } else {
            Some(ServiceBackend::Sysv)
        };
        let mut ssh = b.nested("ssh", &SSH)?;
        let user = ssh.string("user");
        let port = if ssh.has("port") {
            ssh.port("port")
        } else {
            Some(22)
        };
        let identity_file = ssh.path("identity_file");
        let known_hosts = ssh.path("known_hosts");
        Some(RemoteServiceSpec {
            name: svc?,
            hosts: hosts?,
            action: action?,
            optional,
            parallelism: parallelism?,
            timeout: timeout?,
            check,
            init: init?,
            ssh: SshSpec {
                user: user?,
                port: port?,
                identity_file,
                known_hosts: known_hosts?,
            },
        })
    }
    type Observed = Observed;

    fn observe(
        &self,
        _: &Address,
        spec: &RemoteServiceSpec,
        cx: &Cx,
    ) -> Result<Observed, ResourceError> {
        let results = ssh::fan_out(&spec.hosts, spec.parallelism, |host| {
            let t = target(spec, host, cx.root).map_err(|e| ("error", e))?;
            // Connect only: nothing runs on the host while planning.
            ssh::connect(&t)
                .map(|c| format!("{} {}", c.host_key_type(), c.host_key_fingerprint()))
                .map_err(|e| (status_of(&e), e.to_string()))
        });
        let hosts = spec
            .hosts
            .iter()
            .zip(results)
            .map(|(host, r)| match r {
                Ok(key) => HostSeen {
                    host: host.clone(),
                    reachable: true,
                    status: "ready",
                    host_key: Some(key),
                    error: None,
                },
                Err((status, e)) => HostSeen {
                    host: host.clone(),
                    reachable: false,
                    status,
                    host_key: None,
                    error: Some(e),
                },
            })
            .collect();
        Ok(Observed { hosts })
    }

    fn compare(
        &self,
        address: &Address,
        spec: &RemoteServiceSpec,
        seen: &Observed,
        cx: &Cx,
    ) -> Result<Verdict, ResourceError> {
        let after =
            json!({ "name": spec.name, "action": spec.action.as_str(), "hosts": spec.hosts });
        // A known_hosts (or key) this plan restores first is what the host is
        // checked against when the step runs, not the missing one of now.
        let restored = restored_first(spec, cx);
        let waits_for = |h: &HostSeen| -> Option<String> {
            let (file, what) = match h.status {
                "host key refused" => (&spec.ssh.known_hosts, "host key"),
                "authentication failed" => (spec.ssh.identity_file.as_ref()?, "login key"),
                _ => return None,
            };
            restored
                .iter()
                .find(|(path, _)| path == file)
                .map(|(path, by)| {
                    format!("{}: reachable; its {what} is checked against the {path} that {by} restores, when the step runs", h.host)
                })
        };
        let not_ready: Vec<&str> = seen
            .hosts
            .iter()
            .filter(|h| !h.reachable && waits_for(h).is_none())
            .map(|h| h.host.as_str())
            .collect();
        let mut details: Vec<String> = seen
            .hosts
            .iter()
            .map(|h| match (&h.error, &h.host_key) {
                (None, Some(key)) => format!("{}: reachable, host key verified ({key})", h.host),
                (None, None) => format!("{}: reachable, host key verified", h.host),
                (Some(e), _) => waits_for(h)
                    .unwrap_or_else(|| format!("{}: {}: {e}", h.host, h.status.to_uppercase())),
            })
            .collect();
        if !not_ready.is_empty() {
            details.push(format!(
                "{} of {} hosts not ready: {}{}",
                not_ready.len(),
                seen.hosts.len(),
                not_ready.join(", "),
                if spec.optional {
                    " (optional: apply warns and goes on)"
                } else {
                    " (apply will fail on them)"
                }
            ));
        }
        let waiting = seen.hosts.iter().any(|h| waits_for(h).is_some());
        if !not_ready.is_empty() || waiting {
            details.extend(local_files_restored_first(spec, cx));
        }
        let causes = cx.changed_before(address);
        let mut v = if spec.hosts.is_empty() {
            Verdict::no_op("no hosts", after)
        } else if cx.forced(address) {
            Verdict::new(
                Action::Run,
                format!(
                    "{} {} on {} because of --replace",
                    spec.action.as_str(),
                    spec.name,
                    hosts_word(spec.hosts.len())
                ),
                after,
            )
        } else if !causes.is_empty() {
            let direct: Vec<&Address> = cx
                .recipe
                .resource(address)
                .map(|r| r.depends_on().collect())
                .unwrap_or_default();
            Verdict::new(
                Action::Run,
                format!(
                    "{} {} on {} because {} changed",
                    spec.action.as_str(),
                    spec.name,
                    hosts_word(spec.hosts.len()),
                    causes_text(&causes, &direct)
                ),
                after,
            )
        } else {
            Verdict::no_op("nothing it depends on changes", after)
        };
        v.details = details;
        Ok(v)
    }

    fn apply(
        &self,
        address: &Address,
        spec: &RemoteServiceSpec,
        _step: &crate::plan::Step,
        _change: &crate::plan::ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        let bar = cx.printer.bar(
            spec.hosts.len() as u64,
            &format!("{} {}", spec.action.as_str(), spec.name),
        );
        let results = ssh::fan_out_with_progress(
            &spec.hosts,
            spec.parallelism,
            |host| act_on_host(spec, host, cx.root),
            |p| {
                bar.set_position((p.done + p.failed) as u64);
                bar.set_message(format!(
                    "{} done, {} failed, {} pending",
                    p.done, p.failed, p.pending
                ));
            },
        );
        bar.finish_and_clear();
        let mut applied = Applied::default();
        let mut failed = Vec::new();
        let width = spec.hosts.iter().map(String::len).max().unwrap_or(4).max(4);
        applied.details.push(format!(
            "{:<width$}  {:<6}  {:>7}  last line of output",
            "host", "result", "seconds"
        ));
        for (host, r) in spec.hosts.iter().zip(&results) {
            let (result, h) = match r {
                Ok(h) => ("ok", h),
                Err(h) => {
                    failed.push(host.as_str());
                    ("FAILED", h)
                }
            };
            applied.details.push(format!(
                "{host:<width$}  {result:<6}  {:>7.2}  {}",
                h.seconds, h.last_line
            ));
        }
        let ok = spec.hosts.len() - failed.len();
        applied.message = format!(
            "{} {} on {ok} of {}",
            spec.action.as_str(),
            spec.name,
            hosts_word(spec.hosts.len())
        );
        if failed.is_empty() {
            return Ok(applied);
        }
        let on = format!(
            "{} of {}: {}",
            failed.len(),
            hosts_word(spec.hosts.len()),
            failed.join(", ")
        );
        if spec.optional {
            applied.warnings.push(format!(
                "{} {} failed on {on} (optional: apply goes on; see the table above)",
                spec.action.as_str(),
                spec.name,
            ));
            return Ok(applied);
        }
        // The advice goes before the table: the engine appends a help text
        // to the message's last line, which here is a table row.
        let table = applied.details.join("\n");
        Err(ResourceError::new(
            address,
            format!(
                "{} {} failed on {on}; fix those hosts and run apply again, or make the resource `optional = true`\n{table}",
                spec.action.as_str(),
                spec.name
            ),
        ))
    }
}

/// At most [`MAX_CAUSES`] of the changed resources, its own `depends_on`
/// first: after a restore, nearly everything before the agents changes.
fn causes_text(causes: &[&Address], direct: &[&Address]) -> String {
    let mut ordered: Vec<&Address> = causes
        .iter()
        .copied()
        .filter(|c| direct.contains(c))
        .collect();
    ordered.extend(causes.iter().copied().filter(|c| !direct.contains(c)));
    let names: Vec<String> = ordered
        .iter()
        .take(MAX_CAUSES)
        .map(|a| a.to_string())
        .collect();
    match ordered.len().saturating_sub(MAX_CAUSES) {
        0 => names.join(", "),
        more => format!("{} and {more} more", names.join(", ")),
    }
}

const MAX_CAUSES: usize = 3;

/// `1 host`, `3 hosts`.
fn hosts_word(n: usize) -> String {
    if n == 1 {
        "1 host".into()
    } else {
        format!("{n} hosts")
    }
}

/// Root's SSH files that are missing now and that a step earlier in this
/// plan restores, with the resource that restores each.
fn restored_first(spec: &RemoteServiceSpec, cx: &Cx) -> Vec<(String, String)> {
    let files = spec
        .ssh
        .identity_file
        .iter()
        .chain(std::iter::once(&spec.ssh.known_hosts));
    files
        .filter(|path| !cx.root.path(path).map(|p| p.exists()).unwrap_or(false))
        .filter_map(|path| {
            cx.prior
                .iter()
                .find(|c| c.changed() && c.files.iter().any(|f| &f.path == path))
                .map(|c| (path.clone(), c.address.to_string()))
        })
        .collect()
}

/// When root's SSH files are missing now (a rebuilt manager) and a step
/// earlier in this plan restores them, say so: the hosts are checked again
/// when the step runs.
fn local_files_restored_first(spec: &RemoteServiceSpec, cx: &Cx) -> Vec<String> {
    let mut notes = Vec::new();
    let files = spec
        .ssh
        .identity_file
        .iter()
        .chain(std::iter::once(&spec.ssh.known_hosts));
    for path in files {
        let exists = cx.root.path(path).map(|p| p.exists()).unwrap_or(false);
        if exists {
            continue;
        }
        let by = cx
            .prior
            .iter()
            .find(|c| c.changed() && c.files.iter().any(|f| &f.path == path))
            .map(|c| c.address.to_string());
        notes.push(match by {
            Some(by) => format!("{path} is missing now; {by} restores it earlier in this run, and the hosts are checked again when the step runs"),
            None => format!("{path} is missing and nothing in this plan restores it"),
        });
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_phases_share_the_host_budget() {
        assert_eq!(
            connect_timeout(Duration::from_secs(60)),
            Duration::from_secs(10)
        );
        assert_eq!(
            connect_timeout(Duration::from_secs(9)),
            Duration::from_secs(3)
        );
        assert_eq!(
            connect_timeout(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            connect_timeout(Duration::from_secs(3600)),
            ssh::DEFAULT_CONNECT_TIMEOUT
        );
    }

    #[test]
    fn causes_name_its_own_dependencies_first_and_at_most_three() {
        let a = |s: &str| -> Address { s.parse().expect("address") };
        let (f, g, h, db, sup) = (
            a("file.hosts"),
            a("file.passwd"),
            a("exec.installer"),
            a("database.chroma"),
            a("service.chroma_supervisor"),
        );
        assert_eq!(causes_text(&[&f], &[]), "file.hosts");
        assert_eq!(
            causes_text(&[&f, &g, &h, &db, &sup], &[&db, &sup]),
            "database.chroma, service.chroma_supervisor, file.hosts and 2 more"
        );
    }

    #[test]
    fn hosts_word_counts() {
        assert_eq!(hosts_word(1), "1 host");
        assert_eq!(hosts_word(32), "32 hosts");
    }
}
