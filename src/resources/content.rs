//! Comparing one live path with its bundle entry: the piece `file`, `files`
//! and `cert` share. Content is compared by blake3; text that is not
//! sensitive gets a unified diff; the bundle copy is checked against its
//! manifest hash before anything relies on it.

use super::kind::{Cx, ResourceError};
use crate::bundle::{Entry, EntryKind, Mode};
use crate::host::fs::{hash_reader, FileKind};
use crate::plan::{Action, FileChange};
use crate::recipe::Address;
use serde::Serialize;
use std::io::Read;

/// Diffs are shown for text files up to this size.
const DIFF_LIMIT: u64 = 256 * 1024;

/// One live path, as `stat` and blake3 see it.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub path: String,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

pub fn observe(address: &Address, path: &str, cx: &Cx) -> Result<Seen, ResourceError> {
    let err = |e: String| ResourceError::new(address, e);
    let Some((file, meta)) = cx.root.open(path).map_err(|e| err(e.to_string()))? else {
        return Ok(Seen {
            path: path.to_string(),
            exists: false,
            size: None,
            mode: None,
            owner: None,
            group: None,
            blake3: None,
        });
    };
    if meta.kind != FileKind::File {
        return Err(err(format!(
            "{path} is a {}, not a regular file",
            meta.kind
        )));
    }
    let (hash, size) = hash_small_or_large(file, meta.size)
        .map_err(|e| err(format!("cannot read {path}: {e}")))?;
    Ok(Seen {
        path: path.to_string(),
        exists: true,
        size: Some(size),
        mode: Some(Mode(meta.mode)),
        owner: Some(meta.owner.unwrap_or_else(|| meta.uid.to_string())),
        group: Some(meta.group.unwrap_or_else(|| meta.gid.to_string())),
        blake3: Some(hash),
    })
}

/// Small files (the common case: configuration) are read whole into a
/// reused buffer; large ones are streamed.
fn hash_small_or_large(mut file: std::fs::File, size: u64) -> std::io::Result<(String, u64)> {
    const SMALL: u64 = 1 << 20;
    if size > SMALL {
        return hash_reader(file);
    }
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        buf.clear();
        file.read_to_end(&mut buf)?;
        Ok((blake3::hash(&buf).to_hex().to_string(), buf.len() as u64))
    })
}

/// What the recipe adds on top of the bundle's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    pub mode: Option<u32>,
    pub owner: Option<&'a str>,
    pub group: Option<&'a str>,
    /// Never show content (always true for keys).
    pub sensitive: bool,
    /// Show a text diff when the content differs (not for PEM files).
    pub diff: bool,
}

pub use super::entries::EntryIndex;

/// The bundle entry the resource captured for `path`.
pub fn entry<'b>(cx: &Cx<'b>, address: &Address, path: &str) -> Option<&'b Entry> {
    cx.entries.get(address, path)
}

fn short(hash: &str) -> String {
    format!("{}…", hash.get(..8).unwrap_or(hash))
}

/// Compares a live path with its entry: `Create`, `Update` or `NoOp`.
pub fn compare(
    cx: &Cx,
    address: &Address,
    e: &Entry,
    seen: &Seen,
    o: Overrides,
) -> Result<FileChange, ResourceError> {
    let mut change = FileChange {
        path: e.path.clone(),
        action: Action::NoOp,
        details: Vec::new(),
        diff: None,
    };
    if e.kind == EntryKind::Absent {
        change
            .details
            .push("absent when the bundle was made; left as it is".into());
        return Ok(change);
    }
    let want_hash = e.blake3.as_deref().unwrap_or("");
    let want_mode = o.mode.map(Mode).or(e.mode);
    let want_owner = o.owner.map(str::to_string).or_else(|| e.owner.clone());
    let want_group = o.group.map(str::to_string).or_else(|| e.group.clone());
    let sensitive = o.sensitive || e.sensitive;
    if !seen.exists {
        change.action = Action::Create;
        change.details.push(format!(
            "{} bytes, mode {}, owner {}:{}",
            e.size.unwrap_or(0),
            want_mode.map_or("?".into(), |m| m.to_string()),
            want_owner.as_deref().unwrap_or("?"),
            want_group.as_deref().unwrap_or("?"),
        ));
        verify_entry(cx, address, e)?;
        return Ok(change);
    }
    let live_hash = seen.blake3.as_deref().unwrap_or("");
    if live_hash != want_hash {
        change.action = Action::Update;
        let bundle_bytes = verify_entry(cx, address, e)?;
        if sensitive {
            change.details.push(format!(
                "content changed (blake3 {} → {})",
                short(live_hash),
                short(want_hash)
            ));
        } else {
            let diff = if o.diff {
                text_diff(cx, address, &e.path, bundle_bytes.as_deref())?
            } else {
                None
            };
            match diff {
                Some(d) => change.diff = Some(d),
                None => change.details.push(format!(
                    "content changed: {} → {} bytes (blake3 {} → {})",
                    seen.size.unwrap_or(0),
                    e.size.unwrap_or(0),
                    short(live_hash),
                    short(want_hash)
                )),
            }
        }
    }
    if let (Some(want), Some(live)) = (want_mode, seen.mode) {
        if want != live {
            change.details.push(format!("mode {live} → {want}"));
        }
    }
    for (what, want, live) in [
        ("owner", &want_owner, &seen.owner),
        ("group", &want_group, &seen.group),
    ] {
        if let (Some(w), Some(l)) = (want, live) {
            if w != l {
                change.details.push(format!("{what} {l} → {w}"));
            }
        }
    }
    if change.action == Action::NoOp && !change.details.is_empty() {
        change.action = Action::Update;
    }
    Ok(change)
}

/// Checks the bundle copy against the manifest before anything uses it;
/// returns its bytes when small enough to diff.
fn verify_entry(cx: &Cx, address: &Address, e: &Entry) -> Result<Option<Vec<u8>>, ResourceError> {
    let rel = e.file.as_deref().unwrap_or("");
    let corrupt = |why: String| {
        ResourceError::new(address, format!("the bundle's copy of {} ({rel}) {why}", e.path))
            .help("the bundle fails its integrity check: run `imlrecover verify BUNDLE`, and plan from an intact bundle")
    };
    let mut file = cx
        .bundle
        .open_file(rel)
        .map_err(|err| corrupt(format!("cannot be read: {err}")))?;
    let small = e.size.is_some_and(|s| s <= DIFF_LIMIT);
    let (hash, bytes) = if small {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|err| corrupt(format!("cannot be read: {err}")))?;
        (blake3::hash(&buf).to_hex().to_string(), Some(buf))
    } else {
        (
            hash_reader(file)
                .map_err(|err| corrupt(format!("cannot be read: {err}")))?
                .0,
            None,
        )
    };
    if Some(hash.as_str()) != e.blake3.as_deref() {
        return Err(corrupt("does not match its manifest hash".into()));
    }
    Ok(bytes)
}

/// A unified diff, live → bundle, with 3 lines of context; `None` for
/// binary or large files.
fn text_diff(
    cx: &Cx,
    address: &Address,
    path: &str,
    bundle: Option<&[u8]>,
) -> Result<Option<String>, ResourceError> {
    let Some(bundle) = bundle else {
        return Ok(None);
    };
    let Some((mut file, meta)) = cx
        .root
        .open(path)
        .map_err(|e| ResourceError::new(address, e.to_string()))?
    else {
        return Ok(None);
    };
    if meta.size > DIFF_LIMIT {
        return Ok(None);
    }
    let mut live = Vec::new();
    file.read_to_end(&mut live)
        .map_err(|e| ResourceError::new(address, format!("cannot read {path}: {e}")))?;
    let (Some(live), Some(bundle)) = (text(&live), text(bundle)) else {
        return Ok(None);
    };
    let diff = similar::TextDiff::from_lines(live, bundle);
    let out = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (live)"), &format!("{path} (bundle)"))
        .to_string();
    Ok(Some(out))
}

fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// One sentence for a single-file change.
pub fn reason(change: &FileChange) -> String {
    match change.action {
        Action::NoOp => format!("{} matches the bundle", change.path),
        Action::Create => format!("{} is missing", change.path),
        Action::Update => format!("{} differs from the bundle", change.path),
        _ => change.path.clone(),
    }
}

/// Writes every changed file of a resource from the bundle, keeping the
/// previous content in the run directory first.
pub fn apply_files(
    cx: &super::kind::ApplyCx,
    address: &Address,
    files: &[FileChange],
    o: Overrides,
) -> Result<super::kind::Applied, ResourceError> {
    use crate::host::atomic;
    let err = |e: atomic::AtomicError| ResourceError::new(address, e.to_string());
    let mut written = 0;
    let mut bytes = 0;
    for f in files.iter().filter(|f| f.action != Action::NoOp) {
        let e = cx
            .entries
            .get(address, &f.path)
            .filter(|e| e.kind == EntryKind::File)
            .ok_or_else(|| {
                ResourceError::new(address, format!("{} is not in the bundle", f.path))
            })?;
        let uid = atomic::uid_for(&e.path, o.owner.or(e.owner.as_deref()), e.uid).map_err(err)?;
        let gid = atomic::gid_for(&e.path, o.group.or(e.group.as_deref()), e.gid).map_err(err)?;
        let mode = o.mode.or(e.mode.map(|m| m.0)).unwrap_or(0o644);
        let source = cx
            .bundle
            .open_file(e.file.as_deref().unwrap_or(""))
            .map_err(|x| {
                ResourceError::new(address, format!("the bundle's copy of {}: {x}", e.path))
            })?;
        atomic::keep_previous(cx.root, &e.path, cx.previous).map_err(err)?;
        let target = atomic::Target {
            path: &e.path,
            mode,
            uid,
            gid,
            blake3: e.blake3.as_deref().unwrap_or(""),
        };
        bytes += atomic::write(cx.root, &target, source).map_err(err)?;
        written += 1;
    }
    Ok(super::kind::Applied::new(format!(
        "{written} {} written, {bytes} bytes",
        if written == 1 { "file" } else { "files" }
    )))
}
