//! `imlrecover import`: a site's runbook backup directory made into a
//! bundle. The drill runs the runbook's own backup commands, extracted from
//! the runbook (fixtures/runbook/appendix-b.md) and run with `sh` on a
//! sandbox manager, imports the result, destroys the host and restores it
//! from the import. The report tests build directories as those commands
//! do, with a real pg_dumpall dump, and check the report line for line.

mod support;

use imlrecover::host::postgres as pg;
use imlrecover::sandbox::manager::Sandbox;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::cli::{fixtures, Imlrecover};

const PLAN: &str = "plans/iml-manager.hcl";

/// The shell commands of the runbook's "Creating a Backup Manifest"
/// section, as written: every fenced block, one command per paragraph (the
/// runbook wraps long commands onto a second line).
fn runbook_backup_commands() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("runbook/appendix-b.md")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("Creating a Backup Manifest"))
        .expect("the backup section");
    let end = lines
        .iter()
        .position(|l| l.starts_with("Restoring the Integrated Manager"))
        .expect("the restore section");
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut in_block = false;
    for l in &lines[start..end] {
        if l.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if in_block && !l.trim().is_empty() {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(l.trim());
            continue;
        }
        if !current.is_empty() {
            commands.push(std::mem::take(&mut current));
        }
    }
    commands
}

/// `$HOME` and `~` become `home`, the host's paths move under `root`, and
/// pg_dumpall is where this machine has it.
fn localize(cmd: &str, home: &Path, root: &Path, pg_dumpall: &Path) -> String {
    let home = home.display().to_string();
    cmd.split(' ')
        .map(|tok| {
            let tok = tok
                .replace("$HOME", &home)
                .replace("~/", &format!("{home}/"));
            if ["/etc/", "/root/", "/var/"]
                .iter()
                .any(|p| tok.starts_with(p))
            {
                format!("{}{tok}", root.display())
            } else {
                tok
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .replace("/usr/bin/pg_dumpall", &pg_dumpall.display().to_string())
}

/// Runs one command as root would; `su - postgres -c CMD` runs CMD as
/// postgres against the sandbox cluster. Returns the exit code and stderr.
fn run_sh(cmd: &str, target: &pg::PgTarget) -> (i32, String) {
    let prelude = r#"su() { [ "$1" = - ] && shift; u="$1"; shift; [ "$1" = -c ] && shift; runuser -u "$u" -- sh -c "$1"; }"#;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}\n{cmd}"))
        .current_dir("/")
        .env("PGHOST", target.host.clone().unwrap_or_default())
        .env("PGPORT", target.port.unwrap_or(5432).to_string())
        .env("TZ", "UTC")
        .output()
        .expect("sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn files_under(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                out.insert(format!("/{rel}"), (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

#[test]
fn the_runbooks_own_backup_imported_restores_the_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::golden(tmp.path()).expect("golden manager");
    // What the runbook's optional steps save: root's keys (RSA and DSA) and
    // a host key.
    let r = &sb.root;
    write_mode(
        &r.join("root/.ssh/id_rsa"),
        "RSA PRIVATE (sandbox)\n",
        0o600,
    );
    write_mode(
        &r.join("root/.ssh/id_rsa.pub"),
        "ssh-rsa AAAA root@iml\n",
        0o644,
    );
    write_mode(
        &r.join("root/.ssh/id_dsa"),
        "DSA PRIVATE (sandbox)\n",
        0o600,
    );
    write_mode(
        &r.join("root/.ssh/id_dsa.pub"),
        "ssh-dss AAAA root@iml\n",
        0o644,
    );
    write_mode(
        &r.join("etc/ssh/ssh_host_rsa_key"),
        "HOST KEY (sandbox)\n",
        0o600,
    );
    let original = files_under(&sb.root);
    let rows_before = sb.rows().unwrap();

    // The runbook's backup, command by command, as root on the manager.
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pg_dumpall = pg::find_program(None, "pg_dumpall").unwrap();
    let commands = runbook_backup_commands();
    assert_eq!(commands.len(), 30, "{commands:#?}");
    let mut failed = Vec::new();
    for c in &commands {
        let (code, stderr) = run_sh(&localize(c, &home, &sb.root, &pg_dumpall), &sb.target());
        if code != 0 {
            failed.push((c.clone(), stderr));
        }
    }
    // The runbook's one broken command: the DSA keys go to a directory its
    // mkdir never made.
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(
        failed[0].0,
        "cp /root/.ssh/id_dsa* $HOME/backup/etc/root/.ssh/."
    );
    let backup = home.join("backup");
    assert!(
        backup.join("etc/sysconfig/ifcfg-eth0").is_file(),
        "flattened"
    );
    assert!(backup.join("etc/chroma.repo").is_file(), "repos in etc/");

    let bundles = tmp.path().join("imported");
    let import = Imlrecover::new()
        .args(["import"])
        .arg(&backup)
        .args(["-r", PLAN, "--bundle-dir"])
        .arg(&bundles)
        .args(sb.var_args())
        .env("TZ", "UTC")
        .run();
    import.code(0);
    for expected in [
        "  files.ifcfg              /etc/sysconfig/network-scripts/ifcfg-eth0 <- etc/sysconfig/ifcfg-eth0  0644 root:root (kept by cp -a)",
        "  files.yum_repos          /etc/yum.repos.d/CentOS-Base.repo <- etc/CentOS-Base.repo  0644 root:root (kept by cp -a)\n                           /etc/yum.repos.d/chroma.repo <- etc/chroma.repo  0644 root:root (kept by cp -a)\n",
        "  file.shadow              /etc/shadow <- etc/shadow  0400 root:root (kept by cp -p)",
        "  file.yum_conf            /etc/yum.conf <- etc/yum.conf  0644 root:root (default: plain cp keeps no owner)",
        "  cert.authority           /var/lib/chroma/authority.crt <- var/lib/chroma/authority.crt  0644 root:root (default: plain cp keeps no owner)",
        "                           /var/lib/chroma/authority.pem <- var/lib/chroma/authority.pem  0600 root:root (default: plain cp keeps no owner)",
        "  files.root_ssh_keys      /root/.ssh/id_rsa <- root/.ssh/id_rsa  0600 root:root (kept by cp -p)",
        "  files.ssh_host_keys      /etc/ssh/ssh_host_rsa_key <- etc/ssh/ssh_host_rsa_key  0600 root:root (kept by cp -p)",
        "  files.root_ssh_dsa_keys  /root/.ssh/id_dsa* (optional): the runbook copies /root/.ssh/id_dsa* into etc/root/.ssh/, a directory its `mkdir` does not create, so its `cp` fails unless that directory was made by hand; looked for etc/root/.ssh/id_dsa*, root/.ssh/id_dsa*",
        "  file.local_settings      /usr/share/chroma-manager/local_settings.py: the runbook does not save it; looked for usr/share/chroma-manager/local_settings.py",
        "  file.root_known_hosts    /root/.ssh/known_hosts (optional): the runbook does not save it; looked for root/.ssh/known_hosts",
        "  taken    pgbackup-",
        "Imported: ",
    ] {
        import.stdout_has(expected);
    }
    assert!(
        !import.stdout.contains("Not named by the recipe"),
        "{}",
        import.stdout
    );

    let b = bundles.join("latest");
    // On the host it came from, only the database differs: the dump cannot
    // say which cluster it was taken from.
    let before = on(&sb, &b, "plan", &["--detailed-exitcode"]);
    before
        .code(2)
        .stdout_has("-/+ database.chroma (restore: bundle 2")
        .stdout_has("was imported from a runbook dump, which does not record its cluster's system_identifier, and was never restored into this cluster")
        .stdout_has("bundle cluster: system_identifier unknown (imported from a runbook dump)")
        .stdout_has("Plan: 1 to restore, 0 to create, 0 to update, 0 to remove, ");

    sb.disaster().unwrap();
    on(&sb, &b, "plan", &["--detailed-exitcode"])
        .code(2)
        .stdout_has(
            "-/+ database.chroma (restore: database chroma does not exist on the live cluster)",
        );
    on(&sb, &b, "apply", &["--auto-approve"])
        .code(0)
        .stdout_has("Apply complete!");
    on(&sb, &b, "plan", &["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");

    // Every file the import took is the original, byte for byte; modes as
    // cp -p/-a kept them, or as the report said.
    let manifest = support::host::manifest(&b);
    let imported = manifest.imported.as_ref().expect("marked as imported");
    assert_eq!(
        imported.source,
        backup.canonicalize().unwrap().display().to_string()
    );
    assert_eq!(imported.unknown, ["database.system_identifier"]);
    let restored = files_under(&sb.root);
    assert_eq!(manifest.entries.len(), 25);
    for e in &manifest.entries {
        let (bytes, mode) = &original[&e.path];
        let (now_bytes, now_mode) = &restored[&e.path];
        assert_eq!(now_bytes, bytes, "{}", e.path);
        let defaulted = imported.defaulted.iter().find(|d| d.path == e.path);
        match defaulted {
            Some(d) => assert_eq!(*now_mode, d.mode.0, "{} defaulted", e.path),
            None => assert_eq!(now_mode, mode, "{} kept", e.path),
        }
    }
    let defaulted: Vec<&str> = imported.defaulted.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        defaulted,
        [
            "/etc/yum.conf",
            "/etc/ntp.conf",
            "/var/lib/chroma/authority.crt",
            "/var/lib/chroma/authority.pem",
            "/var/lib/chroma/authority.srl",
            "/var/lib/chroma/manager.crt",
            "/var/lib/chroma/manager.pem"
        ]
    );
    // What the runbook never saved is what the reinstall left.
    assert!(!sb.root.join("root/.ssh/id_dsa").exists());
    let settings =
        std::fs::read_to_string(sb.root.join("usr/share/chroma-manager/local_settings.py"))
            .unwrap();
    assert!(settings.contains("fresh install"), "{settings}");
    assert_eq!(sb.rows().unwrap(), rows_before, "same tables, same rows");
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(sb.root.join("var/lib/chroma/authority.crt"))
        .arg(sb.root.join("var/lib/chroma/manager.crt"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");

    let audit = on(&sb, &b, "audit", &[]);
    assert!(audit.code == 0 || audit.code == 2, "{audit:?}");
    audit.stdout_has(&format!(
        "the bundle is an import of the runbook backup {} (imported {}); its dump {}",
        imported.source,
        imported.time,
        manifest.database.as_ref().unwrap().file
    ));
    Imlrecover::new().arg("verify").arg(&b).run().code(0);
}

fn on(sb: &Sandbox, bundle: &Path, cmd: &str, extra: &[&str]) -> support::cli::Output {
    Imlrecover::new()
        .args([cmd, "-r", PLAN, "--root"])
        .arg(&sb.root)
        .args(sb.var_args())
        .arg("--bundle")
        .arg(bundle)
        .args(extra)
        .run()
}

// ---- Reports: directories as the runbook's commands make them ----------

/// The SQL of a real `pg_dumpall --clean` of a seeded cluster (made once).
fn dump_sql() -> &'static [u8] {
    static SQL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let cluster = support::pg::seeded(support::pg::SEED_A);
        let mut gz = Vec::new();
        pg::dump_all(&cluster.target(), &mut gz, |_| {}).expect("pg_dumpall");
        let mut sql = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut sql)
            .expect("gunzip");
        sql
    })
}

/// `| /bin/gzip`
fn gzip(sql: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, sql).unwrap();
    e.finish().unwrap()
}

/// The name cron gives a dump taken `ago` (TZ=UTC).
fn dump_name(ago: std::time::Duration) -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now() - ago).to_string();
    format!(
        "pgbackup-{}.sql.gz",
        t.trim_end_matches('Z').replacen('T', "-", 1)
    )
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// `$HOME/backup` of the fixture host (fixtures/host-el6) as the runbook's
/// file commands make it (the dump is the test's to add).
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
    home.join("backup")
}

fn import(dir: &Path, out: &Path, extra: &[&str]) -> support::cli::Output {
    Imlrecover::new()
        .arg("import")
        .arg(dir)
        .args(["-r", PLAN, "--bundle-dir"])
        .arg(out)
        .args(extra)
        .env("TZ", "UTC")
        .run()
}

/// The report with the machine's parts replaced: the directory by BACKUP,
/// the server version by V.
fn normalized(out: &str, dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap().display().to_string();
    out.replace(&dir, "BACKUP")
        .lines()
        .map(|l| match l.find(", PostgreSQL ") {
            Some(i) => format!("{}, PostgreSQL V", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of one section of the report: its heading to the blank line.
fn section(report: &str, heading: &str) -> String {
    report
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn of_several_dumps_the_newest_complete_one_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let sql = dump_sql();
    let whole = gzip(sql);
    let marker = b"--\n-- PostgreSQL database cluster dump complete";
    let cut = sql
        .windows(marker.len())
        .rposition(|w| w == marker)
        .unwrap();
    let names = [
        dump_name(72 * HOUR),
        dump_name(48 * HOUR),
        dump_name(HOUR),
        dump_name(HOUR / 2),
    ];
    std::fs::write(dir.join(&names[0]), &whole).unwrap();
    std::fs::write(dir.join(&names[1]), &whole).unwrap();
    // The disk filled up while gzip wrote it.
    std::fs::write(dir.join(&names[2]), &whole[..whole.len() / 2]).unwrap();
    // pg_dumpall died; gzip still closed the file properly.
    std::fs::write(dir.join(&names[3]), gzip(&sql[..cut])).unwrap();
    let out = tmp.path().join("bundles");
    let run = import(&dir, &out, &[]);
    run.code(0);
    let report = normalized(&run.stdout, &dir);
    assert_eq!(
        section(&report, "Dumps"),
        format!(
            "Dumps (newest first):
  refused  {}  30 minutes old: it is not a complete pg_dumpall script: it does not end with pg_dumpall's `-- PostgreSQL database cluster dump complete` line (1033 lines read) (pg_dumpall stopped early; gzip still closed the file)
  refused  {}  1 hour old: its gzip stream ends early: a truncated copy, or the disk filled up while it was written
  taken    {}  2 days old; 376 rows in 6 tables (databases chroma, iml stats, postgres), PostgreSQL V
  older    {}  3 days old
  A runbook dump does not record its cluster's system_identifier: the plan restores it once, and the restore is then remembered.",
            names[3], names[2], names[1], names[0]
        )
    );
    let m = support::host::manifest(&out.join("latest"));
    let db = m.database.as_ref().unwrap();
    assert_eq!(db.file, names[1]);
    assert_eq!(db.blake3, blake3::hash(&whole).to_hex().to_string());
    assert_eq!(db.system_identifier, "unknown");
    let imported = m.imported.unwrap();
    assert_eq!(imported.dump.unwrap().parts, [names[1].clone()]);
    // The bundle is as old as its dump, not as the import.
    let stamp = &names[1]["pgbackup-".len().."pgbackup-".len() + 19];
    assert_eq!(m.created, format!("{}T{}Z", &stamp[..10], &stamp[11..]));
    Imlrecover::new()
        .arg("verify")
        .arg(out.join("latest"))
        .run()
        .code(0);

    // --dump takes an older one; a refused one is refused with its reason.
    let run = import(&dir, &out, &["--dump", &names[0], "--dry-run"]);
    run.code(0)
        .stdout_has(&format!("  taken    {}  3 days old", names[0]));
    let run = import(&dir, &out, &["--dump", &names[2]]);
    run.code(1).stderr_has(&format!(
        "--dump {} is refused: its gzip stream ends early",
        names[2]
    ));
}

#[test]
fn a_split_dump_is_joined_in_order_and_a_gap_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let whole = gzip(dump_sql());
    let name = dump_name(5 * HOUR);
    // `… | gzip | split -b N - pgbackup-….sql.gz.`
    let n = whole.len() / 3 + 1;
    for (i, part) in whole.chunks(n).enumerate() {
        let suffix = ["aa", "ab", "ac"][i];
        std::fs::write(dir.join(format!("{name}.{suffix}")), part).unwrap();
    }
    let out = tmp.path().join("bundles");
    let run = import(&dir, &out, &[]);
    run.code(0);
    assert_eq!(
        section(&normalized(&run.stdout, &dir), "Dumps"),
        format!(
            "Dumps (newest first):
  taken    {name}  5 hours old in 3 parts (aa, ab, ac); 376 rows in 6 tables (databases chroma, iml stats, postgres), PostgreSQL V
  A runbook dump does not record its cluster's system_identifier: the plan restores it once, and the restore is then remembered."
        )
    );
    let bundle = out.join("latest");
    assert_eq!(
        std::fs::read(bundle.join(&name)).unwrap(),
        whole,
        "joined in order"
    );
    let m = support::host::manifest(&bundle);
    assert_eq!(
        m.imported.unwrap().dump.unwrap().parts,
        ["aa", "ab", "ac"].map(|s| format!("{name}.{s}"))
    );

    std::fs::remove_file(dir.join(format!("{name}.ab"))).unwrap();
    let run = import(&dir, &tmp.path().join("other"), &[]);
    run.code(1);
    run.stdout_has(&format!(
        "  refused  {name}  5 hours old in 2 parts (aa, ac): its split parts do not join: part .ab is missing (found .ac)"
    ));
    run.stderr_has("none of the 1 dumps in");
    assert!(!tmp.path().join("other").exists(), "nothing written");
}

#[test]
fn a_dump_that_is_not_gzip_is_refused_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let name = dump_name(HOUR);
    std::fs::write(dir.join(&name), dump_sql()).unwrap();
    let out = tmp.path().join("bundles");
    let run = import(&dir, &out, &[]);
    run.code(1);
    run.stdout_has(&format!(
        "  refused  {name}  1 hour old: it is not gzip (it starts with 2d 2d, not 1f 8b): not what `pg_dumpall --clean | gzip` writes"
    ));
    run.stderr_has("cannot import").stderr_has(&format!(
        "none of the 1 dumps in {} is complete",
        dir.canonicalize().unwrap().display()
    ));
    assert!(!out.exists());
}

#[test]
fn missing_resources_and_extra_files_are_reported_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let name = dump_name(26 * HOUR);
    std::fs::write(dir.join(&name), gzip(dump_sql())).unwrap();
    std::fs::remove_file(dir.join("etc/ntp.conf")).unwrap();
    std::fs::remove_file(dir.join("var/lib/chroma/manager.pem")).unwrap();
    std::fs::write(dir.join("etc/motd.bak"), "old motd\n").unwrap();
    std::fs::write(
        dir.join("etc/sysconfig/ifcfg-eth0~"),
        "an editor's backup\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "restore notes\n").unwrap();
    // A site that saved known_hosts the way the runbook saves the rest.
    std::fs::write(dir.join("root/.ssh/known_hosts"), "oss1 ssh-rsa AAAA\n").unwrap();
    let out = tmp.path().join("bundles");
    let run = import(&dir, &out, &["--dry-run"]);
    run.code(0);
    assert!(!out.exists(), "--dry-run writes nothing");
    assert_eq!(
        normalized(&run.stdout, &dir),
        format!(
            "Runbook backup BACKUP for the recipe plans/iml-manager.hcl

Found (16 resources):
  file.network             /etc/sysconfig/network <- etc/sysconfig/network  0644 root:root (kept by cp -a)
  files.ifcfg              /etc/sysconfig/network-scripts/ifcfg-eth0 <- etc/sysconfig/ifcfg-eth0  0644 root:root (kept by cp -a)
                           /etc/sysconfig/network-scripts/ifcfg-eth0~ <- etc/sysconfig/ifcfg-eth0~  0644 root:root (kept by cp -a)
                           /etc/sysconfig/network-scripts/ifcfg-eth1 <- etc/sysconfig/ifcfg-eth1  0644 root:root (kept by cp -a)
                           /etc/sysconfig/network-scripts/ifcfg-lo <- etc/sysconfig/ifcfg-lo  0644 root:root (kept by cp -a)
  file.hosts               /etc/hosts <- etc/hosts  0644 root:root (kept by cp -p)
  file.resolv_conf         /etc/resolv.conf <- etc/resolv.conf  0644 root:root (kept by cp -p)
  file.nsswitch_conf       /etc/nsswitch.conf <- etc/nsswitch.conf  0644 root:root (kept by cp -p)
  file.yum_conf            /etc/yum.conf <- etc/yum.conf  0644 root:root (default: plain cp keeps no owner)
  files.yum_repos          /etc/yum.repos.d/CentOS-Base.repo <- etc/CentOS-Base.repo  0644 root:root (kept by cp -a)
                           /etc/yum.repos.d/chroma.repo <- etc/chroma.repo  0644 root:root (kept by cp -a)
  file.passwd              /etc/passwd <- etc/passwd  0644 root:root (kept by cp -p)
  file.shadow              /etc/shadow <- etc/shadow  0644 root:root (kept by cp -p)
  file.group               /etc/group <- etc/group  0644 root:root (kept by cp -p)
  file.gshadow             /etc/gshadow <- etc/gshadow  0644 root:root (kept by cp -p)
  file.sudoers             /etc/sudoers <- etc/sudoers  0644 root:root (kept by cp -p)
  files.ssh_host_keys      /etc/ssh/ssh_host_rsa_key.pub <- etc/ssh/ssh_host_rsa_key.pub  0644 root:root (kept by cp -p)
  file.root_known_hosts    /root/.ssh/known_hosts <- root/.ssh/known_hosts  0644 root:root (as found: not a runbook location)
  cert.authority           /var/lib/chroma/authority.crt <- var/lib/chroma/authority.crt  0644 root:root (default: plain cp keeps no owner)
                           /var/lib/chroma/authority.pem <- var/lib/chroma/authority.pem  0600 root:root (default: plain cp keeps no owner)
                           /var/lib/chroma/authority.srl <- var/lib/chroma/authority.srl  0644 root:root (default: plain cp keeps no owner)
  database.chroma          {name} (see Dumps)

Lacking (5): not in the bundle; a plan leaves the live host's copies alone
  files.root_ssh_keys      /root/.ssh/id_rsa* (optional): the runbook's copy is not in the directory; looked for root/.ssh/id_rsa*
  files.root_ssh_dsa_keys  /root/.ssh/id_dsa* (optional): the runbook copies /root/.ssh/id_dsa* into etc/root/.ssh/, a directory its `mkdir` does not create, so its `cp` fails unless that directory was made by hand; looked for etc/root/.ssh/id_dsa*, root/.ssh/id_dsa*
  file.ntp_conf            /etc/ntp.conf: the runbook's copy is not in the directory; looked for etc/ntp.conf
  cert.manager             /var/lib/chroma/manager.pem: the runbook's copy is not in the directory; looked for var/lib/chroma/manager.pem; found, but not imported without it: var/lib/chroma/manager.crt
  file.local_settings      /usr/share/chroma-manager/local_settings.py: the runbook does not save it; looked for usr/share/chroma-manager/local_settings.py

Not named by the recipe (2): not imported
  etc/motd.bak
  notes.txt

Dumps (newest first):
  taken    {name}  1 day old; 376 rows in 6 tables (databases chroma, iml stats, postgres), PostgreSQL V
  A runbook dump does not record its cluster's system_identifier: the plan restores it once, and the restore is then remembered.

Dry run: nothing was written. Without --dry-run the bundle goes into {}.",
            out.display()
        )
    );
}

#[test]
fn plan_on_a_runbook_directory_says_how_to_import_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    let name = dump_name(HOUR);
    std::fs::write(dir.join(&name), gzip(dump_sql())).unwrap();
    let run = Imlrecover::new()
        .args(["plan", "-r", PLAN, "--root"])
        .arg(tmp.path().join("host"))
        .arg("--bundle")
        .arg(&dir)
        .run();
    run.code(1);
    let shown = dir.display();
    run.stderr_has(&format!(
        "{shown} is not a bundle but a runbook backup directory ($HOME/backup): the runbook's file copies and 1 pg_dumpall dump, the newest {name}"
    ))
    .stderr_has(&format!(
        "import it into a bundle first: `imlrecover import {shown} -r RECIPE --bundle-dir BUNDLES` (add --dry-run to see what it finds), then pass --bundle BUNDLES/latest"
    ));
    assert!(
        !run.stderr.contains("it has no manifest.json"),
        "{}",
        run.stderr
    );
}

#[test]
fn dsa_keys_are_taken_from_where_the_runbook_copies_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = runbook_dir(tmp.path());
    std::fs::write(dir.join(dump_name(HOUR)), gzip(dump_sql())).unwrap();
    // The runbook's `cp /root/.ssh/id_dsa* $HOME/backup/etc/root/.ssh/.`
    // works once someone made that directory by hand.
    write_mode(&dir.join("etc/root/.ssh/id_dsa"), "DSA PRIVATE\n", 0o644);
    write_mode(
        &dir.join("etc/root/.ssh/id_dsa.pub"),
        "ssh-dss AAAA\n",
        0o644,
    );
    let out = tmp.path().join("bundles");
    let run = import(&dir, &out, &[]);
    run.code(0).stdout_has(
        "  files.root_ssh_dsa_keys  /root/.ssh/id_dsa <- etc/root/.ssh/id_dsa  0600 root:root (default: plain cp keeps no owner)\n                           /root/.ssh/id_dsa.pub <- etc/root/.ssh/id_dsa.pub  0600 root:root (default: plain cp keeps no owner)\n",
    );
    let bundle = out.join("latest");
    assert_eq!(
        std::fs::read(bundle.join("files/root/.ssh/id_dsa")).unwrap(),
        b"DSA PRIVATE\n"
    );
    let m = support::host::manifest(&bundle);
    let e = m
        .entries
        .iter()
        .find(|e| e.path == "/root/.ssh/id_dsa")
        .unwrap();
    assert_eq!(
        (e.mode.unwrap().0, e.owner.as_deref()),
        (0o600, Some("root"))
    );
}
