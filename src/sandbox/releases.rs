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
use std::path::Path;

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
    // IML's target also Requires= these; docker-systemctl-replacement
    // would stop them with it (systemd does not), so only their order.
    if family >= Family::El7_51 {
        target.push_str("After=influxdb.service\nAfter=grafana-server.service\n");
    }
    target.push_str(&format!(
        "After={pg_unit}\n\n[Install]\nWantedBy=multi-user.target\n"
    ));
    out.push(("iml-manager.target".into(), target));
    out
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

pub(super) fn write(path: &Path, text: &str) -> Result<(), SandboxError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| SandboxError(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| SandboxError(format!("{}: {e}", path.display())))
}
