//! SQL identifiers, literals and `\connect` arguments as pg_dump writes
//! them: just enough of the syntax to read a dump's structure lines.

use super::fingerprint::qualified_name;

/// A `\connect` argument as pg_dump writes it, with nothing else
/// (no host, port or user that would point psql elsewhere).
pub(crate) fn connect_is_plain(arg: &str) -> bool {
    let arg = arg.trim_end();
    if let Some(rest) = arg.strip_prefix("-reuse-previous=on ") {
        let Some((connstr, tail)) = parse_ident(rest) else {
            return false;
        };
        let Some(value) = connstr.strip_prefix("dbname=") else {
            return false;
        };
        let (_, after) = conn_value_len(value);
        return tail.is_empty() && after.trim().is_empty();
    }
    matches!(parse_ident(arg), Some((_, tail)) if tail.is_empty())
}

/// An SQL identifier at the start of `s`: `"quoted ""x"""` or plain.
pub(crate) fn parse_ident(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut iter = rest.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if c == '"' {
                if matches!(iter.peek(), Some((_, '"'))) {
                    out.push('"');
                    iter.next();
                } else {
                    return Some((out, &rest[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

/// `schema.table` (or a bare table, qualified with the search_path schema).
pub(crate) fn parse_copy_target(s: &str, default_schema: &str) -> Option<String> {
    let (first, rest) = parse_ident(s)?;
    let (schema, table, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let (table, rest) = parse_ident(r)?;
            (first, table, rest)
        }
        None => (default_schema.to_string(), first, rest),
    };
    rest.starts_with(' ')
        .then(|| qualified_name(&schema, &table))
}

/// The database of a `\connect` line as pg_dump writes it: `\connect name`,
/// `\connect "Name"` or `\connect -reuse-previous=on "dbname='x y'"`.
pub(crate) fn parse_connect(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if let Some(rest) = arg.strip_prefix("-reuse-previous=on ") {
        let (connstr, _) = parse_ident(rest.trim_start())?;
        let value = connstr.trim_start().strip_prefix("dbname=")?;
        return Some(parse_conn_value(value));
    }
    parse_ident(arg).map(|(db, _)| db)
}

/// A libpq connection-string value's length and what follows it.
pub(crate) fn conn_value_len(v: &str) -> (usize, &str) {
    let Some(rest) = v.strip_prefix('\'') else {
        let n = v.find(char::is_whitespace).unwrap_or(v.len());
        return (n, &v[n..]);
    };
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return (i + 2, &rest[i + 1..]),
            _ => {}
        }
    }
    (v.len(), "x")
}

/// A libpq connection-string value: `'quoted \' value'` or a bare word.
pub(crate) fn parse_conn_value(v: &str) -> String {
    let Some(rest) = v.strip_prefix('\'') else {
        return v.split_whitespace().next().unwrap_or("").to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\'' => break,
            c => out.push(c),
        }
    }
    out
}

/// A SQL string literal `'it''s'` (or `E'…'` with backslash escapes).
pub(crate) fn parse_literal(s: &str) -> Option<String> {
    let s = s.trim();
    let (escapes, body) = match s.strip_prefix('E') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let body = body.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            '\\' if escapes => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}
