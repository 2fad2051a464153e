//! `backup --split-size SIZE`: a stored stream written as numbered parts
//! (`pgbackup-….sql.gz.000`, `.001`, …) of at most SIZE bytes each, as the
//! runbook's `split` would, for file systems with a file size limit; and
//! the chained reader that streams them back together (no joined copy),
//! checking every part against its manifest hash as it goes.
//!
//! Plain parts concatenate to the original file, so the runbook's own
//! `cat pgbackup-….sql.gz.* | zcat | psql postgres` still restores.

use super::read::safe_join;
use super::Part;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Part numbers have three digits, so `cat NAME.*` takes them in order.
pub const MAX_PARTS: usize = 1000;

/// Parses `64M`, `1G`, `512K`, `4096` (binary units, as `split -b`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let unit = t[i..].trim_end_matches(['B', 'b']).trim_end_matches(['i']);
            let mult = match unit.to_ascii_uppercase().as_str() {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => {
                    return Err(format!(
                        "`{s}` is not a size: write e.g. 64M, 2G, 512K or bytes"
                    ))
                }
            };
            (&t[..i], mult)
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write e.g. 64M, 2G, 512K or bytes"))?;
    match n.checked_mul(mult) {
        Some(0) => Err("the split size must be at least 1 byte".into()),
        Some(v) => Ok(v),
        None => Err(format!("`{s}` is too large")),
    }
}

/// The name of part `i` of `base`.
pub fn part_name(base: &str, i: usize) -> String {
    format!("{base}.{i:03}")
}

struct Current {
    out: BufWriter<File>,
    path: PathBuf,
    rel: String,
    hasher: blake3::Hasher,
    len: u64,
}

/// Writes a stream into `dir/base` (no limit) or `dir/base.000`, `.001`, …
/// of at most `limit` bytes each; records each part's size and blake3.
pub struct PartWriter {
    dir: PathBuf,
    base: String,
    limit: Option<u64>,
    mode: u32,
    current: Option<Current>,
    parts: Vec<Part>,
    paths: Vec<PathBuf>,
}

impl PartWriter {
    /// `base` is relative to `dir` (the bundle being written).
    pub fn new(dir: &Path, base: &str, limit: Option<u64>, mode: u32) -> PartWriter {
        PartWriter {
            dir: dir.to_path_buf(),
            base: base.to_string(),
            limit,
            mode,
            current: None,
            parts: Vec::new(),
            paths: Vec::new(),
        }
    }

    /// Every file written so far (for cleanup on failure).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    fn open_next(&mut self) -> io::Result<()> {
        self.close_current()?;
        let rel = match self.limit {
            None => self.base.clone(),
            Some(_) => {
                let i = self.parts.len();
                if i >= MAX_PARTS {
                    return Err(io::Error::other(format!(
                        "more than {MAX_PARTS} parts: use a larger --split-size"
                    )));
                }
                part_name(&self.base, i)
            }
        };
        let path = self.dir.join(&rel);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(&path)?;
        self.paths.push(path.clone());
        self.current = Some(Current {
            out: BufWriter::with_capacity(1 << 20, file),
            path,
            rel,
            hasher: blake3::Hasher::new(),
            len: 0,
        });
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some(c) = self.current.take() {
            let file = c.out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            // create_new's mode went through the umask; make it exact.
            std::fs::set_permissions(&c.path, std::fs::Permissions::from_mode(self.mode))?;
            self.parts.push(Part {
                file: c.rel,
                size: c.len,
                blake3: c.hasher.finalize().to_hex().to_string(),
            });
        }
        Ok(())
    }

    /// Flushes and fsyncs; returns the parts in order (at least one).
    pub fn finish(mut self) -> io::Result<Vec<Part>> {
        if self.current.is_none() && self.parts.is_empty() {
            self.open_next()?;
        }
        self.close_current()?;
        Ok(std::mem::take(&mut self.parts))
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let full = match (&self.current, self.limit) {
            (None, _) => true,
            (Some(c), Some(limit)) => c.len >= limit,
            (Some(_), None) => false,
        };
        if full {
            self.open_next()?;
        }
        let limit = self.limit;
        let Some(c) = self.current.as_mut() else {
            return Err(io::Error::other("no part open"));
        };
        let room = limit.map_or(buf.len() as u64, |l| l - c.len);
        let n = (buf.len() as u64).min(room) as usize;
        let n = c.out.write(&buf[..n])?;
        c.hasher.update(&buf[..n]);
        c.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some(c) => c.out.flush(),
            None => Ok(()),
        }
    }
}

/// Reads the parts of a stored stream one after another. Each part is
/// hashed as it is read and compared with the manifest when it ends, so a
/// missing, reordered, truncated or modified part is an error naming it
/// before the next part's first byte is returned.
pub struct PartsReader {
    dir: PathBuf,
    parts: Vec<Part>,
    next: usize,
    current: Option<(File, blake3::Hasher, u64)>,
}

impl PartsReader {
    pub fn new(dir: &Path, parts: &[Part]) -> PartsReader {
        PartsReader {
            dir: dir.to_path_buf(),
            parts: parts.to_vec(),
            next: 0,
            current: None,
        }
    }

    fn part_error(&self, i: usize, why: impl std::fmt::Display) -> io::Error {
        let p = &self.parts[i];
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("part {} of {} ({}): {why}", i + 1, self.parts.len(), p.file),
        )
    }
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() {
                if self.next >= self.parts.len() {
                    return Ok(0);
                }
                let i = self.next;
                let path = safe_join(&self.dir, &self.parts[i].file)
                    .map_err(|e| self.part_error(i, format!("refused: {e}")))?;
                let file = super::read::open_regular(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => self.part_error(i, "missing"),
                    _ => self.part_error(i, e),
                })?;
                self.current = Some((file, blake3::Hasher::new(), 0));
            }
            let i = self.next;
            let expected = self.parts[i].size;
            let Some((file, hasher, len)) = self.current.as_mut() else {
                continue;
            };
            let n = file.read(buf)?;
            if n > 0 {
                hasher.update(&buf[..n]);
                *len += n as u64;
                if *len > expected {
                    return Err(self.part_error(
                        i,
                        format!("longer than the {expected} bytes the manifest says"),
                    ));
                }
                return Ok(n);
            }
            let (len, hash) = (*len, hasher.finalize().to_hex().to_string());
            if len != expected {
                return Err(self.part_error(
                    i,
                    format!(
                        "{len} bytes, the manifest says {expected} (truncated or another part)"
                    ),
                ));
            }
            if hash != self.parts[i].blake3 {
                return Err(self.part_error(
                    i,
                    "does not match its manifest hash (modified, or parts swapped)",
                ));
            }
            self.current = None;
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn parts_round_trip_and_refuse_swaps() {
        let t = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = PartWriter::new(t.path(), "dump.gz", Some(4000), 0o600);
        for chunk in data.chunks(333) {
            w.write_all(chunk).unwrap();
        }
        let parts = w.finish().unwrap();
        let names: Vec<&str> = parts.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(names, ["dump.gz.000", "dump.gz.001", "dump.gz.002"]);
        assert_eq!(parts[2].size, 2000);
        let mut back = Vec::new();
        PartsReader::new(t.path(), &parts)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);

        // The files of parts 1 and 2 swapped on disk.
        let (a, b) = (t.path().join("dump.gz.000"), t.path().join("dump.gz.001"));
        std::fs::rename(&a, t.path().join("x")).unwrap();
        std::fs::rename(&b, &a).unwrap();
        std::fs::rename(t.path().join("x"), &b).unwrap();
        let err = PartsReader::new(t.path(), &parts)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("part 1 of 3"), "{err}");
        std::fs::rename(&a, t.path().join("x")).unwrap();
        std::fs::rename(&b, &a).unwrap();
        std::fs::rename(t.path().join("x"), &b).unwrap();
        std::fs::remove_file(t.path().join("dump.gz.001")).unwrap();
        let err = PartsReader::new(t.path(), &parts)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("dump.gz.001): missing"), "{err}");
    }
}
