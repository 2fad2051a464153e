//! backup, plan, audit, apply and the drill against real servers of the
//! oldest and newest majors obtainable here (PostgreSQL 10 from npm, server
//! programs only; 18 from PyPI, with its client programs) and Debian's 15,
//! on both the new and the old identity and count paths.

use crate::support;

use std::path::PathBuf;

use imlrecover::host::postgres::{PgTarget, TempCluster};
use support::cli::{Imlrecover, Output};
use support::host::Host;
use support::pg::{self as harness, SEED_A};

/// A host whose recipe is only the database, pointed at one cluster.
struct Site {
    host: Host,
    recipe: PathBuf,
}

const RECIPE: &str = r#"
variable "pg_host" {}
variable "pg_port" {}
database "chroma" {
  superuser = "postgres"
  host      = var.pg_host
  port      = var.pg_port
  run_as    = "postgres"
}
"#;

/// Old paths forced (identity from pg_controldata, counts by script,
/// sessions through the statistics functions) or not.
#[derive(Clone, Copy)]
enum Paths {
    New,
    Old,
}

impl Site {
    fn new() -> Site {
        let host = Host::empty();
        let recipe = host.tmp.path().join("db.hcl");
        std::fs::write(&recipe, RECIPE).expect("recipe");
        Site { host, recipe }
    }

    /// `cmd` pointed at cluster `t`, on the paths `paths`.
    fn run(&self, cmd: Imlrecover, t: &PgTarget, paths: Paths, extra: &[&str]) -> Output {
        let mut cmd = cmd
            .args([
                "--var",
                &format!("pg_host={}", t.host.clone().expect("socket")),
            ])
            .args(["--var", &format!("pg_port={}", t.port.expect("port"))])
            .args(extra);
        if let Paths::Old = paths {
            cmd = cmd.env("IMLRECOVER_PG_OLD_PATHS", "1");
        }
        cmd.run()
    }

    fn backup(&self, t: &PgTarget) -> Output {
        let out = self.run(self.host.cmd("backup", &self.recipe), t, Paths::New, &[]);
        out.code(0);
        out
    }

    fn latest(&self) -> PathBuf {
        self.host.latest()
    }

    fn with_bundle(&self, sub: &str, t: &PgTarget, paths: Paths, extra: &[&str]) -> Output {
        let cmd = self
            .host
            .bare(sub, &self.recipe)
            .arg("--bundle")
            .arg(self.latest());
        self.run(cmd, t, paths, extra)
    }
}

fn chroma_rows(t: &PgTarget) -> std::collections::BTreeMap<String, Vec<String>> {
    harness::chroma_rows(t)
}

fn fresh(major: &str) -> TempCluster {
    TempCluster::start_with(Some(&harness::major_bin(major)))
        .unwrap_or_else(|e| panic!("start a PostgreSQL {major} cluster: {e}"))
}

/// Every major: backup; plan and audit of the same cluster are clean on
/// both identity paths; the bundle records the server and the pg_dumpall
/// that wrote it.
#[test]
fn backup_plan_and_audit_on_every_major_and_both_paths() {
    for major in harness::MAJORS {
        let source = harness::seeded_major(major, SEED_A);
        let t = source.target();
        let site = Site::new();
        let out = site.backup(&t);
        let m = support::host::manifest(&site.latest());
        let db = m.database.expect("database record");
        assert!(
            db.server_version.starts_with(&format!("{major}.")),
            "{}",
            db.server_version
        );
        assert_eq!(db.fingerprint["chroma"]["public.chroma_core_volume"], 300);
        let by = db.dumped_by.expect("dumped_by");
        if *major == "10" {
            // No client programs of 10 here: 15's, and backup says so.
            assert!(by.starts_with("15."), "{by}");
            out.stderr_has("warning:")
                .stderr_has("is newer than the server");
        } else {
            assert!(
                by.starts_with(&format!("{major}.")),
                "{major}: dumped by {by}"
            );
            assert!(
                !out.stderr.contains("newer than the server"),
                "{}",
                out.stderr
            );
        }
        for paths in [Paths::New, Paths::Old] {
            site.with_bundle("plan", &t, paths, &["--detailed-exitcode"])
                .code(0)
                .stdout_has("No changes");
            let audit = site.with_bundle("audit", &t, paths, &[]);
            audit.code(0);
        }
    }
}

/// The same-version restore with row verification where the major's own
/// client programs exist (15: Debian's; 18: the wheel's), on both count
/// paths; an unchanged replan afterwards.
#[test]
fn same_major_restores_verify_rows_on_both_count_paths() {
    for (major, paths) in [("15", Paths::Old), ("18", Paths::New), ("18", Paths::Old)] {
        let source = harness::seeded_major(major, SEED_A);
        let site = Site::new();
        site.backup(&source.target());
        let target = fresh(major);
        let t = target.target();
        let out = site.with_bundle("apply", &t, paths, &["--auto-approve"]);
        out.code(0).stdout_has("rows verified");
        assert_eq!(chroma_rows(&t), chroma_rows(&source.target()), "{major}");
        site.with_bundle("plan", &t, paths, &["--detailed-exitcode"])
            .code(0);
    }
}

/// A bundle from PostgreSQL 10 (dumped by 15's pg_dumpall, as this machine
/// has no 10 clients) is refused onto a 10 server before anything changes,
/// and restores into 15 with the versions named in the plan.
#[test]
fn an_old_major_upgrades_into_15_and_a_newer_dump_is_refused() {
    let source = harness::seeded_major("10", SEED_A);
    let site = Site::new();
    site.backup(&source.target());

    let ten = fresh("10");
    let out = site.with_bundle("apply", &ten.target(), Paths::New, &["--auto-approve"]);
    out.code(1)
        .stderr_has("needs PostgreSQL 15 or newer")
        .stderr_has("nothing was changed");
    let dbs = imlrecover::host::postgres::cluster_view(&ten.target())
        .expect("view")
        .databases;
    assert!(!dbs.contains(&"chroma".to_string()), "{dbs:?}");
    assert!(!site.host.root.join("var/lib/imlrecover/runs").exists());

    let fifteen = fresh("15");
    let plan = site.with_bundle("plan", &fifteen.target(), Paths::New, &[]);
    plan.code(0).stdout_has("PostgreSQL 10.23 → 15.");
    let out = site.with_bundle("apply", &fifteen.target(), Paths::New, &["--auto-approve"]);
    out.code(0).stdout_has("rows verified");
    assert_eq!(
        chroma_rows(&fifteen.target()),
        chroma_rows(&source.target())
    );
}

/// The drill runs in the bundle's own major where this machine has it
/// (18, named through IMLRECOVER_PG_BINDIRS), else the next newer one that
/// can load the dump (15 for 10's bundle dumped by pg_dumpall 15), and
/// says which.
#[test]
fn the_drill_runs_in_the_bundles_major_and_says_which() {
    let extra = harness::major_bin("18");
    for (major, expect) in [
        ("18", "PostgreSQL 18 cluster"),
        ("10", "PostgreSQL 15 cluster"),
    ] {
        let source = harness::seeded_major(major, SEED_A);
        let site = Site::new();
        site.backup(&source.target());
        let out = Imlrecover::new()
            .args(["verify", "--drill"])
            .arg(site.latest())
            .env("IMLRECOVER_PG_BINDIRS", &extra)
            .env("TMPDIR", "/tmp")
            .run();
        out.code(0).stdout_has(expect);
        if major == "10" {
            out.stdout_has("the bundle's server is PostgreSQL 10");
        }
    }
}

/// The runbook's own restore, `zcat pgbackup-….sql.gz | psql postgres`
/// with the same major's psql, still restores the bundle's dump on 18.
#[test]
fn the_runbooks_zcat_psql_restores_an_18_bundle() {
    let source = harness::seeded_major("18", SEED_A);
    let site = Site::new();
    site.backup(&source.target());
    let db = support::host::manifest(&site.latest())
        .database
        .expect("database record");
    let target = fresh("18");
    let t = target.target();
    assert_eq!(
        t.bin_dir.as_deref(),
        Some(harness::major_bin("18").as_path())
    );
    let mut zcat = std::process::Command::new("zcat")
        .arg(site.latest().join(&db.file))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("zcat");
    let out = harness::plain_psql(&t)
        .args(["-q", "-d", "postgres"])
        .stdin(zcat.stdout.take().expect("zcat stdout"))
        .output()
        .expect("psql");
    assert!(zcat.wait().expect("zcat").success());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(chroma_rows(&t), chroma_rows(&source.target()));
}

/// IML 6.1's kind of move: a bundle dumped by the old major's own
/// pg_dumpall (14's, from its PyPI wheel) restores into a 15 server, the
/// plan naming both versions, the rows verified.
#[test]
fn a_dump_by_an_older_majors_own_programs_restores_into_15() {
    let source = harness::seeded_major("14", SEED_A);
    let site = Site::new();
    let out = site.backup(&source.target());
    assert!(
        !out.stderr.contains("newer than the server"),
        "{}",
        out.stderr
    );
    let db = support::host::manifest(&site.latest())
        .database
        .expect("database record");
    assert!(
        db.dumped_by
            .as_deref()
            .is_some_and(|b| b.starts_with("14.")),
        "{db:?}"
    );
    let fifteen = fresh("15");
    site.with_bundle("plan", &fifteen.target(), Paths::New, &[])
        .code(0)
        .stdout_has("PostgreSQL 14.23 → 15.");
    site.with_bundle("apply", &fifteen.target(), Paths::New, &["--auto-approve"])
        .code(0)
        .stdout_has("rows verified");
    assert_eq!(
        chroma_rows(&fifteen.target()),
        chroma_rows(&source.target())
    );
}

/// `bindir` in the recipe names the programs to use, and backup says when
/// they are newer than the server (18's pg_dumpall on a 15 server).
#[test]
fn the_recipes_bindir_is_used_and_a_newer_pg_dumpall_is_warned_about() {
    let source = harness::seeded_major("15", SEED_A);
    let site = Site::new();
    let bindir = harness::major_bin("18");
    std::fs::write(
        &site.recipe,
        RECIPE.replace(
            "run_as    = \"postgres\"",
            &format!(
                "run_as    = \"postgres\"\n  bindir    = \"{}\"",
                bindir.display()
            ),
        ),
    )
    .expect("recipe");
    let out = site.backup(&source.target());
    out.stderr_has("pg_dumpall 18.6 is newer than the server (PostgreSQL 15.")
        .stderr_has("set `bindir` in the recipe");
    let db = support::host::manifest(&site.latest())
        .database
        .expect("database record");
    assert_eq!(db.dumped_by.as_deref(), Some("18.6"));
    // Its dump needs 18: the 15 server it came from refuses it.
    let fresh15 = fresh("15");
    site.with_bundle("plan", &fresh15.target(), Paths::New, &[])
        .code(1)
        .stderr_has("needs PostgreSQL 18 or newer");
}
