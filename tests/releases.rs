//! A wrong recipe shows before a disaster (#17 item 4): `plan` and `audit`
//! on sandbox managers (real LSB services, a real PostgreSQL cluster)
//! marked as one IML release family (src/sandbox/releases.rs), with a
//! recipe of another family or naming a service the host does not know.

use crate::support;

use imlrecover::init::Family;
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

#[test]
fn an_el7_4x_manager_is_restored_through_its_systemd_units() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::golden(tmp.path()).expect("golden manager");
    releases::mark(&sb, Family::El7_409).unwrap();
    let el7 = releases::El7::new(&sb, Family::El7_409, &tools());
    el7.start().unwrap();
    let installer = el7.write_installer(&sb).unwrap();
    let recipe = support::cli::repo().join("plans/iml-manager-el7.hcl");
    let rows = sb.rows().unwrap();
    let authority = std::fs::read(sb.root.join("var/lib/chroma/authority.crt")).unwrap();
    let cmd = |sb: &Sandbox, sub: &str, extra: &[&str]| {
        let t = sb.target();
        let mut i = Imlrecover::new()
            .args([sub, "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&sb.root)
            .args(["--var", &format!("installer={}", installer.display())])
            .args(["--var", &format!("pg_host={}", t.host.unwrap_or_default())])
            .args(["--var", &format!("pg_port={}", t.port.unwrap_or(5432))])
            .args(extra);
        for (k, v) in el7.env() {
            i = i.env(&k, v);
        }
        i.run()
    };
    let bundle = sb.bundles.join("latest").display().to_string();
    cmd(
        &sb,
        "backup",
        &["--bundle-dir", sb.bundles.to_str().unwrap()],
    )
    .code(0);
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(0);

    el7.stop();
    sb.disaster().unwrap();
    el7.write_installer(&sb).unwrap();
    let plan = cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]);
    plan.code(2).stdout_has("exec.installer");
    cmd(&sb, "apply", &["--bundle", &bundle, "--auto-approve"]).code(0);
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(0);
    assert_eq!(sb.rows().unwrap(), rows);
    assert_eq!(
        std::fs::read(sb.root.join("var/lib/chroma/authority.crt")).unwrap(),
        authority
    );
    // The derived settings file is the reinstalled host's, never restored.
    assert!(!sb.root.join("var/lib/chroma/iml-settings.conf").exists());
}

/// Series and point counts of each database, as InfluxDB reports them.
fn statistics(influxd: &imlrecover::sandbox::influx::Influxd, dbs: &[&str]) -> Vec<String> {
    dbs.iter()
        .flat_map(|db| {
            ["SHOW SERIES", "SELECT COUNT(*) FROM /.*/"].map(|q| {
                let v = influxd.query(Some(db), q).unwrap();
                format!("{db} {q}: {}", serde_json::Value::Array(v))
            })
        })
        .collect()
}

/// A 5.1+ manager: the recipe drafted by `imlrecover init` on the golden
/// host, then backup → disaster (the OS, the PostgreSQL cluster and
/// InfluxDB's disk lost) → plan → apply → a clean re-plan, with the rows
/// of `chroma` and `grafana` and InfluxDB's series and points as before.
fn restore_with_statistics(family: Family) {
    let tmp = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::golden(tmp.path()).expect("golden manager");
    releases::mark(&sb, family).unwrap();
    let mut influxd =
        imlrecover::sandbox::influx::Influxd::start(&tmp.path().join("influxd"), None).unwrap();
    let mut dbs = vec!["iml", "iml_stratagem_scans"];
    if family == Family::El7_61 {
        dbs.push("iml_stats");
    }
    for (n, db) in dbs.iter().enumerate() {
        influxd.seed(db, 2 + n, 3, 24, db).unwrap();
    }
    releases::point_influx(&sb, &influxd.rpc, &influxd.http).unwrap();
    let el7 = releases::El7::new(&sb, family, &tools());
    el7.start().unwrap();
    let installer = el7.write_installer(&sb).unwrap();
    let stats = statistics(&influxd, &dbs);
    let rows = sb.rows().unwrap();

    let recipe = tmp.path().join("manager.hcl");
    Imlrecover::new()
        .args(["init", "--root"])
        .arg(&sb.root)
        .args(["--var", "agents=[]", "--var"])
        .arg(format!("installer={}", installer.display()))
        .arg("-o")
        .arg(&recipe)
        .run()
        .code(0);
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(
        text.contains(&format!("  default     = \"{}\"\n", influxd.rpc)),
        "{text}"
    );
    assert!(text.contains(&format!("  default     = \"{}\"\n", influxd.http)));

    let cmd = |sb: &Sandbox, sub: &str, extra: &[&str]| {
        let t = sb.target();
        let mut i = Imlrecover::new()
            .args([sub, "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&sb.root)
            // The rebuilt host's cluster listens elsewhere than the golden one.
            .args(["--var", &format!("pg_host={}", t.host.unwrap_or_default())])
            .args(["--var", &format!("pg_port={}", t.port.unwrap_or(5432))])
            .args(extra);
        for (k, v) in el7.env() {
            i = i.env(&k, v);
        }
        i.run()
    };
    let bundle = sb.bundles.join("latest").display().to_string();
    cmd(
        &sb,
        "backup",
        &["--bundle-dir", sb.bundles.to_str().unwrap()],
    )
    .code(0);
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(0);

    el7.stop();
    sb.disaster().unwrap();
    influxd.wipe().unwrap();
    el7.write_installer(&sb).unwrap();
    // The statistics are gone with the disk.
    assert!(influxd.query(Some("iml"), "SHOW SERIES").is_err());
    // The rebuilt OS runs an empty InfluxDB, as it runs a fresh PostgreSQL
    // cluster: the influxdb kind plans only against a running server.
    el7.install_unit("influxdb.service").unwrap();
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"])
        .code(2)
        .stdout_has("influxdb.stats");
    cmd(&sb, "apply", &["--bundle", &bundle, "--auto-approve"]).code(0);
    cmd(&sb, "plan", &["--bundle", &bundle, "--detailed-exitcode"]).code(0);
    assert_eq!(sb.rows().unwrap(), rows);
    assert_eq!(statistics(&influxd, &dbs), stats);
    let grafana = imlrecover::host::postgres::query(
        &sb.target(),
        "grafana",
        "SELECT title FROM dashboard ORDER BY id",
    )
    .unwrap();
    assert_eq!(grafana, [["IML"], ["Stratagem"]]);
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
