//! The `influxdb` kind (#17): its block validates, and (against a real
//! `influxd` from the sandbox harness) backup, plan, apply and verify.

use crate::support;

use support::cli::{Imlrecover, Output};

fn validate_text(text: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("recipe.hcl");
    std::fs::write(&path, text).expect("write recipe");
    let out = Imlrecover::new()
        .current_dir(dir.path())
        .args(["validate", "-r", "recipe.hcl"])
        .run();
    (dir, out)
}

const SERVICES: &str = r#"
service "influxdb" {
  state = "running"
}
service "iml_manager" {
  name  = "iml-manager"
  state = "running"
}
"#;

#[test]
fn the_block_validates() {
    let recipe = format!(
        r#"{SERVICES}
influxdb "stats" {{
  databases  = ["iml", "iml_stats", "iml_stratagem_scans"]
  service    = service.influxdb
  rpc        = "127.0.0.1:8088"
  http       = "127.0.0.1:8086"
  bindir     = "/usr/bin"
  quiesce    = [service.iml_manager]
  optional   = false
  depends_on = [service.influxdb]
}}
"#
    );
    let (_d, out) = validate_text(&recipe);
    out.code(0);
    // The defaults: only the required attributes.
    let (_d, out) = validate_text(&format!(
        "{SERVICES}\ninfluxdb \"stats\" {{\n  databases = [\"iml\"]\n  service = service.influxdb\n}}\n"
    ));
    out.code(0);
}

#[test]
fn missing_databases_is_named() {
    let (_d, out) = validate_text(&format!(
        "{SERVICES}\ninfluxdb \"stats\" {{\n  service = service.influxdb\n}}\n"
    ));
    out.code(1)
        .stderr_has("recipe.hcl:10:1")
        .stderr_has("`influxdb.stats` is missing the required attribute `databases`");
}

#[test]
fn unknown_service_reference_is_named() {
    let (_d, out) = validate_text(&format!(
        "{SERVICES}\ninfluxdb \"stats\" {{\n  databases = [\"iml\"]\n  service = service.influx\n}}\n"
    ));
    out.code(1)
        .stderr_has("recipe.hcl:12:13")
        .stderr_has("reference to undeclared resource `service.influx`")
        .stderr_has("did you mean `service.influxdb`?");
}

#[test]
fn bad_values_are_named() {
    let cases = [
        (
            "databases = []\n  service = service.influxdb",
            "`databases` must name at least one database",
        ),
        (
            "databases = [\"iml\", \"iml\"]\n  service = service.influxdb",
            "`databases` names `iml` twice",
        ),
        (
            "databases = [\"iml\"]\n  service = service.influxdb\n  rpc = \"8088\"",
            "`rpc` must be host:port",
        ),
        (
            "databases = [\"iml\"]\n  service = [service.influxdb]",
            "`service` takes one service address",
        ),
        (
            "databases = [\"iml\"]\n  service = service.influxdb\n  quiesce = [service.influxdb]",
            "`quiesce` names service.influxdb, the InfluxDB service itself",
        ),
    ];
    for (body, message) in cases {
        let (_d, out) = validate_text(&format!(
            "{SERVICES}\ninfluxdb \"stats\" {{\n  {body}\n}}\n"
        ));
        out.code(1).stderr_has(message);
    }
}

use imlrecover::resources::influxdb::Counts;
use imlrecover::sandbox::influx::Influxd;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::host::Host;

const DATABASES: [&str; 3] = ["iml", "iml_stats", "iml_stratagem_scans"];

/// A fixture host whose InfluxDB (a real influxd) holds IML's three
/// databases, with the recipe naming it and a running `influxdb` service.
struct World {
    influxd: Influxd,
    host: Host,
    recipe: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        imlrecover::sandbox::initd::kill(&self.host.root, "influxdb");
        imlrecover::sandbox::initd::kill(&self.host.root, "iml-manager");
    }
}

fn world() -> World {
    world_with("", r#"["iml", "iml_stats", "iml_stratagem_scans"]"#, "")
}

/// [`world`] with more recipe text before the block, its `databases` and
/// more attributes in it.
fn world_with(before: &str, databases: &str, attrs: &str) -> World {
    let host = Host::new();
    let influxd = Influxd::start(&host.tmp.path().join("influxd"), None).expect("influxd starts");
    // iml: 2 × 3 series × 200; iml_stats: 3 × 5 × 400 (6000 points);
    // iml_stratagem_scans: 1 × 2 × 50.
    influxd.seed("iml", 2, 3, 200, "iml").unwrap();
    influxd.seed("iml_stats", 3, 5, 400, "stats").unwrap();
    influxd
        .seed("iml_stratagem_scans", 1, 2, 50, "scan")
        .unwrap();
    imlrecover::sandbox::initd::write_service(&host.root, "influxdb").unwrap();
    let out = std::process::Command::new(host.root.join("etc/init.d/influxdb"))
        .arg("start")
        .output()
        .unwrap();
    assert!(out.status.success());
    let recipe = host.tmp.path().join("influx.hcl");
    std::fs::write(
        &recipe,
        format!(
            r#"service "influxdb" {{
  state = "running"
}}
{before}
influxdb "stats" {{
  databases = {databases}
  service   = service.influxdb
  rpc       = "{rpc}"
  http      = "{http}"
  bindir    = "/usr/bin"
  {attrs}
}}
"#,
            rpc = influxd.rpc,
            http = influxd.http
        ),
    )
    .unwrap();
    World {
        influxd,
        host,
        recipe,
    }
}

impl World {
    fn server(&self) -> imlrecover::resources::influxdb::server::Server {
        imlrecover::resources::influxdb::server::Server {
            http: self.influxd.http.clone(),
            rpc: self.influxd.rpc.clone(),
            bindir: None,
        }
    }

    fn counts(&self) -> BTreeMap<String, Counts> {
        let s = self.server();
        let live = s.databases().unwrap();
        DATABASES
            .iter()
            .filter(|d| live.contains(&d.to_string()))
            .map(|d| (d.to_string(), s.counts(d, i64::MAX / 2).unwrap()))
            .collect()
    }

    fn q(&self, db: &str, q: &str) {
        self.influxd.query(Some(db), q).unwrap();
    }

    fn plan(&self, extra: &[&str]) -> Output {
        self.host.plan(&self.recipe, extra)
    }

    fn apply(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--auto-approve"];
        args.extend_from_slice(extra);
        self.host.apply(&self.recipe, &args)
    }
}

fn record(bundle: &Path) -> imlrecover::resources::influxdb::InfluxRecord {
    let m = support::host::manifest(bundle);
    m.resources
        .iter()
        .find_map(|r| match r {
            imlrecover::bundle::ResourceRecord::Influxdb { record, .. } => Some(record.clone()),
            _ => None,
        })
        .expect("an influxdb record")
}

fn expected_original() -> BTreeMap<String, Counts> {
    let c = |measurements, series, points: u64| Counts {
        measurements,
        series,
        points,
        values: points * 2,
    };
    BTreeMap::from([
        ("iml".to_string(), c(2, 6, 1200)),
        ("iml_stats".to_string(), c(3, 15, 6000)),
        ("iml_stratagem_scans".to_string(), c(1, 2, 100)),
    ])
}

#[test]
fn backup_records_the_files_and_counts() {
    let w = world();
    assert_eq!(w.counts(), expected_original());
    w.host.backup(&w.recipe);
    let bundle = w.host.latest();
    let rec = record(&bundle);
    let recorded: BTreeMap<String, Counts> = rec
        .databases
        .iter()
        .map(|(d, c)| (d.clone(), c.expect("present")))
        .collect();
    assert_eq!(recorded, expected_original());
    assert!(rec.version.starts_with("1."), "version {}", rec.version);
    let m = support::host::manifest(&bundle);
    for db in DATABASES {
        let files: Vec<&imlrecover::bundle::Entry> = m
            .entries
            .iter()
            .filter(|e| e.path.starts_with(&format!("influxdb.stats/{db}/")))
            .collect();
        // influxd's portable backup: a .meta, a .manifest and a shard archive.
        assert!(
            files.iter().any(|e| e.path.ends_with(".meta")),
            "{db}: {files:?}"
        );
        assert!(files.iter().any(|e| e.path.ends_with(".manifest")));
        assert!(files.iter().any(|e| e.path.ends_with(".tar.gz")));
        for e in files {
            let file = e.file.as_deref().unwrap();
            assert_eq!(file, format!("files/{}", e.path));
            let bytes = std::fs::read(bundle.join(file)).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().to_string(),
                e.blake3.clone().unwrap()
            );
        }
    }
    Imlrecover::new().arg("verify").arg(&bundle).run().code(0);
    // Nothing changed since: plan is clean.
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");
}

#[test]
fn disaster_plan_apply_replan() {
    let w = world();
    w.host.backup(&w.recipe);
    // A dropped database and deleted points.
    w.q("iml_stats", "DROP DATABASE iml_stats");
    w.q("iml", "DELETE FROM iml_m0 WHERE host = 'oss1'");
    let plan = w.plan(&["--detailed-exitcode"]);
    plan.code(2)
        .stdout_has("influxdb.stats")
        .stdout_has("databases iml, iml_stats differ from the bundle")
        .stdout_has("database iml_stats does not exist live (bundle: 3 measurements, 15 series, 6000 points, 12000 values)")
        .stdout_has("database iml: live 2 measurements, 5 series, 1000 points, 2000 values; bundle 2 measurements, 6 series, 1200 points, 2400 values");
    let out = w.apply(&[]);
    out.code(0)
        .stdout_has("restored InfluxDB databases iml, iml_stats, counts checked")
        .stdout_has("restored iml: 2 measurements, 6 series, 1200 points, 2400 values");
    // The live iml (short of points) was backed up into the run directory
    // before it was dropped; iml_stats did not exist.
    let runs = w.host.root.join("var/lib/imlrecover/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let safety = run.join("influxdb-safety-stats");
    assert!(safety.join("iml").read_dir().unwrap().count() >= 3);
    assert!(!safety.join("iml_stats").exists());
    out.stdout_has(&format!(
        "the live iml before it: {}",
        safety.join("iml").display()
    ));
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");
    assert_eq!(w.counts(), expected_original());
    // No temporary copy is left behind.
    let dbs = w.server().databases().unwrap();
    assert_eq!(dbs, ["iml", "iml_stats", "iml_stratagem_scans"]);
}

#[test]
fn wiped_data_dir_is_created_again() {
    let mut w = world();
    w.host.backup(&w.recipe);
    w.influxd.wipe().unwrap();
    assert!(w.counts().is_empty());
    w.plan(&["--detailed-exitcode"]).code(2).stdout_has(
        "InfluxDB has none of the bundle's databases (iml, iml_stats, iml_stratagem_scans)",
    );
    w.apply(&[]).code(0);
    assert_eq!(w.counts(), expected_original());
    w.plan(&["--detailed-exitcode"]).code(0);
}

#[test]
fn stopped_service_is_a_clear_error() {
    let w = world();
    w.host.backup(&w.recipe);
    let out = std::process::Command::new(w.host.root.join("etc/init.d/influxdb"))
        .arg("stop")
        .output()
        .unwrap();
    assert!(out.status.success());
    w.plan(&[]).code(1).stderr_has(
        "influxdb.stats: the InfluxDB service influxdb (service.influxdb) is not running",
    );
}

#[test]
fn encrypted_bundle_restores_with_the_identity() {
    let w = world();
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let key = w.host.tmp.path().join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    }
    w.host
        .backup_with(&w.recipe, &["--recipient", &public, "--encrypt-all"]);
    let bundle = w.host.latest();
    let m = support::host::manifest(&bundle);
    let influx: Vec<&String> = m
        .stored
        .keys()
        .filter(|k| k.starts_with("files/influxdb.stats/"))
        .collect();
    assert!(influx.len() >= 9, "every backup file is stored: {influx:?}");
    for rel in &influx {
        assert!(m.stored[*rel].encrypted);
        assert!(!bundle.join(rel).exists(), "no plaintext copy of {rel}");
    }
    w.q("iml_stats", "DROP DATABASE iml_stats");
    // Without the identity the backup cannot be read.
    w.apply(&[]).code(1).stderr_has("age");
    assert!(!w
        .server()
        .databases()
        .unwrap()
        .contains(&"iml_stats".to_string()));
    let key = key.to_str().unwrap();
    w.apply(&["--age-identity", key])
        .code(0)
        .stdout_has("restored InfluxDB database iml_stats, counts checked");
    assert_eq!(w.counts(), expected_original());
}

#[test]
fn tampered_backup_file_is_refused() {
    let w = world();
    w.host.backup(&w.recipe);
    let bundle = w.host.latest();
    let m = support::host::manifest(&bundle);
    let shard = m
        .entries
        .iter()
        .find(|e| e.path.starts_with("influxdb.stats/iml_stats/") && e.path.ends_with(".tar.gz"))
        .unwrap();
    let file = bundle.join(shard.file.as_deref().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .run()
        .code(1)
        .stdout_has(shard.file.as_deref().unwrap());
    w.q("iml_stats", "DROP DATABASE iml_stats");
    w.plan(&[])
        .code(1)
        .stderr_has("refusing bundle")
        .stderr_has(&format!("the bundle's copy of {}", shard.path));
    w.apply(&[]).code(1).stderr_has("refusing bundle");
    assert!(!w
        .server()
        .databases()
        .unwrap()
        .contains(&"iml_stats".to_string()));
}

#[test]
fn a_foreign_entry_under_the_address_is_refused() {
    let w = world();
    w.host.backup(&w.recipe);
    let bundle = w.host.latest();
    let mut m = support::host::manifest(&bundle);
    // A database the recipe does not name, smuggled in under the address.
    let mut e = m
        .entries
        .iter()
        .find(|e| e.path.starts_with("influxdb.stats/iml/"))
        .unwrap()
        .clone();
    e.path = e.path.replace("/iml/", "/other/");
    let from = bundle.join(e.file.as_deref().unwrap());
    e.file = Some(format!("files/{}", e.path));
    std::fs::create_dir_all(bundle.join("files/influxdb.stats/other")).unwrap();
    std::fs::copy(from, bundle.join(e.file.as_deref().unwrap())).unwrap();
    let path = e.path.clone();
    m.entries.push(e);
    support::host::write_manifest(&bundle, &m);
    w.plan(&[]).code(1).stderr_has(&format!(
        "{path} is not an InfluxDB backup file of its databases (iml, iml_stats, iml_stratagem_scans)"
    ));
}

#[test]
fn drill_restores_into_a_throwaway_influxd() {
    let w = world();
    w.host.backup(&w.recipe);
    let bundle = w.host.latest();
    let tmp = w.host.tmp.path().join("drilltmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&bundle)
        .env("TMPDIR", &tmp)
        .run();
    out.code(0)
        .stdout_has("Drill passed:")
        .stdout_has("influxdb.stats: restored iml (2 measurements, 6 series, 1200 points, 2400 values), iml_stats (3 measurements, 15 series, 6000 points, 12000 values)")
        .stdout_has("the counts match the manifest");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the throwaway influxd is removed"
    );
    // The live server was not touched.
    assert_eq!(w.counts(), expected_original());
}

#[test]
fn quiesced_services_are_stopped_around_the_restore() {
    let w = world_with(
        "service \"iml_manager\" {\n  name  = \"iml-manager\"\n  state = \"running\"\n}\n",
        r#"["iml", "iml_stats", "iml_stratagem_scans"]"#,
        "quiesce = [service.iml_manager]",
    );
    imlrecover::sandbox::initd::write_service(&w.host.root, "iml-manager").unwrap();
    let script = w.host.root.join("etc/init.d/iml-manager");
    assert!(std::process::Command::new(&script)
        .arg("start")
        .status()
        .unwrap()
        .success());
    w.host.backup(&w.recipe);
    w.q("iml", "DROP DATABASE iml");
    w.plan(&[])
        .code(0)
        .stdout_has("stop service.iml_manager (quiesce for the influxdb.stats restore)");
    w.apply(&[]).code(0);
    let log = std::fs::read_to_string(w.host.root.join("var/log/sandbox/iml-manager.log")).unwrap();
    assert_eq!(
        log, "start\nstop\nstart\n",
        "stopped for the restore, started after"
    );
    assert_eq!(w.counts(), expected_original());
}

#[test]
fn an_optional_missing_database_is_recorded_absent() {
    let dbs = r#"["iml", "iml_stats", "iml_stratagem_scans", "iml_later"]"#;
    let strict = world_with("", dbs, "");
    strict
        .host
        .try_backup(&strict.recipe, &[])
        .code(1)
        .stderr_has("influxdb.stats: InfluxDB has no database iml_later (it has: iml, iml_stats, iml_stratagem_scans)");
    drop(strict);
    let w = world_with("", dbs, "optional = true");
    w.host.backup(&w.recipe);
    let bundle = w.host.latest();
    assert_eq!(record(&bundle).databases["iml_later"], None);
    let m = support::host::manifest(&bundle);
    let absent = m
        .entries
        .iter()
        .find(|e| e.path == "influxdb.stats/iml_later")
        .expect("an absent entry");
    assert_eq!(absent.kind, imlrecover::bundle::EntryKind::Absent);
    w.plan(&["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");
}
