//! Fault injection for the crash tests (tests/apply.rs, tests/plan.rs): with
//! `IMLRECOVER_FAULT=after-step:N` the process kills itself with SIGKILL
//! right after step N is journaled; with `IMLRECOVER_FAULT=restore:BYTES`,
//! once a database restore has streamed that many compressed bytes; with
//! `IMLRECOVER_FAULT=observe-panic:N`, observing the Nth resource in graph
//! order (from 0) panics, as a bug would (tests/plan.rs). Nothing happens
//! without the variable.

const VAR: &str = "IMLRECOVER_FAULT";

fn die() {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
}

fn setting(kind: &str) -> Option<u64> {
    let v = std::env::var(VAR).ok()?;
    let (k, n) = v.split_once(':')?;
    (k == kind).then(|| n.parse().ok()).flatten()
}

pub fn after_step(id: usize) {
    if setting("after-step") == Some(id as u64) {
        die();
    }
}

pub fn restore_progress(bytes: u64) {
    if setting("restore").is_some_and(|n| bytes >= n) {
        die();
    }
}

pub fn observe(index: usize) {
    if setting("observe-panic") == Some(index as u64) {
        panic!("fault injected: observe-panic:{index}");
    }
}

/// Dies at a named point of a restore (`at:NAME`).
pub fn at(point: &str) {
    if std::env::var(VAR).ok().as_deref() == Some(&format!("at:{point}")) {
        die();
    }
}
