//! Big files over two SSH connections.
//!
//! libssh2 encrypts on the thread that writes (its own ChaCha20-Poly1305 is
//! the fastest cipher it has for bulk data; its AES modes call OpenSSL once
//! per 16-byte block), so one connection is bound to one core. And `send`'s
//! final `fsync@openssh.com` writes the whole file to the remote disk only
//! after the transfer. So a file of at least [`BIG`] bytes, pushed to an
//! OpenSSH server, is read and hashed in order on the calling thread and
//! written in pieces by two lanes, each taking the next piece when it is
//! free: the push's own connection and a second one to the same host (same
//! target, pinned host key and credentials), opened in the background once
//! per push. The second lane also fsyncs the file every [`STEP`] bytes it
//! has written, so the remote disk works while the data flows (the first
//! lane keeps writing meanwhile). The final fsync, on the first lane after
//! both are done, is still what makes the file durable; it finds little
//! left to do.
//!
//! The second lane only speeds things up. If it cannot connect or open the
//! file, or loses its connection, the first lane does the rest, including
//! the piece the second lane did not finish (a write at an offset can be
//! repeated). A failure status from the server (full disk, I/O error) fails
//! the push, as on the first lane.

use super::remote::{create, finish, unsupported, write_err, Remote};
use super::{Events, RemoteTarget, TransferError};
use crate::host::ssh::SshTarget;
use ssh2::{File, OpenFlags, OpenType};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Files at least this big use two lanes: below it, a second handshake and
/// thread cost more than they save.
pub const BIG: u64 = 64 << 20;
/// The second lane fsyncs after writing this much.
pub const STEP: u64 = 32 << 20;
/// Size of one piece (a lane writes it with one pipelined `write_all`).
const PIECE: usize = 1 << 20;
/// Pieces in flight: one per lane, one being read, some queued.
const PIECES: usize = 6;

/// The second connection of a push, reused for each of its big files.
/// Dropped while still connecting, its thread is left to finish on its own
/// (bounded by the connect timeout).
pub struct Second {
    state: Mutex<SecondState>,
    /// Why big files went over the first connection only, if they did.
    fell_back: Mutex<Option<String>>,
}

enum SecondState {
    Connecting(JoinHandle<Result<Remote, String>>),
    Ready(Box<Remote>),
    Gone,
}

impl Second {
    /// Starts connecting in the background.
    pub fn start(ssh: SshTarget, target: RemoteTarget) -> Second {
        let mut fell_back = None;
        let state = match std::thread::Builder::new()
            .name("push-connect".into())
            .spawn(move || Remote::connect(&ssh, target).map_err(|e| e.to_string()))
        {
            Ok(h) => SecondState::Connecting(h),
            Err(e) => {
                fell_back = Some(format!("no thread to open it: {e}"));
                SecondState::Gone
            }
        };
        Second {
            state: Mutex::new(state),
            fell_back: Mutex::new(fell_back),
        }
    }

    /// Why the big files did not (all) go over two connections.
    pub fn fell_back(&self) -> Option<String> {
        self.fell_back
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn note(&self, why: String) {
        let mut f = self.fell_back.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(why);
    }

    fn lock(&self) -> MutexGuard<'_, SecondState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection, once it is up; `None` if it never came up, was lost,
    /// or is still connecting when the file has been read to the end.
    fn ready(&self, read_done: &AtomicBool) -> Option<MutexGuard<'_, SecondState>> {
        let mut st = self.lock();
        loop {
            match &*st {
                SecondState::Connecting(h) if !h.is_finished() => {
                    if read_done.load(Ordering::SeqCst) {
                        return None;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                SecondState::Connecting(_) => {
                    if let SecondState::Connecting(h) =
                        std::mem::replace(&mut *st, SecondState::Gone)
                    {
                        match h.join() {
                            Ok(Ok(r)) => *st = SecondState::Ready(Box::new(r)),
                            Ok(Err(e)) => self.note(format!("it could not connect: {e}")),
                            Err(_) => self.note("its thread panicked".into()),
                        }
                    }
                }
                SecondState::Ready(_) => return Some(st),
                SecondState::Gone => return None,
            }
        }
    }
}

struct Piece {
    offset: u64,
    buf: Vec<u8>,
    len: usize,
}

/// Is this a status the server sent about the file (as opposed to the
/// connection failing)?
fn server_status(e: &ssh2::Error) -> bool {
    // 6 and 7 are the client's own "no connection" / "connection lost".
    matches!(e.code(), ssh2::ErrorCode::SFTP(n) if n != 6 && n != 7)
}

fn io_server_status(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ssh2::Error>())
        .is_some_and(server_status)
}

/// Streams `src` into the new remote file `dest` over both lanes, hashing
/// every byte in order; fsyncs it like `send`. Returns blake3 and size.
pub fn send_big(
    remote: &Remote,
    second: &Second,
    mut src: impl Read,
    local: &Path,
    dest: &Path,
    mode: i32,
    events: &dyn Events,
) -> Result<(String, u64), TransferError> {
    let mut file = create(remote, dest, mode)?;
    let stop = AtomicBool::new(false);
    let read_done = AtomicBool::new(false);
    // Bytes the server acknowledged, by either lane: must end up = total.
    let written = AtomicU64::new(0);
    let (work_tx, work_rx) = mpsc::channel::<Piece>();
    let work_rx = Mutex::new(work_rx);
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(PIECES);
    for _ in 0..PIECES {
        let _ = free_tx.send(vec![0u8; PIECE]);
    }
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    let (read_result, first, second_lane) = std::thread::scope(|s| {
        let lane = Lane {
            work: &work_rx,
            stop: &stop,
            written: &written,
            events,
        };
        let free_first = free_tx.clone();
        let first = s.spawn({
            let file = &mut file;
            move || lane_first(remote, file, dest, lane, free_first)
        });
        let free_second = free_tx.clone();
        let second_lane = s.spawn({
            let read_done = &read_done;
            move || lane_second(second, dest, lane, free_second, read_done)
        });
        drop(free_tx);
        let read_result = read_pieces(
            &mut src,
            local,
            &mut hasher,
            &mut total,
            &work_tx,
            &free_rx,
            &stop,
        );
        if read_result.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        read_done.store(true, Ordering::SeqCst);
        drop(work_tx);
        (read_result, first.join(), second_lane.join())
    });
    // Whichever failed first set `stop` and the others ended without error.
    // A lane that panicked may have taken a piece it never wrote.
    let first = first.unwrap_or_else(|_| Err(panicked(remote, dest)));
    let second_lane = second_lane.unwrap_or_else(|_| Err(panicked(remote, dest)));
    read_result?;
    first?;
    if let Some(piece) = second_lane? {
        // The second lane lost its connection in the middle of this piece.
        write_piece(&mut file, &piece).map_err(|e| write_err(remote, dest, e))?;
        written.fetch_add(piece.len as u64, Ordering::SeqCst);
        events.moved(piece.len as u64);
    }
    let written = written.load(Ordering::SeqCst);
    if written != total {
        return Err(TransferError::Sftp {
            endpoint: remote.conn.endpoint().to_string(),
            during: "writing",
            path: dest.to_path_buf(),
            status: None,
            message: format!("internal error: {written} of {total} bytes were acknowledged"),
        });
    }
    finish(remote, file, dest)?;
    Ok((hasher.finalize().to_hex().to_string(), total))
}

fn panicked(remote: &Remote, dest: &Path) -> TransferError {
    TransferError::Sftp {
        endpoint: remote.conn.endpoint().to_string(),
        during: "writing",
        path: dest.to_path_buf(),
        status: None,
        message: "internal error: a writer thread panicked".into(),
    }
}

/// The calling thread: reads `src` in order, hashes it, hands out pieces.
fn read_pieces(
    src: &mut impl Read,
    local: &Path,
    hasher: &mut blake3::Hasher,
    total: &mut u64,
    work: &Sender<Piece>,
    free: &Receiver<Vec<u8>>,
    stop: &AtomicBool,
) -> Result<(), TransferError> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // No free buffer and no lane left: a lane failed (its error wins).
        let Ok(mut buf) = free.recv() else {
            return Ok(());
        };
        let mut len = 0;
        while len < buf.len() {
            match src.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(TransferError::Local {
                        during: "read",
                        path: local.to_path_buf(),
                        error,
                    })
                }
            }
        }
        if len == 0 {
            return Ok(());
        }
        hasher.update(&buf[..len]);
        let offset = *total;
        *total += len as u64;
        if work.send(Piece { offset, buf, len }).is_err() {
            return Ok(());
        }
    }
}

/// What both lanes share.
#[derive(Clone, Copy)]
struct Lane<'a> {
    work: &'a Mutex<Receiver<Piece>>,
    stop: &'a AtomicBool,
    written: &'a AtomicU64,
    events: &'a dyn Events,
}

impl Lane<'_> {
    fn next(&self) -> Option<Piece> {
        if self.stop.load(Ordering::SeqCst) {
            return None;
        }
        let work = self.work.lock().unwrap_or_else(|p| p.into_inner());
        let piece = work.recv().ok()?;
        (!self.stop.load(Ordering::SeqCst)).then_some(piece)
    }

    fn done(&self, piece: &Piece) {
        self.written.fetch_add(piece.len as u64, Ordering::SeqCst);
        self.events.moved(piece.len as u64);
    }

    fn fail(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn write_piece(file: &mut File, piece: &Piece) -> io::Result<()> {
    // Nothing is outstanding between pieces (`write_all` waits for every
    // acknowledgement), so moving the offset is safe.
    file.seek(SeekFrom::Start(piece.offset))?;
    file.write_all(&piece.buf[..piece.len])
}

/// The push's own connection.
fn lane_first(
    remote: &Remote,
    file: &mut File,
    dest: &Path,
    lane: Lane<'_>,
    free: SyncSender<Vec<u8>>,
) -> Result<(), TransferError> {
    while let Some(piece) = lane.next() {
        if let Err(e) = write_piece(file, &piece) {
            lane.fail();
            return Err(write_err(remote, dest, e));
        }
        lane.done(&piece);
        let _ = free.send(piece.buf);
    }
    Ok(())
}

/// How the second lane ended.
enum Ended {
    /// No more pieces.
    Done,
    /// Its connection failed; the piece it was writing, if any, is left.
    Lost(Option<Piece>),
    /// The server refused a write or a flush: the push fails.
    Fatal(TransferError),
}

/// The second connection: writes pieces and fsyncs every STEP. Returns a
/// piece it could not finish because its connection failed.
fn lane_second(
    second: &Second,
    dest: &Path,
    lane: Lane<'_>,
    free: SyncSender<Vec<u8>>,
    read_done: &AtomicBool,
) -> Result<Option<Piece>, TransferError> {
    let Some(mut guard) = second.ready(read_done) else {
        return Ok(None);
    };
    let SecondState::Ready(remote) = &*guard else {
        return Ok(None);
    };
    // Opened without CREATE or TRUNCATE: the first lane made it.
    let mut file = match remote
        .sftp
        .open_mode(dest, OpenFlags::WRITE, 0, OpenType::File)
    {
        Ok(f) => f,
        Err(e) => {
            second.note(format!("it could not open {}: {e}", dest.display()));
            return Ok(None);
        }
    };
    let mut unsynced = 0u64;
    let mut can_sync = true;
    let ended = loop {
        let Some(piece) = lane.next() else {
            break Ended::Done;
        };
        if let Err(e) = write_piece(&mut file, &piece) {
            if io_server_status(&e) {
                break Ended::Fatal(write_err(remote, dest, e));
            }
            break Ended::Lost(Some(piece));
        }
        lane.done(&piece);
        unsynced += piece.len as u64;
        let _ = free.send(piece.buf);
        if can_sync && unsynced >= STEP {
            unsynced = 0;
            match file.fsync() {
                Ok(()) => {}
                // No fsync@openssh.com there: the final fsync is skipped too.
                Err(e) if unsupported(&e) => can_sync = false,
                Err(e) if server_status(&e) => {
                    break Ended::Fatal(remote.err("syncing", dest, e));
                }
                Err(_) => break Ended::Lost(None),
            }
        }
    };
    match ended {
        Ended::Done => Ok(None),
        Ended::Fatal(e) => {
            lane.fail();
            Err(e)
        }
        Ended::Lost(left) => {
            // Later files of this push use the first lane only.
            drop(file);
            *guard = SecondState::Gone;
            second.note(format!("it was lost while sending {}", dest.display()));
            Ok(left)
        }
    }
}
