//! The marks of each IML release family, laid over a sandbox manager
//! ([`super::manager::Sandbox`]): the version file the family's packages
//! leave, its unit files (EL7) or init scripts (EL6), PostgreSQL's data
//! directory where that release keeps it (a link to the sandbox cluster's
//! real one, so its postmaster.pid is the running server's), InfluxDB's
//! configuration and data directories, and IML's own columns of
//! `chroma_core_managedhost` (`address`, `not_deleted`) with one host
//! deleted. What `imlrecover init` and the release checks read.

use super::manager::{Sandbox, SandboxError};
use crate::host::postgres as pg;
use crate::init::Family;
use std::path::{Path, PathBuf};

/// The release each family's sandbox host runs.
pub fn version(family: Family) -> &'static str {
    match family {
        Family::El6 => "4.0.8.0",
        Family::El7_409 => "4.0.10.2",
        Family::El7_51 => "5.1.0",
        Family::El7_61 => "6.2.0",
    }
}

/// The SSH addresses of the managed hosts that are not deleted, as
/// [`mark`] leaves them (the seed's first two of three).
pub fn agents(sandbox: &Sandbox) -> Vec<String> {
    let _ = sandbox;
    vec![
        "oss1.ssh.example.com".to_string(),
        "oss2.ssh.example.com".to_string(),
    ]
}

/// Lays the marks of `family` over the sandbox's root and database.
pub fn mark(sandbox: &Sandbox, family: Family) -> Result<(), SandboxError> {
    let root = &sandbox.root;
    let w = |path: &str, text: &str| write(&root.join(path), text);
    match family {
        Family::El6 | Family::El7_409 => w(
            "usr/share/chroma-manager/scm_version.py",
            &format!(
                "VERSION = \"{v}-1\"\nPACKAGE_VERSION = \"{v}\"\nBUILD = \"1\"\nIS_RELEASE = True\n",
                v = version(family)
            ),
        )?,
        Family::El7_51 | Family::El7_61 => w(
            &format!(
                "usr/lib/python2.7/site-packages/iml_manager-{}-py2.7.egg-info/PKG-INFO",
                version(family)
            ),
            &format!(
                "Metadata-Version: 1.0\nName: iml-manager\nVersion: {}\n",
                version(family)
            ),
        )?,
    }
    if family != Family::El6 {
        // EL7: no SysV scripts of the manager, its units instead.
        let _ = std::fs::remove_file(root.join("etc/init.d/chroma-supervisor"));
        for (name, text) in unit_files(family) {
            w(&format!("usr/lib/systemd/system/{name}"), &text)?;
        }
        w(
            "var/lib/chroma/iml-settings.conf",
            "DB_HOST=\nDB_NAME=chroma\nDB_USER=chroma\n",
        )?;
    }
    if family >= Family::El7_51 {
        w(
            "etc/influxdb/influxdb.conf",
            "bind-address = \"127.0.0.1:8088\"\n\n[meta]\n  dir = \"/var/lib/influxdb/meta\"\n\n[data]\n  dir = \"/var/lib/influxdb/data\"\n\n[http]\n  bind-address = \":8086\"\n",
        )?;
        let mut dbs = vec!["iml", "iml_stratagem_scans"];
        if family == Family::El7_61 {
            dbs.push("iml_stats");
        }
        for db in dbs {
            std::fs::create_dir_all(root.join("var/lib/influxdb/data").join(db))
                .map_err(|e| SandboxError(format!("influxdb data: {e}")))?;
        }
    }
    if family == Family::El7_61 {
        w("var/lib/chroma/overrides.conf", "LOG_LEVEL=info\n")?;
    }
    if let Some(c) = &sandbox.cluster {
        let data = if family == Family::El7_61 {
            "var/lib/pgsql/9.6/data"
        } else {
            "var/lib/pgsql/data"
        };
        let link = root.join(data);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SandboxError(format!("{data}: {e}")))?;
        }
        std::os::unix::fs::symlink(c.data_dir(), &link)
            .map_err(|e| SandboxError(format!("{data}: {e}")))?;
        let t = c.target();
        let mut sql = String::from(
            "ALTER TABLE chroma_core_managedhost ADD COLUMN address text, ADD COLUMN not_deleted boolean DEFAULT true;
UPDATE chroma_core_managedhost SET address = nodename || '.ssh.example.com';
UPDATE chroma_core_managedhost SET not_deleted = NULL WHERE id = 3;",
        );
        sql.insert_str(0, "SET ROLE chroma;\n");
        pg::execute(&t, "chroma", &sql).map_err(|e| SandboxError(e.to_string()))?;
        if family >= Family::El7_51 {
            pg::execute(&t, "postgres", "CREATE DATABASE grafana OWNER chroma")
                .map_err(|e| SandboxError(e.to_string()))?;
            pg::execute(
                &t,
                "grafana",
                "SET ROLE chroma; CREATE TABLE dashboard (id serial PRIMARY KEY, title text);
                 INSERT INTO dashboard (title) VALUES ('IML'), ('Stratagem');",
            )
            .map_err(|e| SandboxError(e.to_string()))?;
        }
    }
    Ok(())
}

/// Points the host's influxdb.conf at a running server's addresses (what
/// `imlrecover init` reads them from).
pub fn point_influx(sandbox: &Sandbox, rpc: &str, http: &str) -> Result<(), SandboxError> {
    write(
        &sandbox.root.join("etc/influxdb/influxdb.conf"),
        &format!("bind-address = \"{rpc}\"\n\n[meta]\n  dir = \"/var/lib/influxdb/meta\"\n\n[data]\n  dir = \"/var/lib/influxdb/data\"\n\n[http]\n  bind-address = \"{http}\"\n"),
    )
}

/// The unit files of an EL7 family's sandbox host: each service a real
/// daemon (`sleep`, named after the sandbox in `ps`), the manager's own
/// units `PartOf` its target as IML's are.
pub fn unit_files(family: Family) -> Vec<(String, String)> {
    let pg_unit = if family == Family::El7_61 {
        "postgresql-9.6.service"
    } else {
        "postgresql.service"
    };
    let mut services = vec![
        pg_unit,
        "rabbitmq-server.service",
        "nginx.service",
        "ntpd.service",
    ];
    if family >= Family::El7_51 {
        services.extend(["influxdb.service", "grafana-server.service"]);
    }
    let own = [
        "iml-settings-populator.service",
        "iml-job-scheduler.service",
    ];
    let daemon = |name: &str, part_of: bool| {
        format!(
            "[Unit]\nDescription={name} (imlrecover sandbox)\n{}\n[Service]\nType=simple\nExecStart=/bin/sleep 86400\n",
            if part_of { "PartOf=iml-manager.target\n" } else { "" }
        )
    };
    let mut out: Vec<(String, String)> = services
        .iter()
        .map(|s| (s.to_string(), daemon(s, false)))
        .chain(own.iter().map(|s| (s.to_string(), daemon(s, true))))
        .collect();
    let mut target = String::from("[Unit]\nDescription=IML Manager Target\n");
    for u in own
        .iter()
        .chain(&["nginx.service", "rabbitmq-server.service"])
    {
        target.push_str(&format!("Requires={u}\nAfter={u}\n"));
    }
    target.push_str(&format!(
        "After={pg_unit}\n\n[Install]\nWantedBy=multi-user.target\n"
    ));
    out.push(("iml-manager.target".into(), target));
    out
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
    /// Where the replacement's modules are (its `PYTHONPATH`).
    pub pythonpath: PathBuf,
}

impl El7 {
    /// `tools`: the directory `pip3 install --target` put the replacement in.
    pub fn new(sb: &Sandbox, family: Family, tools: &Path) -> El7 {
        El7 {
            family,
            root: sb.root.clone(),
            systemctl: format!(
                "python3 {} --root={}",
                tools.join("systemctl2/systemctl3.py").display(),
                sb.root.display()
            ),
            pythonpath: tools.to_path_buf(),
        }
    }

    /// The environment imlrecover needs to reach these units.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("IMLRECOVER_SYSTEMCTL".into(), self.systemctl.clone()),
            ("PYTHONPATH".into(), self.pythonpath.display().to_string()),
        ]
    }

    fn units(&self) -> Vec<String> {
        unit_files(self.family)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    fn systemctl(&self, verb: &str, unit: &str) -> Result<(), SandboxError> {
        let mut words = self.systemctl.split_whitespace();
        let out = std::process::Command::new(words.next().unwrap_or("python3"))
            .args(words)
            .args([verb, unit])
            .env("PYTHONPATH", &self.pythonpath)
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
            .map(|u| {
                format!(
                    "PYTHONPATH='{}' {} start {u}\n",
                    self.pythonpath.display(),
                    self.systemctl
                )
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

/// A host that is not an IML manager: a few OS files under `root`.
pub fn plain_host(root: &Path) -> Result<(), SandboxError> {
    write(&root.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )?;
    write(
        &root.join("usr/lib/systemd/system/sshd.service"),
        "[Unit]\nDescription=OpenSSH server\n",
    )
}

fn write(path: &Path, text: &str) -> Result<(), SandboxError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| SandboxError(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| SandboxError(format!("{}: {e}", path.display())))
}
