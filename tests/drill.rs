//! The whole runbook in one test, real parts only: a golden manager (files,
//! an openssl certificate chain, LSB services, a PostgreSQL cluster with a
//! seeded `chroma`), `backup`, a disaster (new OS, fresh cluster, IML gone),
//! `plan`, `apply`, and proof that everything came back.

mod support;

use imlrecover::sandbox::initd;
use imlrecover::sandbox::manager::{Sandbox, SERVICES, TABLES};
use support::cli::Imlrecover;

const PLAN: &str = "plans/iml-manager.hcl";

fn with_target(sb: &Sandbox, cmd: &str, extra: &[&str]) -> support::cli::Output {
    Imlrecover::new()
        .args([cmd, "-r", PLAN, "--root"])
        .arg(&sb.root)
        .args(sb.var_args())
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
        .run();
    out.code(0);
    let bundle = bundles.join("latest");

    // Before the disaster the host matches its bundle.
    let b = bundle.to_string_lossy().to_string();
    with_target(&sb, "plan", &["--bundle", &b, "--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");

    sb.disaster().unwrap();

    let plan = with_target(&sb, "plan", &["--bundle", &b, "--detailed-exitcode"]);
    plan.code(2);
    for expected in [
        "! exec.installer",
        "+ file.ntp_conf",
        "-/+ database.chroma",
        "database chroma does not exist on the live cluster",
        "! service.httpd",
        "not installed yet; exec.installer runs first",
        "start service.chroma_supervisor (desired state is running (after the database.chroma restore))",
    ] {
        plan.stdout_has(expected);
    }

    let apply = with_target(&sb, "apply", &["--bundle", &b, "--auto-approve"]);
    apply.code(0).stdout_has("Apply complete!");

    with_target(&sb, "plan", &["--bundle", &b, "--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes. The host matches the recipe.");

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
        assert_eq!(
            initd::actions(&sb.root, s).last().map(String::as_str),
            Some("start")
        );
    }
    assert!(!sb.root.join("var/log/chroma/client_errors.log").exists());
}
