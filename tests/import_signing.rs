//! `imlrecover import --sign-key` (or the recipe's `sign_key`), #22: an
//! imported bundle is signed like one from `backup`, so `--trust` accepts it;
//! an unsigned import is refused under `--trust`. A runbook directory made by
//! the runbook's own file commands, a real pg_dumpall dump, real ssh-keygen keys.

use crate::import::{localize, run_sh, runbook_backup_commands, PLAN};
use crate::support;

use imlrecover::host::postgres as pg;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::cli::{fixtures, Imlrecover};

/// `$HOME/backup` as the runbook's commands make it, with one dump of a
/// seeded cluster taken an hour ago (`pg_dumpall --clean | gzip`).
fn runbook_dir(tmp: &Path) -> PathBuf {
    let root = tmp.join("host");
    support::host::copy_tree(&fixtures().join("host-el6"), &root);
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let none = pg::PgTarget::new("postgres");
    for c in runbook_backup_commands() {
        if !c.contains("pg_dumpall") {
            run_sh(&localize(&c, &home, &root, Path::new("-")), &none);
        }
    }
    let cluster = support::pg::seeded(support::pg::SEED_A);
    let mut gz = Vec::new();
    pg::dump_all(&cluster.target(), &mut gz, |_| {}).expect("pg_dumpall");
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let t = humantime::format_rfc3339_seconds(t).to_string();
    let name = format!(
        "pgbackup-{}.sql.gz",
        t.trim_end_matches('Z').replacen('T', "-", 1)
    );
    std::fs::write(home.join("backup").join(name), gz).unwrap();
    home.join("backup")
}

/// `ssh-keygen -t ed25519 -N ''` in `dir`: (private, public).
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "import@manager",
            "-f",
        ])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(st.success());
    (key.clone(), dir.join(format!("{name}.pub")))
}

fn import(dir: &Path, recipe: &Path, out: &Path, extra: &[&str]) -> support::cli::Output {
    Imlrecover::new()
        .arg("import")
        .arg(dir)
        .arg("-r")
        .arg(recipe)
        .arg("--bundle-dir")
        .arg(out)
        .args(extra)
        .env("TZ", "UTC")
        .run()
}

/// The one bundle written into `out` (a directory holding manifest.json).
fn bundle_in(out: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.is_symlink() && p.join("manifest.json").is_file())
        .collect();
    assert_eq!(found.len(), 1, "one bundle in {}: {found:?}", out.display());
    found[0].clone()
}

fn verify_trusting(bundle: &Path, public: &Path) -> support::cli::Output {
    Imlrecover::new()
        .arg("verify")
        .arg(bundle)
        .arg("--trust")
        .arg(public)
        .run()
}

#[test]
fn an_import_signed_with_sign_key_passes_trust_and_an_unsigned_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let (key, public) = ssh_key(&tmp.path().join("keys"), "sign.key");
    let recipe = Path::new(PLAN);

    // A key others can read is refused before anything is written.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = tmp.path().join("loose");
    import(&dir, recipe, &loose, &["--sign-key", key.to_str().unwrap()])
        .code(1)
        .stderr_has("is readable by others (mode 0644)");
    assert!(!loose.exists(), "nothing written with a refused key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let signed_out = tmp.path().join("signed");
    let run = import(
        &dir,
        recipe,
        &signed_out,
        &["--sign-key", key.to_str().unwrap()],
    );
    run.code(0)
        .stdout_has("Imported:")
        .stdout_has("signed: manifest.sig (ed25519 SHA256:");
    let signed = bundle_in(&signed_out);
    let sig = std::fs::read_to_string(signed.join("manifest.sig")).unwrap();
    assert!(
        sig.starts_with("-----BEGIN SSH SIGNATURE-----"),
        "an SSHSIG: {sig}"
    );
    verify_trusting(&signed, &public)
        .code(0)
        .stdout_has("manifest signed by the trusted key SHA256:");

    // ssh-keygen checks the signature independently of imlrecover.
    let allowed = tmp.path().join("allowed_signers");
    let pubtext = std::fs::read_to_string(&public).unwrap();
    std::fs::write(&allowed, format!("import@manager {}", pubtext.trim())).unwrap();
    let ok = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed)
        .args(["-I", "import@manager", "-n", "imlrecover-bundle", "-s"])
        .arg(signed.join("manifest.sig"))
        .stdin(std::fs::File::open(signed.join("manifest.json")).unwrap())
        .output()
        .expect("run ssh-keygen -Y verify");
    assert!(
        ok.status.success(),
        "ssh-keygen -Y verify: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The same directory imported without a key: refused under --trust.
    let plain_out = tmp.path().join("plain");
    let run = import(&dir, recipe, &plain_out, &[]);
    run.code(0);
    assert!(!run.stdout.contains("signed:"), "{}", run.stdout);
    let plain = bundle_in(&plain_out);
    assert!(!plain.join("manifest.sig").exists());
    verify_trusting(&plain, &public)
        .code(1)
        .stdout_has("the bundle is not signed");
    Imlrecover::new().arg("verify").arg(&plain).run().code(0);

    // Signed by another key: refused too.
    let (_, other) = ssh_key(&tmp.path().join("keys"), "other.key");
    verify_trusting(&signed, &other)
        .code(1)
        .stdout_has("which is not trusted");
}

#[test]
fn the_recipes_sign_key_signs_an_import_and_a_key_in_the_bundle_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let (key, public) = ssh_key(&tmp.path().join("keys"), "sign.key");
    let text = std::fs::read_to_string(PLAN).unwrap();
    let setting = format!("services = \"sysv\"\n  sign_key = \"{}\"", key.display());
    assert!(text.contains("services = \"sysv\""));
    let recipe = tmp.path().join("signed.hcl");
    std::fs::write(&recipe, text.replacen("services = \"sysv\"", &setting, 1)).unwrap();

    let out = tmp.path().join("bundles");
    import(&dir, &recipe, &out, &[])
        .code(0)
        .stdout_has("signed: manifest.sig (ed25519 SHA256:");
    verify_trusting(&bundle_in(&out), &public)
        .code(0)
        .stdout_has("manifest signed by the trusted key SHA256:");

    // A key kept on the backup store would let its writers sign.
    let store = tmp.path().join("store");
    let (on_store, _) = ssh_key(&store, "sign.key");
    import(
        &dir,
        Path::new(PLAN),
        &store,
        &["--sign-key", on_store.to_str().unwrap()],
    )
    .code(1)
    .stderr_has("is inside the bundle directory");
    let entries: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert_eq!(entries.len(), 2, "only the key pair in {}", store.display());
}
