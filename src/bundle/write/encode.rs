//! The stored form of a file: plain, through age, and/or in parts; and
//! the dump file, which is written by a dumper outside the writer.

use super::{set_mode, write_err, BundleWriter, ReadOrWrite, WriteError, SENSITIVE_MODE};
use crate::bundle::split::PartWriter;
use crate::bundle::Stored;
use crate::host::fs::{HashingWriter, CHUNK};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Sign the manifest into `manifest.sig` (see [`crate::bundle::sign`]).
    pub signer: Option<crate::bundle::sign::Signer>,
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
    pub(super) fn encrypts(&self, sensitive: bool) -> bool {
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
    pub(super) fn new(
        dir: &Path,
        rel: &str,
        opts: &StoreOptions,
        encrypt: bool,
        split: Option<u64>,
        mode: u32,
    ) -> io::Result<StoreWriter> {
        let base = if encrypt {
            format!("{rel}{}", crate::bundle::crypt::AGE_SUFFIX)
        } else {
            rel.to_string()
        };
        let parts = HashingWriter::new(PartWriter::new(dir, &base, split, mode));
        let inner = if encrypt {
            StoreInner::Age(crate::bundle::crypt::encrypt_to(&opts.recipients, parts)?)
        } else {
            StoreInner::Plain(parts)
        };
        Ok(StoreWriter {
            inner,
            rel: rel.to_string(),
            encrypted: encrypt,
        })
    }

    pub(super) fn finish(self) -> io::Result<(String, Stored)> {
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

pub(super) type PendingStored = Arc<Mutex<Vec<(String, Stored)>>>;

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
    /// Writes `reader` as `rel`'s stored form (encrypted and/or split); a
    /// file that fits in one part and is not encrypted stays as itself.
    pub(super) fn write_stored(
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
        super::pump(&mut reader, &mut out, &self.tmp.join(&rel))?;
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

    pub(super) fn restore_encrypted(
        &mut self,
        rel: String,
    ) -> Result<(String, String, u64), ReadOrWrite> {
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
}
