//! One command at a time changes or captures a host's restore state: apply
//! and backup take an exclusive `flock` on `<root>/var/lib/imlrecover/lock`,
//! which holds the holder's pid. A second one refuses at once, naming the
//! first (its command read from /proc), or waits up to `--wait DURATION`.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error("another imlrecover {command} (pid {pid}) holds the lock {path}{waited}")]
    #[diagnostic(
        code(imlrecover::locked),
        help("nothing was done; wait for it to finish, or pass --wait DURATION to wait for it (the lock is released when that process ends, even if it is killed)")
    )]
    Held {
        path: String,
        pid: String,
        /// `apply`, `backup`, or `command` when it cannot be told.
        command: String,
        /// Empty, or how long we waited.
        waited: String,
    },
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
    acquire_waiting(dir, None, |_| {})
}

/// [`acquire`], waiting up to `wait` when it is held; `waiting` is told
/// once who holds it (the error [`acquire`] would have returned).
pub fn acquire_waiting(
    dir: &Path,
    wait: Option<std::time::Duration>,
    mut waiting: impl FnMut(&LockError),
) -> Result<Lock, LockError> {
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        match try_acquire(dir) {
            Err(held @ LockError::Held { .. }) => match wait {
                Some(limit) if started.elapsed() < limit => {
                    if !told {
                        waiting(&held);
                        told = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Some(limit) => {
                    return Err(match held {
                        LockError::Held {
                            path, pid, command, ..
                        } => LockError::Held {
                            path,
                            pid,
                            command,
                            waited: format!(
                                " (still, after waiting {})",
                                humantime::format_duration(limit)
                            ),
                        },
                        other => other,
                    })
                }
                None => return Err(held),
            },
            other => return other,
        }
    }
}

/// The pid of another process holding the lock now, if any: read-only
/// (a plan asks, to tell a restore in progress from an interrupted one).
pub fn holder(dir: &Path) -> Option<String> {
    let file = File::open(dir.join("lock")).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => None,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim().to_string();
            (pid != std::process::id().to_string()).then_some(pid)
        }
    }
}

/// Which imlrecover subcommand a process runs, from its command line.
fn command_of(pid: &str) -> String {
    let args = pid
        .parse::<u32>()
        .ok()
        .and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .unwrap_or_default();
    args.split(|b| *b == 0)
        .skip(1)
        .map(String::from_utf8_lossy)
        .find(|a| a == "apply" || a == "backup")
        .map(|a| a.into_owned())
        .unwrap_or_else(|| "command".into())
}

fn try_acquire(dir: &Path) -> Result<Lock, LockError> {
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
            let pid = pid.trim().to_string();
            return Err(LockError::Held {
                path: shown,
                command: command_of(&pid),
                pid,
                waited: String::new(),
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
        let started = std::time::Instant::now();
        let mut told = 0;
        let waited = acquire_waiting(
            dir.path(),
            Some(std::time::Duration::from_millis(300)),
            |_| told += 1,
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(told, 1);
        match waited {
            Err(e @ LockError::Held { .. }) => {
                assert!(e.to_string().contains("after waiting 300ms"), "{e}")
            }
            other => panic!("expected Held, got {:?}", other.err()),
        }
        drop(first);
        assert!(acquire(dir.path()).is_ok());
    }
}
