//! The binary on the EL7 kernel (Linux 3.10): under a seccomp filter that
//! answers ENOSYS for every system call added since (support::oldkernel),
//! the whole drill, push and pull still work, so every newer call has a
//! fallback. CI runs this module (`cargo test --test main oldkernel::`) with
//! IMLRECOVER_TEST_BIN=target/dist/imlrecover, the portable build; `cargo
//! test` runs it on the binary cargo built. The filter is installed in each
//! child between fork and exec, never in the test process, so these tests
//! share the one test binary with the rest.

use crate::support;

use support::cli::Imlrecover;
use support::manager::{Manager, PLAN};
use support::oldkernel::{self, Getrandom};
use support::sftp::{names, SftpServer};

fn on_3_10(getrandom: Getrandom) -> Imlrecover {
    Imlrecover::from_command(oldkernel::command(oldkernel::binary(), getrandom))
}

/// The filter itself: a call from 3.15 (renameat2) and one from 5.3 (clone3)
/// get ENOSYS, and getrandom (3.17) only when refused. Without this the
/// other tests would prove nothing.
#[test]
fn the_filter_answers_enosys_for_calls_newer_than_3_10() {
    let probe = "import ctypes\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 for nr in (316, 435, 318):\n\
                 \x20   ctypes.set_errno(0)\n\
                 \x20   libc.syscall(nr, 0, 0, 0, 0, 0)\n\
                 \x20   print(nr, ctypes.get_errno())\n";
    let run = |g| {
        let out = oldkernel::command("python3", g)
            .args(["-c", probe])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let enosys = nix::libc::ENOSYS;
    let refused = run(Getrandom::Refused);
    assert!(refused.contains(&format!("316 {enosys}\n")), "{refused}");
    assert!(refused.contains(&format!("435 {enosys}\n")), "{refused}");
    assert!(refused.contains(&format!("318 {enosys}\n")), "{refused}");
    let allowed = run(Getrandom::Allowed);
    assert!(allowed.contains(&format!("316 {enosys}\n")), "{allowed}");
    assert!(!allowed.contains(&format!("318 {enosys}\n")), "{allowed}");
}

/// imlrecover alone (no children) needs not even getrandom.
#[test]
fn validate_and_version_run_without_any_newer_call() {
    on_3_10(Getrandom::Refused)
        .arg("--version")
        .run()
        .code(0)
        .stdout_has("revision: ");
    on_3_10(Getrandom::Refused)
        .args(["validate", "-r", PLAN])
        .run()
        .code(0);
}

/// `imlrecover demo`: backup, disaster, plan, apply, check, with the
/// sandbox's real PostgreSQL and init scripts as children.
#[test]
fn the_demo_drill_passes_on_a_3_10_kernel() {
    let out = on_3_10(Getrandom::Allowed).arg("demo").run();
    out.code(0)
        .stdout_has("Apply complete!")
        .stdout_has("No changes. The host matches the recipe.");
    let last = out.stdout.lines().rev().find(|l| !l.trim().is_empty());
    assert!(
        last.is_some_and(|l| l.starts_with("Restored in ") && l.contains(" rows verified.")),
        "{last:?}"
    );
}

/// backup --push, the manager dies, pull, verify, apply: the restore is
/// byte-for-byte and row-for-row the original.
#[test]
fn push_pull_and_restore_pass_on_a_3_10_kernel() {
    let server = SftpServer::start();
    let mut m = Manager::new();
    let remote = m.tmp.path().join("offsite");
    m.record();

    m.backup_on(on_3_10(Getrandom::Allowed))
        .args(server.push_args(&remote))
        .run()
        .code(0)
        .stdout_has("Push complete:");
    assert_eq!(names(&remote).len(), 1, "one complete remote bundle");

    m.sb.disaster().unwrap();
    std::fs::remove_dir_all(&m.sb.bundles).unwrap();
    let fetched = m.tmp.path().join("fetched");
    server
        .pull_on(on_3_10(Getrandom::Allowed), &remote, &fetched, &[])
        .code(0)
        .stdout_has("Pull complete:");
    m.apply_from(on_3_10(Getrandom::Allowed), &fetched)
        .run()
        .code(0)
        .stdout_has("Apply complete!");
    // Rows and the kept files' bytes (ntp.conf, the authority's key…).
    m.assert_as_recorded();
}
