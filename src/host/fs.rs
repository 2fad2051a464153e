//! The filesystem under `--root` (like `rpm --root`): every absolute path a
//! recipe names is looked up inside the root, and symlinks are resolved as if
//! the root were `/`, so that nothing a recipe or a host tree says can make us
//! read or write outside it.

use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Symlink hops allowed while resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Read buffer for streaming: big enough for blake3's SIMD paths, small
/// enough to keep memory flat whatever the file size.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FsError {
    #[error("the root directory {} does not exist or is not a directory", .0.display())]
    #[diagnostic(
        code(imlrecover::root),
        help("--root names the directory the recipe's absolute paths live under; use / on the real host")
    )]
    BadRoot(PathBuf),
    #[error("too many levels of symbolic links resolving {path} under {}", root.display())]
    #[diagnostic(code(imlrecover::symlink_loop))]
    Loop { root: PathBuf, path: String },
    #[error("cannot read {}: {error}", path.display())]
    #[diagnostic(code(imlrecover::io))]
    Io { path: PathBuf, error: io::Error },
}

impl FsError {
    pub fn io(path: impl Into<PathBuf>, error: io::Error) -> FsError {
        FsError::Io {
            path: path.into(),
            error,
        }
    }
}

/// The directory that stands for `/`.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    /// The root opened `O_PATH`, for `openat2(RESOLVE_IN_ROOT)`: the kernel
    /// then confines the lookup in one call instead of one lstat per
    /// component (thousands of files in a `files` set).
    fd: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

/// What `stat` says about a file, with names for its owner and group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `None` when the id has no name in the user database.
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::File => "regular file",
            FileKind::Dir => "directory",
            FileKind::Symlink => "symbolic link",
            FileKind::Other => "special file",
        })
    }
}

impl Meta {
    pub fn from_std(m: &std::fs::Metadata) -> Meta {
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_file() {
            FileKind::File
        } else if ft.is_dir() {
            FileKind::Dir
        } else {
            FileKind::Other
        };
        Meta {
            kind,
            size: m.len(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            owner: user_name(m.uid()),
            group: group_name(m.gid()),
        }
    }
}

/// Names of ids, cached: each lookup reads the user database, and a
/// `files` set of thousands has the same few owners.
type NameCache = std::sync::Mutex<std::collections::HashMap<(bool, u32), Option<String>>>;

fn cached(is_user: bool, id: u32, look: impl FnOnce() -> Option<String>) -> Option<String> {
    static CACHE: std::sync::OnceLock<NameCache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache
        .lock()
        .ok()
        .and_then(|c| c.get(&(is_user, id)).cloned())
    {
        return hit;
    }
    let name = look();
    if let Ok(mut c) = cache.lock() {
        c.insert((is_user, id), name.clone());
    }
    name
}

pub fn user_name(uid: u32) -> Option<String> {
    cached(true, uid, || {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    })
}

pub fn group_name(gid: u32) -> Option<String> {
    cached(false, gid, || {
        Group::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
    })
}

impl Root {
    /// Refuses a root that does not exist: a typo in `--root` must not turn
    /// into "every file is missing".
    pub fn new(dir: impl AsRef<Path>) -> Result<Root, FsError> {
        let dir = dir.as_ref();
        match std::fs::canonicalize(dir) {
            Ok(abs) if abs.is_dir() => {
                let fd = nix::fcntl::open(
                    &abs,
                    nix::fcntl::OFlag::O_PATH
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .ok()
                // SAFETY: `open` just returned this descriptor and nothing else owns it.
                .map(|raw| {
                    std::sync::Arc::new(unsafe {
                        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw)
                    })
                });
                Ok(Root { dir: abs, fd })
            }
            _ => Err(FsError::BadRoot(dir.to_path_buf())),
        }
    }

    /// `openat2(RESOLVE_IN_ROOT)`: `Some(Ok(None))` when the path does not
    /// exist, `None` when the kernel cannot do it (then resolve by hand).
    fn open_in_root(&self, path: &str) -> Option<Result<Option<File>, FsError>> {
        use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
        use std::os::fd::{AsRawFd, FromRawFd};
        let fd = self.fd.as_ref()?;
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let how = OpenHow::new()
            // O_NONBLOCK: a FIFO at a recipe path must not hang us (the
            // caller sees its type); reads of regular files ignore it.
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(fd.as_raw_fd(), rel, how) {
            // SAFETY: a fresh descriptor from openat2, owned by the File now.
            Ok(raw) => Some(Ok(Some(unsafe { File::from_raw_fd(raw) }))),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => Some(Ok(None)),
            Err(
                nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM | nix::errno::Errno::EXDEV,
            ) => None,
            Err(e) => Some(Err(FsError::io(
                self.dir.join(rel),
                std::io::Error::from(e),
            ))),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host path for a recipe path, following symlinks inside the root.
    pub fn path(&self, path: &str) -> Result<PathBuf, FsError> {
        self.resolve(path, true)
    }

    /// As [`Root::path`], but a symlink in the last component is not
    /// followed (for replacing or removing the link itself).
    pub fn path_nofollow(&self, path: &str) -> Result<PathBuf, FsError> {
        self.resolve(path, false)
    }

    /// Resolves like the kernel would if `self.dir` were `/`: `..` stops at
    /// the root and absolute link targets restart from the root.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, FsError> {
        let mut pending: Vec<OsString> = components(Path::new(path));
        pending.reverse(); // a stack: the next component is at the end
        let mut done: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            let candidate = self.join(&done).join(&c);
            let last = pending.is_empty();
            match std::fs::symlink_metadata(&candidate) {
                Ok(m) if m.file_type().is_symlink() && (follow_last || !last) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(FsError::Loop {
                            root: self.dir.clone(),
                            path: path.to_string(),
                        });
                    }
                    let target =
                        std::fs::read_link(&candidate).map_err(|e| FsError::io(&candidate, e))?;
                    if target.is_absolute() {
                        done.clear();
                    }
                    let mut more = components(&target);
                    more.reverse();
                    pending.extend(more);
                }
                // Missing components resolve lexically: the caller gets
                // "not found" when it opens the result.
                _ => done.push(c),
            }
        }
        Ok(self.join(&done))
    }

    fn join(&self, parts: &[OsString]) -> PathBuf {
        let mut p = self.dir.clone();
        p.extend(parts);
        p
    }

    /// `stat` (following links inside the root); `None` when it does not exist.
    pub fn metadata(&self, path: &str) -> Result<Option<Meta>, FsError> {
        let host = self.path(path)?;
        match std::fs::metadata(&host) {
            Ok(m) => Ok(Some(Meta::from_std(&m))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(FsError::io(host, e)),
        }
    }

    /// Opens a file for reading; `None` when it does not exist.
    pub fn open(&self, path: &str) -> Result<Option<(File, Meta)>, FsError> {
        if let Some(opened) = self.open_in_root(path) {
            let Some(file) = opened? else { return Ok(None) };
            let meta = file
                .metadata()
                .map_err(|e| FsError::io(self.dir.join(path.trim_start_matches('/')), e))?;
            return Ok(Some((file, Meta::from_std(&meta))));
        }
        let host = self.path(path)?;
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&host)
        {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(FsError::io(host, e)),
        };
        // fstat the handle we read, so size and content agree.
        let meta = file.metadata().map_err(|e| FsError::io(&host, e))?;
        Ok(Some((file, Meta::from_std(&meta))))
    }

    /// Regular files matching a glob such as `/etc/yum.repos.d/*`, as
    /// absolute recipe paths, sorted. Wildcards match within one component;
    /// hidden files match only a pattern that starts with `.`.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>, FsError> {
        let parts: Vec<String> = components(Path::new(pattern))
            .into_iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let mut found = Vec::new();
        self.glob_walk(String::new(), &parts, &mut found)?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    fn glob_walk(
        &self,
        prefix: String,
        rest: &[String],
        out: &mut Vec<String>,
    ) -> Result<(), FsError> {
        let Some((first, rest)) = rest.split_first() else {
            if let Some(m) = self.metadata(&prefix)? {
                if m.kind == FileKind::File {
                    out.push(prefix);
                }
            }
            return Ok(());
        };
        if !has_wildcard(first) {
            return self.glob_walk(format!("{prefix}/{first}"), rest, out);
        }
        let Ok(pattern) = glob::Pattern::new(first) else {
            // Not a valid pattern: treat it as a literal name.
            return self.glob_walk(format!("{prefix}/{first}"), rest, out);
        };
        let dir = self.path(if prefix.is_empty() { "/" } else { &prefix })?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if is_not_found(&e) || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
                return Ok(())
            }
            Err(e) => return Err(FsError::io(dir, e)),
        };
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        for entry in entries {
            let entry = entry.map_err(|e| FsError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !pattern.matches_with(name, opts) {
                continue;
            }
            // A last component that is a plain file needs no stat: read_dir
            // said so (symlinks still go through the root-confined lookup).
            if rest.is_empty() && entry.file_type().is_ok_and(|t| t.is_file()) {
                out.push(format!("{prefix}/{name}"));
                continue;
            }
            self.glob_walk(format!("{prefix}/{name}"), rest, out)?;
        }
        Ok(())
    }
}

/// Whether an absolute path is one [`Root::glob`] could return for
/// `pattern`: the same number of components, each matching its part.
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    let pat = components(Path::new(pattern));
    let got = components(Path::new(path));
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    pat.len() == got.len()
        && pat.iter().zip(&got).all(|(p, g)| {
            let (Some(p), Some(g)) = (p.to_str(), g.to_str()) else {
                return false;
            };
            if g == ".." {
                return false;
            }
            match glob::Pattern::new(p) {
                Ok(pattern) if has_wildcard(p) => pattern.matches_with(g, opts),
                _ => p == g,
            }
        })
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Normal and `..` components; the root and `.` are dropped.
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

pub fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

/// blake3 (hex) and length of everything `reader` yields, in constant memory.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// A writer that hashes and counts what passes through it, so a stream is
/// hashed while it is written instead of being read back.
pub struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (inner writer, blake3 hex, bytes written)
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            self.hasher.finalize().to_hex().to_string(),
            self.len,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/yum.repos.d")).unwrap();
        std::fs::write(t.path().join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(t.path().join("etc/yum.repos.d/a.repo"), "[a]\n").unwrap();
        std::fs::write(t.path().join("etc/yum.repos.d/b.repo"), "[b]\n").unwrap();
        std::fs::write(t.path().join("etc/yum.repos.d/.hidden"), "x").unwrap();
        let root = Root::new(t.path()).unwrap();
        (t, root)
    }

    #[test]
    fn refuses_missing_root() {
        assert!(matches!(
            Root::new("/nonexistent/root"),
            Err(FsError::BadRoot(_))
        ));
    }

    #[test]
    fn paths_never_escape() {
        let (_t, root) = tree();
        let d = root.dir().to_path_buf();
        assert_eq!(root.path("/etc/hosts").unwrap(), d.join("etc/hosts"));
        assert_eq!(
            root.path("/../../etc/passwd").unwrap(),
            d.join("etc/passwd")
        );
        assert_eq!(root.path("etc/../../x").unwrap(), d.join("x"));
        // An absolute link target restarts at the root, not at the real /.
        symlink("/etc/hosts", d.join("etc/hosts-link")).unwrap();
        assert_eq!(root.path("/etc/hosts-link").unwrap(), d.join("etc/hosts"));
        symlink("../../../../..", d.join("etc/up")).unwrap();
        assert_eq!(root.path("/etc/up/passwd").unwrap(), d.join("passwd"));
        assert_eq!(
            root.path_nofollow("/etc/hosts-link").unwrap(),
            d.join("etc/hosts-link")
        );
        symlink("/loop", d.join("loop")).unwrap();
        assert!(matches!(root.path("/loop"), Err(FsError::Loop { .. })));
    }

    #[test]
    fn metadata_and_open() {
        let (_t, root) = tree();
        let m = root.metadata("/etc/hosts").unwrap().unwrap();
        assert_eq!(m.kind, FileKind::File);
        assert_eq!(m.size, 20);
        assert!(root.metadata("/etc/nope").unwrap().is_none());
        assert!(root.metadata("/etc/hosts/x").unwrap().is_none());
        let (f, _) = root.open("/etc/hosts").unwrap().unwrap();
        let (hash, len) = hash_reader(f).unwrap();
        assert_eq!(len, 20);
        assert_eq!(
            hash,
            blake3::hash(b"127.0.0.1 localhost\n").to_hex().to_string()
        );
    }

    #[test]
    fn a_fifo_does_not_block_open() {
        let (_t, root) = tree();
        let fifo = root.dir().join("etc/fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (_, meta) = root.open("/etc/fifo").unwrap().unwrap();
        assert_eq!(meta.kind, FileKind::Other);
    }

    #[test]
    fn globs_inside_root() {
        let (_t, root) = tree();
        assert_eq!(
            root.glob("/etc/yum.repos.d/*").unwrap(),
            vec!["/etc/yum.repos.d/a.repo", "/etc/yum.repos.d/b.repo"]
        );
        assert_eq!(
            root.glob("/etc/*/b.*").unwrap(),
            vec!["/etc/yum.repos.d/b.repo"]
        );
        assert!(root.glob("/nope/*").unwrap().is_empty());
        assert_eq!(root.glob("/etc/hosts").unwrap(), vec!["/etc/hosts"]);
    }

    #[test]
    fn hashing_writer_matches_hash_reader() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello world").unwrap();
        let (inner, hash, len) = w.finish();
        assert_eq!(len, 11);
        assert_eq!(hash_reader(&inner[..]).unwrap(), (hash, 11));
    }
}
