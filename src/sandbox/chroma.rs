//! The `chroma` database of a manager that has been managing a filesystem:
//! the one seeder behind `imlrecover demo` and every test cluster. Role
//! `chroma` owns database `chroma`; the known IML tables get IML-like
//! columns (quoted, escaped, unicode values), any other table a plain
//! `(id, name, state)`.

use crate::host::postgres::{self as pg, PgError, PgTarget};

/// What goes into `chroma`: the tables in order with their rows; `tag` goes
/// into the values so that two seeds differ row by row.
#[derive(Debug, Clone, Copy)]
pub struct Seed<'a> {
    pub tag: &'a str,
    pub tables: &'a [(&'a str, u64)],
    /// Also objects whose names need quoting: schema `"Audit"` with table
    /// `"Event Log"`, and a second database `"iml stats"`.
    pub odd_names: bool,
}

/// The demo's manager.
pub const DEMO: Seed<'static> = Seed {
    tag: "demo",
    tables: &[
        ("chroma_core_managedhost", 3),
        ("chroma_core_managedtarget", 24),
        ("chroma_core_volume", 48),
        ("chroma_core_command", 500),
        ("chroma_core_alertstate", 0),
    ],
    odd_names: false,
};

/// Creates role `chroma`, its database(s), tables and rows in the cluster
/// `t` points at (which must have none of them yet).
pub fn seed(t: &PgTarget, s: &Seed) -> Result<(), PgError> {
    let mut create = String::from("CREATE ROLE chroma LOGIN; CREATE DATABASE chroma OWNER chroma;");
    if s.odd_names {
        create.push_str(" CREATE DATABASE \"iml stats\" OWNER chroma;");
    }
    pg::execute(t, "postgres", &create)?;
    let hosts = s
        .tables
        .iter()
        .find(|(name, _)| *name == "chroma_core_managedhost")
        .map_or(0, |(_, n)| *n);
    let mut sql = String::from("SET ROLE chroma;\n");
    for (table, rows) in s.tables {
        sql.push_str(&table_sql(table, *rows, s.tag, hosts));
    }
    if s.odd_names {
        sql.push_str(&format!(
            "CREATE SCHEMA \"Audit\";
CREATE TABLE \"Audit\".\"Event Log\" (\"when\" timestamptz, what text);
INSERT INTO \"Audit\".\"Event Log\" VALUES
    ('2024-01-02 03:04:05+00', 'installed {tag}'), ('2024-01-03 00:00:00+00', E'line1\\nline2');
",
            tag = s.tag
        ));
    }
    pg::execute(t, "chroma", &sql)?;
    if s.odd_names {
        pg::execute(
            t,
            "iml stats",
            "SET ROLE chroma; CREATE TABLE samples (ts integer, value double precision);
             INSERT INTO samples SELECT g, g * 0.5 FROM generate_series(1, 42) g;",
        )?;
    }
    Ok(())
}

/// One table's DDL and rows.
fn table_sql(table: &str, rows: u64, tag: &str, hosts: u64) -> String {
    match table {
        "chroma_core_managedhost" => format!(
            "CREATE TABLE chroma_core_managedhost (
    id serial PRIMARY KEY, fqdn text UNIQUE NOT NULL, nodename text,
    state text, immutable_state boolean, \"Properties\" text);
INSERT INTO chroma_core_managedhost (fqdn, nodename, state, immutable_state, \"Properties\")
    SELECT 'oss' || g || '-{tag}.lustre.example.com', 'oss' || g, 'managed', g % 2 = 0,
           E'tab\\there\\nnewline \\\\ backslash é ' || g
    FROM generate_series(1, {rows}) g;
"
        ),
        "chroma_core_managedtarget" => {
            let host_id = if hosts > 0 {
                format!("1 + g % {hosts}")
            } else {
                "NULL".into()
            };
            format!(
                "CREATE TABLE chroma_core_managedtarget (
    id serial PRIMARY KEY, name text NOT NULL, uuid uuid, ha_label text,
    host_id integer REFERENCES chroma_core_managedhost(id));
INSERT INTO chroma_core_managedtarget (name, uuid, ha_label, host_id)
    SELECT 'testfs-OST' || lpad(to_hex(g), 4, '0'), md5('{tag}' || g)::uuid,
           'MGS_{tag}_' || g, {host_id}
    FROM generate_series(1, {rows}) g;
"
            )
        }
        "chroma_core_volume" => format!(
            "CREATE TABLE chroma_core_volume (
    id serial PRIMARY KEY, label text, size bigint, storage_resource_id integer);
INSERT INTO chroma_core_volume (label, size, storage_resource_id)
    SELECT '/dev/disk/by-id/scsi-{tag}' || g, g::bigint * 1073741824, g % 17
    FROM generate_series(1, {rows}) g;
"
        ),
        "chroma_core_alertstate" => format!(
            "CREATE TABLE chroma_core_alertstate (id serial PRIMARY KEY, message text);
INSERT INTO chroma_core_alertstate (message)
    SELECT 'alert {tag} ' || g FROM generate_series(1, {rows}) g;
"
        ),
        _ => format!(
            "CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL, state text);
INSERT INTO {table} (name, state)
    SELECT 'item-' || g, CASE WHEN g % 3 = 0 THEN 'lost' ELSE 'ok' END
    FROM generate_series(1, {rows}) g;
"
        ),
    }
}
