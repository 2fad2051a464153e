//! Faults around a backup and a killed apply: a backup never captures a
//! restore in progress, an empty saved plan goes stale, a daemon a killed
//! apply left without a pid file is ended, a backup blocked by a client's
//! lock says so. The manager setup is faults.rs's `Manager`.

use crate::faults::{kill9, wait_at_most, LockHolder, Manager, SAMPLE, SAMPLE_ROWS};
use crate::support;

use imlrecover::host::postgres as pg;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::cli::Imlrecover;

/// The bundle `latest` points at, and every bundle name.
fn bundles(m: &Manager) -> (PathBuf, Vec<String>) {
    let latest = std::fs::read_link(m.sb.bundles.join("latest")).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&m.sb.bundles)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (latest, names)
}

/// A backup fired (by cron) while an apply restores is refused and writes
/// nothing; with `--wait` it runs after the apply and holds the restored rows.
#[test]
fn a_backup_never_captures_a_restore_in_progress() {
    let m = Manager::backed_up();
    m.drop_chroma();
    // The apply's first step (the quiesce) waits for the gate.
    let gate = m.sb.dir.join("gate");
    let script = m.sb.root.join("etc/init.d/chroma-supervisor");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        text.replacen(
            "    stop) do_stop ;;",
            &format!(
                "    stop) while [ ! -e '{}' ]; do sleep 0.05; done; do_stop ;;",
                gate.display()
            ),
            1,
        ),
    )
    .unwrap();
    let before = bundles(&m);
    let apply = m.spawn_apply(&[]);
    let pid = apply.id().to_string();
    let lock = m.sb.root.join("var/lib/imlrecover/lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid) {
        assert!(Instant::now() < deadline, "the apply never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    m.cmd("backup")
        .arg("--bundle-dir")
        .arg(&m.sb.bundles)
        .args(["--keep", "1"])
        .run()
        .code(1)
        .stderr_has(&format!(
            "another imlrecover apply (pid {pid}) holds the lock"
        ))
        .stderr_has("--wait");
    assert_eq!(bundles(&m), before, "nothing written, latest untouched");
    // The same backup told to wait: it starts once the apply is done.
    let waiting = m
        .backup_on(Imlrecover::new())
        .args(["--wait", "5min"])
        .spawn();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(bundles(&m), before, "the waiting backup has not started");
    std::fs::write(&gate, "").unwrap();
    let (applied, _) = wait_at_most(apply, Duration::from_secs(120));
    applied.code(0).stdout_has("1 restored");
    let (backed_up, _) = wait_at_most(waiting, Duration::from_secs(120));
    backed_up
        .code(0)
        .stdout_has(&format!("Waiting: another imlrecover apply (pid {pid})"))
        .stdout_has("Backup complete:");
    let (latest, names) = bundles(&m);
    assert_ne!(latest, before.0);
    assert_eq!(names.len(), before.1.len() + 1);
    let db = support::host::manifest(&m.sb.bundles.join(&latest))
        .database
        .unwrap();
    assert_eq!(
        db.fingerprint["chroma"][&format!("public.{SAMPLE}")],
        SAMPLE_ROWS,
        "the backup holds the restored rows"
    );
}

/// A saved plan is stale when anything it was planned against moved, the
/// database included: an empty plan does not survive `chroma` renamed away.
#[test]
fn an_empty_saved_plan_is_stale_once_chroma_is_renamed() {
    let m = Manager::backed_up();
    let planfile = m.sb.dir.join("plan.json");
    m.cmd("plan")
        .arg("--out")
        .arg(&planfile)
        .run()
        .code(0)
        .stdout_has("No changes.");
    pg::execute(
        &m.sb.target(),
        "postgres",
        "ALTER DATABASE chroma RENAME TO chroma_renamed",
    )
    .unwrap();
    let out = Imlrecover::new().arg("apply").arg(&planfile).run();
    out.code(1)
        .stderr_has("the saved plan is stale: database.chroma changed on the host");
    assert!(!out.stdout.contains("matches the recipe"), "{}", out.stdout);
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

/// `kill -9` of apply while an init script has started its daemon but not
/// yet written the pid file: the next apply finds the daemon by the run's
/// tag, ends it (its service says stopped) and starts the service once.
#[test]
fn a_daemon_a_killed_apply_left_without_a_pid_file_is_ended() {
    let m = Manager::backed_up();
    let script = m.sb.root.join("etc/init.d/chroma-supervisor");
    assert!(std::process::Command::new(&script)
        .arg("stop")
        .status()
        .unwrap()
        .success());
    let good = std::fs::read_to_string(&script).unwrap();
    let pidfile = m.sb.dir.join("orphan.pid");
    std::fs::write(
        &script,
        good.replacen(
            "    start) do_start ;;",
            &format!(
                "    start) setsid /bin/sleep 86401 & echo $! > '{}'; sleep 600 ;;",
                pidfile.display()
            ),
            1,
        ),
    )
    .unwrap();
    let mut child = m.spawn_apply(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let orphan: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        if Instant::now() > deadline {
            kill9(&mut child);
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text);
            panic!("the daemon never started:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    kill9(&mut child);
    std::fs::write(&script, good).unwrap();
    assert!(alive(orphan), "the daemon outlives the killed apply");
    let out = m.apply();
    let ended = alive(orphan);
    if ended {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(orphan),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    out.code(0)
        .stdout_has(&format!(
            "Orphan: pid {orphan} (chroma-supervisor): /bin/sleep 86401, started by the interrupted run "
        ))
        .stdout_has("ended, chroma-supervisor is not running (no pid file)")
        .stdout_has("start service.chroma_supervisor");
    assert!(!ended, "the orphan was ended");
    m.cmd("plan").arg("--detailed-exitcode").run().code(0);
}

/// A backup never ends a client's session, but it says what it waits for.
#[test]
fn a_backup_blocked_by_a_client_lock_says_so_and_ends_nobody() {
    let m = Manager::backed_up();
    let mut holder = LockHolder::take(&m.sb.target());
    let backup = m.backup_on(Imlrecover::new()).spawn();
    std::thread::sleep(Duration::from_secs(4));
    // The holder's session is intact: it finishes its work and commits.
    assert_eq!(
        holder.commit(),
        "done",
        "the client's session was not ended"
    );
    let (out, _) = wait_at_most(backup, Duration::from_secs(120));
    out.code(0)
        .stdout_has("Blocked: the dump waits for a lock held by pid ")
        .stdout_has("(application \"lock-holder\")")
        .stdout_has("Backup complete:");
}
