//! Hashing bundle files, and the one pass over the dump that hashes its
//! compressed bytes and decodes it to its end.

use super::{Job, Problem, ProblemKind, DUMP_COMPLETE};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Per read; big enough for blake3's multithreaded update to pay off.
const HASH_CHUNK: usize = 4 << 20;

/// Hashes a bundle file the way `b3sum` does: memory-mapped (no copy
/// through a read buffer, which costs a third of the time) and
/// multithreaded; small files are read instead. (A file truncated by
/// someone else *while* it is being hashed would fault; bundles are 0700.)
pub fn hash_path(path: &Path) -> io::Result<(String, u64)> {
    hash_opened(File::open(path)?, path)
}

/// [`hash_path`] of `file`, already opened at `path`: a small file is read
/// from it (blake3's own fallback zero-fills a 64 KiB buffer per file, a
/// third of a plan's CPU over 10,000 small files, #22), a big one mapped.
pub fn hash_opened(mut file: File, path: &Path) -> io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    if file.metadata()?.len() < MMAP_MIN {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        hasher.update(&bytes);
    } else {
        drop(file);
        hasher.update_mmap_rayon(path)?;
    }
    Ok((hasher.finalize().to_hex().to_string(), hasher.count()))
}

/// blake3 maps files from this size on (its own threshold).
const MMAP_MIN: u64 = 16 * 1024;

/// Streams the file through blake3, using both cores on big chunks.
pub fn hash_file(mut file: File) -> io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        if n >= 128 * 1024 {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
        total += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// Fills `buf` unless the file ends first; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One pass over the `.gz`: hash the compressed bytes and decode the gzip
/// stream to its end, keeping the SQL's tail to check pg_dumpall finished.
pub(super) fn check_dump(
    file: impl Read + Send,
    job: &Job,
    size_ok: bool,
    problems: &mut Vec<Problem>,
) -> u64 {
    let mut hashing = HashingReader {
        inner: io::BufReader::with_capacity(1 << 20, file),
        hasher: blake3::Hasher::new(),
        len: 0,
    };
    let mut tail = Tail::default();
    let decoded = decode_into(&mut hashing, &mut tail);
    let hostile = tail.scanner.hostile_content().map(str::to_string);
    // Hash whatever the decoder left unread (trailing garbage).
    let rest = io::copy(&mut hashing, &mut io::sink());
    let p = |kind, msg: String| Problem::new(job.rel, kind, msg).at(job.address);
    match decoded {
        Err(e) => problems.push(p(ProblemKind::Gzip, format!("the gzip stream does not decode to its end: {e}"))),
        Ok(0) => problems.push(p(ProblemKind::Dump, "the gzip stream holds no SQL".into())),
        Ok(_) if !tail.text().contains(DUMP_COMPLETE) => problems.push(p(
            ProblemKind::Dump,
            format!("the SQL does not end with pg_dumpall's \"{DUMP_COMPLETE}\": the dump was cut short"),
        )),
        Ok(_) => {}
    }
    if let Some(h) = hostile {
        problems.push(p(
            ProblemKind::Dump,
            format!("{h}: psql would run it; pg_dumpall never writes it (the dump was altered)"),
        ));
    }
    if let Err(e) = rest {
        problems.push(p(ProblemKind::Missing, format!("cannot read it: {e}")));
    }
    let hash = hashing.hasher.finalize().to_hex().to_string();
    if size_ok && hash != job.blake3 {
        problems.push(p(
            ProblemKind::Modified,
            "content differs from the manifest (blake3 mismatch)".into(),
        ));
    }
    hashing.len
}

/// Decodes the gzip stream on a second thread while this one scans what
/// it gives: the check runs before a restore, with nothing else to do (#22).
fn decode_into(gz: &mut (impl Read + Send), out: &mut Tail) -> io::Result<u64> {
    const PIECE: usize = 256 << 10;
    let (full, filled) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let (empty, emptied) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let decoder = s.spawn(move || -> io::Result<u64> {
            let mut gz = MultiGzDecoder::new(gz);
            let mut total = 0u64;
            loop {
                let mut buf = emptied.try_recv().unwrap_or_default();
                buf.resize(PIECE, 0);
                let n = match gz.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                buf.truncate(n);
                total += n as u64;
                if full.send(buf).is_err() {
                    return Ok(total);
                }
            }
        });
        for buf in filled {
            out.write_all(&buf)?;
            let _ = empty.send(buf);
        }
        decoder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the gzip decoder's thread panicked")))
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A sink that remembers the last bytes written, and scans them all for
/// what psql could run.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    scanner: crate::host::postgres::DumpScanner,
}

const TAIL: usize = 256;

impl Tail {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

impl Write for Tail {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.scanner.hostile_content().is_none() {
            self.scanner.feed(data);
        }
        if data.len() >= TAIL {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - TAIL..]);
        } else {
            self.buf.extend_from_slice(data);
            if self.buf.len() > TAIL {
                self.buf.drain(..self.buf.len() - TAIL);
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
