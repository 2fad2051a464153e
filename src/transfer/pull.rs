//! `pull`: the newest (or a named) remote bundle into a local directory,
//! verified in full before it gets its name.

use super::remote::Remote;
use super::{
    stored_files, Events, Pulled, RemoteTarget, SshOptions, TransferError, CHUNK, DIR_MODE,
    FILE_MODE, SENSITIVE_MODE,
};
use crate::bundle::{store, Bundle, Manifest, FORMAT_VERSION, LATEST, MANIFEST};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest manifest `pull` reads into memory.
const MAX_MANIFEST: u64 = 256 << 20;

/// The local temporary directory of a pull; removed unless committed.
struct LocalTmp {
    path: PathBuf,
    armed: bool,
}

impl Drop for LocalTmp {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Fetches the newest complete bundle (or `name`) into `dir/<name>`,
/// verifies it in full, then renames it into place and points
/// `dir/latest` at it.
pub fn pull(
    target: &RemoteTarget,
    dir: &Path,
    name: Option<&str>,
    opts: &SshOptions,
    events: &dyn Events,
) -> Result<Pulled, TransferError> {
    let remote = Remote::open(target, opts)?;
    let (available, incomplete) = remote.complete_bundles()?;
    let name = match name {
        Some(n) => {
            if !available.iter().any(|a| a == n) {
                return Err(TransferError::NoSuchBundle {
                    target: target.to_string(),
                    name: n.to_string(),
                    available,
                });
            }
            n.to_string()
        }
        None => available
            .last()
            .cloned()
            .ok_or_else(|| TransferError::NoBundle {
                target: target.to_string(),
                incomplete,
            })?,
    };
    let remote_dir = target.join(&name);
    let manifest_remote = remote_dir.join(MANIFEST);
    let mut manifest_bytes = Vec::new();
    remote
        .sftp
        .open(&manifest_remote)
        .map_err(|e| remote.err("opening", &manifest_remote, e))?
        .take(MAX_MANIFEST)
        .read_to_end(&mut manifest_bytes)
        .map_err(|e| TransferError::Sftp {
            endpoint: remote.conn.endpoint().to_string(),
            during: "reading",
            path: manifest_remote.clone(),
            status: None,
            message: e.to_string(),
        })?;
    let manifest = parse_manifest(&manifest_bytes, &manifest_remote)?;
    let files = stored_files(&manifest);
    let total: u64 = files.iter().map(|f| f.size).sum();

    let local_err = |during, path: &Path| {
        let path = path.to_path_buf();
        move |error| TransferError::Local {
            during,
            path,
            error,
        }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE as u32)
        .create(dir)
        .map_err(local_err("create", dir))?;
    let dir = std::fs::canonicalize(dir).map_err(local_err("open", dir))?;
    let final_path = dir.join(&name);
    if final_path.symlink_metadata().is_ok() {
        return Err(TransferError::LocalExists { path: final_path });
    }
    let tmp_path = dir.join(store::incomplete_name(&name, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp_path);
    DirBuilder::new()
        .mode(DIR_MODE as u32)
        .create(&tmp_path)
        .map_err(local_err("create", &tmp_path))?;
    std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(DIR_MODE as u32))
        .map_err(local_err("chmod", &tmp_path))?;
    let mut tmp = LocalTmp {
        path: tmp_path.clone(),
        armed: true,
    };

    events.started("pull", total);
    let fetched = (|| -> Result<u64, TransferError> {
        let mut got = 0u64;
        for f in &files {
            let dest = crate::bundle::read::safe_join(&tmp_path, &f.rel).map_err(|e| {
                TransferError::Manifest {
                    path: manifest_remote.clone(),
                    message: format!("refusing {}: {e}", f.rel),
                }
            })?;
            if let Some(parent) = dest.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE as u32)
                    .create(parent)
                    .map_err(local_err("create", parent))?;
            }
            let src = remote_dir.join(&f.rel);
            let mut rf = remote
                .sftp
                .open(&src)
                .map_err(|e| remote.err("opening", &src, e))?;
            let mode = if f.sensitive {
                SENSITIVE_MODE
            } else {
                FILE_MODE
            } as u32;
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&dest)
                .map_err(local_err("create", &dest))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match rf.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(TransferError::Sftp {
                            endpoint: remote.conn.endpoint().to_string(),
                            during: "reading",
                            path: src.clone(),
                            status: None,
                            message: e.to_string(),
                        })
                    }
                };
                out.write_all(&buf[..n])
                    .map_err(local_err("write", &dest))?;
                events.moved(n as u64);
                got += n as u64;
            }
            out.sync_all().map_err(local_err("write", &dest))?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                .map_err(local_err("chmod", &dest))?;
        }
        let sig_remote = remote_dir.join(crate::bundle::sign::SIGNATURE);
        if matches!(remote.stat(&sig_remote)?, Some(s) if s.is_file()) {
            let mut sig = Vec::new();
            let f = remote
                .sftp
                .open(&sig_remote)
                .map_err(|e| remote.err("opening", &sig_remote, e))?;
            f.take(crate::bundle::sign::SIGNATURE_CAP)
                .read_to_end(&mut sig)
                .map_err(|e| TransferError::Sftp {
                    endpoint: remote.conn.endpoint().to_string(),
                    during: "reading",
                    path: sig_remote.clone(),
                    status: None,
                    message: e.to_string(),
                })?;
            let spath = tmp_path.join(crate::bundle::sign::SIGNATURE);
            std::fs::write(&spath, &sig).map_err(local_err("write", &spath))?;
        }
        let mpath = tmp_path.join(MANIFEST);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE as u32)
            .open(&mpath)
            .map_err(local_err("create", &mpath))?;
        out.write_all(&manifest_bytes)
            .and_then(|()| out.sync_all())
            .map_err(local_err("write", &mpath))?;
        Ok(got)
    })();
    events.ended();
    let bytes = fetched?;

    let pulled = Bundle {
        dir: tmp_path.clone(),
        manifest,
    };
    let report = crate::bundle::check::check(&pulled, None);
    if !report.problems.is_empty() {
        return Err(TransferError::PulledDamaged {
            name,
            problems: report.problems.iter().map(|p| format!("  {p}")).collect(),
        });
    }
    rename_noreplace(&tmp_path, &final_path)?;
    tmp.armed = false;
    let _ = File::open(&dir).and_then(|d| d.sync_all());
    store::update_latest_unless_newer(&dir, &name)
        .map_err(local_err("update", &dir.join(LATEST)))?;
    Ok(Pulled {
        path: final_path,
        name,
        files: files.len() + 1,
        bytes,
    })
}

fn parse_manifest(bytes: &[u8], path: &Path) -> Result<Manifest, TransferError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    if let Ok(v) = serde_json::from_slice::<Version>(bytes) {
        if v.format_version > FORMAT_VERSION {
            return Err(TransferError::Manifest {
                path: path.to_path_buf(),
                message: format!(
                    "format_version {} was written by a newer imlrecover (this one reads up to {FORMAT_VERSION}); upgrade imlrecover",
                    v.format_version
                ),
            });
        }
    }
    serde_json::from_slice(bytes).map_err(|e| TransferError::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<(), TransferError> {
    let err = |error: io::Error| TransferError::Local {
        during: "rename into place",
        path: to.to_path_buf(),
        error,
    };
    match crate::host::rename::renameat2_noreplace(from, to) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOSYS) => {
            if to.symlink_metadata().is_ok() {
                return Err(TransferError::LocalExists {
                    path: to.to_path_buf(),
                });
            }
            std::fs::rename(from, to).map_err(err)
        }
        Err(nix::errno::Errno::EEXIST) => Err(TransferError::LocalExists {
            path: to.to_path_buf(),
        }),
        Err(e) => Err(err(io::Error::from(e))),
    }
}
