//! The docs as written: the scheduled jobs of docs/audit.md and the README's
//! console examples are extracted from the Markdown and run (or checked
//! against systemd 219's directives), so that what a user copies works.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::cli::{fixtures, repo};
use support::host::Host;

/// One fenced block: the heading it is under, its info string, its text.
struct Block {
    heading: String,
    info: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(String, String)> = None;
    for line in markdown.lines() {
        match &mut open {
            Some((info, text)) => {
                if line.trim_start().starts_with("```") {
                    out.push(Block {
                        heading: heading.clone(),
                        info: std::mem::take(info),
                        text: std::mem::take(text),
                    });
                    open = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```") {
                    open = Some((info.trim().to_string(), String::new()));
                } else if line.starts_with('#') {
                    heading = line.trim_start_matches('#').trim().to_string();
                }
            }
        }
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `fixtures/systemd-219-directives.txt`: section -> directives.
fn systemd_219() -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in read("fixtures/systemd-219-directives.txt").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else {
            map.entry(section.clone())
                .or_default()
                .insert(line.to_string());
        }
    }
    map
}

/// The `[Section]` and `Key=` pairs of a unit file, commented-out
/// directives (`# OnFailure=…`, offered to the reader) included.
fn directives(unit: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let body = line.strip_prefix('#').map(str::trim).unwrap_or(line);
        if let Some((key, _)) = body.split_once('=') {
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()) {
                out.push((section.clone(), key.to_string()));
            }
        }
    }
    out
}

fn scheduling_units() -> Vec<Block> {
    blocks(&read("docs/audit.md"))
        .into_iter()
        .filter(|b| b.info == "ini" && b.heading.starts_with("systemd timer"))
        .collect()
}

#[test]
fn the_documented_systemd_units_use_only_directives_of_systemd_219() {
    let known = systemd_219();
    let doc = read("docs/audit.md");
    let units = scheduling_units();
    assert_eq!(units.len(), 2, "the service and the timer");
    for unit in &units {
        for (section, key) in directives(&unit.text) {
            let ok = known.get(&section).is_some_and(|s| s.contains(&key));
            assert!(ok, "[{section}] {key}= does not exist in systemd 219 (EL7)");
            // The docs say which version each directive needs.
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}=` |")))
                .unwrap_or_else(|| panic!("docs/audit.md has no version row for {key}="));
            let version: u32 = row
                .trim_end_matches('|')
                .rsplit('|')
                .next()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no version in {row:?}"));
            assert!(version <= 219, "{row}");
        }
    }
}

#[test]
fn documentation_urls_name_files_the_install_steps_install() {
    let readme = read("README.md");
    let install = blocks(&readme)
        .into_iter()
        .filter(|b| b.heading == "Install")
        .map(|b| b.text)
        .collect::<String>();
    let mut named = 0;
    for unit in scheduling_units() {
        for line in unit.text.lines() {
            if let Some(url) = line.strip_prefix("Documentation=") {
                let path = url.strip_prefix("file://").unwrap_or_else(|| {
                    panic!("{url}: only file:// documentation can be checked here")
                });
                assert!(
                    install.lines().any(|l| l.contains(path)),
                    "Documentation={url}, but the README's install steps do not install {path}:\n{install}"
                );
                named += 1;
            }
        }
    }
    assert!(named > 0);
}

#[test]
fn the_install_steps_put_the_binary_where_the_docs_run_it() {
    let install = blocks(&read("README.md"))
        .into_iter()
        .filter(|b| b.heading == "Install")
        .map(|b| b.text)
        .collect::<String>();
    let line = install
        .lines()
        .find(|l| l.starts_with("cargo install "))
        .expect("a cargo install line");
    // Without --locked cargo re-resolves the dependencies the tests never ran.
    assert!(line.contains(" --locked"), "{line}");
    let root = line
        .split_whitespace()
        .skip_while(|w| *w != "--root")
        .nth(1)
        .unwrap_or("~/.cargo");
    let bin = format!("{root}/bin/imlrecover");
    let audit = read("docs/audit.md");
    assert!(audit.contains(&bin), "docs/audit.md runs {bin}");
    for text in [&audit, &read("README.md")] {
        for word in text.split_whitespace() {
            let word = word.trim_matches(|c: char| "`=();,".contains(c));
            if word.starts_with('/') && word.ends_with("bin/imlrecover") {
                assert_eq!(
                    word, bin,
                    "the docs run {word}; cargo install puts it in {bin}"
                );
            }
        }
    }
}

/// Runs a documented command line with the production paths swapped for
/// the test host's, as `/bin/sh -c` does for cron and systemd.
fn run_documented(line: &str, host: &Host, recipe: &Path, log: &Path) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_imlrecover");
    let command = line
        .replace("/usr/local/bin/imlrecover", bin)
        .replace(
            "/etc/imlrecover/iml-manager.hcl",
            &recipe.display().to_string(),
        )
        .replace(" --root / ", &format!(" --root {} ", host.root.display()))
        .replace(
            "/var/backups/imlrecover",
            &host.bundles.display().to_string(),
        )
        .replace("/var/log/imlrecover-audit.log", &log.display().to_string());
    assert!(
        !command.contains(" /etc/") && !command.contains(" /var/"),
        "{command}"
    );
    // What cron mails is everything the job printed, both streams.
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec 2>&1; {command}"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run /bin/sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn cron_command() -> String {
    let block = blocks(&read("docs/audit.md"))
        .into_iter()
        .find(|b| b.heading.starts_with("cron"))
        .expect("docs/audit.md has a cron section");
    let line = block
        .text
        .lines()
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit() || c == '*'))
        .expect("a crontab line")
        .to_string();
    // minute hour day month weekday user command
    let fields: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(fields[5], "root", "{line}");
    fields[6].to_string()
}

const YESTERDAY: &str = "Audit: clean (yesterday's report).\n";

fn audit_recipe() -> std::path::PathBuf {
    fixtures().join("audit/el6-files.hcl")
}

#[test]
fn the_documented_cron_line_reports_a_failed_backup_as_itself() {
    let host = Host::new();
    let log = host.tmp.path().join("audit.log");
    std::fs::write(&log, YESTERDAY).unwrap();
    // A file the recipe requires is gone: the backup fails.
    std::fs::remove_file(host.file("/etc/hosts")).unwrap();
    let (code, mail) = run_documented(&cron_command(), &host, &audit_recipe(), &log);
    assert_ne!(code, 0, "a failed backup must fail the job:\n{mail}");
    assert!(
        mail.contains("/etc/hosts"),
        "the backup's own error:\n{mail}"
    );
    assert!(
        !mail.contains("yesterday"),
        "the mail is not yesterday's audit report:\n{mail}"
    );
}

#[test]
fn the_documented_cron_line_mails_drift_and_nothing_when_clean() {
    let host = Host::new();
    let log = host.tmp.path().join("audit.log");
    let (code, mail) = run_documented(&cron_command(), &host, &audit_recipe(), &log);
    assert_eq!(
        (code, mail.as_str()),
        (0, ""),
        "a clean night mails nothing"
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("Audit: clean"));

    let stale = host.file("/var/log/chroma/client_errors.log");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "stale\n").unwrap();
    let (code, mail) = run_documented(&cron_command(), &host, &audit_recipe(), &log);
    assert_eq!(code, 2, "drift is the audit's exit 2:\n{mail}");
    assert!(mail.contains("FAIL - absent.client_errors_log"), "{mail}");
}

#[test]
fn the_documented_service_unit_stops_at_a_failed_backup() {
    let service = scheduling_units()
        .into_iter()
        .find(|u| u.text.contains("[Service]"))
        .expect("the service unit");
    let exec: Vec<&str> = service
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 2, "backup, then audit");
    // systemd runs Type=oneshot ExecStart= lines in order and stops at the
    // first that fails; the unit fails with it.
    let run_unit = |host: &Host| -> Vec<i32> {
        let log = host.tmp.path().join("unused.log");
        let mut codes = Vec::new();
        for line in &exec {
            let (code, _) = run_documented(line, host, &audit_recipe(), &log);
            codes.push(code);
            if code != 0 {
                break;
            }
        }
        codes
    };
    let host = Host::new();
    assert_eq!(run_unit(&host), [0, 0]);
    std::fs::remove_file(host.file("/etc/hosts")).unwrap();
    assert_eq!(
        run_unit(&host),
        [1],
        "the audit does not run after a failed backup"
    );
}

/// ```console blocks: `$ imlrecover ARGS` (or `$ cd DIR`) lines, each
/// followed by exactly the output the command prints (stdout, then stderr).
#[test]
fn readme_console_examples_print_what_they_say() {
    let readme = read("README.md");
    let examples: Vec<Block> = blocks(&readme)
        .into_iter()
        .filter(|b| b.info == "console")
        .collect();
    assert!(examples.len() >= 2, "the README's output examples");
    for example in examples {
        let mut dir = repo();
        let mut pending: Option<(String, String)> = None;
        let check = |cmd: &str, expected: &str, dir: &Path| {
            let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
            let out = support::cli::Imlrecover::new()
                .current_dir(dir)
                .args(&args)
                .run();
            let actual = format!("{}{}", out.stdout, out.stderr);
            assert_eq!(
                actual.trim_end(),
                expected.trim_end(),
                "README example `{cmd}` (in {})",
                dir.display()
            );
        };
        for line in example.text.lines() {
            if let Some(cmd) = line.strip_prefix("$ ") {
                if let Some((c, e)) = pending.take() {
                    check(&c, &e, &dir);
                }
                if let Some(d) = cmd.strip_prefix("cd ") {
                    dir = repo().join(d.trim());
                } else {
                    assert!(cmd.starts_with("imlrecover "), "{cmd}");
                    pending = Some((cmd.to_string(), String::new()));
                }
            } else if let Some((_, expected)) = &mut pending {
                expected.push_str(line);
                expected.push('\n');
            }
        }
        if let Some((c, e)) = pending.take() {
            check(&c, &e, &dir);
        }
    }
}
