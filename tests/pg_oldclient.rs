//! Restores through the path for psql 8.4–9.4 (EL6's 8.4, EL7's 9.2),
//! which cannot echo a failed statement (`-b` is 9.5+): psql names the
//! script line of each error and the restore reads that line of the dump.
//! Forced on real clusters of every major whose client programs this
//! machine has (Debian's 15, 14 and 18 from PyPI), beside the new path.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::postgres::{gunzip, gzip};
use imlrecover::host::postgres::{
    self as pg, FailedStatements, HarmlessError, PgError, PgTarget, RestoreOptions, RestoreReport,
    TempCluster,
};
use support::pg::{self as harness, SEED_A};

/// The gzip bytes of `cluster`'s dump (the statistics are not needed here).
fn dump_bytes(cluster: &TempCluster) -> Vec<u8> {
    crate::postgres::dump_bytes(cluster).0
}

fn restore_by(t: &PgTarget, gz: &[u8], how: FailedStatements) -> pg::Result<RestoreReport> {
    let options = RestoreOptions {
        failed_statements: how,
        ..RestoreOptions::default()
    };
    pg::restore_with(t, gz, &options, |_| {})
}

fn allowed(report: &RestoreReport) -> Vec<(HarmlessError, String, Option<u64>)> {
    report
        .allowed
        .iter()
        .map(|a| (a.kind, a.message.clone(), a.line))
        .collect()
}

const ALL_HARMLESS: [HarmlessError; 4] = [
    HarmlessError::CurrentUserCannotBeDropped,
    HarmlessError::SuperuserAlreadyExists,
    HarmlessError::DatabaseDidNotExist,
    HarmlessError::RoleDidNotExist,
];

#[test]
fn the_old_client_path_restores_and_verifies_like_the_new_one_on_15() {
    let source = harness::seeded(SEED_A);
    let gz = dump_bytes(&source);
    let wanted = harness::chroma_rows(&source.target());

    let by_echo = harness::fresh();
    let new = restore_by(&by_echo.target(), &gz, FailedStatements::Echoed).expect("new path");
    let by_line = harness::fresh();
    let old = restore_by(&by_line.target(), &gz, FailedStatements::ByLine).expect("old path");

    assert_eq!(new.failed_statements, FailedStatements::Echoed);
    assert_eq!(old.failed_statements, FailedStatements::ByLine);
    assert!(old.verified);
    // The same harmless errors, on the same lines, named the same way.
    assert_eq!(allowed(&old), allowed(&new));
    let kinds: Vec<HarmlessError> = old.allowed.iter().map(|a| a.kind).collect();
    for k in ALL_HARMLESS {
        assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
    }
    assert!(old
        .allowed_messages()
        .contains(&"ERROR: role \"postgres\" already exists".to_string()));
    assert_eq!(harness::chroma_rows(&by_line.target()), wanted);
    assert_eq!(old.dump_fingerprint, new.dump_fingerprint);

    // Again over itself: the databases and roles now exist.
    let again =
        restore_by(&by_line.target(), &gz, FailedStatements::ByLine).expect("second old restore");
    let kinds: Vec<HarmlessError> = again.allowed.iter().map(|a| a.kind).collect();
    assert!(
        !kinds.contains(&HarmlessError::DatabaseDidNotExist),
        "{kinds:?}"
    );
    assert!(kinds.contains(&HarmlessError::SuperuserAlreadyExists));
    assert_eq!(harness::chroma_rows(&by_line.target()), wanted);
}

/// A statement that fails for a real reason, and a harmless-looking error
/// from the wrong statement (`CREATE ROLE` of a role other than the
/// superuser), fail the old path with the new path's very message.
#[test]
fn a_harmful_error_fails_the_old_path_with_the_new_paths_message() {
    let source = harness::seeded(SEED_A);
    let sql = gunzip(&dump_bytes(&source));
    let at = sql.find("\\connect chroma\n").expect("chroma section") + "\\connect chroma\n".len();
    let bad = gzip(&format!(
        "{}CREATE TABLE public.broken (x nosuchtype);\nCREATE ROLE chroma;\n{}",
        &sql[..at],
        &sql[at..]
    ));
    let cluster = harness::fresh();
    let t = cluster.target();
    let new = restore_by(&t, &bad, FailedStatements::Echoed).expect_err("new path must fail");
    let old = restore_by(&t, &bad, FailedStatements::ByLine).expect_err("old path must fail");
    assert!(matches!(old, PgError::RestoreFailed { .. }), "{old}");
    let text = old.to_string();
    assert!(
        text.contains("psql reported 2 error(s) that are not the known harmless ones"),
        "{text}"
    );
    assert!(
        text.contains("type \"nosuchtype\" does not exist"),
        "{text}"
    );
    assert!(text.contains("role \"chroma\" already exists"), "{text}");
    assert!(
        text.contains("statement: CREATE TABLE public.broken (x nosuchtype);"),
        "{text}"
    );
    assert_eq!(text, new.to_string());
    assert_eq!(format!("{old:?}"), format!("{new:?}"));
}

/// Each major's own dump, restored by its own psql on the old path into a
/// fresh cluster of that major, rows verified. PostgreSQL 10 is left out:
/// its npm package has no client programs.
#[test]
fn every_major_with_client_programs_restores_on_the_old_path() {
    for major in ["14", "15", "18"] {
        let source = harness::seeded_major(major, SEED_A);
        let gz = dump_bytes(&source);
        let fresh = TempCluster::start_with(Some(&harness::major_bin(major)))
            .unwrap_or_else(|e| panic!("start {major}: {e}"));
        let t = fresh.target();
        let psql = t.bin_dir.as_ref().map(|d| d.join("psql"));
        assert!(
            psql.as_ref().is_some_and(|p| p.is_file()),
            "{major}: its own psql"
        );
        let report = restore_by(&t, &gz, FailedStatements::ByLine)
            .unwrap_or_else(|e| panic!("{major}: old path restore: {e}"));
        assert_eq!(report.failed_statements, FailedStatements::ByLine);
        assert!(report.verified, "{major}");
        let kinds: Vec<HarmlessError> = report.allowed.iter().map(|a| a.kind).collect();
        for k in ALL_HARMLESS {
            assert!(kinds.contains(&k), "{major}: {k:?} missing from {kinds:?}");
        }
        assert_eq!(
            harness::chroma_rows(&t),
            harness::chroma_rows(&source.target()),
            "{major}"
        );
    }
}

/// The path is chosen by the version psql reports: a psql saying 9.2 (EL7's)
/// restores on the old path instead of being refused. The 9.2 here is
/// Debian's 15 psql behind a script that answers `--version` as 9.2 does
/// (no real 9.x client is obtainable on this machine).
#[test]
fn a_psql_reporting_9_2_restores_on_the_old_path() {
    let source = harness::seeded(SEED_A);
    let gz = dump_bytes(&source);
    let fresh = harness::fresh();
    let real = fresh
        .target()
        .bin_dir
        .map(|d| d.join("psql"))
        .unwrap_or_else(|| "/usr/lib/postgresql/15/bin/psql".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let shim = dir.path().join("psql");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'psql (PostgreSQL) 9.2.24'; exit 0; }}\n\
             exec {} \"$@\"\n",
            real.display()
        ),
    )
    .expect("shim");
    for p in [dir.path(), shim.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    assert!(Path::new(&real).is_file());
    let t = PgTarget {
        bin_dir: Some(dir.path().to_path_buf()),
        ..fresh.target()
    };
    let report = pg::restore(&t, &gz[..], |_| {}).expect("restore through a 9.2 psql");
    assert_eq!(report.failed_statements, FailedStatements::ByLine);
    assert!(report.verified);
    assert_eq!(
        harness::chroma_rows(&fresh.target()),
        harness::chroma_rows(&source.target())
    );
    // Debian's own psql, as it reports itself, takes the new path.
    let report = pg::restore(&fresh.target(), &gz[..], |_| {}).expect("restore through 15");
    assert_eq!(report.failed_statements, FailedStatements::Echoed);
}
