//! `imlrecover apply` on a sandbox manager: approval, saved and stale plans,
//! the lock, a client connected during the restore, failures that leave the
//! host restartable, and crashes (SIGKILL) at step boundaries and in the
//! middle of the restore, after which a second apply converges.

use crate::support;

use std::path::PathBuf;
use support::cli::Imlrecover;

// The drill fixture is the shared sandbox manager (support::manager).
pub(crate) use support::manager::{status, Manager as Drill, PLAN};

#[test]
fn without_a_terminal_apply_refuses_unless_auto_approved() {
    let d = Drill::after_disaster();
    d.cmd("apply")
        .run()
        .code(1)
        .stderr_has("apply needs approval, but standard input is not a terminal")
        .stderr_has("--auto-approve");
    assert!(
        !d.sb.root.join("etc/ntp.conf").exists(),
        "nothing was changed"
    );
    d.apply().code(0).stdout_has("Apply complete!");
    d.assert_restored();
}

/// Runs apply on a pseudo-terminal (util-linux `script`) typing `answer`.
fn apply_on_a_tty(d: &Drill, answer: &str) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_imlrecover");
    let mut line = format!(
        "cd {} && {bin} apply -r {PLAN} --root {} --bundle {}",
        support::cli::repo().display(),
        d.sb.root.display(),
        d.bundle
    );
    for a in d.sb.var_args() {
        line.push(' ');
        line.push_str(&shell_quote(&a));
    }
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn on_a_terminal_only_yes_approves() {
    let d = Drill::after_disaster();
    let (code, screen) = apply_on_a_tty(&d, "y");
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("Only 'yes' will be accepted to approve."),
        "{screen}"
    );
    assert!(
        screen.contains("Apply cancelled; nothing was changed."),
        "{screen}"
    );
    assert!(!d.sb.root.join("etc/ntp.conf").exists());
    let (code, screen) = apply_on_a_tty(&d, "yes");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Apply complete!"), "{screen}");
    d.assert_restored();
}

#[test]
fn a_saved_plan_runs_as_planned_and_a_stale_one_is_refused() {
    let d = Drill::after_disaster();
    let dir = tempfile::tempdir().unwrap();
    let planfile = dir.path().join("restore.plan");
    d.cmd("plan").arg("--out").arg(&planfile).run().code(0);

    // Something the plan touches changes: the plan is stale.
    std::fs::write(d.sb.root.join("etc/hosts"), "127.0.0.1 localhost changed\n").unwrap();
    Imlrecover::new()
        .arg("apply")
        .arg(&planfile)
        .run()
        .code(1)
        .stderr_has("the saved plan is stale: file.hosts changed on the host since it was made");
    assert!(
        !d.sb.root.join("etc/ntp.conf").exists(),
        "a stale plan changes nothing"
    );

    d.cmd("plan").arg("--out").arg(&planfile).run().code(0);
    // From another directory: the plan names the recipe by absolute path.
    Imlrecover::new()
        .current_dir(dir.path())
        .arg("apply")
        .arg(&planfile)
        .run()
        .code(0)
        .stdout_has("Apply complete!");
    d.assert_restored();
}

#[test]
fn a_plan_from_another_recipe_or_bundle_is_refused() {
    let d = Drill::after_disaster();
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.hcl");
    std::fs::copy(support::cli::repo().join(PLAN), &recipe).unwrap();
    let planfile = dir.path().join("p.plan");
    Imlrecover::new()
        .args(["plan", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&d.sb.root)
        .args(["--bundle", &d.bundle])
        .args(d.sb.var_args())
        .arg("--out")
        .arg(&planfile)
        .run()
        .code(0);
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    text.push_str("\n# edited\n");
    std::fs::write(&recipe, text).unwrap();
    Imlrecover::new()
        .arg("apply")
        .arg(&planfile)
        .run()
        .code(1)
        .stderr_has("changed since the plan was made");

    // A plan naming another bundle id than the one now at that path.
    std::fs::copy(support::cli::repo().join(PLAN), &recipe).unwrap();
    let saved = std::fs::read_to_string(&planfile).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&saved).unwrap();
    v["bundle"]["id"] = "2001-01-01T00-00-00Z".into();
    std::fs::write(&planfile, v.to_string()).unwrap();
    Imlrecover::new()
        .arg("apply")
        .arg(&planfile)
        .run()
        .code(1)
        .stderr_has("the plan was made from bundle 2001-01-01T00-00-00Z");
    assert!(!d.sb.root.join("etc/ntp.conf").exists());
}

#[test]
fn a_second_apply_is_refused_while_one_runs() {
    let d = Drill::after_disaster();
    // The installer media blocks until released, holding the first apply.
    let gate = d.sb.dir.join("gate");
    let real = std::fs::read_to_string(&d.sb.installer).unwrap();
    let blocked = real.replacen(
        "set -e\n",
        &format!(
            "set -e\nwhile [ ! -e '{}' ]; do sleep 0.05; done\n",
            gate.display()
        ),
        1,
    );
    std::fs::write(&d.sb.installer, blocked).unwrap();
    let mut first = d
        .apply_from(Imlrecover::new(), std::path::Path::new(&d.bundle))
        .spawn_silent();
    let lock = d.sb.root.join("var/lib/imlrecover/lock");
    let pid = first.id().to_string();
    let mut held = false;
    for _ in 0..600 {
        if std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid) {
            held = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(held, "the first apply never took the lock");
    d.apply().code(1).stderr_has(&format!(
        "another imlrecover apply (pid {pid}) holds the lock"
    ));
    std::fs::write(&gate, "").unwrap();
    assert!(first.wait().unwrap().success());
    d.assert_restored();
}

#[test]
fn a_connected_client_is_ended_and_never_leaves_the_old_data() {
    let d = Drill::golden();
    // The live cluster gets different data, then a client holds a session
    // open on chroma while the restore runs.
    let t = d.sb.target();
    imlrecover::host::postgres::execute(
        &t,
        "chroma",
        "DELETE FROM chroma_core_command WHERE id > 10",
    )
    .unwrap();
    let live_before = imlrecover::host::postgres::fingerprint(&t).unwrap();
    let psql = imlrecover::host::postgres::find_program(None, "psql").unwrap();
    let mut client = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&psql)
        .args([
            "-X",
            "-q",
            "-h",
            t.host.as_deref().unwrap(),
            "-p",
            &t.port.unwrap().to_string(),
            "-U",
            "postgres",
            "-d",
            "chroma",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    use std::io::Write;
    writeln!(stdin, "SELECT 1;").unwrap();
    let mut connected = false;
    for _ in 0..200 {
        if !imlrecover::host::postgres::connected_backends(&t, &["chroma"])
            .unwrap()
            .is_empty()
        {
            connected = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(connected, "the client never connected");
    let out = d
        .cmd("apply")
        .args(["--replace", "database.chroma", "--auto-approve"])
        .run();
    out.code(0).stdout_has("ended session:");
    assert_eq!(
        d.sb.rows().unwrap(),
        d.rows,
        "the bundle's rows, not the old ones"
    );
    // The safety dump (taken on its own thread while the file steps ran)
    // holds the cluster as it was, not the bundle's rows.
    let safety = d.safety_dumps();
    assert_eq!(safety.len(), 1, "{safety:?}");
    let dumped = imlrecover::host::postgres::fingerprint_from_dump(std::io::BufReader::new(
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&safety[0]).unwrap()),
    ))
    .unwrap();
    assert_eq!(dumped, live_before);
    drop(stdin);
    let _ = client.wait();
    d.assert_restored();
}

#[test]
fn a_service_that_will_not_start_fails_the_step_and_the_rest_is_restartable() {
    let d = Drill::golden();
    // httpd is broken: its start fails.
    let script = d.sb.root.join("etc/init.d/httpd");
    let good = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        good.replace(
            "    start) do_start ;;",
            "    start) echo 'httpd: cannot bind to port 80' >&2; exit 1 ;;",
        ),
    )
    .unwrap();
    let out = d
        .cmd("apply")
        .args(["--replace", "database.chroma", "--auto-approve"])
        .run();
    out.code(1)
        .stderr_has("apply failed at step")
        .stderr_has("service.httpd")
        .stderr_has("httpd: cannot bind to port 80")
        .stdout_has("Done (")
        .stdout_has("Not attempted (")
        .stdout_has("started rabbitmq-server again (this run had stopped it)");
    assert!(
        status(&d.sb.root, "rabbitmq-server"),
        "what this run stopped was started again"
    );
    // The run directory keeps the safety dump.
    assert!(d.safety_dumps().iter().any(|p| p
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("safety-pgbackup-"))));
    // Fixed, the same command converges.
    std::fs::write(&script, good).unwrap();
    d.apply().code(0).stdout_has("Resuming: the run");
    d.assert_restored();
}

#[test]
fn an_unknown_owner_in_the_bundle_is_a_clear_error() {
    let d = Drill::after_disaster();
    let manifest = PathBuf::from(&d.bundle).join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    for e in v["entries"].as_array_mut().unwrap() {
        if e["path"] == "/etc/ntp.conf" {
            e["owner"] = "nosuchuser".into();
        }
    }
    std::fs::write(&manifest, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    d.apply()
        .code(1)
        .stderr_has("/etc/ntp.conf: unknown user `nosuchuser` on this host");
}
