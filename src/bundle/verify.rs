//! `verify`: is this bundle exactly what `backup` wrote, and usable?
//! Every file is re-hashed (in parallel, streaming), the dump's gzip stream
//! is decoded to its end, extra and unsafe files are found, certificates
//! are checked against their keys and CA. Every problem is collected with
//! the path it concerns; nothing stops at the first one.

mod certs;
mod dump;

use super::read::{safe_join, Bundle};
use super::{EntryKind, MANIFEST};
use crate::recipe::Address;
use certs::check_certs;
use dump::check_dump;
pub use dump::{hash_file, hash_path};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// pg_dumpall's last comment: a dump without it was cut short.
pub const DUMP_COMPLETE: &str = "PostgreSQL database cluster dump complete";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    Manifest,
    Unsafe,
    Missing,
    Truncated,
    Modified,
    Extra,
    Gzip,
    Dump,
    Permissions,
    Cert,
    Drill,
    /// An encrypted file the given age identity does not open.
    Unreadable,
    /// Unsigned or wrongly signed, where a signature is required.
    Signature,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Manifest => "manifest",
            ProblemKind::Unsafe => "unsafe path",
            ProblemKind::Missing => "missing",
            ProblemKind::Truncated => "truncated",
            ProblemKind::Modified => "modified",
            ProblemKind::Extra => "extra file",
            ProblemKind::Gzip => "corrupt gzip",
            ProblemKind::Dump => "incomplete dump",
            ProblemKind::Permissions => "permissions",
            ProblemKind::Cert => "certificate",
            ProblemKind::Drill => "drill",
            ProblemKind::Unreadable => "cannot decrypt",
            ProblemKind::Signature => "signature",
        }
    }
}

/// One thing wrong with a bundle, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Relative to the bundle (`files/etc/hosts`, `manifest.json`, the dump).
    pub path: String,
    pub kind: ProblemKind,
    pub address: Option<Address>,
    pub message: String,
}

impl Problem {
    fn new(path: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            kind,
            address: None,
            message: message.into(),
        }
    }

    fn at(mut self, address: &Address) -> Problem {
        self.address = Some(address.clone());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(a) = &self.address {
            write!(f, " ({a})")?;
        }
        write!(f, ": {}: {}", self.kind.as_str(), self.message)
    }
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Files whose content was checked (entries plus the dump).
    pub files: usize,
    /// Bytes read to check them.
    pub bytes: u64,
    /// What the certificate checks confirmed, for the summary.
    pub certs: Vec<String>,
    pub problems: Vec<Problem>,
    /// Encrypted files checked as ciphertext only: no age identity was given.
    pub sealed: Vec<String>,
}

/// One file to re-read.
struct Job<'a> {
    rel: &'a str,
    address: &'a Address,
    size: u64,
    blake3: &'a str,
    sensitive: bool,
    dump: bool,
    /// Read the plaintext through [`Bundle::open_file`] (a stored file),
    /// not the file named `rel` on disk.
    stream: bool,
}

/// The jobs for one file: itself, or its parts plus its plaintext stream.
fn jobs_for<'a>(
    m: &'a super::Manifest,
    rel: &'a str,
    address: &'a Address,
    size: u64,
    blake3: &'a str,
    sensitive: bool,
    dump: bool,
) -> Vec<Job<'a>> {
    let Some(stored) = m.stored.get(rel) else {
        return vec![Job {
            rel,
            address,
            size,
            blake3,
            sensitive,
            dump,
            stream: false,
        }];
    };
    let mut jobs: Vec<Job> = stored
        .parts
        .iter()
        .map(|p| Job {
            rel: &p.file,
            address,
            size: p.size,
            blake3: &p.blake3,
            sensitive,
            dump: false,
            stream: false,
        })
        .collect();
    jobs.push(Job {
        rel,
        address,
        size,
        blake3,
        sensitive,
        dump,
        stream: true,
    });
    jobs
}

/// Checks everything but the drill.
pub fn verify(bundle: &Bundle) -> Report {
    let m = &bundle.manifest;
    let mut problems = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for e in &m.entries {
        if e.kind == EntryKind::Absent {
            continue;
        }
        match (&e.file, e.size, &e.blake3) {
            (Some(rel), Some(size), Some(hash)) => {
                // Two resources may share one captured file.
                if seen.insert((rel, hash)) {
                    jobs.extend(jobs_for(m, rel, &e.address, size, hash, e.sensitive, false));
                }
            }
            _ => problems.push(
                Problem::new(
                    MANIFEST,
                    ProblemKind::Manifest,
                    format!("entry for {} lacks file, size or blake3", e.path),
                )
                .at(&e.address),
            ),
        }
    }
    if let Some(db) = &m.database {
        jobs.extend(jobs_for(
            m,
            &db.file,
            &db.address,
            db.size,
            &db.blake3,
            true,
            true,
        ));
    }

    // Encrypted files without an identity: their parts are checked, their
    // plaintext cannot be.
    let mut sealed = Vec::new();
    jobs.retain(|j| {
        let locked = j.stream
            && !super::crypt::have_identity()
            && m.stored.get(j.rel).is_some_and(|s| s.encrypted);
        if locked {
            sealed.push(j.rel.to_string());
        }
        !locked
    });
    let results: Vec<(u64, Vec<Problem>)> = jobs
        .par_iter()
        .map(|job| {
            if job.stream {
                check_stream(bundle, job)
            } else {
                check_file(&bundle.dir, job)
            }
        })
        .collect();
    let mut report = Report {
        files: jobs.iter().filter(|j| !j.stream).count(),
        sealed,
        ..Report::default()
    };
    for (bytes, p) in results {
        report.bytes += bytes;
        problems.extend(p);
    }

    let expected: BTreeSet<&str> = jobs.iter().filter(|j| !j.stream).map(|j| j.rel).collect();
    problems.extend(find_extra(&bundle.dir, &expected));
    problems.extend(check_dir_mode(&bundle.dir));
    let (cert_problems, certs) = check_certs(bundle);
    problems.extend(cert_problems);
    report.certs = certs;
    problems.sort();
    problems.dedup();
    report.problems = problems;
    report
}

/// A stored file's plaintext: its parts chained (each checked as it is
/// read), decrypted, hashed — and for the dump, gzip-decoded to its end.
fn check_stream(bundle: &Bundle, job: &Job) -> (u64, Vec<Problem>) {
    let p = |kind, msg: String| Problem::new(job.rel, kind, msg).at(job.address);
    let reader = match bundle.open_file(job.rel) {
        Ok(r) => r,
        Err(e) => return (0, vec![p(ProblemKind::Unreadable, e.to_string())]),
    };
    let mut problems = Vec::new();
    if job.dump {
        check_dump(reader, job, true, &mut problems);
        // Part errors surface as gzip read errors: name them as such.
        for pr in &mut problems {
            if pr.kind == ProblemKind::Gzip && pr.message.contains("part ") {
                pr.kind = ProblemKind::Modified;
            }
        }
        return (0, problems);
    }
    match crate::host::fs::hash_reader(reader) {
        Ok((hash, n)) => {
            if n != job.size || hash != job.blake3 {
                problems.push(p(
                    ProblemKind::Modified,
                    format!(
                        "the plaintext ({n} bytes) differs from the manifest ({} bytes, blake3 mismatch)",
                        job.size
                    ),
                ));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            let kind = if msg.ends_with("): missing") {
                ProblemKind::Missing
            } else {
                ProblemKind::Modified
            };
            problems.push(p(kind, msg))
        }
    }
    (0, problems)
}

fn check_file(dir: &Path, job: &Job) -> (u64, Vec<Problem>) {
    let p = |kind, msg: String| vec![Problem::new(job.rel, kind, msg).at(job.address)];
    let path = match safe_join(dir, job.rel) {
        Ok(path) => path,
        Err(e) => return (0, p(ProblemKind::Unsafe, format!("refused: {e}"))),
    };
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return (
                0,
                p(
                    ProblemKind::Missing,
                    "listed in the manifest but not in the bundle".into(),
                ),
            )
        }
        Err(e) => return (0, p(ProblemKind::Missing, format!("cannot read it: {e}"))),
    };
    if !meta.file_type().is_file() {
        return (0, p(ProblemKind::Unsafe, "not a regular file".into()));
    }
    let mut problems = Vec::new();
    if job.sensitive && meta.permissions().mode() & 0o077 != 0 {
        problems.push(
            Problem::new(
                job.rel,
                ProblemKind::Permissions,
                format!(
                    "sensitive, but mode {:04o} lets others read it (expected 0600)",
                    meta.permissions().mode() & 0o7777
                ),
            )
            .at(job.address),
        );
    }
    let actual = meta.len();
    if actual < job.size {
        problems.push(
            Problem::new(
                job.rel,
                ProblemKind::Truncated,
                format!("{actual} bytes, the manifest says {}", job.size),
            )
            .at(job.address),
        );
    } else if actual > job.size {
        problems.push(
            Problem::new(
                job.rel,
                ProblemKind::Modified,
                format!("{actual} bytes, the manifest says {}", job.size),
            )
            .at(job.address),
        );
    }
    let size_ok = actual == job.size;
    let file = match super::read::open_regular(&path) {
        Ok(f) => f,
        Err(e) => {
            problems.push(
                Problem::new(
                    job.rel,
                    ProblemKind::Missing,
                    format!("cannot open it: {e}"),
                )
                .at(job.address),
            );
            return (0, problems);
        }
    };
    let read = if job.dump {
        check_dump(file, job, size_ok, &mut problems)
    } else if size_ok {
        match dump::hash_opened(file, &path) {
            Ok((hash, n)) => {
                if hash != job.blake3 {
                    problems.push(
                        Problem::new(
                            job.rel,
                            ProblemKind::Modified,
                            "content differs from the manifest (blake3 mismatch)",
                        )
                        .at(job.address),
                    );
                }
                n
            }
            Err(e) => {
                problems.push(
                    Problem::new(
                        job.rel,
                        ProblemKind::Missing,
                        format!("cannot read it: {e}"),
                    )
                    .at(job.address),
                );
                0
            }
        }
    } else {
        0
    };
    (read, problems)
}

/// Files present but not in the manifest, and symlinks anywhere.
fn find_extra(dir: &Path, expected: &BTreeSet<&str>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let entries = match std::fs::read_dir(dir.join(&rel_dir)) {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem::new(
                    rel_dir.display().to_string(),
                    ProblemKind::Missing,
                    format!("cannot list it: {e}"),
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let rel = rel_dir.join(entry.file_name());
            let rel_s = rel.to_string_lossy().into_owned();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(rel);
            } else if rel_s == MANIFEST
                || expected.contains(rel_s.as_str())
                || (rel_s == super::sign::SIGNATURE && ft.is_file())
            {
                // Checked by its entry (a symlink there is refused there).
            } else if ft.is_symlink() {
                problems.push(Problem::new(
                    rel_s,
                    ProblemKind::Unsafe,
                    "a symbolic link inside the bundle (backup never writes one)",
                ));
            } else {
                problems.push(Problem::new(
                    rel_s,
                    ProblemKind::Extra,
                    "not listed in the manifest",
                ));
            }
        }
    }
    problems
}

fn check_dir_mode(dir: &Path) -> Vec<Problem> {
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => vec![Problem::new(
            ".",
            ProblemKind::Permissions,
            format!(
                "the bundle directory has mode {:04o}; expected 0700 (it holds sensitive files)",
                m.permissions().mode() & 0o7777
            ),
        )],
        _ => Vec::new(),
    }
}
