//! What imlrecover remembers about a host between runs, in
//! `<root>/var/lib/imlrecover/state.json`: which bundle was restored into
//! which PostgreSQL cluster, so that the next plan shows no change, and
//! which restore was started but never verified (killed, PostgreSQL gone),
//! so that the next plan owes it.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FORMAT_VERSION: u32 = 1;
/// Under the root: the state file, the lock and the run directories.
pub const DIR: &str = "var/lib/imlrecover";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    #[serde(default)]
    pub restores: Vec<RestoreRecord>,
    /// Restores started and not (yet) verified: at most one per address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub started: Vec<StartedRestore>,
    /// Not stored: databases whose rows this process has just verified
    /// (the apply's re-plan need not count them again).
    #[serde(skip)]
    pub verified_now: Vec<String>,
}

/// Written (and synced) before a restore's first statement; removed when
/// its row counts matched the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedRestore {
    /// `database.chroma`
    pub address: String,
    /// The bundle being restored.
    pub bundle_id: String,
    /// The run directory's name (its timestamp).
    pub run: String,
    /// RFC 3339, UTC.
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// `database.chroma`
    pub address: String,
    /// The bundle's directory name (its timestamp).
    pub bundle_id: String,
    /// The cluster the dump was restored into.
    pub system_identifier: String,
    /// RFC 3339, UTC.
    pub time: String,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    #[error("cannot read the state file {path}: {source}")]
    #[diagnostic(help("it records past restores; move it aside to start afresh"))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {path} is not valid: {source}")]
    #[diagnostic(help("it records past restores; move it aside to start afresh"))]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn dir(root: &Path) -> PathBuf {
    confined(root, DIR)
}

/// `rel` under `root`, resolved the way recipe paths are (symlinks
/// followed inside the root, never out of it): imlrecover's own files stay
/// under `--root` whatever links someone left there.
pub fn confined(root: &Path, rel: &str) -> PathBuf {
    match crate::host::fs::Root::new(root).and_then(|r| r.path(rel)) {
        Ok(p) => p,
        Err(_) => root.join(rel),
    }
}

pub fn path(root: &Path) -> PathBuf {
    dir(root).join("state.json")
}

impl State {
    /// A missing file is an empty state.
    pub fn load(root: &Path) -> Result<State, StateError> {
        let p = path(root);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    format_version: FORMAT_VERSION,
                    ..State::default()
                })
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: p.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|source| StateError::Parse {
            path: p.display().to_string(),
            source,
        })
    }

    pub fn restored(
        &self,
        address: &str,
        bundle_id: &str,
        system_identifier: &str,
    ) -> Option<&RestoreRecord> {
        self.restores.iter().rev().find(|r| {
            r.address == address
                && r.bundle_id == bundle_id
                && r.system_identifier == system_identifier
        })
    }

    /// The latest verified restore of `address`, into whatever cluster.
    pub fn last_restore(&self, address: &str) -> Option<&RestoreRecord> {
        self.restores.iter().rev().find(|r| r.address == address)
    }

    /// Records a verified restore; it ends any started one of the address.
    pub fn record(&mut self, record: RestoreRecord) {
        self.started.retain(|s| s.address != record.address);
        self.restores.push(record);
    }

    /// A restore of `address` that was started and never verified.
    pub fn interrupted(&self, address: &str) -> Option<&StartedRestore> {
        self.started.iter().find(|s| s.address == address)
    }

    pub fn start(&mut self, started: StartedRestore) {
        self.started.retain(|s| s.address != started.address);
        self.started.push(started);
    }

    /// A restore of `address` that was started and never verified, and why
    /// the plan owes it: in progress (another imlrecover holds the apply
    /// lock of `root`) or interrupted.
    pub fn owed(&self, address: &str, root: &Path) -> Option<(&StartedRestore, String)> {
        let i = self.interrupted(address)?;
        let why = match crate::apply::lock::holder(&dir(root)) {
            Some(pid) => format!(
                "the restore of run {} is not verified: it is in progress or was interrupted (imlrecover pid {pid} holds the lock)",
                i.run
            ),
            None => format!("the restore of run {} was interrupted", i.run),
        };
        Some((i, why))
    }

    /// Records and saves, before its first change, that `run` restores
    /// `address` from `bundle_id`: owed until verified, so a kill or a
    /// failed check leaves the record for the next plan.
    pub fn owe(
        &mut self,
        root: &Path,
        address: &str,
        bundle_id: String,
        run: String,
    ) -> Result<(), StateError> {
        self.start(StartedRestore {
            address: address.to_string(),
            bundle_id,
            run,
            time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        self.save(root)
    }

    /// Written atomically: temp file, fsync, rename, fsync the directory.
    pub fn save(&self, root: &Path) -> Result<(), StateError> {
        let p = path(root);
        let err = |source| StateError::Write {
            path: p.display().to_string(),
            source,
        };
        let d = dir(root);
        std::fs::create_dir_all(&d).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&d).map_err(err)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        tmp.write_all(text.as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&p).map_err(|e| err(e.error))?;
        std::fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_finds_records() {
        let root = tempfile::tempdir().unwrap();
        let mut s = State::load(root.path()).unwrap();
        assert!(s.restores.is_empty());
        s.record(RestoreRecord {
            address: "database.chroma".into(),
            bundle_id: "2026-11-26T06-10-00Z".into(),
            system_identifier: "7301".into(),
            time: "2026-11-26T07:00:00Z".into(),
        });
        s.save(root.path()).unwrap();
        let s = State::load(root.path()).unwrap();
        assert!(s
            .restored("database.chroma", "2026-11-26T06-10-00Z", "7301")
            .is_some());
        let mut s = s;
        s.start(StartedRestore {
            address: "database.chroma".into(),
            bundle_id: "2026-11-26T06-10-00Z".into(),
            run: "2026-11-27T08-00-00.000Z".into(),
            time: "2026-11-27T08:00:00Z".into(),
        });
        s.save(root.path()).unwrap();
        let s = State::load(root.path()).unwrap();
        assert_eq!(
            s.interrupted("database.chroma").map(|r| r.run.as_str()),
            Some("2026-11-27T08-00-00.000Z")
        );
        let mut s = s;
        let done = s.restores[0].clone();
        s.record(done);
        assert!(s.interrupted("database.chroma").is_none());
        assert!(s
            .restored("database.chroma", "2026-11-26T06-10-00Z", "7302")
            .is_none());
        std::fs::write(path(root.path()), "{").unwrap();
        assert!(matches!(
            State::load(root.path()),
            Err(StateError::Parse { .. })
        ));
    }
}
