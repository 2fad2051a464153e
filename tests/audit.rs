//! `imlrecover audit` against the fixture EL6 host under a temporary
//! --root: one test per finding type, per output format and per exit code.
//! Certificates are made with the real `openssl` command, JUnit output is
//! checked with a real XML parser (`xmllint`), the database case uses a
//! real throwaway PostgreSQL cluster.

use crate::support;

use imlrecover::sandbox::certs;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::chroma::ChromaCluster;
use support::cli::{fixtures, Imlrecover, Output};
use support::host::Host;

fn recipe() -> PathBuf {
    fixtures().join("audit/el6-files.hcl")
}

fn audit(host: &Host, extra: &[&str]) -> Output {
    host.audit(&recipe(), extra)
}

/// A host with a fresh bundle made from the audit recipe.
fn backed_up() -> Host {
    let host = Host::new();
    host.backup(&recipe());
    host
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.stdout))
}

/// The failing findings of a JSON report.
fn failures(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["status"] == "fail")
        .cloned()
        .collect()
}

/// A new EC key at `dir/name`.
fn new_key(dir: &Path, name: &str) {
    certs::new_key(dir, name).unwrap_or_else(|e| panic!("{e}"));
}

/// Replaces the host's manager certificate and key with a new pair signed
/// by the host's own authority, as IML does (`-CAcreateserial`).
fn resign_manager(host: &Host, days: &str) {
    certs::resign_manager(
        &host.file("/var/lib/chroma"),
        "/CN=iml-mgr.lustre.example",
        days,
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn clean_host_exits_0() {
    let host = backed_up();
    let out = audit(&host, &[]);
    out.code(0)
        .stdout_has("Audit: clean (")
        .stdout_has("ok   20 of 20 resources match")
        .stdout_has("ok   integrity:")
        .stdout_has("ok   cert.manager chain: verifies against cert.authority");
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    assert!(
        !out.stdout.contains('\x1b'),
        "colour while piped with NO_COLOR:\n{}",
        out.stdout
    );

    // A clean JUnit report: valid, every testcase passing.
    let xml = audit(&host, &["--format", "junit"]);
    xml.code(0);
    let file = host.tmp.path().join("clean.xml");
    std::fs::write(&file, &xml.stdout).expect("write xml");
    xmllint(&file, &["--noout"]);
    assert_eq!(xpath(&file, "count(//failure)"), "0");
    assert_eq!(xpath(&file, "count(/testsuites/testsuite)"), "4");
    // JSON agrees.
    let v = json(&audit(&host, &["--format", "json"]));
    assert_eq!(v["summary"]["findings"], 0);
    assert!(failures(&v).is_empty());
}

#[test]
fn content_drift_is_a_finding() {
    let host = backed_up();
    std::fs::write(host.file("/etc/ntp.conf"), "server 127.127.1.0\n").expect("write");
    std::fs::write(host.file("/etc/hosts"), "").expect("write");
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL ~ file.ntp_conf")
        .stdout_has("update: /etc/ntp.conf differs from the bundle")
        .stdout_has("FAIL ~ file.hosts")
        .stdout_has("ok   18 of 20 resources match")
        .stdout_has("Audit: 2 findings (2 drift).");

    let v = json(&audit(&host, &["--format", "json"]));
    let ntp = failures(&v)
        .into_iter()
        .find(|f| f["address"] == "file.ntp_conf")
        .expect("ntp finding");
    assert_eq!(ntp["suite"], "drift");
    assert_eq!(ntp["check"], "drift");
    assert_eq!(ntp["action"], "update");
    // The diff is there for a non-sensitive text file, live → bundle.
    let diff = ntp["diff"].as_str().expect("diff");
    assert!(diff.contains("-server 127.127.1.0"), "{diff}");
}

#[test]
fn a_file_that_must_be_absent_is_drift() {
    let host = backed_up();
    let log = host.file("/var/log/chroma/client_errors.log");
    std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    std::fs::write(&log, "stale\n").expect("write");
    audit(&host, &[])
        .code(2)
        .stdout_has("FAIL - absent.client_errors_log")
        .stdout_has("Audit: 1 finding (1 drift).");
}

#[test]
fn stale_bundle_is_a_finding() {
    let host = backed_up();
    // The manifest's `created` has whole seconds: 2 s later the bundle is
    // at least 2 s old, whatever the sub-second part was.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = audit(&host, &["--max-age", "1s"]);
    out.code(2)
        .stdout_has("FAIL age: the bundle is ")
        .stdout_has("older than --max-age 1s: is the scheduled `imlrecover backup` running?")
        .stdout_has("Audit: 1 finding (1 backup).");
    // The same bundle is fine under the default 24h.
    audit(&host, &[]).code(0);
}

#[test]
fn tampered_bundle_fails_integrity() {
    let host = backed_up();
    let copy = host.latest().join("files/etc/hosts");
    let mut text = std::fs::read_to_string(&copy).expect("read");
    text.push_str("10.9.9.9 evil\n");
    std::fs::write(&copy, text).expect("write");
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL integrity files/etc/hosts: modified:")
        .stdout_has("Audit: 1 finding (1 backup).");

    let v = json(&audit(&host, &["--format", "json"]));
    let f = &failures(&v)[0];
    assert_eq!(f["check"], "backup.integrity");
    assert_eq!(f["path"], "files/etc/hosts");
    assert_eq!(f["address"], "file.hosts");
}

#[test]
fn bundle_from_another_recipe_is_a_finding() {
    let host = Host::new();
    host.backup(&fixtures().join("audit/other.hcl"));
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL recipe: the bundle was made from another recipe")
        .stdout_has("not in the bundle: file.network, files.ifcfg,")
        .stdout_has("run `imlrecover backup` with this recipe")
        // A set the bundle lacks is one finding, not one per file.
        .stdout_has("FAIL files.ifcfg: bundle ")
        .stdout_has(
            "does not hold this set: 3 files matching /etc/sysconfig/network-scripts/ifcfg-*",
        );
    assert!(!out.stdout.contains("ifcfg-eth0"), "{}", out.stdout);
}

#[test]
fn certificate_expiring_soon_is_a_finding() {
    let host = Host::new();
    resign_manager(&host, "5");
    host.backup(&recipe());
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL cert.manager expiry: expires in ")
        .stdout_has("within --cert-min-days 30: renew it")
        .stdout_has("ok   cert.manager key:")
        .stdout_has("ok   cert.manager chain:")
        .stdout_has("Audit: 1 finding (1 certificate).");
    // Within a 3-day window it is fine.
    audit(&host, &["--cert-min-days", "3"])
        .code(0)
        .stdout_has("Audit: clean");
}

#[test]
fn key_that_does_not_match_is_a_finding() {
    let host = backed_up();
    new_key(&host.file("/var/lib/chroma"), "manager.pem");
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL cert.manager key: /var/lib/chroma/manager.pem is not the private key of /var/lib/chroma/manager.crt")
        .stdout_has("ok   cert.manager expiry:")
        // The live key also differs from the bundle's: a restore puts it back.
        .stdout_has("FAIL -/+ cert.manager")
        .stdout_has("Audit: 2 findings (1 drift, 1 certificate).");
}

#[test]
fn manager_not_signed_by_the_authority_is_a_finding() {
    let host = Host::new();
    certs::self_signed_manager(
        &host.file("/var/lib/chroma"),
        "/CN=iml-mgr.lustre.example",
        "365",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    host.backup(&recipe());
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL cert.manager chain: does not verify against cert.authority (/var/lib/chroma/authority.crt)")
        .stdout_has("ok   cert.manager key:");
    let v = json(&audit(&host, &["--format", "json"]));
    let chain = failures(&v)
        .into_iter()
        .find(|f| f["check"] == "certificate.chain")
        .expect("chain finding");
    assert_eq!(chain["address"], "cert.manager");
    assert_eq!(chain["path"], "/var/lib/chroma/manager.crt");
}

#[test]
fn unmanaged_files_are_findings() {
    let host = backed_up();
    std::fs::write(host.file("/var/lib/chroma/settings.override"), "x\n").expect("write");
    std::fs::write(host.file("/etc/yum.repos.d/epel.repo"), "[epel]\n").expect("write");
    // Subdirectories (the installer's repositories) are not walked.
    let repo = host.file("/var/lib/chroma/repo/el6");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("chroma-agent.rpm"), "rpm\n").expect("write");
    let out = audit(&host, &[]);
    out.code(2)
        .stdout_has("FAIL /var/lib/chroma/settings.override: not named by any resource: a restore would lose it")
        .stdout_has("FAIL files.yum_repos /etc/yum.repos.d/epel.repo: matches /etc/yum.repos.d/* but is not in bundle")
        .stdout_has("Audit: 2 findings (2 unmanaged).");
    // A new file is not drift: the plan leaves it alone.
    out.stdout_has("ok   20 of 20 resources match");
}

#[test]
fn json_is_versioned_and_complete() {
    let host = backed_up();
    std::fs::write(host.file("/etc/ntp.conf"), "server 127.127.1.0\n").expect("write");
    std::fs::write(host.file("/var/lib/chroma/extra"), "x\n").expect("write");
    let out = audit(&host, &["--format", "json"]);
    out.code(2);
    let v = json(&out);
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["tool_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["recipe"]["path"], recipe().display().to_string());
    assert_eq!(v["recipe"]["hash"].as_str().map(str::len), Some(64));
    assert_eq!(v["bundle"]["id"], host.bundle_names()[0]);
    assert_eq!(v["bundle"]["path"], host.latest().display().to_string());
    assert_eq!(v["bundle"]["recipe_hash"], v["recipe"]["hash"]);
    assert!(v["bundle"]["age_seconds"]
        .as_u64()
        .is_some_and(|a| a < 3600));
    assert_eq!(v["limits"]["max_age"], "1day");
    assert_eq!(v["limits"]["max_age_seconds"], 86400);
    assert_eq!(v["limits"]["cert_min_days"], 30);

    let findings = v["findings"].as_array().expect("findings");
    for f in findings {
        assert!(
            ["drift", "backup", "certificates", "unmanaged"]
                .contains(&f["suite"].as_str().unwrap_or("")),
            "{f}"
        );
        assert!(f["check"].as_str().is_some_and(|c| !c.is_empty()), "{f}");
        assert!(f["status"] == "pass" || f["status"] == "fail", "{f}");
        assert!(
            f["address"].is_string() || f["path"].is_string() || f["suite"] == "backup",
            "{f}"
        );
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()), "{f}");
    }
    // Passing checks are listed too: one drift finding per resource.
    assert_eq!(
        findings.iter().filter(|f| f["check"] == "drift").count(),
        20
    );
    for check in ["backup.age", "backup.integrity", "backup.recipe"] {
        assert_eq!(
            findings.iter().filter(|f| f["check"] == check).count(),
            1,
            "{check}"
        );
    }
    let fails = failures(&v);
    assert_eq!(fails.len(), 2, "{fails:#?}");
    assert_eq!(fails[0]["check"], "drift");
    assert_eq!(fails[0]["address"], "file.ntp_conf");
    assert_eq!(
        fails[0]["message"],
        "update: /etc/ntp.conf differs from the bundle"
    );
    assert_eq!(fails[1]["check"], "unmanaged.chroma");
    assert_eq!(fails[1]["path"], "/var/lib/chroma/extra");
    assert!(fails[1].get("address").is_none());

    let s = &v["summary"];
    assert_eq!(s["checks"].as_u64(), Some(findings.len() as u64));
    assert_eq!(s["findings"], 2);
    assert_eq!(s["passed"].as_u64(), Some(findings.len() as u64 - 2));
    assert_eq!(s["drift"], 1);
    assert_eq!(s["unmanaged"], 1);
    assert_eq!(s["backup"], 0);
    assert_eq!(s["certificates"], 0);
}

/// `xmllint` on a file: its stdout, panicking on a parse error.
fn xmllint(file: &Path, args: &[&str]) -> String {
    let out = Command::new("xmllint")
        .args(args)
        .arg(file)
        .output()
        .expect("run xmllint (Debian's libxml2-utils; .ci/run installs it)");
    assert!(
        out.status.success(),
        "xmllint {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn xpath(file: &Path, expr: &str) -> String {
    xmllint(file, &["--xpath", expr]).trim().to_string()
}

#[test]
fn junit_is_valid_xml_with_one_testcase_per_check() {
    let host = backed_up();
    std::fs::write(
        host.file("/etc/ntp.conf"),
        "server <127.127.1.0> & \"local\"\n",
    )
    .expect("write");
    // A file name with markup, quotes and a control character.
    std::fs::write(host.file("/var/lib/chroma/we<ird>&\"'\u{1}.txt"), "x\n").expect("write");
    let out = audit(&host, &["--format", "junit"]);
    out.code(2);
    let file = host.tmp.path().join("audit.xml");
    std::fs::write(&file, &out.stdout).expect("write xml");
    xmllint(&file, &["--noout"]);

    let v = json(&audit(&host, &["--format", "json"]));
    let checks = v["summary"]["checks"].as_u64().expect("checks");
    assert_eq!(xpath(&file, "count(//testcase)"), checks.to_string());
    assert_eq!(
        xpath(&file, "string(/testsuites/@tests)"),
        checks.to_string()
    );
    assert_eq!(xpath(&file, "string(/testsuites/@failures)"), "2");
    assert_eq!(xpath(&file, "count(//testcase/failure)"), "2");
    for (suite, tests, failures) in [
        ("drift", 20, 1),
        ("backup", 3, 0),
        ("certificates", 5, 0),
        ("unmanaged", 5, 1),
    ] {
        let at = format!("/testsuites/testsuite[@name='{suite}']");
        assert_eq!(
            xpath(&file, &format!("count({at}/testcase)")),
            tests.to_string(),
            "{suite}"
        );
        assert_eq!(
            xpath(&file, &format!("string({at}/@tests)")),
            tests.to_string(),
            "{suite}"
        );
        assert_eq!(
            xpath(&file, &format!("string({at}/@failures)")),
            failures.to_string(),
            "{suite}"
        );
    }
    let ntp = "//testsuite[@name='drift']/testcase[@name='file.ntp_conf']";
    assert_eq!(
        xpath(&file, &format!("string({ntp}/@classname)")),
        "imlrecover.audit.drift"
    );
    assert_eq!(
        xpath(&file, &format!("string({ntp}/failure/@message)")),
        "update: /etc/ntp.conf differs from the bundle"
    );
    assert_eq!(
        xpath(&file, &format!("string({ntp}/failure/@type)")),
        "drift"
    );
    // The diff with its markup survives escaping, as text.
    assert!(xpath(&file, &format!("string({ntp}/failure)"))
        .contains("-server <127.127.1.0> & \"local\""));
    // Passing checks are testcases without a failure.
    assert_eq!(
        xpath(&file, "count(//testcase[@name='file.hosts']/failure)"),
        "0"
    );
    assert_eq!(
        xpath(&file, "count(//testcase[@name='cert.manager chain'])"),
        "1"
    );
    let weird = xpath(
        &file,
        "string(//testsuite[@name='unmanaged']/testcase/failure/../@name)",
    );
    assert_eq!(weird, "/var/lib/chroma/we<ird>&\"'\u{FFFD}.txt");

    // The human report never sends a control character to the terminal.
    let human = audit(&host, &[]);
    human.stdout_has("FAIL /var/lib/chroma/we<ird>&\"'?.txt: not named by any resource");
    assert!(!human.stdout.contains('\u{1}'));
}

#[test]
fn errors_exit_1_and_are_never_findings() {
    let host = backed_up();
    let check = |out: Output, needle: &str| {
        out.code(1).stderr_has(needle);
        assert!(
            out.stdout.is_empty(),
            "an error printed a report:\n{}",
            out.stdout
        );
    };
    // A missing root.
    check(
        Imlrecover::new()
            .args(["audit", "-r"])
            .arg(recipe())
            .args(["--root", "/nonexistent/root", "--bundle"])
            .arg(&host.bundles)
            .run(),
        "the root directory /nonexistent/root does not exist",
    );
    // No bundle there.
    check(
        Imlrecover::new()
            .args(["audit", "-r"])
            .arg(recipe())
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(host.tmp.path().join("nothing"))
            .run(),
        "is not a bundle",
    );
    // An unreadable manifest.
    let broken = host.tmp.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(broken.join("manifest.json"), "{").expect("write");
    check(
        Imlrecover::new()
            .args(["audit", "-r"])
            .arg(recipe())
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(&broken)
            .run(),
        "the manifest does not parse",
    );
    // A recipe that does not load.
    check(
        Imlrecover::new()
            .args(["audit", "-r"])
            .arg(fixtures().join("recipes/invalid/syntax.hcl"))
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(&host.bundles)
            .run(),
        "syntax.hcl",
    );
    // A database nobody listens for.
    let nowhere = host.tmp.path().join("no-socket");
    std::fs::create_dir(&nowhere).expect("mkdir");
    check(
        Imlrecover::new()
            .args(["audit", "-r"])
            .arg(support::host::recipe())
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(&host.bundles)
            .arg("--var")
            .arg(format!("pg_host={}", nowhere.display()))
            .args(["--var", "pg_port=1"])
            .run(),
        "database.chroma",
    );
    // A duration that is not one.
    check(audit(&host, &["--max-age", "soon"]), "24h");
}

#[test]
fn database_drift_is_a_finding() {
    let host = Host::new();
    let pg = ChromaCluster::start();
    let recipe = support::host::recipe();
    host.backup_with(&recipe, &pg.vars());
    let run = || {
        Imlrecover::new()
            .args(["audit", "-r"])
            .arg(&recipe)
            .arg("--root")
            .arg(&host.root)
            .arg("--bundle")
            .arg(&host.bundles)
            .args(pg.vars())
            .run()
    };
    run().code(0).stdout_has("Audit: clean");
    imlrecover::host::postgres::execute(&pg.target(), "postgres", "DROP DATABASE chroma")
        .expect("drop chroma");
    run()
        .code(2)
        .stdout_has("FAIL -/+ database.chroma")
        .stdout_has("restore: database chroma does not exist on the live cluster")
        .stdout_has("Audit: 1 finding (1 drift).");
}
