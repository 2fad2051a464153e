//! Off-host copies of bundles over SFTP (`push`, `pull`, `backup --push`).
//!
//! The remote side mirrors a local bundle directory: `PATH/<timestamp>/`
//! with the same files. A push writes into `PATH/.incomplete-<name>-…`,
//! hashes every byte it sends and compares it with the manifest, checks
//! every remote size with `stat`, and only then renames the directory to
//! its timestamp name — so a push that fails or is killed never leaves
//! anything that looks complete. `pull` fetches into a local temporary
//! name, runs the full `verify` and renames. The SSH connection (host key
//! pinned in known_hosts, agent then identity file) is the one
//! `remote_service` uses: [`crate::host::ssh::connect`]. Files of 64 MiB and
//! more to an OpenSSH server also use a second connection, and are flushed
//! while they are sent ([`lanes`]).

mod lanes;
pub mod target;

pub use target::{RemoteTarget, SshOptions, TargetError};

use crate::bundle::retention::{self, Policy};
use crate::bundle::{
    parse_bundle_name, Bundle, Manifest, FORMAT_VERSION, INCOMPLETE_PREFIX, LATEST, MANIFEST,
};
use crate::host::ssh::{self, SshError};
use crate::printer::Printer;
use lanes::{Second, BIG};
use ssh2::{FileStat, OpenFlags, OpenType, Sftp};
use std::collections::BTreeSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const CHUNK: usize = 1 << 20;
const DIR_MODE: i32 = 0o700;
const FILE_MODE: i32 = 0o644;
const SENSITIVE_MODE: i32 = 0o600;
/// The largest manifest `pull` reads into memory.
const MAX_MANIFEST: u64 = 256 << 20;
/// Bound on every blocking SFTP operation once connected.
const SFTP_TIMEOUT_MS: u32 = 120_000;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TransferError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] TargetError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Ssh(#[from] SshError),

    #[error("SFTP error on {endpoint} while {during} {}: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::transfer::sftp),
        help("{}", sftp_help(.status))
    )]
    Sftp {
        endpoint: String,
        during: &'static str,
        path: PathBuf,
        status: Option<i32>,
        message: String,
    },

    #[error("cannot {during} {}: {error}", path.display())]
    #[diagnostic(code(imlrecover::transfer::local))]
    Local {
        during: &'static str,
        path: PathBuf,
        error: io::Error,
    },

    #[error("the local bundle is damaged: {rel} does not match its manifest ({detail})")]
    #[diagnostic(
        code(imlrecover::transfer::damaged),
        help("run `imlrecover verify` on it; nothing complete was left on the remote side")
    )]
    LocalDamaged { rel: String, detail: String },

    #[error("{rel} on {endpoint} is {got} bytes after the transfer, {expected} were sent")]
    #[diagnostic(
        code(imlrecover::transfer::remote_size),
        help("the remote file system lost data (full or failing disk?); the incomplete copy was removed")
    )]
    RemoteSize {
        endpoint: String,
        rel: String,
        expected: u64,
        got: u64,
    },

    #[error("{target} holds no complete bundle{}", if .incomplete > &0 { format!(" (only {} incomplete `.incomplete-*` director{} of pushes that did not finish)", .incomplete, if *.incomplete == 1 { "y" } else { "ies" }) } else { String::new() })]
    #[diagnostic(
        code(imlrecover::transfer::no_bundle),
        help("push one first: `imlrecover push BUNDLE {target}` or `imlrecover backup ... --push {target}`")
    )]
    NoBundle { target: String, incomplete: usize },

    #[error("{target} has no complete bundle named `{name}`; it has: {}", if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    #[diagnostic(code(imlrecover::transfer::no_such_bundle))]
    NoSuchBundle {
        target: String,
        name: String,
        available: Vec<String>,
    },

    #[error("the remote manifest {} is unusable: {message}", path.display())]
    #[diagnostic(
        code(imlrecover::transfer::manifest),
        help("the remote copy is damaged or was not written by imlrecover; pull another bundle with --bundle NAME")
    )]
    Manifest { path: PathBuf, message: String },

    #[error("{} already exists; refusing to overwrite a bundle", path.display())]
    #[diagnostic(
        code(imlrecover::transfer::exists),
        help("pull into another directory, or remove the old copy first")
    )]
    LocalExists { path: PathBuf },

    #[error("the pulled bundle {name} does not verify ({} problem{}):\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.join("\n"))]
    #[diagnostic(
        code(imlrecover::transfer::pulled_damaged),
        help("the remote copy is damaged; nothing was kept locally. Pull an older bundle with --bundle NAME")
    )]
    PulledDamaged { name: String, problems: Vec<String> },
}

fn sftp_help(status: &Option<i32>) -> &'static str {
    match status {
        Some(2) => "the path does not exist on the remote side",
        Some(3) => "the remote user may not write there: check ownership and permissions of the target directory",
        Some(4) => "the remote server refused the operation: the remote disk may be full or over quota; the incomplete copy was removed (if the connection still allowed it)",
        Some(7) => "the connection was lost",
        _ => "nothing complete was left on the remote side; retry when the problem is fixed",
    }
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    /// The remote bundle directory.
    pub remote: String,
    pub files: usize,
    pub bytes: u64,
    /// The bundle was already on the remote side: nothing was sent.
    pub already_there: bool,
    /// Remote bundles removed by the retention rules (`--keep-*`).
    pub pruned: Vec<String>,
    /// Big files were to go over a second connection, which failed (why):
    /// they went over the first alone, slower but whole.
    pub one_connection: Option<String>,
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub path: PathBuf,
    pub name: String,
    pub files: usize,
    pub bytes: u64,
}

/// A file of a bundle as it is stored: what push sends and pull fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub rel: String,
    pub size: u64,
    pub blake3: String,
    pub sensitive: bool,
}

/// Every file a bundle stores (manifest.json excluded), each once.
pub fn stored_files(m: &Manifest) -> Vec<StoredFile> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    // A file stored encrypted or split travels as its parts.
    let mut add = |f: StoredFile| match m.stored.get(&f.rel) {
        Some(stored) => {
            for p in &stored.parts {
                if seen.insert(p.file.clone()) {
                    out.push(StoredFile {
                        rel: p.file.clone(),
                        size: p.size,
                        blake3: p.blake3.clone(),
                        sensitive: f.sensitive,
                    });
                }
            }
        }
        None => {
            if seen.insert(f.rel.clone()) {
                out.push(f);
            }
        }
    };
    for e in &m.entries {
        if let (Some(rel), Some(size), Some(hash)) = (&e.file, e.size, &e.blake3) {
            add(StoredFile {
                rel: rel.clone(),
                size,
                blake3: hash.clone(),
                sensitive: e.sensitive,
            });
        }
    }
    if let Some(db) = &m.database {
        add(StoredFile {
            rel: db.file.clone(),
            size: db.size,
            blake3: db.blake3.clone(),
            sensitive: true,
        });
    }
    out
}

struct Remote {
    conn: ssh::Connection,
    sftp: Sftp,
    target: RemoteTarget,
}

impl Remote {
    fn open(target: &RemoteTarget, opts: &SshOptions) -> Result<Remote, TransferError> {
        Remote::connect(&opts.ssh_target(target), target.clone())
    }

    /// An SFTP session to `target` over a new connection.
    fn connect(ssh: &ssh::SshTarget, target: RemoteTarget) -> Result<Remote, TransferError> {
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

    fn err(&self, during: &'static str, path: &Path, e: ssh2::Error) -> TransferError {
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

    fn stat(&self, path: &Path) -> Result<Option<FileStat>, TransferError> {
        match self.sftp.lstat(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if matches!(e.code(), ssh2::ErrorCode::SFTP(2)) => Ok(None),
            Err(e) => Err(self.err("examining", path, e)),
        }
    }

    /// `mkdir -p` with mode 0700 for what it creates.
    fn mkdir_p(&self, path: &Path) -> Result<(), TransferError> {
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
    fn complete_bundles(&self) -> Result<(Vec<String>, usize), TransferError> {
        let dir = PathBuf::from(&self.target.path);
        let listing = self
            .sftp
            .readdir(&dir)
            .map_err(|e| self.err("listing", &dir, e))?;
        let mut found = Vec::new();
        let mut incomplete = 0;
        for (path, stat) in listing {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(INCOMPLETE_PREFIX) {
                incomplete += 1;
                continue;
            }
            let Some(key) = parse_bundle_name(name) else {
                continue;
            };
            if !stat.is_dir() {
                continue;
            }
            if matches!(self.stat(&path.join(MANIFEST))?, Some(s) if s.is_file()) {
                found.push((key, name.to_string()));
            }
        }
        found.sort();
        Ok((found.into_iter().map(|(_, n)| n).collect(), incomplete))
    }

    /// `rm -rf`, never following symlinks.
    fn remove_tree(&self, path: &Path) -> Result<(), TransferError> {
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
struct RemoteTmp<'a> {
    remote: &'a Remote,
    path: PathBuf,
    armed: bool,
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

/// Copies `bundle` to `target` (see the module docs), then applies the
/// retention rules to the complete remote bundles.
pub fn push(
    bundle: &Bundle,
    target: &RemoteTarget,
    opts: &SshOptions,
    retention: Option<&Policy>,
    printer: &Printer,
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
    let tmp_path = target.join(&format!(
        "{INCOMPLETE_PREFIX}{name}-{}-{}",
        hostname(),
        std::process::id()
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
    let bar = printer.bytes_bar(Some(total), "push");
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
                    lanes::send_big(&remote, second, file, &local, &dest, mode, &bar)?
                }
                _ => send(&remote, file, &local, &dest, mode, &bar)?,
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
            sent += send(&remote, &sig[..], &sig_path, &dest, FILE_MODE, &bar)?.1;
        }
        // The manifest last: with it, the copy is whole (but still hidden).
        let dest = tmp_path.join(MANIFEST);
        let (_, n) = send(
            &remote,
            &manifest_bytes[..],
            &manifest_path,
            &dest,
            FILE_MODE,
            &bar,
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
    bar.finish_and_clear();
    result?;
    tmp.armed = false;
    drop(tmp);
    let pruned = prune(&remote, &name, retention)?;
    Ok(Pushed {
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
    let suffix_host = format!("-{}", hostname());
    for (path, stat) in listing {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with(INCOMPLETE_PREFIX) || !stat.is_dir() {
            continue;
        }
        let Some((rest, pid)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if !rest.ends_with(&suffix_host) || pid <= 0 {
            continue;
        }
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
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

/// Streams `src` into a new remote file, hashing what is sent; fsyncs it
/// where the server supports `fsync@openssh.com`.
fn send(
    remote: &Remote,
    mut src: impl Read,
    local: &Path,
    dest: &Path,
    mode: i32,
    bar: &indicatif::ProgressBar,
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
        bar.inc(n as u64);
    }
    finish(remote, file, dest)?;
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// Creates `dest`, which must not exist yet.
fn create(remote: &Remote, dest: &Path, mode: i32) -> Result<ssh2::File, TransferError> {
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
fn unsupported(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::SFTP(8))
}

/// Makes a written file durable (where the server can) and closes it.
fn finish(remote: &Remote, mut file: ssh2::File, dest: &Path) -> Result<(), TransferError> {
    if let Err(e) = file.fsync() {
        if !unsupported(&e) {
            return Err(remote.err("syncing", dest, e));
        }
    }
    file.close().map_err(|e| remote.err("closing", dest, e))
}

fn write_err(remote: &Remote, dest: &Path, e: io::Error) -> TransferError {
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
        let hidden = remote.target.join(&format!(
            "{INCOMPLETE_PREFIX}pruning-{old}-{}",
            std::process::id()
        ));
        remote
            .sftp
            .rename(&path, &hidden, None)
            .map_err(|e| remote.err("renaming an old bundle for removal:", &path, e))?;
        remote.remove_tree(&hidden)?;
        pruned.push(path.display().to_string());
    }
    Ok(pruned)
}

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
    printer: &Printer,
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
    let tmp_path = dir.join(format!("{INCOMPLETE_PREFIX}{name}-{}", std::process::id()));
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

    let bar = printer.bytes_bar(Some(total), "pull");
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
                bar.inc(n as u64);
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
    bar.finish_and_clear();
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
    update_latest(&dir, &name).map_err(local_err("update", &dir.join(LATEST)))?;
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

/// Points `dir/latest` at `name` (a fresh symlink renamed over the old one),
/// unless `latest` already names a newer bundle.
fn update_latest(dir: &Path, name: &str) -> io::Result<()> {
    let latest = dir.join(LATEST);
    if let Ok(cur) = std::fs::read_link(&latest) {
        let cur = cur.to_string_lossy().into_owned();
        if let (Some(a), Some(b)) = (parse_bundle_name(&cur), parse_bundle_name(name)) {
            if a > b && dir.join(&cur).join(MANIFEST).is_file() {
                return Ok(());
            }
        }
    } else if latest.symlink_metadata().is_ok() {
        return Err(io::Error::other("`latest` exists and is not a symlink"));
    }
    let tmp = dir.join(format!(".{LATEST}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, &latest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
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
