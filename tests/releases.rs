//! A wrong recipe shows before a disaster (#17 item 4): `plan` and `audit`
//! on sandbox managers (real LSB services, a real PostgreSQL cluster)
//! marked as one IML release family (src/sandbox/releases.rs), with a
//! recipe of another family or naming a service the host does not know.

use crate::support;

use imlrecover::init::Family;
use imlrecover::sandbox::el7::{El7Manager, Systemctl};
use imlrecover::sandbox::manager::Sandbox;
use imlrecover::sandbox::{initd, releases};
use std::path::Path;
use support::cli::{Imlrecover, Output};

const EL6: &str = "plans/iml-manager.hcl";

fn golden() -> (tempfile::TempDir, Sandbox) {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Sandbox::golden(tmp.path()).expect("golden manager");
    (tmp, sb)
}

fn run(cmd: &str, sb: &Sandbox, recipe: &Path) -> Output {
    let mut i = Imlrecover::new()
        .args([cmd, "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&sb.root);
    i = if cmd == "backup" {
        i.arg("--bundle-dir").arg(&sb.bundles)
    } else {
        i.arg("--bundle").arg(sb.bundles.join("latest"))
    };
    i.args(sb.var_args()).run()
}

#[test]
fn the_el6_recipe_on_an_el7_manager_is_a_warning_and_a_finding() {
    let (_tmp, sb) = golden();
    let recipe = support::cli::repo().join(EL6);
    run("backup", &sb, &recipe).code(0);
    // The same host, clean (EL6 by its chroma-supervisor script): no warning.
    let plan = run("plan", &sb, &recipe);
    plan.code(0);
    assert!(!plan.stdout.contains("Warning:"), "{}", plan.stdout);

    // Upgraded to IML 4.0.10 on EL7: the units are there, the old SysV
    // script is left behind, and the recipe is still the EL6 one.
    releases::mark(&sb, Family::El7_409).unwrap();
    initd::write_service(&sb.root, "chroma-supervisor").unwrap();
    let warning = format!(
        "Warning: the recipe is for IML 3.x–4.0.8 on EL6 (SysV) (el6), but this host runs IML 4.0.9–5.0 on EL7 (el7-4.0.9, release 4.0.10.2 (PACKAGE_VERSION in /usr/share/chroma-manager/scm_version.py)); draft the recipe for this host with `imlrecover init --root {} -o FILE` (or start from plans/iml-manager-el7.hcl)",
        sb.root.display()
    );
    run("plan", &sb, &recipe).code(0).stdout_has(&warning);

    let audit = Imlrecover::new()
        .args(["audit", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&sb.root)
        .arg("--bundle")
        .arg(sb.bundles.join("latest"))
        .args(sb.var_args())
        .args(["--format", "json"])
        .run();
    audit.code(2);
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let found: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "drift.release")
        .collect();
    assert_eq!(found.len(), 1, "{}", audit.stdout);
    assert_eq!(found[0]["status"], "fail");
    assert!(found[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("the recipe is for IML 3.x–4.0.8 on EL6 (SysV) (el6), but this host runs"));
    assert!(found[0]["details"][0]
        .as_str()
        .unwrap()
        .contains("imlrecover init --root"));
}

#[test]
fn a_service_the_host_does_not_know_names_init_as_the_fix() {
    let (tmp, sb) = golden();
    releases::mark(&sb, Family::El6).unwrap();
    let text = std::fs::read_to_string(support::cli::repo().join(EL6)).unwrap()
        + "\nservice \"grafana\" {\n  name       = \"grafana-server\"\n  state      = \"running\"\n  depends_on = [exec.installer]\n}\n";
    let recipe = tmp.path().join("el6-grafana.hcl");
    std::fs::write(&recipe, text).unwrap();
    run("backup", &sb, &recipe).code(0);
    let expected = "service `grafana-server` is unknown to SysV init on this el6 host (no /etc/init.d/grafana-server); draft the recipe for this host with `imlrecover init";
    for cmd in ["plan", "audit"] {
        let out = run(cmd, &sb, &recipe);
        out.code(1)
            .stderr_has("unknown service `grafana-server`")
            .stderr_has(expected);
    }
}

/// docker-systemctl-replacement, installed by .ci/run (as tests/unit_lookups).
fn tools() -> std::path::PathBuf {
    let dir = support::cli::repo().join("target/test-tools/systemctl");
    assert!(
        dir.join("systemctl2/systemctl3.py").is_file(),
        "docker-systemctl-replacement is missing: pip3 install --target {} docker-systemctl-replacement (.ci/run does)",
        dir.display()
    );
    dir
}

/// The golden EL7 manager of `family`, whole (units, InfluxDB from 5.1).
fn el7_manager(dir: &Path, family: Family) -> El7Manager {
    El7Manager::golden(dir, family, &Systemctl::at(&tools()), None).expect("golden EL7 manager")
}

/// `imlrecover SUB -r RECIPE --root ROOT` on an EL7 manager: its media and
/// cluster (the rebuilt host's listens elsewhere than the golden one's),
/// its units reached through docker-systemctl-replacement.
fn el7_cmd(m: &El7Manager, recipe: &Path, sub: &str, extra: &[&str]) -> Output {
    el7_cmd_env(m, m.env(), recipe, sub, extra)
}

/// [`el7_cmd`] with `env` for the manager's own environment.
fn el7_cmd_env(
    m: &El7Manager,
    env: Vec<(String, String)>,
    recipe: &Path,
    sub: &str,
    extra: &[&str],
) -> Output {
    let mut i = Imlrecover::new()
        .args([sub, "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&m.sandbox.root)
        .args(m.var_args())
        .args(extra);
    for (k, v) in env {
        i = i.env(&k, v);
    }
    i.run()
}

#[test]
fn an_el7_4x_manager_is_restored_through_its_systemd_units() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = el7_manager(tmp.path(), Family::El7_409);
    let recipe = support::cli::repo().join("plans/iml-manager-el7.hcl");
    let rows = m.sandbox.rows().unwrap();
    let authority = std::fs::read(m.sandbox.root.join("var/lib/chroma/authority.crt")).unwrap();
    let bundles = m.sandbox.bundles.display().to_string();
    let bundle = m.sandbox.bundles.join("latest").display().to_string();
    el7_cmd(&m, &recipe, "backup", &["--bundle-dir", &bundles]).code(0);
    el7_cmd(
        &m,
        &recipe,
        "plan",
        &["--bundle", &bundle, "--detailed-exitcode"],
    )
    .code(0);

    m.disaster().unwrap();
    let plan = el7_cmd(
        &m,
        &recipe,
        "plan",
        &["--bundle", &bundle, "--detailed-exitcode"],
    );
    plan.code(2).stdout_has("exec.installer");
    el7_cmd(
        &m,
        &recipe,
        "apply",
        &["--bundle", &bundle, "--auto-approve"],
    )
    .code(0);
    el7_cmd(
        &m,
        &recipe,
        "plan",
        &["--bundle", &bundle, "--detailed-exitcode"],
    )
    .code(0);
    assert_eq!(m.sandbox.rows().unwrap(), rows);
    assert_eq!(
        std::fs::read(m.sandbox.root.join("var/lib/chroma/authority.crt")).unwrap(),
        authority
    );
    // The derived settings file is the reinstalled host's, never restored.
    assert!(!m
        .sandbox
        .root
        .join("var/lib/chroma/iml-settings.conf")
        .exists());
}

/// A 5.1+ manager: the recipe drafted by `imlrecover init` on the golden
/// host, then backup → disaster (the OS, the PostgreSQL cluster and
/// InfluxDB's disk lost) → plan → apply → a clean re-plan, with the rows
/// of `chroma` and `grafana` and InfluxDB's series and points as before.
fn restore_with_statistics(family: Family) {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = el7_manager(tmp.path(), family);
    let stats = m.statistics().unwrap();
    assert_eq!(stats.len(), 2 * m.databases.len());
    let rows = m.sandbox.rows().unwrap();
    let (rpc, http) = {
        let d = m.influxd.as_ref().unwrap();
        (d.rpc.clone(), d.http.clone())
    };

    let recipe = tmp.path().join("manager.hcl");
    Imlrecover::new()
        .args(["init", "--root"])
        .arg(&m.sandbox.root)
        .args(["--var", "agents=[]", "--var"])
        .arg(format!("installer={}", m.installer.display()))
        .arg("-o")
        .arg(&recipe)
        .run()
        .code(0);
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(
        text.contains(&format!("  default     = \"{rpc}\"\n")),
        "{text}"
    );
    assert!(text.contains(&format!("  default     = \"{http}\"\n")));

    let bundles = m.sandbox.bundles.display().to_string();
    let bundle = m.sandbox.bundles.join("latest").display().to_string();
    el7_cmd(&m, &recipe, "backup", &["--bundle-dir", &bundles]).code(0);
    el7_cmd(
        &m,
        &recipe,
        "plan",
        &["--bundle", &bundle, "--detailed-exitcode"],
    )
    .code(0);

    // The rebuilt OS runs an empty InfluxDB, as it runs a fresh PostgreSQL
    // cluster: the influxdb kind plans only against a running server.
    m.disaster().unwrap();
    // The statistics are gone with the disk.
    assert!(m
        .influxd
        .as_ref()
        .unwrap()
        .query(Some("iml"), "SHOW SERIES")
        .is_err());
    let plan = el7_cmd(
        &m,
        &recipe,
        "plan",
        &["--bundle", &bundle, "--detailed-exitcode"],
    );
    plan.code(2).stdout_has("influxdb.stats");
    // The installer starts the manager's units (their files are new):
    // they are stopped after it, before the restores.
    let at = |s: &str| {
        plan.stdout
            .find(s)
            .unwrap_or_else(|| panic!("the plan lacks {s:?}:\n{}", plan.stdout))
    };
    let installer = at(". ! run exec.installer");
    let quiesce = at(". ! stop service.iml_manager (quiesce for the database.chroma restore)");
    assert!(installer < quiesce && quiesce < at(". -/+ restore database.chroma"));
    assert!(quiesce < at(". -/+ restore influxdb.stats"));
    let (log, env) = logged_systemctl(tmp.path(), &m);
    let out = el7_cmd_env(
        &m,
        env,
        &recipe,
        "apply",
        &["--bundle", &bundle, "--auto-approve"],
    );
    out.code(0);
    // The quiesce is one `systemctl stop`; each step still reports its own.
    let calls = systemctl_calls(&log);
    let stops: Vec<_> = calls.iter().filter(|(v, _)| v == "stop").collect();
    assert_eq!(stops.len(), 1, "{calls:?}");
    for unit in [
        "iml-manager.target",
        "grafana-server",
        "nginx",
        "rabbitmq-server",
    ] {
        assert!(stops[0].1.iter().any(|u| u == unit), "{unit}: {calls:?}");
        out.stdout_has(&format!("{unit} stopped"));
        out.stdout_has(&format!("{unit} started"));
    }
    // The starts: together where the units order them as the recipe does
    // (iml-manager.target is After= nginx and grafana-server); never
    // together where only the recipe does (nginx after rabbitmq-server).
    let starts: Vec<_> = calls.iter().filter(|(v, _)| v == "start").collect();
    let with = |unit: &str| {
        starts
            .iter()
            .find(|(_, us)| us.iter().any(|u| u == unit))
            .unwrap_or_else(|| panic!("{unit} never started: {calls:?}"))
    };
    let target = &with("iml-manager.target").1;
    assert!(target.len() > 1, "{calls:?}");
    assert!(target.iter().any(|u| u == "nginx"), "{calls:?}");
    assert!(
        !with("nginx").1.iter().any(|u| u == "rabbitmq-server"),
        "{calls:?}"
    );
    assert!(starts.len() < 4, "{calls:?}");
    // The proof re-plan asks every installed service's status at once.
    assert!(
        calls
            .iter()
            .any(|(v, us)| v == "is-active" && us.len() >= 6),
        "{calls:?}"
    );
    el7_cmd(
        &m,
        &recipe,
        "plan",
        &["--bundle", &bundle, "--detailed-exitcode"],
    )
    .code(0);
    assert_eq!(m.sandbox.rows().unwrap(), rows);
    assert_eq!(m.statistics().unwrap(), stats);
    let grafana = imlrecover::host::postgres::query(
        &m.sandbox.target(),
        "grafana",
        "SELECT title FROM dashboard ORDER BY id",
    )
    .unwrap();
    assert_eq!(grafana, [["IML"], ["Stratagem"]]);
}

/// The environment of `m` with its `systemctl` logging each call to the
/// returned file before running it.
fn logged_systemctl(dir: &Path, m: &El7Manager) -> (std::path::PathBuf, Vec<(String, String)>) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("systemctl.log");
    let wrapper = dir.join("logged-systemctl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = m
        .env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "IMLRECOVER_SYSTEMCTL" => (k, format!("{} {v}", wrapper.display())),
            _ => (k, v),
        })
        .collect();
    (log, env)
}

/// Each logged call's verb and units (the words after `--root=…`).
fn systemctl_calls(log: &Path) -> Vec<(String, Vec<String>)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line
                .split_whitespace()
                .skip_while(|w| !w.starts_with("--root="));
            words.next()?;
            let verb = words.next()?.to_string();
            Some((verb, words.map(str::to_string).collect()))
        })
        .collect()
}

#[test]
fn an_el7_5_1_manager_is_restored_with_its_statistics() {
    restore_with_statistics(Family::El7_51);
}

#[test]
fn an_el7_6_1_manager_is_restored_with_its_statistics() {
    restore_with_statistics(Family::El7_61);
}

/// EL6 (SysV): the recipe `imlrecover init` drafts on the golden host
/// restores it as the shipped one does.
#[test]
fn an_el6_manager_is_restored_from_its_init_drafted_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::golden(tmp.path()).expect("golden manager");
    releases::mark(&sb, Family::El6).unwrap();
    let rows = sb.rows().unwrap();
    let recipe = tmp.path().join("manager.hcl");
    Imlrecover::new()
        .args(["init", "--root"])
        .arg(&sb.root)
        .args(["--var", "agents=[]", "--var"])
        .arg(format!("installer={}", sb.installer.display()))
        .arg("-o")
        .arg(&recipe)
        .run()
        .code(0)
        .stdout_has("for IML 3.x–4.0.8 on EL6 (SysV)");
    let cmd = |sb: &Sandbox, sub: &str, extra: &[&str]| {
        let t = sb.target();
        Imlrecover::new()
            .args([sub, "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&sb.root)
            .args(["--var", &format!("pg_host={}", t.host.unwrap_or_default())])
            .args(["--var", &format!("pg_port={}", t.port.unwrap_or(5432))])
            .args(extra)
            .run()
    };
    let bundle = sb.bundles.join("latest").display().to_string();
    cmd(
        &sb,
        "backup",
        &["--bundle-dir", sb.bundles.to_str().unwrap()],
    )
    .code(0);
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(0);
    sb.disaster().unwrap();
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(2);
    cmd(&sb, "apply", &["--bundle", &bundle, "--auto-approve"]).code(0);
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(0);
    assert_eq!(sb.rows().unwrap(), rows);
}
