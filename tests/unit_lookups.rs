//! The systemd backend under `--root` (#22 item 3): a unit file under the
//! root that is a link out of it is neither read nor run. systemctl is
//! docker-systemctl-replacement with its own `--root` (installed by .ci/run
//! into target/test-tools/systemctl), which follows such a link itself.

use crate::support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use support::cli::Imlrecover;
use support::host::Host;

fn tools() -> PathBuf {
    let dir = support::cli::repo().join("target/test-tools/systemctl");
    assert!(
        dir.join("systemctl2/systemctl3.py").is_file(),
        "docker-systemctl-replacement is missing: pip3 install --target {} docker-systemctl-replacement (.ci/run does)",
        dir.display()
    );
    dir
}

/// A oneshot unit that leaves `marker` when started.
fn unit(path: &Path, marker: &Path) {
    std::fs::write(
        path,
        format!(
            "[Unit]\nDescription=web\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/touch {}\n",
            marker.display()
        ),
    )
    .unwrap();
}

fn run(cmd: &str, host: &Host, recipe: &Path) -> support::cli::Output {
    let tools = tools();
    Imlrecover::new()
        .args([cmd, "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(host.latest())
        .args((cmd == "apply").then_some("--auto-approve"))
        .env(
            "IMLRECOVER_SYSTEMCTL",
            format!(
                "python3 {} --root={}",
                tools.join("systemctl2/systemctl3.py").display(),
                host.root.display()
            ),
        )
        .env("PYTHONPATH", &tools)
        .run()
}

#[test]
fn a_unit_file_linked_out_of_the_root_is_not_read_or_run() {
    let host = Host::new();
    let recipe = host.tmp.path().join("web.hcl");
    std::fs::write(
        &recipe,
        "imlrecover {\n  services = \"systemd\"\n}\n\nservice \"web\" {\n  state = \"running\"\n}\n",
    )
    .unwrap();
    host.backup(&recipe);
    let units = host.file("/etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();

    // The host's unit, outside the root, and a link to it under the root.
    let outside = host.tmp.path().join("host-units");
    std::fs::create_dir(&outside).unwrap();
    let marker = host.tmp.path().join("ran-the-hosts-unit");
    unit(&outside.join("evil.service"), &marker);
    symlink(outside.join("evil.service"), units.join("web.service")).unwrap();
    for cmd in ["plan", "apply"] {
        run(cmd, &host, &recipe)
            .code(1)
            .stderr_has("which leads out of it");
    }
    assert!(!marker.exists(), "apply ran the unit outside the root");

    // A directory on the way that links out is refused the same way.
    std::fs::remove_file(units.join("web.service")).unwrap();
    std::fs::remove_dir(&units).unwrap();
    let outside_dir = host.tmp.path().join("host-system");
    std::fs::create_dir(&outside_dir).unwrap();
    unit(&outside_dir.join("web.service"), &marker);
    symlink(&outside_dir, &units).unwrap();
    run("apply", &host, &recipe)
        .code(1)
        .stderr_has("which leads out of it");
    assert!(!marker.exists(), "apply ran the unit outside the root");

    // The same unit inside the root is started: the refusal is the link.
    std::fs::remove_file(&units).unwrap();
    std::fs::create_dir(&units).unwrap();
    let inside = host.file("/var/tmp/ran-the-roots-unit");
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    unit(&units.join("web.service"), &inside);
    run("apply", &host, &recipe).code(0);
    assert!(inside.exists(), "the root's own unit was started");
    assert!(!marker.exists());
}

/// A unit named with a dot that is not its type (`postgresql-9.6`, IML
/// 6.1's PostgreSQL) is `postgresql-9.6.service` to systemctl, and is
/// checked as that file: a link of it out of the root is refused too.
#[test]
fn a_dotted_service_name_is_checked_as_its_service_file() {
    let host = Host::new();
    let recipe = host.tmp.path().join("pg.hcl");
    std::fs::write(
        &recipe,
        "imlrecover {\n  services = \"systemd\"\n}\n\nservice \"postgresql\" {\n  name  = \"postgresql-9.6\"\n  state = \"running\"\n}\n",
    )
    .unwrap();
    host.backup(&recipe);
    let units = host.file("/etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    let outside = host.tmp.path().join("host-units");
    std::fs::create_dir(&outside).unwrap();
    let marker = host.tmp.path().join("ran-the-hosts-unit");
    unit(&outside.join("evil.service"), &marker);
    symlink(
        outside.join("evil.service"),
        units.join("postgresql-9.6.service"),
    )
    .unwrap();
    run("apply", &host, &recipe)
        .code(1)
        .stderr_has("which leads out of it");
    assert!(!marker.exists(), "apply ran the unit outside the root");
}
