//! Writing a bundle so that a failure never leaves something that looks
//! complete: everything goes into `.incomplete-<name>-<pid>/`, each file is
//! fsynced, and only then is the directory renamed to its timestamp name
//! (with `RENAME_NOREPLACE`), `latest` swapped by rename, and old bundles
//! pruned. Dropping an uncommitted writer removes the temporary directory.

mod encode;

pub use encode::{DumpFile, DumpSink, StoreOptions, StoreWriter};

use super::retention::{self, Policy};
use super::store;
use super::{
    bundle_file_for, normalize, DatabaseRecord, Entry, Manifest, RecipeRef, ResourceRecord, Stamp,
    Tool, FORMAT_VERSION, MANIFEST,
};
use crate::host::fs::{HashingWriter, CHUNK};
use encode::PendingStored;
use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WriteError {
    #[error("cannot create a bundle in {}: {error}", dir.display())]
    #[diagnostic(
        code(imlrecover::bundle_dir),
        help("--bundle-dir must be a writable directory (it is created if missing); nothing was written")
    )]
    BundleDir { dir: PathBuf, error: io::Error },
    #[error("cannot write {}: {error}", path.display())]
    #[diagnostic(
        code(imlrecover::bundle_write),
        help("check free space and permissions of the bundle directory; the incomplete bundle was removed")
    )]
    Write { path: PathBuf, error: io::Error },
    #[error("the bundle {} is complete, but `latest` could not be pointed at it: {error}", bundle.display())]
    #[diagnostic(
        code(imlrecover::latest),
        help("`latest` in the bundle directory must be a symlink (or absent); pass the bundle's path explicitly")
    )]
    Latest { bundle: PathBuf, error: io::Error },
    #[error("the bundle {} is complete, but pruning the old bundle {} failed: {error}", bundle.display(), old.display())]
    #[diagnostic(code(imlrecover::prune), help("remove the old bundle by hand"))]
    Prune {
        bundle: PathBuf,
        old: PathBuf,
        error: io::Error,
    },
}

fn write_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.into();
    move |error| WriteError::Write { path, error }
}

/// Non-sensitive files: readable, but the 0700 bundle dir keeps others out.
const FILE_MODE: u32 = 0o644;
const SENSITIVE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// A bundle being written. Build it up, then [`BundleWriter::commit`].
#[derive(Debug)]
pub struct BundleWriter {
    parent: PathBuf,
    tmp: PathBuf,
    stamp: Stamp,
    manifest: Manifest,
    /// Contents already written, by bundle path: (blake3, size), so that two
    /// resources naming the same path share one copy.
    written: BTreeMap<String, (String, u64)>,
    /// Directories to fsync before the rename, deepest first at commit.
    dirs: Vec<PathBuf>,
    /// We created the bundle dir: a failed first backup removes it again.
    created_parent: bool,
    committed: bool,
    store: StoreOptions,
    /// Stored forms finished outside the writer (the dump).
    pending: PendingStored,
}

/// A finished bundle.
#[derive(Debug)]
pub struct Committed {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Older bundles removed by `--keep`.
    pub pruned: Vec<PathBuf>,
}

impl BundleWriter {
    /// Creates `bundle_dir` (0700) if needed and a fresh temporary bundle in it.
    pub fn create(
        bundle_dir: &Path,
        recipe: RecipeRef,
        root: &Path,
        now: SystemTime,
    ) -> Result<BundleWriter, WriteError> {
        let dir_err = |error| WriteError::BundleDir {
            dir: bundle_dir.to_path_buf(),
            error,
        };
        let created_parent = !bundle_dir.exists();
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(bundle_dir)
            .map_err(dir_err)?;
        let parent = std::fs::canonicalize(bundle_dir).map_err(dir_err)?;
        store::remove_stale_incomplete(&parent);
        let stamp = Stamp::new(now);
        let tmp = parent.join(store::incomplete_name(
            &stamp.dir_name(),
            std::process::id(),
        ));
        // A leftover of ours with the same pid can only be from a crash.
        let _ = std::fs::remove_dir_all(&tmp);
        DirBuilder::new()
            .mode(DIR_MODE)
            .create(&tmp)
            .map_err(dir_err)?;
        super::interrupt::register(&tmp);
        // The umask may have narrowed it; never widen beyond 0700.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(dir_err)?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            tool: Tool::this(),
            created: stamp.rfc3339.clone(),
            recipe,
            root: root.display().to_string(),
            entries: Vec::new(),
            resources: Vec::new(),
            database: None,
            stored: BTreeMap::new(),
            recipients: Vec::new(),
            imported: None,
        };
        Ok(BundleWriter {
            parent,
            tmp,
            stamp,
            manifest,
            written: BTreeMap::new(),
            dirs: Vec::new(),
            created_parent,
            committed: false,
            store: StoreOptions::default(),
            pending: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Encryption and splitting for every file written from now on.
    pub fn set_store_options(&mut self, store: StoreOptions) {
        self.manifest.recipients = store.recipient_names.clone();
        self.store = store;
    }

    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// The temporary directory (for messages and tests).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Copies `reader` into `files/<path>`, hashing as it goes. Returns the
    /// bundle path, blake3 and size.
    pub fn write_file(
        &mut self,
        path: &str,
        mut reader: impl Read,
        sensitive: bool,
    ) -> Result<(String, String, u64), ReadOrWrite> {
        let rel = bundle_file_for(path);
        let dest = self.tmp.join(&rel);
        if let Some((hash, size)) = self.written.get(&rel).cloned() {
            let encrypted = self.manifest.stored.get(&rel).is_some_and(|s| s.encrypted);
            if self.store.encrypts(sensitive) && !encrypted {
                // First captured as non-sensitive, now named sensitive:
                // store it encrypted instead.
                return self.restore_encrypted(rel);
            }
            if sensitive {
                set_mode(&dest, SENSITIVE_MODE)
                    .map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
            }
            return Ok((rel, hash, size));
        }
        if let Some(dir) = dest.parent() {
            self.mkdirs(dir).map_err(ReadOrWrite::Write)?;
        }
        let mode = if sensitive { SENSITIVE_MODE } else { FILE_MODE };
        if self.store.encrypts(sensitive) || self.store.split_size.is_some() {
            return self.write_stored(rel, reader, sensitive, mode);
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&dest)
            .map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
        let mut out = HashingWriter::new(file);
        pump(&mut reader, &mut out, &dest)?;
        let (file, hash, size) = out.finish();
        file.sync_all()
            .map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
        // create_new's mode is filtered by the umask; make it exact.
        set_mode(&dest, mode).map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
        self.written.insert(rel.clone(), (hash.clone(), size));
        Ok((rel, hash, size))
    }

    pub fn push_entry(&mut self, entry: Entry) {
        self.manifest.entries.push(entry);
    }

    pub fn push_resource(&mut self, record: ResourceRecord) {
        self.manifest.resources.push(record);
    }

    pub fn set_database(&mut self, record: DatabaseRecord) {
        self.manifest.database = Some(record);
    }

    /// Marks the bundle as made by `import` from a runbook backup.
    pub fn set_imported(&mut self, imported: super::Imported) {
        self.manifest.imported = Some(imported);
    }

    /// Whether `path` (a host path) was already captured by another resource.
    pub fn has_file(&self, path: &str) -> bool {
        self.written
            .contains_key(&bundle_file_for(&normalize(path)))
    }

    fn mkdirs(&mut self, dir: &Path) -> Result<(), WriteError> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut d = dir;
        while !d.is_dir() && d.starts_with(&self.tmp) {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        for m in missing.into_iter().rev() {
            DirBuilder::new()
                .mode(DIR_MODE)
                .create(&m)
                .map_err(write_err(&m))?;
            self.dirs.push(m);
        }
        Ok(())
    }

    /// Writes the manifest, fsyncs, renames into place, points `latest` at
    /// the result, and then (only then) prunes by `retention` (this bundle
    /// is the known-good one it never removes).
    pub fn commit(mut self, retention: Option<&Policy>) -> Result<Committed, WriteError> {
        if let Ok(mut p) = self.pending.lock() {
            self.manifest.stored.extend(p.drain(..));
        }
        // Older readers must refuse a bundle they would misread, and only
        // such a bundle: the lowest version that holds it (see FORMAT_VERSION).
        let stored = if self.manifest.stored.is_empty() {
            1
        } else {
            2
        };
        let records = self.manifest.resources.iter().map(|r| r.since());
        self.manifest.format_version = records.fold(stored, u32::max);
        let manifest_path = self.tmp.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| WriteError::Write {
            path: manifest_path.clone(),
            error: io::Error::other(e),
        })?;
        write_synced(&manifest_path, &json, FILE_MODE).map_err(write_err(&manifest_path))?;
        if let Some(signer) = &self.store.signer {
            let sig_path = self.tmp.join(super::sign::SIGNATURE);
            let sig = signer.sign(&json).map_err(|e| WriteError::Write {
                path: sig_path.clone(),
                error: io::Error::other(e),
            })?;
            write_synced(&sig_path, sig.as_bytes(), FILE_MODE).map_err(write_err(&sig_path))?;
        }
        // Children before parents, so each directory's entries are durable.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in self.dirs.iter().chain(std::iter::once(&self.tmp)) {
            fsync_dir(d).map_err(write_err(d))?;
        }
        let final_path = super::interrupt::while_renaming(&self.tmp, || self.rename_into_place())?;
        self.committed = true;
        fsync_dir(&self.parent).map_err(write_err(&self.parent))?;
        let manifest = std::mem::replace(&mut self.manifest, empty_manifest());
        let name = file_name(&final_path);
        store::update_latest(&self.parent, &name).map_err(|error| WriteError::Latest {
            bundle: final_path.clone(),
            error,
        })?;
        let pruned = match retention {
            Some(policy) if !policy.is_empty() => {
                retention::prune_dir(&self.parent, policy, Some(&name), false)
                    .map_err(|e| {
                        let (old, error) = match e {
                            retention::PruneError::List { dir, error } => (dir, error),
                            retention::PruneError::Remove { old, error } => (old, error),
                        };
                        WriteError::Prune {
                            bundle: final_path.clone(),
                            old,
                            error,
                        }
                    })?
                    .removed
            }
            _ => Vec::new(),
        };
        Ok(Committed {
            path: final_path,
            manifest,
            pruned,
        })
    }

    /// `<stamp>`, or `<stamp>-N` when a bundle of the same second exists.
    fn rename_into_place(&self) -> Result<PathBuf, WriteError> {
        let base = self.stamp.dir_name();
        for n in 0..1000u32 {
            let dest = self.parent.join(store::numbered(&base, n));
            match crate::host::rename::renameat2_noreplace(&self.tmp, &dest) {
                Ok(()) => return Ok(dest),
                Err(nix::errno::Errno::EEXIST) => continue,
                // Filesystems without RENAME_NOREPLACE: check, then rename.
                Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOSYS) => {
                    if dest.symlink_metadata().is_ok() {
                        continue;
                    }
                    std::fs::rename(&self.tmp, &dest).map_err(write_err(&dest))?;
                    return Ok(dest);
                }
                Err(e) => return Err(write_err(&dest)(io::Error::from(e))),
            }
        }
        Err(write_err(self.parent.join(base))(io::Error::other(
            "too many bundles with the same timestamp",
        )))
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if !self.committed {
            // Interrupted: the watcher removes the directory and exits 130;
            // the error that brought us here is a symptom, not the cause.
            super::interrupt::wait_if_interrupted();
            let _ = std::fs::remove_dir_all(&self.tmp);
            super::interrupt::unregister(&self.tmp);
            if self.created_parent {
                // Only succeeds while empty: never removes anything else.
                let _ = std::fs::remove_dir(&self.parent);
            }
        }
    }
}

/// Reading the source failed, or writing the bundle did: the caller words
/// the first (it knows the host path), the second is already worded.
#[derive(Debug)]
pub enum ReadOrWrite {
    Read(io::Error),
    Write(WriteError),
}

/// Copies `reader` into `out` in `CHUNK`s; a failed write names `dest`.
fn pump(reader: &mut dyn Read, out: &mut dyn Write, dest: &Path) -> Result<(), ReadOrWrite> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadOrWrite::Read(e)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| ReadOrWrite::Write(write_err(dest)(e)))?;
    }
}

fn empty_manifest() -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        tool: Tool::this(),
        created: String::new(),
        recipe: RecipeRef {
            path: String::new(),
            blake3: String::new(),
        },
        root: String::new(),
        entries: Vec::new(),
        resources: Vec::new(),
        database: None,
        stored: BTreeMap::new(),
        recipients: Vec::new(),
        imported: None,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    set_mode(path, mode)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::store::complete_bundles;
    use crate::bundle::LATEST;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, UNIX_EPOCH};

    fn recipe() -> RecipeRef {
        RecipeRef {
            path: "r.hcl".into(),
            blake3: "00".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_673_400 + secs)
    }

    #[test]
    fn commit_renames_links_and_prunes() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("bundles");
        let mut paths = Vec::new();
        for i in 0..3 {
            let mut w = BundleWriter::create(&dir, recipe(), Path::new("/"), at(i)).unwrap();
            let (rel, _, size) = w.write_file("/etc/shadow", &b"secret"[..], true).unwrap();
            assert_eq!((rel.as_str(), size), ("files/etc/shadow", 6));
            let c = w.commit(Some(&Policy::last(2))).unwrap();
            paths.push(c.path);
        }
        assert!(!paths[0].exists(), "oldest pruned");
        assert!(paths[1].exists() && paths[2].exists());
        let latest = std::fs::read_link(dir.join(LATEST)).unwrap();
        assert_eq!(latest, Path::new("2026-11-26T06-10-02Z"));
        let meta = std::fs::metadata(&paths[2]).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        let f = std::fs::metadata(paths[2].join("files/etc/shadow")).unwrap();
        assert_eq!(f.mode() & 0o777, 0o600);
    }

    #[test]
    fn same_second_gets_a_suffix() {
        let t = tempfile::tempdir().unwrap();
        let a = BundleWriter::create(t.path(), recipe(), Path::new("/"), at(0))
            .unwrap()
            .commit(None)
            .unwrap();
        let b = BundleWriter::create(t.path(), recipe(), Path::new("/"), at(0))
            .unwrap()
            .commit(None)
            .unwrap();
        assert_eq!(file_name(&a.path), "2026-11-26T06-10-00Z");
        assert_eq!(file_name(&b.path), "2026-11-26T06-10-00Z-1");
        assert_eq!(complete_bundles(t.path()).unwrap(), vec![a.path, b.path]);
    }

    #[test]
    fn dropping_removes_the_temporary_bundle() {
        let t = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::create(t.path(), recipe(), Path::new("/"), at(0)).unwrap();
        let _ = w.write_file("/etc/hosts", &b"x"[..], false);
        let tmp = w.tmp_path().to_path_buf();
        assert!(tmp.exists());
        drop(w);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        // A bundle dir this failed backup created is removed too.
        let w =
            BundleWriter::create(&t.path().join("new"), recipe(), Path::new("/"), at(0)).unwrap();
        drop(w);
        assert!(!t.path().join("new").exists());
    }
}
