//! Writing a bundle so that a failure never leaves something that looks
//! complete: everything goes into `.incomplete-<name>-<pid>/`, each file is
//! fsynced, and only then is the directory renamed to its timestamp name
//! (with `RENAME_NOREPLACE`), `latest` swapped by rename, and old bundles
//! pruned. Dropping an uncommitted writer removes the temporary directory.

use super::retention::{self, Policy};
use super::split::PartWriter;
use super::{
    bundle_file_for, normalize, parse_bundle_name, DatabaseRecord, Entry, Manifest, RecipeRef,
    ResourceRecord, Stamp, Stored, Tool, FORMAT_VERSION, INCOMPLETE_PREFIX, LATEST, MANIFEST,
};
use crate::host::fs::{HashingWriter, CHUNK};
use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
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

/// How files are stored: `backup --recipient/--encrypt-all/--split-size`.
#[derive(Default)]
pub struct StoreOptions {
    /// age recipients; empty: nothing is encrypted.
    pub recipients: Vec<Box<dyn age::Recipient + Send>>,
    /// Their text, recorded in the manifest.
    pub recipient_names: Vec<String>,
    /// Encrypt every entry and the dump, not only sensitive entries.
    pub encrypt_all: bool,
    /// Split the dump, and any file larger than this, into parts.
    pub split_size: Option<u64>,
    /// Sign the manifest into `manifest.sig` (see [`super::sign`]).
    pub signer: Option<super::sign::Signer>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("recipients", &self.recipient_names)
            .field("encrypt_all", &self.encrypt_all)
            .field("split_size", &self.split_size)
            .field("signer", &self.signer)
            .finish()
    }
}

impl StoreOptions {
    fn encrypts(&self, sensitive: bool) -> bool {
        !self.recipients.is_empty() && (sensitive || self.encrypt_all)
    }
}

/// The stored form of a file, written through age and/or into parts.
pub struct StoreWriter {
    inner: StoreInner,
    /// The plain bundle path it stands for.
    rel: String,
    encrypted: bool,
}

enum StoreInner {
    Plain(HashingWriter<PartWriter>),
    Age(age::stream::StreamWriter<HashingWriter<PartWriter>>),
}

impl StoreWriter {
    /// `dir/rel[.age][.NNN]`.
    fn new(
        dir: &Path,
        rel: &str,
        opts: &StoreOptions,
        encrypt: bool,
        split: Option<u64>,
        mode: u32,
    ) -> io::Result<StoreWriter> {
        let base = if encrypt {
            format!("{rel}{}", super::crypt::AGE_SUFFIX)
        } else {
            rel.to_string()
        };
        let parts = HashingWriter::new(PartWriter::new(dir, &base, split, mode));
        let inner = if encrypt {
            StoreInner::Age(super::crypt::encrypt_to(&opts.recipients, parts)?)
        } else {
            StoreInner::Plain(parts)
        };
        Ok(StoreWriter {
            inner,
            rel: rel.to_string(),
            encrypted: encrypt,
        })
    }

    fn finish(self) -> io::Result<(String, Stored)> {
        let hashing = match self.inner {
            StoreInner::Plain(h) => h,
            StoreInner::Age(a) => a.finish()?,
        };
        let (parts, blake3, size) = hashing.finish();
        let parts = parts.finish()?;
        Ok((
            self.rel,
            Stored {
                encrypted: self.encrypted,
                size,
                blake3,
                parts,
            },
        ))
    }
}

impl Write for StoreWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            StoreInner::Plain(w) => w.write(buf),
            StoreInner::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            StoreInner::Plain(w) => w.flush(),
            StoreInner::Age(w) => w.flush(),
        }
    }
}

/// Where the dump's gzip bytes go: the plain file, or its stored form.
pub enum DumpSink {
    Plain(BufWriter<File>),
    Stored(Box<StoreWriter>),
}

impl Write for DumpSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            DumpSink::Plain(w) => w.write(buf),
            DumpSink::Stored(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            DumpSink::Plain(w) => w.flush(),
            DumpSink::Stored(w) => w.flush(),
        }
    }
}

type PendingStored = Arc<Mutex<Vec<(String, Stored)>>>;

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

/// The open dump file; hand `writer()` to the dumper, then `finish`.
pub struct DumpFile {
    pub name: String,
    path: PathBuf,
    writer: HashingWriter<DumpSink>,
    pending: PendingStored,
}

impl DumpFile {
    /// Hashes the plaintext `.gz`; stores it plain, split and/or encrypted.
    pub fn writer(&mut self) -> &mut HashingWriter<DumpSink> {
        &mut self.writer
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs; returns (blake3, size) of the `.gz`.
    pub fn finish(self) -> Result<(String, u64), WriteError> {
        let (sink, hash, len) = self.writer.finish();
        match sink {
            DumpSink::Plain(buf) => {
                let file = buf.into_inner().map_err(|e| WriteError::Write {
                    path: self.path.clone(),
                    error: e.into_error(),
                })?;
                file.sync_all().map_err(write_err(&self.path))?;
            }
            DumpSink::Stored(w) => {
                let stored = w.finish().map_err(write_err(&self.path))?;
                if let Ok(mut p) = self.pending.lock() {
                    p.push(stored);
                }
            }
        }
        Ok((hash, len))
    }
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
        remove_stale_incomplete(&parent);
        let stamp = Stamp::new(now);
        let tmp = parent.join(format!(
            "{INCOMPLETE_PREFIX}{}-{}",
            stamp.dir_name(),
            std::process::id()
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
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadOrWrite::Read(e)),
            };
            out.write_all(&buf[..n])
                .map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
        }
        let (file, hash, size) = out.finish();
        file.sync_all()
            .map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
        // create_new's mode is filtered by the umask; make it exact.
        set_mode(&dest, mode).map_err(|e| ReadOrWrite::Write(write_err(&dest)(e)))?;
        self.written.insert(rel.clone(), (hash.clone(), size));
        Ok((rel, hash, size))
    }

    /// Writes `reader` as `rel`'s stored form (encrypted and/or split); a
    /// file that fits in one part and is not encrypted stays as itself.
    fn write_stored(
        &mut self,
        rel: String,
        mut reader: impl Read,
        sensitive: bool,
        mode: u32,
    ) -> Result<(String, String, u64), ReadOrWrite> {
        let encrypt = self.store.encrypts(sensitive);
        let w = StoreWriter::new(
            &self.tmp,
            &rel,
            &self.store,
            encrypt,
            self.store.split_size,
            mode,
        )
        .map_err(|e| ReadOrWrite::Write(write_err(self.tmp.join(&rel))(e)))?;
        let mut out = HashingWriter::new(w);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadOrWrite::Read(e)),
            };
            out.write_all(&buf[..n])
                .map_err(|e| ReadOrWrite::Write(write_err(self.tmp.join(&rel))(e)))?;
        }
        let (w, hash, size) = out.finish();
        let (_, mut stored) = w
            .finish()
            .map_err(|e| ReadOrWrite::Write(write_err(self.tmp.join(&rel))(e)))?;
        if !encrypt && stored.parts.len() == 1 {
            // Small enough: keep it as itself, under its plain name.
            let part = self.tmp.join(&stored.parts[0].file);
            if stored.parts[0].file != rel {
                std::fs::rename(&part, self.tmp.join(&rel))
                    .map_err(|e| ReadOrWrite::Write(write_err(&part)(e)))?;
            }
        } else {
            if stored.parts.len() == 1 {
                // One part: no number (`files/etc/shadow.age`).
                let part = &mut stored.parts[0];
                if let Some(base) = part.file.strip_suffix(".000").map(str::to_string) {
                    let from = self.tmp.join(&part.file);
                    std::fs::rename(&from, self.tmp.join(&base))
                        .map_err(|e| ReadOrWrite::Write(write_err(&from)(e)))?;
                    part.file = base;
                }
            }
            self.manifest.stored.insert(rel.clone(), stored);
        }
        self.written.insert(rel.clone(), (hash.clone(), size));
        Ok((rel, hash, size))
    }

    fn restore_encrypted(&mut self, rel: String) -> Result<(String, String, u64), ReadOrWrite> {
        let werr = |p: &Path| {
            let p = p.to_path_buf();
            move |e| ReadOrWrite::Write(write_err(p)(e))
        };
        let old: Vec<PathBuf> = match self.manifest.stored.remove(&rel) {
            Some(s) => s.parts.iter().map(|p| self.tmp.join(&p.file)).collect(),
            None => vec![self.tmp.join(&rel)],
        };
        // Move the plain copy aside, then write the encrypted one from it.
        let aside: Vec<PathBuf> = old
            .iter()
            .map(|p| {
                let mut a = p.clone().into_os_string();
                a.push(".plain");
                PathBuf::from(a)
            })
            .collect();
        for (o, a) in old.iter().zip(&aside) {
            std::fs::rename(o, a).map_err(werr(o))?;
        }
        let mut chain: Box<dyn Read> = Box::new(io::empty());
        for a in &aside {
            chain = Box::new(chain.chain(File::open(a).map_err(werr(a))?));
        }
        self.written.remove(&rel);
        let out = self.write_stored(rel, chain, true, SENSITIVE_MODE);
        for a in &aside {
            let _ = std::fs::remove_file(a);
        }
        out
    }

    /// Creates the dump file (`0600`: it holds password hashes), stored
    /// encrypted with `--encrypt-all` and as parts with `--split-size`.
    pub fn create_dump(&mut self) -> Result<DumpFile, WriteError> {
        let name = self.stamp.dump_name();
        self.create_dump_named(name)
    }

    /// As [`create_dump`](Self::create_dump), under a given name (an
    /// imported runbook dump keeps the name its cron job gave it).
    pub fn create_dump_named(&mut self, name: String) -> Result<DumpFile, WriteError> {
        let path = self.tmp.join(&name);
        let encrypt = !self.store.recipients.is_empty() && self.store.encrypt_all;
        if encrypt || self.store.split_size.is_some() {
            let w = StoreWriter::new(
                &self.tmp,
                &name,
                &self.store,
                encrypt,
                self.store.split_size,
                SENSITIVE_MODE,
            )
            .map_err(write_err(&path))?;
            return Ok(DumpFile {
                name,
                path,
                writer: HashingWriter::new(DumpSink::Stored(Box::new(w))),
                pending: self.pending.clone(),
            });
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SENSITIVE_MODE)
            .open(&path)
            .map_err(write_err(&path))?;
        set_mode(&path, SENSITIVE_MODE).map_err(write_err(&path))?;
        Ok(DumpFile {
            name,
            path,
            writer: HashingWriter::new(DumpSink::Plain(BufWriter::with_capacity(CHUNK, file))),
            pending: self.pending.clone(),
        })
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
        // Readers older than `stored` must refuse such a bundle, not
        // misread it: only then is it version 2.
        self.manifest.format_version = if self.manifest.stored.is_empty() {
            1
        } else {
            FORMAT_VERSION
        };
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
        update_latest(&self.parent, &name).map_err(|error| WriteError::Latest {
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
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dest = self.parent.join(&name);
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

/// Points `latest` at `name` by renaming a fresh symlink over it, so readers
/// see the old bundle or the new one, never no `latest` at all.
fn update_latest(parent: &Path, name: &str) -> io::Result<()> {
    let tmp = parent.join(format!(".{LATEST}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, parent.join(LATEST)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(parent)
}

/// Complete bundles in `parent`, oldest first.
pub fn complete_bundles(parent: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(key) = name.to_str().and_then(parse_bundle_name) else {
            continue;
        };
        // Real directories only (never follow a symlink into a prune), and
        // only ones with a manifest: anything else is not ours to remove.
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && path.join(MANIFEST).is_file() {
            found.push((key, path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Temporary bundles left by a backup that was killed (its pid is gone).
fn remove_stale_incomplete(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(INCOMPLETE_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
