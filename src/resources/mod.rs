//! Resource kinds. **A kind is one file** (or one directory, as
//! `database/` and `remote_service/`) under `src/resources/`: it implements
//! [`kind::Kind`], which holds everything about it — its keyword, its schema
//! and the decoding of its block, its capture (what `backup` puts in the
//! bundle), observe / compare / apply (and `prepare`), its step phase and
//! its audit checks. The `kinds!` list below is the one registry: it
//! declares the kinds' modules and makes [`ResourceType`] and [`Spec`]; the
//! recipe, the planner, the engine, `backup` and the audit reach a kind
//! only through [`registry`].
//!
//! Adding a kind (e.g. #17's `influxdb`) is one new file,
//! `src/resources/influxdb.rs` with `pub struct InfluxdbKind` implementing
//! `Kind`, plus one line `Influxdb => influxdb::InfluxdbKind,` in the list
//! below; no other file changes.
//!
//! Shared pieces: [`content`] (a live path against its bundle entry, for
//! `file`, `files` and `cert`), [`entries`] (the bundle's entries by
//! address and path), and [`CaptureCx`] (what a capture writes into).

pub mod content;
pub mod entries;
pub mod kind;
pub mod registry;

// The one list of kinds: (ResourceType variant => module::Kind), in the
// order addresses sort and keywords are listed in messages.
registry::kinds! {
    File => file::FileKind,
    Files => files::FilesKind,
    Absent => absent::AbsentKind,
    Cert => cert::CertKind,
    Database => database::DatabaseKind,
    Service => service::ServiceKind,
    Exec => exec::ExecKind,
    RemoteService => remote_service::RemoteServiceKind,
    Influxdb => influxdb::InfluxdbKind,
}

use crate::bundle::write::ReadOrWrite;
use crate::bundle::{BundleWriter, Entry, EntryKind, Mode, WriteError};
use crate::host::fs::{FileKind, FsError, Root};
use crate::printer::Printer;
use crate::recipe::Address;

/// What a capture needs: the host, the bundle being written, the output.
pub struct CaptureCx<'a> {
    pub root: &'a Root,
    pub bundle: &'a mut BundleWriter,
    pub printer: &'a Printer,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CaptureError {
    #[error("{address}: {path} does not exist under {}", root.display())]
    #[diagnostic(
        code(imlrecover::missing_file),
        help("restore the file, check --root, or mark the resource `optional = true` if the host may lack it; no bundle was written")
    )]
    Missing {
        address: Address,
        path: String,
        root: std::path::PathBuf,
    },
    #[error("{address}: nothing under {} matches {glob}", root.display())]
    #[diagnostic(
        code(imlrecover::no_match),
        help("check the glob and --root, or mark the resource `optional = true`; no bundle was written")
    )]
    NoMatch {
        address: Address,
        glob: String,
        root: std::path::PathBuf,
    },
    #[error("{address}: {path} is a {kind}, not a regular file")]
    #[diagnostic(
        code(imlrecover::not_a_file),
        help("the recipe must name a file; no bundle was written")
    )]
    NotAFile {
        address: Address,
        path: String,
        kind: FileKind,
    },
    #[error("{address}: cannot read {path}: {error}")]
    #[diagnostic(
        code(imlrecover::read),
        help("check the file's permissions and the disk; no bundle was written")
    )]
    Read {
        address: Address,
        path: String,
        error: std::io::Error,
    },
    #[error("{address}: {error}")]
    #[diagnostic(code(imlrecover::host))]
    Fs { address: Address, error: FsError },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Database(#[from] database::DatabaseError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Influxdb(#[from] influxdb::InfluxError),
}

impl CaptureCx<'_> {
    /// Copies one host path into the bundle and describes it. A missing
    /// path is an `absent` entry when `optional`, else an error.
    pub fn capture_path(
        &mut self,
        address: &Address,
        path: &str,
        sensitive: bool,
        optional: bool,
    ) -> Result<Entry, CaptureError> {
        let path = crate::bundle::normalize(path);
        let fs_err = |error| CaptureError::Fs {
            address: address.clone(),
            error,
        };
        let Some((file, meta)) = self.root.open(&path).map_err(fs_err)? else {
            return if optional {
                Ok(Entry::absent(address.clone(), path, sensitive))
            } else {
                Err(CaptureError::Missing {
                    address: address.clone(),
                    path,
                    root: self.root.dir().to_path_buf(),
                })
            };
        };
        if meta.kind != FileKind::File {
            return Err(CaptureError::NotAFile {
                address: address.clone(),
                path,
                kind: meta.kind,
            });
        }
        let (rel, hash, size) =
            self.bundle
                .write_file(&path, file, sensitive)
                .map_err(|e| match e {
                    ReadOrWrite::Read(error) => CaptureError::Read {
                        address: address.clone(),
                        path: path.clone(),
                        error,
                    },
                    ReadOrWrite::Write(w) => CaptureError::Write(w),
                })?;
        Ok(Entry {
            address: address.clone(),
            path,
            kind: EntryKind::File,
            file: Some(rel),
            // What was read, not what stat said before: the file may change.
            size: Some(size),
            mode: Some(Mode(meta.mode)),
            owner: meta.owner,
            group: meta.group,
            uid: Some(meta.uid),
            gid: Some(meta.gid),
            blake3: Some(hash),
            sensitive,
        })
    }
}

/// What one resource's capture added, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Captured {
    pub files: usize,
    pub absent: usize,
    pub bytes: u64,
}

impl Captured {
    pub fn add(&mut self, e: &Entry) {
        match e.kind {
            EntryKind::File => {
                self.files += 1;
                self.bytes += e.size.unwrap_or(0);
            }
            EntryKind::Absent => self.absent += 1,
        }
    }
}
