//! Signed bundles (#22): `backup --sign-key` signs the manifest; with
//! `--trust` (or the recipe's `trust`) every command that reads a bundle
//! refuses one that is unsigned, signed by another key, or whose manifest
//! changed after signing, before it changes anything. Real keys (ssh-keygen,
//! openssl), a real PostgreSQL cluster, a real SFTP server.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::chroma::ChromaCluster;
use support::cli::{Imlrecover, Output};
use support::host::{copy_tree, Host};
use support::sftp::SftpServer;

/// `ssh-keygen -t ed25519 -N ''`: (private, public) in `dir`.
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "backup@manager",
            "-f",
        ])
        .arg(&key)
        .status()
        .expect("run ssh-keygen");
    assert!(st.success());
    let public = dir.join(format!("{name}.pub"));
    (key, public)
}

/// `openssl genpkey -algorithm ed25519` and its `pkey -pubout`, chmod 600.
fn openssl_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let st = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .expect("run openssl");
    assert!(st.success());
    let st = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("run openssl");
    assert!(st.success());
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (key, public)
}

/// The el6 fixture's variables, /etc/hosts and the database.
fn recipe(host: &Host, settings: &str) -> PathBuf {
    let text = std::fs::read_to_string(support::host::recipe()).unwrap();
    let vars_end = text.find("\nfile ").unwrap();
    let db = text.find("database \"chroma\"").unwrap();
    let path = host.tmp.path().join("signed.hcl");
    std::fs::write(
        &path,
        format!(
            "{settings}\n{}\nfile \"hosts\" {{\n  path = \"/etc/hosts\"\n}}\n\n{}",
            &text[..vars_end],
            &text[db..]
        ),
    )
    .unwrap();
    path
}

fn backup(host: &Host, recipe: &Path, pg: &ChromaCluster, extra: &[&str]) -> PathBuf {
    let mut args: Vec<String> = pg.vars();
    args.extend(extra.iter().map(|s| s.to_string()));
    host.backup_with(recipe, &args);
    host.latest()
}

fn with_bundle(cmd: &str, recipe: &Path, host: &Host, pg: &ChromaCluster, b: &Path) -> Imlrecover {
    Imlrecover::new()
        .args([cmd, "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(b)
        .args(pg.vars())
}

fn apply(recipe: &Path, host: &Host, pg: &ChromaCluster, b: &Path, trust: &[&Path]) -> Output {
    let mut cmd = with_bundle("apply", recipe, host, pg, b).args([
        "--replace",
        "database.chroma",
        "--auto-approve",
    ]);
    for t in trust {
        cmd = cmd.arg("--trust").arg(t);
    }
    cmd.run()
}

/// A copy of bundle `b` under a new name in the same bundle directory.
fn copy_bundle(b: &Path, name: &str) -> PathBuf {
    let to = b.parent().unwrap().join(name);
    copy_tree(b, &to);
    std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    to
}

/// The host drifted since the backup: /etc/hosts rewritten, rows deleted.
/// What a refused apply must leave exactly so.
struct Drift {
    hosts: String,
    rows: std::collections::BTreeMap<String, u64>,
}

fn drift(host: &Host, pg: &ChromaCluster) -> Drift {
    std::fs::write(host.file("/etc/hosts"), "10.0.0.66 drifted\n").unwrap();
    imlrecover::host::postgres::execute(
        &pg.target(),
        "chroma",
        "DELETE FROM chroma_core_command WHERE id > 200",
    )
    .unwrap();
    Drift {
        hosts: std::fs::read_to_string(host.file("/etc/hosts")).unwrap(),
        rows: ChromaCluster::rows(&pg.target()),
    }
}

fn unchanged(host: &Host, pg: &ChromaCluster, d: &Drift, what: &str) {
    assert_eq!(
        std::fs::read_to_string(host.file("/etc/hosts")).unwrap(),
        d.hosts,
        "{what}: /etc/hosts was changed"
    );
    assert_eq!(
        ChromaCluster::rows(&pg.target()),
        d.rows,
        "{what}: rows changed"
    );
}

#[test]
fn only_a_bundle_signed_by_a_trusted_key_is_restored() {
    let host = Host::new();
    let pg = ChromaCluster::start();
    let keys = host.tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (key, public) = ssh_key(&keys, "sign.key");
    let (other, _) = openssl_key(&keys, "other");
    let r = recipe(&host, "");
    let rows = ChromaCluster::rows(&pg.target());
    let hosts = std::fs::read_to_string(host.file("/etc/hosts")).unwrap();

    let unsigned = backup(&host, &r, &pg, &[]);
    let unsigned = copy_bundle(&unsigned, "unsigned");
    let wrong = backup(&host, &r, &pg, &["--sign-key", other.to_str().unwrap()]);
    let wrong = copy_bundle(&wrong, "wrong-key");
    let good = backup(&host, &r, &pg, &["--sign-key", key.to_str().unwrap()]);
    assert!(good.join("manifest.sig").is_file());
    // One byte of the signed manifest changed: a file's mode 0644 -> 0645.
    let altered = copy_bundle(&good, "altered");
    let text = std::fs::read_to_string(altered.join("manifest.json")).unwrap();
    let at = text
        .find("\"mode\": \"0644\"")
        .expect("a mode in the manifest");
    let mut bytes = text.into_bytes();
    bytes[at + 12] = b'5';
    std::fs::write(altered.join("manifest.json"), bytes).unwrap();

    // Without trust, behaviour is as before: every bundle verifies.
    for b in [&unsigned, &wrong, &good, &altered] {
        if b != &altered {
            Imlrecover::new().arg("verify").arg(b).run().code(0);
        }
    }

    let d = drift(&host, &pg);
    let cases: [(&str, &Path, &str); 3] = [
        ("unsigned", &unsigned, "the bundle is not signed"),
        ("wrong key", &wrong, "which is not trusted"),
        (
            "altered",
            &altered,
            "manifest.json changed after it was signed",
        ),
    ];
    for (what, b, reason) in cases {
        Imlrecover::new()
            .arg("verify")
            .arg(b)
            .arg("--trust")
            .arg(&public)
            .run()
            .code(1)
            .stdout_has(reason);
        with_bundle("plan", &r, &host, &pg, b)
            .arg("--trust")
            .arg(&public)
            .run()
            .code(1)
            .stderr_has(reason)
            .stderr_has("only bundles signed by a trusted key");
        apply(&r, &host, &pg, b, &[&public])
            .code(1)
            .stderr_has(reason);
        unchanged(&host, &pg, &d, what);
        // audit reports it as a finding (exit 2), not as an error.
        let out = with_bundle("audit", &r, &host, &pg, b)
            .args(["--trust", public.to_str().unwrap()])
            .run();
        out.code(2).stdout_has(reason);
    }
    // The recipe's `trust` alone refuses the same way.
    let pubtext = std::fs::read_to_string(&public).unwrap();
    let trusting = recipe(
        &host,
        &format!("imlrecover {{\n  trust = [\"{}\"]\n}}\n", pubtext.trim()),
    );
    apply(&trusting, &host, &pg, &unsigned, &[])
        .code(1)
        .stderr_has("the bundle is not signed");
    unchanged(&host, &pg, &d, "recipe trust");

    // The good one verifies and restores.
    Imlrecover::new()
        .arg("verify")
        .arg(&good)
        .arg("--trust")
        .arg(&public)
        .run()
        .code(0)
        .stdout_has("manifest signed by the trusted key SHA256:");
    apply(&trusting, &host, &pg, &good, &[]).code(0);
    assert_eq!(
        std::fs::read_to_string(host.file("/etc/hosts")).unwrap(),
        hosts
    );
    assert_eq!(ChromaCluster::rows(&pg.target()), rows);
}

#[test]
fn the_signature_is_an_sshsig_that_ssh_keygen_verifies() {
    let host = Host::new();
    let recipe = host.files_recipe();
    let keys = host.tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for (key, public) in [ssh_key(&keys, "ssh"), openssl_key(&keys, "pem")] {
        host.backup_with(&recipe, &["--sign-key", key.to_str().unwrap()]);
        let b = host.latest();
        Imlrecover::new()
            .arg("verify")
            .arg(&b)
            .arg("--trust")
            .arg(&public)
            .run()
            .code(0);
        // OpenSSH's own check, with the key in allowed_signers form.
        // ssh-keygen cannot convert an ed25519 PEM key: re-encode it.
        let line = if public.extension().is_some_and(|e| e == "pem") {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            let pem = std::fs::read_to_string(&public).unwrap();
            let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).unwrap();
            ssh_key::PublicKey::from(ssh_key::public::Ed25519PublicKey::from(vk))
                .to_openssh()
                .unwrap()
        } else {
            std::fs::read_to_string(&public).unwrap()
        };
        let allowed = keys.join("allowed_signers");
        std::fs::write(&allowed, format!("backup {}", line.trim())).unwrap();
        let st = Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-n",
                "imlrecover-bundle",
                "-I",
                "backup",
                "-f",
            ])
            .arg(&allowed)
            .arg("-s")
            .arg(b.join("manifest.sig"))
            .stdin(std::fs::File::open(b.join("manifest.json")).unwrap())
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "ssh-keygen -Y verify: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}

#[test]
fn the_signing_key_stays_off_the_backup_store() {
    let host = Host::new();
    let recipe = host.files_recipe();
    let keys = host.tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let backup = |key: &Path| {
        Imlrecover::new()
            .args(["backup", "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle-dir")
            .arg(&host.bundles)
            .arg("--sign-key")
            .arg(key)
            .run()
    };
    let (key, _) = openssl_key(&keys, "loose");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    backup(&key).code(1).stderr_has("chmod 600");
    std::fs::create_dir_all(&host.bundles).unwrap();
    let (on_store, _) = ssh_key(&host.bundles, "sign.key");
    backup(&on_store)
        .code(1)
        .stderr_has("inside the bundle directory");
    // A key the recipe's files would capture (ssh_host_*key*).
    let (captured, _) = ssh_key(&host.file("/etc/ssh"), "ssh_host_sign_key");
    backup(&captured)
        .code(1)
        .stderr_has("the recipe captures the signing key /etc/ssh/ssh_host_sign_key");
    assert!(host.bundle_names().is_empty(), "no bundle was written");
}

#[test]
fn a_pushed_then_pulled_signed_bundle_still_verifies() {
    let server = SftpServer::start();
    let host = Host::new();
    let pg = ChromaCluster::start();
    let keys = host.tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (key, public) = ssh_key(&keys, "sign.key");
    let r = recipe(&host, "");
    let store = host.tmp.path().join("store");
    let mut push = vec!["--sign-key".to_string(), key.display().to_string()];
    push.push("--push".into());
    push.push(server.url(&store));
    push.extend(server.ssh_args());
    let push: Vec<&str> = push.iter().map(String::as_str).collect();
    let b = backup(&host, &r, &pg, &push);
    assert!(store
        .join(b.file_name().unwrap())
        .join("manifest.sig")
        .is_file());

    let pulled = host.tmp.path().join("pulled");
    Imlrecover::new()
        .arg("pull")
        .arg(server.url(&store))
        .arg(&pulled)
        .args(server.ssh_args())
        .args(["--trust", public.to_str().unwrap()])
        .run()
        .code(0);
    Imlrecover::new()
        .arg("verify")
        .arg(&pulled)
        .args(["--trust", public.to_str().unwrap()])
        .run()
        .code(0)
        .stdout_has("manifest signed by the trusted key");

    // A bundle put on the store unsigned is not kept by pull --trust.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut push: Vec<String> = vec!["--push".into(), server.url(&store)];
    push.extend(server.ssh_args());
    let push: Vec<&str> = push.iter().map(String::as_str).collect();
    let unsigned = backup(&host, &r, &pg, &push);
    let again = host.tmp.path().join("again");
    Imlrecover::new()
        .arg("pull")
        .arg(server.url(&store))
        .arg(&again)
        .args(server.ssh_args())
        .args(["--trust", public.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_has("the bundle is not signed");
    assert!(
        !again.join(unsigned.file_name().unwrap()).exists() && !again.join("latest").exists(),
        "the unsigned bundle was kept"
    );
}
