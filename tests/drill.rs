//! The whole runbook in one test, real parts only: a golden manager (files,
//! an openssl certificate chain, LSB services, a PostgreSQL cluster with a
//! seeded `chroma`), `backup`, a disaster (new OS, fresh cluster, IML gone),
//! `plan`, `apply`, and proof that everything came back, down to the
//! runbook's last step: three storage servers (real sshd on 127.0.0.2-4)
//! whose `chroma-agent` is restarted exactly once, over SSH, by `apply`.

use crate::support;

use imlrecover::sandbox::initd;
use imlrecover::sandbox::manager::{Sandbox, SERVICES, TABLES};
use support::cli::Imlrecover;
use support::sshd::{fleet, Agents};

const PLAN: &str = "plans/iml-manager.hcl";

fn with_target(sb: &Sandbox, agents: &Agents, cmd: &str, extra: &[&str]) -> support::cli::Output {
    Imlrecover::new()
        .args([cmd, "-r", PLAN, "--root"])
        .arg(&sb.root)
        .args(sb.var_args())
        .args(agents.var_args())
        .args(extra)
        .run()
}

fn read(sb: &Sandbox, path: &str) -> Vec<u8> {
    std::fs::read(sb.root.join(path.trim_start_matches('/'))).unwrap_or_default()
}

#[test]
fn disaster_drill_restores_the_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::golden(tmp.path()).expect("golden manager");
    // The storage servers, and root's key and known_hosts for them on the
    // manager (part of the host: files.root_ssh_keys captures id_rsa*).
    let (_fleet_dir, agents) = fleet(3);
    agents
        .install_client(&sb.root)
        .expect("root's SSH client files");
    let rows_before = sb.rows().unwrap();
    assert_eq!(rows_before.len(), TABLES.len());
    let certs = [
        "var/lib/chroma/authority.crt",
        "var/lib/chroma/authority.pem",
        "var/lib/chroma/authority.srl",
        "var/lib/chroma/manager.crt",
        "var/lib/chroma/manager.pem",
    ];
    let certs_before: Vec<Vec<u8>> = certs.iter().map(|c| read(&sb, c)).collect();
    let ntp_before = read(&sb, "etc/ntp.conf");

    let bundles = sb.bundles.clone();
    let out = Imlrecover::new()
        .args(["backup", "-r", PLAN, "--root"])
        .arg(&sb.root)
        .arg("--bundle-dir")
        .arg(&bundles)
        .args(sb.var_args())
        .args(agents.var_args())
        .run();
    out.code(0);
    let bundle = bundles.join("latest");

    // Before the disaster the host matches its bundle.
    let b = bundle.to_string_lossy().to_string();
    with_target(
        &sb,
        &agents,
        "plan",
        &["--bundle", &b, "--detailed-exitcode"],
    )
    .code(0)
    .stdout_has("No changes. The host matches the recipe.");
    assert_eq!(
        agents.restart_counts(),
        [0, 0, 0],
        "a clean plan leaves the agents alone"
    );

    sb.disaster().unwrap();
    // The recipe, like the runbook, keeps root's key but not its
    // known_hosts: the administrator records the storage servers' host keys
    // again on the rebuilt manager. The key itself comes from the bundle.
    agents.install_known_hosts(&sb.root).expect("known_hosts");
    assert!(!sb.root.join("root/.ssh/id_rsa").exists());

    let plan = with_target(
        &sb,
        &agents,
        "plan",
        &["--bundle", &b, "--detailed-exitcode"],
    );
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

    let apply = with_target(&sb, &agents, "apply", &["--bundle", &b, "--auto-approve"]);
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

    with_target(
        &sb,
        &agents,
        "plan",
        &["--bundle", &b, "--detailed-exitcode"],
    )
    .code(0)
    .stdout_has("No changes. The host matches the recipe.");
    assert_eq!(agents.restart_counts(), [1, 1, 1]);

    assert_eq!(sb.rows().unwrap(), rows_before, "same tables, same rows");
    let certs_after: Vec<Vec<u8>> = certs.iter().map(|c| read(&sb, c)).collect();
    assert_eq!(
        certs_after, certs_before,
        "the certificates are the originals, byte for byte"
    );
    assert_eq!(read(&sb, "etc/ntp.conf"), ntp_before);
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(sb.root.join("var/lib/chroma/authority.crt"))
        .arg(sb.root.join("var/lib/chroma/manager.crt"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    for s in SERVICES {
        let status = std::process::Command::new(sb.root.join("etc/init.d").join(s))
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
        assert_eq!(initd::actions(&sb.root, s), expected, "{s}");
    }
    assert!(!sb.root.join("var/log/chroma/client_errors.log").exists());
}
