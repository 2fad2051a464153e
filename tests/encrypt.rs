//! Encryption at rest (age): a golden manager backed up with a recipient;
//! the secrets' plaintext appears nowhere in the bundle, verify/plan/apply
//! say exactly what they cannot read without the identity, and a restore
//! with the identity brings the files back byte for byte. The stored files
//! are standard age files: the `age` CLI decrypts them too.

use crate::support;

use age::secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::cli::{Imlrecover, Output};
use support::host::manifest;
use support::manager::{Manager, PLAN};

/// Sensitive files of plans/iml-manager.hcl that must not appear in clear.
const SECRETS: &[&str] = &[
    "etc/shadow",
    "var/lib/chroma/authority.pem",
    "var/lib/chroma/manager.pem",
];

struct Key {
    file: PathBuf,
    public: String,
}

fn key(dir: &Path, name: &str) -> Key {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!(
            "# public key: {public}\n{}\n",
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    Key { file, public }
}

struct Setup {
    m: Manager,
    key: Key,
    /// The bundle `latest` points at.
    bundle: PathBuf,
    golden: Vec<(String, Vec<u8>)>,
}

fn setup(extra: &[&str]) -> Setup {
    let m = Manager::new();
    let key = key(m.tmp.path(), "key.txt");
    m.backup_with(&[&["--recipient", &key.public], extra].concat());
    let bundle = std::fs::canonicalize(&m.bundle).unwrap();
    let golden = SECRETS
        .iter()
        .chain(["etc/ntp.conf", "etc/hosts"].iter())
        .map(|p| (p.to_string(), std::fs::read(m.sb.root.join(p)).unwrap()))
        .collect();
    Setup {
        m,
        key,
        bundle,
        golden,
    }
}

/// Every byte of every file below `dir`.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A line of `text` long enough to be distinctive.
fn distinctive_lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|b| *b == b'\n')
        .filter(|l| l.len() >= 16)
        .map(<[u8]>::to_vec)
        .collect()
}

fn assert_absent(bundle: &Path, plain: &[u8], what: &str) {
    let lines = distinctive_lines(plain);
    assert!(!lines.is_empty(), "{what} has no distinctive line");
    for (path, bytes) in all_bytes(bundle) {
        assert!(
            !contains(&bytes, plain),
            "{what} appears in clear in {}",
            path.display()
        );
        for l in &lines {
            assert!(
                !contains(&bytes, l),
                "a line of {what} appears in clear in {}: {}",
                path.display(),
                String::from_utf8_lossy(l)
            );
        }
    }
}

fn with_identity(cmd: Imlrecover, key: &Key) -> Imlrecover {
    cmd.env("IMLRECOVER_AGE_IDENTITY", &key.file)
}

fn plan(s: &Setup) -> Imlrecover {
    s.m.cmd_on(Imlrecover::new(), "plan", &s.bundle)
}

fn apply(s: &Setup) -> Output {
    s.m.cmd_on(Imlrecover::new(), "apply", &s.bundle)
        .arg("--auto-approve")
        .arg("--age-identity")
        .arg(&s.key.file)
        .run()
}

#[test]
fn secrets_are_encrypted_and_restore_byte_identical_with_the_identity() {
    let mut s = setup(&[]);
    let m = manifest(&s.bundle);
    assert_eq!(m.format_version, 2);
    assert_eq!(m.recipients, vec![s.key.public.clone()]);
    for secret in SECRETS {
        let rel = format!("files/{secret}");
        let stored = m
            .stored
            .get(&rel)
            .unwrap_or_else(|| panic!("{rel} not stored"));
        assert!(stored.encrypted);
        assert_eq!(stored.parts[0].file, format!("{rel}.age"));
        assert!(!s.bundle.join(&rel).exists(), "no plaintext copy of {rel}");
        // Hashes of both the plaintext (entry) and the ciphertext (stored).
        let e = m
            .entries
            .iter()
            .find(|e| e.file.as_deref() == Some(&rel))
            .unwrap();
        let plain = std::fs::read(s.m.sb.root.join(secret)).unwrap();
        assert_eq!(
            e.blake3.as_deref(),
            Some(blake3::hash(&plain).to_hex().as_str())
        );
        let cipher = std::fs::read(s.bundle.join(&stored.parts[0].file)).unwrap();
        assert_eq!(stored.blake3, blake3::hash(&cipher).to_hex().to_string());
        assert_absent(&s.bundle, &plain, secret);
    }
    // Non-sensitive files stay readable as themselves.
    assert!(s.bundle.join("files/etc/ntp.conf").is_file());

    // verify: integrity without the key, everything with it.
    Imlrecover::new()
        .arg("verify")
        .arg(&s.bundle)
        .run()
        .code(0)
        .stdout_has("checked as ciphertext only")
        .stdout_has("files/etc/shadow");
    let out = with_identity(Imlrecover::new().arg("verify").arg(&s.bundle), &s.key).run();
    out.code(0).stdout_has("Bundle intact:");
    assert!(!out.stdout.contains("ciphertext only"), "{}", out.stdout);

    // plan without the identity names exactly what it cannot read.
    let out = plan(&s).run();
    out.code(1)
        .stderr_has("no age identity was given")
        .stderr_has("files/etc/shadow.age (/etc/shadow)")
        .stderr_has("files/var/lib/chroma/authority.pem.age (/var/lib/chroma/authority.pem)")
        .stderr_has("IMLRECOVER_AGE_IDENTITY")
        .stderr_has(&s.key.public);
    assert!(!out.stderr.contains("ntp.conf"), "{}", out.stderr);
    // ...and with a key that is not a recipient.
    let wrong = key(s.m.tmp.path(), "wrong.txt");
    with_identity(plan(&s), &wrong)
        .run()
        .code(1)
        .stderr_has("does not decrypt")
        .stderr_has("files/etc/shadow.age");
    // A file that is not an identity file.
    with_identity(
        plan(&s),
        &Key {
            file: s.m.sb.root.join("etc/hosts"),
            public: String::new(),
        },
    )
    .run()
    .code(1)
    .stderr_has("cannot use the age identity file");

    s.m.sb.disaster().unwrap();
    apply(&s).code(0).stdout_has("Apply complete!");
    for (p, bytes) in &s.golden {
        assert_eq!(&std::fs::read(s.m.sb.root.join(p)).unwrap(), bytes, "{p}");
    }
}

#[test]
fn encrypt_all_covers_every_file_and_the_dump() {
    let s = setup(&["--encrypt-all"]);
    let m = manifest(&s.bundle);
    let db = m.database.as_ref().unwrap();
    let stored = m
        .stored
        .get(&db.file)
        .expect("the dump is stored encrypted");
    assert!(stored.encrypted);
    assert!(!s.bundle.join(&db.file).exists());
    for (p, bytes) in &s.golden {
        assert_absent(&s.bundle, bytes, p);
    }
    // Everything but the manifest is an age file.
    for (path, bytes) in all_bytes(&s.bundle) {
        if path.ends_with("manifest.json") {
            continue;
        }
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{} is not an age file",
            path.display()
        );
    }
    let tmp = support::host::drill_tmp(s.m.tmp.path());
    // The drill without the key says why it cannot restore.
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&s.bundle)
        .env("TMPDIR", &tmp)
        .run()
        .code(1)
        .stdout_has("is encrypted with age and no identity was given");
    with_identity(
        Imlrecover::new()
            .args(["verify", "--drill"])
            .arg(&s.bundle)
            .env("TMPDIR", &tmp),
        &s.key,
    )
    .run()
    .code(0)
    .stdout_has("Drill passed:");

    // The stored files are plain age files: the age CLI opens them.
    if ensure_age_cli() {
        let out = Command::new("age")
            .args(["-d", "-i"])
            .arg(&s.key.file)
            .arg(s.bundle.join("files/etc/shadow.age"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout,
            std::fs::read(s.m.sb.root.join("etc/shadow")).unwrap()
        );
    }
}

#[test]
fn a_recipient_that_is_not_one_is_refused_before_anything_is_written() {
    let m = Manager::without_database();
    let (tmp, sb) = (&m.tmp, &m.sb);
    let recipe = tmp.path().join("r.hcl");
    std::fs::write(
        &recipe,
        "imlrecover {\n  recipients = [\"age1notakey\"]\n}\nfile \"hosts\" {\n  path = \"/etc/hosts\"\n}\n",
    )
    .unwrap();
    Imlrecover::new()
        .args(["backup", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&sb.root)
        .arg("--bundle-dir")
        .arg(tmp.path().join("b"))
        .run()
        .code(1)
        .stderr_has("`age1notakey` is not an age recipient");
    assert!(!tmp.path().join("b").exists());
    Imlrecover::new()
        .args(["backup", "-r", PLAN, "--root"])
        .arg(&sb.root)
        .arg("--bundle-dir")
        .arg(tmp.path().join("b"))
        .arg("--encrypt-all")
        .run()
        .code(1)
        .stderr_has("--encrypt-all needs at least one recipient");
    assert!(!tmp.path().join("b").exists());
}

/// Installs Debian's `age` when missing; false if it cannot be had.
fn ensure_age_cli() -> bool {
    let have = || Command::new("age").arg("--version").output().is_ok();
    if have() {
        return true;
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "age"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    if !have() {
        let _ = Command::new("apt-get").arg("update").status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "age"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    have()
}
