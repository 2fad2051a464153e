//! `imlrecover demo`, the README's first command: it must run the whole
//! drill with real parts, narrate it, and leave nothing behind.

mod support;

use support::cli::Imlrecover;

#[test]
fn the_demo_restores_a_sandbox_manager_and_cleans_up() {
    let before = daemons();
    let out = Imlrecover::new().arg("demo").run();
    out.code(0);
    for phase in [
        "== 1. A working IML manager ==",
        "== 2. Backup",
        "== 3. Disaster",
        "== 4. Plan: what a restore would change ==",
        "-/+ database.chroma",
        "== 5. Apply",
        "Apply complete!",
        "== 6. Check",
        "No changes. The host matches the recipe.",
        "certificates: byte-for-byte the originals, and manager.crt verifies against authority.crt",
    ] {
        out.stdout_has(phase);
    }
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(last.starts_with("Restored in "), "{last}");
    assert!(last.contains(" files, 575 rows verified."), "{last}");
    let sandbox = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sandbox: "))
        .expect("the demo names its sandbox");
    assert!(
        !std::path::Path::new(sandbox).exists(),
        "the sandbox {sandbox} was removed"
    );
    // No service daemon and no postmaster of the sandbox is left running.
    assert_eq!(
        daemons(),
        before,
        "a process of the sandbox outlived the demo"
    );
}

/// (sandbox service daemons, postmasters) running now.
fn daemons() -> (usize, usize) {
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ps.stdout).into_owned();
    let services = text
        .lines()
        .filter(|l| l.trim() == "/bin/sleep 86400")
        .count();
    let postmasters = text
        .lines()
        .filter(|l| l.contains("postgres") && l.contains(" -D "))
        .count();
    (services, postmasters)
}
