//! `imlrecover demo`, the README's first command: it must run the whole
//! drill with real parts, narrate it, and leave nothing behind.

mod support;

use support::cli::Imlrecover;

#[test]
fn the_demo_restores_a_sandbox_manager_and_cleans_up() {
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
    // No service daemon of the sandbox is left running.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.starts_with("imlrecover-sandbox ") && l.contains(sandbox))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "daemons outlived the demo: {left:?}");
}

fn sandbox_daemons(root: &std::path::Path) -> usize {
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let marker = imlrecover::sandbox::initd::marker(root, "httpd");
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.starts_with(&marker))
        .count()
}

#[test]
fn sandbox_daemons_can_be_told_by_their_sandbox() {
    // What the demo test relies on: `ps` shows whose a daemon is.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let script = imlrecover::sandbox::initd::write_service(&root, "httpd").unwrap();
    let run = |a: &str| {
        std::process::Command::new(&script)
            .arg(a)
            .output()
            .unwrap()
            .status
    };
    assert!(run("start").success());
    // start-stop-daemon --background returns before bash has exec'd the
    // daemon under its marker name: give it a moment to show up.
    for _ in 0..500 {
        if sandbox_daemons(&root) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(sandbox_daemons(&root), 1);
    assert!(run("stop").success());
    assert_eq!(sandbox_daemons(&root), 0);
    assert_eq!(
        imlrecover::sandbox::initd::actions(&root, "httpd"),
        ["start", "stop"]
    );
}
