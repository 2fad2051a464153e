//! The audit's checks of what keeps backups usable over time: a restore
//! drill on record (`backup.drill`, with `--max-drill-age`) and age keys
//! that survive the server (`backup.key_escrow`, for encrypted bundles).

use super::{check, Finding, Suite};
use crate::bundle::drill::{self, Record};
use crate::host::fs::Root;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where an age identity is looked for on the host (under `--root`), and
/// how deep: the usual homes of a key file, not the whole file system.
const KEY_DIRS: [&str; 6] = [
    "/root",
    "/home",
    "/etc",
    "/var/lib/imlrecover",
    "/usr/local/etc",
    "/opt",
];
const KEY_DEPTH: usize = 5;
/// At most this many files are looked at (a huge /home must not stall the audit).
const KEY_FILES_MAX: usize = 50_000;
/// An identity file is a few lines; anything bigger is not one.
const KEY_FILE_LIMIT: u64 = 64 * 1024;
const SECRET_PREFIX: &str = "AGE-SECRET-KEY-1";

/// `--max-drill-age`: a finding unless a drill of a bundle made within
/// `max` passed and the last drill did not fail.
pub fn drill_check(
    bundle: &crate::bundle::Bundle,
    record: Option<&Record>,
    max: Duration,
    now: SystemTime,
    out: &mut Vec<Finding>,
) {
    let dir = bundle
        .dir
        .parent()
        .unwrap_or(&bundle.dir)
        .display()
        .to_string();
    let shown = humantime::format_duration(max);
    let run_it = format!("run `imlrecover verify --drill {dir}` (weekly: docs/audit.md)");
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let f = |ok: bool, msg: String| {
        if ok {
            Finding::pass(Suite::Backup, check::BACKUP_DRILL, msg)
        } else {
            Finding::fail(Suite::Backup, check::BACKUP_DRILL, msg)
        }
        .path(format!("{dir}/{}", drill::RECORD))
    };
    let Some(good) = record.and_then(|r| r.last_success.as_ref()) else {
        out.push(f(
            false,
            format!("no successful restore drill is on record in {dir}: {run_it}"),
        ));
        return;
    };
    let age = |t: Option<u64>| t.map(|t| Duration::from_secs(now_s.saturating_sub(t)));
    let bundle_age = age(good.bundle_unix_time());
    let mut finding = match bundle_age {
        Some(a) if a <= max => f(
            true,
            format!(
                "bundle {} (made {} ago) passed a restore drill at {}: {} rows in {:.1} s (limit {shown})",
                good.bundle,
                humantime::format_duration(a),
                good.time,
                good.rows,
                good.seconds
            ),
        ),
        _ => f(
            false,
            format!(
                "the last successful drill ({}) restored bundle {}, made more than --max-drill-age {shown} ago: no recent bundle is proven to restore; {run_it}",
                good.time, good.bundle
            ),
        ),
    };
    if let Some(last) = record.map(|r| &r.last).filter(|l| !l.success) {
        finding = f(
            false,
            format!(
                "the last drill ({}, bundle {}) failed: {}; do not rely on that bundle",
                last.time,
                last.bundle,
                last.reason.as_deref().unwrap_or("no reason recorded")
            ),
        );
    }
    out.push(finding);
}

/// For encrypted bundles: a finding when every recipient's identity is on
/// this host, since only this server could then decrypt the bundle.
pub fn key_escrow(bundle: &crate::bundle::Bundle, root: &Root, out: &mut Vec<Finding>) {
    let recipients = &bundle.manifest.recipients;
    if recipients.is_empty() {
        return;
    }
    let found = identities_on_host(root);
    let on_host: Vec<(&String, &Vec<String>)> = recipients
        .iter()
        .filter_map(|r| found.get(r).map(|paths| (r, paths)))
        .collect();
    let short = |r: &str| format!("{}…", r.get(..16).unwrap_or(r));
    if on_host.len() == recipients.len() {
        let mut f = Finding::fail(
            Suite::Backup,
            check::BACKUP_KEY_ESCROW,
            format!(
                "every recipient's age identity is on this host, so only this server can decrypt bundle {}: keep one identity offline (not on this host), remove it here, and prove it monthly with `imlrecover verify --age-identity OFFLINE_KEY {}`",
                bundle.name(),
                bundle.dir.parent().unwrap_or(&bundle.dir).display()
            ),
        );
        f.details = on_host
            .iter()
            .map(|(r, paths)| format!("{} in {}", short(r), paths.join(", ")))
            .collect();
        out.push(f);
    } else {
        let offline: Vec<String> = recipients
            .iter()
            .filter(|r| !found.contains_key(*r))
            .map(|r| short(r))
            .collect();
        out.push(Finding::pass(
            Suite::Backup,
            check::BACKUP_KEY_ESCROW,
            format!(
                "{} of {} recipients have no identity on this host ({}); check the offline key monthly with `verify --age-identity`",
                offline.len(),
                recipients.len(),
                offline.join(", ")
            ),
        ));
    }
}

/// Recipient (`age1…`) → host paths of the identity files that hold its key.
fn identities_on_host(root: &Root) -> BTreeMap<String, Vec<String>> {
    let mut files = Vec::new();
    for dir in KEY_DIRS {
        if let Ok(p) = root.path(dir) {
            // Like `find -xdev`: NFS-mounted homes are not this host's disks.
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                walk(&p, m.dev(), KEY_DEPTH, &mut files);
            }
        }
    }
    // The identity this audit was given counts if it lives under the root.
    let base = std::fs::canonicalize(root.dir()).unwrap_or_else(|_| root.dir().to_path_buf());
    for p in crate::bundle::crypt::identity_paths() {
        if let Ok(c) = std::fs::canonicalize(&p) {
            if c.starts_with(&base) && !files.contains(&c) {
                files.push(c);
            }
        }
    }
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let shown = match file.strip_prefix(&base) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => file.display().to_string(),
        };
        for r in recipients_in(&file) {
            let list = found.entry(r).or_default();
            if !list.contains(&shown) {
                list.push(shown.clone());
            }
        }
    }
    found
}

/// Regular files (symlinks are not followed, other file systems not
/// entered) up to `depth` levels down.
fn walk(dir: &Path, dev: u64, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if out.len() >= KEY_FILES_MAX {
            return;
        }
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() && depth > 0 && m.dev() == dev {
            walk(&e.path(), dev, depth - 1, out);
        } else if m.is_file() && m.len() <= KEY_FILE_LIMIT {
            out.push(e.path());
        }
    }
}

/// The recipients of the age identities in a file, if it holds any.
fn recipients_in(path: &Path) -> Vec<String> {
    let mut text = String::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(KEY_FILE_LIMIT).read_to_string(&mut text));
    if read.is_err() || !text.contains(SECRET_PREFIX) {
        return Vec::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with(SECRET_PREFIX))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .map(|id| id.to_public().to_string())
        .collect()
}
