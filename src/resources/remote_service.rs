//! `remote_service`: the agents on the MDS/OSS servers. Planning only looks:
//! it connects to each host (host key pinned, authenticated) and runs
//! nothing. The action is planned when something it depends on changes in
//! this run, or with `--replace`.

use super::kind::{Cx, Kind, ResourceError, Verdict};
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
}
