//! Values of `sensitive = true` variables never leave the process in the
//! clear: every text imlrecover prints or writes (stdout, diagnostics,
//! saved plans, run directories) passes through [`text`], which replaces
//! each such value with [`MARK`]. Registered while the recipe is decoded,
//! so even its own error messages are covered.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};

/// What a sensitive value reads as.
pub const MARK: &str = "(sensitive value)";

fn secrets() -> &'static Mutex<Vec<String>> {
    static S: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    S.get_or_init(Mutex::default)
}

/// Registers every scalar inside `value` (strings, numbers; lists and
/// objects element by element) as a secret.
pub fn add_value(value: &hcl::Value) {
    match value {
        hcl::Value::String(s) => add(s),
        hcl::Value::Number(n) => add(&n.to_string()),
        hcl::Value::Array(items) => items.iter().for_each(add_value),
        hcl::Value::Object(map) => map.values().for_each(add_value),
        hcl::Value::Bool(_) | hcl::Value::Null => {}
    }
}

fn add(s: &str) {
    if s.is_empty() {
        return;
    }
    if let Ok(mut v) = secrets().lock() {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
            // Longest first, so a secret containing another is replaced whole.
            v.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }
}

/// Whether any secret is registered.
pub fn active() -> bool {
    secrets().lock().map(|v| !v.is_empty()).unwrap_or(false)
}

/// `s` with every registered secret (and its JSON-escaped spelling)
/// replaced by [`MARK`].
pub fn text(s: &str) -> Cow<'_, str> {
    let Ok(v) = secrets().lock() else {
        return Cow::Borrowed(s);
    };
    let mut out = Cow::Borrowed(s);
    for secret in v.iter() {
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        for needle in [secret.as_str(), escaped] {
            if !needle.is_empty() && out.contains(needle) {
                out = Cow::Owned(out.replace(needle, MARK));
            }
        }
    }
    out
}

/// `s` safe for a terminal: control characters from a recipe, a file or
/// a host (`ESC]…`, `\r`, `\x07`) are shown escaped (`\u{1b}`); only
/// newlines, tabs and our own colours (`ESC[…m`) pass as they are.
pub fn terminal(s: &str) -> Cow<'_, str> {
    let harmless = |c: char| !c.is_control() || c == '\n' || c == '\t';
    if s.chars().all(harmless) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\u{1b}' {
            let sgr = rest[1..]
                .strip_prefix('[')
                .and_then(|r| {
                    r.find(|ch: char| !(ch.is_ascii_digit() || ch == ';'))
                        .map(|i| (r, i))
                })
                .filter(|(r, i)| r[*i..].starts_with('m'));
            if let Some((_, i)) = sgr {
                let len = 2 + i + 1;
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if harmless(c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Both: secrets redacted, then made safe for a terminal.
pub fn for_output(s: &str) -> String {
    terminal(&text(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_our_colours_pass() {
        assert_eq!(terminal("a\u{1b}]0;owned\u{7}b"), "a\\u{1b}]0;owned\\u{7}b");
        assert_eq!(
            terminal("\u{1b}[1;31mred\u{1b}[0m\n"),
            "\u{1b}[1;31mred\u{1b}[0m\n"
        );
        assert_eq!(terminal("x\ry"), "x\\ry");
    }

    #[test]
    fn secrets_are_replaced_wherever_they_appear() {
        add_value(&hcl::Value::from("hunter2\"x"));
        assert_eq!(text("pw=hunter2\"x;"), format!("pw={MARK};"));
        assert_eq!(
            text("{\"pw\":\"hunter2\\\"x\"}"),
            format!("{{\"pw\":\"{MARK}\"}}")
        );
        assert_eq!(text("nothing here"), "nothing here");
    }
}
