//! What runs under a root: the IML release (and the evidence for it), the
//! init system, PostgreSQL's service, data directory and socket, InfluxDB,
//! and the storage servers the manager manages. Read-only.

use super::Family;
use crate::host::postgres::{self as pg, PgTarget};
use std::path::{Path, PathBuf};

/// Where systemd unit files live, as `host::service` looks for them.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// The manager's own directory (every release).
pub const MANAGER_DIR: &str = "usr/share/chroma-manager";

/// The packages that carry the manager: 5.0+ and before.
const PACKAGES: [&str; 2] = ["python2-iml-manager", "chroma-manager"];

/// `rel` under `root` with symlinks resolved inside it, as recipe paths
/// are: a link left under the root never makes init read the host's files.
/// (PostgreSQL's data directory is the exception: its postmaster.pid
/// describes the live server, wherever the directory is.)
pub fn at(root: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    match crate::host::fs::Root::new(root).and_then(|r| r.path(&format!("/{rel}"))) {
        Ok(p) => p,
        Err(_) => root.join(rel),
    }
}

/// One fact and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<T> {
    pub value: T,
    pub evidence: String,
}

fn found<T>(value: T, evidence: impl Into<String>) -> Found<T> {
    Found {
        value,
        evidence: evidence.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Detection {
    pub root: PathBuf,
    pub family: Found<Family>,
    /// The release, when a package or version file names it.
    pub version: Option<Found<String>>,
    pub systemd: Found<bool>,
    pub pg_service: Found<String>,
    pub pg_data: Option<Found<String>>,
    /// Socket directory and port from the running server's postmaster.pid.
    pub pg_socket: Option<Found<(String, u16)>>,
    pub influxdb: Found<bool>,
    /// The InfluxDB databases found on disk (IML's only), if any.
    pub influx_databases: Option<Found<Vec<String>>>,
    /// influxd's RPC and HTTP addresses from its configuration.
    pub influx_rpc: Option<Found<String>>,
    pub influx_http: Option<Found<String>>,
    /// SSH addresses of the managed storage servers.
    pub agents: Found<Vec<String>>,
}

/// The root is not an IML manager.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} is not an IML manager server: {why}", root.display())]
#[diagnostic(
    code(imlrecover::init_not_iml),
    help("run `imlrecover init` on the manager (or with --root at its file system); nothing was written")
)]
pub struct NotIml {
    pub root: PathBuf,
    pub why: String,
}

/// Reads the host under `root`. Evidence of the release, in order: the rpm
/// database (`rpm --root`), the `iml_manager-VERSION` egg-info of 5.x+, the
/// `scm_version.py` of 4.x and before, and finally the units or init
/// scripts that only one family has.
pub fn detect(root: &Path) -> Result<Detection, NotIml> {
    let (version, family) = release(root)?;
    let systemd = init_system(root);
    let pg_service = if unit(root, "postgresql-9.6.service").is_some()
        || at(root, "etc/init.d/postgresql-9.6").is_file()
    {
        found(
            "postgresql-9.6".to_string(),
            "postgresql-9.6.service is installed",
        )
    } else if family.value == Family::El7_61 {
        found(
            "postgresql-9.6".to_string(),
            "IML 6.1+ runs postgresql-9.6 (its unit is not installed yet)",
        )
    } else {
        found(
            "postgresql".to_string(),
            "no postgresql-9.6 unit: the distribution's postgresql",
        )
    };
    let pg_data = ["var/lib/pgsql/9.6/data", "var/lib/pgsql/data"]
        .iter()
        .find(|d| root.join(d).join("PG_VERSION").is_file())
        .map(|d| found(format!("/{d}"), format!("/{d}/PG_VERSION exists")));
    let pg_socket = pg_data.as_ref().and_then(|d| socket(root, &d.value));
    let influx_conf = at(root, "etc/influxdb/influxdb.conf");
    let influxdb = if influx_conf.is_file() {
        found(true, "/etc/influxdb/influxdb.conf exists")
    } else if unit(root, "influxdb.service").is_some() {
        found(true, "influxdb.service is installed")
    } else {
        found(false, "no /etc/influxdb/influxdb.conf, no influxdb.service")
    };
    let influx_databases = influx_databases(root);
    let conf = std::fs::read_to_string(&influx_conf).unwrap_or_default();
    let influx_rpc =
        bind_address(&conf, None).map(|a| found(a, "bind-address in /etc/influxdb/influxdb.conf"));
    let influx_http = bind_address(&conf, Some("http"))
        .map(|a| found(a, "[http] bind-address in /etc/influxdb/influxdb.conf"));
    let agents = agents(pg_socket.as_ref());
    Ok(Detection {
        root: root.to_path_buf(),
        family,
        version,
        systemd,
        pg_service,
        pg_data,
        pg_socket,
        influxdb,
        influx_databases,
        influx_rpc,
        influx_http,
        agents,
    })
}

/// The release family under `root` and the version that told it, without
/// touching any database (what `plan` and `audit` check a recipe against).
pub fn release(root: &Path) -> Result<(Option<Found<String>>, Found<Family>), NotIml> {
    let not_iml = |why: &str| NotIml {
        root: root.to_path_buf(),
        why: why.to_string(),
    };
    let version = version(root);
    let family = match &version {
        Some(v) => match Family::of_version(&v.value) {
            Some(f) => found(f, format!("release {} ({})", v.value, v.evidence)),
            None => return Err(not_iml(&format!("unreadable version {}", v.evidence))),
        },
        None => {
            if !at(root, &format!("{MANAGER_DIR}/manage.py")).is_file() {
                return Err(not_iml(&format!(
                    "no {} or {} package, no /{MANAGER_DIR}/manage.py",
                    PACKAGES[0], PACKAGES[1]
                )));
            }
            by_units(root).ok_or_else(|| {
                not_iml(&format!(
                    "/{MANAGER_DIR} exists, but neither iml-manager.target nor /etc/init.d/chroma-supervisor"
                ))
            })?
        }
    };
    Ok((version, family))
}

/// The manager's release from the rpm database, the egg-info or scm_version.py.
fn version(root: &Path) -> Option<Found<String>> {
    rpm_version(root)
        .or_else(|| egg_version(root))
        .or_else(|| scm_version(root))
}

/// `rpm --root ROOT -q`: only where the root has an rpm database and this
/// machine an `rpm` (under a foreign root, the database may not be usable).
fn rpm_version(root: &Path) -> Option<Found<String>> {
    // The distribution's database directory (not this machine's default,
    // which on Debian is ~/.rpmdb).
    let dbpath = [
        ("var/lib/rpm", ["Packages", "rpmdb.sqlite"]),
        ("usr/lib/sysimage/rpm", ["Packages", "rpmdb.sqlite"]),
    ]
    .into_iter()
    .find(|(dir, files)| {
        files
            .iter()
            .any(|f| at(root, &format!("{dir}/{f}")).is_file())
    })
    .map(|(dir, _)| format!("/{dir}"))?;
    for package in PACKAGES {
        let mut cmd = std::process::Command::new("rpm");
        cmd.arg("--root").arg(root).args([
            "--dbpath",
            &dbpath,
            "-q",
            "--qf",
            "%{VERSION}",
            package,
        ]);
        // No rpm here, or a database it cannot read: the files tell instead.
        let Ok(out) = crate::host::process::run(&mut cmd, std::time::Duration::from_secs(30))
        else {
            return None;
        };
        if out.status.success() && !out.stdout.trim().is_empty() {
            let v = out.stdout.trim().to_string();
            return Some(found(
                v,
                format!("package {package} in the rpm database {dbpath}"),
            ));
        }
    }
    None
}

/// 5.x+: `iml_manager-VERSION-py2.7.egg-info` from python2-iml-manager-libs.
fn egg_version(root: &Path) -> Option<Found<String>> {
    let dir = at(root, "usr/lib/python2.7/site-packages");
    let mut eggs: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("iml_manager-") && n.ends_with(".egg-info"))
        .collect();
    eggs.sort();
    let name = eggs.pop()?;
    let v = name
        .strip_prefix("iml_manager-")?
        .split("-py")
        .next()?
        .to_string();
    Some(found(v, format!("/usr/lib/python2.7/site-packages/{name}")))
}

/// 4.x and before: `PACKAGE_VERSION = "4.0.9.0"` in scm_version.py.
fn scm_version(root: &Path) -> Option<Found<String>> {
    let text = std::fs::read_to_string(at(root, &format!("{MANAGER_DIR}/scm_version.py"))).ok()?;
    let v = text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("PACKAGE_VERSION")?;
        let value = rest
            .trim_start()
            .strip_prefix('=')?
            .trim()
            .trim_matches(['"', '\'']);
        (!value.is_empty() && value.chars().next()?.is_ascii_digit()).then(|| value.to_string())
    })?;
    Some(found(
        v,
        format!("PACKAGE_VERSION in /{MANAGER_DIR}/scm_version.py"),
    ))
}

/// Without a version: the units only one family installs.
fn by_units(root: &Path) -> Option<Found<Family>> {
    if let Some(target) = unit(root, "iml-manager.target") {
        let (family, why) = if unit(root, "postgresql-9.6.service").is_some() {
            (Family::El7_61, "and postgresql-9.6.service")
        } else if unit(root, "influxdb.service").is_some()
            || unit(root, "grafana-server.service").is_some()
        {
            (Family::El7_51, "and influxdb/grafana-server units")
        } else {
            (Family::El7_409, "without influxdb or postgresql-9.6 units")
        };
        return Some(found(family, format!("no version found; {target} {why}")));
    }
    at(root, "etc/init.d/chroma-supervisor").is_file().then(|| {
        found(
            Family::El6,
            "no version found; /etc/init.d/chroma-supervisor",
        )
    })
}

fn init_system(root: &Path) -> Found<bool> {
    if let Some(u) = unit(root, "iml-manager.target") {
        found(true, format!("{u} exists"))
    } else if at(root, "etc/init.d/chroma-supervisor").is_file() {
        found(false, "/etc/init.d/chroma-supervisor exists")
    } else if at(root, "usr/lib/systemd/systemd").exists()
        || at(root, "lib/systemd/systemd").exists()
    {
        found(true, "systemd is installed")
    } else {
        found(false, "no systemd and no iml-manager.target")
    }
}

/// `/usr/lib/systemd/system/NAME` (or another unit directory), as a
/// recipe path, if installed under the root.
pub fn unit(root: &Path, name: &str) -> Option<String> {
    UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| at(root, p).exists())
        .map(|p| format!("/{p}"))
}

/// The socket directory and port of the server running on `data`, from its
/// postmaster.pid (line 4: port, line 5: socket directories).
fn socket(root: &Path, data: &str) -> Option<Found<(String, u16)>> {
    let pidfile = format!("{}/postmaster.pid", data.trim_end_matches('/'));
    let text = std::fs::read_to_string(root.join(pidfile.trim_start_matches('/'))).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let port = lines.get(3)?.trim().parse().ok()?;
    let dir = lines.get(4)?.split(',').next()?.trim().to_string();
    (!dir.is_empty()).then(|| found((dir, port), format!("{pidfile} of the running server")))
}

/// `bind-address` at the top of influxdb.conf (`section` None) or in
/// `[section]`, as an address to connect to (`:8086` → `127.0.0.1:8086`).
fn bind_address(conf: &str, section: Option<&str>) -> Option<String> {
    let mut current: Option<String> = None;
    for line in conf.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            continue;
        }
        if current.as_deref() != section {
            continue;
        }
        let Some(value) = line.strip_prefix("bind-address") else {
            continue;
        };
        let value = value
            .trim_start()
            .strip_prefix('=')?
            .trim()
            .trim_matches('"');
        return Some(match value.strip_prefix(':') {
            Some(port) => format!("127.0.0.1:{port}"),
            None => value.to_string(),
        });
    }
    None
}

/// IML's InfluxDB databases present in the default data directory.
fn influx_databases(root: &Path) -> Option<Found<Vec<String>>> {
    let dir = at(root, "var/lib/influxdb/data");
    let dbs: Vec<String> = ["iml", "iml_stats", "iml_stratagem_scans"]
        .iter()
        .filter(|d| dir.join(d).is_dir())
        .map(|d| d.to_string())
        .collect();
    (!dbs.is_empty()).then(|| found(dbs, "directories in /var/lib/influxdb/data"))
}

/// The managed hosts that are not deleted, by their SSH address, from the
/// manager's own `chroma` database. Columns as IML has them (`address`,
/// `not_deleted`) where present, else `fqdn` and every row not `removed`.
fn agents(socket: Option<&Found<(String, u16)>>) -> Found<Vec<String>> {
    let mut t = PgTarget::local_postgres();
    if let Some(s) = socket {
        t.host = Some(s.value.0.clone());
        t.port = Some(s.value.1);
    }
    let cols = match pg::query(
        &t,
        "chroma",
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'chroma_core_managedhost'",
    ) {
        Ok(rows) => rows.into_iter().filter_map(|r| r.into_iter().next()).collect::<Vec<_>>(),
        Err(e) => {
            return found(Vec::new(), format!("the chroma database could not be read ({e}); set it with --var agents='[...]'"))
        }
    };
    let has = |c: &str| cols.iter().any(|x| x == c);
    if !has("fqdn") && !has("address") {
        return found(
            Vec::new(),
            "the chroma database has no chroma_core_managedhost; set it with --var agents='[...]'",
        );
    }
    let column = if has("address") { "address" } else { "fqdn" };
    let mut filter = Vec::new();
    if has("not_deleted") {
        filter.push("not_deleted IS TRUE");
    }
    if has("state") {
        filter.push("state IS DISTINCT FROM 'removed'");
    }
    let sql = format!(
        "SELECT {column} FROM chroma_core_managedhost{} ORDER BY id",
        if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filter.join(" AND "))
        }
    );
    match pg::query(&t, "chroma", &sql) {
        Ok(rows) => {
            let hosts: Vec<String> = rows
                .into_iter()
                .filter_map(|r| r.into_iter().next())
                .filter(|h| !h.is_empty())
                .collect();
            let why = format!(
                "chroma_core_managedhost.{column}{} in the chroma database ({})",
                if filter.is_empty() {
                    String::new()
                } else {
                    format!(" where {}", filter.join(" and "))
                },
                t.host.as_deref().unwrap_or("default socket")
            );
            found(hosts, why)
        }
        Err(e) => found(
            Vec::new(),
            format!(
                "the managed hosts could not be read ({e}); set them with --var agents='[...]'"
            ),
        ),
    }
}
