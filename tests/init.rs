//! `imlrecover init` (#17 item 3) on sandbox hosts of each release family
//! (src/sandbox/releases.rs over a real sandbox manager with a real
//! PostgreSQL cluster) and on a host that is not an IML manager.

use crate::support;

use imlrecover::init::Family;
use imlrecover::sandbox::manager::Sandbox;
use imlrecover::sandbox::releases;
use support::cli::{Imlrecover, Output};

/// A golden sandbox manager marked as `family`.
fn host(family: Family) -> (tempfile::TempDir, Sandbox) {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Sandbox::golden(tmp.path()).expect("golden manager");
    releases::mark(&sb, family).expect("release marks");
    (tmp, sb)
}

fn init(sb_root: &std::path::Path, extra: &[&str]) -> Output {
    Imlrecover::new()
        .args(["init", "--root"])
        .arg(sb_root)
        .args(extra)
        .run()
}

#[test]
fn each_family_gets_its_recipe_with_the_hosts_values() {
    for family in Family::ALL {
        let (tmp, sb) = host(family);
        let out = init(&sb.root, &[]);
        out.code(0);
        let t = sb.target();
        let text = &out.stdout;
        // The family, with the evidence that told it.
        let evidence = match family {
            Family::El6 | Family::El7_409 => {
                "(PACKAGE_VERSION in /usr/share/chroma-manager/scm_version.py)".to_string()
            }
            _ => format!(
                "(/usr/lib/python2.7/site-packages/iml_manager-{}-py2.7.egg-info)",
                releases::version(family)
            ),
        };
        assert!(
            text.contains(&format!(
                "#   release:       {} (release {} {evidence})",
                family.id(),
                releases::version(family)
            )),
            "{family:?}:\n{text}"
        );
        assert!(text.contains(&format!("for {} ({})", family.releases(), family.id())));
        let systemd = if family == Family::El6 {
            "SysV"
        } else {
            "systemd"
        };
        assert!(
            text.contains(&format!("#   init system:   {systemd} (")),
            "{text}"
        );
        // The shipped recipe underneath, its defaults replaced.
        assert!(text.contains(family.text().lines().next().unwrap()));
        let agents: Vec<String> = releases::agents(&sb)
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect();
        assert!(
            text.contains(&format!("  default     = [{}]\n", agents.join(", "))),
            "{text}"
        );
        assert!(
            text.contains("# init: 2 storage servers: chroma_core_managedhost.address where not_deleted IS TRUE and state IS DISTINCT FROM 'removed' in the chroma database"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "  default     = \"{}\"\n",
            t.host.clone().unwrap()
        )));
        assert!(text.contains(&format!("  default     = {}\n", t.port.unwrap())));
        let pg = if family == Family::El7_61 {
            "postgresql-9.6"
        } else {
            "postgresql"
        };
        assert!(
            text.contains(&format!("#   PostgreSQL:    {pg} (")),
            "{text}"
        );
        if family == Family::El7_61 {
            assert!(text.contains("  name       = \"postgresql-9.6\"\n"));
            assert!(text.contains("#   data:          /var/lib/pgsql/9.6/data"));
        }
        let influx = if family >= Family::El7_51 {
            "present"
        } else {
            "absent"
        };
        assert!(
            text.contains(&format!("#   InfluxDB:      {influx} (")),
            "{text}"
        );
        if family == Family::El7_51 {
            assert!(text.contains("  default     = [\"iml\", \"iml_stratagem_scans\"]\n"));
        }
        assert!(!text.contains("WARNING"), "{text}");

        // Written with -o, it is a valid recipe of that family.
        let file = tmp.path().join("manager.hcl");
        init(&sb.root, &["-o", file.to_str().unwrap()])
            .code(0)
            .stdout_has(&format!("Wrote {}", file.display()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), out.stdout);
        Imlrecover::new()
            .args(["validate", "-r"])
            .arg(&file)
            .run()
            .code(0)
            .stdout_has("Valid.");
    }
}

#[test]
fn a_host_without_iml_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    releases::plain_host(&root).unwrap();
    let file = tmp.path().join("out.hcl");
    let out = init(&root, &["-o", file.to_str().unwrap()]);
    out.code(1)
        .stderr_has("is not an IML manager server: no python2-iml-manager or chroma-manager package, no /usr/share/chroma-manager/manage.py");
    assert_eq!(out.stdout, "");
    assert!(!file.exists());
}

#[test]
fn an_existing_file_is_kept_unless_forced_and_var_wins() {
    let (tmp, sb) = host(Family::El7_409);
    let file = tmp.path().join("manager.hcl");
    std::fs::write(&file, "# mine\n").unwrap();
    init(&sb.root, &["-o", file.to_str().unwrap()])
        .code(1)
        .stderr_has("exists; nothing was written");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");

    init(
        &sb.root,
        &[
            "-o",
            file.to_str().unwrap(),
            "--force",
            "--var",
            "agents=[\"mds9\"]",
            "--var",
            "pg_host=/srv/pg sock",
        ],
    )
    .code(0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(
        "  # init: given with --var (wins over detection)\n  default     = [\"mds9\"]\n"
    ));
    assert!(text.contains("  default     = \"/srv/pg sock\"\n"));

    init(&sb.root, &["--var", "influx_databases=[]"])
        .code(1)
        .stderr_has("has no variable `influx_databases`");
}

/// `rpm --root`: a real package `python2-iml-manager` 6.3.0 (built with
/// rpmbuild, registered with `rpm -i --justdb`) in the root's
/// /var/lib/rpm wins over the files, and is named as the evidence.
#[test]
fn the_rpm_database_tells_the_release_when_it_is_readable() {
    if std::process::Command::new("rpmbuild")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("rpmbuild is missing: apt-get install rpm (.ci/run does)");
    }
    // A 5.1 host by its files, whose package database says 6.3.0.
    let (tmp, sb) = host(Family::El7_51);
    let top = tmp.path().join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = top.join("SPECS/iml.spec");
    std::fs::write(
        &spec,
        "Name: python2-iml-manager\nVersion: 6.3.0\nRelease: 1.el7\nSummary: sandbox\nLicense: MIT\nBuildArch: noarch\n%description\nsandbox\n%files\n",
    )
    .unwrap();
    let built = std::process::Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("-bb")
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let installed = std::process::Command::new("rpm")
        .arg("--root")
        .arg(&sb.root)
        .args(["--dbpath", "/var/lib/rpm", "-i", "--justdb", "--nodeps"])
        .arg(top.join("RPMS/noarch/python2-iml-manager-6.3.0-1.el7.noarch.rpm"))
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );

    let out = init(&sb.root, &[]);
    out.code(0).stdout_has(
        "#   release:       el7-6.1 (release 6.3.0 (package python2-iml-manager in the rpm database /var/lib/rpm))",
    );
    // The release decides the PostgreSQL service, even before its unit.
    out.stdout_has(
        "#   PostgreSQL:    postgresql-9.6 (IML 6.1+ runs postgresql-9.6 (its unit is not installed yet))",
    );
    // What cannot be detected is said so.
    out.stdout_has("  # init: not detectable: the shipped default; set the command that reinstalls this release (--var installer=...)\n  default     = \"yum -y install python2-iml-manager && chroma-config setup admin lustre localhost\"\n");
}

/// A link under the root that leads out of it is resolved inside the root,
/// as recipe paths are: the host's own files are never taken for the root's.
#[test]
fn a_link_out_of_the_root_is_not_followed_to_the_hosts_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    releases::plain_host(&root).unwrap();
    let outside = tmp.path().join("host-chroma-manager");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("manage.py"), "#!/usr/bin/env python\n").unwrap();
    std::fs::write(
        outside.join("scm_version.py"),
        "PACKAGE_VERSION = \"6.2.0\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("usr/share/chroma-manager")).unwrap();
    init(&root, &[])
        .code(1)
        .stderr_has("is not an IML manager server");
}
