//! `imlrecover verify`: a bundle from a real backup of the fixture host,
//! then tampered with in every way a disk, a person or an attacker might.

use crate::support;

use imlrecover::bundle::EntryKind;
use std::path::{Path, PathBuf};
use support::cli::{Imlrecover, Output};
use support::host::{blake3_of, manifest, write_manifest, Host};

fn fresh_bundle() -> (Host, PathBuf) {
    let host = Host::new();
    host.backup(&host.files_recipe());
    let bundle = host.latest();
    (host, bundle)
}

fn verify(path: &Path) -> Output {
    Imlrecover::new().arg("verify").arg(path).run()
}

/// Rewrites the manifest's size and hash of `rel` to match the file, so
/// only the check under test can notice the change.
fn rehash(bundle: &Path, rel: &str) {
    let mut m = manifest(bundle);
    let path = bundle.join(rel);
    for e in m
        .entries
        .iter_mut()
        .filter(|e| e.file.as_deref() == Some(rel))
    {
        e.size = Some(std::fs::metadata(&path).unwrap().len());
        e.blake3 = Some(blake3_of(&path));
    }
    write_manifest(bundle, &m);
}

#[test]
fn a_fresh_bundle_verifies_by_path_latest_and_bundle_dir() {
    let (host, bundle) = fresh_bundle();
    verify(&bundle)
        .code(0)
        .stdout_has("Bundle intact:")
        .stdout_has("23 files")
        .stdout_has("cert.authority: the key matches the certificate")
        .stdout_has("cert.manager: the certificate verifies against cert.authority's");
    verify(&host.bundles.join("latest")).code(0);
    verify(&host.bundles)
        .code(0)
        .stdout_has(&bundle.display().to_string());
}

#[test]
fn every_kind_of_damage_is_named_with_its_path() {
    let (_host, b) = fresh_bundle();
    // modified, same size
    std::fs::write(b.join("files/etc/hosts"), {
        let mut h = std::fs::read(b.join("files/etc/hosts")).unwrap();
        h[0] ^= 1;
        h
    })
    .unwrap();
    // truncated
    let ntp = std::fs::read(b.join("files/etc/ntp.conf")).unwrap();
    std::fs::write(b.join("files/etc/ntp.conf"), &ntp[..ntp.len() / 2]).unwrap();
    // grown
    let mut yum = std::fs::read(b.join("files/etc/yum.conf")).unwrap();
    yum.extend_from_slice(b"exclude=kernel*\n");
    std::fs::write(b.join("files/etc/yum.conf"), yum).unwrap();
    // missing
    std::fs::remove_file(b.join("files/etc/resolv.conf")).unwrap();
    // extra
    std::fs::write(b.join("files/etc/motd"), "hello\n").unwrap();
    // a symlink planted in the bundle
    std::os::unix::fs::symlink("/etc/passwd", b.join("files/etc/planted")).unwrap();
    // sensitive file opened up
    std::fs::set_permissions(
        b.join("files/etc/shadow"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    let out = verify(&b);
    out.code(1)
        .stdout_has("files/etc/hosts (file.hosts): modified: content differs")
        .stdout_has("files/etc/ntp.conf (file.ntp_conf): truncated:")
        .stdout_has("files/etc/yum.conf (file.yum_conf): modified:")
        .stdout_has("files/etc/resolv.conf (file.resolv_conf): missing:")
        .stdout_has("files/etc/motd: extra file:")
        .stdout_has("files/etc/planted: unsafe path:")
        .stdout_has("files/etc/shadow (file.shadow): permissions:")
        .stderr_has("has 7 problems");
    // What an administrator reads, whole.
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn manifest_paths_that_escape_are_refused() {
    let (host, b) = fresh_bundle();
    // A file outside the bundle with the right hash: must not be read.
    let outside = host.tmp.path().join("outside");
    std::fs::write(&outside, "x").unwrap();
    let mut m = manifest(&b);
    let hash = blake3_of(&outside);
    let e = m
        .entries
        .iter_mut()
        .find(|e| e.path == "/etc/hosts")
        .unwrap();
    e.file = Some("../../outside".into());
    e.size = Some(1);
    e.blake3 = Some(hash.clone());
    let e = m
        .entries
        .iter_mut()
        .find(|e| e.path == "/etc/group")
        .unwrap();
    e.file = Some(outside.display().to_string());
    e.size = Some(1);
    e.blake3 = Some(hash);
    write_manifest(&b, &m);
    // A directory symlink inside the bundle, named by the manifest.
    std::fs::remove_dir_all(b.join("files/usr")).unwrap();
    std::os::unix::fs::symlink(host.root.join("usr"), b.join("files/usr")).unwrap();

    verify(&b)
        .code(1)
        .stdout_has("../../outside (file.hosts): unsafe path: refused: path ../../outside contains `..`")
        .stdout_has(&format!("{} (file.group): unsafe path: refused: absolute path", outside.display()))
        .stdout_has("files/usr/share/chroma-manager/local_settings.py (file.local_settings): unsafe path: refused:")
        // The real files are now unlisted: extra.
        .stdout_has("files/etc/hosts: extra file")
        .stdout_has("files/etc/group: extra file");
}

#[test]
fn an_unparsable_manifest_is_an_error() {
    let (_host, b) = fresh_bundle();
    let text = std::fs::read_to_string(b.join("manifest.json")).unwrap();
    std::fs::write(b.join("manifest.json"), &text[..text.len() / 2]).unwrap();
    verify(&b).code(1).stderr_has("the manifest does not parse");
    std::fs::write(
        b.join("manifest.json"),
        text.replace("\"format_version\": 1", "\"format_version\": 7"),
    )
    .unwrap();
    verify(&b)
        .code(1)
        .stderr_has("format_version 7 was written by a newer imlrecover");
    std::fs::remove_file(b.join("manifest.json")).unwrap();
    verify(&b).code(1).stderr_has("is not a bundle");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_found() {
    let (_host, b) = fresh_bundle();
    // Swap the manager's key for the authority's, and fix the hash: only the
    // certificate check can tell.
    std::fs::copy(
        b.join("files/var/lib/chroma/authority.pem"),
        b.join("files/var/lib/chroma/manager.pem"),
    )
    .unwrap();
    rehash(&b, "files/var/lib/chroma/manager.pem");
    verify(&b)
        .code(1)
        .stdout_has("files/var/lib/chroma/manager.pem (cert.manager): certificate: this private key does not belong to the certificate files/var/lib/chroma/manager.crt")
        .stderr_has("has 1 problem");
}

#[test]
fn a_certificate_not_signed_by_its_ca_is_found() {
    let (host, b) = fresh_bundle();
    // A self-signed manager certificate with the manager's own key.
    let crt = b.join("files/var/lib/chroma/manager.crt");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-new",
            "-days",
            "30",
            "-subj",
            "/CN=impostor",
            "-key",
        ])
        .arg(host.file("/var/lib/chroma/manager.pem"))
        .arg("-out")
        .arg(&crt)
        .status()
        .unwrap();
    assert!(status.success());
    rehash(&b, "files/var/lib/chroma/manager.crt");
    verify(&b)
        .code(1)
        .stdout_has("files/var/lib/chroma/manager.crt (cert.manager): certificate: does not verify against cert.authority's certificate");
}

#[test]
fn absent_entries_need_no_file() {
    let (_host, b) = fresh_bundle();
    let m = manifest(&b);
    assert!(m.entries.iter().any(|e| e.kind == EntryKind::Absent));
    verify(&b).code(0);
}

// ---- The dump: a real backup of a seeded PostgreSQL 15 cluster ----------

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use support::chroma::ChromaCluster;
use support::host::copy_tree;

fn db_bundle() -> (Host, PathBuf) {
    let host = Host::new();
    let source = ChromaCluster::start();
    host.backup_with(&support::host::recipe(), &source.vars());
    let bundle = host.latest();
    (host, bundle)
}

/// A copy of the bundle to damage, beside the original.
fn copy_of(host: &Host, bundle: &Path, name: &str) -> PathBuf {
    let copy = host.tmp.path().join(name);
    copy_tree(bundle, &copy);
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    copy
}

fn dump_sql(bundle: &Path) -> (PathBuf, String) {
    let m = manifest(bundle);
    let path = bundle.join(&m.database.unwrap().file);
    let mut sql = String::new();
    MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut sql)
        .unwrap();
    (path, sql)
}

/// Replaces the dump with `sql`, gzip'd, and makes the manifest agree.
fn replace_dump(bundle: &Path, sql: &str) {
    let (path, _) = dump_sql(bundle);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(sql.as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let mut m = manifest(bundle);
    let db = m.database.as_mut().unwrap();
    db.size = std::fs::metadata(&path).unwrap().len();
    db.blake3 = blake3_of(&path);
    db.sql_size = sql.len() as u64;
    write_manifest(bundle, &m);
}

/// Private temp dir for the drill's throwaway cluster (postgres must reach
/// it), so the test can see that the drill removed it.
fn drill_tmp(host: &Host) -> PathBuf {
    let dir = host.tmp.path().join("drill-tmp");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(
        host.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

fn drill(bundle: &Path, tmp: &Path) -> Output {
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(bundle)
        .env("TMPDIR", tmp)
        .run()
}

#[test]
fn the_dump_is_checked_and_drilled() {
    let (host, b) = db_bundle();
    verify(&b).code(0).stdout_has("24 files");
    let tmp = drill_tmp(&host);
    drill(&b, &tmp)
        .code(0)
        .stdout_has("Drill passed:")
        .stdout_has("266 rows match the manifest");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the throwaway cluster is removed"
    );

    // Ctrl-C while the throwaway cluster exists: it is stopped and removed,
    // and the exit status says "interrupted", not "bad bundle".
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .args(["verify", "--drill"])
        .arg(&b)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = false;
    for _ in 0..6000 {
        if std::fs::read_dir(&tmp).unwrap().next().is_some() {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(seen, "the drill never created its cluster");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: stopped and removed 1 throwaway"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "removed after Ctrl-C"
    );

    // One table's rows removed from the dump, hashes fixed: only the drill
    // can tell.
    let rows_gone = copy_of(&host, &b, "rows-gone");
    let (_, sql) = dump_sql(&rows_gone);
    let start = sql
        .find("COPY public.chroma_core_managedtarget ")
        .expect("COPY block");
    let data = start + sql[start..].find('\n').unwrap() + 1;
    let end = data + sql[data..].find("\\.\n").unwrap();
    let cut = format!("{}{}", &sql[..data], &sql[end..]);
    replace_dump(&rows_gone, &cut);
    verify(&rows_gone).code(0);
    drill(&rows_gone, &tmp).code(1).stdout_has(
        "public.chroma_core_managedtarget in database \"chroma\": 12 rows expected, 0 found",
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "removed after a failed drill too"
    );

    // A statement that fails in psql beyond the known harmless errors.
    let bad_sql = copy_of(&host, &b, "bad-sql");
    let (_, sql) = dump_sql(&bad_sql);
    replace_dump(
        &bad_sql,
        &sql.replacen(
            "CREATE TABLE public.chroma_core_command",
            "CREATE TABLE public.chroma_core_command_broken(",
            1,
        ),
    );
    drill(&bad_sql, &tmp)
        .code(1)
        .stdout_has("the test restore failed");

    // A corrupt byte in the gzip stream.
    let corrupt = copy_of(&host, &b, "corrupt");
    let (path, _) = dump_sql(&corrupt);
    let mut gz = std::fs::read(&path).unwrap();
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    std::fs::write(&path, gz).unwrap();
    let dump = path.file_name().unwrap().to_string_lossy().into_owned();
    verify(&corrupt)
        .code(1)
        .stdout_has(&format!("{dump} (database.chroma): corrupt gzip:"))
        .stdout_has(&format!("{dump} (database.chroma): modified:"));

    // Truncated gzip.
    let truncated = copy_of(&host, &b, "truncated");
    let (path, _) = dump_sql(&truncated);
    let gz = std::fs::read(&path).unwrap();
    std::fs::write(&path, &gz[..gz.len() - 100]).unwrap();
    verify(&truncated)
        .code(1)
        .stdout_has(&format!("{dump} (database.chroma): truncated:"))
        .stdout_has(&format!("{dump} (database.chroma): corrupt gzip:"));

    // A dump cut short but well-compressed, hashes fixed: pg_dumpall's last
    // line is missing.
    let short = copy_of(&host, &b, "short");
    let (_, sql) = dump_sql(&short);
    replace_dump(&short, &sql[..sql.len() * 2 / 3]);
    verify(&short)
        .code(1)
        .stdout_has(&format!("{dump} (database.chroma): incomplete dump:"));

    // The dump missing altogether.
    let missing = copy_of(&host, &b, "missing");
    std::fs::remove_file(missing.join(&dump)).unwrap();
    verify(&missing)
        .code(1)
        .stdout_has(&format!("{dump} (database.chroma): missing:"));
}

#[test]
fn a_drill_without_a_database_is_a_problem() {
    let (_host, b) = fresh_bundle();
    Imlrecover::new()
        .args(["verify", "--drill"])
        .arg(&b)
        .run()
        .code(1)
        .stdout_has("no database dump to restore");
}

#[test]
fn an_unfinished_bundle_is_refused() {
    let (host, b) = fresh_bundle();
    let unfinished = host.bundles.join(".incomplete-2026-11-26T06-10-00Z-999999");
    std::fs::rename(&b, &unfinished).unwrap();
    verify(&unfinished)
        .code(1)
        .stderr_has("the temporary directory of a backup that did not finish");
}
