//! The import report, shown before anything is written: what was found
//! (and from where), what the directory lacks, what the recipe does not
//! name, and which dump was taken.

use super::{DumpState, How, Survey};
use std::time::SystemTime;

/// The whole report as plain lines (no colour: it is read and diffed).
pub fn render(s: &Survey, recipe: &std::path::Path) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "Runbook backup {} for the recipe {}",
        s.source.display(),
        recipe.display()
    ));
    let width = s
        .found
        .iter()
        .map(|f| f.record.address().to_string().len())
        .chain(s.lacking.iter().map(|l| l.address.to_string().len()))
        .max()
        .unwrap_or(0);

    let resources = s.found.len() + usize::from(s.taken().is_some());
    line(String::new());
    line(format!(
        "Found ({resources} {}):",
        plural(resources, "resource", "resources")
    ));
    for f in &s.found {
        let a = f.record.address().to_string();
        for (i, file) in f.files.iter().enumerate() {
            let label = if i == 0 { a.as_str() } else { "" };
            let how = match &file.how {
                How::Kept(cmd) => format!("kept by {cmd}"),
                How::AsFound => "as found: not a runbook location".to_string(),
                How::Defaulted { from } => {
                    format!("{from}: plain cp keeps no owner")
                }
            };
            line(format!(
                "  {label:width$}  {} <- {}  {:04o} {}:{} ({how})",
                file.path, file.rel, file.mode, file.owner, file.group
            ));
        }
    }
    if let (Some((a, _)), Some((d, _))) = (&s.database, s.taken()) {
        line(format!(
            "  {:width$}  {} (see Dumps)",
            a.to_string(),
            d.name
        ));
    }

    if !s.lacking.is_empty() {
        line(String::new());
        line(format!(
            "Lacking ({}): not in the bundle; a plan leaves the live host's copies alone",
            s.lacking.len()
        ));
        for l in &s.lacking {
            let optional = if l.optional { " (optional)" } else { "" };
            let unused = if l.unused.is_empty() {
                String::new()
            } else {
                format!(
                    "; found, but not imported without it: {}",
                    l.unused.join(", ")
                )
            };
            // A resource no runbook file holds (influxdb) was looked for nowhere.
            let looked = if l.looked.is_empty() {
                String::new()
            } else {
                format!("; looked for {}", l.looked.join(", "))
            };
            line(format!(
                "  {:width$}  {}{optional}: {}{looked}{unused}",
                l.address.to_string(),
                l.paths.join(", "),
                l.note,
            ));
        }
    }

    if !s.extras.is_empty() {
        line(String::new());
        line(format!(
            "Not named by the recipe ({}): not imported",
            s.extras.len()
        ));
        for e in &s.extras {
            match &e.origin {
                Some(o) => line(format!("  {}  (the runbook's copy of {o})", e.rel)),
                None => line(format!("  {}", e.rel)),
            }
        }
    }

    line(String::new());
    if s.dumps.is_empty() {
        line("Dumps: none".to_string());
    } else {
        line("Dumps (newest first):".to_string());
    }
    for d in &s.dumps {
        let dump = &d.dump;
        let parts = if dump.parts.len() > 1 {
            format!(
                " in {} parts ({})",
                dump.parts.len(),
                dump.parts
                    .iter()
                    .map(|p| p.rsplit('.').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        let age = dump
            .time
            .map(|t| age(s.now, t))
            .unwrap_or_else(|| "of unknown age".into());
        match &d.state {
            DumpState::Taken(c) => {
                let tables: usize = c.fingerprint.databases.values().map(|t| t.len()).sum();
                let rows: u64 = c.fingerprint.total_rows();
                line(format!(
                    "  taken    {}  {age}{parts}; {} {} in {} {} (databases {}), PostgreSQL {}",
                    dump.name,
                    rows,
                    plural(rows as usize, "row", "rows"),
                    tables,
                    plural(tables, "table", "tables"),
                    c.fingerprint
                        .databases
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    c.server_version.as_deref().unwrap_or("(version unknown)")
                ));
            }
            DumpState::Refused(why) => {
                line(format!("  refused  {}  {age}{parts}: {why}", dump.name))
            }
            DumpState::NotRead if s.taken().is_some() => {
                line(format!("  older    {}  {age}{parts}", dump.name))
            }
            DumpState::NotRead => line(format!("  unused   {}  {age}{parts}", dump.name)),
        }
    }
    if s.taken().is_some() {
        line(
            "  A runbook dump does not record its cluster's system_identifier: the plan restores it once, and the restore is then remembered.".to_string(),
        );
    }
    out
}

/// "3 days old", "5 hours old", "under a minute old".
pub fn age(now: SystemTime, then: SystemTime) -> String {
    let Ok(d) = now.duration_since(then) else {
        return "dated in the future (check this host's clock)".into();
    };
    let s = d.as_secs();
    let (n, unit) = match s {
        0..60 => return "under a minute old".into(),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{} old", if n == 1 { "" } else { "s" })
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
