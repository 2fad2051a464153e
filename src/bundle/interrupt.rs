//! Ctrl-C and SIGTERM. Their default action kills the process before any
//! `Drop` runs, which would leave a temporary bundle (possibly gigabytes of
//! dump) and throwaway PostgreSQL clusters behind. The handler only sets a
//! flag; a watcher thread then removes the registered temporary bundles,
//! stops the clusters, and exits with 130.

use crate::host::postgres as pg;
use crate::views::progress as view;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Temporary bundle directories to remove on interrupt. Held while a bundle
/// is renamed into place, so the watcher never deletes one mid-rename.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn dirs() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere must not stop the cleanup.
    DIRS.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn on_signal(_: nix::libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handler and the watcher (once per process).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic.
            let _ = unsafe { sigaction(sig, &action) };
        }
        std::thread::spawn(watch);
    });
}

fn watch() {
    while !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep the lock until exit: no rename may start after this point.
    let dirs = dirs();
    for d in dirs.iter() {
        if std::fs::remove_dir_all(d).is_ok() {
            view::interrupted_bundle(d);
        }
    }
    let n = pg::cleanup_all();
    if n > 0 {
        view::interrupted_clusters(n);
    }
    if dirs.is_empty() && n == 0 {
        view::interrupted();
    }
    std::process::exit(130);
}

pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// On a failure path: if the failure came from Ctrl-C (our children get the
/// signal too), do not report it as something else; the watcher is about to
/// clean up and exit 130.
pub fn wait_if_interrupted() {
    while is_interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes `dir` if we are interrupted before [`unregister`].
pub fn register(dir: &Path) {
    install();
    dirs().push(dir.to_path_buf());
}

pub fn unregister(dir: &Path) {
    dirs().retain(|d| d != dir);
}

/// Runs `rename` (moving a registered `dir` to its final name) so that the
/// watcher either removes `dir` first or finds it gone: never half-way.
pub fn while_renaming<T>(dir: &Path, rename: impl FnOnce() -> T) -> T {
    let mut dirs = dirs();
    let out = rename();
    dirs.retain(|d| d != dir);
    out
}
