//! Which psql meta-commands a dump may hold. psql runs any backslash
//! command it meets outside a quoted string: `\! sh`, `\o |cmd`, backticks
//! in an argument. pg_dumpall writes only `\connect`, `\restrict` and
//! `\unrestrict` lines, and `\.` after `COPY` data.
//!
//! The check does not depend on where psql thinks a string starts or a
//! `COPY` ends: when a `COPY` statement fails (a missing table), psql reads
//! the data lines that follow as SQL, and from then on its idea of what is
//! quoted differs from the script's. So every backslash on every line,
//! data included, is looked at as if psql were outside a string there.
//! Only names that pg_dump's data escapes (`\t`, `\N`, `\\`…) and regular
//! expressions produce, and that do nothing harmful, are let through.

/// psql's meta-commands, all versions (`d…` is a family, see [`classify`]).
/// Anything not here is unknown to psql, which skips the rest of the line.
const KNOWN: &[&str] = &[
    "!",
    "?",
    "a",
    "bind",
    "bind_named",
    "c",
    "C",
    "cd",
    "close",
    "close_prepared",
    "connect",
    "conninfo",
    "copy",
    "copyright",
    "crosstabview",
    "e",
    "echo",
    "edit",
    "ef",
    "elif",
    "else",
    "encoding",
    "endif",
    "endpipeline",
    "errverbose",
    "ev",
    "f",
    "flush",
    "flushrequest",
    "g",
    "gdesc",
    "getenv",
    "getresults",
    "gexec",
    "gset",
    "gx",
    "h",
    "help",
    "H",
    "html",
    "i",
    "if",
    "include",
    "include_relative",
    "ir",
    "l",
    "list",
    "lo_export",
    "lo_import",
    "lo_list",
    "lo_unlink",
    "o",
    "out",
    "p",
    "parse",
    "password",
    "print",
    "prompt",
    "pset",
    "q",
    "qecho",
    "quit",
    "r",
    "reset",
    "restrict",
    "s",
    "sendpipeline",
    "set",
    "setenv",
    "sf",
    "startpipeline",
    "sv",
    "syncpipeline",
    "t",
    "T",
    "timing",
    "unrestrict",
    "unset",
    "w",
    "warn",
    "watch",
    "write",
    "x",
    "z",
];

/// Known commands that change nothing outside psql's display and take no
/// argument psql evaluates.
const QUIET: &[&str] = &["?", "a", "H", "html", "p", "print", "r", "reset"];

/// Known commands that only print or set display options; their arguments
/// are harmless unless a backtick asks psql to run a shell command.
const DISPLAY: &[&str] = &[
    "C",
    "conninfo",
    "copyright",
    "echo",
    "errverbose",
    "f",
    "h",
    "help",
    "l",
    "list",
    "pset",
    "qecho",
    "t",
    "T",
    "timing",
    "warn",
    "x",
    "z",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Unknown,
    Quiet,
    /// Harmless unless a backtick follows on the line.
    Display,
    Dangerous,
}

fn classify(name: &str) -> Class {
    let base = name.trim_end_matches(['+', 'S', 'x']);
    let base = if base.is_empty() { name } else { base };
    if name.starts_with('d') {
        // The describe family (`\d`, `\dt+`, `\dS`…): read-only queries.
        return Class::Display;
    }
    for n in [name, base] {
        if QUIET.contains(&n) {
            return Class::Quiet;
        }
        if DISPLAY.contains(&n) {
            return Class::Display;
        }
        if KNOWN.contains(&n) {
            return Class::Dangerous;
        }
    }
    Class::Unknown
}

/// What one backslash amounts to: the worse of its whole name and (for the
/// psql before 10 that read `\ofile` as `\o file`) its first character.
fn judge(name: &[u8]) -> Class {
    let whole = String::from_utf8_lossy(name);
    let mut worst = classify(&whole);
    if let Some(first) = whole
        .chars()
        .next()
        .filter(|_| whole.chars().nth(1).is_some())
    {
        // Read as a one-letter command, only those that run a program,
        // write or read a file, or connect elsewhere matter; `\e` would
        // start the admin's own editor, and `\e` is what a name like
        // `a\e` holds.
        let one = match classify(&first.to_string()) {
            Class::Dangerous if !"!owsgic".contains(first) => Class::Unknown,
            c => c,
        };
        worst = match (worst, one) {
            (Class::Dangerous, _) | (_, Class::Dangerous) => Class::Dangerous,
            (Class::Display, _) | (_, Class::Display) => Class::Display,
            (Class::Quiet, _) | (_, Class::Quiet) => Class::Quiet,
            _ => Class::Unknown,
        };
    }
    worst
}

/// Longest command name kept; longer names are unknown to psql (their
/// first character is kept, for the one-letter reading).
const NAME_CAP: usize = 40;

/// Streams the bytes of one line at a time; says what is wrong, if anything.
#[derive(Debug, Default)]
pub(crate) struct MetaGuard {
    /// The name after a backslash, while it is being read.
    name: Option<Vec<u8>>,
    /// A display command came earlier on this line: no backtick after it.
    no_backtick: bool,
    problem: Option<String>,
}

fn ends_name(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b'\\')
}

impl MetaGuard {
    /// Part of the current line (no newline).
    pub(crate) fn feed(&mut self, mut part: &[u8]) {
        while !part.is_empty() && self.problem.is_none() {
            if let Some(name) = &mut self.name {
                if name.is_empty() && part[0] == b'\\' {
                    // `\\`: an empty name psql rejects (or its separator);
                    // the second backslash starts nothing.
                    self.name = None;
                    part = &part[1..];
                    continue;
                }
                let end = part.iter().position(|&b| ends_name(b));
                let take = end.unwrap_or(part.len());
                let room = NAME_CAP.saturating_sub(name.len());
                name.extend_from_slice(&part[..take.min(room)]);
                if end.is_none() {
                    return;
                }
                self.end_name();
                part = &part[take..];
                continue;
            }
            let Some(i) = memchr::memchr2(b'\\', b'`', part) else {
                return;
            };
            if part[i] == b'`' {
                if self.no_backtick {
                    self.problem = Some(
                        "a backtick after a psql meta-command would run a shell command".into(),
                    );
                }
            } else {
                self.name = Some(Vec::new());
            }
            part = &part[i + 1..];
        }
    }

    fn end_name(&mut self) {
        let Some(name) = self.name.take() else { return };
        match judge(&name) {
            Class::Unknown | Class::Quiet => {}
            Class::Display => {
                if name.contains(&b'`') {
                    self.problem = Some(format!(
                        "`\\{}` with a backtick would run a shell command",
                        super::scan::shown(&name)
                    ));
                }
                self.no_backtick = true;
            }
            Class::Dangerous => {
                self.problem = Some(format!(
                    "`\\{}` is a psql meta-command pg_dumpall never writes there",
                    super::scan::shown(&name)
                ))
            }
        }
    }

    /// The line ended.
    pub(crate) fn end_line(&mut self) {
        self.end_name();
        self.no_backtick = false;
    }

    pub(crate) fn take_problem(&mut self) -> Option<String> {
        self.problem.take()
    }
}

/// A whole line that starts with a backslash outside `COPY` data: only the
/// exact forms pg_dumpall writes.
pub(crate) fn allowed_meta_line(line: &str) -> bool {
    let key = |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric());
    if let Some(k) = line.strip_prefix("\\restrict ") {
        return key(k);
    }
    if let Some(k) = line.strip_prefix("\\unrestrict ") {
        return key(k);
    }
    if let Some(name) = line.strip_prefix("\\encoding ") {
        // pg_dump's line for a database in another encoding; only server
        // encodings, in which no multi-byte character holds an ASCII byte.
        return server_encoding(name);
    }
    if let Some(arg) = line.strip_prefix("\\connect ") {
        return !line.contains('`') && super::ident::connect_is_plain(arg);
    }
    false
}

fn server_encoding(name: &str) -> bool {
    let n = name.to_ascii_uppercase().replace(['-', '_'], "");
    let fixed = [
        "SQLASCII",
        "UTF8",
        "MULEINTERNAL",
        "KOI8R",
        "KOI8U",
        "EUCCN",
        "EUCJP",
        "EUCJIS2004",
        "EUCKR",
        "EUCTW",
        "ISO88595",
        "ISO88596",
        "ISO88597",
        "ISO88598",
        "WIN866",
        "WIN874",
    ];
    let numbered = |prefix: &str, range: std::ops::RangeInclusive<u32>| {
        n.strip_prefix(prefix)
            .and_then(|d| d.parse::<u32>().ok())
            .is_some_and(|d| range.contains(&d))
    };
    fixed.contains(&n.as_str()) || numbered("LATIN", 1..=10) || numbered("WIN", 1250..=1258)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> Option<String> {
        let mut g = MetaGuard::default();
        for c in line.as_bytes().chunks(3) {
            g.feed(c);
        }
        g.end_line();
        g.take_problem()
    }

    #[test]
    fn shell_and_file_commands_are_refused_anywhere_on_a_line() {
        for bad in [
            "\\! touch /tmp/x",
            "\\!touch",
            "SELECT 1; \\! id",
            "x\t\\o /tmp/out",
            "\\ofile",
            "\\g |sh",
            "\\w /root/.bashrc",
            "\\set x 1",
            "\\copy t from program 'id'",
            "\\i /etc/passwd",
            "\\t `id`",
            "\\d `id`",
            "a\\\\ \\! id",
            "\\lo_export 1 /tmp/x",
            "\\setenv PAGER sh",
            "\\encoding SJIS",
            "\\q",
        ] {
            assert!(check(bad).is_some(), "{bad:?} was let through");
        }
    }

    #[test]
    fn what_pg_dump_writes_passes() {
        for good in [
            "x\\ty",
            "a\\\\b",
            "\\N\t\\N\t1",
            "line\\nnext\\r",
            "tab at end\\t\tnext field",
            "SELECT regexp_replace(a, '\\d+', '') FROM t;",
            "E'\\x41'",
            "C:\\\\scripts\\\\server",
            "\\.",
        ] {
            assert_eq!(check(good), None, "{good:?}");
        }
        assert!(allowed_meta_line("\\connect chroma"));
        assert!(allowed_meta_line("\\connect \"My DB\""));
        assert!(allowed_meta_line(
            "\\connect -reuse-previous=on \"dbname='a b'\""
        ));
        assert!(allowed_meta_line("\\restrict abcXYZ123"));
        assert!(allowed_meta_line("\\encoding SQL_ASCII"));
        assert!(allowed_meta_line("\\encoding LATIN1"));
        assert!(!allowed_meta_line("\\encoding SJIS"));
        assert!(!allowed_meta_line("\\connect chroma evilhost"));
        assert!(!allowed_meta_line(
            "\\connect -reuse-previous=on \"dbname='a' host=evil\""
        ));
        assert!(!allowed_meta_line("\\restrict a`id`"));
        assert!(!allowed_meta_line("\\! id"));
    }
}
