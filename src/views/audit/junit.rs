//! JUnit XML as GitLab (`artifacts:reports:junit`) and Jenkins (`junit`
//! step) read it: `<testsuites>` → one `<testsuite>` per suite (drift,
//! backup, certificates, unmanaged) → one `<testcase>` per finding,
//! passing ones too; a failing finding carries `<failure message type>`
//! with its details as text. The mapping is documented in docs/audit.md.

use crate::audit::{Finding, Report, Suite};
use std::fmt::Write;

pub fn report(r: &Report) -> String {
    let s = &r.summary;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"imlrecover audit\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"0\">",
        s.checks, s.findings
    );
    for suite in Suite::ALL {
        let findings: Vec<&Finding> = r.in_suite(suite).collect();
        let failures = findings.iter().filter(|f| f.failed()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\" timestamp=\"{}\">",
            suite.as_str(),
            findings.len(),
            // JUnit's timestamp has no zone designator.
            escape(r.created.trim_end_matches('Z')),
        );
        if suite == Suite::Drift {
            properties(&mut out, r);
        }
        for f in findings {
            testcase(&mut out, f);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// What was audited, once, in the first suite (Jenkins shows properties).
fn properties(out: &mut String, r: &Report) {
    out.push_str("    <properties>\n");
    for (name, value) in [
        ("recipe", r.recipe.path.as_str()),
        ("recipe_hash", r.recipe.hash.as_str()),
        ("bundle", r.bundle.path.as_str()),
        ("bundle_created", r.bundle.created.as_str()),
        ("root", r.root.as_str()),
        ("max_age", r.limits.max_age.as_str()),
    ] {
        let _ = writeln!(
            out,
            "      <property name=\"{name}\" value=\"{}\"/>",
            escape(value)
        );
    }
    let _ = writeln!(
        out,
        "      <property name=\"cert_min_days\" value=\"{}\"/>",
        r.limits.cert_min_days
    );
    out.push_str("    </properties>\n");
}

fn testcase(out: &mut String, f: &Finding) {
    let _ = write!(
        out,
        "    <testcase classname=\"imlrecover.audit.{}\" name=\"{}\" time=\"0\"",
        f.suite.as_str(),
        escape(&f.name())
    );
    if !f.failed() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    let mut text = f.message.clone();
    for d in &f.details {
        text.push('\n');
        text.push_str(d);
    }
    if let Some(diff) = &f.diff {
        text.push('\n');
        text.push_str(diff);
    }
    let _ = writeln!(
        out,
        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
        escape(&f.message),
        f.check,
        escape(&text)
    );
    out.push_str("    </testcase>\n");
}

/// Escapes for both text and attribute values, and replaces characters
/// XML 1.0 cannot carry at all (control characters from file names or
/// diffs) so the document always parses.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute values normalise raw newlines and tabs to spaces;
            // character references keep them.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML 1.0's `Char` production.
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{1}y\u{FFFE}"), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(escape("l1\nl2\t"), "l1&#10;l2&#9;");
        assert_eq!(escape("blake3 1a2b… → 3c4d…"), "blake3 1a2b… → 3c4d…");
    }
}
