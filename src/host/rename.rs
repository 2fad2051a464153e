//! `rename(2)` that refuses to replace an existing target.
//!
//! Through the raw `renameat2` syscall (Linux 3.15) rather than glibc's
//! wrapper, which only exists since glibc 2.28: the portable build links
//! against glibc 2.17 (EL7). Callers keep their fallback for kernels and
//! filesystems without it (ENOSYS, EINVAL).

use nix::errno::Errno;
use nix::libc;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`.
pub fn renameat2_noreplace(from: &Path, to: &Path) -> nix::Result<()> {
    let from = CString::new(from.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let to = CString::new(to.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}
