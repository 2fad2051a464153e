//! The manager the demo restores: the EL6 sandbox manager (SysV, with fake
//! storage servers), or a whole EL7 manager of a later release family
//! (systemd units, InfluxDB from 5.1) drafted a recipe by `imlrecover init`.

use crate::init::Family;
use crate::sandbox::agents::Agents;
use crate::sandbox::el7::{El7Manager, Systemctl};
use crate::sandbox::manager::{Sandbox, SandboxError, SERVICES};
use crate::sandbox::releases;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub enum DemoHost {
    El6 {
        sb: Sandbox,
        /// Dropped after the sandbox: the agents' sshd outlive no one.
        agents: Option<Agents>,
    },
    El7(El7Manager),
}

/// What a release's demo needs that this machine lacks, with how to get
/// it; empty when nothing is missing. EL6 runs without what it lacks.
pub fn missing_for(family: Family, have_pg: bool) -> Vec<String> {
    let mut missing = Vec::new();
    if family == Family::El6 {
        return missing;
    }
    if !have_pg {
        missing.push("PostgreSQL server programs (initdb): apt-get install postgresql / yum install postgresql-server".into());
    }
    if Systemctl::find().is_none() {
        missing.push("docker-systemctl-replacement, which runs the release's systemd units inside the sandbox (this machine's own systemd is never used): pip3 install docker-systemctl-replacement".into());
    }
    if family >= Family::El7_51 && !influxd_runs() {
        missing.push("InfluxDB 1.x (influxd), which holds the statistics of IML 5.1 and later: apt-get install influxdb / yum install influxdb".into());
    }
    missing
}

fn influxd_runs() -> bool {
    std::process::Command::new("influxd")
        .arg("version")
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl DemoHost {
    /// A working EL7 manager of `family` under `dir`.
    pub fn el7(dir: &Path, family: Family) -> Result<DemoHost, SandboxError> {
        let systemctl = Systemctl::find()
            .ok_or_else(|| SandboxError("docker-systemctl-replacement is not installed".into()))?;
        Ok(DemoHost::El7(El7Manager::golden(
            dir, family, &systemctl, None,
        )?))
    }

    pub fn sandbox(&self) -> &Sandbox {
        match self {
            DemoHost::El6 { sb, .. } => sb,
            DemoHost::El7(m) => &m.sandbox,
        }
    }

    /// The services the host runs, and how.
    pub fn services(&self) -> (Vec<String>, &'static str) {
        match self {
            DemoHost::El6 { .. } => (
                SERVICES.iter().map(|s| s.to_string()).collect(),
                "LSB init scripts",
            ),
            DemoHost::El7(m) => (
                releases::unit_files(m.family())
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect(),
                "systemd units, run under the sandbox by docker-systemctl-replacement",
            ),
        }
    }

    /// `--var` arguments that change with the disaster (media, cluster),
    /// and the fake storage servers'.
    pub fn var_args(&self) -> Vec<String> {
        match self {
            DemoHost::El6 { sb, agents } => {
                let mut v = sb.var_args();
                v.extend(agents.as_ref().map(Agents::var_args).unwrap_or_default());
                v
            }
            DemoHost::El7(m) => m.var_args(),
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            DemoHost::El6 { .. } => Vec::new(),
            DemoHost::El7(m) => m.env(),
        }
    }

    pub fn installer(&self) -> PathBuf {
        match self {
            DemoHost::El6 { sb, .. } => sb.installer.clone(),
            DemoHost::El7(m) => m.installer.clone(),
        }
    }

    pub fn agents(&self) -> Option<&Agents> {
        match self {
            DemoHost::El6 { agents, .. } => agents.as_ref(),
            DemoHost::El7(_) => None,
        }
    }

    pub fn disaster(&mut self) -> Result<(), SandboxError> {
        match self {
            DemoHost::El6 { sb, .. } => sb.disaster(),
            DemoHost::El7(m) => m.disaster(),
        }
    }

    /// Rows per table of `chroma`; `None` without a cluster.
    pub fn rows(&self) -> Result<Option<BTreeMap<String, u64>>, SandboxError> {
        match self.sandbox().cluster {
            Some(_) => self.sandbox().rows().map(Some),
            None => Ok(None),
        }
    }

    /// InfluxDB's series and points per database (empty before 5.1), and
    /// the points in all.
    pub fn statistics(&self) -> Result<(Vec<String>, u64), SandboxError> {
        match self {
            DemoHost::El6 { .. } => Ok((Vec::new(), 0)),
            DemoHost::El7(m) => Ok((m.statistics()?, m.points()?)),
        }
    }
}
