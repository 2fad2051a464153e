//! The whole runbook in one test, real parts only: a golden manager (files,
//! an openssl certificate chain, LSB services, a PostgreSQL cluster with a
//! seeded `chroma`), `backup`, a disaster (new OS, fresh cluster, IML gone),
//! `plan`, `apply`, and proof that everything came back, down to the
//! runbook's last step: three storage servers (real sshd on 127.0.0.2-4)
//! whose `chroma-agent` is restarted exactly once, over SSH, by `apply`.

use crate::support;

use imlrecover::sandbox::initd;
use imlrecover::sandbox::manager::{SERVICES, TABLES};
use support::manager::Manager;
use support::sshd::{fleet, Agents};

/// `SUB` of the manager's bundle, with the storage servers' `--var`s.
fn with_target(m: &Manager, agents: &Agents, cmd: &str, extra: &[&str]) -> support::cli::Output {
    m.cmd(cmd).args(agents.var_args()).args(extra).run()
}

fn read(m: &Manager, path: &str) -> Vec<u8> {
    std::fs::read(m.path(path)).unwrap_or_default()
}

#[test]
fn disaster_drill_restores_the_manager() {
    let mut m = Manager::new();
    // The storage servers, and root's key and known_hosts for them on the
    // manager (part of the host: files.root_ssh_keys captures id_rsa*).
    let (_fleet_dir, agents) = fleet(3);
    agents
        .install_client(&m.sb.root)
        .expect("root's SSH client files");
    let rows_before = m.sb.rows().unwrap();
    assert_eq!(rows_before.len(), TABLES.len());
    let certs = [
        "var/lib/chroma/authority.crt",
        "var/lib/chroma/authority.pem",
        "var/lib/chroma/authority.srl",
        "var/lib/chroma/manager.crt",
        "var/lib/chroma/manager.pem",
    ];
    let certs_before: Vec<Vec<u8>> = certs.iter().map(|c| read(&m, c)).collect();
    let ntp_before = read(&m, "etc/ntp.conf");

    m.backup_with(&agents.var_args());

    // Before the disaster the host matches its bundle.
    with_target(&m, &agents, "plan", &["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");
    assert_eq!(
        agents.restart_counts(),
        [0, 0, 0],
        "a clean plan leaves the agents alone"
    );

    m.sb.disaster().unwrap();
    // The recipe, like the runbook, keeps root's key but not its
    // known_hosts: the administrator records the storage servers' host keys
    // again on the rebuilt manager. The key itself comes from the bundle.
    agents.install_known_hosts(&m.sb.root).expect("known_hosts");
    assert!(!m.sb.root.join("root/.ssh/id_rsa").exists());

    let plan = with_target(&m, &agents, "plan", &["--detailed-exitcode"]);
    plan.code(2);
    for expected in [
        "! exec.installer",
        "+ file.ntp_conf",
        "-/+ database.chroma",
        "database chroma does not exist on the live cluster",
        "! service.httpd",
        "not installed yet; exec.installer runs first",
        "start service.chroma_supervisor (desired state is running, after the database.chroma restore)",
        // The installer starts what it installs: the quiesce still stops it
        // before the restore, and ntpd is restarted for the bundle's ntp.conf.
        "stop service.httpd (quiesce for the database.chroma restore)",
        "restart service.ntpd (because file.ntp_conf changed; it was not running when planned)",
        "! remote_service.chroma_agent (run: restart chroma-agent on 3 hosts because files.root_ssh_keys, database.chroma, service.chroma_supervisor and ",
        "/root/.ssh/id_rsa is missing now; files.root_ssh_keys restores it earlier in this run",
    ] {
        plan.stdout_has(expected);
    }
    assert_eq!(
        agents.restart_counts(),
        [0, 0, 0],
        "planning never acts on the agents"
    );

    let apply = with_target(&m, &agents, "apply", &["--auto-approve"]);
    apply
        .code(0)
        .stdout_has("Apply complete!")
        .stdout_has("remote remote_service.chroma_agent: restart chroma-agent on 3 of 3 hosts");
    for (i, host) in agents.hosts().iter().enumerate() {
        apply.stdout_has(&format!("{host}  ok"));
        assert_eq!(
            agents.actions(i),
            [format!("restart oss{}", i + 1)],
            "{host}"
        );
    }
    assert_eq!(
        agents.restart_counts(),
        [1, 1, 1],
        "each agent restarted exactly once"
    );

    with_target(&m, &agents, "plan", &["--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");
    assert_eq!(agents.restart_counts(), [1, 1, 1]);

    assert_eq!(m.sb.rows().unwrap(), rows_before, "same tables, same rows");
    let certs_after: Vec<Vec<u8>> = certs.iter().map(|c| read(&m, c)).collect();
    assert_eq!(
        certs_after, certs_before,
        "the certificates are the originals, byte for byte"
    );
    assert_eq!(read(&m, "etc/ntp.conf"), ntp_before);
    let verify = m.verify_chain();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    for s in SERVICES {
        let status = std::process::Command::new(m.sb.root.join("etc/init.d").join(s))
            .arg("status")
            .output()
            .unwrap()
            .status;
        assert!(status.success(), "{s} runs after the restore");
        // Since the disaster: the installer's start, then ours.
        let expected: &[&str] = match s {
            "postgresql" => &["start"],
            _ => &["start", "stop", "start"],
        };
        assert_eq!(initd::actions(&m.sb.root, s), expected, "{s}");
    }
    assert!(!m.sb.root.join("var/log/chroma/client_errors.log").exists());
}
