//! The runbook's database dumps in a backup directory: cron's
//! `pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz` files, possibly cut by `split`
//! into `.aa`, `.ab`, … (or `.00`, `.01`, …), and whether each is whole.

use crate::host::fs::CHUNK;
use crate::host::postgres::{DumpScanner, Fingerprint, PgError};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

const PREFIX: &str = "pgbackup-";
const SUFFIX: &str = ".sql.gz";
/// The head of the SQL searched for pg_dump's "Dumped from" line.
const HEAD: usize = 64 * 1024;

/// One dump: a whole file or its parts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// `pgbackup-2026-11-26-06:10:00.sql.gz`
    pub name: String,
    /// The files that hold it, relative to the directory, in order.
    pub parts: Vec<String>,
    /// Total bytes of the parts.
    pub size: u64,
    /// The name's time, read as this host's local time (as `date` wrote it).
    pub time: Option<SystemTime>,
    /// Why the parts cannot be joined (a gap in the suffixes), if they cannot.
    pub broken: Option<String>,
}

/// What reading a whole dump found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// blake3 and size of the joined `.gz` bytes.
    pub blake3: String,
    pub size: u64,
    pub sql_bytes: u64,
    pub fingerprint: Fingerprint,
    /// From pg_dump's `-- Dumped from database version` line.
    pub server_version: Option<String>,
    /// From pg_dump's `-- Dumped by pg_dump version` line.
    pub dumped_by: Option<String>,
}

/// `pgbackup-<stamp>.sql.gz` → `<stamp>` and the split suffix (empty when whole).
pub fn parse_name(file: &str) -> Option<(&str, &str)> {
    let rest = file.strip_prefix(PREFIX)?;
    let stamp = rest.get(..19)?;
    let shape = b"dddd-dd-dd-dd:dd:dd";
    let ok = stamp.bytes().zip(shape).all(|(c, s)| {
        if *s == b'd' {
            c.is_ascii_digit()
        } else {
            c == *s
        }
    });
    if !ok {
        return None;
    }
    let tail = rest[19..].strip_prefix(SUFFIX)?;
    if tail.is_empty() {
        return Some((stamp, ""));
    }
    let suffix = tail.strip_prefix('.')?;
    let alpha = suffix.bytes().all(|b| b.is_ascii_lowercase());
    let digits = suffix.bytes().all(|b| b.is_ascii_digit());
    (suffix.len() >= 2 && (alpha || digits)).then_some((stamp, suffix))
}

/// `YYYY-MM-DD-HH:MM:SS` in the local time zone (the runbook's `date`).
pub fn stamp_time(stamp: &str) -> Option<SystemTime> {
    let n = |a: usize, b: usize| stamp.get(a..b)?.parse::<i32>().ok();
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = n(0, 4)? - 1900;
    tm.tm_mon = n(5, 7)? - 1;
    tm.tm_mday = n(8, 10)?;
    tm.tm_hour = n(11, 13)?;
    tm.tm_min = n(14, 16)?;
    tm.tm_sec = n(17, 19)?;
    tm.tm_isdst = -1;
    // SAFETY: tm is a valid, fully initialised struct tm owned by us.
    let t = unsafe { nix::libc::mktime(&mut tm) };
    u64::try_from(t)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// Every dump in `dir` (top level), newest first.
pub fn find(dir: &Path) -> io::Result<Vec<Dump>> {
    let mut by_stamp: std::collections::BTreeMap<String, Vec<(String, String, u64)>> =
        Default::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some((stamp, suffix)) = parse_name(&file) else {
            continue;
        };
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let (stamp, suffix) = (stamp.to_string(), suffix.to_string());
        by_stamp
            .entry(stamp)
            .or_default()
            .push((suffix, file, meta.len()));
    }
    let mut dumps = Vec::new();
    for (stamp, mut files) in by_stamp.into_iter().rev() {
        // A whole file wins over stray parts of the same name.
        let whole = files.iter().position(|(s, _, _)| s.is_empty());
        if let Some(i) = whole {
            files = vec![files.swap_remove(i)];
        }
        files.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        let broken = if whole.is_some() {
            None
        } else {
            gap(&files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>())
        };
        dumps.push(Dump {
            name: format!("{PREFIX}{stamp}{SUFFIX}"),
            size: files.iter().map(|f| f.2).sum(),
            parts: files.into_iter().map(|f| f.1).collect(),
            time: stamp_time(&stamp),
            broken,
        });
    }
    Ok(dumps)
}

/// The first missing part of a `split` series (`aa`, `ab`, … or `00`, `01`, …).
fn gap(suffixes: &[&str]) -> Option<String> {
    let first = suffixes.first()?;
    let digits = first.bytes().all(|b| b.is_ascii_digit());
    let (lo, hi) = if digits { (b'0', b'9') } else { (b'a', b'z') };
    let mut want: Vec<u8> = vec![lo; first.len()];
    for s in suffixes {
        if s.as_bytes() != want.as_slice() {
            return Some(format!(
                "part .{} is missing (found .{s})",
                String::from_utf8_lossy(&want)
            ));
        }
        // The next suffix: count up with carry.
        for c in want.iter_mut().rev() {
            if *c < hi {
                *c += 1;
                break;
            }
            *c = lo;
        }
    }
    None
}

/// Reads the joined dump to its end: gzip whole, SQL complete (pg_dumpall's
/// last line present), the row counts. `Err` is why it is refused.
pub fn check(dir: &Path, dump: &Dump) -> Result<Checked, String> {
    if let Some(b) = &dump.broken {
        return Err(format!("its split parts do not join: {b}"));
    }
    let mut chain: Box<dyn Read> = Box::new(io::empty());
    for p in &dump.parts {
        let f = File::open(dir.join(p)).map_err(|e| format!("cannot read {p}: {e}"))?;
        chain = Box::new(chain.chain(f));
    }
    let mut hashed = BufReader::with_capacity(CHUNK, Tee::new(chain));
    let magic = io::BufRead::fill_buf(&mut hashed).map_err(|e| e.to_string())?;
    if magic.is_empty() {
        return Err("it is empty (0 bytes): the dump never ran or its disk was full".into());
    }
    if !magic.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "it is not gzip (it starts with {}, not 1f 8b): not what `pg_dumpall --clean | gzip` writes",
            magic
                .iter()
                .take(2)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let mut gz = flate2::bufread::MultiGzDecoder::new(hashed);
    let mut scanner = DumpScanner::new();
    let mut head = Vec::new();
    let mut sql_bytes = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match gz.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err("its gzip stream ends early: a truncated copy, or the disk filled up while it was written".into())
            }
            Err(e) => return Err(format!("its gzip data is corrupt: {e}")),
        };
        if head.len() < HEAD {
            head.extend_from_slice(&buf[..n.min(HEAD - head.len())]);
        }
        scanner.feed(&buf[..n]);
        sql_bytes += n as u64;
    }
    let fingerprint = scanner.finish().map_err(|e| match e {
        PgError::DumpFormat { problem, .. } => {
            format!("it is not a complete pg_dumpall script: {problem} (pg_dumpall stopped early; gzip still closed the file)")
        }
        e => e.to_string(),
    })?;
    let mut hashed = gz.into_inner();
    // Bytes after the last gzip member still belong to the file's hash.
    io::copy(&mut hashed, &mut io::sink()).map_err(|e| e.to_string())?;
    let (blake3, size) = hashed.into_inner().finish();
    Ok(Checked {
        blake3,
        size,
        sql_bytes,
        fingerprint,
        server_version: server_version(&head),
        dumped_by: dumped_by(&head),
    })
}

/// `-- Dumped by pg_dump version 15.18 (Debian 15.18-1)`: the programs that
/// wrote the dump (pg_dumpall runs its own major's pg_dump), as `15.18`.
fn dumped_by(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        l.strip_prefix("-- Dumped by pg_dump version ")
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
    })
}

/// `-- Dumped from database version 15.10 (Debian 15.10-1)`: as the server
/// says `server_version`.
fn server_version(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        l.strip_prefix("-- Dumped from database version ")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

/// Hashes what passes through.
struct Tee<R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
}

impl<R: Read> Tee<R> {
    fn new(inner: R) -> Tee<R> {
        Tee {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (self.hasher.finalize().to_hex().to_string(), self.len)
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_name("pgbackup-2026-11-26-06:10:00.sql.gz"),
            Some(("2026-11-26-06:10:00", ""))
        );
        assert_eq!(
            parse_name("pgbackup-2026-11-26-06:10:00.sql.gz.ab"),
            Some(("2026-11-26-06:10:00", "ab"))
        );
        assert_eq!(parse_name("pgbackup-2026-11-26-06:10:00.sql"), None);
        assert_eq!(parse_name("pgbackup-2026-11-26-06:10:00.sql.gz.x"), None);
        assert_eq!(parse_name("pgbackup-2026-11-26T06:10:00.sql.gz"), None);
    }

    #[test]
    fn gaps() {
        assert_eq!(gap(&["aa", "ab", "ac"]), None);
        assert_eq!(gap(&["00", "01"]), None);
        assert_eq!(
            gap(&["aa", "ac"]).as_deref(),
            Some("part .ab is missing (found .ac)")
        );
        assert_eq!(
            gap(&["ab"]).as_deref(),
            Some("part .aa is missing (found .ab)")
        );
        let all: Vec<String> = (b'a'..=b'z')
            .flat_map(|a| (b'a'..=b'z').map(move |b| format!("{}{}", a as char, b as char)))
            .take(30)
            .collect();
        assert_eq!(
            gap(&all.iter().map(String::as_str).collect::<Vec<_>>()),
            None
        );
    }
}
