//! Runs a binary as if on the EL7 kernel (Linux 3.10): a seccomp filter
//! answers ENOSYS for every x86_64 system call added after 3.10, so each
//! newer call the binary (or a crate, or glibc) makes must fall back.
//!
//! The binary is `IMLRECOVER_TEST_BIN` when set (CI: the portable
//! target/dist/imlrecover), else the one cargo built.

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// x86_64 system call numbers added after Linux 3.10 (finit_module, 313,
/// came with 3.8): 314 sched_setattr (3.14) … 334 rseq (4.18), then the
/// numbers shared by all architectures from 424 pidfd_send_signal (5.1) on.
pub const AFTER_3_10: [std::ops::RangeInclusive<i64>; 2] = [314..=334, 424..=470];
pub const SYS_GETRANDOM: i64 = 318;

/// Whether `getrandom(2)` (3.17) is also refused. The drill's children come
/// from this machine (Debian's runuser/PAM, PostgreSQL 15, OpenSSL 3), not
/// from EL7, and some need it; imlrecover alone runs without it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Getrandom {
    Allowed,
    Refused,
}

pub fn filter(getrandom: Getrandom) -> BpfProgram {
    let mut rules = BTreeMap::new();
    for range in AFTER_3_10 {
        for nr in range {
            if nr == SYS_GETRANDOM && getrandom == Getrandom::Allowed {
                continue;
            }
            rules.insert(nr, Vec::new());
        }
    }
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(nix::libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .and_then(BpfProgram::try_from)
    .expect("a valid seccomp filter")
}

/// The binary under test.
pub fn binary() -> PathBuf {
    match std::env::var_os("IMLRECOVER_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_imlrecover")),
    }
}

/// `program` that will run under the filter (installed between fork and exec).
pub fn command(program: impl Into<PathBuf>, getrandom: Getrandom) -> Command {
    let bpf = filter(getrandom);
    let mut cmd = Command::new(program.into());
    // SAFETY: apply_filter makes two system calls (prctl, seccomp) on memory
    // prepared before the fork; nothing is allocated in the child.
    unsafe {
        cmd.pre_exec(move || seccompiler::apply_filter(&bpf).map_err(std::io::Error::other));
    }
    cmd
}
