//! Helpers of the monitoring tests: the audit recipe without a database,
//! backup/audit runs against a fixture host, JSON findings, promtool.

use super::cli::{fixtures, Output};
use super::host::Host;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn recipe() -> PathBuf {
    fixtures().join("audit/el6-files.hcl")
}

pub fn backup(host: &Host, extra: &[&str]) -> Output {
    host.try_backup(&recipe(), extra)
}

pub fn audit(host: &Host, extra: &[&str]) -> Output {
    host.audit(&recipe(), extra)
}

pub fn nagios(host: &Host, extra: &[&str]) -> Output {
    let mut args = vec!["--format", "nagios"];
    args.extend_from_slice(extra);
    let out = audit(host, &args);
    assert_eq!(out.stdout.lines().count(), 1, "one line:\n{}", out.stdout);
    out
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.stdout))
}

/// The finding of `check` in a JSON audit report.
pub fn finding(v: &serde_json::Value, check: &str) -> serde_json::Value {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == check)
        .cloned()
        .unwrap_or_else(|| panic!("no {check} finding in {v:#}"))
}

pub fn promtool_check(file: &Path) {
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n--- file\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

/// The value of an unlabelled sample in text exposition format.
pub fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
