//! Opening a bundle: by its path, by `latest`, or by the bundle directory
//! (which means its `latest`). Paths named by a manifest are only ever
//! resolved through [`Bundle::file`], which refuses anything that could
//! leave the bundle.

use super::{Manifest, FORMAT_VERSION, MANIFEST};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum OpenError {
    #[error("{} is not a bundle: {reason}", path.display())]
    #[diagnostic(
        code(imlrecover::not_a_bundle),
        help("pass a bundle directory written by `imlrecover backup` (DIR/<timestamp>), DIR/latest, or DIR itself")
    )]
    NotABundle { path: PathBuf, reason: String },
    #[error("{} is not a bundle but a runbook backup directory ($HOME/backup): {what}", path.display())]
    #[diagnostic(code(imlrecover::runbook_backup))]
    RunbookBackup {
        path: PathBuf,
        what: String,
        #[help]
        help: String,
    },
    #[error("cannot read {}: {error}", path.display())]
    #[diagnostic(code(imlrecover::io))]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: the manifest does not parse: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::manifest),
        help("the bundle is damaged or was not written by imlrecover; use another bundle")
    )]
    Manifest { path: PathBuf, message: String },
    #[error("{}: format_version {found} was written by a newer imlrecover (this one reads up to {FORMAT_VERSION})", path.display())]
    #[diagnostic(code(imlrecover::format_version), help("upgrade imlrecover"))]
    Version { path: PathBuf, found: u32 },
}

/// Why a path named in a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePath {
    #[error("path is empty")]
    Empty,
    #[error("absolute path {0} escapes the bundle")]
    Absolute(String),
    #[error("path {0} contains `..` and could escape the bundle")]
    Parent(String),
    #[error("{0} is a symbolic link inside the bundle")]
    Symlink(String),
}

/// An opened bundle: its directory (symlinks at the top resolved) and manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Bundle {
    /// Opens and parses. `path` may be a bundle, `…/latest` or the bundle dir.
    pub fn open(path: &Path) -> Result<Bundle, OpenError> {
        let dir = locate(path)?;
        let manifest = read_manifest(&dir)?;
        Ok(Bundle { dir, manifest })
    }

    /// The bundle's directory name (its timestamp).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The on-disk path of a manifest-relative path, refusing `..`, absolute
    /// paths and symlinks anywhere below the bundle directory.
    pub fn file(&self, rel: &str) -> Result<PathBuf, UnsafePath> {
        safe_join(&self.dir, rel)
    }

    /// Opens a manifest-relative path for reading (see [`Bundle::file`]).
    /// A file stored encrypted or split (`manifest.stored`) reads as its
    /// plaintext: the parts chained and checked, then age-decrypted with the
    /// identity given (see [`super::crypt`]).
    pub fn open_file(&self, rel: &str) -> Result<Content, BundleFileError> {
        if let Some(stored) = self.manifest.stored.get(rel) {
            return super::crypt::open_stored(self, stored)
                .map(Content)
                .map_err(|f| BundleFileError::Stored(super::crypt::describe(rel, &f)));
        }
        let path = self.file(rel).map_err(BundleFileError::Unsafe)?;
        open_regular(&path)
            .map(|f| Content(Box::new(f)))
            .map_err(|e| BundleFileError::Io(path, e))
    }
}

/// Opens a bundle file for reading only if it is a regular file: a FIFO
/// or device put into a bundle must not make a command hang or read a
/// device, and a symlink is never followed.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory)",
        ));
    }
    // Reads of a regular file never block; clear the flag anyway.
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
    Ok(file)
}

/// The plaintext of a bundle file (see [`Bundle::open_file`]).
pub struct Content(Box<dyn Read + Send>);

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleFileError {
    #[error(transparent)]
    Unsafe(UnsafePath),
    #[error("cannot read {path}: {error}", path = .0.display(), error = .1)]
    Io(PathBuf, io::Error),
    /// An encrypted or split file that cannot be opened, and why.
    #[error("{0}")]
    Stored(String),
}

/// The directory to read: `path` itself if it holds a manifest, else its
/// `latest`. The final directory must not be a temporary one.
pub fn locate(path: &Path) -> Result<PathBuf, OpenError> {
    let not = |reason: &str| OpenError::NotABundle {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let dir = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => not("it does not exist"),
        _ => OpenError::Io {
            path: path.to_path_buf(),
            error: e,
        },
    })?;
    if !dir.is_dir() {
        return Err(not("it is not a directory"));
    }
    let dir = if dir.join(MANIFEST).symlink_metadata().is_ok() {
        dir
    } else if let Some(latest) = super::store::latest(&dir) {
        std::fs::canonicalize(&latest).map_err(|e| OpenError::Io {
            path: latest,
            error: e,
        })?
    } else if crate::import::layout::looks_like_runbook(&dir) {
        return Err(runbook_backup(path, &dir));
    } else {
        return Err(not("it has no manifest.json and no `latest`"));
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if super::store::is_incomplete(&name) {
        return Err(not(
            "it is the temporary directory of a backup that did not finish",
        ));
    }
    Ok(dir)
}

/// What a runbook backup directory holds, and how to import it.
fn runbook_backup(path: &Path, dir: &Path) -> OpenError {
    let dumps = crate::import::dump::find(dir).unwrap_or_default();
    let what = match dumps.first() {
        Some(newest) => format!(
            "the runbook's file copies and {} pg_dumpall {}, the newest {}",
            dumps.len(),
            if dumps.len() == 1 { "dump" } else { "dumps" },
            newest.name
        ),
        None => "the runbook's file copies, and no pg_dumpall dump".to_string(),
    };
    let shown = path.display();
    OpenError::RunbookBackup {
        path: path.to_path_buf(),
        what,
        help: format!(
            "import it into a bundle first: `imlrecover import {shown} -r RECIPE --bundle-dir BUNDLES` (add --dry-run to see what it finds), then pass --bundle BUNDLES/latest"
        ),
    }
}
/// Largest manifest read (a million entries is about 300 MiB).
const MANIFEST_CAP: u64 = 1 << 30;

fn read_manifest(dir: &Path) -> Result<Manifest, OpenError> {
    let path = dir.join(MANIFEST);
    let meta = path.symlink_metadata().map_err(|e| OpenError::Io {
        path: path.clone(),
        error: e,
    })?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotABundle {
            path: dir.to_path_buf(),
            reason: "its manifest.json is not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    open_regular(&path)
        .and_then(|f| f.take(MANIFEST_CAP).read_to_end(&mut bytes))
        .map_err(|e| OpenError::Io {
            path: path.clone(),
            error: e,
        })?;
    // Read the version first, so a newer manifest gets "upgrade", not a
    // confusing schema error.
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    if let Ok(v) = serde_json::from_slice::<Version>(&bytes) {
        if v.format_version > FORMAT_VERSION {
            return Err(OpenError::Version {
                path,
                found: v.format_version,
            });
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| OpenError::Manifest {
        path,
        message: e.to_string(),
    })
}

/// Joins a manifest path below `dir`, component by component, refusing
/// anything that is not a plain name and any symlink on the way.
pub fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf, UnsafePath> {
    if rel.is_empty() {
        return Err(UnsafePath::Empty);
    }
    let p = Path::new(rel);
    let mut out = dir.to_path_buf();
    for c in p.components() {
        match c {
            Component::Normal(name) => {
                out.push(name);
                if out
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Err(UnsafePath::Symlink(rel.to_string()));
                }
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(UnsafePath::Parent(rel.to_string())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnsafePath::Absolute(rel.to_string()))
            }
        }
    }
    if out == dir {
        return Err(UnsafePath::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("files/etc")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("files/link")).unwrap();
        assert_eq!(
            safe_join(d, "files/etc/hosts").unwrap(),
            d.join("files/etc/hosts")
        );
        assert!(matches!(
            safe_join(d, "/etc/passwd"),
            Err(UnsafePath::Absolute(_))
        ));
        assert!(matches!(
            safe_join(d, "files/../../x"),
            Err(UnsafePath::Parent(_))
        ));
        assert!(matches!(
            safe_join(d, "files/link/passwd"),
            Err(UnsafePath::Symlink(_))
        ));
        assert!(matches!(safe_join(d, ""), Err(UnsafePath::Empty)));
        assert!(matches!(safe_join(d, "."), Err(UnsafePath::Empty)));
    }

    #[test]
    fn open_reports_bad_manifests() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            Bundle::open(t.path()),
            Err(OpenError::NotABundle { .. })
        ));
        std::fs::write(t.path().join(MANIFEST), "{ not json").unwrap();
        assert!(matches!(
            Bundle::open(t.path()),
            Err(OpenError::Manifest { .. })
        ));
        std::fs::write(t.path().join(MANIFEST), r#"{"format_version": 99}"#).unwrap();
        assert!(matches!(
            Bundle::open(t.path()),
            Err(OpenError::Version { found: 99, .. })
        ));
    }
}
