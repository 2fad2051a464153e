//! `imlrecover plan` on resources it cannot observe, and on every kind at once:
//! each unobservable resource is reported in graph order, compare still sees
//! what was planned before it, a bug while observing is that resource's
//! error (the fixture host and a real PostgreSQL cluster).

use crate::plan::{fixture_host, normalise_modes};
use crate::support;

use std::path::{Path, PathBuf};
use support::cli::{Imlrecover, Output};

/// fixtures/backup/el6.hcl (files, sets, certificates, the database) with
/// the runbook's other kinds after it: the installer, services it brings,
/// services already there, an absent file and the remote agents. `head`
/// goes first; `unless` is the installer's guard.
fn every_kind_recipe(host: &support::host::Host, head: &str, unless: &str) -> PathBuf {
    for name in ["ntpd", "rabbitmq-server"] {
        // Installed, never started: their status says stopped (LSB 3).
        imlrecover::sandbox::initd::write_service(&host.root, name).unwrap();
    }
    let el6 = std::fs::read_to_string(support::host::recipe()).unwrap();
    let text = format!(
        r#"{head}
{el6}
exec "installer" {{
  command    = ["/bin/false"]
  creates    = "/usr/share/chroma-manager/manage.py"
  unless     = {unless}
  depends_on = [file.yum_conf, files.yum_repos, file.passwd]
}}

service "httpd" {{
  state      = "running"
  depends_on = [exec.installer]
}}

service "chroma_supervisor" {{
  name       = "chroma-supervisor"
  state      = "running"
  depends_on = [service.httpd]
}}

service "ntpd" {{
  state = "stopped"
}}

service "rabbitmq_server" {{
  name  = "rabbitmq-server"
  state = "stopped"
}}

absent "client_errors_log" {{
  path = "/var/log/chroma/client_errors.log"
}}

remote_service "chroma_agent" {{
  name       = "chroma-agent"
  hosts      = ["127.0.0.1"]
  optional   = true
  timeout    = "3s"
  depends_on = [database.chroma, service.chroma_supervisor]

  ssh {{
    user        = "root"
    port        = 1
    known_hosts = "/root/.ssh/known_hosts"
  }}
}}
"#
    );
    let path = host.tmp.path().join("every-kind.hcl");
    std::fs::write(&path, text).unwrap();
    path
}

fn plan_with(host: &support::host::Host, recipe: &Path, vars: &[String], extra: &[&str]) -> Output {
    Imlrecover::new()
        .args(["plan", "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(host.latest())
        .args(vars)
        .args(extra)
        .run()
}

#[test]
fn every_resource_that_cannot_be_observed_is_reported_in_graph_order() {
    let host = support::host::Host::new();
    let pg = support::chroma::ChromaCluster::start();
    // An init script whose status cannot tell (LSB 4), and takes its time:
    // first in the graph, it is the last observation to finish when
    // observations overlap, and must still be reported first.
    let lost = host.root.join("etc/init.d/lost");
    std::fs::create_dir_all(lost.parent().unwrap()).unwrap();
    std::fs::write(
        &lost,
        "#!/bin/sh\ncase \"$1\" in\n  status) sleep 0.3; echo 'lost: status unknown'; exit 4 ;;\n  *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&lost, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let recipe = every_kind_recipe(
        &host,
        "service \"lost\" {\n  state = \"running\"\n}\n",
        r#"["/nonexistent/bin/installed"]"#,
    );
    host.backup_with(&recipe, &pg.vars());

    // Paths that are no longer regular files, and a cluster nobody serves.
    for p in ["/etc/passwd", "/var/lib/chroma/authority.pem"] {
        std::fs::remove_file(host.file(p)).unwrap();
        std::fs::create_dir(host.file(p)).unwrap();
    }
    std::fs::remove_file(host.file("/etc/yum.repos.d/chroma.repo")).unwrap();
    nix::unistd::mkfifo(
        &host.file("/etc/yum.repos.d/chroma.repo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let nowhere = host.tmp.path().join("no-socket");
    std::fs::create_dir(&nowhere).unwrap();
    let vars = [
        "--var".to_string(),
        format!("pg_host={}", nowhere.display()),
        "--var".to_string(),
        "pg_port=1".to_string(),
    ];

    let out = plan_with(&host, &recipe, &vars, &[]);
    out.code(1);
    // Every problem, each once, in graph order, in one error.
    let expected = [
        ("service.lost:", "`lost` status is unknown (exit code 4)"),
        (
            "files.yum_repos:",
            "/etc/yum.repos.d/chroma.repo is a special file, not a regular file",
        ),
        (
            "file.passwd:",
            "/etc/passwd is a directory, not a regular file",
        ),
        (
            "cert.authority:",
            "/var/lib/chroma/authority.pem is a directory, not a regular file",
        ),
        ("database.chroma:", "`psql` failed"),
        ("exec.installer:", "the `unless` guard"),
        ("service.httpd:", "unknown service `httpd`"),
        (
            "service.chroma_supervisor:",
            "unknown service `chroma-supervisor`",
        ),
    ];
    out.stderr_has(&format!(
        "cannot plan: {} resources could not be observed",
        expected.len()
    ));
    let mut at = 0;
    for (address, message) in expected {
        assert_eq!(
            out.stderr.matches(address).count(),
            1,
            "{address} once:\n{}",
            out.stderr
        );
        let pos = out.stderr.find(address).unwrap();
        assert!(pos > at, "{address} out of graph order:\n{}", out.stderr);
        assert!(
            out.stderr[pos..].contains(message),
            "{address} without {message:?}:\n{}",
            out.stderr
        );
        at = pos;
    }
}

#[test]
fn compare_still_sees_the_changes_planned_before_it() {
    let host = support::host::Host::new();
    normalise_modes(&host.root);
    let pg = support::chroma::ChromaCluster::start();
    // The installer's guard is slow: observed concurrently, the services
    // behind it finish first, yet their compare must know it runs.
    let recipe = every_kind_recipe(&host, "", r#"["/bin/sh", "-c", "sleep 0.3; exit 1"]"#);
    host.backup_with(&recipe, &pg.vars());
    std::fs::write(host.file("/etc/ntp.conf"), "server 192.0.2.1 iburst\n").unwrap();
    std::fs::remove_file(host.file("/etc/yum.conf")).unwrap();
    std::fs::create_dir_all(host.file("/var/log/chroma")).unwrap();
    std::fs::write(host.file("/var/log/chroma/client_errors.log"), "boom\n").unwrap();

    let out = plan_with(&host, &recipe, &pg.vars(), &["--json"]);
    out.code(0);
    let plan: imlrecover::plan::Plan = serde_json::from_str(&out.stdout).unwrap();
    let reason = |a: &str| {
        plan.resource_changes
            .iter()
            .find(|c| c.address.to_string() == a)
            .map(|c| c.reason.clone())
            .unwrap_or_else(|| panic!("{a} not planned"))
    };
    assert_eq!(
        reason("exec.installer"),
        "/usr/share/chroma-manager/manage.py does not exist"
    );
    for a in ["service.httpd", "service.chroma_supervisor"] {
        assert_eq!(reason(a), "not installed yet; exec.installer runs first");
    }
    // The whole plan as a user reads it: every resource in the recipe's
    // order with its action, reason and files, then every step.
    let mut text = String::new();
    for c in &plan.resource_changes {
        text.push_str(&format!(
            "{} {}: {}\n",
            c.address,
            c.action.word(),
            c.reason
        ));
        for f in &c.files {
            text.push_str(&format!("    {} {}\n", f.action.word(), f.path));
        }
    }
    for s in &plan.steps {
        text.push_str(&format!(
            "{}. {} {}: {}\n",
            s.id,
            s.op.as_str(),
            s.address,
            s.reason
        ));
    }
    insta::assert_snapshot!("plan_every_kind", text);
}

#[test]
fn a_bug_while_observing_is_that_resources_error_not_a_crash() {
    let (host, recipe, _ntpd) = fixture_host();
    let out = Imlrecover::new()
        .args(["plan", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(host.latest())
        // The second resource in graph order panics while it is observed.
        .env("IMLRECOVER_FAULT", "observe-panic:1")
        .run();
    out.code(1)
        .stderr_has("cannot plan: 1 resource could not be observed")
        .stderr_has(
            "file.ntp_conf: internal error while observing it: fault injected: observe-panic:1",
        )
        .stderr_has("this is a bug in imlrecover; nothing was changed");
}
