//! `imlrecover apply` in the runbook's order, killed at every step boundary
//! (and in the middle of the restore) and then run again: it converges,
//! carries over the restarts a killed run owed, and fails a step on a full
//! disk keeping the old file. The drill setup is apply.rs's `Drill`.

use crate::apply::Drill;
use crate::support;

use imlrecover::sandbox::initd;
use std::path::Path;

/// Crash (SIGKILL) at a point, then apply again: the end state is the
/// uninterrupted one and nothing is lost.
/// The id of the step doing `op` on `address` in the plan apply will run.
fn step_id(d: &Drill, op: &str, address: &str) -> usize {
    let out = d.cmd("plan").arg("--json").run();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == op && s["address"] == address)
        .and_then(|s| s["id"].as_u64())
        .unwrap_or_else(|| panic!("no step {op} {address}")) as usize
}

/// The plan after a disaster follows the runbook: the OS files the
/// installer depends on, the installer, the quiesce stops, the other files,
/// ntpd restarted for its restored ntp.conf and PostgreSQL up (the database
/// depends on it) before the restore, the quiesced services after it.
#[test]
fn steps_follow_the_runbook_order() {
    let d = Drill::after_disaster();
    let out = d.cmd("plan").arg("--json").run();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let id = |op: &str, address: &str| {
        steps
            .iter()
            .find(|s| s["op"] == op && s["address"] == address)
            .and_then(|s| s["id"].as_u64())
            .unwrap_or_else(|| panic!("no step {op} {address}"))
    };
    let installer = id("run", "exec.installer");
    for f in [
        "file.yum_conf",
        "files.yum_repos",
        "file.passwd",
        "file.group",
    ] {
        assert!(id("write", f) < installer, "{f} before the installer");
    }
    assert!(installer < id("write", "file.ntp_conf"));
    let restore = id("restore", "database.chroma");
    assert!(id("write", "file.ntp_conf") < id("restart", "service.ntpd"));
    assert!(id("restart", "service.ntpd") < restore);
    assert!(id("start", "service.postgresql") < restore);
    for s in [
        "service.rabbitmq_server",
        "service.httpd",
        "service.chroma_supervisor",
    ] {
        assert!(installer < id("stop", s) && id("stop", s) < restore);
        assert!(restore < id("start", s));
    }
}

/// Dies right after the step doing `op` on `address`.
fn crash_after(op: &str, address: &str) {
    crash_then_converge(|d| format!("after-step:{}", step_id(d, op, address)));
}

fn crash_then_converge(fault: impl Fn(&Drill) -> String) {
    let d = Drill::after_disaster();
    let fault = fault(&d);
    let out = d
        .cmd("apply")
        .arg("--auto-approve")
        .env("IMLRECOVER_FAULT", &fault)
        .run();
    assert_eq!(
        out.code, -1,
        "killed by SIGKILL at {fault}\n{}\n{}",
        out.stdout, out.stderr
    );
    let again = d.apply();
    again.code(0).stdout_has("Resuming: the run");
    // Either something was left to do, or the killed run had done it all.
    assert!(
        again.stdout.contains("Apply complete!")
            || again
                .stdout
                .contains("No changes. The host matches the recipe."),
        "{}",
        again.stdout
    );
    d.assert_restored();
    // The killed run's directory (previous contents, safety dump) is kept,
    // and no later apply resumes it again.
    assert!(!d.run_dirs().is_empty());
    // The safety dump runs on a thread beside the file steps: a kill may
    // leave a `.partial`, never a truncated dump under the final name.
    for f in d.safety_dumps() {
        let name = f.display().to_string();
        if name.ends_with(".sql.gz") {
            let mut sql = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&f).unwrap()),
                &mut sql,
            )
            .unwrap();
            assert!(
                sql.contains("PostgreSQL database cluster dump complete"),
                "{name} is truncated"
            );
        }
    }
    d.apply().code(0).stdout_has("No changes.");
    assert!(!d.apply().stdout.contains("Resuming"));
}

#[test]
fn killed_after_the_installer() {
    crash_after("run", "exec.installer");
}

#[test]
fn killed_between_file_writes() {
    crash_after("write", "file.resolv_conf");
}

#[test]
fn killed_after_the_quiesce_stops() {
    crash_after("stop", "service.rabbitmq_server");
}

#[test]
fn killed_after_the_certificates() {
    crash_after("restore", "cert.manager");
}

#[test]
fn killed_after_the_database_restore() {
    crash_after("restore", "database.chroma");
}

#[test]
fn killed_between_service_starts() {
    crash_after("start", "service.httpd");
}

#[test]
fn killed_in_the_middle_of_the_restore() {
    crash_then_converge(|_| "restore:1".to_string());
}

#[test]
fn a_notify_restart_owed_by_a_killed_run_is_carried_over() {
    let d = Drill::golden();
    std::fs::write(d.sb.root.join("etc/ntp.conf"), "server 192.0.2.1 iburst\n").unwrap();
    let before = ntpd_starts(&d.sb.root);
    // Step 1 writes ntp.conf, step 2 restarts ntpd: die in between.
    let out = d
        .cmd("apply")
        .arg("--auto-approve")
        .env("IMLRECOVER_FAULT", "after-step:1")
        .run();
    assert_eq!(out.code, -1);
    assert_eq!(ntpd_starts(&d.sb.root), before, "ntpd not restarted yet");
    d.apply()
        .code(0)
        .stdout_has("restart service.ntpd (owed by the interrupted run");
    assert_eq!(
        ntpd_starts(&d.sb.root),
        before + 1,
        "the owed restart ran once"
    );
    d.assert_restored();
}

/// How often ntpd's init script started it.
fn ntpd_starts(root: &Path) -> usize {
    initd::actions(root, "ntpd")
        .iter()
        .filter(|a| *a == "start")
        .count()
}

/// Only restart and remote-action lines of the journal are fsynced: a power
/// cut may lose the line of a file step. The restart it caused is still
/// owed, because a fresh plan no longer sees the change.
#[test]
fn a_restart_is_owed_even_when_the_journal_lost_its_cause() {
    let d = Drill::golden();
    std::fs::write(d.sb.root.join("etc/ntp.conf"), "server 192.0.2.1 iburst\n").unwrap();
    let out = d
        .cmd("apply")
        .arg("--auto-approve")
        .env("IMLRECOVER_FAULT", "after-step:1")
        .run();
    assert_eq!(out.code, -1);
    // What a power cut before the next fsync would leave: no line at all.
    let runs = d.run_dirs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    std::fs::write(runs[0].join("journal.jsonl"), "").unwrap();
    let starts_before = ntpd_starts(&d.sb.root);
    d.apply()
        .code(0)
        .stdout_has("Resuming: the run")
        .stdout_has("restart service.ntpd (owed by the interrupted run");
    assert_eq!(
        ntpd_starts(&d.sb.root),
        starts_before + 1,
        "ntpd restarted once"
    );
    d.assert_restored();
}

#[test]
fn a_full_disk_fails_the_step_and_keeps_the_old_file() {
    let host = support::host::Host::new();
    let recipe = host.files_recipe();
    host.backup(&recipe);
    let repos = host.file("/etc/yum.repos.d");
    let saved = host.tmp.path().join("repos-saved");
    std::fs::create_dir(&saved).unwrap();
    for e in std::fs::read_dir(&repos).unwrap().flatten() {
        std::fs::copy(e.path(), saved.join(e.file_name())).unwrap();
    }
    std::fs::write(saved.join("chroma.repo"), "[chroma]\nbaseurl=OLD-CONTENT\n").unwrap();
    // In a private mount namespace: yum.repos.d becomes a full 16 KiB tmpfs
    // holding the drifted repo file; apply must fail on it and leave it be.
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs '{repos}' && cp '{saved}'/* '{repos}'/ && \
         (dd if=/dev/zero of='{repos}/filler' bs=1k count=64 2>/dev/null; true) && \
         '{bin}' apply -r '{recipe}' --root '{root}' --bundle '{bundle}' --auto-approve; \
         echo \"exit=$?\"; cat '{repos}/chroma.repo'",
        repos = repos.display(),
        saved = saved.display(),
        bin = env!("CARGO_BIN_EXE_imlrecover"),
        recipe = recipe.display(),
        root = host.root.display(),
        bundle = host.latest().display(),
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("exit=1"), "{stdout}\n{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("/etc/yum.repos.d/chroma.repo"), "{stderr}");
    assert!(
        stdout.contains("baseurl=OLD-CONTENT"),
        "the old file is intact:\n{stdout}"
    );
    assert!(stdout.contains("Not attempted ("), "{stdout}");
}
