//! `imlrecover demo`, the README's first command: it must run the whole
//! drill with real parts, narrate it, and leave nothing behind.

use crate::support;

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
    says_what_matters_once(&out.stdout);
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

/// The demo's narration: the plan shown once, no refusals for host keys the
/// plan itself restores, plain reasons and times, symbols that agree.
fn says_what_matters_once(stdout: &str) {
    assert_eq!(
        stdout.matches("Steps, in order:").count(),
        1,
        "the plan is printed once:\n{stdout}"
    );
    assert!(!stdout.contains("HOST KEY REFUSED"), "{stdout}");
    assert!(!stdout.contains("ssh-keyscan"), "{stdout}");
    assert_eq!(
        stdout
            .matches("its host key is checked against the /root/.ssh/known_hosts that file.root_known_hosts restores, when the step runs")
            .count(),
        3,
        "{stdout}"
    );
    assert!(
        !stdout.contains("(after the"),
        "no nested parentheses:\n{stdout}"
    );
    assert!(
        !stdout.contains("finished in"),
        "one time per step:\n{stdout}"
    );
    marks_agree(stdout);
}

/// A resource's mark and its steps' marks agree; the summary names every kind.
fn marks_agree(stdout: &str) {
    let mut marks = std::collections::HashMap::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("  ")
            && !line.starts_with("   ")
            && words.len() > 2
            && words[2].starts_with('(')
        {
            marks.insert(words[1].to_string(), words[0].to_string());
        }
    }
    let mut checked = 0;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() > 3
            && words[0].ends_with('.')
            && words[0][..words[0].len() - 1].parse::<u32>().is_ok()
        {
            if let Some(mark) = marks.get(words[3]) {
                assert_eq!(mark, words[1], "{line}");
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked} steps checked");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("Plan: "))
        .expect("a plan summary");
    for kind in [
        "to restore",
        "to create",
        "to update",
        "to remove",
        "to run",
        "service action",
    ] {
        assert!(summary.contains(kind), "every kind, zeros too: {summary}");
    }
}

#[test]
fn demo_keep_says_what_is_kept() {
    let out = Imlrecover::new().args(["demo", "--keep"]).run();
    out.code(0)
        .stdout_has(
            "(--keep): its files, the bundle, the saved plan and the run directory, to read.",
        )
        .stdout_has("so `plan` or `apply` on it cannot work");
    let sandbox = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sandbox: "))
        .expect("the demo names its sandbox");
    assert!(std::path::Path::new(sandbox).join("restore.plan").exists());
    std::fs::remove_dir_all(sandbox).unwrap();
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

/// One host model: the demo's golden manager carries the fixture host the
/// tests use (fixtures/host-el6), file for file and byte for byte; only the
/// certificate chain is its own (made by `openssl` when it is built).
#[test]
fn the_demo_manager_is_the_fixture_host_the_tests_use() {
    let m = support::manager::Manager::without_database();
    let sb = &m.sb;
    let host = support::host::Host::new();
    let mut stack = vec![host.root.clone()];
    let mut compared = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(&host.root).unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if !rel.starts_with("var/lib/chroma") {
                let ours = std::fs::read(sb.root.join(rel))
                    .unwrap_or_else(|e| panic!("the demo lacks /{}: {e}", rel.display()));
                assert_eq!(ours, std::fs::read(&path).unwrap(), "/{}", rel.display());
                compared += 1;
            }
        }
    }
    assert!(compared >= 18, "only {compared} files compared");
    for cert in [
        "authority.crt",
        "authority.pem",
        "manager.crt",
        "manager.pem",
    ] {
        assert!(
            sb.root.join("var/lib/chroma").join(cert).is_file(),
            "{cert}"
        );
    }
}

/// docker-systemctl-replacement, which .ci/run installs under target/.
fn systemctl_tools() -> std::path::PathBuf {
    let dir = support::cli::repo().join("target/test-tools/systemctl");
    assert!(
        dir.join("systemctl2/systemctl3.py").is_file(),
        "docker-systemctl-replacement is missing: pip3 install --target {} docker-systemctl-replacement (.ci/run does)",
        dir.display()
    );
    dir
}

/// `demo --release 6.2`: an IML 6.x manager (systemd units, PostgreSQL
/// 9.6's unit name, InfluxDB with its statistics) drafted a recipe by
/// `init`, backed up, destroyed and restored, its statistics equal.
#[test]
fn the_demo_of_a_6x_manager_restores_its_statistics_too() {
    let out = Imlrecover::new()
        .args(["demo", "--release", "6.2"])
        .env("PYTHONPATH", systemctl_tools())
        .run();
    out.code(0);
    for line in [
        "Manager: IML 6.1–6.3 on EL7 (PostgreSQL 9.6)",
        "run under the sandbox by docker-systemctl-replacement",
        "$ imlrecover init --root ... -o iml-manager.hcl",
        "InfluxDB: the manager's statistics, 648 points",
        "InfluxDB empty",
        "-/+ influxdb.stats (restore: InfluxDB has none of the bundle's databases",
        "-/+ database.chroma",
        "restored InfluxDB databases iml, iml_stats, iml_stratagem_scans, counts checked",
        "Apply complete!",
        "No changes. The host matches the recipe.",
        "statistics: every InfluxDB database's series and point counts equal the original's",
    ] {
        out.stdout_has(line);
    }
    marks_agree(&out.stdout);
    // The 6.x host's recipe fits it: no warning that a unit is unknown.
    assert!(!out.stdout.contains("Warning:"), "{}", out.stdout);
    assert!(!out.stderr.contains("Warning:"), "{}", out.stderr);
    let last = out
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(last.starts_with("Restored in "), "{last}");
    assert!(
        last.contains(" files, 575 rows, 648 points verified."),
        "{last}"
    );
    let sandbox = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sandbox: "))
        .expect("the demo names its sandbox");
    assert!(!std::path::Path::new(sandbox).exists());
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(sandbox))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "processes outlived the demo: {left:?}");
}

/// A later release's demo needs its parts whole: without
/// docker-systemctl-replacement it says what to install and builds nothing.
#[test]
fn a_release_demo_without_its_parts_names_them_and_builds_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let out = Imlrecover::new()
        .args(["demo", "--release", "5.1"])
        .env("PYTHONPATH", empty.path())
        .env("PYTHONNOUSERSITE", "1")
        .run();
    out.code(1)
        .stderr_has(
            "the demo of IML 5.1–6.0 on EL7 (InfluxDB, Grafana) needs parts this machine lacks",
        )
        .stderr_has("pip3 install docker-systemctl-replacement");
    assert!(!out.stdout.contains("Sandbox:"), "{}", out.stdout);
    Imlrecover::new()
        .args(["demo", "--release", "seven"])
        .run()
        .code(1)
        .stderr_has("is not an IML release version (e.g. 4.0.8, 5.1, 6.2)");
}
