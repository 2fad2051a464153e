//! `--format json|junit` on backup, verify, apply, push, pull and demo:
//! stdout holds one document and nothing else (no colour, no bars), also
//! when the command fails; the exit code stays the command's; JUnit passes
//! `xmllint --noout`; sensitive values never appear.

use crate::support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::cli::{Imlrecover, Output};
use support::host::Host;

/// The whole of stdout as one JSON document, with the envelope checked.
#[track_caller]
fn document(out: &Output, command: &str) -> Value {
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\r'),
        "escape sequences or a bar on stdout:\n{:?}",
        out.stdout
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        )
    });
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["command"], command);
    assert_eq!(v["exit_code"], out.code, "{v:#}");
    let outcome = if out.code == 0 { "ok" } else { "failed" };
    assert_eq!(v["outcome"], outcome, "{v:#}");
    v
}

/// Counts of a JUnit document that `xmllint --noout` accepts: testcases,
/// failures, skipped.
#[track_caller]
fn junit(out: &Output, dir: &Path) -> (usize, usize, usize) {
    let file = dir.join("junit.xml");
    std::fs::write(&file, &out.stdout).unwrap();
    let lint = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg(&file)
        .output()
        .expect("xmllint");
    assert!(
        lint.status.success(),
        "xmllint: {}\n{}",
        String::from_utf8_lossy(&lint.stderr),
        out.stdout
    );
    assert!(!out.stdout.contains('\u{1b}'), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("<testsuite ").count(),
        1,
        "{}",
        out.stdout
    );
    (
        out.stdout.matches("<testcase ").count(),
        out.stdout.matches("<failure ").count(),
        out.stdout.matches("<skipped ").count(),
    )
}

fn statuses(v: &Value) -> Vec<(String, String)> {
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn backup_json_holds_every_entry_and_junit_one_testcase_per_resource() {
    let host = Host::new();
    let recipe = host.files_recipe();
    let out = host
        .cmd("backup", &recipe)
        .args(["--color", "always", "--format", "json"])
        .run();
    out.code(0);
    let v = document(&out, "backup");
    let bundle = host.latest();
    assert_eq!(v["bundle"], bundle.display().to_string());
    let m = support::host::manifest(&bundle);
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), m.entries.len());
    let shadow = entries.iter().find(|e| e["path"] == "/etc/shadow").unwrap();
    assert_eq!(shadow["sensitive"], true);
    assert_eq!(shadow["kind"], "file");
    let captured: u64 = m.entries.iter().filter_map(|e| e.size).sum();
    assert_eq!(v["bytes"], captured);
    assert!(v["files"].as_u64().unwrap() > 20, "{v:#}");
    assert_eq!(v["warnings"], serde_json::json!([]));
    let resources = v["resources"].as_array().unwrap();
    assert!(resources.iter().all(|r| r["status"] == "done"));

    let out = host
        .cmd("backup", &recipe)
        .args(["--format", "junit"])
        .run();
    out.code(0);
    assert_eq!(junit(&out, host.tmp.path()), (resources.len(), 0, 0));
    assert!(
        out.stdout.contains("name=\"capture file.hosts\""),
        "{}",
        out.stdout
    );

    // A backup that fails leaves its document too: a required file is gone.
    let gone = host.tmp.path().join("gone.hcl");
    std::fs::write(
        &gone,
        format!(
            "{}\nfile \"gone\" {{\n  path = \"/etc/gone.conf\"\n}}\n",
            std::fs::read_to_string(&recipe).unwrap()
        ),
    )
    .unwrap();
    let out = host.cmd("backup", &gone).args(["--format", "json"]).run();
    out.code(1).stderr_has("/etc/gone.conf");
    let v = document(&out, "backup");
    let last = v["resources"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["address"], "file.gone");
    assert_eq!(last["status"], "failed");
    assert!(
        last["error"].as_str().unwrap().contains("/etc/gone.conf"),
        "{v:#}"
    );
    assert!(v.get("bundle").is_none(), "no bundle was committed: {v:#}");
    let out = host.cmd("backup", &gone).args(["--format", "junit"]).run();
    out.code(1);
    assert_eq!(junit(&out, host.tmp.path()), (resources.len() + 1, 1, 0));
}

#[test]
fn backup_and_drill_of_a_database_keep_stdout_for_the_document() {
    let host = Host::new();
    let source = support::chroma::ChromaCluster::start();
    let vars = source.vars();
    let out = host
        .cmd("backup", &support::host::recipe())
        .args(&vars)
        .args(["--format", "json"])
        .run();
    out.code(0);
    let v = document(&out, "backup");
    let db = &v["database"];
    assert!(
        db["file"].as_str().unwrap().starts_with("pgbackup-"),
        "{v:#}"
    );
    assert!(
        db["server_version"].as_str().unwrap().starts_with("15"),
        "{v:#}"
    );
    let rows: u64 = support::chroma::ChromaCluster::rows(&source.target())
        .values()
        .sum();
    assert_eq!(db["rows"], rows);
    let bundle = host.latest();

    let out = Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .args(["--drill", "--format", "json"])
        .run();
    out.code(0);
    let v = document(&out, "verify");
    assert_eq!(v["drill"]["passed"], true, "{v:#}");
    assert!(v["drill"]["summary"]
        .as_str()
        .unwrap()
        .contains("rows match the manifest"));
    assert_eq!(v["problems"], serde_json::json!([]));

    let out = Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .args(["--drill", "--format", "junit"])
        .run();
    out.code(0);
    // Twelve checks and the drill.
    assert_eq!(junit(&out, host.tmp.path()), (13, 0, 0));
    assert!(out.stdout.contains("name=\"drill\""), "{}", out.stdout);
}

#[test]
fn verify_lists_each_problem_and_a_damaged_bundle_fails_with_exit_1() {
    let host = Host::new();
    host.backup(&host.files_recipe());
    let bundle = host.latest();
    let out = Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .args(["--format", "json"])
        .run();
    out.code(0);
    let v = document(&out, "verify");
    assert_eq!(
        v["files"],
        support::host::manifest(&bundle)
            .entries
            .iter()
            .filter(|e| e.file.is_some())
            .count()
    );
    assert_eq!(v["problems"], serde_json::json!([]));

    let hosts = bundle.join("files/etc/hosts");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    text.push_str("10.0.0.9 tampered\n");
    std::fs::write(&hosts, text).unwrap();
    let out = Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .args(["--format", "json"])
        .run();
    out.code(1).stderr_has("has 1 problem");
    let v = document(&out, "verify");
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v:#}");
    assert_eq!(problems[0]["path"], "files/etc/hosts");
    assert_eq!(problems[0]["address"], "file.hosts");
    assert_eq!(problems[0]["kind"], "modified");

    let out = Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .args(["--format", "junit"])
        .run();
    out.code(1);
    assert_eq!(junit(&out, host.tmp.path()), (12, 1, 0));
    assert!(out.stdout.contains("files/etc/hosts"), "{}", out.stdout);

    // Not a bundle at all: still a document, still exit 1.
    let out = Imlrecover::new()
        .arg("verify")
        .arg(host.tmp.path().join("nowhere"))
        .args(["--format", "json"])
        .run();
    out.code(1).stderr_has("is not a bundle");
    let v = document(&out, "verify");
    assert!(
        v["error"].as_str().unwrap().contains("is not a bundle"),
        "{v:#}"
    );
    let out = Imlrecover::new()
        .arg("verify")
        .arg(host.tmp.path().join("nowhere"))
        .args(["--format", "junit"])
        .run();
    out.code(1);
    assert_eq!(junit(&out, host.tmp.path()), (1, 1, 0));
}

/// The files recipe, an installer that fails (`/bin/false`: manage.py is
/// missing) and a file restored only after it.
fn failing_recipe(host: &Host) -> PathBuf {
    let text = std::fs::read_to_string(host.files_recipe()).unwrap();
    std::fs::write(host.file("/etc/late.conf"), "late\n").unwrap();
    let path = host.tmp.path().join("failing.hcl");
    std::fs::write(
        &path,
        format!(
            "{text}\nexec \"installer\" {{\n  command    = [\"/bin/false\"]\n  creates    = \"/usr/share/chroma-manager/manage.py\"\n  depends_on = [file.hosts]\n}}\n\n\
             file \"late\" {{\n  path       = \"/etc/late.conf\"\n  depends_on = [exec.installer]\n}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn apply_json_lists_every_step_and_a_failing_apply_says_failed_with_exit_1() {
    let host = Host::new();
    let recipe = host.files_recipe();
    host.backup(&recipe);
    std::fs::write(host.file("/etc/hosts"), "127.0.0.1 changed\n").unwrap();
    let out = host.apply(&recipe, &["--auto-approve", "--format", "json"]);
    out.code(0);
    let v = document(&out, "apply");
    assert_eq!(v["changes"], true);
    assert_eq!(statuses(&v), vec![("file.hosts".into(), "done".into())]);
    let step = &v["steps"][0];
    assert_eq!(step["action"], "write");
    assert!(
        step["message"].as_str().unwrap().contains("1 file written"),
        "{v:#}"
    );
    assert!(step["seconds"].as_f64().unwrap() >= 0.0);
    assert!(v["run_dir"]
        .as_str()
        .unwrap()
        .contains("var/lib/imlrecover/runs"));
    assert_ne!(
        std::fs::read_to_string(host.file("/etc/hosts")).unwrap(),
        "127.0.0.1 changed\n"
    );

    // Nothing left to do: one passing testcase.
    let out = host.apply(&recipe, &["--auto-approve", "--format", "junit"]);
    out.code(0);
    assert_eq!(junit(&out, host.tmp.path()), (1, 0, 0));

    // A document run asks nothing: without --auto-approve it is refused.
    std::fs::write(host.file("/etc/hosts"), "127.0.0.1 changed\n").unwrap();
    let out = host.apply(&recipe, &["--format", "json"]);
    out.code(1).stderr_has("apply needs approval");
    let v = document(&out, "apply");
    assert!(
        v["error"].as_str().unwrap().contains("needs approval"),
        "{v:#}"
    );

    // The installer fails: the step before it is done, the one after it
    // is not attempted.
    let failing = failing_recipe(&host);
    host.backup(&failing);
    std::fs::write(host.file("/etc/hosts"), "127.0.0.1 changed again\n").unwrap();
    std::fs::remove_file(host.file("/etc/late.conf")).unwrap();
    let out = host.apply(&failing, &["--auto-approve", "--format", "json"]);
    out.code(1).stderr_has("apply failed at step");
    let v = document(&out, "apply");
    assert_eq!(
        statuses(&v),
        vec![
            ("file.hosts".into(), "done".into()),
            ("exec.installer".into(), "failed".into()),
            ("file.late".into(), "not_attempted".into()),
        ]
    );
    assert!(
        v["steps"][1]["message"]
            .as_str()
            .unwrap()
            .contains("/bin/false"),
        "{v:#}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("apply failed at step 2"),
        "{v:#}"
    );

    let out = host.apply(&failing, &["--auto-approve", "--format", "junit"]);
    out.code(1);
    // hosts is already written now: the installer fails, late.conf waits.
    assert_eq!(junit(&out, host.tmp.path()), (2, 1, 1));
    assert!(out.stdout.contains("/bin/false"), "{}", out.stdout);
}

#[test]
fn push_and_pull_documents_name_files_bytes_and_destination() {
    let server = support::sftp::SftpServer::start();
    let host = Host::new();
    host.backup(&host.files_recipe());
    let bundle = host.latest();
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    let remote = host.tmp.path().join("offsite");
    let out = server.push(&bundle, &remote, &["--format", "json"]);
    out.code(0);
    let v = document(&out, "push");
    assert_eq!(v["bundle"], name);
    assert_eq!(v["already_there"], false);
    assert!(v["files"].as_u64().unwrap() > 20, "{v:#}");
    assert!(v["bytes"].as_u64().unwrap() > 1000, "{v:#}");
    assert!(
        v["destination"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{name}")),
        "{v:#}"
    );
    assert!(remote.join(&name).join("manifest.json").is_file());

    let out = server.push(&bundle, &remote, &["--format", "junit"]);
    out.code(0);
    assert_eq!(junit(&out, host.tmp.path()), (1, 0, 0));

    let back = host.tmp.path().join("back");
    let out = server.pull(&remote, &back, &["--format", "json"]);
    out.code(0);
    let v = document(&out, "pull");
    assert_eq!(v["bundle"], name);
    assert_eq!(v["verified"], true);
    let dest = PathBuf::from(v["destination"].as_str().unwrap());
    assert!(dest.join("manifest.json").is_file(), "{v:#}");
    assert!(v["bytes"].as_u64().unwrap() > 1000, "{v:#}");

    // A bundle the remote side does not have.
    let out = server.pull(
        &remote,
        &back,
        &["--bundle", "2001-01-01T00-00-00Z", "--format", "junit"],
    );
    out.code(1);
    assert_eq!(junit(&out, host.tmp.path()), (1, 1, 0));
    let out = server.pull(
        &remote,
        &back,
        &["--bundle", "2001-01-01T00-00-00Z", "--format", "json"],
    );
    out.code(1);
    let v = document(&out, "pull");
    assert_eq!(v["verified"], false);
}

#[test]
fn sensitive_values_never_appear_in_documents() {
    const SECRET: &str = "S3cr3tTok3n";
    let host = Host::new();
    let recipe = host.tmp.path().join("secret.hcl");
    let base = std::fs::read_to_string(host.files_recipe()).unwrap();
    std::fs::write(
        &recipe,
        format!(
            "{base}\nvariable \"token\" {{\n  sensitive = true\n}}\n\
             file \"token_file\" {{\n  path     = \"/etc/${{var.token}}.conf\"\n  optional = true\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(host.file(&format!("/etc/{SECRET}.conf")), "x\n").unwrap();
    let var = format!("token={SECRET}");
    let mut outputs = Vec::new();
    for format in ["json", "junit"] {
        let out = host
            .cmd("backup", &recipe)
            .args(["--var", &var, "--format", format])
            .run();
        out.code(0);
        outputs.push(out);
    }
    let v = document(&outputs[0], "backup");
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/etc/(sensitive value).conf"),
        "{v:#}"
    );
    std::fs::write(host.file(&format!("/etc/{SECRET}.conf")), "y\n").unwrap();
    for format in ["json", "junit"] {
        let out = host.apply(
            &recipe,
            &["--var", &var, "--auto-approve", "--format", format],
        );
        out.code(0);
        outputs.push(out);
    }
    let v = document(&outputs[2], "apply");
    assert_eq!(
        statuses(&v),
        vec![("file.token_file".into(), "done".into())]
    );
    for out in &outputs {
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains(SECRET), "the secret shows:\n{text}");
        }
    }
}

#[test]
fn demo_documents_each_phase_with_its_commands_own_document() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Imlrecover::new().args(["demo", "--format", "json"]).run();
    out.code(0);
    let v = document(&out, "demo");
    let phases = v["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 6, "{v:#}");
    let backup = &phases[1]["commands"][0];
    assert_eq!(backup["exit_code"], 0);
    assert_eq!(backup["output"]["command"], "backup");
    assert!(backup["output"]["entries"].as_array().unwrap().len() > 20);
    let apply = &phases[4]["commands"][0];
    assert_eq!(apply["output"]["command"], "apply");
    let steps = apply["output"]["steps"].as_array().unwrap();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s["status"] == "done"),
        "{apply:#}"
    );
    let checks = v["checks"].as_array().unwrap();
    assert!(
        !checks.is_empty() && checks.iter().all(|c| c["passed"] == true),
        "{v:#}"
    );
    // The sandbox is gone.
    assert!(!Path::new(v["sandbox"].as_str().unwrap()).exists());

    let out = Imlrecover::new().args(["demo", "--format", "junit"]).run();
    out.code(0);
    let (cases, failures, skipped) = junit(&out, tmp.path());
    assert_eq!((failures, skipped), (0, 0));
    assert_eq!(cases, 6 + checks.len(), "{}", out.stdout);
}

/// A backup blocked by a client's lock says so on stderr under `--format
/// json`: the dump's progress and the `Blocked:` line stay off stdout.
#[test]
fn a_blocked_backup_says_so_on_stderr_and_stdout_holds_the_document() {
    use crate::faults::{wait_at_most, LockHolder, Manager};
    use std::time::Duration;
    use support::manager::PLAN;
    let m = Manager::backed_up();
    let mut holder = LockHolder::take(&m.sb.target());
    let backup = std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .current_dir(support::cli::repo())
        .args(["--color", "always", "backup", "-r", PLAN, "--root"])
        .arg(&m.sb.root)
        .arg("--bundle-dir")
        .arg(&m.sb.bundles)
        .args(m.sb.var_args())
        .args(["--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        holder.commit(),
        "done",
        "the client's session was not ended"
    );
    let (out, _) = wait_at_most(backup, Duration::from_secs(120));
    out.code(0)
        .stderr_has("Blocked:")
        .stderr_has("the dump waits for a lock held by pid ");
    let v = document(&out, "backup");
    assert!(v["database"]["rows"].as_u64().unwrap() > 0, "{v:#}");
}
