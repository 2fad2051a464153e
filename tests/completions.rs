//! `completions`, `man` and `--version`: what the RPM ships is generated from
//! the clap definitions, so it cannot drift from `--help`.

use crate::support;

use clap::CommandFactory;
use std::process::Command;
use support::cli::Imlrecover;

fn subcommands() -> Vec<String> {
    imlrecover::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// What bash offers after `imlrecover WORD<TAB>`.
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imlrecover.bash");
    std::fs::write(&path, script).unwrap();
    let cword = words.len() - 1;
    let line = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
         COMP_POINT=${{#COMP_LINE}}; _imlrecover imlrecover \"{}\" \"{}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
        words[cword],
        words[cword.saturating_sub(1)],
    );
    let out = Command::new("bash").args(["-c", &line]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let out = Imlrecover::new().args(["completions", "bash"]).run();
    out.code(0);
    assert_eq!(
        bash_complete(&out.stdout, &["imlrecover", "ver"]),
        ["verify"]
    );
    let all = bash_complete(&out.stdout, &["imlrecover", ""]);
    for sub in subcommands() {
        assert!(all.contains(&sub), "{sub} not offered: {all:?}");
    }
    let opts = bash_complete(&out.stdout, &["imlrecover", "backup", "--bu"]);
    assert_eq!(opts, ["--bundle-dir"]);
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    let zsh = Imlrecover::new().args(["completions", "zsh"]).run();
    zsh.code(0).stdout_has("#compdef imlrecover");
    let fish = Imlrecover::new().args(["completions", "fish"]).run();
    fish.code(0);
    for sub in subcommands() {
        zsh.stdout_has(&format!("'{sub}:"));
        fish.stdout_has(&format!("-a \"{sub}\""));
    }
    Imlrecover::new()
        .args(["completions", "powershell"])
        .run()
        .code(1)
        .stderr_has("[possible values: bash, zsh, fish]");
}

#[test]
fn man_writes_one_page_per_subcommand_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man1");
    Imlrecover::new()
        .arg("man")
        .arg(&man1)
        .run()
        .code(0)
        .stdout_has(&format!("wrote {} man pages", subcommands().len() + 1));
    let mut expected: Vec<String> = subcommands()
        .iter()
        .map(|s| format!("imlrecover-{s}.1"))
        .collect();
    expected.push("imlrecover.1".into());
    expected.sort();
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(pages, expected);

    // man(1) renders the backup page with the options --help shows.
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(man1.join("imlrecover-backup.1"))
        .env("MANWIDTH", "200")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("imlrecover-backup"), "{text}");
    assert!(text.contains("--bundle-dir"), "{text}");
    assert!(text.contains("--keep"), "{text}");

    // Without DIR: imlrecover(1) on stdout.
    Imlrecover::new()
        .arg("man")
        .run()
        .code(0)
        .stdout_has(".TH imlrecover 1");
}

#[test]
fn man_into_an_unwritable_place_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    Imlrecover::new()
        .arg("man")
        .arg(&file)
        .run()
        .code(1)
        .stderr_has("cannot write man pages into")
        .stderr_has("a-file");
}

#[test]
fn version_names_revision_target_and_glibc_floor() {
    let out = Imlrecover::new().arg("--version").run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(concat!("imlrecover ", env!("CARGO_PKG_VERSION")))
    );
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(support::cli::repo())
        .output()
        .unwrap();
    let rev = String::from_utf8_lossy(&rev.stdout).trim().to_string();
    assert!(
        lines.iter().any(|l| *l == format!("revision: {rev}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"target:   x86_64-unknown-linux-gnu"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("glibc:    >= 2.")),
        "{lines:?}"
    );
    // -V stays one line for scripts.
    Imlrecover::new().arg("-V").run().code(0);
    assert_eq!(
        Imlrecover::new().arg("-V").run().stdout,
        concat!("imlrecover ", env!("CARGO_PKG_VERSION"), "\n")
    );
}
