//! Streaming reader of a plain `pg_dumpall` script: which databases it
//! connects to, how many rows each `COPY … FROM stdin;` block carries, and
//! whether the script is complete. Memory stays bounded whatever the size:
//! only the head of each line is kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;

use super::error::{PgError, Result};
use super::fingerprint::Fingerprint;
use super::ident::{parse_connect, parse_copy_target, parse_ident, parse_literal};
use super::process::truncate;
use super::restore::STATEMENT_CAP;

/// Longest statement line kept for parsing (`COPY` with many columns).
const LINE_CAP: usize = 1 << 20;
/// The last comment pg_dumpall writes; without it the dump was cut short.
pub(crate) const COMPLETE_MARKER: &str = "-- PostgreSQL database cluster dump complete";

/// Push-style scanner: [`feed`](Self::feed) it the SQL bytes in any
/// chunking, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct DumpScanner {
    line: Vec<u8>,
    line_len: usize,
    lines: u64,
    copy: Option<CopyBlock>,
    current_db: Option<String>,
    /// Schema of unqualified names in dumps by pg_dump < 10.3.
    search_path_schema: String,
    databases: BTreeMap<String, BTreeMap<String, u64>>,
    templates: BTreeSet<String>,
    complete: bool,
    problem: Option<String>,
    /// Something pg_dumpall never writes and psql could run (see [`super::meta`]).
    hostile: Option<String>,
    guard: super::meta::MetaGuard,
    /// This statement line starts with a backslash: checked whole at its end.
    meta_line: bool,
    /// The completion marker was seen: only comments and blank lines may follow.
    marker_seen: bool,
    /// Kept for a psql that names only the line of a failed statement.
    statements: Option<StatementLines>,
}

/// The one-line statements of a script by line number (outside COPY data,
/// at most [`STATEMENT_LINES_CAP`] bytes), for a psql (8.4–9.4) that names
/// a failed statement only by its line.
#[derive(Debug, Default)]
pub(crate) struct StatementLines {
    lines: HashMap<u64, String>,
    bytes: usize,
}

/// Bound of [`StatementLines`]: a big schema's DDL, not its data.
const STATEMENT_LINES_CAP: usize = 16 << 20;

impl StatementLines {
    fn note(&mut self, number: u64, line: &str) {
        // A whole statement on one line: `DROP ROLE chroma;`, not the `);`
        // closing a CREATE TABLE nor a function body's indented lines.
        let whole =
            line.as_bytes().first().is_some_and(u8::is_ascii_uppercase) && line.ends_with(';');
        if whole && self.bytes < STATEMENT_LINES_CAP {
            let kept = truncate(line, STATEMENT_CAP);
            self.bytes += kept.len();
            self.lines.insert(number, kept);
        }
    }

    /// The statement that line `number` of the script holds whole.
    pub(crate) fn get(&self, number: u64) -> Option<&str> {
        self.lines.get(&number).map(String::as_str)
    }
}

#[derive(Debug)]
struct CopyBlock {
    database: String,
    table: String,
    rows: u64,
    line: u64,
}

impl Default for DumpScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl DumpScanner {
    pub fn new() -> Self {
        DumpScanner {
            line: Vec::new(),
            line_len: 0,
            lines: 0,
            copy: None,
            current_db: None,
            search_path_schema: "public".into(),
            databases: BTreeMap::new(),
            // Old pg_dumpall versions do not mark template1 explicitly.
            templates: ["template0", "template1"].map(String::from).into(),
            complete: false,
            problem: None,
            hostile: None,
            guard: super::meta::MetaGuard::default(),
            meta_line: false,
            marker_seen: false,
            statements: None,
        }
    }

    /// Also keeps the one-line statements by line number ([`StatementLines`]).
    pub(crate) fn keeping_statements(mut self) -> Self {
        self.statements = Some(StatementLines::default());
        self
    }

    /// The statements kept by [`keeping_statements`](Self::keeping_statements).
    pub(crate) fn take_statements(&mut self) -> StatementLines {
        self.statements.take().unwrap_or_default()
    }

    /// Consumes the next bytes of the script.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // memchr: a byte-at-a-time search was a sixth of a check's CPU.
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.push(&data[..i]);
                    self.end_line();
                    data = &data[i + 1..];
                }
                None => {
                    self.push(data);
                    break;
                }
            }
        }
    }

    fn push(&mut self, part: &[u8]) {
        if self.line_len == 0 && self.copy.is_none() && part.first() == Some(&b'\\') {
            self.meta_line = true;
        }
        if !self.meta_line {
            self.guard.feed(part);
        }
        // Inside COPY data only "is this line exactly `\.`" matters.
        let keep = if self.copy.is_some() { 3 } else { LINE_CAP };
        let room = keep.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        self.lines += 1;
        self.guard.end_line();
        if let Some(p) = self.guard.take_problem() {
            self.hostile(p);
        }
        if std::mem::take(&mut self.meta_line) {
            let line = String::from_utf8_lossy(&self.line);
            let line = line.trim_end_matches('\r');
            if self.line_len > 4096 || !super::meta::allowed_meta_line(line) {
                let what = format!(
                    "`{}` is a psql meta-command pg_dumpall never writes",
                    shown(line.as_bytes())
                );
                self.hostile(what);
            }
        }
        if let Some(block) = &mut self.copy {
            if self.line_len == 2 && self.line == b"\\." {
                if let Some(b) = self.copy.take() {
                    *self
                        .databases
                        .entry(b.database)
                        .or_default()
                        .entry(b.table)
                        .or_default() += b.rows;
                }
            } else {
                block.rows += 1;
            }
            self.complete = false;
        } else {
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.statement_line(&line);
        }
        self.line.clear();
        self.line_len = 0;
    }

    fn statement_line(&mut self, line: &str) {
        let line = line.trim_end_matches('\r');
        if let Some(kept) = &mut self.statements {
            kept.note(self.lines, line);
        }
        if self.marker_seen && !line.trim().is_empty() && !line.starts_with("--") {
            self.hostile(format!(
                "`{}` comes after pg_dumpall's completion marker",
                shown(line.as_bytes())
            ));
        }
        if line == COMPLETE_MARKER {
            self.marker_seen = true;
        }
        if line == COMPLETE_MARKER {
            self.complete = true;
        } else if !line.is_empty() && line != "--" {
            self.complete = false;
        }
        if let Some(arg) = line.strip_prefix("\\connect ") {
            match parse_connect(arg) {
                Some(db) => {
                    self.databases.entry(db.clone()).or_default();
                    self.current_db = Some(db);
                    self.search_path_schema = "public".into();
                }
                None => self.problem(format!("cannot parse `{line}`")),
            }
        } else if let Some(rest) = line.strip_prefix("COPY ") {
            if !line.ends_with(" FROM stdin;") {
                return;
            }
            if self.line_len > LINE_CAP {
                self.problem("a COPY statement is longer than 1 MiB".into());
                return;
            }
            match parse_copy_target(rest, &self.search_path_schema) {
                Some(table) => {
                    self.copy = Some(CopyBlock {
                        database: self.current_db.clone().unwrap_or_else(|| "postgres".into()),
                        table,
                        rows: 0,
                        line: self.lines,
                    })
                }
                None => self.problem(format!("cannot parse `{line}`")),
            }
        } else if let Some(rest) = line.strip_prefix("ALTER DATABASE ") {
            if let Some((db, tail)) = parse_ident(rest) {
                match tail.trim() {
                    "IS_TEMPLATE = true;" => {
                        self.templates.insert(db);
                    }
                    "IS_TEMPLATE = false;" => {
                        self.templates.remove(&db);
                    }
                    _ => {}
                }
            }
        } else if let Some(rest) =
            line.strip_prefix("UPDATE pg_catalog.pg_database SET datistemplate = ")
        {
            let (flag, rest) = rest.split_once(" WHERE datname = ").unwrap_or(("", ""));
            if let Some(db) = parse_literal(rest.trim_end_matches(';')) {
                match flag {
                    "true" => {
                        self.templates.insert(db);
                    }
                    "false" => {
                        self.templates.remove(&db);
                    }
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("SET search_path = ") {
            if let Some((schema, _)) = parse_ident(rest) {
                self.search_path_schema = schema;
            }
        }
    }

    fn hostile(&mut self, what: String) {
        if self.hostile.is_none() {
            self.hostile = Some(format!("line {}: {what}", self.lines));
        }
    }

    /// The first thing seen so far that pg_dumpall never writes and that
    /// psql could act on. Check it after every [`feed`](Self::feed), before
    /// the bytes go on to psql.
    pub fn hostile_content(&self) -> Option<&str> {
        self.hostile.as_deref()
    }

    fn problem(&mut self, what: String) {
        if self.problem.is_none() {
            self.problem = Some(format!("line {}: {what}", self.lines));
        }
    }

    /// Whether the script seen so far ends with pg_dumpall's completion marker.
    pub fn is_complete(&self) -> bool {
        self.complete && self.copy.is_none() && self.line_len == 0
    }

    /// Lines seen so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The row counts, or an error when the script is cut short or unreadable.
    pub fn finish(mut self) -> Result<Fingerprint> {
        if self.line_len > 0 {
            self.end_line();
        }
        let truncated_hint = "the dump was cut short (disk full, killed backup, truncated \
                              copy): use another bundle";
        if let Some(b) = &self.copy {
            return Err(PgError::DumpFormat {
                problem: format!(
                    "it ends inside the data of table {} in database \"{}\" \
                     (COPY at line {}, {} rows read)",
                    b.table, b.database, b.line, b.rows
                ),
                hint: truncated_hint,
            });
        }
        if let Some(p) = self.hostile.take() {
            return Err(PgError::DumpFormat {
                problem: p,
                hint: HOSTILE_HINT,
            });
        }
        if let Some(p) = self.problem.take() {
            return Err(PgError::DumpFormat {
                problem: p,
                hint: "this does not look like pg_dumpall output; was the file made by \
                       `pg_dumpall --clean`?",
            });
        }
        if !self.complete {
            return Err(PgError::DumpFormat {
                problem: format!(
                    "it does not end with pg_dumpall's `{COMPLETE_MARKER}` line ({} lines read)",
                    self.lines
                ),
                hint: truncated_hint,
            });
        }
        let mut databases = self.databases;
        databases.retain(|db, _| !self.templates.contains(db));
        Ok(Fingerprint { databases })
    }
}

/// What to do about a dump that holds commands pg_dumpall never writes.
pub const HOSTILE_HINT: &str = "pg_dumpall never writes this, and psql would run it: the \
                                 dump was altered; do not restore it, use another bundle";

/// At most 200 bytes of `b` for a message, control characters escaped.
pub(crate) fn shown(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect();
    if b.len() > 200 {
        out.push('…');
    }
    out
}

/// Row counts of a plain pg_dumpall script, streamed (bounded memory).
/// Fails when the script is truncated (no completion marker, or it ends
/// inside a COPY block).
pub fn fingerprint_from_dump(mut reader: impl BufRead) -> Result<Fingerprint> {
    let mut scanner = DumpScanner::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(PgError::DumpRead { source }),
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        scanner.feed(buf);
        reader.consume(n);
    }
    scanner.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database cluster dump\n--\n\nDROP DATABASE chroma;\n\
        \\connect template1\nCOPY public.t1 (a) FROM stdin;\n1\n\\.\n\
        ALTER DATABASE template1 IS_TEMPLATE = true;\n\
        \\connect -reuse-previous=on \"dbname='My DB\\'s'\"\n\
        COPY \"S p\".\"t.x\" (y) FROM stdin;\na\\\\.\n\\\\.\n\\.\n\
        \\connect chroma\nCOPY public.empty_t  FROM stdin;\n\\.\n\
        COPY public.\"select\" (x) FROM stdin;\n1\n2\n3\n\\.\n\
        SET search_path = legacy, pg_catalog;\nCOPY old_style (x) FROM stdin;\n7\n\\.\n\
        \\connect tmpl\nCOPY public.t (x) FROM stdin;\n1\n\\.\n\
        UPDATE pg_catalog.pg_database SET datistemplate = true WHERE datname = 'tmpl';\n\
        \\connect postgres\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";

    #[test]
    fn counts_rows_per_database_and_table_in_any_chunking() {
        for chunk in [1usize, 2, 3, 7, 4096] {
            let mut s = DumpScanner::new();
            for c in DUMP.as_bytes().chunks(chunk) {
                s.feed(c);
            }
            assert!(s.is_complete());
            let fp = s.finish().unwrap();
            let got: Vec<(String, String, u64)> = fp
                .databases
                .iter()
                .flat_map(|(d, t)| t.iter().map(move |(t, n)| (d.clone(), t.clone(), *n)))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("My DB's".into(), "\"S p\".\"t.x\"".into(), 2),
                    ("chroma".into(), "legacy.old_style".into(), 1),
                    ("chroma".into(), "public.empty_t".into(), 0),
                    ("chroma".into(), "public.select".into(), 3),
                ],
                "chunk size {chunk}"
            );
            assert_eq!(
                fp.databases.keys().collect::<Vec<_>>(),
                vec!["My DB's", "chroma", "postgres"]
            );
        }
    }

    #[test]
    fn truncated_scripts_are_refused() {
        let cut = &DUMP[..DUMP.find("2\n3").unwrap()];
        let e = fingerprint_from_dump(cut.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ends inside the data of table public.select"),
            "{e}"
        );
        let cut = &DUMP[..DUMP.find("\\connect postgres").unwrap()];
        let e = fingerprint_from_dump(cut.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not end with pg_dumpall's"), "{e}");
    }

    #[test]
    fn commands_psql_would_run_are_hostile() {
        let marker = "-- PostgreSQL database cluster dump complete\n";
        for (bad, why) in [
            ("\\! touch /tmp/x\n", "never writes"),
            ("SELECT 1; \\! id\n", "never writes there"),
            // Data of a COPY that fails is read as SQL by psql.
            (
                "COPY nope (a) FROM stdin;\n\\! id\n\\.\n",
                "never writes there",
            ),
            ("\\connect chroma host=evil\n", "never writes"),
        ] {
            let dump = DUMP.replacen("\\connect postgres", &format!("{bad}\\connect postgres"), 1);
            let mut s = DumpScanner::new();
            s.feed(dump.as_bytes());
            assert!(
                s.hostile_content().is_some_and(|h| h.contains(why)),
                "{bad:?}: {:?}",
                s.hostile_content()
            );
            let e = s.finish().unwrap_err().to_string();
            assert!(e.contains("do not restore it"), "{e}");
        }
        let after = format!("{DUMP}DROP DATABASE chroma;\n");
        let mut s = DumpScanner::new();
        s.feed(after.as_bytes());
        assert!(s
            .hostile_content()
            .unwrap()
            .contains("after pg_dumpall's completion marker"));
        let mut s = DumpScanner::new();
        s.feed(format!("\\restrict abc\n{DUMP}\\unrestrict abc\n").as_bytes());
        assert!(s.hostile_content().unwrap().contains("after"), "{marker}");
        let mut s = DumpScanner::new();
        s.feed(format!("\\restrict abc\n{DUMP}").as_bytes());
        assert_eq!(s.hostile_content(), None);
    }

    #[test]
    fn literals_and_identifiers() {
        assert_eq!(parse_literal("'it''s'").as_deref(), Some("it's"));
        assert_eq!(parse_ident("\"a\"\"b\".c"), Some(("a\"b".into(), ".c")));
        assert_eq!(
            parse_connect("-reuse-previous=on \"dbname='a\\\\b c'\"").as_deref(),
            Some("a\\b c")
        );
    }
}
