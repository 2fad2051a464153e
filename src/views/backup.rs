//! What `backup` tells a person once the bundle is committed.

use super::plural;
use crate::bundle::write::Committed;
use crate::printer::Printer;
use crate::resources::Captured;
use indicatif::HumanBytes;
use std::fmt::Write;
use std::time::Duration;

/// A finished backup, as `backup` measured it.
pub struct Finished<'a> {
    pub committed: &'a Committed,
    pub total: &'a Captured,
    pub resources: usize,
    pub elapsed: Duration,
    /// The line saying the bundle is signed, and by which key.
    pub signed: Option<&'a str>,
}

pub fn human(p: &Printer, b: &Finished) -> String {
    let mut out = String::new();
    let (m, total) = (&b.committed.manifest, b.total);
    let _ = writeln!(
        out,
        "{} {}",
        p.green("Backup complete:"),
        p.bold(&b.committed.path.display().to_string())
    );
    let absent = if total.absent > 0 {
        format!(" ({} optional absent)", total.absent)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  {} {} from {} {}{}, {} of files",
        total.files,
        plural(total.files, "file", "files"),
        b.resources,
        plural(b.resources, "resource", "resources"),
        absent,
        HumanBytes(total.bytes),
    );
    if let Some(db) = &m.database {
        let tables: usize = db.fingerprint.values().map(|t| t.len()).sum();
        let rows: u64 = db.fingerprint.values().flat_map(|t| t.values()).sum();
        let _ = writeln!(
            out,
            "  {}: {} ({} of SQL), PostgreSQL {}, {} {}, {} {}",
            db.file,
            HumanBytes(db.size),
            HumanBytes(db.sql_size),
            db.server_version,
            tables,
            plural(tables, "table", "tables"),
            rows,
            plural(rows as usize, "row", "rows"),
        );
    }
    if let Some(note) = b.signed {
        let _ = writeln!(out, "  {note}");
    }
    let encrypted = m.stored.values().filter(|s| s.encrypted).count();
    if encrypted > 0 {
        let _ = writeln!(
            out,
            "  {} {} age-encrypted to {} {}",
            encrypted,
            plural(encrypted, "file", "files"),
            m.recipients.len(),
            plural(m.recipients.len(), "recipient", "recipients"),
        );
    }
    let split: Vec<String> = m
        .stored
        .iter()
        .filter(|(_, s)| s.parts.len() > 1)
        .map(|(rel, s)| format!("{rel} in {} parts", s.parts.len()))
        .collect();
    if !split.is_empty() {
        let _ = writeln!(out, "  split: {}", split.join(", "));
    }
    for old in &b.committed.pruned {
        let _ = writeln!(out, "  pruned {}", old.display());
    }
    let _ = writeln!(
        out,
        "  {} entries in {}",
        m.entries.len(),
        humantime::format_duration(Duration::from_millis(b.elapsed.as_millis() as u64))
    );
    out
}
