//! The rules of a bundle directory, local or remote: which names are
//! complete bundles (`<timestamp>[-N]` with a manifest), which are
//! temporary (`.incomplete-…`: a backup, pull, push or prune at work, or
//! left by a killed one), how `latest` is swapped, and how old bundles are
//! pruned. Every reader and writer of such a directory asks here.

use super::retention::{decide, Decision, Policy};
use super::MANIFEST;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The symlink in the bundle dir that names the newest complete bundle.
pub const LATEST: &str = "latest";
/// Prefix of the temporary name a bundle has while it is written (and of
/// every other name that is never a complete bundle).
pub const INCOMPLETE_PREFIX: &str = ".incomplete-";

/// Whether a directory name is a complete bundle's name:
/// `YYYY-MM-DDTHH-MM-SSZ`, optionally `-N` when two backups share a second.
/// Returns the sort key (timestamp, N).
pub fn parse_bundle_name(name: &str) -> Option<(String, u32)> {
    let (stamp, n) = match name.get(20..) {
        Some("") => (name, 0),
        Some(rest) => (name.get(..20)?, rest.strip_prefix('-')?.parse().ok()?),
        None => return None,
    };
    let b = stamp.as_bytes();
    let shape = b"dddd-dd-ddTdd-dd-ddZ";
    let ok = b.len() == shape.len()
        && b.iter().zip(shape).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            s => c == s,
        });
    ok.then(|| (stamp.to_string(), n))
}

/// The `n`th name tried for a bundle of timestamp `base` (`base`, `base-1`, …).
pub fn numbered(base: &str, n: u32) -> String {
    if n == 0 {
        base.to_string()
    } else {
        format!("{base}-{n}")
    }
}

/// Whether `name` is a temporary directory (never a complete bundle).
pub fn is_incomplete(name: &str) -> bool {
    name.starts_with(INCOMPLETE_PREFIX)
}

/// Where a backup or pull by process `pid` writes `bundle` before it is whole.
pub fn incomplete_name(bundle: &str, pid: u32) -> String {
    format!("{INCOMPLETE_PREFIX}{bundle}-{pid}")
}

/// Where a push from `host` by process `pid` writes `bundle` remotely.
pub fn incomplete_push_name(bundle: &str, host: &str, pid: u32) -> String {
    format!("{INCOMPLETE_PREFIX}{bundle}-{host}-{pid}")
}

/// Where an old bundle is hidden while it is removed, so that a
/// half-removed bundle never looks complete.
pub fn pruning_name(old: &str, pid: u32) -> String {
    format!("{INCOMPLETE_PREFIX}pruning-{old}-{pid}")
}

/// The pid that owns the temporary directory `name` (its last `-` field).
pub fn incomplete_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(INCOMPLETE_PREFIX)?;
    rest.rsplit('-').next()?.parse().ok()
}

/// The pid of a push from `host` that owns the remote temporary directory
/// `name`; `None` for other hosts' pushes and other names.
pub fn incomplete_push_owner(name: &str, host: &str) -> Option<i32> {
    if !is_incomplete(name) {
        return None;
    }
    let (rest, pid) = name.rsplit_once('-')?;
    let pid = pid.parse::<i32>().ok()?;
    (rest.ends_with(&format!("-{host}")) && pid > 0).then_some(pid)
}

/// Whether process `pid` is gone (its temporary directory is stale).
pub fn owner_is_gone(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
}

/// A bundle directory's entries, sorted out.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete bundles, oldest first.
    pub complete: Vec<String>,
    /// Temporary entries, and whether each is a directory.
    pub incomplete: Vec<(String, bool)>,
}

/// Sorts out `entries` (name, is a real directory). A complete bundle is a
/// real directory with a bundle's name and a manifest (`has_manifest` is
/// asked only for those): a symlink or a stray directory is not ours.
pub fn scan<E>(
    entries: impl IntoIterator<Item = (String, bool)>,
    mut has_manifest: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Listing, E> {
    let mut out = Listing::default();
    let mut found = Vec::new();
    for (name, is_dir) in entries {
        if is_incomplete(&name) {
            out.incomplete.push((name, is_dir));
            continue;
        }
        let Some(key) = parse_bundle_name(&name) else {
            continue;
        };
        if is_dir && has_manifest(&name)? {
            found.push((key, name));
        }
    }
    found.sort();
    out.complete = found.into_iter().map(|(_, n)| n).collect();
    Ok(out)
}

/// The entries of the local directory `dir`, as [`scan`] takes them.
fn read_entries(dir: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    Ok(out)
}

/// The local directory `dir`, sorted out.
pub fn list(dir: &Path) -> io::Result<Listing> {
    scan(read_entries(dir)?, |name| {
        Ok(dir.join(name).join(MANIFEST).is_file())
    })
}

/// Complete bundles in `parent`, oldest first.
pub fn complete_bundles(parent: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(list(parent)?
        .complete
        .into_iter()
        .map(|n| parent.join(n))
        .collect())
}

/// Temporary bundles left by a backup or pull that was killed (its pid is gone).
pub fn remove_stale_incomplete(parent: &Path) {
    let Ok(entries) = read_entries(parent) else {
        return;
    };
    for (name, is_dir) in entries {
        let Some(pid) = incomplete_owner(&name) else {
            continue;
        };
        if owner_is_gone(pid) && is_dir {
            let _ = std::fs::remove_dir_all(parent.join(&name));
        }
    }
}

/// The bundle `dir/latest` points at, if `dir` has a `latest`.
pub fn latest(dir: &Path) -> Option<PathBuf> {
    let latest = dir.join(LATEST);
    latest.symlink_metadata().is_ok().then_some(latest)
}

/// Points `latest` at `name` by renaming a fresh symlink over it, so readers
/// see the old bundle or the new one, never no `latest` at all.
pub fn update_latest(parent: &Path, name: &str) -> io::Result<()> {
    let tmp = parent.join(format!(".{LATEST}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, parent.join(LATEST)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(parent)?.sync_all()
}

/// As [`update_latest`], unless `latest` already names a newer complete
/// bundle (a pull of an older bundle) or is not a symlink.
pub fn update_latest_unless_newer(dir: &Path, name: &str) -> io::Result<()> {
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
    update_latest(dir, name)
}

/// What a local prune decided and did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Every complete bundle, newest first.
    pub decisions: Vec<Decision>,
    /// Bundles newer than the protected one that do not verify, and why.
    pub unverified: Vec<(String, String)>,
    /// `.incomplete-*` directories: being written (or left by a kill); never touched here.
    pub busy: Vec<String>,
    /// Removed (empty on a dry run).
    pub removed: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PruneError {
    #[error("cannot list the bundle directory {}: {error}", dir.display())]
    #[diagnostic(
        code(imlrecover::prune),
        help(
            "--bundle-dir must be a readable directory of bundles written by `imlrecover backup`"
        )
    )]
    List { dir: PathBuf, error: io::Error },
    #[error("cannot remove the old bundle {}: {error}", old.display())]
    #[diagnostic(
        code(imlrecover::prune),
        help("check its permissions, or remove it by hand")
    )]
    Remove { old: PathBuf, error: io::Error },
}

/// Applies `policy` to the complete bundles in `dir`. `protect` names the
/// bundle that is known good (the one `backup` just wrote); without it the
/// newest bundle that verifies (re-hashed, as `verify`) is protected. A
/// dry run decides exactly as the real run and removes nothing.
pub fn prune_dir(
    dir: &Path,
    policy: &Policy,
    protect: Option<&str>,
    dry_run: bool,
) -> Result<Pruned, PruneError> {
    let list_err = |error| PruneError::List {
        dir: dir.to_path_buf(),
        error,
    };
    let mut out = Pruned::default();
    let listing = list(dir).map_err(list_err)?;
    out.busy = listing
        .incomplete
        .into_iter()
        .filter_map(|(name, is_dir)| is_dir.then_some(name))
        .collect();
    let names = listing.complete;
    out.busy.sort();
    let mut protected = protect.map(str::to_string);
    if protected.is_none() {
        let mut newest_first = names.clone();
        newest_first.sort_by_key(|n| std::cmp::Reverse(parse_bundle_name(n)));
        for name in newest_first {
            match first_problem(&dir.join(&name)) {
                None => {
                    protected = Some(name);
                    break;
                }
                Some(why) => out.unverified.push((name, why)),
            }
        }
    }
    out.decisions = decide(&names, policy, protected.as_deref());
    if dry_run {
        return Ok(out);
    }
    for d in out.decisions.iter().filter(|d| !d.keep()) {
        let old = dir.join(&d.name);
        // Hidden first, so a half-removed bundle never looks complete.
        let hidden = dir.join(pruning_name(&d.name, std::process::id()));
        let remove = |error| PruneError::Remove {
            old: old.clone(),
            error,
        };
        std::fs::rename(&old, &hidden).map_err(remove)?;
        std::fs::remove_dir_all(&hidden).map_err(remove)?;
        out.removed.push(old);
    }
    Ok(out)
}

/// `None` if the bundle verifies, else its first problem.
fn first_problem(path: &Path) -> Option<String> {
    let bundle = match super::Bundle::open(path) {
        Ok(b) => b,
        Err(e) => return Some(e.to_string()),
    };
    let report = super::verify::verify(&bundle);
    report.problems.first().map(|p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_sorts_complete_bundles_and_sets_temporary_ones_apart() {
        let entries = [
            ("2026-11-26T06-10-00Z-1", true),
            ("2026-11-26T06-10-00Z", true),
            ("2026-11-25T06-10-00Z", true),
            // no manifest, not a directory, not a bundle's name
            ("2026-11-24T06-10-00Z", true),
            ("2026-11-23T06-10-00Z", false),
            ("latest", false),
            ("notes", true),
            (".incomplete-2026-11-27T06-10-00Z-42", true),
            (".incomplete-stray", false),
        ]
        .map(|(n, d)| (n.to_string(), d));
        let listing = scan(entries, |name| Ok::<_, ()>(name != "2026-11-24T06-10-00Z")).unwrap();
        assert_eq!(
            listing.complete,
            [
                "2026-11-25T06-10-00Z",
                "2026-11-26T06-10-00Z",
                "2026-11-26T06-10-00Z-1"
            ]
        );
        assert_eq!(
            listing.incomplete,
            [
                (".incomplete-2026-11-27T06-10-00Z-42".to_string(), true),
                (".incomplete-stray".to_string(), false)
            ]
        );
    }

    #[test]
    fn temporary_names_say_whose_they_are() {
        let name = incomplete_name("2026-11-26T06-10-00Z", 42);
        assert_eq!(name, ".incomplete-2026-11-26T06-10-00Z-42");
        assert_eq!(incomplete_owner(&name), Some(42));
        assert_eq!(parse_bundle_name(&name), None);

        let pushed = incomplete_push_name("2026-11-26T06-10-00Z", "mgs1.lab", 7);
        assert_eq!(pushed, ".incomplete-2026-11-26T06-10-00Z-mgs1.lab-7");
        assert_eq!(incomplete_push_owner(&pushed, "mgs1.lab"), Some(7));
        // another host's push is never ours to clean up
        assert_eq!(incomplete_push_owner(&pushed, "lab"), None);
        assert_eq!(incomplete_push_owner("2026-11-26T06-10-00Z-7", "x"), None);

        let hidden = pruning_name("2026-11-26T06-10-00Z", 9);
        assert_eq!(hidden, ".incomplete-pruning-2026-11-26T06-10-00Z-9");
        assert!(is_incomplete(&hidden));
        assert_eq!(numbered("2026-11-26T06-10-00Z", 0), "2026-11-26T06-10-00Z");
        assert_eq!(
            numbered("2026-11-26T06-10-00Z", 2),
            "2026-11-26T06-10-00Z-2"
        );
    }

    #[test]
    fn a_pull_of_an_older_bundle_leaves_latest_on_the_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["2026-11-25T06-10-00Z", "2026-11-26T06-10-00Z"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(MANIFEST), "{}").unwrap();
        }
        update_latest_unless_newer(dir.path(), "2026-11-26T06-10-00Z").unwrap();
        update_latest_unless_newer(dir.path(), "2026-11-25T06-10-00Z").unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join(LATEST)).unwrap(),
            Path::new("2026-11-26T06-10-00Z")
        );
        assert_eq!(
            complete_bundles(dir.path()).unwrap(),
            [
                dir.path().join("2026-11-25T06-10-00Z"),
                dir.path().join("2026-11-26T06-10-00Z")
            ]
        );
        std::fs::remove_file(dir.path().join(LATEST)).unwrap();
        std::fs::write(dir.path().join(LATEST), "not a link").unwrap();
        assert!(update_latest_unless_newer(dir.path(), "2026-11-26T06-10-00Z").is_err());
    }
}
