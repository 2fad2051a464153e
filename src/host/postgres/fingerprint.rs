//! Per-database, per-table exact row counts: what a bundle's dump holds and
//! what a live cluster holds, in one comparable, deterministic shape.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{PgError, Result};
use super::process::conninfo_dbname;
use super::sql::{cluster_view, query_with, ClusterView};
use super::PgTarget;

/// `databases[db][table] = rows`, tables named `schema.table` (each part
/// double-quoted only when it is not a plain lower-case identifier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub databases: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Fingerprint {
    /// Rows in all tables of all databases.
    pub fn total_rows(&self) -> u64 {
        self.databases.values().flat_map(|t| t.values()).sum()
    }

    /// Number of tables in all databases.
    pub fn table_count(&self) -> usize {
        self.databases.values().map(BTreeMap::len).sum()
    }

    /// Differences of `actual` from `self` (the expected state), sorted.
    pub fn diff(&self, actual: &Fingerprint) -> Vec<FingerprintDiff> {
        compare(self, actual)
    }
}

/// One difference between an expected and an actual fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FingerprintDiff {
    MissingDatabase {
        database: String,
    },
    ExtraDatabase {
        database: String,
    },
    MissingTable {
        database: String,
        table: String,
        expected_rows: u64,
    },
    ExtraTable {
        database: String,
        table: String,
        actual_rows: u64,
    },
    RowCount {
        database: String,
        table: String,
        expected: u64,
        actual: u64,
    },
}

impl FingerprintDiff {
    /// A database that exists but is not expected. Restoring a dump never
    /// removes databases the dump does not mention, so a caller comparing a
    /// restored cluster with its dump may accept this one kind.
    pub fn is_extra_database(&self) -> bool {
        matches!(self, FingerprintDiff::ExtraDatabase { .. })
    }
}

impl fmt::Display for FingerprintDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FingerprintDiff::MissingDatabase { database } => {
                write!(f, "database \"{database}\" is missing")
            }
            FingerprintDiff::ExtraDatabase { database } => {
                write!(f, "database \"{database}\" exists but is not expected")
            }
            FingerprintDiff::MissingTable {
                database,
                table,
                expected_rows,
            } => write!(
                f,
                "table {table} in database \"{database}\" is missing (expected {expected_rows} rows)"
            ),
            FingerprintDiff::ExtraTable {
                database,
                table,
                actual_rows,
            } => write!(
                f,
                "table {table} in database \"{database}\" is not expected ({actual_rows} rows)"
            ),
            FingerprintDiff::RowCount {
                database,
                table,
                expected,
                actual,
            } => write!(
                f,
                "table {table} in database \"{database}\": {expected} rows expected, {actual} found"
            ),
        }
    }
}

/// Every difference of `actual` from `expected`, in database/table order.
pub fn compare(expected: &Fingerprint, actual: &Fingerprint) -> Vec<FingerprintDiff> {
    let mut out = Vec::new();
    let dbs: BTreeSet<&String> = expected
        .databases
        .keys()
        .chain(actual.databases.keys())
        .collect();
    for db in dbs {
        match (expected.databases.get(db), actual.databases.get(db)) {
            (Some(_), None) => out.push(FingerprintDiff::MissingDatabase {
                database: db.clone(),
            }),
            (None, Some(_)) => out.push(FingerprintDiff::ExtraDatabase {
                database: db.clone(),
            }),
            (Some(e), Some(a)) => {
                let tables: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
                for t in tables {
                    match (e.get(t), a.get(t)) {
                        (Some(&rows), None) => out.push(FingerprintDiff::MissingTable {
                            database: db.clone(),
                            table: t.clone(),
                            expected_rows: rows,
                        }),
                        (None, Some(&rows)) => out.push(FingerprintDiff::ExtraTable {
                            database: db.clone(),
                            table: t.clone(),
                            actual_rows: rows,
                        }),
                        (Some(&x), Some(&y)) if x != y => out.push(FingerprintDiff::RowCount {
                            database: db.clone(),
                            table: t.clone(),
                            expected: x,
                            actual: y,
                        }),
                        _ => {}
                    }
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// `schema.table`, each part quoted like SQL when it is not a plain
/// lower-case identifier. Keywords are not quoted (unlike pg_dump), so the
/// live catalog and a dump produce the same key for the same table.
pub fn qualified_name(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_part(schema), quote_part(table))
}

fn quote_part(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// Exact row counts (`count(*)`, not statistics) of every user table of
/// every connectable non-template database. Each database is counted in one
/// REPEATABLE READ transaction, so its counts are one consistent snapshot.
/// The tables are those pg_dump writes data for: ordinary tables (leaf
/// partitions, not their parents), not temporary, not owned by extensions.
pub fn fingerprint(target: &PgTarget) -> Result<Fingerprint> {
    fingerprint_in(target, &cluster_view(target)?)
}

/// How rows are counted: [`CountPath::Gexec`] needs psql 9.6 (`\gexec`)
/// and a 9.1 server (`format()`, `relpersistence`); [`CountPath::Script`]
/// works with any server and psql from 8.4 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPath {
    /// One session: the table list runs each count through `\gexec`.
    Gexec,
    /// Two sessions: a list query, then a count script imlrecover writes
    /// (one statement per database, never one round trip per table).
    Script,
}

impl CountPath {
    /// The path a server and a psql of these versions allow (0: unknown,
    /// taken as new).
    pub fn for_versions(server_num: u32, client_num: u32) -> CountPath {
        let old = |v: u32, min: u32| v != 0 && v < min;
        if super::version::old_paths_forced() || old(server_num, 90100) || old(client_num, 90600) {
            CountPath::Script
        } else {
            CountPath::Gexec
        }
    }
}

/// [`fingerprint`] of the databases of `view`, on the path its server and
/// our psql allow.
pub fn fingerprint_in(target: &PgTarget, view: &ClusterView) -> Result<Fingerprint> {
    let client = super::version::client_version(target, "psql").unwrap_or(0);
    let path = CountPath::for_versions(view.identity.server_version_num, client);
    fingerprint_with(target, &view.databases, path)
}

/// [`fingerprint`] of the given databases (the server taken as 9.1 or
/// newer; the psql's own version decides).
pub fn fingerprint_of(target: &PgTarget, databases: &[String]) -> Result<Fingerprint> {
    let client = super::version::client_version(target, "psql").unwrap_or(0);
    fingerprint_with(target, databases, CountPath::for_versions(0, client))
}

/// [`fingerprint`] of the given databases on the given path, each path in
/// as few psql sessions as it can (`\connect` from one database to the
/// next): one process, not one per database.
pub fn fingerprint_with(
    target: &PgTarget,
    databases: &[String],
    path: CountPath,
) -> Result<Fingerprint> {
    let mut fp = Fingerprint::default();
    let Some(first) = databases.first() else {
        return Ok(fp);
    };
    for db in databases {
        fp.databases.insert(db.clone(), BTreeMap::new());
    }
    let rows = match path {
        CountPath::Gexec => {
            let (script, vars) = per_database(databases, count_sql, None);
            query_with(target, first, &script, &vars)?
        }
        CountPath::Script => {
            let (script, vars) = per_database(databases, list_sql, None);
            let listed = query_with(target, first, &script, &vars)?;
            let Some((script, vars, start)) = count_script(target, databases, &listed)? else {
                return Ok(fp);
            };
            query_with(target, &databases[start], &script, &vars)?
        }
    };
    for row in rows {
        let (db, name, n) = parse_count(databases, &row).ok_or_else(|| bad(target, &row))?;
        fp.databases.entry(db.clone()).or_default().insert(name, n);
    }
    Ok(fp)
}

fn bad(target: &PgTarget, row: &[String]) -> PgError {
    PgError::UnexpectedOutput {
        program: "psql".into(),
        target: target.to_string(),
        doing: "counting rows".into(),
        output: format!("{row:?}"),
    }
}

fn parse_count<'a>(databases: &'a [String], row: &[String]) -> Option<(&'a String, String, u64)> {
    let [i, ns, rel, n] = row else {
        return None;
    };
    let db = databases.get(i.parse::<usize>().ok()?)?;
    Some((
        db,
        qualified_name(&unhex(ns)?, &unhex(rel)?),
        n.parse().ok()?,
    ))
}

/// A script that runs `body(i)` in each database `i` (from `skip_to`
/// on, else all), moving with `\connect`. A plain name is passed as a
/// name, which every psql (8.4 on) connects to with the previous
/// host, port and user; a name libpq would read as a connection string
/// goes as one with `-reuse-previous=on` (psql 9.1.23+/9.2.18+).
fn per_database(
    databases: &[String],
    body: impl Fn(usize) -> String,
    only: Option<&[usize]>,
) -> (String, Vec<(String, String)>) {
    let mut script = String::new();
    let mut vars = Vec::new();
    let mut first = true;
    for (i, db) in databases.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        if !first {
            // The name travels in a psql variable: no quoting to get wrong.
            if db.contains('=') || db.starts_with("postgres") || db == "-" {
                vars.push((format!("db{i}"), conninfo_dbname(db)));
                script.push_str(&format!("\\connect -reuse-previous=on :db{i}\n"));
            } else {
                vars.push((format!("db{i}"), db.clone()));
                script.push_str(&format!("\\connect :db{i}\n"));
            }
        }
        first = false;
        script.push_str(&body(i));
    }
    (script, vars)
}

/// Counts every table of the current database, tagged with `index`.
/// Oldest server: 9.1 (`format()`, `relpersistence`); psql 9.6 (`\gexec`).
fn count_sql(index: usize) -> String {
    // \gexec runs one count per table inside the same transaction as the
    // listing; names travel hex-encoded so no character can break parsing.
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n\
        SELECT format('SELECT {index}, %L, %L, count(*) FROM ONLY %I.%I', \
        encode(convert_to(n.nspname::text, 'UTF8'), 'hex'), \
        encode(convert_to(c.relname::text, 'UTF8'), 'hex'), n.nspname, c.relname) \
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
        WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
        AND n.nspname !~ '^pg_toast' \
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                        AND d.objid = c.oid AND d.deptype = 'e') \
        ORDER BY n.nspname, c.relname \\gexec\n\
        COMMIT;\n"
    )
}

/// Lists the tables [`count_sql`] counts, with the server's quoting of
/// each name (hex-encoded). Oldest server: 8.4 (`convert_to` is 8.3+;
/// temporary tables are those in `pg_temp_N` schemas, as `relpersistence`
/// is 9.1+; deptype 'e' (extensions, 9.1+) simply never matches before).
fn list_sql(index: usize) -> String {
    format!(
        "SELECT {index}, encode(convert_to(n.nspname::text, 'UTF8'), 'hex'), \
        encode(convert_to(c.relname::text, 'UTF8'), 'hex'), \
        encode(convert_to(quote_ident(n.nspname::text) || '.' || quote_ident(c.relname::text), \
        'UTF8'), 'hex') \
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
        WHERE c.relkind = 'r' \
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
        AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_' \
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                        AND d.objid = c.oid AND d.deptype = 'e') \
        ORDER BY n.nspname, c.relname;\n"
    )
}

/// The count script for the listed tables: per database one transaction
/// and one `UNION ALL` statement, in one session. `None`: no tables at all.
/// Oldest server: 8.4 (plain SQL; REPEATABLE READ is taken as SERIALIZABLE,
/// a snapshot, before 9.1).
#[allow(clippy::type_complexity)]
fn count_script(
    target: &PgTarget,
    databases: &[String],
    listed: &[Vec<String>],
) -> Result<Option<(String, Vec<(String, String)>, usize)>> {
    let mut per_db: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for row in listed {
        let parsed = match row.as_slice() {
            [i, ns, rel, quoted]
                if unhex(ns).is_some()
                    && unhex(rel).is_some()
                    && ns.bytes().chain(rel.bytes()).all(|b| b.is_ascii_hexdigit()) =>
            {
                i.parse::<usize>()
                    .ok()
                    .filter(|i| *i < databases.len())
                    .zip(unhex(quoted))
                    .map(|(i, q)| {
                        (
                            i,
                            format!("SELECT {i}, '{ns}', '{rel}', count(*) FROM ONLY {q}"),
                        )
                    })
            }
            _ => None,
        };
        let (i, select) = parsed.ok_or_else(|| bad(target, row))?;
        per_db.entry(i).or_default().push(select);
    }
    let Some(&start) = per_db.keys().next() else {
        return Ok(None);
    };
    let only: Vec<usize> = per_db.keys().copied().collect();
    let (script, vars) = per_database(
        databases,
        |i| {
            format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n{};\nCOMMIT;\n",
                per_db
                    .get(&i)
                    .map(|s| s.join("\nUNION ALL "))
                    .unwrap_or_default()
            )
        },
        Some(&only),
    );
    Ok(Some((script, vars, start)))
}

pub(crate) fn unhex(s: &str) -> Option<String> {
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(entries: &[(&str, &str, u64)]) -> Fingerprint {
        let mut f = Fingerprint::default();
        for (db, t, n) in entries {
            f.databases
                .entry(db.to_string())
                .or_default()
                .insert(t.to_string(), *n);
        }
        f
    }

    #[test]
    fn quoting_matches_sql_for_odd_names() {
        assert_eq!(qualified_name("public", "host"), "public.host");
        assert_eq!(qualified_name("S p", "t.x"), "\"S p\".\"t.x\"");
        assert_eq!(qualified_name("public", "User"), "public.\"User\"");
        assert_eq!(qualified_name("public", "a\"b"), "public.\"a\"\"b\"");
    }

    #[test]
    fn diff_names_every_kind_of_difference() {
        let expected = fp(&[
            ("chroma", "public.a", 3),
            ("chroma", "public.b", 1),
            ("x", "public.t", 0),
        ]);
        let actual = fp(&[
            ("chroma", "public.a", 2),
            ("chroma", "public.c", 5),
            ("y", "public.t", 0),
        ]);
        let d: Vec<String> = compare(&expected, &actual)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            vec![
                "table public.a in database \"chroma\": 3 rows expected, 2 found",
                "table public.b in database \"chroma\" is missing (expected 1 rows)",
                "table public.c in database \"chroma\" is not expected (5 rows)",
                "database \"x\" is missing",
                "database \"y\" exists but is not expected",
            ]
        );
        assert!(compare(&expected, &expected).is_empty());
    }

    #[test]
    fn unhex_decodes_utf8() {
        assert_eq!(unhex("53207020c3a9").as_deref(), Some("S p é"));
        assert_eq!(unhex("zz"), None);
    }
}
