//! Monitoring the tools sites already run: `audit --format nagios` (status
//! line, perfdata, plugin exit codes), and `--metrics-file` checked by the
//! real `promtool` and scraped from a real node_exporter on loopback, and
//! the README's Prometheus alert rule run through `promtool test rules`.

use crate::support;

use imlrecover::sandbox::certs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::cli::Imlrecover;
use support::host::Host;
use support::monitor::{audit, backup, nagios, promtool_check, recipe, value};
use support::sftp::SftpServer;

/// The manager certificate re-signed by the host's authority for `days`.
fn resign_manager(host: &Host, days: &str) {
    certs::resign_manager(&host.file("/var/lib/chroma"), "/CN=iml-mgr", days)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn nagios_ok_warning_critical_and_unknown() {
    let host = Host::new();
    backup(&host, &[]).code(0);

    let ok = nagios(&host, &[]);
    ok.code(0)
        .stdout_has("IMLRECOVER OK - ")
        .stdout_has("checks passed; bundle ");
    let perf = ok
        .stdout
        .split(" | ")
        .nth(1)
        .expect("perfdata")
        .trim()
        .to_string();
    assert!(perf.starts_with("backup_age="), "{perf}");
    assert!(
        perf.contains("s;86400;172800 drift=0 certs_min_days="),
        "{perf}"
    );
    assert!(perf.ends_with(";30;7 drill_age=U"), "{perf}");

    // Drift is a WARNING, named in the line.
    std::fs::write(host.file("/etc/ntp.conf"), "server 127.127.1.0\n").unwrap();
    nagios(&host, &[])
        .code(1)
        .stdout_has("IMLRECOVER WARNING - 1 finding (1 drift): file.ntp_conf: update: ")
        .stdout_has(" drift=1 ");
    backup(&host, &[]).code(0);

    // Older than --max-age: WARNING; older than --critical-age: CRITICAL.
    std::thread::sleep(Duration::from_millis(2100));
    nagios(&host, &["--max-age", "1s", "--critical-age", "1h"])
        .code(1)
        .stdout_has("IMLRECOVER WARNING - 1 finding (1 backup): age: the bundle is ")
        .stdout_has(";1;3600 drift=0");
    nagios(&host, &["--max-age", "1s", "--critical-age", "1s"])
        .code(2)
        .stdout_has("IMLRECOVER CRITICAL - 1 finding (1 backup): age: ");

    // A certificate within --cert-min-days is a WARNING, within
    // --cert-critical-days CRITICAL; the perfdata has the days left.
    resign_manager(&host, "5");
    let crit = nagios(&host, &[]);
    crit.code(2)
        .stdout_has("IMLRECOVER CRITICAL - ")
        .stdout_has("cert.manager expiry: expires in ");
    assert!(
        crit.stdout.contains(" certs_min_days=4;30;7 ")
            || crit.stdout.contains(" certs_min_days=5;30;7 "),
        "{}",
        crit.stdout
    );
    nagios(&host, &["--cert-critical-days", "3"])
        .code(1)
        .stdout_has("IMLRECOVER WARNING - ");

    // A damaged bundle is CRITICAL.
    let latest = host.latest();
    std::fs::write(latest.join("files/etc/hosts"), "tampered").unwrap();
    nagios(&host, &["--cert-critical-days", "3"])
        .code(2)
        .stdout_has("IMLRECOVER CRITICAL - ")
        .stdout_has("integrity files/etc/hosts");

    // An error of imlrecover is UNKNOWN (3), never OK or CRITICAL.
    let missing = Imlrecover::new()
        .args([
            "audit",
            "--format",
            "nagios",
            "-r",
            "/nonexistent/recipe.hcl",
            "--bundle",
        ])
        .arg(&host.bundles)
        .run();
    missing
        .code(3)
        .stdout_has("IMLRECOVER UNKNOWN - ")
        .stdout_has("/nonexistent/recipe.hcl");
    assert_eq!(missing.stdout.lines().count(), 1, "{}", missing.stdout);
    audit(&host, &["--format", "nagios", "--bundle-typo", "x"])
        .code(3)
        .stdout_has("IMLRECOVER UNKNOWN - unexpected argument '--bundle-typo'");
    audit(&host, &["--format=nagios", "--max-age", "soon"])
        .code(3)
        .stdout_has("IMLRECOVER UNKNOWN - ");
    // Other formats keep exit 1 for errors.
    audit(&host, &["--format", "json", "--max-age", "soon"]).code(1);
}

/// node_exporter with only the textfile collector, on a free loopback port.
struct NodeExporter {
    child: Child,
    port: u16,
}

impl NodeExporter {
    fn start(dir: &Path) -> NodeExporter {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (Debian package prometheus-node-exporter)");
        NodeExporter { child, port }
    }

    fn scrape(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut body = String::new();
                if s.read_to_string(&mut body).is_ok() && body.starts_with("HTTP/1.0 200") {
                    return body;
                }
            }
            assert!(Instant::now() < deadline, "node_exporter did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn metrics_files_pass_promtool_and_node_exporter_scrapes_them() {
    let host = Host::new();
    let textfiles = host.tmp.path().join("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    let prom = textfiles.join("imlrecover.prom");
    let m = ["--metrics-file", prom.to_str().unwrap()];

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    backup(&host, &m).code(0);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(value(&text, "imlrecover_backup_last_success_timestamp_seconds") >= before);
    assert_eq!(value(&text, "imlrecover_backup_success"), 1.0);
    assert!(value(&text, "imlrecover_backup_files") >= 20.0, "{text}");
    assert!(value(&text, "imlrecover_backup_bytes") > 0.0);
    promtool_check(&prom);

    // Every command adds its own families to the same file.
    Imlrecover::new()
        .arg("verify")
        .arg(host.latest())
        .args(m)
        .run()
        .code(0);
    audit(&host, &m).code(0);
    let apply = Imlrecover::new()
        .args(["apply", "--auto-approve", "-r"])
        .arg(recipe())
        .arg("--root")
        .arg(&host.root)
        .arg("--bundle")
        .arg(&host.bundles)
        .args(m)
        .run();
    apply.code(0);
    let server = SftpServer::start();
    Imlrecover::new()
        .arg("push")
        .arg(host.latest())
        .arg(server.url(&host.tmp.path().join("remote")))
        .args(server.ssh_args())
        .args(m)
        .run()
        .code(0);
    // A failing run says so, and keeps the last success's time.
    let good = value(
        &std::fs::read_to_string(&prom).unwrap(),
        "imlrecover_verify_last_success_timestamp_seconds",
    );
    Imlrecover::new()
        .arg("verify")
        .arg(host.tmp.path().join("no-such-bundle"))
        .args(m)
        .run()
        .code(1);

    let text = std::fs::read_to_string(&prom).unwrap();
    promtool_check(&prom);
    for cmd in ["backup", "verify", "audit", "apply", "push"] {
        assert!(
            value(
                &text,
                &format!("imlrecover_{cmd}_last_success_timestamp_seconds")
            ) >= before,
            "{cmd}"
        );
        assert!(
            value(&text, &format!("imlrecover_{cmd}_duration_seconds")) >= 0.0,
            "{cmd}"
        );
    }
    assert_eq!(value(&text, "imlrecover_verify_success"), 0.0);
    assert_eq!(
        value(&text, "imlrecover_verify_last_success_timestamp_seconds"),
        good
    );
    assert!(value(&text, "imlrecover_push_bytes") > 0.0);
    assert!(
        text.contains("imlrecover_audit_findings{kind=\"drift\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("imlrecover_certificate_expiry_timestamp_seconds{address=\"cert.manager\",path=\"/var/lib/chroma/manager.crt\"} "), "{text}");
    assert!(text.contains("# TYPE imlrecover_backup_bytes gauge\n"));
    assert!(!text.contains(" counter"), "gauges only");
    // No sample timestamps: every sample line is `name[{labels}] value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let after_labels = line.rsplit_once('}').map_or(line, |(_, rest)| rest);
        assert_eq!(
            after_labels.split_whitespace().count(),
            if line.contains('}') { 1 } else { 2 },
            "{line}"
        );
    }
    // Only the file itself: the temporary files were renamed into place.
    assert_eq!(std::fs::read_dir(&textfiles).unwrap().count(), 1);

    let exporter = NodeExporter::start(&textfiles);
    let scraped = exporter.scrape();
    assert!(
        scraped.contains("\nnode_textfile_scrape_error 0\n"),
        "{scraped}"
    );
    assert!(
        scraped.contains("\nimlrecover_backup_last_success_timestamp_seconds "),
        "{scraped}"
    );
    assert!(
        scraped.contains("\nimlrecover_audit_findings{kind=\"unmanaged\"} 0\n"),
        "{scraped}"
    );
    assert!(
        scraped.contains("\nimlrecover_push_success 1\n"),
        "{scraped}"
    );

    // A directory that does not exist is refused before the backup runs.
    let bundles_before = host.bundle_names();
    backup(
        &host,
        &["--metrics-file", "/nonexistent-dir/imlrecover.prom"],
    )
    .code(1)
    .stderr_has("/nonexistent-dir");
    assert_eq!(host.bundle_names(), bundles_before);
}

#[test]
fn the_readme_alert_rule_fires_for_a_backup_older_than_26_hours() {
    let readme = std::fs::read_to_string(support::cli::repo().join("README.md")).unwrap();
    let start = readme
        .find("```yaml\ngroups:")
        .expect("the README's alert rule");
    let rest = &readme[start + "```yaml\n".len()..];
    let rules = &rest[..rest.find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    // A backup that last succeeded at t=0: quiet at 25h, firing at 27h.
    std::fs::write(
        dir.path().join("test.yml"),
        r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'imlrecover_backup_last_success_timestamp_seconds{instance="mgr"}'
        values: '0x1700'
    alert_rule_test:
      - eval_time: 25h
        alertname: IMLRecoverBackupTooOld
        exp_alerts: []
      - eval_time: 27h
        alertname: IMLRecoverBackupTooOld
        exp_alerts:
          - exp_labels: {severity: critical, instance: mgr}
            exp_annotations:
              summary: "imlrecover: no successful backup of mgr for more than 26 hours"
      - eval_time: 27h
        alertname: IMLRecoverBackupMetricsMissing
        exp_alerts: []
"#,
    )
    .unwrap();
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
