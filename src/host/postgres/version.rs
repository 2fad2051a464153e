//! Which PostgreSQL: version numbers, the running server's own programs,
//! and installations of a given major version.
//!
//! An IML manager runs its distribution's PostgreSQL (8.4 on EL6, 9.2 on
//! EL7, 9.6 from `/usr/pgsql-9.6/bin` with IML 6.1+), and a newer
//! `pg_dumpall` writes dumps an older server cannot load. So the client
//! programs are those of the server's own major version wherever they can
//! be found: from the running server itself (its socket's lock file names
//! the postmaster and its data directory, whose `PG_VERSION` is the major),
//! then the distributions' per-major layouts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::process::find_program;
use super::PgTarget;

/// Extra directories holding PostgreSQL programs (`:`-separated), searched
/// for a given major version before the distributions' layouts, e.g.
/// installations under `/opt`.
pub const ENV_BINDIRS: &str = "IMLRECOVER_PG_BINDIRS";

/// Take the paths an old server or psql needs (identity from
/// `pg_controldata`, row counts without `\gexec`, restores without psql's
/// `-b`) on any server and client, so both paths run against real clusters
/// of every major this machine has (tests; documented in the README).
pub(crate) const ENV_OLD_PATHS: &str = "IMLRECOVER_PG_OLD_PATHS";

pub(crate) fn old_paths_forced() -> bool {
    std::env::var_os(ENV_OLD_PATHS).is_some_and(|v| !v.is_empty() && v != "0")
}

/// `server_version_num` of a version text: `15.18 (Debian …)` → 150018,
/// `9.6.24` → 90624, `8.4.22` → 80422, `18.6` → 180006, `14beta1` → 140000.
pub fn version_num(text: &str) -> Option<u32> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let second = parts.next().flatten().unwrap_or(0);
    if major >= 10 {
        Some(major * 10000 + second)
    } else {
        let third = parts.next().flatten().unwrap_or(0);
        Some(major * 10000 + second * 100 + third)
    }
}

/// The major version of a `server_version_num`: `150018` → `15`,
/// `90624` → `9.6`.
pub fn major_of(num: u32) -> String {
    if num >= 100_000 {
        (num / 10000).to_string()
    } else {
        format!("{}.{}", num / 10000, num / 100 % 100)
    }
}

/// A comparable major: `15` → 150000, `9.6` → 90600.
pub fn major_num(num: u32) -> u32 {
    if num >= 100_000 {
        num / 10000 * 10000
    } else {
        num / 100 * 100
    }
}

/// The version `PROGRAM --version` reports, cached per path (a program
/// does not change under a running imlrecover).
pub fn program_version(program: &Path) -> Option<u32> {
    static CACHE: Mutex<Option<HashMap<PathBuf, Option<u32>>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(program) {
        return *v;
    }
    let v = std::process::Command::new(program)
        .arg("--version")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            // "psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let after = text.split(')').nth(1)?.to_string();
            version_num(after.trim())
        });
    map.insert(program.to_path_buf(), v);
    v
}

/// The version of the client `program` a target would run.
pub fn client_version(target: &PgTarget, program: &str) -> Option<u32> {
    let bin = find_program(target.bin_dir.as_deref(), program).ok()?;
    program_version(&bin)
}

/// A running local server, as its socket's lock file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalServer {
    pub pid: i32,
    pub data_dir: PathBuf,
    /// The data directory's `PG_VERSION`: `15`, `9.6`.
    pub major: String,
    /// Directory of the postmaster's executable (`/proc/PID/exe`).
    pub bin_dir: Option<PathBuf>,
}

/// The server behind `target`'s Unix socket, if it is local and readable
/// (we are root or its owner). No SQL: nothing is asked of the server.
pub fn local_server(target: &PgTarget) -> Option<LocalServer> {
    let port = target
        .port
        .or_else(|| std::env::var("PGPORT").ok()?.parse().ok())
        .unwrap_or(5432);
    let dirs: Vec<PathBuf> = match &target.host {
        Some(h) if h.starts_with('/') => vec![PathBuf::from(h)],
        Some(_) => return None,
        None => match std::env::var("PGHOST") {
            Ok(h) if h.starts_with('/') => vec![PathBuf::from(h)],
            Ok(h) if !h.is_empty() => return None,
            // Debian's and EL's compiled-in socket directories.
            _ => ["/var/run/postgresql", "/run/postgresql", "/tmp"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        },
    };
    dirs.iter().find_map(|d| {
        let lock = std::fs::read_to_string(d.join(format!(".s.PGSQL.{port}.lock"))).ok()?;
        let mut lines = lock.lines();
        let pid: i32 = lines.next()?.trim().parse().ok()?;
        let data_dir = PathBuf::from(lines.next()?.trim());
        let major = std::fs::read_to_string(data_dir.join("PG_VERSION"))
            .ok()?
            .trim()
            .to_string();
        let bin_dir = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        Some(LocalServer {
            pid,
            data_dir,
            major,
            bin_dir,
        })
    })
}

/// Directories that may hold programs of `major` (`15`, `9.6`), most
/// specific first: `$IMLRECOVER_PG_BINDIRS`, Debian's, PGDG's, then
/// `/usr/bin` (EL's own postgresql package: 8.4 on EL6, 9.2 on EL7).
fn major_dirs(major: &str, first: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = first.map(Path::to_path_buf).into_iter().collect();
    if let Some(list) = std::env::var_os(ENV_BINDIRS) {
        dirs.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    dirs.push(PathBuf::from(format!("/usr/pgsql-{major}/bin")));
    dirs.push(PathBuf::from("/usr/bin"));
    dirs
}

/// The major version of the programs in `dir`, by whichever of `probe`
/// it holds.
fn dir_major(dir: &Path, probe: &[&str]) -> Option<String> {
    probe
        .iter()
        .map(|p| dir.join(p))
        .find(|p| p.is_file())
        .and_then(|p| program_version(&p))
        .map(major_of)
}

/// A directory holding all of `programs` of major version `major`;
/// `first` (e.g. the running postmaster's own directory) is tried first.
pub fn dir_for_major(major: &str, programs: &[&str], first: Option<&Path>) -> Option<PathBuf> {
    // The server's own directory and the per-major layouts say their major
    // by where they are: no program is run to ask (plan stays a few ms).
    let known = |d: &Path| {
        Some(d) == first
            || d == Path::new(&format!("/usr/lib/postgresql/{major}/bin"))
            || d == Path::new(&format!("/usr/pgsql-{major}/bin"))
    };
    major_dirs(major, first).into_iter().find(|d| {
        programs.iter().all(|p| find_program(Some(d), p).is_ok())
            && (known(d) || dir_major(d, programs).as_deref() == Some(major))
    })
}

/// The client programs a restore and a dump of this server need.
pub const CLIENT_PROGRAMS: &[&str] = &["psql", "pg_dumpall", "pg_dump"];
/// What a throwaway cluster needs.
pub const SERVER_PROGRAMS: &[&str] = &["initdb", "pg_ctl", "postgres"];

/// The directory of the client programs of the server behind `target`:
/// its own major's, found from the running server. `None` when the server
/// is not local or no such installation exists (then the newest programs
/// are used, and backup warns when they are newer than the server).
pub fn server_client_dir(target: &PgTarget) -> Option<PathBuf> {
    // An explicitly configured directory is never second-guessed.
    if std::env::var_os(super::process::ENV_BINDIR).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let server = local_server(target)?;
    dir_for_major(&server.major, CLIENT_PROGRAMS, server.bin_dir.as_deref())
}

/// Every installation of server programs this machine has, by major:
/// `$IMLRECOVER_PG_BINDIRS`, `/usr/lib/postgresql/*/bin`, `/usr/pgsql-*/bin`.
pub fn server_installations() -> Vec<(u32, PathBuf)> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(list) = std::env::var_os(ENV_BINDIRS) {
        dirs.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
    }
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        if let Ok(rd) = std::fs::read_dir(parent) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    dirs.push(e.path().join("bin"));
                }
            }
        }
    }
    dirs.push(PathBuf::from("/usr/bin"));
    let mut found: Vec<(u32, PathBuf)> = dirs
        .into_iter()
        .filter(|d| {
            SERVER_PROGRAMS
                .iter()
                .all(|p| find_program(Some(d), p).is_ok())
        })
        .filter_map(|d| {
            let v = program_version(&d.join("postgres"))?;
            Some((v, d))
        })
        .collect();
    found.sort_by_key(|a| a.0);
    found.dedup_by(|a, b| a.1 == b.1);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_every_era_parse() {
        assert_eq!(version_num("15.18 (Debian 15.18-0+deb12u1)"), Some(150018));
        assert_eq!(version_num("9.6.24"), Some(90624));
        assert_eq!(version_num("8.4.22"), Some(80422));
        assert_eq!(version_num("18.6"), Some(180006));
        assert_eq!(version_num("14beta1"), Some(140000));
        assert_eq!(version_num("x"), None);
        assert_eq!(major_of(150018), "15");
        assert_eq!(major_of(90624), "9.6");
        assert_eq!(major_of(80422), "8.4");
        assert!(major_num(90624) < major_num(100023));
        assert_eq!(major_num(150018), major_num(150002));
    }
}
