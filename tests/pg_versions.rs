//! The database resource's queries against real servers of several major
//! versions (10 and 18 from the registries, Debian's 15), on both paths:
//! the identity from `pg_control_system()` and from `pg_controldata`, the
//! row counts through `\gexec` and through imlrecover's own count script.

use crate::support;

use imlrecover::host::postgres::{self as pg, CountPath, IdentitySource};
use support::pg::{self as harness, SEED_A};

fn expected_chroma() -> Vec<(String, u64)> {
    [
        ("\"Audit\".\"Event Log\"", 2),
        ("public.chroma_core_alertstate", 0),
        ("public.chroma_core_managedhost", 8),
        ("public.chroma_core_managedtarget", 24),
        ("public.chroma_core_volume", 300),
    ]
    .iter()
    .map(|(t, n)| (t.to_string(), *n))
    .collect()
}

#[test]
fn both_identity_paths_and_both_count_paths_agree_on_every_major() {
    for major in harness::MAJORS {
        let cluster = harness::seeded_major(major, SEED_A);
        let t = cluster.target();
        let new = pg::cluster_view_via(&t, IdentitySource::PgControlSystem)
            .unwrap_or_else(|e| panic!("{major}: view: {e}"));
        let old = pg::cluster_view_via(&t, IdentitySource::PgControldata)
            .unwrap_or_else(|e| panic!("{major}: view via pg_controldata: {e}"));
        assert_eq!(new.identity_source, IdentitySource::PgControlSystem);
        assert_eq!(old.identity_source, IdentitySource::PgControldata);
        assert_eq!(new.identity, old.identity, "{major}");
        assert_eq!(new.databases, old.databases, "{major}");
        assert!(
            new.identity
                .server_version
                .starts_with(&format!("{major}.")),
            "{major}: {}",
            new.identity.server_version
        );
        assert_eq!(pg::major_of(new.identity.server_version_num), *major);
        assert!(new.identity.system_identifier.len() >= 15);

        let gexec = pg::fingerprint_with(&t, &new.databases, CountPath::Gexec)
            .unwrap_or_else(|e| panic!("{major}: count via gexec: {e}"));
        let script = pg::fingerprint_with(&t, &new.databases, CountPath::Script)
            .unwrap_or_else(|e| panic!("{major}: count via script: {e}"));
        assert_eq!(gexec, script, "{major}");
        let chroma: Vec<(String, u64)> = script.databases["chroma"]
            .iter()
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        assert_eq!(chroma, expected_chroma(), "{major}");
        assert_eq!(
            script.databases["iml stats"]["public.samples"], 42,
            "{major}"
        );
    }
}

/// The count script leaves out what pg_dump leaves out (temporary tables,
/// partitioned parents) and quotes names itself, in one session.
#[test]
fn the_count_script_skips_temporary_tables_and_counts_odd_names() {
    let cluster = harness::seeded_major("15", SEED_A);
    let t = cluster.target();
    pg::execute(
        &t,
        "chroma",
        "CREATE TABLE \"we\"\"ird name\" (x int); INSERT INTO \"we\"\"ird name\" VALUES (1), (2);
         CREATE UNLOGGED TABLE u (x int); INSERT INTO u VALUES (1);",
    )
    .expect("odd tables");
    // A temporary table lives only while its session does: hold one open.
    let mut held = harness::HeldSession::open(&t, "chroma", "holder");
    held.run("CREATE TEMP TABLE scratch AS SELECT 1 AS x;");
    let view = pg::cluster_view(&t).expect("view");
    let gexec = pg::fingerprint_with(&t, &view.databases, CountPath::Gexec).expect("gexec");
    let script = pg::fingerprint_with(&t, &view.databases, CountPath::Script).expect("script");
    assert_eq!(gexec, script);
    assert_eq!(script.databases["chroma"]["public.\"we\"\"ird name\""], 2);
    assert_eq!(script.databases["chroma"]["public.u"], 1);
    assert!(!script.databases["chroma"]
        .keys()
        .any(|k| k.contains("scratch")));
}
