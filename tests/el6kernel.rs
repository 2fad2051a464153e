//! The binary on the EL6 kernel (Linux 2.6.32): under a seccomp filter that
//! answers ENOSYS for every x86_64 system call added since, imlrecover on
//! its own (no PostgreSQL, no PAM children: this machine's are built for
//! kernels >= 3.2) backs up, verifies, plans and restores files. CI runs
//! this file with IMLRECOVER_TEST_BIN=target/dist/el6/imlrecover when
//! `dist/build --el6` made it; `cargo test` runs it on the binary cargo built.
//!
//! The C library under test is this machine's, not EL6's glibc 2.12: what
//! this proves is that imlrecover, its crates and Rust's std fall back from
//! every newer call, not that glibc 2.12 runs the binary.

use crate::support;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use support::cli::Imlrecover;

/// x86_64 system calls added after 2.6.32 (whose last, 298, is
/// perf_event_open, 2.6.31): 299 recvmmsg (2.6.33) … 334 rseq (4.18), then
/// the numbers shared by all architectures from 424 (5.1) on.
const AFTER_2_6_32: [std::ops::RangeInclusive<i64>; 2] = [299..=334, 424..=470];

fn filter() -> BpfProgram {
    let rules: BTreeMap<i64, Vec<_>> = AFTER_2_6_32
        .into_iter()
        .flatten()
        .map(|nr| (nr, Vec::new()))
        .collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(nix::libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .and_then(BpfProgram::try_from)
    .expect("a valid seccomp filter")
}

fn on_2_6_32(program: impl Into<PathBuf>) -> Command {
    let bpf = filter();
    let mut cmd = Command::new(program.into());
    // SAFETY: apply_filter makes two system calls (prctl, seccomp) on memory
    // prepared before the fork; nothing is allocated in the child.
    unsafe {
        cmd.pre_exec(move || seccompiler::apply_filter(&bpf).map_err(std::io::Error::other));
    }
    cmd
}

fn imlrecover() -> Imlrecover {
    Imlrecover::from_command(on_2_6_32(support::oldkernel::binary()))
}

/// The filter itself: recvmmsg (2.6.33), prlimit64 (2.6.36), renameat2
/// (3.15), getrandom (3.17), statx (4.11) and openat2 (5.6) get ENOSYS,
/// perf_event_open (2.6.31) does not. Without this the others prove nothing.
#[test]
fn the_filter_answers_enosys_for_calls_newer_than_2_6_32() {
    let probe = "import ctypes\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 for nr in (299, 302, 316, 318, 332, 437, 298):\n\
                 \x20   ctypes.set_errno(0)\n\
                 \x20   libc.syscall(nr, 0, 0, 0, 0, 0)\n\
                 \x20   print(nr, ctypes.get_errno())\n";
    let out = on_2_6_32("python3")
        .args(["-c", probe])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{out:?}");
    let got = String::from_utf8_lossy(&out.stdout);
    let enosys = nix::libc::ENOSYS;
    for nr in [299, 302, 316, 318, 332, 437] {
        assert!(got.contains(&format!("{nr} {enosys}\n")), "{nr}: {got}");
    }
    assert!(got.contains("298 "), "{got}");
    assert!(!got.contains(&format!("298 {enosys}\n")), "{got}");
}

#[test]
fn version_and_validate_run_on_2_6_32() {
    imlrecover()
        .arg("--version")
        .run()
        .code(0)
        .stdout_has("revision: ");
    imlrecover()
        .args(["validate", "-r", "plans/iml-manager.hcl"])
        .run()
        .code(0);
}

/// backup, verify, a lost and a changed file, plan, apply: the bytes come
/// back, every rename, open and stat through its pre-3.x fallback.
#[test]
fn files_back_up_and_restore_on_2_6_32() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let bundles = tmp.path().join("bundles");
    let data = root.join("srv/data");
    std::fs::create_dir_all(&data).unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                data.join(format!("f{i}")),
                format!("file {i}\n").repeat(100 + i).into_bytes(),
            )
        })
        .collect();
    for (p, bytes) in &files {
        std::fs::write(p, bytes).unwrap();
    }
    let recipe = support::cli::repo().join("benches/recipes/files-glob.hcl");
    imlrecover()
        .args(["backup", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&root)
        .arg("--bundle-dir")
        .arg(&bundles)
        .run()
        .code(0);
    let bundle = std::fs::canonicalize(bundles.join("latest")).unwrap();
    imlrecover().arg("verify").arg(&bundle).run().code(0);

    std::fs::remove_file(&files[0].0).unwrap();
    std::fs::write(&files[1].0, b"changed\n").unwrap();
    let plan = || {
        imlrecover()
            .args(["plan", "--detailed-exitcode", "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&root)
            .arg("--bundle")
            .arg(&bundle)
            .run()
    };
    plan().code(2);
    imlrecover()
        .args(["apply", "--auto-approve", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&root)
        .arg("--bundle")
        .arg(&bundle)
        .run()
        .code(0)
        .stdout_has("Apply complete!");
    for (p, bytes) in &files {
        assert_eq!(&std::fs::read(p).unwrap(), bytes, "{}", p.display());
    }
    plan().code(0);
}
