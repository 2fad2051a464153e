//! `pg_dumpall --clean` of a small cluster, its databases dumped at once.
//!
//! pg_dumpall runs one `pg_dump` after another. On a small cluster (the
//! fresh one an installer leaves, which every restore's safety dump meets)
//! their start-ups and catalogue reads are nearly all of its time. Here the
//! globals (`pg_dumpall --globals-only`) and every database (`pg_dump` with
//! the options pg_dumpall gives it) run concurrently, and the pieces are
//! joined with pg_dumpall's own framing: a test holds the result
//! byte-identical to pg_dumpall's output.
//!
//! Only where that framing is known: [`dump`] returns `None` (and the
//! caller runs pg_dumpall itself) for a cluster over `up_to` bytes (there
//! pg_dumpall's own work dwarfs its start-ups), pieces over [`MEMORY_CAP`],
//! a database name with a line break (pg_dumpall refuses those), a
//! non-ASCII name on a server that is not UTF-8, a pg_dump outside 11–17 or
//! of another major version than the server, output not shaped as
//! expected, or any program failing.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::fingerprint::unhex;
use super::process::{conninfo_dbname, find_program, kill_tree, LineTail};
use super::sql::query;
use super::PgTarget;
use crate::host::fanout::fan_out;

/// SQL held in memory at most; beyond it (a small cluster whose data
/// expands, e.g. compressed TOAST) the pieces are dropped for pg_dumpall.
const MEMORY_CAP: u64 = 32 << 20;
/// pg_dump versions whose pg_dumpall framing this module reproduces.
const KNOWN_MAJORS: std::ops::RangeInclusive<u32> = 11..=17;

const HEADER: &str = "--\n-- PostgreSQL database cluster dump\n--\n\n";
const FOOTER: &str = "--\n-- PostgreSQL database cluster dump complete\n--\n\n";
const STD_STRINGS: &str = "\nSET standard_conforming_strings = ";
const DB_HEADER: &str = "--\n-- PostgreSQL database dump\n--\n";

/// One database as pg_dumpall sees it, in its order.
struct Database {
    name: String,
    /// `quote_ident(datname)`: the server's quoting, which is pg_dumpall's.
    quoted: String,
}

/// The cluster's `pg_dumpall --clean` script, or `None` where this cluster
/// or these programs are not the case this module knows, or anything
/// failed: pg_dumpall then runs and reports the failure in its own words.
pub(crate) fn dump(target: &PgTarget, up_to: u64) -> Option<Joined> {
    if up_to == 0 {
        return None;
    }
    // pg_dumpall pairs itself with the pg_dump beside it; so do we.
    let bin = target.bin_dir.as_deref();
    let (Ok(dumpall), Ok(pgdump)) = (
        find_program(bin, "pg_dumpall"),
        find_program(bin, "pg_dump"),
    ) else {
        return None;
    };
    if dumpall.parent() != pgdump.parent() {
        return None;
    }
    let databases = small_cluster_databases(target, up_to)?;
    let outputs = run_all(target, &databases)?;
    let messages = outputs
        .iter()
        .map(|o| o.messages.as_str())
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let sql = assemble(&databases, &outputs)?;
    Some(Joined { sql, messages })
}

/// pg_dumpall's script, and what the programs printed on stderr.
pub(crate) struct Joined {
    pub sql: Vec<u8>,
    pub messages: String,
}

/// One program's output.
struct Output {
    sql: Vec<u8>,
    messages: String,
}

/// pg_dumpall's databases in pg_dumpall's order, if the cluster is small
/// and every name can be framed as pg_dumpall frames it.
fn small_cluster_databases(target: &PgTarget, up_to: u64) -> Option<Vec<Database>> {
    // Names travel hex-encoded: no character can break the parsing.
    // Oldest server: 8.4 (`convert_to` 8.3, `pg_database_size` 8.1); a
    // failure only means pg_dumpall runs itself.
    let rows = query(
        target,
        "postgres",
        "SELECT encode(convert_to(datname::text, 'UTF8'), 'hex'), \
                encode(convert_to(quote_ident(datname), 'UTF8'), 'hex'), \
                pg_database_size(oid), \
                datname::text ~ '^[[:ascii:]]*$' \
                  OR current_setting('server_encoding') = 'UTF8' \
         FROM pg_database \
         WHERE datallowconn AND datconnlimit <> -2 AND datname <> 'template0' \
         ORDER BY (datname <> 'template1'), datname",
    )
    .ok()?;
    let mut total = 0u64;
    let mut databases = Vec::new();
    for row in rows {
        // A name pg_dumpall would write in another encoding: left to it.
        let [name, quoted, size, as_is] = row.as_slice() else {
            return None;
        };
        if as_is != "t" {
            return None;
        }
        let (name, quoted) = (unhex(name)?, unhex(quoted)?);
        total = total.saturating_add(size.parse::<u64>().ok()?);
        if name.contains(['\n', '\r']) || total > up_to {
            return None;
        }
        databases.push(Database { name, quoted });
    }
    Some(databases)
}

/// `pg_dumpall --globals-only` and a `pg_dump` per database (with the
/// options pg_dumpall gives it), a few at a time; their outputs in that
/// order, or `None` if any fails or together they outgrow [`MEMORY_CAP`].
fn run_all(target: &PgTarget, databases: &[Database]) -> Option<Vec<Output>> {
    let pieces: Vec<Option<&Database>> = std::iter::once(None)
        .chain(databases.iter().map(Some))
        .collect();
    let command = |piece: Option<&Database>| -> Option<Command> {
        let Some(db) = piece else {
            let mut c = target.client("pg_dumpall").ok()?;
            c.args(["--clean", "--globals-only"]);
            return Some(c);
        };
        let mut c = target.client("pg_dump").ok()?;
        if db.name == "template1" || db.name == "postgres" {
            c.arg("--clean");
        }
        c.args(["--create", "-Fp", "-d"])
            .arg(conninfo_dbname(&db.name));
        Some(c)
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let held = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    fan_out(&pieces, workers.clamp(2, 8), |&piece| {
        let out = (!stop.load(Ordering::SeqCst))
            .then(|| command(piece))
            .flatten()
            .and_then(|cmd| capture(cmd, &held, &stop));
        if out.is_none() {
            // One failed: the others need not finish.
            stop.store(true, Ordering::SeqCst);
        }
        out.ok_or(())
    })
    .into_iter()
    .collect::<Result<_, ()>>()
    .ok()
}

/// One program's stdout if it succeeds, unless `stop` is raised or the
/// shared budget is spent first (then the program is killed).
fn capture(mut cmd: Command, held: &AtomicU64, stop: &AtomicBool) -> Option<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().ok()?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_tree(&mut child);
        return None;
    };
    let (sql, tail) = std::thread::scope(|s| {
        let tail = s.spawn(move || LineTail::read_all(stderr));
        let sql = read_capped(&mut stdout, &mut child, held, stop);
        (sql, tail.join().unwrap_or_default())
    });
    let status = child.wait().ok()?;
    Some(Output {
        sql: sql.filter(|_| status.success())?,
        messages: tail.text(),
    })
}

fn read_capped(
    stdout: &mut impl Read,
    child: &mut Child,
    held: &AtomicU64,
    stop: &AtomicBool,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        out.extend_from_slice(&buf[..n]);
        if n == 0
            || held.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > MEMORY_CAP
            || stop.load(Ordering::SeqCst)
        {
            stop.store(true, Ordering::SeqCst);
            kill_tree(child);
            return None;
        }
    }
}

/// pg_dumpall's script from its pieces: the globals with the
/// `DROP DATABASE` block `--globals-only` leaves out, then each database's
/// section under pg_dumpall's heading, then pg_dumpall's last line.
fn assemble(databases: &[Database], outputs: &[Output]) -> Option<Vec<u8>> {
    let (globals, sections) = outputs.split_first()?;
    let globals = std::str::from_utf8(&globals.sql).ok()?;
    if !globals.starts_with(HEADER) || globals.contains("\n-- Drop databases") {
        return None;
    }
    let globals = globals.strip_suffix(FOOTER)?;
    // The drops go right after the SET block: `SET standard_conforming_strings = on;\n\n`.
    let set = globals.find(STD_STRINGS)? + STD_STRINGS.len();
    let cut = set + globals[set..].find(";\n\n")? + 3;

    let mut out = Vec::with_capacity(outputs.iter().map(|o| o.sql.len()).sum::<usize>() + 4096);
    out.extend_from_slice(&globals.as_bytes()[..cut]);
    out.extend_from_slice(b"--\n-- Drop databases (except postgres and template1)\n--\n\n");
    for db in databases {
        if db.name != "template1" && db.name != "postgres" {
            out.extend_from_slice(format!("DROP DATABASE {};\n", db.quoted).as_bytes());
        }
    }
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(&globals.as_bytes()[cut..]);
    out.extend_from_slice(b"--\n-- Databases\n--\n\n");
    for (db, section) in databases.iter().zip(sections) {
        if !known_pg_dump(&section.sql) {
            return None;
        }
        out.extend_from_slice(format!("--\n-- Database \"{}\" dump\n--\n\n", db.name).as_bytes());
        out.extend_from_slice(&section.sql);
    }
    out.extend_from_slice(FOOTER.as_bytes());
    Some(out)
}

/// A whole plain-format dump by a pg_dump whose pg_dumpall we reproduce,
/// of a server of its own major version (the server quoted the names in
/// the `DROP DATABASE` lines; pg_dumpall quotes with its own keyword list).
fn known_pg_dump(section: &[u8]) -> bool {
    let head = &section[..section.len().min(4096)];
    let tail = &section[section.len().saturating_sub(256)..];
    let major = |label: &[u8]| -> Option<u32> {
        let at = find(head, label)? + label.len();
        let digits = head[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&head[at..at + digits])
            .ok()?
            .parse()
            .ok()
    };
    let by = major(b"\n-- Dumped by pg_dump version ");
    section.starts_with(DB_HEADER.as_bytes())
        && find(tail, b"\n-- PostgreSQL database dump complete\n").is_some()
        && by.is_some_and(|m| KNOWN_MAJORS.contains(&m))
        && by == major(b"\n-- Dumped from database version ")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::super::scan::COMPLETE_MARKER;
    use super::*;

    #[test]
    fn the_footer_is_what_the_scanner_looks_for() {
        assert!(FOOTER.lines().any(|l| l == COMPLETE_MARKER));
    }

    #[test]
    fn unknown_pg_dump_output_is_not_framed() {
        let ok = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18\n-- Dumped by pg_dump version 15.18\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
        assert!(known_pg_dump(ok));
        let newer =
            String::from_utf8_lossy(ok).replace("by pg_dump version 15", "by pg_dump version 19");
        assert!(!known_pg_dump(newer.as_bytes()));
        let cut = &ok[..ok.len() - 45];
        assert!(!known_pg_dump(cut));
        let older_server = String::from_utf8_lossy(ok)
            .replace("from database version 15", "from database version 13");
        assert!(!known_pg_dump(older_server.as_bytes()));
    }
}
