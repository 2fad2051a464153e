//! `push`: a bundle to the remote directory, hidden until every byte and
//! size is checked, then the remote retention rules.

use super::lanes::{self, Second, BIG};
use super::remote::{send, Remote, RemoteTmp};
use super::{
    stored_files, Events, Pushed, RemoteTarget, SshOptions, TransferError, DIR_MODE, FILE_MODE,
    SENSITIVE_MODE,
};
use crate::bundle::retention::{self, Policy};
use crate::bundle::{store, Bundle, MANIFEST};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Opens the bundle at `path` (a bundle, `DIR/latest` or `DIR`), pushes it
/// and records the push metrics: what `push` and `backup --push` share.
pub fn push_path(
    path: &Path,
    target: &RemoteTarget,
    opts: &SshOptions,
    retention: Option<&Policy>,
    events: &dyn Events,
) -> Result<Pushed, TransferError> {
    let bundle = Bundle::open(path)?;
    let pushed = push(&bundle, target, opts, retention, events)?;
    crate::metrics::record(crate::metrics::Family::gauge(
        "imlrecover_push_bytes",
        "Bytes the last successful push sent (0 when the bundle was already there).",
        pushed.bytes as f64,
    ));
    crate::metrics::record(crate::metrics::Family::gauge(
        "imlrecover_push_files",
        "Files the last successful push sent.",
        pushed.files as f64,
    ));
    Ok(pushed)
}

/// Copies `bundle` to `target` (see the module docs), then applies the
/// retention rules to the complete remote bundles.
pub fn push(
    bundle: &Bundle,
    target: &RemoteTarget,
    opts: &SshOptions,
    retention: Option<&Policy>,
    events: &dyn Events,
) -> Result<Pushed, TransferError> {
    let name = bundle.name();
    let files = stored_files(&bundle.manifest);
    let manifest_path = bundle.dir.join(MANIFEST);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|error| TransferError::Local {
        during: "read",
        path: manifest_path.clone(),
        error,
    })?;
    let total: u64 = files.iter().map(|f| f.size).sum::<u64>() + manifest_bytes.len() as u64;

    let remote = Remote::open(target, opts)?;
    remote.mkdir_p(Path::new(&target.path))?;
    remove_stale_incomplete(&remote);
    let final_dir = target.join(&name);
    if remote.stat(&final_dir)?.is_some() {
        if matches!(remote.stat(&final_dir.join(MANIFEST))?, Some(s) if s.is_file()) {
            let pruned = prune(&remote, &name, retention)?;
            return Ok(Pushed {
                name,
                remote: final_dir.display().to_string(),
                files: 0,
                bytes: 0,
                already_there: true,
                pruned,
                one_connection: None,
            });
        }
        return Err(TransferError::Sftp {
            endpoint: remote.conn.endpoint().to_string(),
            during: "preparing",
            path: final_dir,
            status: Some(4),
            message: "something that is not a complete bundle already has this bundle's name"
                .into(),
        });
    }
    let tmp_path = target.join(&store::incomplete_push_name(
        &name,
        &hostname(),
        std::process::id(),
    ));
    remote
        .sftp
        .mkdir(&tmp_path, DIR_MODE)
        .map_err(|e| remote.err("creating the directory", &tmp_path, e))?;
    let mut tmp = RemoteTmp {
        remote: &remote,
        path: tmp_path.clone(),
        armed: true,
    };

    // Big files go over two connections (see `lanes`), to OpenSSH servers
    // only: their sftp-server writes at any offset and has fsync@openssh.com;
    // some others (object-store gateways) accept only sequential writes.
    let openssh = remote
        .conn
        .session()
        .banner()
        .is_some_and(|b| b.starts_with("SSH-2.0-OpenSSH"));
    let second = (openssh && files.iter().any(|f| f.size >= BIG))
        .then(|| Second::start(remote.conn.target().clone(), target.clone()));
    events.started("push", total);
    let mut made_dirs = BTreeSet::new();
    let mut sent = 0u64;
    let result = (|| -> Result<(), TransferError> {
        for f in &files {
            let local = bundle
                .file(&f.rel)
                .map_err(|e| TransferError::LocalDamaged {
                    rel: f.rel.clone(),
                    detail: e.to_string(),
                })?;
            let dest = tmp_path.join(&f.rel);
            if let Some(parent) = dest.parent() {
                mkdirs_below(&remote, &tmp_path, parent, &mut made_dirs)?;
            }
            let file = File::open(&local).map_err(|error| TransferError::Local {
                during: "read",
                path: local.clone(),
                error,
            })?;
            let mode = if f.sensitive {
                SENSITIVE_MODE
            } else {
                FILE_MODE
            };
            let (hash, n) = match &second {
                Some(second) if f.size >= BIG => {
                    lanes::send_big(&remote, second, file, &local, &dest, mode, events)?
                }
                _ => send(&remote, file, &local, &dest, mode, events)?,
            };
            if hash != f.blake3 || n != f.size {
                return Err(TransferError::LocalDamaged {
                    rel: f.rel.clone(),
                    detail: format!(
                        "{n} bytes with blake3 {hash}, the manifest says {} bytes with {}",
                        f.size, f.blake3
                    ),
                });
            }
            sent += n;
        }
        // The signature travels with the manifest it signs (#22).
        let sig_path = bundle.dir.join(crate::bundle::sign::SIGNATURE);
        if let Some(sig) = crate::bundle::sign::read_signature(&bundle.dir).map_err(|error| {
            TransferError::Local {
                during: "read",
                path: sig_path.clone(),
                error,
            }
        })? {
            let dest = tmp_path.join(crate::bundle::sign::SIGNATURE);
            sent += send(&remote, &sig[..], &sig_path, &dest, FILE_MODE, events)?.1;
        }
        // The manifest last: with it, the copy is whole (but still hidden).
        let dest = tmp_path.join(MANIFEST);
        let (_, n) = send(
            &remote,
            &manifest_bytes[..],
            &manifest_path,
            &dest,
            FILE_MODE,
            events,
        )?;
        sent += n;
        // What arrived: every remote size, read back with stat.
        for (rel, size) in files
            .iter()
            .map(|f| (f.rel.as_str(), f.size))
            .chain(std::iter::once((MANIFEST, manifest_bytes.len() as u64)))
        {
            let p = tmp_path.join(rel);
            let got = remote
                .sftp
                .stat(&p)
                .map_err(|e| remote.err("checking", &p, e))?
                .size
                .unwrap_or(0);
            if got != size {
                return Err(TransferError::RemoteSize {
                    endpoint: remote.conn.endpoint().to_string(),
                    rel: rel.to_string(),
                    expected: size,
                    got,
                });
            }
        }
        remote
            .sftp
            .rename(&tmp_path, &final_dir, None)
            .map_err(|e| remote.err("renaming the complete copy to", &final_dir, e))?;
        Ok(())
    })();
    events.ended();
    result?;
    tmp.armed = false;
    drop(tmp);
    let pruned = prune(&remote, &name, retention)?;
    Ok(Pushed {
        name,
        remote: final_dir.display().to_string(),
        files: files.len() + 1,
        bytes: sent,
        already_there: false,
        pruned,
        one_connection: second.and_then(|s| s.fell_back()),
    })
}

/// `.incomplete-*` directories left on the remote side by pushes from this
/// host that were killed (their pid is gone): removed, as `backup` does
/// locally. Other hosts' and live pushes' directories are left alone.
fn remove_stale_incomplete(remote: &Remote) {
    let dir = PathBuf::from(&remote.target.path);
    let Ok(listing) = remote.sftp.readdir(&dir) else {
        return;
    };
    let host = hostname();
    for (path, stat) in listing {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !stat.is_dir() {
            continue;
        }
        let Some(pid) = store::incomplete_push_owner(name, &host) else {
            continue;
        };
        if store::owner_is_gone(pid) {
            let _ = remote.remove_tree(&path);
        }
    }
}

fn mkdirs_below(
    remote: &Remote,
    top: &Path,
    dir: &Path,
    made: &mut BTreeSet<PathBuf>,
) -> Result<(), TransferError> {
    if dir == top || made.contains(dir) {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if parent.starts_with(top) {
            mkdirs_below(remote, top, parent, made)?;
        }
    }
    remote
        .sftp
        .mkdir(dir, DIR_MODE)
        .map_err(|e| remote.err("creating the directory", dir, e))?;
    made.insert(dir.to_path_buf());
    Ok(())
}

/// Applies the retention rules to the complete remote bundles; the one
/// just pushed (every byte of it checked on arrival) is the known-good
/// bundle the rules never remove. `.incomplete-*` copies are not candidates.
fn prune(
    remote: &Remote,
    newest: &str,
    retention: Option<&Policy>,
) -> Result<Vec<String>, TransferError> {
    let Some(policy) = retention.filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    let (all, _) = remote.complete_bundles()?;
    let mut pruned = Vec::new();
    for d in retention::decide(&all, policy, Some(newest)) {
        if d.keep() {
            continue;
        }
        let old = d.name;
        let path = remote.target.join(&old);
        // Hide it first, so a half-removed bundle never looks complete.
        let hidden = remote
            .target
            .join(&store::pruning_name(&old, std::process::id()));
        remote
            .sftp
            .rename(&path, &hidden, None)
            .map_err(|e| remote.err("renaming an old bundle for removal:", &path, e))?;
        remote.remove_tree(&hidden)?;
        pruned.push(path.display().to_string());
    }
    Ok(pruned)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .unwrap_or_else(|| "host".into())
}
