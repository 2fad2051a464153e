//! A whole EL7 manager of one IML release family (4.0.9–6.x), for the
//! demo, the benchmarks and the tests: the sandbox manager marked as that
//! release ([`super::releases`]), its systemd units run under the root by
//! docker-systemctl-replacement (there is no systemd here), and from 5.1 a
//! real `influxd` holding the statistics.

use super::influx::Influxd;
use super::manager::{Sandbox, SandboxError};
use super::releases::{self, unit_files, version, write};
use crate::host::postgres as pg;
use crate::init::Family;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to run docker-systemctl-replacement (`systemctl3 --root=DIR …`).
#[derive(Debug, Clone)]
pub struct Systemctl {
    /// The words before `--root=DIR`.
    pub command: String,
    pub pythonpath: Option<PathBuf>,
}

impl Systemctl {
    /// The copy `pip3 install --target DIR docker-systemctl-replacement` made.
    pub fn at(tools: &Path) -> Systemctl {
        Systemctl {
            command: format!(
                "python3 {}",
                tools.join("systemctl2/systemctl3.py").display()
            ),
            pythonpath: Some(tools.to_path_buf()),
        }
    }

    /// An installed copy: `systemctl3` on `PATH`, else the `systemctl2`
    /// module Python finds (`PYTHONPATH` included). `None`: neither.
    pub fn find() -> Option<Systemctl> {
        let works = |cmd: &mut Command| {
            cmd.stdin(std::process::Stdio::null())
                .output()
                .map(|o| {
                    o.status.success()
                        && String::from_utf8_lossy(&o.stdout).contains("via systemctl.py")
                })
                .unwrap_or(false)
        };
        if works(Command::new("systemctl3").arg("--version")) {
            return Some(Systemctl {
                command: "systemctl3".into(),
                pythonpath: None,
            });
        }
        if works(Command::new("python3").args(["-m", "systemctl2.systemctl3", "--version"])) {
            return Some(Systemctl {
                command: "python3 -m systemctl2.systemctl3".into(),
                pythonpath: None,
            });
        }
        None
    }
}

/// An EL7 manager's units run under the sandbox root by `systemctl`:
/// docker-systemctl-replacement with its own `--root` (there is no systemd
/// here), the program the recipe's systemd backend is pointed at with
/// `IMLRECOVER_SYSTEMCTL`.
pub struct El7 {
    pub family: Family,
    root: PathBuf,
    /// `python3 …/systemctl3.py --root=ROOT`
    pub systemctl: String,
    /// Where the replacement's modules are (its `PYTHONPATH`), when not
    /// where Python looks anyway.
    pub pythonpath: Option<PathBuf>,
}

impl El7 {
    /// `tools`: the directory `pip3 install --target` put the replacement in.
    pub fn new(sb: &Sandbox, family: Family, tools: &Path) -> El7 {
        El7::with(sb, family, &Systemctl::at(tools))
    }

    /// The units of `family` under `sb`'s root, run by `systemctl`.
    pub fn with(sb: &Sandbox, family: Family, systemctl: &Systemctl) -> El7 {
        El7 {
            family,
            root: sb.root.clone(),
            systemctl: format!("{} --root={}", systemctl.command, sb.root.display()),
            pythonpath: systemctl.pythonpath.clone(),
        }
    }

    /// The environment imlrecover needs to reach these units.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("IMLRECOVER_SYSTEMCTL".into(), self.systemctl.clone())];
        if let Some(p) = &self.pythonpath {
            env.push(("PYTHONPATH".into(), p.display().to_string()));
        }
        env
    }

    fn units(&self) -> Vec<String> {
        unit_files(self.family)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    fn systemctl(&self, verb: &str, unit: &str) -> Result<(), SandboxError> {
        let mut words = self.systemctl.split_whitespace();
        let mut cmd = Command::new(words.next().unwrap_or("python3"));
        cmd.args(words).args([verb, unit]);
        if let Some(p) = &self.pythonpath {
            cmd.env("PYTHONPATH", p);
        }
        let out = cmd
            .output()
            .map_err(|e| SandboxError(format!("systemctl {verb} {unit}: {e}")))?;
        if !out.status.success() {
            return Err(SandboxError(format!(
                "systemctl {verb} {unit}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Starts every unit (the target last), as a booted manager has them.
    pub fn start(&self) -> Result<(), SandboxError> {
        for u in self.units() {
            self.systemctl("start", &u)?;
        }
        Ok(())
    }

    /// Installs one unit of this family and starts it (a rebuilt OS that
    /// already runs InfluxDB, as the sandbox's rebuilt OS runs PostgreSQL).
    pub fn install_unit(&self, name: &str) -> Result<(), SandboxError> {
        let (_, text) = unit_files(self.family)
            .into_iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| SandboxError(format!("no unit {name} in {:?}", self.family)))?;
        write(&self.root.join("usr/lib/systemd/system").join(name), &text)?;
        self.systemctl("start", name)
    }

    /// Stops every unit that has a unit file (cleanup: errors are ignored).
    pub fn stop(&self) {
        for u in self.units().iter().rev() {
            if self.root.join("usr/lib/systemd/system").join(u).exists() {
                let _ = self.systemctl("stop", u);
            }
        }
    }

    /// The installation media of this release (`<dir>/media/install-el7`):
    /// what `yum install python2-iml-manager && chroma-config setup` does
    /// to a host — the manager's files, NEW certificates, its settings and
    /// ntp.conf, the unit files, role and database `chroma` (and `grafana`
    /// on 5.1+) in the sandbox's current cluster, every unit started.
    pub fn write_installer(&self, sb: &Sandbox) -> Result<PathBuf, SandboxError> {
        let mut units = String::new();
        for (name, text) in unit_files(self.family) {
            units.push_str(&format!(
                "cat > \"$R/usr/lib/systemd/system/{name}\" <<'IML_UNIT'\n{text}IML_UNIT\n"
            ));
        }
        let version_file = match self.family {
            Family::El6 | Family::El7_409 => format!(
                "cat > \"$R/usr/share/chroma-manager/scm_version.py\" <<'IML_EOF'\nPACKAGE_VERSION = \"{}\"\nIML_EOF\n",
                version(self.family)
            ),
            _ => format!(
                "mkdir -p \"$R/usr/lib/python2.7/site-packages/iml_manager-{v}-py2.7.egg-info\"\necho 'Version: {v}' > \"$R/usr/lib/python2.7/site-packages/iml_manager-{v}-py2.7.egg-info/PKG-INFO\"\n",
                v = version(self.family)
            ),
        };
        let mut create = String::new();
        if let Some(c) = &sb.cluster {
            let t = c.target();
            let psql = pg::find_program(None, "psql").map_err(|e| SandboxError(e.to_string()))?;
            let mut sql = vec![
                "CREATE ROLE chroma LOGIN",
                "CREATE DATABASE chroma OWNER chroma",
            ];
            if self.family >= Family::El7_51 {
                sql.push("CREATE DATABASE grafana OWNER chroma");
            }
            for q in sql {
                create.push_str(&format!(
                    "runuser -u postgres -- '{}' -X -q -h '{}' -p {} -U postgres -d postgres -c \"{q}\"\n",
                    psql.display(),
                    t.host.clone().unwrap_or_default(),
                    t.port.unwrap_or(5432)
                ));
            }
        }
        let starts: Vec<String> = self
            .units()
            .iter()
            .map(|u| match &self.pythonpath {
                Some(p) => format!(
                    "PYTHONPATH='{}' {} start {u}\n",
                    p.display(),
                    self.systemctl
                ),
                None => format!("{} start {u}\n", self.systemctl),
            })
            .collect();
        let script = format!(
            r#"#!/bin/sh
# IML {v} media (imlrecover sandbox): what yum install python2-iml-manager
# and chroma-config setup do to a host.
set -e
R="${{IMLRECOVER_ROOT:-{root}}}"
mkdir -p "$R/usr/share/chroma-manager" "$R/var/lib/chroma" "$R/usr/lib/systemd/system" "$R/var/log/chroma"
echo '#!/usr/bin/env python' > "$R/usr/share/chroma-manager/manage.py"
{version_file}cat > "$R/usr/share/chroma-manager/local_settings.py" <<'IML_EOF'
# written by chroma-config setup (fresh install)
IML_EOF
cat > "$R/etc/ntp.conf" <<'IML_EOF'
# ntp.conf written by chroma-config setup
server 127.127.1.0
IML_EOF
cd "$R/var/lib/chroma"
openssl genrsa -out authority.pem 2048 2>/dev/null
openssl req -new -x509 -key authority.pem -out authority.crt -days 3650 -subj "/O=IML sandbox reinstalled/CN=authority"
openssl genrsa -out manager.pem 2048 2>/dev/null
openssl req -new -key manager.pem -out manager.csr -subj "/O=IML sandbox reinstalled/CN=manager"
openssl x509 -req -in manager.csr -CA authority.crt -CAkey authority.pem -CAcreateserial -out manager.crt -days 3650 2>/dev/null
rm -f manager.csr
chmod 0600 authority.pem manager.pem
{units}{create}{starts}echo "IML installed"
"#,
            v = version(self.family),
            root = sb.root.display(),
            starts = starts.concat(),
        );
        let path = sb.dir.join("media/install-el7");
        write(&path, &script)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| SandboxError(format!("{}: {e}", path.display())))?;
        Ok(path)
    }
}

impl Drop for El7 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A golden EL7 manager of one family, whole: what a release's demo and
/// drill back up, destroy and restore. Dropped in field order: the units
/// stop first, then `influxd`, then the sandbox and its cluster.
pub struct El7Manager {
    pub units: El7,
    /// 5.1+: the statistics' server, seeded ([`El7Manager::STATISTICS`]).
    pub influxd: Option<Influxd>,
    pub sandbox: Sandbox,
    /// The release's installation media (`media/install-el7`).
    pub installer: PathBuf,
    /// The InfluxDB databases of this release.
    pub databases: Vec<&'static str>,
}

impl El7Manager {
    /// Measurements, series per measurement and points per series seeded
    /// into the first database (one more measurement per database after).
    pub const STATISTICS: (usize, usize, usize) = (2, 3, 24);

    /// Builds it under `dir` (existing, empty): the golden sandbox manager,
    /// marked as `family`; from 5.1 an `influxd` (from `influx_bindir`, or
    /// `PATH`) seeded and named in the host's influxdb.conf; every unit started.
    pub fn golden(
        dir: &Path,
        family: Family,
        systemctl: &Systemctl,
        influx_bindir: Option<&Path>,
    ) -> Result<El7Manager, SandboxError> {
        if family == Family::El6 {
            return Err(SandboxError(
                "an EL6 manager is a Sandbox, not an El7Manager".into(),
            ));
        }
        let sandbox = Sandbox::golden(dir)?;
        releases::mark(&sandbox, family)?;
        let mut databases = Vec::new();
        let influxd = if family >= Family::El7_51 {
            databases = vec!["iml", "iml_stratagem_scans"];
            if family == Family::El7_61 {
                databases.push("iml_stats");
            }
            let d = Influxd::start(&dir.join("influxd"), influx_bindir)
                .map_err(|e| SandboxError(format!("influxd: {e}")))?;
            let (m, s, p) = Self::STATISTICS;
            for (n, db) in databases.iter().enumerate() {
                d.seed(db, m + n, s, p, db)
                    .map_err(|e| SandboxError(format!("seeding InfluxDB {db}: {e}")))?;
            }
            releases::point_influx(&sandbox, &d.rpc, &d.http)?;
            Some(d)
        } else {
            None
        };
        let units = El7::with(&sandbox, family, systemctl);
        units.start()?;
        let installer = units.write_installer(&sandbox)?;
        Ok(El7Manager {
            units,
            influxd,
            sandbox,
            installer,
            databases,
        })
    }

    pub fn family(&self) -> Family {
        self.units.family
    }

    /// The server dies: units stopped, the sandbox's disaster (OS and
    /// cluster), InfluxDB's disk lost. The rebuilt OS runs an empty
    /// InfluxDB, as it runs a fresh PostgreSQL cluster, and the media
    /// installs against the new cluster.
    pub fn disaster(&mut self) -> Result<(), SandboxError> {
        self.units.stop();
        self.sandbox.disaster()?;
        self.installer = self.units.write_installer(&self.sandbox)?;
        if let Some(d) = &mut self.influxd {
            d.wipe()
                .map_err(|e| SandboxError(format!("influxd: {e}")))?;
            self.units.install_unit("influxdb.service")?;
        }
        Ok(())
    }

    /// The series and point counts of each database, as InfluxDB reports them.
    pub fn statistics(&self) -> Result<Vec<String>, SandboxError> {
        let Some(d) = &self.influxd else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for db in &self.databases {
            for q in ["SHOW SERIES", "SELECT COUNT(*) FROM /.*/"] {
                let v = d
                    .query(Some(db), q)
                    .map_err(|e| SandboxError(format!("InfluxDB {db}: {q}: {e}")))?;
                out.push(format!("{db} {q}: {}", serde_json::Value::Array(v)));
            }
        }
        Ok(out)
    }

    /// Points counted in every database (`SELECT COUNT(*)`, its values summed).
    pub fn points(&self) -> Result<u64, SandboxError> {
        let Some(d) = &self.influxd else {
            return Ok(0);
        };
        let mut n = 0;
        for db in &self.databases {
            let v = d
                .query(Some(db), "SELECT COUNT(value) FROM /.*/")
                .map_err(|e| SandboxError(format!("InfluxDB {db}: {e}")))?;
            for s in &v {
                for row in s["values"].as_array().into_iter().flatten() {
                    n += row[1].as_u64().unwrap_or(0);
                }
            }
        }
        Ok(n)
    }

    /// `--var` values for the release's recipe (as `imlrecover init`
    /// drafts it) that change with the disaster: the media, the cluster.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![("installer".into(), self.installer.display().to_string())];
        let t = self.sandbox.target();
        if self.sandbox.cluster.is_some() {
            v.push(("pg_host".into(), t.host.unwrap_or_default()));
            v.push((
                "pg_port".into(),
                t.port.map(|p| p.to_string()).unwrap_or_default(),
            ));
        }
        v
    }

    pub fn var_args(&self) -> Vec<String> {
        self.vars()
            .into_iter()
            .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")])
            .collect()
    }

    /// The environment imlrecover needs to reach the units.
    pub fn env(&self) -> Vec<(String, String)> {
        self.units.env()
    }
}
