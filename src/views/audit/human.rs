//! The audit as a person (or a CI log) reads it: one section per suite,
//! `FAIL`/`ok` in front of each check so that grep finds them, matching
//! resources summed up in one line, and a final summary line.

use crate::audit::{Finding, Report, Status, Suite};
use crate::printer::Printer;
use std::fmt::Write;

pub fn report(p: &Printer, r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Audit of {} against {} and bundle {}\n",
        r.root, r.recipe.path, r.bundle.id
    );
    for suite in Suite::ALL {
        let findings: Vec<&Finding> = r.in_suite(suite).collect();
        if findings.is_empty() {
            continue;
        }
        let heading = match suite {
            Suite::Backup => format!("Backup {} (made {}):", r.bundle.id, r.bundle.created),
            s => title(s).to_string(),
        };
        let _ = writeln!(out, "{}", p.bold(&heading));
        if suite == Suite::Drift {
            drift(p, &mut out, &findings);
        } else {
            for f in findings {
                line(p, &mut out, f);
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary_line(p, r));
    out
}

fn title(s: Suite) -> &'static str {
    match s {
        Suite::Drift => "Drift (the live host against the recipe and bundle):",
        Suite::Backup => "Backup:",
        Suite::Certificates => "Certificates:",
        Suite::Unmanaged => "Unmanaged files:",
    }
}

/// Changed resources one by one, as `plan` shows them; the rest counted.
fn drift(p: &Printer, out: &mut String, findings: &[&Finding]) {
    let same = findings.iter().filter(|f| !f.failed()).count();
    for f in findings.iter().filter(|f| f.failed()) {
        let symbol = f.action.map_or("!", |a| a.symbol());
        let _ = writeln!(
            out,
            "  {} {} {}",
            p.red("FAIL"),
            p.yellow(symbol),
            p.bold(&clean(&f.name()))
        );
        let _ = writeln!(out, "       {}", clean(&f.message));
        for d in &f.details {
            let _ = writeln!(out, "       {}", p.dim(&clean(d)));
        }
    }
    let _ = writeln!(
        out,
        "  {}   {same} of {} resources match",
        p.green("ok"),
        findings.len()
    );
    if same < findings.len() {
        let _ = writeln!(
            out,
            "  {}",
            p.dim("(`imlrecover plan` with the same arguments shows the diffs and the steps)")
        );
    }
}

fn line(p: &Printer, out: &mut String, f: &Finding) {
    let mark = match f.status {
        Status::Fail => p.red("FAIL"),
        Status::Pass => format!("{}  ", p.green("ok")),
    };
    let _ = writeln!(
        out,
        "  {mark} {}: {}",
        p.bold(&clean(&f.name())),
        clean(&f.message)
    );
}

/// File names on the host may hold control characters (even escape
/// sequences); never send them to a terminal as they are.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `Audit: 2 findings (1 drift, 1 certificate).` or `Audit: clean.`
pub fn summary_line(p: &Printer, r: &Report) -> String {
    let s = &r.summary;
    if s.findings == 0 {
        return p.green(&format!("Audit: clean ({} checks passed).", s.checks));
    }
    let parts: Vec<String> = Suite::ALL
        .iter()
        .filter(|suite| s.of_suite(**suite) > 0)
        .map(|suite| format!("{} {}", s.of_suite(*suite), suite.noun()))
        .collect();
    p.red(&format!(
        "Audit: {} finding{} ({}).",
        s.findings,
        if s.findings == 1 { "" } else { "s" },
        parts.join(", ")
    ))
}
