//! What keeps backups usable on the day they are needed: the drill record
//! that `verify --drill` writes and `audit --max-drill-age` reads (a real
//! throwaway PostgreSQL cluster), and age keys that must not live only on
//! the server (`backup.key_escrow`, `verify --age-identity OFFLINE_KEY`).

use crate::support;

use std::path::{Path, PathBuf};
use support::chroma::ChromaCluster;
use support::cli::Imlrecover;
use support::host::{copy_tree, manifest, write_manifest, Host};
use support::monitor::{audit, backup, finding, json, nagios, promtool_check, value};

/// Private temp dir for the drill's throwaway cluster (postgres must reach it).
fn drill_tmp(host: &Host) -> PathBuf {
    support::host::drill_tmp(host.tmp.path())
}

fn record(host: &Host) -> serde_json::Value {
    let text = std::fs::read_to_string(host.bundles.join("drill.json")).expect("drill.json");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_drill_is_recorded_and_audit_reads_it() {
    let host = Host::new();
    let source = ChromaCluster::start();
    let db_recipe = support::host::recipe();
    host.backup_with(&db_recipe, &source.vars());
    let bundle = host.latest();
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    let audit_drill = |extra: &[&str]| {
        let out = host
            .cmd("audit", &db_recipe)
            .args(["--format", "json", "--max-drill-age", "7days"])
            .args(source.vars())
            .args(extra)
            .run();
        assert!(out.code == 0 || out.code == 2, "{}", out.stderr);
        finding(&json(&out), "backup.drill")
    };

    let none = audit_drill(&[]);
    assert_eq!(none["status"], "fail");
    assert!(
        none["message"]
            .as_str()
            .unwrap()
            .contains("no successful restore drill is on record"),
        "{none}"
    );

    let tmp = drill_tmp(&host);
    let prom = host.tmp.path().join("drill.prom");
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&host.bundles)
        .arg("--metrics-file")
        .arg(&prom)
        .env("TMPDIR", &tmp)
        .run()
        .code(0)
        .stdout_has("Drill passed:")
        .stdout_has(&format!(
            "drill recorded in {}",
            host.bundles.join("drill.json").display()
        ));
    let r = record(&host);
    assert_eq!(r["last"]["success"], true);
    assert_eq!(r["last"]["bundle"], name.as_str());
    assert_eq!(r["last"]["rows"], 266);
    assert!(r["last"]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["last_success"], r["last"]);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(value(&text, "imlrecover_drill_rows"), 266.0);
    assert_eq!(value(&text, "imlrecover_drill_success"), 1.0);
    assert!(value(&text, "imlrecover_drill_restore_seconds") > 0.0);
    promtool_check(&prom);

    let passed = audit_drill(&[]);
    assert_eq!(passed["status"], "pass", "{passed}");
    assert!(
        passed["message"]
            .as_str()
            .unwrap()
            .contains(&format!("bundle {name} (made ")),
        "{passed}"
    );
    // Nagios shows how long ago the drill passed.
    let line = host
        .cmd("audit", &db_recipe)
        .args(["--format", "nagios", "--max-drill-age", "7days"])
        .args(source.vars())
        .run();
    assert!(line.stdout.contains(";604800\n"), "{}", line.stdout);
    assert!(line.stdout.contains(" drill_age="), "{}", line.stdout);

    // A newer bundle whose dump does not restore to its fingerprint: the
    // drill fails, says why in the record, and the last success stays.
    let newer = host.bundles.join("2099-01-01T00-00-00Z");
    copy_tree(&bundle, &newer);
    std::fs::set_permissions(&newer, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut m = manifest(&newer);
    let db = m.database.as_mut().unwrap();
    db.fingerprint
        .get_mut("chroma")
        .unwrap()
        .insert("public.chroma_core_command".into(), 9999);
    write_manifest(&newer, &m);
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&newer)
        .env("TMPDIR", &tmp)
        .run()
        .code(1);
    let r = record(&host);
    assert_eq!(r["last"]["success"], false);
    assert_eq!(r["last"]["bundle"], "2099-01-01T00-00-00Z");
    assert!(
        r["last"]["reason"].as_str().unwrap().contains("9999"),
        "{r}"
    );
    assert_eq!(r["last_success"]["bundle"], name.as_str());
    std::fs::remove_dir_all(&newer).unwrap();
    let failed = audit_drill(&[]);
    assert_eq!(failed["status"], "fail");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("the last drill ("),
        "{failed}"
    );

    // A success on record, but of a bundle made long ago: not recent.
    let mut r = record(&host);
    r["last"] = r["last_success"].clone();
    r["last_success"]["bundle_created"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(host.bundles.join("drill.json"), r.to_string()).unwrap();
    let old = audit_drill(&[]);
    assert_eq!(old["status"], "fail");
    assert!(
        old["message"]
            .as_str()
            .unwrap()
            .contains("made more than --max-drill-age 7days ago"),
        "{old}"
    );
}

struct Key {
    file: PathBuf,
    public: String,
}

fn key(path: &Path) -> Key {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!(
            "# public key: {public}\n{}\n",
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    Key {
        file: path.to_path_buf(),
        public,
    }
}

#[test]
fn keys_only_on_the_server_are_a_finding_and_an_offline_key_is_proven() {
    // Every recipient's identity on the host (found by looking, even though
    // the audit was given a copy kept elsewhere): a finding.
    let host = Host::new();
    let on_host = key(&host.file("/root/.config/imlrecover/age.key"));
    let copy = host.tmp.path().join("copy-of-host-key.txt");
    std::fs::copy(&on_host.file, &copy).unwrap();
    backup(&host, &["--recipient", &on_host.public]).code(0);
    let out = audit(
        &host,
        &["--format", "json", "--age-identity", copy.to_str().unwrap()],
    );
    out.code(2);
    let f = finding(&json(&out), "backup.key_escrow");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("only this server can decrypt"),
        "{f}"
    );
    assert!(
        f["details"][0]
            .as_str()
            .unwrap()
            .contains("/root/.config/imlrecover/age.key"),
        "{f}"
    );
    nagios(&host, &["--age-identity", copy.to_str().unwrap()])
        .code(1)
        .stdout_has("key_escrow");

    // A second recipient whose identity is kept off the host: no finding.
    let offline = key(&host.tmp.path().join("offline/age.key"));
    backup(
        &host,
        &[
            "--recipient",
            &on_host.public,
            "--recipient",
            &offline.public,
        ],
    )
    .code(0);
    let out = audit(
        &host,
        &[
            "--format",
            "json",
            "--age-identity",
            on_host.file.to_str().unwrap(),
        ],
    );
    out.code(0);
    let f = finding(&json(&out), "backup.key_escrow");
    assert_eq!(f["status"], "pass", "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("1 of 2 recipients have no identity on this host"),
        "{f}"
    );

    // The monthly check: the offline identity opens the newest bundle...
    Imlrecover::new()
        .args(["verify", "--age-identity"])
        .arg(&offline.file)
        .arg(&host.bundles)
        .run()
        .code(0)
        .stdout_has(&format!(
            "the age identity {} opens all ",
            offline.file.display()
        ));
    // ...and an identity that is not a recipient does not.
    let stranger = key(&host.tmp.path().join("stranger.key"));
    Imlrecover::new()
        .args(["verify", "--age-identity"])
        .arg(&stranger.file)
        .arg(&host.bundles)
        .run()
        .code(1);
    // An unencrypted bundle has no escrow check at all.
    let plain = Host::new();
    backup(&plain, &[]).code(0);
    let v = json(&audit(&plain, &["--format", "json"]));
    assert!(!v.to_string().contains("key_escrow"));
}
