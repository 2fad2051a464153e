//! `imlrecover import` of runbook directories made up here: which dump is
//! taken, split dumps, dumps that are not gzip, missing resources and extra
//! files reported before anything is written, `plan` on such a directory,
//! DSA keys where the runbook copies them.

use crate::import::{localize, run_sh, runbook_backup_commands, write_mode, PLAN};
use crate::support;

use imlrecover::host::postgres as pg;
use std::path::{Path, PathBuf};
use support::cli::{fixtures, Imlrecover};

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
