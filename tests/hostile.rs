//! Hostile bundles: someone with write access to the backup store rewrites
//! a bundle (hashes in the manifest made to match). Every command that
//! reads a bundle refuses it before changing anything, and nothing the
//! bundle holds can run a command.

use crate::support;

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
    host.backup_with(&recipe, &source.vars());
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

#[test]
fn the_state_directory_and_lock_stay_under_the_root() {
    let (host, recipe, b) = files_bundle();
    // Something to apply: a changed file.
    std::fs::write(host.file("/etc/hosts"), "127.0.0.1 changed\n").unwrap();
    // The state directory is a link out of the root, its lock a link to a
    // file outside: both are test directories, listed after.
    let outside = host.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let victim = host.tmp.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(host.file("/var/lib")).unwrap();
    // The backup that made the bundle took the host's lock there (#21).
    let state = host.file("/var/lib/imlrecover");
    if state.is_dir() {
        std::fs::remove_dir_all(&state).unwrap();
    }
    std::os::unix::fs::symlink(&outside, &state).unwrap();

    with_bundle("apply", &recipe, &host, &b)
        .arg("--auto-approve")
        .run()
        .code(0);
    assert_eq!(
        listing(&outside),
        BTreeSet::new(),
        "nothing is written outside the root"
    );
    // The link resolves inside the root, as the kernel would under chroot.
    let inside = host.root.join(outside.strip_prefix("/").unwrap());
    assert!(inside.join("lock").is_file(), "the lock is under the root");
    assert!(inside.join("runs").is_dir(), "the runs are under the root");

    // A lock that is a symlink is never written through.
    std::fs::remove_file(host.file("/var/lib/imlrecover")).unwrap();
    std::fs::create_dir(host.file("/var/lib/imlrecover")).unwrap();
    std::os::unix::fs::symlink(&victim, host.file("/var/lib/imlrecover/lock")).unwrap();
    std::fs::write(host.file("/etc/hosts"), "127.0.0.1 again\n").unwrap();
    with_bundle("apply", &recipe, &host, &b)
        .arg("--auto-approve")
        .run()
        .code(1)
        .stderr_has("cannot take the lock");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(
        std::fs::read_to_string(host.file("/etc/hosts")).unwrap(),
        "127.0.0.1 again\n",
        "nothing was applied"
    );
}

#[test]
fn init_scripts_are_looked_up_inside_the_root() {
    let host = Host::new();
    // `<root>/etc` links to a directory outside the root whose init script
    // would leave a marker: plan must not run it.
    let outside = host.tmp.path().join("hostetc");
    std::fs::create_dir_all(outside.join("init.d")).unwrap();
    let marker = host.tmp.path().join("marker");
    let script = outside.join("init.d/svc");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::remove_dir_all(host.file("/etc")).unwrap();
    std::os::unix::fs::symlink(&outside, host.file("/etc")).unwrap();
    let recipe = host.tmp.path().join("svc.hcl");
    std::fs::write(&recipe, "service \"svc\" {\n  state = \"running\"\n}\n").unwrap();
    std::fs::create_dir_all(&host.bundles).unwrap();
    // No bundle is needed to look at a service, but plan wants one.
    host.backup(&recipe);
    assert!(!marker.exists(), "backup ran the script outside the root");
    with_bundle("plan", &recipe, &host, &host.latest())
        .run()
        .code(1)
        .stderr_has("svc");
    assert!(
        !marker.exists(),
        "plan ran the init script outside the root"
    );
}

/// Every byte of every file under `dir`, for grepping.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn sensitive_variables_are_redacted_everywhere() {
    const SECRET: &str = "S3cr3tTok3n";
    let host = Host::new();
    let recipe = host.tmp.path().join("secret.hcl");
    let base = std::fs::read_to_string(host.files_recipe()).unwrap();
    std::fs::write(
        &recipe,
        format!(
            "{base}\nvariable \"token\" {{\n  sensitive = true\n}}\n\
             file \"token_file\" {{\n  path     = \"/etc/${{var.token}}.conf\"\n  optional = true\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(host.file(&format!("/etc/{SECRET}.conf")), "x\n").unwrap();
    let var = format!("token={SECRET}");
    host.backup_with(&recipe, &["--var", &var]);
    let b = host.latest();
    // Changes to show: the secret's own file and /etc/hosts.
    std::fs::write(host.file(&format!("/etc/{SECRET}.conf")), "y\n").unwrap();
    std::fs::write(host.file("/etc/hosts"), "127.0.0.1 changed\n").unwrap();
    let planfile = host.tmp.path().join("plan.json");
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let target = |cmd: &str| with_bundle(cmd, &recipe, &host, &b).args(["--var", &var]);
    outputs.push(("plan".into(), target("plan").run()));
    outputs.push(("plan --json".into(), target("plan").arg("--json").run()));
    outputs.push((
        "plan --out".into(),
        target("plan").arg("--out").arg(&planfile).run(),
    ));
    outputs.push((
        "show".into(),
        Imlrecover::new().arg("show").arg(&planfile).run(),
    ));
    outputs.push((
        "show --json".into(),
        Imlrecover::new()
            .args(["show", "--json"])
            .arg(&planfile)
            .run(),
    ));
    outputs.push(("audit".into(), target("audit").run()));
    outputs.push((
        "audit --format json".into(),
        target("audit").args(["--format", "json"]).run(),
    ));
    let applied = Imlrecover::new()
        .arg("apply")
        .arg(&planfile)
        .args(["--var", &var])
        .run();
    applied.code(0);
    assert_eq!(
        std::fs::read_to_string(host.file(&format!("/etc/{SECRET}.conf"))).unwrap(),
        "x\n",
        "the saved plan applied with the value given again"
    );
    outputs.push(("apply PLANFILE".into(), applied));
    // A diagnostic that would quote the value.
    let bad = host.tmp.path().join("bad.hcl");
    std::fs::write(
        &bad,
        "variable \"token\" {\n  sensitive = true\n}\nfile \"x\" {\n  path = \"/etc/x\"\n  mode = var.token\n}\n",
    )
    .unwrap();
    let v = Imlrecover::new()
        .args(["validate", "-r"])
        .arg(&bad)
        .args(["--var", &var])
        .run();
    v.code(1);
    outputs.push(("validate".into(), v));

    for (what, out) in &outputs {
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains(SECRET), "{what} shows the secret:\n{text}");
        }
    }
    assert!(outputs[0].1.stdout.contains("(sensitive value)"));
    let mut files = all_bytes(&host.root.join("var/lib/imlrecover"));
    files.push((planfile.clone(), std::fs::read(&planfile).unwrap()));
    assert!(files.len() > 2, "the run directory was written");
    for (path, bytes) in files {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{} holds the secret",
            path.display()
        );
    }
}

#[test]
fn recipe_input_is_bounded_and_messages_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let validate = |recipe: &Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"));
        c.args(["validate", "-r"]).arg(recipe);
        run_bounded(c, Duration::from_secs(30))
    };
    // A FIFO or a device is refused at once, never read.
    let fifo = tmp.path().join("fifo.hcl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for bad in [fifo.as_path(), Path::new("/dev/zero")] {
        let (code, err) = validate(bad);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"));
    c.args([
        "validate",
        "-r",
        "plans/iml-manager.hcl",
        "--var-file",
        "/dev/zero",
    ])
    .current_dir(support::cli::repo());
    let (code, err) = run_bounded(c, Duration::from_secs(30));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    // Larger than 16 MiB.
    let big = tmp.path().join("big.hcl");
    std::fs::write(&big, vec![b'#'; (16 << 20) + 1]).unwrap();
    let (code, err) = validate(&big);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");

    // A byte-order mark is accepted; 1/0 is an error; escape bytes from the
    // recipe reach the terminal escaped.
    let r = tmp.path().join("r.hcl");
    std::fs::write(
        &r,
        "\u{feff}variable \"x\" {\n  default = 1/0\n}\nfile \"a\" {\n  path = \"/etc/\u{1b}]0;owned\u{7}\"\n  mode = 9223372036854775807 + 1\n}\n",
    )
    .unwrap();
    let (code, err) = validate(&r);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("unexpected"), "{err}");
    assert!(
        err.contains("`default`: the arithmetic divides by zero or overflows"),
        "{err}"
    );
    assert!(
        err.contains("`mode`: the arithmetic divides by zero or overflows"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    let ok = tmp.path().join("ok.hcl");
    std::fs::write(&ok, "\u{feff}file \"a\" {\n  path = \"/etc/a\"\n}\n").unwrap();
    let (code, err) = validate(&ok);
    assert_eq!(code, 0, "{err}");
}
