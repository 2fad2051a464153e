//! `imlrecover plan` against real hosts: a sandbox manager (files, openssl
//! certificates, LSB services, a PostgreSQL cluster) for the shipped plan,
//! and the fixture host for deterministic, snapshot-tested output.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::cli::{fixtures, Imlrecover};
use support::manager::Manager;

const PLAN: &str = support::manager::PLAN;

#[test]
fn a_host_that_matches_its_bundle_plans_no_changes() {
    let m = Manager::golden();
    m.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");
    // Without --detailed-exitcode, changes or not, success is 0.
    m.plan(&[]).code(0);
}

#[test]
fn every_kind_of_difference_shows_with_its_symbol_reason_and_step() {
    let m = Manager::golden();
    // content
    std::fs::write(m.path("/etc/ntp.conf"), "server 192.0.2.1 iburst\n").unwrap();
    // mode
    std::fs::set_permissions(
        m.path("/etc/hosts"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // owner
    std::os::unix::fs::chown(m.path("/etc/nsswitch.conf"), Some(65534), None).unwrap();
    // missing file
    std::fs::remove_file(m.path("/etc/yum.conf")).unwrap();
    // a file that must be absent
    std::fs::create_dir_all(m.path("/var/log/chroma")).unwrap();
    std::fs::write(
        m.path("/var/log/chroma/client_errors.log"),
        "Internal Server Error\n",
    )
    .unwrap();
    // a different certificate (the installer ran again)
    imlrecover::sandbox::certs::make_chain(&m.path("/var/lib/chroma"), "other", 30).unwrap();
    // a stopped service
    m.service("httpd", "stop");

    let out = m.plan(&["--detailed-exitcode"]);
    out.code(2);
    for needle in [
        "~ file.ntp_conf (update: /etc/ntp.conf differs from the bundle)",
        "-server 192.0.2.1 iburst",
        "~ file.hosts (update: /etc/hosts differs from the bundle)",
        "mode 0600 → 0644",
        "owner nobody → root",
        "+ file.yum_conf (create: /etc/yum.conf is missing)",
        "- absent.client_errors_log (remove: /var/log/chroma/client_errors.log exists and must not)",
        "-/+ cert.authority (restore:",
        "-/+ cert.manager (restore:",
        "live:   O=IML sandbox other, CN=manager",
        "bundle: O=IML sandbox golden, CN=manager",
        "! service.httpd (run: httpd is stopped; desired state is running)",
        "! restart service.ntpd (because file.ntp_conf changed)",
        "- remove absent.client_errors_log",
        "! start service.httpd (desired state is running)",
        "Plan: 2 to restore, 1 to create, 3 to update, 1 to remove, 0 to run, 2 service actions.",
    ] {
        out.stdout_has(needle);
    }
    // The database is the one backed up: evidence, no change.
    let json = m.plan(&["--json"]);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let db = change(&plan, "database.chroma");
    assert_eq!(db["action"], "no-op");
    assert_eq!(
        db["reason"],
        "the live cluster is the one the bundle was taken from"
    );
}

#[test]
fn a_reinitialised_cluster_is_restored_inside_the_quiesce_bracket() {
    let mut m = Manager::golden();
    // Same host, but PostgreSQL re-initialised (new system_identifier) with an
    // empty chroma, as the installer leaves it.
    let fresh = imlrecover::host::postgres::TempCluster::start().unwrap();
    imlrecover::host::postgres::execute(
        &fresh.target(),
        "postgres",
        "CREATE ROLE chroma LOGIN; CREATE DATABASE chroma OWNER chroma;",
    )
    .unwrap();
    let old = m.sb.cluster.replace(fresh);
    drop(old);
    let out = m.plan(&["--detailed-exitcode"]);
    out.code(2)
        .stdout_has("-/+ database.chroma (restore: the live cluster (");
    out.stdout_has("was never restored into it)");
    let steps: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Steps, in order:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let pos = |s: &str| {
        steps
            .iter()
            .position(|l| l.contains(s))
            .unwrap_or_else(|| panic!("no step {s}: {steps:#?}"))
    };
    let restore = pos("restore database.chroma");
    for svc in ["chroma_supervisor", "httpd", "rabbitmq_server"] {
        assert!(
            pos(&format!(
                "stop service.{svc} (quiesce for the database.chroma restore)"
            )) < restore
        );
        assert!(
            pos(&format!(
                "start service.{svc} (start again after the database.chroma restore)"
            )) > restore
        );
    }
    // Started again in the runbook's order: rabbitmq-server, httpd, chroma-supervisor.
    assert!(pos("start service.rabbitmq_server") < pos("start service.httpd"));
    assert!(pos("start service.httpd") < pos("start service.chroma_supervisor"));
    // Stopped in the reverse order; PostgreSQL stays up.
    assert!(pos("stop service.chroma_supervisor") < pos("stop service.rabbitmq_server"));
    assert!(!steps.iter().any(|l| l.contains("service.postgresql")));
}

#[test]
fn replace_forces_a_restore_and_unknown_addresses_are_refused() {
    let m = Manager::golden();
    m.plan(&["--replace", "database.chroma", "--detailed-exitcode"])
        .code(2)
        .stdout_has("-/+ database.chroma (restore: forced with --replace)");
    m.plan(&["--replace", "database.chrome"])
        .code(1)
        .stderr_has("--replace database.chrome: the recipe declares no such resource")
        .stderr_has("did you mean `database.chroma`?");
}

fn change<'a>(plan: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("no change for {address}"))
}

#[test]
fn json_follows_the_documented_schema_and_redacts_secrets() {
    let m = Manager::golden();
    let secret = "root:$6$SECRETHASH$abc:19000:0:99999:7:::\n";
    std::fs::write(m.path("/etc/shadow"), secret).unwrap();
    std::fs::write(m.path("/etc/ntp.conf"), "server 192.0.2.1 iburst\n").unwrap();
    let out = m.plan(&["--json", "--detailed-exitcode"]);
    out.code(2);
    assert!(
        !out.stdout.contains("SECRETHASH"),
        "secret content leaked into the JSON"
    );
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["format_version"], 1);
    for key in [
        "tool_version",
        "created",
        "recipe",
        "bundle",
        "root",
        "resource_changes",
        "steps",
        "summary",
        "warnings",
        "variables",
    ] {
        assert!(plan.get(key).is_some(), "top-level `{key}` missing");
    }
    for c in plan["resource_changes"].as_array().unwrap() {
        for key in [
            "address",
            "action",
            "reason",
            "details",
            "files",
            "before",
            "after",
            "observed",
            "sensitive",
        ] {
            assert!(c.get(key).is_some(), "{} lacks `{key}`", c["address"]);
        }
        let action = c["action"].as_str().unwrap();
        assert!(
            ["no-op", "create", "update", "delete", "restore", "run"].contains(&action),
            "{action}"
        );
    }
    let shadow = change(&plan, "file.shadow");
    assert_eq!(shadow["action"], "update");
    assert_eq!(shadow["sensitive"], true);
    let detail = shadow["files"][0]["details"][0].as_str().unwrap();
    assert!(detail.starts_with("content changed (blake3 "), "{detail}");
    assert!(shadow["files"][0].get("diff").is_none());
    let ntp = change(&plan, "file.ntp_conf");
    assert!(ntp["files"][0]["diff"]
        .as_str()
        .unwrap()
        .contains("-server 192.0.2.1 iburst"));
    let steps = plan["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["op"] == "restart"
        && s["address"] == "service.ntpd"
        && s["reason"] == "because file.ntp_conf changed"));
    assert_eq!(steps[0]["id"], 1);
    assert_eq!(plan["summary"]["update"], 2);
}

/// Everything under a directory: path → (mode, blake3).
fn tree(dir: &Path) -> BTreeMap<String, (u32, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            if meta.is_dir() {
                stack.push(p);
                out.insert(rel, (mode, String::new()));
            } else if meta.is_file() {
                let hash = blake3::hash(&std::fs::read(&p).unwrap())
                    .to_hex()
                    .to_string();
                out.insert(rel, (mode, hash));
            } else {
                out.insert(rel, (mode, format!("-> {:?}", std::fs::read_link(&p).ok())));
            }
        }
    }
    out
}

#[test]
fn plan_changes_nothing_on_the_host_in_the_bundle_or_in_the_database() {
    let m = Manager::golden();
    std::fs::write(m.path("/etc/ntp.conf"), "server 192.0.2.1 iburst\n").unwrap();
    m.service("httpd", "stop");
    let ignore_logs = |t: BTreeMap<String, (u32, String)>| -> BTreeMap<String, (u32, String)> {
        t.into_iter()
            .filter(|(k, _)| !k.starts_with("var/run"))
            .collect()
    };
    let root_before = ignore_logs(tree(&m.sb.root));
    let bundles_before = tree(&m.sb.bundles);
    let rows_before = m.sb.rows().unwrap();
    let id_before = imlrecover::host::postgres::cluster_identity(&m.sb.target()).unwrap();
    for extra in [
        &["--detailed-exitcode"][..],
        &["--replace", "database.chroma"],
        &["--json"],
    ] {
        m.plan(extra);
    }
    assert_eq!(ignore_logs(tree(&m.sb.root)), root_before);
    assert_eq!(tree(&m.sb.bundles), bundles_before);
    assert_eq!(m.sb.rows().unwrap(), rows_before);
    assert_eq!(
        imlrecover::host::postgres::cluster_identity(&m.sb.target()).unwrap(),
        id_before
    );
    assert_eq!(
        imlrecover::sandbox::initd::actions(&m.sb.root, "httpd")
            .last()
            .map(String::as_str),
        Some("stop")
    );
}

#[test]
fn saved_plans_hold_no_secrets_and_show_renders_them() {
    let m = Manager::golden();
    std::fs::write(
        m.path("/etc/shadow"),
        "root:$6$SECRETHASH$abc:19000::::::\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restore.plan");
    let out = m.plan(&["--out", file.to_str().unwrap()]);
    out.code(0).stdout_has("Saved the plan to");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(!saved.contains("SECRETHASH"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let shown = Imlrecover::new().arg("show").arg(&file).run();
    shown
        .code(0)
        .stdout_has("~ file.shadow (update: /etc/shadow differs from the bundle)");
    let json = Imlrecover::new().arg("show").arg(&file).arg("--json").run();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    std::fs::write(&file, "{\"format_version\": 99}").unwrap();
    Imlrecover::new()
        .arg("show")
        .arg(&file)
        .run()
        .code(1)
        .stderr_has("has plan format 99");
}

#[test]
fn bad_inputs_are_errors_and_never_drift() {
    let mut m = Manager::golden();
    // A root that does not exist.
    Imlrecover::new()
        .args([
            "plan",
            "-r",
            PLAN,
            "--root",
            "/nonexistent/root",
            "--bundle",
            &m.bundle,
        ])
        .args(m.sb.var_args())
        .args(["--detailed-exitcode"])
        .run()
        .code(1)
        .stderr_has("does not exist or is not a directory");
    // A bundle whose copy of a file the plan needs was tampered with.
    std::fs::write(m.path("/etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let copy = PathBuf::from(&m.bundle).join("files/etc/hosts");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&copy, bytes).unwrap();
    m.plan(&["--detailed-exitcode"])
        .code(1)
        .stderr_has("file.hosts: the bundle's copy of /etc/hosts (files/etc/hosts) does not match its manifest hash");
    // An unknown service (init script gone, no installer run planned).
    std::fs::remove_file(m.sb.root.join("etc/init.d/ntpd")).unwrap();
    m.plan(&[])
        .code(1)
        .stderr_has("service.ntpd: unknown service `ntpd`");
    // An unreachable database.
    if let Some(c) = m.sb.cluster.as_mut() {
        let _ = c.stop();
    }
    m.plan(&[]).code(1).stderr_has("database.chroma:");
}

#[test]
fn a_bundle_from_another_recipe_warns_and_names_what_it_lacks() {
    let host = support::host::Host::new();
    let recipe = host.files_recipe();
    host.backup(&recipe);
    let extra = host.tmp.path().join("more.hcl");
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    text.push_str("\nfile \"motd\" {\n  path = \"/etc/motd\"\n  optional = true\n}\n");
    std::fs::write(&extra, text).unwrap();
    let out = Imlrecover::new()
        .args(["plan", "-r"])
        .arg(&extra)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(host.latest())
        .run();
    out.code(0)
        .stdout_has("Warning: the bundle was made from a different recipe")
        .stdout_has("not in the bundle, left unplanned: file.motd");
}

/// Kills the fixture host's ntpd when the test ends, pass or fail.
pub(crate) struct Ntpd(PathBuf);

impl Drop for Ntpd {
    fn drop(&mut self) {
        imlrecover::sandbox::initd::kill(&self.0, "ntpd");
    }
}

pub(crate) fn fixture_host() -> (support::host::Host, PathBuf, Ntpd) {
    let host = support::host::Host::new();
    // The checkout's umask must not change the snapshot: modes as on a host.
    normalise_modes(&host.root);
    let recipe = fixtures().join("plan/files.hcl");
    imlrecover::sandbox::initd::write_service(&host.root, "ntpd").unwrap();
    let guard = Ntpd(host.root.clone());
    let out = std::process::Command::new(host.root.join("etc/init.d/ntpd"))
        .arg("start")
        .output()
        .unwrap();
    assert!(out.status.success());
    host.backup(&recipe);
    (host, recipe, guard)
}

#[test]
fn rendered_plans_plain_and_coloured() {
    let (host, recipe, _ntpd) = fixture_host();
    std::fs::write(
        host.file("/etc/ntp.conf"),
        "driftfile /var/lib/ntp/drift\nserver 192.0.2.1 iburst\n",
    )
    .unwrap();
    std::fs::write(host.file("/etc/shadow"), "root:!!:19000::::::\n").unwrap();
    std::fs::remove_file(host.file("/etc/yum.repos.d/chroma.repo")).unwrap();
    std::fs::create_dir_all(host.file("/var/log/chroma")).unwrap();
    std::fs::write(host.file("/var/log/chroma/client_errors.log"), "boom\n").unwrap();
    let run = |color: &str| {
        let out = Imlrecover::new()
            .args(["plan", "--color", color, "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(host.latest())
            .run();
        out.code(0);
        out.stdout
    };
    let plain = run("never");
    assert!(!plain.contains('\u{1b}'), "no escape codes when not asked");
    insta::assert_snapshot!("plan_plain", plain);
    let coloured = run("always");
    assert!(coloured.contains("\u{1b}[32m+"), "green + for creations");
    insta::assert_snapshot!("plan_coloured", coloured);
}

pub(crate) fn normalise_modes(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let mode = if e.file_type().unwrap().is_dir() {
            normalise_modes(&p);
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
}
