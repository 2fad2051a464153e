//! One apply at a time per host: an exclusive `flock` on
//! `<root>/var/lib/imlrecover/lock`, holding the holder's pid.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error("another imlrecover apply (pid {pid}) holds the lock {path}")]
    #[diagnostic(
        code(imlrecover::locked),
        help("wait for it to finish; if that process is gone, the lock is released with it and you can run apply again")
    )]
    Held { path: String, pid: String },
    #[error("cannot take the lock {path}: {source}")]
    #[diagnostic(code(imlrecover::lock))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Released when dropped (and by the kernel if we die).
pub struct Lock {
    _file: Flock<File>,
}

pub fn acquire(dir: &Path) -> Result<Lock, LockError> {
    let path = dir.join("lock");
    let shown = path.display().to_string();
    let io = |source| LockError::Io {
        path: shown.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        // Never write a pid through a symlink someone put there.
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io)?;
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Held {
                path: shown,
                pid: pid.trim().to_string(),
            });
        }
    };
    locked.set_len(0).map_err(io)?;
    locked.rewind().map_err(io)?;
    write!(locked, "{}", std::process::id()).map_err(io)?;
    locked.sync_all().map_err(io)?;
    Ok(Lock { _file: locked })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open
        // in the same process conflicts like another process would.
        match acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Held, got {:?}", other.err()),
        }
        drop(first);
        assert!(acquire(dir.path()).is_ok());
    }
}
