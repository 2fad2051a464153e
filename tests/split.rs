//! `backup --split-size`: the dump (and any larger file) stored as numbered
//! parts. The runbook's own `cat parts | zcat | psql` restores them; so do
//! `verify --drill` and `apply`, streaming the parts without a joined copy;
//! a missing or reordered part is named.

use crate::support;

use imlrecover::host::postgres::{self as pg, TempCluster};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::cli::Imlrecover;
use support::host::{copy_tree, drill_tmp, manifest};
use support::manager::Manager;

const SPLIT: u64 = 1024;

/// `backup --split-size 1K`; the bundle `latest` points at.
fn split_backup(m: &Manager) -> PathBuf {
    m.backup_with(&["--split-size", "1K"]);
    std::fs::canonicalize(&m.bundle).unwrap()
}

fn dump_parts(bundle: &Path) -> Vec<PathBuf> {
    let m = manifest(bundle);
    let db = m.database.unwrap();
    m.stored[&db.file]
        .parts
        .iter()
        .map(|p| bundle.join(&p.file))
        .collect()
}

#[test]
fn a_split_dump_restores_with_the_runbooks_pipeline_the_drill_and_apply() {
    let mut g = Manager::new();
    let golden_rows = g.sb.rows().unwrap();
    let bundle = split_backup(&g);
    let m = manifest(&bundle);
    assert_eq!(m.format_version, 2);
    let db = m.database.as_ref().unwrap();
    let stored = &m.stored[&db.file];
    assert!(!stored.encrypted);
    assert!(stored.parts.len() >= 3, "{} parts", stored.parts.len());
    assert!(!bundle.join(&db.file).exists(), "no joined copy");
    for (i, p) in stored.parts.iter().enumerate() {
        assert_eq!(p.file, format!("{}.{i:03}", db.file));
        let len = std::fs::metadata(bundle.join(&p.file)).unwrap().len();
        assert!(len <= SPLIT && len == p.size, "{}: {len}", p.file);
        assert_eq!(
            p.blake3,
            support::host::blake3_of(&bundle.join(&p.file)),
            "{}",
            p.file
        );
    }
    // Files larger than the split size are split too; smaller ones are not.
    let big: Vec<&String> = m
        .stored
        .keys()
        .filter(|k| k.starts_with("files/"))
        .collect();
    assert!(!big.is_empty(), "no file over {SPLIT} bytes was split");
    assert!(bundle.join("files/etc/hosts").is_file());

    // The runbook: cat pgbackup-*.sql.gz.* | zcat | psql postgres
    let fresh = TempCluster::start().expect("throwaway cluster");
    let t = fresh.target();
    let mut glob = db.file.clone();
    glob.push_str(".*");
    let script = format!(
        "cd '{}' && cat {} | zcat | runuser -u postgres -- psql -X -q -h '{}' -p {} -U postgres -d postgres",
        bundle.display(),
        glob,
        t.host.clone().unwrap(),
        t.port.unwrap()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg::fingerprint(&t)
            .unwrap()
            .databases
            .remove("chroma")
            .unwrap(),
        golden_rows
    );
    drop(fresh);

    // verify, the drill: the parts are streamed back together.
    Imlrecover::new()
        .arg("verify")
        .arg(&bundle)
        .run()
        .code(0)
        .stdout_has("Bundle intact:");
    let dtmp = drill_tmp(g.tmp.path());
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&bundle)
        .env("TMPDIR", &dtmp)
        .run()
        .code(0)
        .stdout_has("Drill passed:");

    // apply on a destroyed manager.
    let kept: Vec<(String, Vec<u8>)> = big
        .iter()
        .map(|k| {
            let p = k.trim_start_matches("files/").to_string();
            let bytes = std::fs::read(g.sb.root.join(&p)).unwrap();
            (p, bytes)
        })
        .collect();
    g.sb.disaster().unwrap();
    g.apply_from(Imlrecover::new(), &bundle)
        .run()
        .code(0)
        .stdout_has("Apply complete!");
    assert_eq!(g.sb.rows().unwrap(), golden_rows);
    for (p, bytes) in &kept {
        assert_eq!(&std::fs::read(g.sb.root.join(p)).unwrap(), bytes, "{p}");
    }
}

#[test]
fn a_missing_or_reordered_part_is_named() {
    let m = Manager::new();
    let tmp = &m.tmp;
    let bundle = split_backup(&m);
    let copy = |name: &str| {
        let c = tmp.path().join(name);
        copy_tree(&bundle, &c);
        std::fs::set_permissions(&c, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        c
    };

    let missing = copy("missing");
    let parts = dump_parts(&missing);
    std::fs::remove_file(&parts[1]).unwrap();
    let name1 = parts[1].file_name().unwrap().to_string_lossy().into_owned();
    let out = Imlrecover::new().arg("verify").arg(&missing).run();
    out.code(1).stdout_has(&name1).stdout_has("missing");
    // apply refuses before it stops anything.
    m.apply_from(Imlrecover::new(), &missing)
        .args(["--replace", "database.chroma"])
        .run()
        .code(1)
        .stderr_has("missing");

    let swapped = copy("swapped");
    let parts = dump_parts(&swapped);
    let tmpname = swapped.join("swap.tmp");
    std::fs::rename(&parts[0], &tmpname).unwrap();
    std::fs::rename(&parts[2], &parts[0]).unwrap();
    std::fs::rename(&tmpname, &parts[2]).unwrap();
    let name0 = parts[0].file_name().unwrap().to_string_lossy().into_owned();
    Imlrecover::new()
        .arg("verify")
        .arg(&swapped)
        .run()
        .code(1)
        .stdout_has(&name0)
        .stdout_has("modified");
    let dtmp = drill_tmp(tmp.path());
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&swapped)
        .env("TMPDIR", &dtmp)
        .run()
        .code(1)
        .stdout_has("parts swapped");
}

#[test]
fn split_and_encrypted_parts_travel_through_push_and_pull() {
    let m = Manager::new();
    let tmp = &m.tmp;
    let id = age::x25519::Identity::generate();
    let key = tmp.path().join("key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&key, format!("{}\n", id.to_string().expose_secret())).unwrap();
    }
    let server = support::sftp::SftpServer::start();
    let remote = tmp.path().join("remote");
    let mut args: Vec<String> = ["--split-size", "1K", "--encrypt-all", "--recipient"]
        .map(String::from)
        .to_vec();
    args.extend([
        id.to_public().to_string(),
        "--push".into(),
        server.url(&remote),
    ]);
    args.extend(server.ssh_args());
    m.backup_with(&args).stdout_has("Push complete:");
    let dir = tmp.path().join("pulled");
    server.pull(&remote, &dir, &[]).code(0);
    let pulled = std::fs::canonicalize(dir.join("latest")).unwrap();
    let parts = dump_parts(&pulled);
    assert!(parts.len() >= 3);
    assert!(parts[0].to_string_lossy().ends_with(".sql.gz.age.000"));
    let dtmp = drill_tmp(tmp.path());
    Imlrecover::new()
        .args(["verify", "--drill", "--age-identity"])
        .arg(&key)
        .arg(&pulled)
        .env("TMPDIR", &dtmp)
        .run()
        .code(0)
        .stdout_has("Drill passed:");
}
