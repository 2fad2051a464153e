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

/// `backup --format json|junit`: what was captured, resource by resource,
/// and the committed bundle (docs/output.md).
#[derive(Debug, Default, serde::Serialize)]
pub struct BackupRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    pub resources: Vec<ResourceRecord>,
    pub files: usize,
    pub absent: usize,
    pub bytes: u64,
    pub entries: Vec<EntryRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
    pub encrypted: usize,
    pub pruned: Vec<String>,
    pub warnings: Vec<String>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<super::transfer::PushRecord>,
}

#[derive(Debug, serde::Serialize)]
pub struct ResourceRecord {
    pub address: String,
    /// `done` or `failed`.
    pub status: &'static str,
    pub files: usize,
    pub absent: usize,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub seconds: f64,
}

/// A manifest entry: where it came from, never its content.
#[derive(Debug, serde::Serialize)]
pub struct EntryRecord {
    pub address: String,
    pub path: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub sensitive: bool,
    pub encrypted: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct DatabaseRecord {
    pub file: String,
    pub bytes: u64,
    pub sql_bytes: u64,
    pub server_version: String,
    pub tables: usize,
    pub rows: u64,
}

impl BackupRecord {
    /// The committed bundle, as [`human`] tells it.
    pub fn finished(&mut self, b: &Finished) {
        let m = &b.committed.manifest;
        self.bundle = Some(b.committed.path.display().to_string());
        self.files = b.total.files;
        self.absent = b.total.absent;
        self.bytes = b.total.bytes;
        self.entries = m
            .entries
            .iter()
            .map(|e| EntryRecord {
                address: e.address.to_string(),
                path: e.path.clone(),
                kind: match e.kind {
                    crate::bundle::EntryKind::File => "file",
                    crate::bundle::EntryKind::Absent => "absent",
                },
                size: e.size,
                sensitive: e.sensitive,
                encrypted: e
                    .file
                    .as_ref()
                    .and_then(|f| m.stored.get(f))
                    .is_some_and(|s| s.encrypted),
            })
            .collect();
        self.database = m.database.as_ref().map(|db| DatabaseRecord {
            file: db.file.clone(),
            bytes: db.size,
            sql_bytes: db.sql_size,
            server_version: db.server_version.clone(),
            tables: db.fingerprint.values().map(|t| t.len()).sum(),
            rows: db.fingerprint.values().flat_map(|t| t.values()).sum(),
        });
        self.signed = b.signed.map(str::to_string);
        self.encrypted = m.stored.values().filter(|s| s.encrypted).count();
        self.pruned = b
            .committed
            .pruned
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        self.seconds = b.elapsed.as_secs_f64();
    }
}

impl super::document::Record for BackupRecord {
    fn cases(&self, error: Option<&str>) -> Vec<super::document::Case> {
        use super::document::Case;
        let mut cases: Vec<Case> = self
            .resources
            .iter()
            .map(|r| match &r.error {
                Some(e) => Case::failed(format!("capture {}", r.address), r.seconds, e),
                None => Case::passed(format!("capture {}", r.address), r.seconds),
            })
            .collect();
        if let Some(p) = &self.push {
            cases.push(p.case(error));
        }
        cases
    }
}
