//! `remote_service`: the agents on the MDS/OSS servers. Planning only looks:
//! it connects to each host (host key pinned, authenticated) and runs
//! nothing. The action is planned when something it depends on changes in
//! this run, or with `--replace`.

use super::kind::{Applied, ApplyCx, Cx, Kind, ResourceError, Verdict};
use crate::host::ssh::{self, SshTarget};
use crate::plan::Action;
use crate::recipe::{Address, RemoteServiceSpec};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

pub struct RemoteServiceKind;

#[derive(Debug, Serialize)]
pub struct HostSeen {
    pub host: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Observed {
    pub hosts: Vec<HostSeen>,
}

/// The SSH target for one host; identity and known_hosts live under --root.
pub fn target(spec: &RemoteServiceSpec, host: &str, cx_root: &crate::host::fs::Root) -> Result<SshTarget, String> {
    let known_hosts = cx_root.path(&spec.ssh.known_hosts).map_err(|e| e.to_string())?;
    let mut t = SshTarget::new(host, &spec.ssh.user, known_hosts)
        .with_port(spec.ssh.port)
        .with_connect_timeout(spec.timeout.min(Duration::from_secs(30)));
    if let Some(id) = &spec.ssh.identity_file {
        t = t.with_identity_file(cx_root.path(id).map_err(|e| e.to_string())?);
    }
    Ok(t)
}

impl Kind for RemoteServiceKind {
    type Spec = RemoteServiceSpec;
    type Observed = Observed;

    fn observe(&self, _: &Address, spec: &RemoteServiceSpec, cx: &Cx) -> Result<Observed, ResourceError> {
        let results = ssh::fan_out(&spec.hosts, spec.parallelism, |host| {
            let t = target(spec, host, cx.root)?;
            ssh::connect(&t).map(|_| ()).map_err(|e| e.to_string())
        });
        let hosts = spec
            .hosts
            .iter()
            .zip(results)
            .map(|(host, r)| HostSeen {
                host: host.clone(),
                reachable: r.is_ok(),
                error: r.err(),
            })
            .collect();
        Ok(Observed { hosts })
    }

    fn compare(&self, address: &Address, spec: &RemoteServiceSpec, seen: &Observed, cx: &Cx) -> Result<Verdict, ResourceError> {
        let after = json!({ "name": spec.name, "action": spec.action.as_str(), "hosts": spec.hosts });
        let unreachable = seen.hosts.iter().filter(|h| !h.reachable).count();
        let mut details: Vec<String> = seen
            .hosts
            .iter()
            .map(|h| match &h.error {
                None => format!("{}: reachable, host key verified", h.host),
                Some(e) => format!("{}: UNREACHABLE: {e}", h.host),
            })
            .collect();
        if unreachable > 0 {
            details.push(format!(
                "{unreachable} of {} hosts unreachable{}",
                seen.hosts.len(),
                if spec.optional { " (optional: apply warns and goes on)" } else { " (apply will fail on them)" }
            ));
        }
        let causes = cx.changed_before(address);
        let mut v = if spec.hosts.is_empty() {
            Verdict::no_op("no hosts", after)
        } else if cx.forced(address) {
            Verdict::new(Action::Run, "forced with --replace", after)
        } else if !causes.is_empty() {
            let names: Vec<String> = causes.iter().map(|a| a.to_string()).collect();
            Verdict::new(
                Action::Run,
                format!("{} {} on {} hosts because {} changed", spec.action.as_str(), spec.name, spec.hosts.len(), names.join(", ")),
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
        let bar = cx.printer.bar(spec.hosts.len() as u64, &format!("{} {}", spec.action.as_str(), spec.name));
        let results = ssh::fan_out_with_progress(
            &spec.hosts,
            spec.parallelism,
            |host| act_on_host(spec, host, cx.root),
            |p| {
                bar.set_position((p.done + p.failed) as u64);
                bar.set_message(format!("{} done, {} failed, {} pending", p.done, p.failed, p.pending));
            },
        );
        bar.finish_and_clear();
        let mut applied = Applied::default();
        let mut failed = Vec::new();
        let width = spec.hosts.iter().map(String::len).max().unwrap_or(4).max(4);
        applied.details.push(format!("{:<width$}  {:<6}  {:>7}  last line of output", "host", "result", "seconds"));
        for (host, r) in spec.hosts.iter().zip(&results) {
            let (result, secs, line) = match r {
                Ok(h) => ("ok", h.seconds, h.last_line.clone()),
                Err(h) => {
                    failed.push(host.clone());
                    ("FAILED", h.seconds, h.last_line.clone())
                }
            };
            applied.details.push(format!("{host:<width$}  {result:<6}  {secs:>7.2}  {line}"));
        }
        let ok = spec.hosts.len() - failed.len();
        applied.message = format!(
            "{} {} on {ok} of {} hosts",
            spec.action.as_str(),
            spec.name,
            spec.hosts.len()
        );
        if failed.is_empty() {
            return Ok(applied);
        }
        if spec.optional {
            applied.warnings.push(format!(
                "{} failed on {} (optional: apply goes on): {}",
                spec.name,
                if failed.len() == 1 { "1 host" } else { "several hosts" },
                failed.join(", ")
            ));
            return Ok(applied);
        }
        let table = applied.details.join("\n");
        Err(ResourceError::new(
            address,
            format!("{} {} failed on {}:\n{table}", spec.action.as_str(), spec.name, failed.join(", ")),
        )
        .help("fix those hosts, then run apply again (or make the resource `optional = true`)"))
    }
}

/// What happened on one host.
#[derive(Debug)]
pub struct HostResult {
    pub seconds: f64,
    pub last_line: String,
}

/// Bounded retries of `check` after the action: an agent may take a moment.
const CHECK_TRIES: u32 = 5;

fn remote_command(spec: &RemoteServiceSpec) -> String {
    let name = ssh::shell_quote(&spec.name);
    match spec.init {
        crate::recipe::ServiceBackend::Sysv => format!("service {name} {}", spec.action.as_str()),
        crate::recipe::ServiceBackend::Systemd => format!("systemctl {} {name}", spec.action.as_str()),
    }
}

/// Connect, act, check: every failure becomes this host's error, within
/// the resource's timeout.
fn act_on_host(spec: &RemoteServiceSpec, host: &str, root: &crate::host::fs::Root) -> Result<HostResult, HostResult> {
    let start = std::time::Instant::now();
    let fail = |line: String| HostResult {
        seconds: start.elapsed().as_secs_f64(),
        last_line: line,
    };
    let t = target(spec, host, root).map_err(fail)?;
    let conn = ssh::connect(&t).map_err(|e| fail(e.to_string()))?;
    let remaining = |start: std::time::Instant| spec.timeout.saturating_sub(start.elapsed()).max(Duration::from_secs(1));
    let out = conn.run(&remote_command(spec), remaining(start)).map_err(|e| fail(e.to_string()))?;
    if !out.success() {
        return Err(fail(format!("exit {}: {}", out.exit_status, last_line(&out.output))));
    }
    let mut line = last_line(&out.output);
    if let Some(check) = &spec.check {
        let mut tries = 0;
        loop {
            tries += 1;
            let c = conn.run(check, remaining(start)).map_err(|e| fail(e.to_string()))?;
            if c.success() {
                line = last_line(&c.output);
                break;
            }
            if tries >= CHECK_TRIES || start.elapsed() >= spec.timeout {
                return Err(fail(format!(
                    "check `{check}` still fails after {tries} tries (exit {}): {}",
                    c.exit_status,
                    last_line(&c.output)
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(HostResult {
        seconds: start.elapsed().as_secs_f64(),
        last_line: line,
    })
}

fn last_line(s: &str) -> String {
    s.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string()
}
