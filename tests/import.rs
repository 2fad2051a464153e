//! `imlrecover import`: a site's runbook backup directory made into a
//! bundle. The drill runs the runbook's own backup commands, extracted from
//! the runbook (fixtures/runbook/appendix-b.md) and run with `sh` on a
//! sandbox manager, imports the result, destroys the host and restores it
//! from the import. The report tests build directories as those commands
//! do, with a real pg_dumpall dump, and check the report line for line.

use crate::support;

use imlrecover::host::postgres as pg;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::cli::{fixtures, Imlrecover};
use support::manager::Manager;
pub(crate) use support::manager::PLAN;

/// The shell commands of the runbook's "Creating a Backup Manifest"
/// section, as written: every fenced block, one command per paragraph (the
/// runbook wraps long commands onto a second line).
pub(crate) fn runbook_backup_commands() -> Vec<String> {
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
pub(crate) fn localize(cmd: &str, home: &Path, root: &Path, pg_dumpall: &Path) -> String {
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
pub(crate) fn run_sh(cmd: &str, target: &pg::PgTarget) -> (i32, String) {
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

pub(crate) fn write_mode(path: &Path, text: &str, mode: u32) {
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
    let mut m = Manager::new();
    // What the runbook's optional steps save: root's keys (RSA and DSA) and
    // a host key.
    let r = &m.sb.root;
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
    let original = files_under(&m.sb.root);
    let rows_before = m.sb.rows().unwrap();

    // The runbook's backup, command by command, as root on the manager.
    let home = m.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pg_dumpall = pg::find_program(None, "pg_dumpall").unwrap();
    let commands = runbook_backup_commands();
    assert_eq!(commands.len(), 30, "{commands:#?}");
    let mut failed = Vec::new();
    for c in &commands {
        let (code, stderr) = run_sh(&localize(c, &home, &m.sb.root, &pg_dumpall), &m.sb.target());
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

    let bundles = m.tmp.path().join("imported");
    let import = Imlrecover::new()
        .args(["import"])
        .arg(&backup)
        .args(["-r", PLAN, "--bundle-dir"])
        .arg(&bundles)
        .args(m.sb.var_args())
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
    let before = on(&m, &b, "plan", &["--detailed-exitcode"]);
    before
        .code(2)
        .stdout_has("-/+ database.chroma (restore: bundle 2")
        .stdout_has("was imported from a runbook dump, which does not record its cluster's system_identifier, and was never restored into this cluster")
        .stdout_has("bundle cluster: system_identifier unknown (imported from a runbook dump)")
        .stdout_has("Plan: 1 to restore, 0 to create, 0 to update, 0 to remove, ");

    m.sb.disaster().unwrap();
    on(&m, &b, "plan", &["--detailed-exitcode"])
        .code(2)
        .stdout_has(
            "-/+ database.chroma (restore: database chroma does not exist on the live cluster)",
        );
    on(&m, &b, "apply", &["--auto-approve"])
        .code(0)
        .stdout_has("Apply complete!");
    on(&m, &b, "plan", &["--detailed-exitcode"])
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
    let restored = files_under(&m.sb.root);
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
    assert!(!m.sb.root.join("root/.ssh/id_dsa").exists());
    let settings =
        std::fs::read_to_string(m.sb.root.join("usr/share/chroma-manager/local_settings.py"))
            .unwrap();
    assert!(settings.contains("fresh install"), "{settings}");
    assert_eq!(m.sb.rows().unwrap(), rows_before, "same tables, same rows");
    let verify = m.verify_chain();
    assert!(verify.status.success(), "{verify:?}");

    let audit = on(&m, &b, "audit", &[]);
    assert!(audit.code == 0 || audit.code == 2, "{audit:?}");
    audit.stdout_has(&format!(
        "the bundle is an import of the runbook backup {} (imported {}); its dump {}",
        imported.source,
        imported.time,
        manifest.database.as_ref().unwrap().file
    ));
    Imlrecover::new().arg("verify").arg(&b).run().code(0);
}

/// `CMD` of `bundle` (the import) on the manager.
fn on(m: &Manager, bundle: &Path, cmd: &str, extra: &[&str]) -> support::cli::Output {
    m.cmd_on(Imlrecover::new(), cmd, bundle).args(extra).run()
}

// ---- Reports: directories as the runbook's commands make them ----------
