//! Replacing files on the host so that a crash at any instant leaves either
//! the old file or the new one, never a mix: write a temporary file in the
//! same directory, set owner and mode, fsync, check its hash, rename over
//! the target, fsync the directory.

use super::fs::{HashingWriter, Root};
use nix::unistd::{Gid, Group, Uid, User};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the bundle's content does not match its manifest hash (expected blake3 {expected}, read {actual}); the file was not replaced")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: unknown {what} `{name}` on this host")]
    UnknownId {
        path: String,
        what: &'static str,
        name: String,
    },
}

/// The uid for an owner name, else the recorded uid.
pub fn uid_for(
    path: &str,
    name: Option<&str>,
    recorded: Option<u32>,
) -> Result<Option<u32>, AtomicError> {
    id_for(path, "user", name, recorded, |n| {
        User::from_name(n).ok().flatten().map(|u| u.uid.as_raw())
    })
}

/// The gid for a group name, else the recorded gid.
pub fn gid_for(
    path: &str,
    name: Option<&str>,
    recorded: Option<u32>,
) -> Result<Option<u32>, AtomicError> {
    id_for(path, "group", name, recorded, |n| {
        Group::from_name(n).ok().flatten().map(|g| g.gid.as_raw())
    })
}

/// Names win over recorded ids (ids differ between installs); a numeric
/// "name" is an id; an unknown name is an error, never root by accident.
fn id_for(
    path: &str,
    what: &'static str,
    name: Option<&str>,
    recorded: Option<u32>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Result<Option<u32>, AtomicError> {
    match name {
        Some(n) if n.chars().all(|c| c.is_ascii_digit()) => Ok(n.parse().ok()),
        Some(n) => lookup(n).map(Some).ok_or_else(|| AtomicError::UnknownId {
            path: path.into(),
            what,
            name: n.into(),
        }),
        None => Ok(recorded),
    }
}

pub struct Target<'a> {
    /// The recipe path (`/etc/ntp.conf`).
    pub path: &'a str,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The content must hash to this, or nothing is replaced.
    pub blake3: &'a str,
}

/// Writes `content` to `t.path` under `root` atomically; returns bytes written.
pub fn write(root: &Root, t: &Target, mut content: impl Read) -> Result<u64, AtomicError> {
    let io_err = |source| AtomicError::Io {
        path: t.path.to_string(),
        source,
    };
    let dest = root
        .path_nofollow(t.path)
        .map_err(|e| io_err(io::Error::other(e.to_string())))?;
    let dir = dest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.dir().to_path_buf());
    fs::create_dir_all(&dir).map_err(io_err)?;
    let tmp = temp_name(&dest);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        let mut w = HashingWriter::new(file);
        io::copy(&mut content, &mut w).map_err(io_err)?;
        let (file, hash, len) = w.finish();
        if hash != t.blake3 {
            return Err(AtomicError::HashMismatch {
                path: t.path.to_string(),
                expected: t.blake3.to_string(),
                actual: hash,
            });
        }
        if t.uid.is_some() || t.gid.is_some() {
            nix::unistd::fchown(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                t.uid.map(Uid::from_raw),
                t.gid.map(Gid::from_raw),
            )
            .map_err(|e| io_err(io::Error::from(e)))?;
        }
        // After chown, which clears set-id bits.
        file.set_permissions(fs::Permissions::from_mode(t.mode))
            .map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        fs::rename(&tmp, &dest).map_err(io_err)?;
        sync_dir(&dir).map_err(io_err)?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.imlrecover-{}", std::process::id()))
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies the live file at `path` (if any) to `into/<path>` before it is
/// replaced or removed, so the run directory keeps the only other copy.
pub fn keep_previous(root: &Root, path: &str, into: &Path) -> Result<Option<PathBuf>, AtomicError> {
    let io_err = |source| AtomicError::Io {
        path: path.to_string(),
        source,
    };
    let Some((mut file, _)) = root
        .open(path)
        .map_err(|e| io_err(io::Error::other(e.to_string())))?
    else {
        return Ok(None);
    };
    let dest = into.join(path.trim_start_matches('/'));
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err)?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&dest)
        .map_err(io_err)?;
    io::copy(&mut file, &mut out).map_err(io_err)?;
    out.sync_all().map_err(io_err)?;
    Ok(Some(dest))
}

/// Removes `path` (after `keep_previous`); a missing file is fine.
pub fn remove(root: &Root, path: &str) -> Result<(), AtomicError> {
    let io_err = |source| AtomicError::Io {
        path: path.to_string(),
        source,
    };
    let host = root
        .path_nofollow(path)
        .map_err(|e| io_err(io::Error::other(e.to_string())))?;
    match fs::remove_file(&host) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    }
    if let Some(dir) = host.parent() {
        sync_dir(dir).map_err(io_err)?;
    }
    Ok(())
}

/// Replaces a small file of imlrecover's own (the drill record, a metrics
/// file) in one step: a temporary file beside it (a hidden name no
/// `*.prom` glob matches), fsync, rename over `dest`, fsync the directory.
pub fn replace_small(dest: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let tmp = temp_name(dest);
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}
