//! The files dist/build ships besides the binary: the systemd units must load
//! on EL7's systemd 219, and the EL6 cron example must stay inert.

use std::path::Path;

/// Directives of systemd 219 (CentOS/RHEL 7) that the units may use, with
/// the release that introduced each. RandomizedDelaySec= (229) is not one.
const SYSTEMD_219: &[(&str, &str, u32)] = &[
    ("Unit", "Description", 1),
    ("Unit", "Documentation", 1),
    ("Unit", "After", 1),
    ("Unit", "Wants", 1),
    ("Service", "Type", 1),
    ("Service", "ExecStart", 1),
    ("Service", "Nice", 1),
    ("Service", "IOSchedulingClass", 1),
    ("Service", "IOSchedulingPriority", 1),
    ("Timer", "OnCalendar", 197),
    ("Timer", "AccuracySec", 209),
    ("Timer", "Persistent", 212),
    ("Install", "WantedBy", 1),
];

fn directives(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((key, _)) = line.split_once('=') {
            out.push((section.clone(), key.trim().to_string()));
        } else {
            panic!("{}: not a directive: {line}", path.display());
        }
    }
    out
}

#[test]
fn every_unit_directive_exists_in_systemd_219() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/systemd");
    for unit in ["imlrecover-backup.service", "imlrecover-backup.timer"] {
        let found = directives(&dir.join(unit));
        assert!(!found.is_empty(), "{unit}");
        for (section, key) in found {
            assert!(
                SYSTEMD_219
                    .iter()
                    .any(|(s, k, v)| *s == section && *k == key && *v <= 219),
                "{unit}: [{section}] {key}= is not known to exist in systemd 219"
            );
        }
    }
    // The service runs backup, then audit, of the installed recipe.
    let service = std::fs::read_to_string(dir.join("imlrecover-backup.service")).unwrap();
    let exec: Vec<&str> = service
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 2, "{exec:?}");
    assert!(exec[0].starts_with("/usr/bin/imlrecover backup -r /etc/imlrecover/iml-manager.hcl"));
    assert!(exec[1].starts_with("/usr/bin/imlrecover audit -r /etc/imlrecover/iml-manager.hcl"));
}

#[test]
fn the_el6_cron_example_is_commented_out() {
    let cron = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/cron.d/imlrecover");
    let text = std::fs::read_to_string(cron).unwrap();
    let live: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(live.is_empty(), "active cron lines: {live:?}");
    assert!(text.contains("#30 2 * * * root /usr/bin/imlrecover backup"));
}
