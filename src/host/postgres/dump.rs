//! `pg_dumpall --clean`, streamed through parallel gzip into a writer.
//!
//! The SQL is cut into 1 MiB chunks; each chunk becomes one complete gzip
//! member, compressed on its own thread, and the members are written in
//! order. A file of concatenated gzip members is a valid gzip file
//! (RFC 1952 §2.2): `zcat FILE | psql postgres` restores it, exactly as the
//! runbook's own command. A fixed set of buffers circulates between the
//! reader, the compressors and the writer, so memory stays bounded
//! (threads × 2 + 2 chunk pairs, ~12 MiB on two cores) whatever the size.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::process::Stdio;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{hint_for, PgError, Result};
use super::fingerprint::Fingerprint;
use super::process::{indent, kill_tree, program_name, spawn_error, LineTail};
use super::scan::DumpScanner;
use super::PgTarget;

/// How a dump is compressed.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// gzip level 1–9 (6 is gzip's default).
    pub level: u32,
    /// Compression threads (default: the number of CPUs, at most 8).
    pub threads: usize,
    /// Uncompressed bytes per gzip member.
    pub chunk_size: usize,
    /// A cluster whose databases take at most this many bytes
    /// (`pg_database_size`) has them dumped at once and joined into
    /// pg_dumpall's script (see [`DumpStats::at_once`]); 0: never.
    pub at_once_up_to: u64,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            level: 6,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8),
            chunk_size: 1 << 20,
            at_once_up_to: 64 << 20,
        }
    }
}

/// What a finished dump contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpStats {
    /// Uncompressed SQL bytes.
    pub sql_bytes: u64,
    /// Compressed bytes written.
    pub gz_bytes: u64,
    /// gzip members written.
    pub members: u64,
    /// Row counts of the dump itself (what a restore must reproduce).
    pub fingerprint: Fingerprint,
    /// What pg_dumpall printed on stderr (warnings), last lines.
    pub messages: String,
    /// The databases were dumped at once (`pg_dump` each, beside
    /// `pg_dumpall --globals-only`) and joined as pg_dumpall joins them;
    /// `false`: pg_dumpall itself ran.
    pub at_once: bool,
    pub elapsed: Duration,
}

/// Dumps the whole cluster with `pg_dumpall --clean` into `writer` as gzip.
/// `progress` gets the number of uncompressed SQL bytes written so far.
/// The writer is flushed but not synced; the caller owns durability.
pub fn dump_all(
    target: &PgTarget,
    writer: impl Write,
    progress: impl FnMut(u64),
) -> Result<DumpStats> {
    dump_all_with(target, writer, &DumpOptions::default(), progress)
}

struct Job {
    seq: u64,
    input: Vec<u8>,
    output: Vec<u8>,
}

struct Done {
    seq: u64,
    input: Vec<u8>,
    output: Vec<u8>,
    error: Option<String>,
}

struct ReaderEnd {
    scanner: DumpScanner,
    sql_bytes: u64,
    error: Option<io::Error>,
}

/// [`dump_all`] with explicit compression settings.
pub fn dump_all_with(
    target: &PgTarget,
    writer: impl Write,
    options: &DumpOptions,
    progress: impl FnMut(u64),
) -> Result<DumpStats> {
    let started = Instant::now();
    // A small cluster's databases are dumped at once, into the same script.
    if let Some(joined) = super::concurrent::dump(target, options.at_once_up_to) {
        let c = compress(&joined.sql[..], None, writer, options, progress);
        return finish(target, c, started, Producer::Joined(joined.messages));
    }

    let mut cmd = target.client("pg_dumpall")?;
    cmd.arg("--clean");
    let program = program_name(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error(&program, target, e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_tree(&mut child);
        return Err(PgError::Io {
            doing: "connecting to pg_dumpall's output".into(),
            source: io::Error::other("stdout/stderr not captured"),
        });
    };
    let (c, tail) = std::thread::scope(|s| {
        let stderr_thread = s.spawn(move || LineTail::read_all(stderr));
        let c = compress(stdout, Some(&mut child), writer, options, progress);
        (c, stderr_thread.join().unwrap_or_default())
    });
    if c.write_error.is_some() {
        kill_tree(&mut child);
    }
    let status = child.wait().map_err(|source| PgError::Io {
        doing: format!("waiting for pg_dumpall on {target}"),
        source,
    });
    finish(target, c, started, Producer::PgDumpall(status, tail))
}

/// Where the SQL came from.
enum Producer {
    /// pg_dumpall: its exit status and the end of its stderr.
    PgDumpall(Result<std::process::ExitStatus>, LineTail),
    /// The databases dumped at once, joined; what they printed on stderr.
    Joined(String),
}

/// What [`compress`] leaves for [`finish`] to judge.
struct Compressed {
    reader_end: Option<ReaderEnd>,
    gz_bytes: u64,
    members: u64,
    write_error: Option<io::Error>,
    compress_error: Option<String>,
}

/// SQL from `source` to `writer` as gzip members compressed on
/// `options.threads` threads; `child` (the program writing `source`) is
/// killed if writing fails, so that the reader sees the end of its input.
fn compress(
    source: impl Read + Send,
    mut child: Option<&mut std::process::Child>,
    mut writer: impl Write,
    options: &DumpOptions,
    mut progress: impl FnMut(u64),
) -> Compressed {
    let threads = options.threads.max(1);
    let chunk_size = options.chunk_size.max(4096);
    let level = options.level.clamp(1, 9) as i32;

    let tokens = threads * 2 + 2;
    let (free_tx, free_rx) = sync_channel::<(Vec<u8>, Vec<u8>)>(tokens);
    for _ in 0..tokens {
        // Cannot fail: the channel has room for every token.
        let _ = free_tx.send((Vec::with_capacity(chunk_size), Vec::new()));
    }
    let (job_tx, job_rx) = sync_channel::<Job>(threads);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = sync_channel::<Done>(tokens);

    let mut gz_bytes = 0u64;
    let mut members = 0u64;
    let mut written_sql = 0u64;
    let mut write_error: Option<io::Error> = None;
    let mut compress_error: Option<String> = None;

    let reader_end = std::thread::scope(|s| {
        let reader = s.spawn(move || read_chunks(source, chunk_size, free_rx, job_tx));
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || compress_worker(job_rx, done_tx, level));
        }
        drop(done_tx);

        // Writer: members leave in input order; `pending` holds at most
        // `tokens` out-of-order members because buffers are rationed.
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = 0u64;
        let mut failed = false;
        for done in done_rx.iter() {
            pending.insert(done.seq, done);
            while let Some(d) = pending.remove(&next) {
                next += 1;
                if failed {
                    continue;
                }
                if let Some(e) = d.error {
                    compress_error = Some(e);
                    failed = true;
                } else if let Err(e) = writer.write_all(&d.output) {
                    write_error = Some(e);
                    failed = true;
                } else {
                    gz_bytes += d.output.len() as u64;
                    members += 1;
                    written_sql += d.input.len() as u64;
                    progress(written_sql);
                }
                if failed {
                    // Stop the program; the reader then sees end of input.
                    if let Some(c) = child.as_deref_mut() {
                        kill_tree(c);
                    }
                    break;
                }
                // The reader may already be gone at the end; nothing to return to.
                let _ = free_tx.send((d.input, d.output));
            }
            if failed {
                break;
            }
        }
        // Unblocks a reader waiting for a buffer, then drains the workers.
        drop(free_tx);
        drop(done_rx);
        reader.join().ok()
    });

    if write_error.is_none() && compress_error.is_none() {
        if let Err(e) = writer.flush() {
            write_error = Some(e);
        }
    }
    Compressed {
        reader_end,
        gz_bytes,
        members,
        write_error,
        compress_error,
    }
}

/// The dump's verdict: errors first (writing, compressing, the program's
/// exit, reading), then the script must be complete.
fn finish(
    target: &PgTarget,
    c: Compressed,
    started: Instant,
    producer: Producer,
) -> Result<DumpStats> {
    let Compressed {
        reader_end,
        gz_bytes,
        members,
        write_error,
        compress_error,
    } = c;
    let reader_end = reader_end.ok_or_else(|| PgError::Io {
        doing: "reading pg_dumpall's output".into(),
        source: io::Error::other("reader thread panicked"),
    })?;
    if let Some(source) = write_error {
        return Err(PgError::DumpWrite {
            target: target.to_string(),
            gz_bytes,
            source,
        });
    }
    if let Some(e) = compress_error {
        return Err(PgError::Io {
            doing: format!("compressing the dump of {target}"),
            source: io::Error::other(e),
        });
    }
    let at_once = matches!(producer, Producer::Joined(_));
    let stderr_text = match producer {
        Producer::Joined(messages) => messages,
        Producer::PgDumpall(status, tail) => {
            let status = status?;
            let text = tail.text();
            if !status.success() {
                return Err(PgError::DumpFailed {
                    target: target.to_string(),
                    status,
                    sql_bytes: reader_end.sql_bytes,
                    hint: hint_for(&text),
                    stderr: indent(&text),
                });
            }
            text
        }
    };
    if let Some(source) = reader_end.error {
        return Err(PgError::Io {
            doing: format!("reading pg_dumpall's output from {target}"),
            source,
        });
    }
    let sql_bytes = reader_end.sql_bytes;
    let fingerprint = reader_end
        .scanner
        .finish()
        .map_err(|e| PgError::DumpIncomplete {
            target: target.to_string(),
            sql_bytes,
            problem: match e {
                PgError::DumpFormat { problem, .. } => problem,
                other => other.to_string(),
            },
        })?;
    Ok(DumpStats {
        sql_bytes,
        gz_bytes,
        members,
        fingerprint,
        messages: stderr_text,
        at_once,
        elapsed: started.elapsed(),
    })
}

/// Fills rationed buffers from pg_dumpall's stdout and hands them out in
/// sequence; the scanner sees every byte on the way (fingerprint, marker).
fn read_chunks(
    mut stdout: impl Read,
    chunk_size: usize,
    free_rx: Receiver<(Vec<u8>, Vec<u8>)>,
    job_tx: SyncSender<Job>,
) -> ReaderEnd {
    let mut scanner = DumpScanner::new();
    let mut sql_bytes = 0u64;
    let mut seq = 0u64;
    loop {
        let Ok((mut input, output)) = free_rx.recv() else {
            return ReaderEnd {
                scanner,
                sql_bytes,
                error: None,
            };
        };
        input.clear();
        input.resize(chunk_size, 0);
        let mut filled = 0;
        let mut error = None;
        while filled < chunk_size {
            match stdout.read(&mut input[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        input.truncate(filled);
        let eof = filled < chunk_size;
        if filled > 0 {
            scanner.feed(&input);
            sql_bytes += filled as u64;
            if job_tx.send(Job { seq, input, output }).is_err() {
                return ReaderEnd {
                    scanner,
                    sql_bytes,
                    error,
                };
            }
            seq += 1;
        }
        if eof || error.is_some() {
            return ReaderEnd {
                scanner,
                sql_bytes,
                error,
            };
        }
    }
}

fn compress_worker(job_rx: &Mutex<Receiver<Job>>, done_tx: SyncSender<Done>, level: i32) {
    let mut writer_gone = false;
    loop {
        let job = {
            let Ok(rx) = job_rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if writer_gone {
            // Keep draining so a reader blocked on a full queue can finish.
            continue;
        }
        let mut output = job.output;
        let error = gzip_member(&job.input, &mut output, level).err();
        let done = Done {
            seq: job.seq,
            input: job.input,
            output,
            error,
        };
        if done_tx.send(done).is_err() {
            writer_gone = true;
        }
    }
}

/// One complete gzip member (header, deflate stream, CRC-32 and size).
fn gzip_member(input: &[u8], out: &mut Vec<u8>, level: i32) -> Result<(), String> {
    // compress_bound covers the zlib wrapper; gzip's is 12 bytes longer.
    out.clear();
    out.resize(zlib_rs::compress_bound(input.len()) + 64, 0);
    let config = zlib_rs::DeflateConfig {
        level,
        window_bits: 16 + 15,
        ..Default::default()
    };
    let (written, rc) = zlib_rs::compress_slice(out, input, config);
    let n = written.len();
    if rc != zlib_rs::ReturnCode::Ok {
        return Err(format!("gzip compression failed: {rc:?}"));
    }
    out.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_concatenate_into_one_gzip_stream() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{i}\toss{}.example.com\n", i % 7).into_bytes())
            .collect();
        let mut gz = Vec::new();
        let mut out = Vec::new();
        for chunk in text.chunks(100_000) {
            gzip_member(chunk, &mut out, 6).unwrap();
            gz.extend_from_slice(&out);
        }
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        assert!(gz.len() < text.len() / 3);
    }
}
