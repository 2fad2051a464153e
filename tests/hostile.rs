//! Hostile bundles: someone with write access to the backup store rewrites
//! a bundle (hashes in the manifest made to match). Every command that
//! reads a bundle refuses it before changing anything, and nothing the
//! bundle holds can run a command.

mod support;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use imlrecover::bundle::{Entry, EntryKind, Mode, ResourceRecord};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::chroma::ChromaCluster;
use support::cli::{Imlrecover, Output};
use support::host::{blake3_of, copy_tree, manifest, write_manifest, Host};

/// Every path under `dir` with its size, to prove nothing was written
/// (imlrecover's own lock under the root aside).
fn listing(dir: &Path) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if rel.contains("var/lib/imlrecover") {
                continue;
            }
            out.insert((rel, if meta.is_dir() { 0 } else { meta.len() }));
        }
    }
    out
}

fn files_bundle() -> (Host, PathBuf, PathBuf) {
    let host = Host::new();
    let recipe = host.files_recipe();
    host.backup(&recipe);
    let bundle = host.latest();
    (host, recipe, bundle)
}

fn with_bundle(cmd: &str, recipe: &Path, host: &Host, bundle: &Path) -> Imlrecover {
    Imlrecover::new()
        .args([cmd, "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(bundle)
}

#[test]
fn a_files_member_outside_its_glob_is_refused_by_every_command() {
    let (host, recipe, b) = files_bundle();
    // The attacker adds /etc/cron.d/evil to files.yum_repos.
    let evil = "* * * * * root touch /tmp/owned\n";
    std::fs::create_dir_all(b.join("files/etc/cron.d")).unwrap();
    let stored = b.join("files/etc/cron.d/evil");
    std::fs::write(&stored, evil).unwrap();
    let mut m = manifest(&b);
    let address: imlrecover::recipe::Address = "files.yum_repos".parse().unwrap();
    let mut e = Entry::absent(address.clone(), "/etc/cron.d/evil".into(), false);
    e.kind = EntryKind::File;
    e.file = Some("files/etc/cron.d/evil".into());
    e.size = Some(evil.len() as u64);
    e.blake3 = Some(blake3_of(&stored));
    e.mode = Some(Mode(0o644));
    m.entries.push(e);
    for r in &mut m.resources {
        if let ResourceRecord::Files {
            address: a,
            members,
            ..
        } = r
        {
            if *a == address {
                members.push("/etc/cron.d/evil".into());
            }
        }
    }
    write_manifest(&b, &m);

    let before = listing(host.tmp.path());
    with_bundle("plan", &recipe, &host, &b)
        .run()
        .code(1)
        .stderr_has("/etc/cron.d/evil does not match its glob /etc/yum.repos.d/*");
    // audit reports it as a finding of the bundle's integrity.
    with_bundle("audit", &recipe, &host, &b)
        .run()
        .code(2)
        .stdout_has("/etc/cron.d/evil does not match its glob /etc/yum.repos.d/*");
    with_bundle("apply", &recipe, &host, &b)
        .arg("--auto-approve")
        .run()
        .code(1)
        .stderr_has("does not match its glob");
    assert!(!host.file("/etc/cron.d/evil").exists());
    assert_eq!(listing(host.tmp.path()), before, "nothing was written");
}

#[test]
fn duplicate_entries_and_missing_resources_are_refused() {
    let (host, recipe, b) = files_bundle();
    let original = manifest(&b);

    // One path listed twice for one resource: the last would win.
    let mut m = original.clone();
    let hosts = m
        .entries
        .iter()
        .find(|e| e.path == "/etc/hosts")
        .unwrap()
        .clone();
    m.entries.push(hosts);
    write_manifest(&b, &m);
    Imlrecover::new()
        .arg("verify")
        .arg(&b)
        .run()
        .code(1)
        .stdout_has("/etc/hosts is listed more than once");
    with_bundle("plan", &recipe, &host, &b)
        .run()
        .code(1)
        .stderr_has("/etc/hosts is listed more than once");

    // A resource of the very recipe the bundle names, dropped from it.
    let mut m = original.clone();
    m.entries.retain(|e| e.path != "/etc/ntp.conf");
    m.resources
        .retain(|r| r.address().to_string() != "file.ntp_conf");
    write_manifest(&b, &m);
    std::fs::remove_file(b.join("files/etc/ntp.conf")).unwrap();
    with_bundle("plan", &recipe, &host, &b)
        .run()
        .code(1)
        .stderr_has("file.ntp_conf")
        .stderr_has("the recipe declares it, but the bundle holds nothing for it");
}

/// Runs `cmd` and fails the test if it does not end within `limit`.
fn run_bounded(mut cmd: std::process::Command, limit: Duration) -> (i32, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fifos_symlinks_and_loose_permissions_in_a_bundle_are_refused_by_plan() {
    let (host, recipe, b) = files_bundle();
    let exe = env!("CARGO_BIN_EXE_imlrecover");
    let plan = |bundle: &Path| {
        let mut c = std::process::Command::new(exe);
        c.args(["plan", "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(bundle);
        run_bounded(c, Duration::from_secs(60))
    };

    // A FIFO where a captured file should be (and one beside it).
    let fifo_bundle = host.tmp.path().join("fifo");
    copy_tree(&b, &fifo_bundle);
    std::fs::set_permissions(&fifo_bundle, PermissionsExt::from_mode(0o700)).unwrap();
    let cert = fifo_bundle.join("files/var/lib/chroma/authority.crt");
    std::fs::remove_file(&cert).unwrap();
    nix::unistd::mkfifo(&cert, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    nix::unistd::mkfifo(
        &fifo_bundle.join("files/etc/stray"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (code, err) = plan(&fifo_bundle);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    // A stray symlink.
    let link_bundle = host.tmp.path().join("link");
    copy_tree(&b, &link_bundle);
    std::fs::set_permissions(&link_bundle, PermissionsExt::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", link_bundle.join("files/etc/stray")).unwrap();
    let (code, err) = plan(&link_bundle);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a symbolic link inside the bundle"), "{err}");

    // A world-writable bundle directory, and a sensitive copy others can read.
    std::fs::set_permissions(&b, PermissionsExt::from_mode(0o777)).unwrap();
    let (code, err) = plan(&b);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the bundle directory has mode 0777"), "{err}");
    std::fs::set_permissions(&b, PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::set_permissions(b.join("files/etc/shadow"), PermissionsExt::from_mode(0o644)).unwrap();
    let (code, err) = plan(&b);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sensitive, but mode 0644"), "{err}");
}

fn database_recipe(host: &Host) -> PathBuf {
    let text = std::fs::read_to_string(support::host::recipe()).unwrap();
    let start = text.find("database \"chroma\"").unwrap();
    let vars_end = text.find("\nfile ").unwrap();
    let path = host.tmp.path().join("db.hcl");
    std::fs::write(&path, format!("{}\n{}", &text[..vars_end], &text[start..])).unwrap();
    path
}

fn dump_of(bundle: &Path) -> (PathBuf, String) {
    let m = manifest(bundle);
    let path = bundle.join(m.database.unwrap().file);
    let mut sql = String::new();
    MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut sql)
        .unwrap();
    (path, sql)
}

/// Replaces the dump with `sql`, gzip'd, and makes the manifest agree.
fn replace_dump(bundle: &Path, sql: &str) {
    let (path, _) = dump_of(bundle);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(sql.as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let mut m = manifest(bundle);
    let db = m.database.as_mut().unwrap();
    db.size = std::fs::metadata(&path).unwrap().len();
    db.blake3 = blake3_of(&path);
    db.sql_size = sql.len() as u64;
    write_manifest(bundle, &m);
}

#[test]
fn a_dump_cannot_run_shell_commands() {
    let host = Host::new();
    let source = ChromaCluster::start();
    let recipe = database_recipe(&host);
    Imlrecover::new()
        .args(["backup", "-r"])
        .arg(&recipe)
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle-dir")
        .arg(&host.bundles)
        .args(source.vars())
        .run()
        .code(0);
    let b = host.latest();
    let rows = ChromaCluster::rows(&source.target());
    let (_, sql) = dump_of(&b);

    // Where user postgres may write, so only our check stops the marker.
    std::fs::set_permissions(host.tmp.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let open = host.tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, PermissionsExt::from_mode(0o1777)).unwrap();
    let marker = open.join("marker");
    let shell = format!("\\! touch {}\n", marker.display());
    let at = sql
        .find("\\connect chroma")
        .expect("the dump connects to chroma");
    let cases = [
        ("a \\! line", format!("{}{shell}{}", &sql[..at], &sql[at..])),
        (
            // psql reads the data of a COPY that fails as commands.
            "the data of a failing COPY",
            format!(
                "{}COPY public.no_such_table (a) FROM stdin;\n{shell}\\.\n{}",
                &sql[..at],
                &sql[at..]
            ),
        ),
        (
            "SQL after the completion marker",
            format!("{sql}DROP DATABASE chroma;\n"),
        ),
    ];
    let drill_tmp = host.tmp.path().join("drill-tmp");
    std::fs::create_dir(&drill_tmp).unwrap();
    std::fs::set_permissions(&drill_tmp, PermissionsExt::from_mode(0o1777)).unwrap();
    for (what, bad) in &cases {
        replace_dump(&b, bad);
        let expect = if what.starts_with("SQL") {
            "after pg_dumpall's completion marker"
        } else {
            "is a psql meta-command pg_dumpall never writes"
        };
        Imlrecover::new()
            .arg("verify")
            .arg(&b)
            .run()
            .code(1)
            .stdout_has(expect);
        let out: Output = Imlrecover::new()
            .args(["verify", "--drill"])
            .arg(&b)
            .env("TMPDIR", &drill_tmp)
            .run();
        out.code(1).stdout_has(expect);
        assert!(!marker.exists(), "{what}: the drill ran the dump's command");
        with_bundle("apply", &recipe, &host, &b)
            .args(source.vars())
            .args(["--replace", "database.chroma", "--auto-approve"])
            .run()
            .code(1)
            .stderr_has(expect);
        assert!(!marker.exists(), "{what}: apply ran the dump's command");
        assert_eq!(ChromaCluster::rows(&source.target()), rows, "{what}");
    }
}
