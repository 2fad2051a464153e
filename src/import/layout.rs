//! Where the runbook's backup commands ("Creating a Backup Manifest") put
//! each file in `$HOME/backup`, exactly as the commands do it, quirks
//! included: `ifcfg-*` flattened into `etc/sysconfig/`, the yum repo files
//! straight into `etc/`, the DSA keys into `etc/root/.ssh/`.

use glob::{MatchOptions, Pattern};
use std::path::Path;

/// One `cp` of the runbook.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// What it copies: a host path or glob.
    pub source: &'static str,
    /// The directory of the backup it copies into.
    pub dest: &'static str,
    /// `cp -a` / `cp -p` keep mode, owner and times; plain `cp` does not.
    pub command: &'static str,
    /// Only names matching this are taken from `dest` (yum reads `*.repo`).
    pub only: Option<&'static str>,
    /// What to tell when nothing is found there.
    pub note: Option<&'static str>,
}

impl Rule {
    /// Whether `cp` kept mode and owner.
    pub fn keeps_owner(&self) -> bool {
        self.command != "cp"
    }
}

const fn rule(source: &'static str, dest: &'static str, command: &'static str) -> Rule {
    Rule {
        source,
        dest,
        command,
        only: None,
        note: None,
    }
}

/// The runbook's backup commands, in its order.
pub const RULES: &[Rule] = &[
    rule("/etc/sysconfig/network", "etc/sysconfig", "cp -a"),
    rule(
        "/etc/sysconfig/network-scripts/ifcfg-*",
        "etc/sysconfig",
        "cp -a",
    ),
    rule("/etc/hosts", "etc", "cp -p"),
    rule("/etc/resolv.conf", "etc", "cp -p"),
    rule("/etc/nsswitch.conf", "etc", "cp -p"),
    rule("/etc/yum.conf", "etc", "cp"),
    Rule {
        only: Some("*.repo"),
        ..rule("/etc/yum.repos.d/*", "etc", "cp -a")
    },
    rule("/etc/passwd", "etc", "cp -p"),
    rule("/etc/shadow", "etc", "cp -p"),
    rule("/etc/group", "etc", "cp -p"),
    rule("/etc/gshadow", "etc", "cp -p"),
    rule("/etc/sudoers", "etc", "cp -p"),
    rule("/etc/ssh/ssh_host*key*", "etc/ssh", "cp -p"),
    rule("/root/.ssh/id_rsa*", "root/.ssh", "cp -p"),
    Rule {
        note: Some(
            "the runbook copies /root/.ssh/id_dsa* into etc/root/.ssh/, a directory its `mkdir` does not create, so its `cp` fails unless that directory was made by hand",
        ),
        ..rule("/root/.ssh/id_dsa*", "etc/root/.ssh", "cp")
    },
    rule("/etc/ntp.conf", "etc", "cp"),
    rule("/var/lib/chroma/authority.crt", "var/lib/chroma", "cp"),
    rule("/var/lib/chroma/authority.pem", "var/lib/chroma", "cp"),
    rule("/var/lib/chroma/authority.srl", "var/lib/chroma", "cp"),
    rule("/var/lib/chroma/manager.crt", "var/lib/chroma", "cp"),
    rule("/var/lib/chroma/manager.pem", "var/lib/chroma", "cp"),
];

const OPTS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn matches(pattern: &str, name: &str) -> bool {
    Pattern::new(pattern).is_ok_and(|p| p.matches_with(name, OPTS))
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// A file of the backup directory and the host path it is a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Relative to the backup directory: `etc/sysconfig/ifcfg-eth0`.
    pub rel: String,
    /// On the host: `/etc/sysconfig/network-scripts/ifcfg-eth0`.
    pub path: String,
    /// The runbook command that put it there; `None`: found where the host
    /// has it (a site that saved more than the runbook, the same way).
    pub rule: Option<&'static Rule>,
}

/// The runbook rule whose copy `rel` (a file of the backup) is, by name
/// only: another rule's literal file is never a member of a glob's set.
fn claimed_by_literal(rel: &str) -> Option<&'static Rule> {
    let (dir, name) = split(rel);
    RULES
        .iter()
        .find(|r| r.dest == dir && !r.source.contains('*') && split(r.source).1 == name)
}

/// Where the copy of host path `path` is looked for, best first: the
/// runbook's location, then the host's own path inside the directory.
pub fn places_for_path(path: &str) -> Vec<Candidate> {
    let (_, name) = split(path);
    let mut out: Vec<Candidate> = RULES
        .iter()
        .filter(|r| matches(r.source, path) && r.only.is_none_or(|o| matches(o, name)))
        .map(|r| Candidate {
            rel: format!("{}/{name}", r.dest),
            path: path.to_string(),
            rule: Some(r),
        })
        .collect();
    let mirror = path.trim_start_matches('/').to_string();
    if !out.iter().any(|c| c.rel == mirror) {
        out.push(Candidate {
            rel: mirror,
            path: path.to_string(),
            rule: None,
        });
    }
    out
}

/// The runbook rules that copy members of the host glob `glob`: same
/// directory, and one name pattern covers the other (`ssh_host*key*` and
/// `ssh_host_*key*`, but not `id_rsa*` and `id_dsa*`).
pub fn rules_for_glob(glob: &str) -> Vec<&'static Rule> {
    let (dir, name) = split(glob);
    RULES
        .iter()
        .filter(|r| {
            let (rdir, rname) = split(r.source);
            r.source.contains('*') && rdir == dir && (matches(rname, name) || matches(name, rname))
        })
        .collect()
}

/// The copies in `backup` of the members of the host glob `glob`, sorted
/// by host path: each runbook location's files matching both the recipe's
/// and the runbook's pattern, then the host's own layout inside the dir.
pub fn members_of_glob(backup: &crate::host::fs::Root, glob: &str) -> Vec<Candidate> {
    let (dir, pattern) = split(glob);
    let mut out: Vec<Candidate> = Vec::new();
    for r in rules_for_glob(glob) {
        let Ok(entries) = std::fs::read_dir(backup.dir().join(r.dest)) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let rel = format!("{}/{name}", r.dest);
            let file = e.file_type().is_ok_and(|t| t.is_file());
            if file
                && matches(pattern, &name)
                && matches(split(r.source).1, &name)
                && r.only.is_none_or(|o| matches(o, &name))
                && claimed_by_literal(&rel).is_none()
            {
                out.push(Candidate {
                    rel,
                    path: format!("{dir}/{name}"),
                    rule: Some(r),
                });
            }
        }
    }
    if let Ok(found) = backup.glob(glob) {
        for p in found {
            let rel = p.trim_start_matches('/').to_string();
            let file = backup
                .metadata(&p)
                .ok()
                .flatten()
                .is_some_and(|m| m.kind == crate::host::fs::FileKind::File);
            if file && !out.iter().any(|c| c.path == p || c.rel == rel) {
                out.push(Candidate {
                    rel,
                    path: p,
                    rule: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// The runbook rule a stray file of the backup would have come from.
pub fn origin_of(rel: &str) -> Option<String> {
    if let Some(r) = claimed_by_literal(rel) {
        return Some(r.source.to_string());
    }
    let (dir, name) = split(rel);
    RULES
        .iter()
        .find(|r| {
            r.dest == dir
                && r.source.contains('*')
                && matches(split(r.source).1, name)
                && r.only.is_none_or(|o| matches(o, name))
        })
        .map(|r| format!("{}/{name}", split(r.source).0))
}

/// Whether `dir` looks like a runbook backup (`$HOME/backup`): a dump, or
/// the runbook's copies of the host's identity and IML's certificates.
pub fn looks_like_runbook(dir: &Path) -> bool {
    // A bundle that lost its manifest has the dump too, but under `files/`.
    if dir.join(crate::bundle::FILES_DIR).is_dir() {
        return false;
    }
    let dump = std::fs::read_dir(dir).is_ok_and(|mut es| {
        es.any(|e| {
            e.ok()
                .and_then(|e| e.file_name().to_str().map(str::to_string))
                .is_some_and(|n| super::dump::parse_name(&n).is_some())
        })
    });
    dump || (dir.join("etc/passwd").is_file() && dir.join("var/lib/chroma").is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runbook_locations() {
        let rel = |p: &str| {
            places_for_path(p)
                .into_iter()
                .map(|c| c.rel)
                .collect::<Vec<_>>()
        };
        assert_eq!(rel("/etc/hosts"), ["etc/hosts"]);
        assert_eq!(rel("/etc/sysconfig/network"), ["etc/sysconfig/network"]);
        assert_eq!(
            rel("/var/lib/chroma/manager.pem"),
            ["var/lib/chroma/manager.pem"]
        );
        assert_eq!(
            rel("/usr/share/chroma-manager/local_settings.py"),
            ["usr/share/chroma-manager/local_settings.py"]
        );
        assert_eq!(
            rel("/root/.ssh/id_dsa"),
            ["etc/root/.ssh/id_dsa", "root/.ssh/id_dsa"]
        );
        assert_eq!(origin_of("etc/sudoers").as_deref(), Some("/etc/sudoers"));
        assert_eq!(
            origin_of("etc/sysconfig/ifcfg-eth9").as_deref(),
            Some("/etc/sysconfig/network-scripts/ifcfg-eth9")
        );
        assert_eq!(
            origin_of("etc/x.repo").as_deref(),
            Some("/etc/yum.repos.d/x.repo")
        );
        assert_eq!(rules_for_glob("/root/.ssh/id_rsa*").len(), 1);
        assert_eq!(rules_for_glob("/etc/ssh/ssh_host_*key*").len(), 1);
    }
}
