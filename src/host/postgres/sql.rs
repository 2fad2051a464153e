//! Short SQL conversations through `psql`: queries, cluster identity and the
//! client backends that would block a restore.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{PgError, Result};
use super::process::{conninfo_dbname, run_checked};
use super::PgTarget;

const FIELD_SEP: char = '\x1f';
const RECORD_SEP: char = '\x1e';

/// Runs one SQL text in `database` and returns its rows as strings (NULL is
/// the empty string; values must not contain newlines). The SQL goes
/// through stdin, so its size is not limited by the command line, and it
/// stops at the first error (`ON_ERROR_STOP`).
pub fn query(target: &PgTarget, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
    query_with(target, database, sql, &[])
}

/// [`query`] with psql variables (`-v NAME=VALUE`): values reach the script
/// through `:NAME` untouched by any quoting, e.g. a conninfo for `\connect`.
pub(crate) fn query_with(
    target: &PgTarget,
    database: &str,
    sql: &str,
    vars: &[(String, String)],
) -> Result<Vec<Vec<String>>> {
    let mut cmd = target.client("psql")?;
    cmd.args(["-X", "-q", "-A", "-t"])
        .arg("-F")
        .arg(FIELD_SEP.to_string())
        .arg("-R")
        .arg(RECORD_SEP.to_string())
        .args(["-v", "ON_ERROR_STOP=1"]);
    for (name, value) in vars {
        cmd.arg("-v").arg(format!("{name}={value}"));
    }
    cmd.arg("-d")
        .arg(conninfo_dbname(database))
        .args(["-f", "-"])
        // Our own conversations are UTF-8 whatever the database encoding.
        .env("PGCLIENTENCODING", "UTF8");
    let doing = format!("querying database \"{database}\"");
    let out = run_checked(cmd, target, &doing, Some(sql.as_bytes()))?;
    Ok(parse_rows(&out.stdout))
}

/// Runs SQL (several statements allowed) in `database`, stopping at the
/// first error, which is returned with psql's message.
pub fn execute(target: &PgTarget, database: &str, sql: &str) -> Result<()> {
    let mut cmd = target.client("psql")?;
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conninfo_dbname(database))
        .args(["-f", "-"]);
    let doing = format!("executing SQL in database \"{database}\"");
    run_checked(cmd, target, &doing, Some(sql.as_bytes()))?;
    Ok(())
}

/// Checks that the server answers (`SELECT 1` in `postgres`).
pub fn ping(target: &PgTarget) -> Result<()> {
    query(target, "postgres", "SELECT 1").map(|_| ())
}

/// Splits psql's unaligned output (`-A -t -F US -R RS`). Separate result sets
/// (`\gexec`) end with a newline instead of the record separator, so both
/// end a record.
pub(crate) fn parse_rows(stdout: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(stdout);
    text.split([RECORD_SEP, '\n'])
        .filter(|r| !r.is_empty())
        .map(|r| r.split(FIELD_SEP).map(str::to_string).collect())
        .collect()
}

/// A SQL string literal for any text (PQescapeLiteral's rules).
pub(crate) fn sql_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn text_array(items: &[&str]) -> String {
    let inner: Vec<String> = items.iter().map(|s| sql_literal(s)).collect();
    format!("ARRAY[{}]::text[]", inner.join(","))
}

/// Which cluster this is: `system_identifier` changes when a cluster is
/// re-created with initdb, so a bundle can tell "same cluster" from "new".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub system_identifier: String,
    /// `SHOW server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. `150018`.
    pub server_version_num: u32,
}

/// Oldest server: 9.6 (`pg_control_system()`); older servers take
/// [`OLD_IDENTITY_SQL`] and `pg_controldata`.
const IDENTITY_SQL: &str =
    "SELECT 'i', system_identifier::text, current_setting('server_version'), \
     current_setting('server_version_num') FROM pg_control_system();\n";

/// Oldest server: 8.2 (`server_version_num`); `data_directory` (8.0+) is
/// where `pg_controldata` reads the system identifier.
const OLD_IDENTITY_SQL: &str = "SELECT 'v', current_setting('server_version'), \
     current_setting('server_version_num'), current_setting('data_directory');\n";

/// The databases a dump covers and a fingerprint counts: connectable, not
/// templates, not half-dropped (`datconnlimit = -2`). Names travel
/// hex-encoded, so no character (not even a newline) can break parsing.
/// Oldest server: 8.3 (`convert_to`); `datconnlimit` is 8.1+.
const DATABASES_SQL: &str = "SELECT 'd', encode(convert_to(datname::text, 'UTF8'), 'hex') \
     FROM pg_database WHERE datallowconn AND NOT datistemplate AND datconnlimit <> -2 \
     ORDER BY datname;\n";

/// What planning and verifying need to know of a cluster, read in one psql
/// session: which cluster it is and which databases it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub identity: ClusterIdentity,
    pub databases: Vec<String>,
    /// Where the system identifier came from: `pg_control_system()` (9.6+)
    /// or `pg_controldata` (older servers).
    #[serde(default)]
    pub identity_source: IdentitySource,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    #[default]
    PgControlSystem,
    PgControldata,
}

/// Reads the cluster's identity and its databases in one session. A server
/// older than 9.6 has no `pg_control_system()`: its identity comes from
/// `pg_controldata` on its data directory (run as `run_as`), which costs a
/// second session on those servers only.
pub fn cluster_view(target: &PgTarget) -> Result<ClusterView> {
    let prefer = if super::version::old_paths_forced() {
        IdentitySource::PgControldata
    } else {
        IdentitySource::PgControlSystem
    };
    cluster_view_via(target, prefer)
}

/// [`cluster_view`], taking the identity from `prefer` where the server
/// allows (`PgControldata` works on every server).
pub fn cluster_view_via(target: &PgTarget, prefer: IdentitySource) -> Result<ClusterView> {
    if prefer == IdentitySource::PgControlSystem {
        match query(
            target,
            "postgres",
            &format!("{IDENTITY_SQL}{DATABASES_SQL}"),
        ) {
            Ok(rows) => return parse_view(target, &rows, None),
            Err(e) if !is_missing_pg_control_system(&e) => return Err(e),
            Err(_) => {}
        }
    }
    let rows = query(
        target,
        "postgres",
        &format!("{OLD_IDENTITY_SQL}{DATABASES_SQL}"),
    )?;
    let data_dir = rows
        .iter()
        .find(|r| r.first().map(String::as_str) == Some("v"))
        .and_then(|r| r.get(3).cloned())
        .unwrap_or_default();
    let version = rows
        .iter()
        .find(|r| r.first().map(String::as_str) == Some("v"))
        .and_then(|r| r.get(2)?.parse::<u32>().ok())
        .unwrap_or(0);
    let id = super::controldata::system_identifier(target, Path::new(&data_dir), version)?;
    parse_view(target, &rows, Some(id))
}

fn is_missing_pg_control_system(e: &PgError) -> bool {
    matches!(e, PgError::Command { stderr, .. }
        if stderr.contains("pg_control_system") && stderr.contains("does not exist"))
}

fn parse_view(
    target: &PgTarget,
    rows: &[Vec<String>],
    controldata_id: Option<String>,
) -> Result<ClusterView> {
    let bad = |rows: &[Vec<String>]| PgError::UnexpectedOutput {
        program: "psql".into(),
        target: target.to_string(),
        doing: "reading the cluster identity and its databases".into(),
        output: format!("{rows:?}"),
    };
    let mut identity = None;
    let mut databases = Vec::new();
    for row in rows {
        match row.as_slice() {
            [tag, id, version, num] if tag == "i" && !id.is_empty() => {
                identity = Some(ClusterIdentity {
                    system_identifier: id.clone(),
                    server_version: version.clone(),
                    server_version_num: num.parse().unwrap_or(0),
                });
            }
            [tag, version, num, _data_dir] if tag == "v" => {
                if let Some(id) = &controldata_id {
                    identity = Some(ClusterIdentity {
                        system_identifier: id.clone(),
                        server_version: version.clone(),
                        server_version_num: num.parse().unwrap_or(0),
                    });
                }
            }
            [tag, hex] if tag == "d" => {
                databases.push(super::fingerprint::unhex(hex).ok_or_else(|| bad(rows))?);
            }
            _ => return Err(bad(rows)),
        }
    }
    let identity = identity.ok_or_else(|| bad(rows))?;
    Ok(ClusterView {
        identity,
        databases,
        identity_source: if controldata_id.is_some() {
            IdentitySource::PgControldata
        } else {
            IdentitySource::PgControlSystem
        },
    })
}

/// Reads the cluster's identity (see [`cluster_view`]).
pub fn cluster_identity(target: &PgTarget) -> Result<ClusterIdentity> {
    cluster_view(target).map(|v| v.identity)
}

/// The databases a dump covers and a fingerprint counts (see
/// [`cluster_view`]).
pub fn list_databases(target: &PgTarget) -> Result<Vec<String>> {
    cluster_view(target).map(|v| v.databases)
}

/// A client session connected to a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub pid: i32,
    pub database: String,
    pub user: String,
    pub application_name: String,
    /// Client address, or `local socket`.
    pub client: String,
    /// `active`, `idle`, `idle in transaction`, …
    pub state: String,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on database \"{}\" as \"{}\" from {}",
            self.pid, self.database, self.user, self.client
        )?;
        if !self.application_name.is_empty() {
            write!(f, " (application \"{}\")", self.application_name)?;
        }
        if !self.state.is_empty() {
            write!(f, ", {}", self.state)?;
        }
        Ok(())
    }
}

pub(crate) fn format_backends(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("    {b}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Client backends (not ours, not autovacuum or replication) connected to
/// any of `databases`; an empty slice means every database.
pub fn connected_backends(target: &PgTarget, databases: &[&str]) -> Result<Vec<Backend>> {
    let rows = backend_rows(target, databases, |select| format!("{select} ORDER BY 1"))?;
    parse_backends(target, rows)
}

/// Terminates the client backends connected to `databases` (empty: every
/// database) except our own, waits up to 10 s for them to be gone, and
/// returns them. A backend still alive after that is left to the caller's
/// next check (restore refuses while one is connected).
pub fn terminate_backends(target: &PgTarget, databases: &[&str]) -> Result<Vec<Backend>> {
    // In the select list, not the WHERE clause: there the planner may call
    // it before the `pid <> pg_backend_pid()` filter and kill our session.
    // pg_terminate_backend: 8.4+.
    let rows = backend_rows(target, databases, |select| {
        format!("SELECT b.*, pg_terminate_backend(b.pid) FROM ({select}) b ORDER BY 1")
    })?
    .into_iter()
    .filter_map(|mut r| (r.pop().as_deref() == Some("t")).then_some(r))
    .collect();
    let gone = parse_backends(target, rows)?;
    if gone.is_empty() {
        return Ok(gone);
    }
    // pg_terminate_backend only sends a signal; DROP DATABASE needs them gone.
    // pg_stat_get_backend_idset/pid: 8.4+ (pg_stat_activity.pid is 9.2+).
    let pids: Vec<String> = gone.iter().map(|b| b.pid.to_string()).collect();
    let check = format!(
        "SELECT count(*) FROM (SELECT pg_stat_get_backend_idset() AS id) s \
         WHERE pg_stat_get_backend_pid(s.id) IN ({})",
        pids.join(",")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let rows = query(target, "postgres", &check)?;
        if rows.first().and_then(|r| r.first()).map(String::as_str) == Some("0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(gone)
}

/// The backends' rows through `wrap(select)`: pg_stat_activity where the
/// server has its 9.2+ columns, else the statistics functions of 8.4+.
fn backend_rows(
    target: &PgTarget,
    databases: &[&str],
    wrap: impl Fn(String) -> String,
) -> Result<Vec<Vec<String>>> {
    if !super::version::old_paths_forced() {
        match query(target, "postgres", &wrap(backend_select(databases))) {
            Err(PgError::Command { stderr, .. }) if stderr.contains("does not exist") => {}
            other => return other,
        }
    }
    query(target, "postgres", &wrap(old_backend_select(databases)))
}

fn database_filter(column: &str, databases: &[&str]) -> String {
    if databases.is_empty() {
        String::new()
    } else {
        format!(" AND {column} = ANY({})", text_array(databases))
    }
}

/// Oldest server: 9.2 (`pid`, `state`, `row_to_json`).
fn backend_select(databases: &[&str]) -> String {
    // backend_type exists from PostgreSQL 10 on; read through row_to_json
    // the query also runs on older servers (which list only clients).
    let filter = database_filter("a.datname", databases);
    format!(
        "SELECT a.pid, a.datname, coalesce(a.usename::text, ''), \
         translate(coalesce(a.application_name, ''), E'\\n\\r', '  '), \
         coalesce(host(a.client_addr), 'local socket'), coalesce(a.state, '') \
         FROM pg_stat_activity a \
         WHERE a.datname IS NOT NULL AND a.pid <> pg_backend_pid() \
         AND coalesce(row_to_json(a)->>'backend_type', 'client backend') = 'client backend'\
         {filter}"
    )
}

/// Oldest server: 8.4 (the statistics functions; pg_stat_activity calls
/// its pid `procpid` before 9.2). No application name or state: those
/// columns are 9.0+/9.2+.
fn old_backend_select(databases: &[&str]) -> String {
    let filter = database_filter("d.datname::text", databases);
    format!(
        "SELECT pg_stat_get_backend_pid(s.id) AS pid, d.datname, coalesce(u.rolname::text, ''), \
         '', coalesce(host(pg_stat_get_backend_client_addr(s.id)), 'local socket'), '' \
         FROM (SELECT pg_stat_get_backend_idset() AS id) s \
         JOIN pg_database d ON d.oid = pg_stat_get_backend_dbid(s.id) \
         LEFT JOIN pg_roles u ON u.oid = pg_stat_get_backend_userid(s.id) \
         WHERE pg_stat_get_backend_pid(s.id) <> pg_backend_pid(){filter}"
    )
}

fn parse_backends(target: &PgTarget, rows: Vec<Vec<String>>) -> Result<Vec<Backend>> {
    let bad = |output: String| PgError::UnexpectedOutput {
        program: "psql".into(),
        target: target.to_string(),
        doing: "listing connected clients".into(),
        output,
    };
    rows.into_iter()
        .map(|r| match r.as_slice() {
            [pid, db, user, app, client, state] => Ok(Backend {
                pid: pid.parse().map_err(|_| bad(pid.clone()))?,
                database: db.clone(),
                user: user.clone(),
                application_name: app.clone(),
                client: client.clone(),
                state: state.clone(),
            }),
            other => Err(bad(format!("{other:?}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_on_both_separators() {
        let out = b"a\x1fb\x1ec\x1fd\ne\x1f\n";
        assert_eq!(
            parse_rows(out),
            vec![vec!["a", "b"], vec!["c", "d"], vec!["e", ""]]
        );
        assert!(parse_rows(b"").is_empty());
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_literal(r"a\b'"), r"E'a\\b'''");
    }
}
