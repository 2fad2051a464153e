//! `imlrecover backup` against a fake EL6 host tree under a temporary
//! --root; the database half is in tests/backup_db.rs... see `database_*`.

use crate::support;

use imlrecover::bundle::{EntryKind, ResourceRecord};
use support::cli::Imlrecover;
use support::host::{blake3_of, manifest, mode, Host};

#[test]
fn backup_captures_every_file_with_metadata() {
    let host = Host::new();
    let recipe = host.files_recipe();
    let out = host.try_backup(&recipe, &[]);
    out.code(0)
        .stdout_has("Backup complete:")
        .stdout_has("(1 optional absent)");
    let bundle = host.latest();
    out.stdout_has(&bundle.display().to_string());
    let m = manifest(&bundle);
    assert_eq!(m.format_version, 1);
    assert_eq!(m.tool.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.recipe.blake3, blake3_of(&recipe));
    assert!(m.database.is_none());

    // Every captured file: same bytes as on the host, hash and size recorded.
    let files: Vec<_> = m
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .collect();
    assert_eq!(files.len(), 23, "{:#?}", m.entries);
    for e in &files {
        let on_host = host.file(&e.path);
        let in_bundle = bundle.join(e.file.as_ref().unwrap());
        assert_eq!(
            std::fs::read(&on_host).unwrap(),
            std::fs::read(&in_bundle).unwrap(),
            "{}",
            e.path
        );
        assert_eq!(e.blake3.as_deref(), Some(blake3_of(&on_host).as_str()));
        assert_eq!(e.size, Some(std::fs::metadata(&on_host).unwrap().len()));
        assert_eq!(e.mode.map(|m| m.0), Some(mode(&on_host)));
        assert_eq!(e.uid, Some(0));
        assert_eq!(e.owner.as_deref(), Some("root"));
    }
    let hosts = files.iter().find(|e| e.path == "/etc/hosts").unwrap();
    assert_eq!(hosts.file.as_deref(), Some("files/etc/hosts"));

    // Optional and missing: recorded as absent, nothing in the bundle.
    let keytab = m
        .entries
        .iter()
        .find(|e| e.path == "/etc/krb5.keytab")
        .unwrap();
    assert_eq!(keytab.kind, EntryKind::Absent);
    assert!(!bundle.join("files/etc/krb5.keytab").exists());

    // Optional sets: what matched is captured (sensitive: 0600), an empty
    // match is an empty member list, not an error.
    let members = |addr: &str| {
        m.resources
            .iter()
            .find_map(|r| match r {
                ResourceRecord::Files {
                    address, members, ..
                } if address.to_string() == addr => Some(members.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(
        members("files.ssh_host_keys"),
        ["/etc/ssh/ssh_host_rsa_key.pub"]
    );
    assert_eq!(
        mode(&bundle.join("files/etc/ssh/ssh_host_rsa_key.pub")),
        0o600
    );
    assert!(members("files.root_ssh_keys").is_empty());

    // A `files` resource lists its members.
    let ifcfg = m
        .resources
        .iter()
        .find_map(|r| match r {
            ResourceRecord::Files {
                address, members, ..
            } if address.to_string() == "files.ifcfg" => Some(members),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        ifcfg,
        &[
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
            "/etc/sysconfig/network-scripts/ifcfg-eth1",
            "/etc/sysconfig/network-scripts/ifcfg-lo"
        ]
    );
}

#[test]
fn bundle_is_private_and_sensitive_files_are_0600() {
    let host = Host::new();
    host.try_backup(&host.files_recipe(), &[]).code(0);
    let bundle = host.latest();
    assert_eq!(mode(&bundle), 0o700);
    assert_eq!(mode(&bundle.join("files/etc")), 0o700);
    for sensitive in [
        "etc/shadow",
        "etc/gshadow",
        "etc/sudoers",
        "var/lib/chroma/authority.pem",
        "var/lib/chroma/manager.pem",
    ] {
        assert_eq!(
            mode(&bundle.join("files").join(sensitive)),
            0o600,
            "{sensitive}"
        );
    }
    assert_eq!(mode(&bundle.join("files/etc/hosts")), 0o644);
    let m = manifest(&bundle);
    let shadow = m.entries.iter().find(|e| e.path == "/etc/shadow").unwrap();
    assert!(shadow.sensitive);
}

#[test]
fn required_file_missing_fails_and_leaves_no_bundle() {
    let host = Host::new();
    std::fs::remove_file(host.file("/etc/ntp.conf")).unwrap();
    let out = host.try_backup(&host.files_recipe(), &[]);
    out.code(1)
        .stderr_has("file.ntp_conf")
        .stderr_has("/etc/ntp.conf does not exist");
    assert!(
        !host.bundles.exists(),
        "a failed first backup leaves no bundle dir"
    );

    // With earlier bundles present, only the failed one is missing.
    std::fs::write(host.file("/etc/ntp.conf"), "server 10.0.2.3\n").unwrap();
    host.try_backup(&host.files_recipe(), &[]).code(0);
    std::fs::remove_file(host.file("/etc/ntp.conf")).unwrap();
    let before = host.bundle_names();
    host.try_backup(&host.files_recipe(), &[]).code(1);
    assert_eq!(host.bundle_names(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&host.bundles)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn required_glob_without_match_is_an_error() {
    let host = Host::new();
    for f in std::fs::read_dir(host.file("/etc/yum.repos.d"))
        .unwrap()
        .flatten()
    {
        std::fs::remove_file(f.path()).unwrap();
    }
    host.try_backup(&host.files_recipe(), &[])
        .code(1)
        .stderr_has("files.yum_repos")
        .stderr_has("/etc/yum.repos.d/*");
}

#[test]
fn unreadable_file_fails_with_its_path() {
    let host = Host::new();
    // Root reads everything; a directory where a file should be cannot be read.
    std::fs::remove_file(host.file("/etc/hosts")).unwrap();
    std::fs::create_dir(host.file("/etc/hosts")).unwrap();
    host.try_backup(&host.files_recipe(), &[])
        .code(1)
        .stderr_has("file.hosts: /etc/hosts is a directory, not a regular file");
    assert!(host.bundle_names().is_empty());
}

#[test]
fn unwritable_bundle_dir_and_missing_root_are_errors() {
    let host = Host::new();
    let blocker = host.tmp.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    Imlrecover::new()
        .args(["backup", "-r"])
        .arg(host.files_recipe())
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle-dir")
        .arg(blocker.join("bundles"))
        .run()
        .code(1)
        .stderr_has("cannot create a bundle in");
    Imlrecover::new()
        .args(["backup", "-r"])
        .arg(host.files_recipe())
        .arg("--root")
        .arg(host.tmp.path().join("no-such-root"))
        .arg("--bundle-dir")
        .arg(&host.bundles)
        .run()
        .code(1)
        .stderr_has("does not exist or is not a directory");
    Imlrecover::new()
        .args(["backup", "-r", "no-such-recipe.hcl", "--root"])
        .arg(&host.root)
        .arg("--bundle-dir")
        .arg(&host.bundles)
        .run()
        .code(1)
        .stderr_has("no-such-recipe.hcl");
    assert!(!host.bundles.exists());
}

#[test]
fn keep_prunes_oldest_only_after_success() {
    let host = Host::new();
    let recipe = host.files_recipe();
    std::fs::create_dir_all(host.bundles.join("notes")).unwrap();
    for _ in 0..3 {
        host.try_backup(&recipe, &["--keep", "2"]).code(0);
    }
    let names = host.bundle_names();
    // Two bundles plus the unrelated directory, which is never touched.
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"notes".to_string()));
    let latest = host.latest();
    assert_eq!(latest.file_name().unwrap().to_string_lossy(), names[1]);

    // A failing backup prunes nothing.
    std::fs::remove_file(host.file("/etc/passwd")).unwrap();
    host.try_backup(&recipe, &["--keep", "1"]).code(1);
    assert_eq!(host.bundle_names(), names);

    Imlrecover::new()
        .args(["backup", "--keep", "0", "-r"])
        .arg(&recipe)
        .arg("--bundle-dir")
        .arg(&host.bundles)
        .run()
        .code(1)
        .stderr_has("--keep");
}

// ---- The database: a real PostgreSQL 15 cluster seeded like a manager ----

use support::chroma::{ChromaCluster, TABLES};

#[test]
fn database_dump_is_recorded_and_restores_with_plain_zcat_psql() {
    let host = Host::new();
    let source = ChromaCluster::start();
    let vars = source.vars();
    let out = host.try_backup(
        &support::host::recipe(),
        &vars.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    out.code(0)
        .stdout_has("pgbackup-")
        .stdout_has("PostgreSQL 15");
    let bundle = host.latest();
    let m = manifest(&bundle);
    let db = m.database.as_ref().expect("database record");

    // The seed's own name: pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz
    let stamp = db
        .file
        .strip_prefix("pgbackup-")
        .and_then(|s| s.strip_suffix(".sql.gz"))
        .unwrap();
    assert_eq!(stamp.len(), 19, "{}", db.file);
    assert!(
        stamp.chars().enumerate().all(|(i, c)| match i {
            4 | 7 | 10 => c == '-',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        }),
        "{}",
        db.file
    );
    let dump = bundle.join(&db.file);
    assert_eq!(db.size, std::fs::metadata(&dump).unwrap().len());
    assert_eq!(db.blake3, blake3_of(&dump));
    assert_eq!(mode(&dump), 0o600);

    let id = imlrecover::host::postgres::cluster_identity(&source.target()).unwrap();
    assert_eq!(db.system_identifier, id.system_identifier);
    assert!(db.server_version.starts_with("15"), "{}", db.server_version);
    assert_eq!(db.databases, ["chroma"]);
    let chroma = &db.fingerprint["chroma"];
    for (table, rows) in TABLES {
        assert_eq!(
            chroma.get(&format!("public.{table}")),
            Some(rows),
            "{table}"
        );
    }

    // The runbook's restore, unchanged, into a fresh cluster.
    let fresh = imlrecover::host::postgres::TempCluster::start().unwrap();
    let t = fresh.target();
    let script = format!(
        "zcat '{}' | runuser -u postgres -- psql -X -q -h '{}' -p {} postgres",
        dump.display(),
        t.host.clone().unwrap(),
        t.port.unwrap()
    );
    let restored = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(
        ChromaCluster::rows(&t),
        ChromaCluster::rows(&source.target())
    );
    for (table, _) in TABLES {
        assert_eq!(
            ChromaCluster::digest(&t, table),
            ChromaCluster::digest(&source.target(), table),
            "{table}"
        );
    }
}

#[test]
fn unreachable_database_fails_and_leaves_no_bundle() {
    let host = Host::new();
    let sock = host.tmp.path().join("no-server");
    std::fs::create_dir(&sock).unwrap();
    let out = host.try_backup(
        &support::host::recipe(),
        &[
            "--var",
            &format!("pg_host={}", sock.display()),
            "--var",
            "pg_port=5999",
        ],
    );
    out.code(1).stderr_has("database.chroma");
    assert!(!host.bundles.exists(), "{:?}", host.bundle_names());
}

#[test]
fn pg_dumpall_failing_half_way_leaves_no_bundle() {
    let host = Host::new();
    let source = ChromaCluster::start();
    let vars = source.vars();
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    host.try_backup(&support::host::recipe(), &vars).code(0);
    let good = host.bundle_names();

    // pg_dumpall dumps databases in name order: `zz` comes after `chroma`,
    // and the server refuses pg_dump's connection to it.
    let t = source.target();
    imlrecover::host::postgres::execute(&t, "postgres", "CREATE DATABASE zz").unwrap();
    let hba = source.cluster.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local zz all reject\n{rules}")).unwrap();
    imlrecover::host::postgres::execute(&t, "postgres", "SELECT pg_reload_conf()").unwrap();

    host.try_backup(&support::host::recipe(), &vars)
        .code(1)
        .stderr_has("database.chroma: pg_dumpall failed")
        .stderr_has("no bundle was written");
    assert_eq!(host.bundle_names(), good, "the failed backup left nothing");
    assert_eq!(
        host.latest().file_name().unwrap().to_string_lossy(),
        good[0]
    );
}

#[test]
fn a_full_disk_fails_cleanly() {
    let host = Host::new();
    let small = host.tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // A 16 KiB tmpfs in a private mount namespace: the real disk is untouched.
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs '{small}' && exec '{bin}' backup -r '{recipe}' --root '{root}' --bundle-dir '{small}/b'",
        small = small.display(),
        bin = env!("CARGO_BIN_EXE_imlrecover"),
        recipe = host.files_recipe().display(),
        root = host.root.display(),
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("the incomplete bundle was removed"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_during_the_dump_removes_the_incomplete_bundle() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let host = Host::new();
    let source = ChromaCluster::start();
    let t = source.target();
    // A session holding an exclusive lock makes pg_dump wait: the backup is
    // reliably in the middle of its dump when Ctrl-C comes.
    let mut locker = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", "psql", "-X", "-q", "-h"])
        .arg(t.host.clone().unwrap())
        .args(["-p", &t.port.unwrap().to_string(), "chroma"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = locker.stdin.take().unwrap();
    stdin
        .write_all(b"BEGIN; LOCK TABLE chroma_core_command IN ACCESS EXCLUSIVE MODE;\n")
        .unwrap();
    stdin.flush().unwrap();
    let waiting = |sql: &str| {
        for _ in 0..6000 {
            let rows = imlrecover::host::postgres::query(&t, "postgres", sql).unwrap();
            if rows
                .first()
                .and_then(|r| r.first())
                .is_some_and(|n| n != "0")
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("never: {sql}");
    };
    waiting("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation IS NOT NULL");

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .arg("backup")
        .arg("-r")
        .arg(support::host::recipe())
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle-dir")
        .arg(&host.bundles)
        .args(source.vars())
        .env("NO_COLOR", "1")
        .process_group(0) // Ctrl-C reaches the whole foreground group
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    waiting("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
    let incomplete: Vec<_> = std::fs::read_dir(&host.bundles)
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        incomplete.len(),
        1,
        "the temporary bundle exists while dumping"
    );
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: removed the incomplete bundle"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&host.bundles)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(stdin);
    let _ = locker.wait();
}

#[test]
fn two_database_blocks_are_refused_before_anything_is_written() {
    let host = Host::new();
    let text = std::fs::read_to_string(support::host::recipe()).unwrap();
    let second = "\ndatabase \"second\" {\n  superuser = \"postgres\"\n  host      = var.pg_host\n  port      = var.pg_port\n  run_as    = \"postgres\"\n}\n";
    let recipe = host.tmp.path().join("two.hcl");
    std::fs::write(&recipe, format!("{text}{second}")).unwrap();
    host.try_backup(&recipe, &[])
        .code(1)
        .stderr_has("declares 2 database blocks (database.chroma, database.second)")
        .stderr_has("a bundle holds one cluster dump");
    assert!(!host.bundles.exists(), "nothing written");
}
