//! The `influxdb` kind when things go wrong or come from elsewhere: a
//! restore killed half-way is owed until its counts are checked (#21), a
//! saved plan goes stale when InfluxDB changed, and `import` reports the
//! resource lacking (a runbook backup holds no InfluxDB data).

use crate::support;

use super::influxdb::{expected_original, world, world_with, DATABASES};
use std::path::PathBuf;
use support::cli::Imlrecover;

fn run_dirs(root: &std::path::Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(root.join("var/lib/imlrecover/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    runs
}

#[test]
fn a_restore_killed_after_the_drop_is_owed_and_finished() {
    let w = world();
    w.host.backup(&w.recipe);
    let original = w.server().counts("iml", i64::MAX / 2).unwrap();
    w.q("iml", "DELETE FROM iml_m0 WHERE host = 'oss1'");
    let out = w
        .host
        .cmd("apply", &w.recipe)
        .arg("--auto-approve")
        .env("IMLRECOVER_FAULT", "at:influxdb-dropped")
        .run();
    assert_eq!(
        out.code, -1,
        "killed by SIGKILL after the drop\n{}\n{}",
        out.stdout, out.stderr
    );
    // Killed between dropping the live iml and restoring the bundle's: the
    // checked copy and the run's safety backup are what is left.
    let dbs = w.server().databases().unwrap();
    assert_eq!(
        dbs,
        ["iml_imlrecover_tmp", "iml_stats", "iml_stratagem_scans"]
    );
    assert_eq!(
        w.server()
            .counts("iml_imlrecover_tmp", i64::MAX / 2)
            .unwrap(),
        original
    );
    let runs = run_dirs(&w.host.root);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    let safety = runs[0].join("influxdb-safety-stats/iml");
    assert!(safety.read_dir().unwrap().count() >= 3, "{safety:?}");
    let state = std::fs::read_to_string(w.host.root.join("var/lib/imlrecover/state.json")).unwrap();
    assert!(
        state.contains("\"influxdb.stats\"") && state.contains(&run),
        "{state}"
    );
    // The plan owes the restore, and says which run left it.
    w.plan(&["--detailed-exitcode"])
        .code(2)
        .stdout_has(&format!("the restore of run {run} was interrupted"))
        .stdout_has(&format!("run {run} started restoring bundle"));
    let audit = w.host.audit(&w.recipe, &[]);
    assert_ne!(audit.code, 0, "{}", audit.stdout);
    audit.stdout_has(&format!("the restore of run {run} was interrupted"));
    let again = w.apply(&[]);
    again
        .code(0)
        .stdout_has("restored InfluxDB database iml, counts checked");
    assert_eq!(w.counts(), expected_original());
    assert_eq!(
        w.server().databases().unwrap(),
        ["iml", "iml_stats", "iml_stratagem_scans"]
    );
    // The killed run's safety backup is kept.
    assert!(safety.read_dir().unwrap().count() >= 3);
    let state = std::fs::read_to_string(w.host.root.join("var/lib/imlrecover/state.json")).unwrap();
    assert!(!state.contains("\"started\""), "{state}");
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");
}

/// Killed after the bundle's copy was restored and checked, before the
/// temporary copy was dropped and the check recorded: the next apply
/// checks again and tidies up, restoring nothing.
#[test]
fn a_restore_killed_after_its_last_check_is_finished_without_restoring() {
    let w = world();
    w.host.backup(&w.recipe);
    w.q("iml", "DELETE FROM iml_m0 WHERE host = 'oss1'");
    let out = w
        .host
        .cmd("apply", &w.recipe)
        .arg("--auto-approve")
        .env("IMLRECOVER_FAULT", "at:influxdb-restored")
        .run();
    assert_eq!(out.code, -1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(w.counts(), expected_original());
    assert_eq!(
        w.server().databases().unwrap(),
        [
            "iml",
            "iml_imlrecover_tmp",
            "iml_stats",
            "iml_stratagem_scans"
        ]
    );
    let runs = run_dirs(&w.host.root);
    let run = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    // The counts match, but the check was never recorded: still owed.
    w.plan(&["--detailed-exitcode"])
        .code(2)
        .stdout_has(&format!("the restore of run {run} was interrupted"));
    w.apply(&[])
        .code(0)
        .stdout_has(&format!(
            "finished the interrupted restore of run {run}: iml, iml_stats, iml_stratagem_scans hold the bundle's counts"
        ))
        .stdout_has("dropped the leftover copy iml_imlrecover_tmp");
    // Nothing was restored again: the second run took no safety backup.
    let runs = run_dirs(&w.host.root);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(!runs[1].join("influxdb-safety-stats").exists());
    assert_eq!(
        w.server().databases().unwrap(),
        ["iml", "iml_stats", "iml_stratagem_scans"]
    );
    assert_eq!(w.counts(), expected_original());
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");
}

#[test]
fn apply_from_a_saved_plan_and_a_stale_one_refused() {
    let w = world();
    w.host.backup(&w.recipe);
    w.q("iml_stats", "DROP DATABASE iml_stats");
    let planfile = w.host.tmp.path().join("influx.plan");
    w.host
        .cmd("plan", &w.recipe)
        .arg("--out")
        .arg(&planfile)
        .run()
        .code(0)
        .stdout_has("database iml_stats does not exist live");
    // InfluxDB changes after planning: the saved plan is stale, nothing runs.
    w.q("iml", "DELETE FROM iml_m0 WHERE host = 'oss1'");
    Imlrecover::new()
        .arg("apply")
        .arg(&planfile)
        .run()
        .code(1)
        .stderr_has(
            "the saved plan is stale: influxdb.stats changed on the host since it was made",
        );
    assert!(!w
        .server()
        .databases()
        .unwrap()
        .contains(&"iml_stats".to_string()));
    assert!(
        !w.host.root.join("var/lib/imlrecover/runs").exists() || run_dirs(&w.host.root).is_empty()
    );
    // Planned again, the saved plan runs and the re-plan is clean.
    w.host
        .cmd("plan", &w.recipe)
        .arg("--out")
        .arg(&planfile)
        .run()
        .code(0);
    Imlrecover::new()
        .arg("apply")
        .arg(&planfile)
        .run()
        .code(0)
        .stdout_has("restored InfluxDB databases iml, iml_stats, counts checked")
        .stdout_has("Apply complete!");
    assert_eq!(w.counts(), expected_original());
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");
}

#[test]
fn import_reports_the_resource_lacking_and_imports_the_rest() {
    let w = world_with(
        "file \"hosts\" {\n  path = \"/etc/hosts\"\n}\n",
        r#"["iml", "iml_stats", "iml_stratagem_scans"]"#,
        "",
    );
    // A runbook backup directory: the files the runbook copies, no InfluxDB.
    let dir = w.host.tmp.path().join("home/backup");
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    let hosts = std::fs::read(w.host.root.join("etc/hosts")).unwrap();
    std::fs::write(dir.join("etc/hosts"), &hosts).unwrap();
    let out = Imlrecover::new()
        .arg("import")
        .arg(&dir)
        .arg("-r")
        .arg(&w.recipe)
        .arg("--bundle-dir")
        .arg(&w.host.bundles)
        .env("TZ", "UTC")
        .run();
    out.code(0)
        .stdout_has("Found (1 resource):")
        .stdout_has("Lacking (1): not in the bundle; a plan leaves the live host's copies alone\n  influxdb.stats  InfluxDB databases iml, iml_stats, iml_stratagem_scans: the runbook does not save it\n")
        .stdout_has("1 resources: 1 files; 1 lacking");
    let bundle = w.host.latest();
    let m = support::host::manifest(&bundle);
    assert_eq!(
        m.imported.as_ref().map(|i| i.lacking.clone()),
        Some(vec!["influxdb.stats".parse().unwrap()])
    );
    assert!(m
        .entries
        .iter()
        .all(|e| e.address.to_string() == "file.hosts"));
    assert_eq!(
        std::fs::read(bundle.join("files/etc/hosts")).unwrap(),
        hosts
    );
    // A plan from the import leaves the live InfluxDB alone, and says why.
    let before = w.counts();
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");
    let plan = w.plan(&["--json"]);
    plan.code(0);
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let change = json["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "influxdb.stats")
        .unwrap_or_else(|| panic!("{}", plan.stdout));
    assert_eq!(
        change["reason"], "not in the bundle (the runbook backup it was imported from lacks it)",
        "{change}"
    );
    assert_eq!(w.counts(), before);
    assert_eq!(before.len(), DATABASES.len());
}
