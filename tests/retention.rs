//! Retention by age and count (`prune`, `backup --keep-*`, `push --keep-*`)
//! on directories of real bundles whose names carry made-up times: every
//! rule, the newest-verified guarantee, in-progress directories, and a dry
//! run that decides exactly what the real run then does.

use crate::support;

use std::path::{Path, PathBuf};
use support::cli::{Imlrecover, Output};
use support::host::{copy_tree, Host};
use support::sftp::{names, SftpServer};

/// Newest first. Days: Thu 26, Wed 25, Mon 23 (ISO week 48), Sun 22, Mon 16
/// (week 47), Mon 9 (week 46), then one a month back to August.
const MADE_UP: [&str; 11] = [
    "2026-11-26T18-00-00Z",
    "2026-11-26T06-00-00Z",
    "2026-11-25T06-00-00Z",
    "2026-11-23T06-00-00Z",
    "2026-11-22T06-00-00Z",
    "2026-11-16T06-00-00Z",
    "2026-11-09T06-00-00Z",
    "2026-10-31T06-00-00Z",
    "2026-10-01T06-00-00Z",
    "2026-09-15T06-00-00Z",
    "2026-08-15T06-00-00Z",
];

/// A bundle directory another process (this test) is still writing.
fn busy() -> String {
    format!(".incomplete-2026-11-27T00-00-00Z-{}", std::process::id())
}

fn copy_bundle(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    copy_tree(from, to);
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// One real bundle (files only), copied under every made-up name; the
/// original and `latest` removed; a directory of a backup in progress.
fn made_up_bundles(host: &Host) -> PathBuf {
    host.backup(&host.files_recipe());
    let real = host.latest();
    for name in MADE_UP {
        copy_bundle(&real, &host.bundles.join(name));
    }
    std::fs::remove_dir_all(&real).unwrap();
    std::fs::remove_file(host.bundles.join("latest")).unwrap();
    std::fs::create_dir(host.bundles.join(busy())).unwrap();
    std::fs::write(host.bundles.join(busy()).join("part"), "being written").unwrap();
    host.bundles.clone()
}

fn prune(dir: &Path, rules: &[&str]) -> Output {
    Imlrecover::new()
        .args(["prune", "--bundle-dir"])
        .arg(dir)
        .args(rules)
        .run()
}

fn dirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out.reverse();
    out
}

/// The names a prune's output says it keeps, newest first.
fn kept(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("keep   "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

fn removed(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("remove "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

fn pick(idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| MADE_UP[i].to_string()).collect()
}

#[test]
fn every_rule_and_the_dry_run_decides_what_the_real_run_does() {
    let cases: [(&[&str], &[usize]); 7] = [
        (&["--keep-last", "3"], &[0, 1, 2]),
        // `--keep N` is `--keep-last N`, as it always was.
        (&["--keep", "2"], &[0, 1]),
        // The newest of each of the 3 latest days that have a bundle.
        (&["--keep-daily", "3"], &[0, 2, 3]),
        // ISO weeks 48, 47, 46.
        (&["--keep-weekly", "3"], &[0, 4, 6]),
        (&["--keep-monthly", "3"], &[0, 7, 9]),
        // Less than 2 days before the newest bundle (not before the clock).
        (&["--keep-within", "2days"], &[0, 1, 2]),
        (
            &[
                "--keep-last",
                "1",
                "--keep-daily",
                "2",
                "--keep-monthly",
                "4",
            ],
            &[0, 2, 7, 9, 10],
        ),
    ];
    for (rules, expect) in cases {
        let host = Host::new();
        let dir = made_up_bundles(&host);
        let mut dry_rules = rules.to_vec();
        dry_rules.push("--dry-run");
        let dry = prune(&dir, &dry_rules);
        dry.code(0).stdout_has("Dry run: ");
        assert_eq!(kept(&dry), pick(expect), "{rules:?}\n{}", dry.stdout);
        assert_eq!(
            dirs(&dir).len(),
            MADE_UP.len() + 1,
            "a dry run removes nothing"
        );

        let real = prune(&dir, rules);
        real.code(0);
        assert_eq!(kept(&real), kept(&dry), "{rules:?}");
        assert_eq!(removed(&real), removed(&dry), "{rules:?}");
        let mut left = pick(expect);
        left.push(busy());
        assert_eq!(dirs(&dir), left, "{rules:?}\n{}", real.stdout);
    }
}

#[test]
fn why_each_bundle_stays_is_shown() {
    let host = Host::new();
    let dir = made_up_bundles(&host);
    let out = prune(
        &dir,
        &["--keep-last", "1", "--keep-weekly", "2", "--dry-run"],
    );
    out.code(0)
        .stdout_has(
            "keep   2026-11-26T18-00-00Z  (newest bundle that verifies; last 1; weekly (2026-W48))",
        )
        .stdout_has("keep   2026-11-22T06-00-00Z  (weekly (2026-W47))")
        .stdout_has("remove 2026-11-26T06-00-00Z  (no rule keeps it: last 1, weekly 2)")
        .stdout_has(&format!("skip   {}", busy()))
        .stdout_has("Dry run: 9 would remove, 2 kept (last 1, weekly 2).");
}

/// Overwrites one captured file of a bundle: it no longer verifies.
fn damage(bundle: &Path) {
    let mut stack = vec![bundle.join("files")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                std::fs::write(e.path(), "damaged").unwrap();
                return;
            }
        }
    }
    panic!("no file in {}", bundle.display());
}

#[test]
fn the_newest_bundle_that_verifies_is_never_removed() {
    let host = Host::new();
    let dir = made_up_bundles(&host);
    damage(&dir.join(MADE_UP[0]));
    damage(&dir.join(MADE_UP[1]));
    let out = prune(&dir, &["--keep-last", "1"]);
    out.code(0)
        .stdout_has(&format!("{} does not verify", MADE_UP[0]))
        .stdout_has(&format!("{} does not verify", MADE_UP[1]))
        .stdout_has(&format!(
            "keep   {}  (newest bundle that verifies)",
            MADE_UP[2]
        ));
    assert_eq!(
        dirs(&dir),
        [MADE_UP[0].to_string(), MADE_UP[2].to_string(), busy()],
        "{}",
        out.stdout
    );
}

#[test]
fn prune_without_a_rule_or_directory_is_an_error_and_removes_nothing() {
    let host = Host::new();
    let dir = made_up_bundles(&host);
    prune(&dir, &[])
        .code(1)
        .stderr_has("no retention rule given")
        .stderr_has("--keep-daily");
    prune(&dir, &["--keep-daily", "0"])
        .code(1)
        .stderr_has("--keep-daily");
    prune(&dir, &["--keep-within", "soon"])
        .code(1)
        .stderr_has("7days");
    prune(&host.tmp.path().join("nope"), &["--keep-last", "1"])
        .code(1)
        .stderr_has("is not a directory");
    assert_eq!(dirs(&dir).len(), MADE_UP.len() + 1);
}

#[test]
fn backup_applies_age_rules_after_the_new_bundle_is_complete() {
    let host = Host::new();
    let dir = made_up_bundles(&host);
    Imlrecover::new()
        .args(["backup", "-r"])
        .arg(host.files_recipe())
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle-dir")
        .arg(&dir)
        .args(["--keep-within", "1h", "--keep-monthly", "2"])
        .run()
        .code(0)
        .stdout_has(&format!("pruned {}", dir.join(MADE_UP[1]).display()));
    let left = dirs(&dir);
    // The new bundle (this month), `latest`, the directory still being
    // written and one more month (the newest made-up one); the 1h window
    // holds only the new bundle.
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.contains(&busy()));
    assert!(left.contains(&"latest".to_string()));
    assert!(left.contains(&MADE_UP[0].to_string()), "{left:?}");
    assert!(!left.contains(&MADE_UP[2].to_string()), "{left:?}");
}

#[test]
fn push_applies_the_rules_to_the_remote_bundles() {
    let server = SftpServer::start();
    let host = Host::new();
    let dir = made_up_bundles(&host);
    let remote = host.tmp.path().join("remote");
    std::fs::create_dir(&remote).unwrap();
    for name in &MADE_UP[1..] {
        copy_bundle(&dir.join(name), &remote.join(name));
    }
    Imlrecover::new()
        .arg("push")
        .arg(dir.join(MADE_UP[0]))
        .arg(server.url(&remote))
        .args(server.ssh_args())
        .args(["--keep-daily", "2", "--keep-weekly", "3"])
        .run()
        .code(0)
        .stdout_has("pruned remote");
    assert_eq!(names(&remote), {
        let mut v = pick(&[6, 4, 2, 0]);
        v.sort();
        v
    });
}
