//! Bundles: what `backup` writes and `verify`, `plan` and `apply` read.
//!
//! A bundle is a directory `BUNDLE_DIR/<UTC timestamp>/` holding the captured
//! files under `files/<absolute path>`, the database dump
//! `pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz` and `manifest.json` (the types
//! below). It is written as `.incomplete-…` and renamed when complete, so a
//! directory with a timestamp name and a manifest is a complete bundle; the
//! rename is the completeness marker. docs/bundle.md documents every field.

pub mod check;
pub mod crypt;
pub mod drill;
pub mod interrupt;
pub mod read;
pub mod retention;
pub mod sign;
pub mod split;
pub mod store;
pub mod verify;
pub mod write;

pub use read::{Bundle, OpenError};
pub use store::{parse_bundle_name, INCOMPLETE_PREFIX, LATEST};
pub use write::{BundleWriter, Committed, WriteError};

use crate::recipe::Address;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The newest manifest schema this build reads. A bundle is written as
/// version 1 unless it stores files encrypted or split (`stored`), which an
/// older imlrecover could not read: then it is version 2.
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST: &str = "manifest.json";
/// Captured files live under this directory, at their absolute paths.
pub const FILES_DIR: &str = "files";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub tool: Tool,
    /// RFC 3339, UTC, seconds: `2026-11-26T06:10:00Z`.
    pub created: String,
    pub recipe: RecipeRef,
    /// The `--root` the files were read from.
    pub root: String,
    /// One per captured path (and per optional path found missing).
    pub entries: Vec<Entry>,
    /// One per captured resource, in recipe order.
    pub resources: Vec<ResourceRecord>,
    /// The cluster dump, when the recipe declares a `database`.
    #[serde(default)]
    pub database: Option<DatabaseRecord>,
    /// How a file is stored when not as itself (age-encrypted and/or split
    /// into parts), by its plain bundle path (`files/etc/shadow`, the dump's
    /// name). Entries and the database record keep the plaintext's size and
    /// blake3; [`Stored`] has the stored bytes' and every part's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stored: BTreeMap<String, Stored>,
    /// The age recipients the encrypted files were encrypted to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Set when `imlrecover import` made the bundle from a runbook backup
    /// directory rather than `backup` from a live host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<Imported>,
}

/// Where an imported bundle came from and what the runbook backup did not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// The runbook backup directory (`$HOME/backup`), absolute.
    pub source: String,
    /// When the import ran, RFC 3339 UTC. The manifest's `created` is the
    /// dump's time: the age of the data, not of the import.
    pub time: String,
    /// The runbook dump taken, as it was named in the source directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<ImportedDump>,
    /// Files whose mode/owner a plain `cp` did not keep: what was set instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defaulted: Vec<Defaulted>,
    /// Recipe resources the directory lacks; they are not in the bundle, so
    /// a plan leaves the live host's copies alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lacking: Vec<Address>,
    /// Manifest fields a runbook backup does not record
    /// (`database.system_identifier`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedDump {
    /// `pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz`, the cron job's name.
    pub name: String,
    /// The files it was read from, in order (one, or the `split` parts).
    pub parts: Vec<String>,
    /// Its name's time, read as this host's local time, RFC 3339 UTC.
    pub dumped: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaulted {
    pub path: String,
    pub mode: Mode,
    pub owner: String,
    pub group: String,
    /// Where the values came from: "the recipe" or "default".
    pub from: String,
}

/// What a `system_identifier` is when a bundle cannot know it (an import).
pub const UNKNOWN_IDENTIFIER: &str = "unknown";

impl Manifest {
    /// Why the bundle holds nothing for a recipe resource.
    pub fn why_missing(&self, address: &Address) -> &'static str {
        match &self.imported {
            Some(i) if i.lacking.contains(address) => {
                "not in the bundle (the runbook backup it was imported from lacks it)"
            }
            _ => "not in the bundle (it was made from another recipe)",
        }
    }
}

/// A file stored as one or more parts, possibly age-encrypted: the parts,
/// concatenated in order, are the stored stream (the age file when
/// `encrypted`, else the plaintext itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub encrypted: bool,
    /// Size and blake3 of the whole stored stream (the ciphertext when encrypted).
    pub size: u64,
    pub blake3: String,
    pub parts: Vec<Part>,
}

/// One file of a [`Stored`] stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Relative to the bundle: `pgbackup-….sql.gz.000`, `files/etc/shadow.age`.
    pub file: String,
    pub size: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    pub fn this() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeRef {
    pub path: String,
    pub blake3: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Captured: the content is in the bundle.
    File,
    /// An optional path that did not exist on the host.
    Absent,
}

/// One path on the host and what the bundle holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The resource that captured it (`file.hosts`, `files.ifcfg`, `cert.manager`).
    pub address: Address,
    /// The absolute path on the host (relative to `root`).
    pub path: String,
    pub kind: EntryKind,
    /// Where the content is, relative to the bundle (`files/etc/hosts`);
    /// only for `kind = "file"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Stored `0600` in the bundle and never shown in diffs.
    pub sensitive: bool,
}

impl Entry {
    pub fn absent(address: Address, path: String, sensitive: bool) -> Entry {
        Entry {
            address,
            path,
            kind: EntryKind::Absent,
            file: None,
            size: None,
            mode: None,
            owner: None,
            group: None,
            uid: None,
            gid: None,
            blake3: None,
            sensitive,
        }
    }
}

/// What one recipe resource captured; the entries carry the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceRecord {
    File {
        address: Address,
        path: String,
    },
    Files {
        address: Address,
        glob: String,
        /// Every path the glob matched, sorted; empty when none did.
        members: Vec<String>,
    },
    Cert {
        address: Address,
        cert: String,
        key: String,
        #[serde(default)]
        serial: Option<String>,
        /// The `cert` resource whose certificate signed this one.
        #[serde(default)]
        ca: Option<Address>,
    },
    Database {
        address: Address,
    },
    /// InfluxDB databases (#17): the files are its entries; this is what
    /// they held.
    Influxdb {
        address: Address,
        record: crate::resources::influxdb::InfluxRecord,
    },
}

impl ResourceRecord {
    pub fn address(&self) -> &Address {
        match self {
            ResourceRecord::File { address, .. }
            | ResourceRecord::Files { address, .. }
            | ResourceRecord::Cert { address, .. }
            | ResourceRecord::Database { address }
            | ResourceRecord::Influxdb { address, .. } => address,
        }
    }
}

/// Row counts per database, per `schema.table`.
pub type Fingerprint = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    pub address: Address,
    /// The dump's name in the bundle: `pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz`.
    pub file: String,
    /// Size and blake3 of the `.gz` file.
    pub size: u64,
    pub blake3: String,
    /// Bytes of SQL inside the gzip stream.
    pub sql_size: u64,
    /// `pg_control`'s system identifier, as a decimal string (it is a u64).
    pub system_identifier: String,
    pub server_version: String,
    /// `pg_dumpall --version` of the program that wrote the dump, e.g.
    /// `15.18`: a dump loads into a server of that major or newer.
    /// Absent in bundles of earlier versions (taken as `server_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_by: Option<String>,
    /// The databases the recipe requires the bundle to bring back.
    pub databases: Vec<String>,
    /// Counted from the dump's `COPY` data, not from the live cluster, so it
    /// describes exactly what a restore of this file brings back.
    pub fingerprint: Fingerprint,
}

impl DatabaseRecord {
    /// The oldest server version the dump loads into: the newer of the
    /// source server and the pg_dumpall that wrote it (`server_version_num`).
    pub fn loads_into_from(&self) -> Option<u32> {
        let server = crate::host::postgres::version_num(&self.server_version)?;
        let client = self
            .dumped_by
            .as_deref()
            .and_then(crate::host::postgres::version_num)
            .unwrap_or(server);
        Some(server.max(client))
    }
}

/// A file mode, written as an octal string (`"0644"`) so people can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let s = String::deserialize(d)?;
        match u32::from_str_radix(&s, 8) {
            Ok(m) if m <= 0o7777 => Ok(Mode(m)),
            _ => Err(serde::de::Error::custom(format!(
                "`{s}` is not an octal file mode like \"0644\""
            ))),
        }
    }
}

/// Where a host path's content lives in a bundle: `files/etc/hosts`.
/// `..` is resolved lexically and cannot climb above `/`.
pub fn bundle_file_for(path: &str) -> String {
    format!("{FILES_DIR}/{}", normalize(path).trim_start_matches('/'))
}

/// `/etc/./x/../hosts` → `/etc/hosts`; always absolute, never above `/`.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The timestamp a bundle is named after, in its three spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `2026-11-26T06:10:00Z`
    pub rfc3339: String,
}

impl Stamp {
    pub fn new(t: std::time::SystemTime) -> Stamp {
        Stamp {
            rfc3339: humantime::format_rfc3339_seconds(t).to_string(),
        }
    }

    /// `2026-11-26T06-10-00Z`: no `:` so the name is safe in scp/rsync specs.
    pub fn dir_name(&self) -> String {
        self.rfc3339.replace(':', "-")
    }

    /// `pgbackup-2026-11-26-06:10:00.sql.gz`, the seed's own name.
    pub fn dump_name(&self) -> String {
        let t = self.rfc3339.trim_end_matches('Z').replacen('T', "-", 1);
        format!("pgbackup-{t}.sql.gz")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn names() {
        let s = Stamp::new(UNIX_EPOCH + Duration::from_secs(1_795_673_400));
        assert_eq!(s.rfc3339, "2026-11-26T06:10:00Z");
        assert_eq!(s.dir_name(), "2026-11-26T06-10-00Z");
        assert_eq!(s.dump_name(), "pgbackup-2026-11-26-06:10:00.sql.gz");
        assert_eq!(
            parse_bundle_name("2026-11-26T06-10-00Z"),
            Some(("2026-11-26T06-10-00Z".into(), 0))
        );
        assert_eq!(
            parse_bundle_name("2026-11-26T06-10-00Z-3"),
            Some(("2026-11-26T06-10-00Z".into(), 3))
        );
        assert_eq!(parse_bundle_name("latest"), None);
        assert_eq!(parse_bundle_name(".incomplete-2026-11-26T06-10-00Z"), None);
        assert_eq!(parse_bundle_name("2026-11-26T06-10-00Zx"), None);
        assert_eq!(parse_bundle_name("2026-11-26T06:10:00Z"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(normalize("/etc/./x/../hosts"), "/etc/hosts");
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(bundle_file_for("/etc/ntp.conf"), "files/etc/ntp.conf");
        assert_eq!(bundle_file_for("/../x"), "files/x");
    }

    #[test]
    fn mode_round_trips() {
        let m: Mode = serde_json::from_str("\"0640\"").unwrap();
        assert_eq!(m, Mode(0o640));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"0640\"");
        assert!(serde_json::from_str::<Mode>("\"999\"").is_err());
    }
}
