//! One SFTP session to the remote bundle directory, and the file writes
//! both lanes of a push share.

use super::{Events, RemoteTarget, SshOptions, TransferError, CHUNK, DIR_MODE};
use crate::bundle::{store, MANIFEST};
use crate::host::ssh;
use ssh2::{FileStat, OpenFlags, OpenType, Sftp};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Bound on every blocking SFTP operation once connected.
const SFTP_TIMEOUT_MS: u32 = 120_000;

pub(super) struct Remote {
    pub(super) conn: ssh::Connection,
    pub(super) sftp: Sftp,
    pub(super) target: RemoteTarget,
}

impl Remote {
    pub(super) fn open(target: &RemoteTarget, opts: &SshOptions) -> Result<Remote, TransferError> {
        Remote::connect(&opts.ssh_target(target), target.clone())
    }

    /// An SFTP session to `target` over a new connection.
    pub(super) fn connect(
        ssh: &ssh::SshTarget,
        target: RemoteTarget,
    ) -> Result<Remote, TransferError> {
        let conn = ssh::connect(ssh)?;
        conn.session().set_timeout(SFTP_TIMEOUT_MS);
        let sftp = conn.session().sftp().map_err(|e| TransferError::Sftp {
            endpoint: conn.endpoint().to_string(),
            during: "starting the SFTP subsystem for",
            path: PathBuf::from(&target.path),
            status: None,
            message: format!("{e} (is `Subsystem sftp` enabled in the server's sshd_config?)"),
        })?;
        Ok(Remote { conn, sftp, target })
    }

    pub(super) fn err(&self, during: &'static str, path: &Path, e: ssh2::Error) -> TransferError {
        let status = match e.code() {
            ssh2::ErrorCode::SFTP(n) => Some(n),
            _ => None,
        };
        TransferError::Sftp {
            endpoint: self.conn.endpoint().to_string(),
            during,
            path: path.to_path_buf(),
            status,
            message: e.message().to_string(),
        }
    }

    pub(super) fn stat(&self, path: &Path) -> Result<Option<FileStat>, TransferError> {
        match self.sftp.lstat(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if matches!(e.code(), ssh2::ErrorCode::SFTP(2)) => Ok(None),
            Err(e) => Err(self.err("examining", path, e)),
        }
    }

    /// `mkdir -p` with mode 0700 for what it creates.
    pub(super) fn mkdir_p(&self, path: &Path) -> Result<(), TransferError> {
        let mut missing = Vec::new();
        let mut p = path;
        loop {
            match self.stat(p)? {
                Some(s) if s.is_dir() => break,
                Some(_) => {
                    return Err(TransferError::Sftp {
                        endpoint: self.conn.endpoint().to_string(),
                        during: "creating the directory",
                        path: p.to_path_buf(),
                        status: Some(4),
                        message: "it exists and is not a directory".into(),
                    })
                }
                None => missing.push(p.to_path_buf()),
            }
            match p.parent() {
                Some(parent) if parent != p && !parent.as_os_str().is_empty() => p = parent,
                _ => break,
            }
        }
        for d in missing.iter().rev() {
            self.sftp
                .mkdir(d, DIR_MODE)
                .map_err(|e| self.err("creating the directory", d, e))?;
        }
        Ok(())
    }

    /// Complete bundles (timestamp name, a directory, a manifest), oldest
    /// first, and how many `.incomplete-*` directories there are.
    pub(super) fn complete_bundles(&self) -> Result<(Vec<String>, usize), TransferError> {
        let dir = PathBuf::from(&self.target.path);
        let listing = self
            .sftp
            .readdir(&dir)
            .map_err(|e| self.err("listing", &dir, e))?;
        let entries = listing.into_iter().filter_map(|(path, stat)| {
            Some((path.file_name()?.to_str()?.to_string(), stat.is_dir()))
        });
        let found = store::scan(entries, |name| {
            Ok::<_, TransferError>(
                matches!(self.stat(&dir.join(name).join(MANIFEST))?, Some(s) if s.is_file()),
            )
        })?;
        Ok((found.complete, found.incomplete.len()))
    }

    /// `rm -rf`, never following symlinks.
    pub(super) fn remove_tree(&self, path: &Path) -> Result<(), TransferError> {
        let entries = self
            .sftp
            .readdir(path)
            .map_err(|e| self.err("listing", path, e))?;
        for (p, stat) in entries {
            if stat.file_type().is_dir() {
                self.remove_tree(&p)?;
            } else {
                self.sftp
                    .unlink(&p)
                    .map_err(|e| self.err("removing", &p, e))?;
            }
        }
        self.sftp
            .rmdir(path)
            .map_err(|e| self.err("removing", path, e))
    }
}

/// Removes the remote temporary directory unless disarmed.
pub(super) struct RemoteTmp<'a> {
    pub(super) remote: &'a Remote,
    pub(super) path: PathBuf,
    pub(super) armed: bool,
}

impl Drop for RemoteTmp<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Bounded: a dead connection must not hang the error path.
            self.remote.conn.session().set_timeout(5000);
            let _ = self.remote.remove_tree(&self.path);
        }
    }
}

/// Streams `src` into a new remote file, hashing what is sent; fsyncs it
/// where the server supports `fsync@openssh.com`.
pub(super) fn send(
    remote: &Remote,
    mut src: impl Read,
    local: &Path,
    dest: &Path,
    mode: i32,
    events: &dyn Events,
) -> Result<(String, u64), TransferError> {
    let mut file = create(remote, dest, mode)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(TransferError::Local {
                    during: "read",
                    path: local.to_path_buf(),
                    error,
                })
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| write_err(remote, dest, e))?;
        total += n as u64;
        events.moved(n as u64);
    }
    finish(remote, file, dest)?;
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// Creates `dest`, which must not exist yet.
pub(super) fn create(remote: &Remote, dest: &Path, mode: i32) -> Result<ssh2::File, TransferError> {
    remote
        .sftp
        .open_mode(
            dest,
            OpenFlags::WRITE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE,
            mode,
            OpenType::File,
        )
        .map_err(|e| remote.err("creating", dest, e))
}

/// Servers without `fsync@openssh.com` answer "unsupported" (8).
pub(super) fn unsupported(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::SFTP(8))
}

/// Makes a written file durable (where the server can) and closes it.
pub(super) fn finish(
    remote: &Remote,
    mut file: ssh2::File,
    dest: &Path,
) -> Result<(), TransferError> {
    if let Err(e) = file.fsync() {
        if !unsupported(&e) {
            return Err(remote.err("syncing", dest, e));
        }
    }
    file.close().map_err(|e| remote.err("closing", dest, e))
}

pub(super) fn write_err(remote: &Remote, dest: &Path, e: io::Error) -> TransferError {
    // ssh2 wraps its error in the io::Error: get the SFTP status back.
    let status = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ssh2::Error>())
        .and_then(|se| match se.code() {
            ssh2::ErrorCode::SFTP(n) => Some(n),
            _ => None,
        })
        .or(Some(4));
    TransferError::Sftp {
        endpoint: remote.conn.endpoint().to_string(),
        during: "writing",
        path: dest.to_path_buf(),
        status,
        message: e.to_string(),
    }
}
