//! The PostgreSQL boundary against real PostgreSQL clusters: dump, restore
//! (the runbook's way and ours), fingerprints, connected clients, failures.

use crate::support;

use std::io::{BufReader, Read, Write};
use std::process::Command;

use flate2::read::MultiGzDecoder;
use imlrecover::host::postgres::{
    self as pg, DumpOptions, HarmlessError, PgError, RestoreOptions, TempCluster,
};
use support::pg::{self as harness, HeldSession, SEED_A, SEED_B};

/// Dumps `cluster` to gzip bytes in memory (the test dumps are small).
pub(crate) fn dump_bytes(cluster: &TempCluster) -> (Vec<u8>, pg::DumpStats) {
    let mut gz = Vec::new();
    let stats = pg::dump_all(&cluster.target(), &mut gz, |_| {}).expect("dump_all");
    (gz, stats)
}

pub(crate) fn gunzip(gz: &[u8]) -> String {
    let mut sql = String::new();
    MultiGzDecoder::new(gz)
        .read_to_string(&mut sql)
        .expect("gunzip dump");
    sql
}

pub(crate) fn gzip(sql: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(sql.as_bytes()).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn dump_is_plain_gzip_that_the_runbooks_zcat_psql_restores() {
    let source = harness::seeded(SEED_A);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pgbackup-2024-01-02-03:04:05.sql.gz");
    // Small members: the file is many concatenated gzip members.
    let options = DumpOptions {
        chunk_size: 8192,
        ..DumpOptions::default()
    };
    let mut progress = Vec::new();
    let stats = pg::dump_all_with(
        &source.target(),
        std::fs::File::create(&file).expect("create dump file"),
        &options,
        |n| progress.push(n),
    )
    .expect("dump_all");
    assert!(
        stats.members > 1,
        "expected several gzip members: {stats:?}"
    );
    // A small cluster: its databases dumped at once, joined as pg_dumpall does.
    assert!(stats.at_once, "{stats:?}");
    assert_eq!(progress.last().copied(), Some(stats.sql_bytes));
    assert_eq!(
        std::fs::metadata(&file).expect("dump file").len(),
        stats.gz_bytes
    );

    // The real zcat reads it whole, without complaint.
    let out = Command::new("zcat").arg(&file).output().expect("run zcat");
    assert!(
        out.status.success(),
        "zcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len() as u64, stats.sql_bytes);
    let sql = String::from_utf8(out.stdout).expect("utf-8 dump");
    assert!(sql.contains("DROP DATABASE chroma;"), "not a --clean dump");
    assert_eq!(
        pg::fingerprint_from_dump(sql.as_bytes()).expect("scan zcat output"),
        stats.fingerprint
    );

    // The runbook's restore: zcat FILE | psql postgres, into a new cluster.
    let fresh = harness::fresh();
    let mut psql = harness::plain_psql(&fresh.target());
    psql.arg("postgres");
    let out = Command::new("sh")
        .arg("-c")
        .arg("f=\"$1\"; shift; zcat \"$f\" | \"$@\"")
        .arg("sh")
        .arg(&file)
        .arg(psql.get_program())
        .args(psql.get_args())
        .envs(psql.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .expect("run zcat | psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The runbook's two "harmless" errors, and nothing worse than the
    // fresh-cluster DROPs.
    assert!(
        stderr.contains("ERROR:  current user cannot be dropped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ERROR:  role \"postgres\" already exists"),
        "{stderr}"
    );
    assert_eq!(
        harness::chroma_rows(&fresh.target()),
        harness::chroma_rows(&source.target())
    );
    assert_eq!(
        pg::fingerprint(&fresh.target()).expect("fingerprint restored"),
        pg::fingerprint(&source.target()).expect("fingerprint source")
    );
}

/// The SQL of a dump with psql's `\restrict` keys (random per program
/// run) taken out.
fn unkeyed(sql: &str) -> String {
    sql.lines()
        .map(|l| match l.split_once(' ') {
            Some((cmd @ ("\\restrict" | "\\unrestrict"), _)) => cmd,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn dump_sql(t: &pg::PgTarget, at_once_up_to: u64) -> (String, pg::DumpStats) {
    let mut gz = Vec::new();
    let options = DumpOptions {
        at_once_up_to,
        ..DumpOptions::default()
    };
    let stats = pg::dump_all_with(t, &mut gz, &options, |_| {}).expect("dump_all");
    (gunzip(&gz), stats)
}

/// A small cluster's databases are dumped at once (pg_dump each, beside
/// `pg_dumpall --globals-only`) and joined into pg_dumpall's own script:
/// byte for byte what pg_dumpall writes, names that need quoting and a
/// keyword included, but for psql's random `\restrict` keys.
#[test]
fn a_small_cluster_dumped_at_once_is_pg_dumpalls_script_byte_for_byte() {
    let cluster = harness::seeded(SEED_A);
    let t = cluster.target();
    pg::execute(
        &t,
        "postgres",
        r#"CREATE ROLE "Ops ""team"""; CREATE DATABASE "select" OWNER "Ops ""team""";
           CREATE DATABASE "a=b c'd\e"; CREATE DATABASE "Ünï cödé";"#,
    )
    .expect("create databases");
    pg::execute(
        &t,
        "select",
        "CREATE TABLE t AS SELECT generate_series(1, 7) n",
    )
    .expect("seed \"select\"");

    let (joined, at_once) = dump_sql(&t, DumpOptions::default().at_once_up_to);
    let (whole, pg_dumpall) = dump_sql(&t, 0);
    assert!(at_once.at_once, "a small cluster is dumped at once");
    assert!(!pg_dumpall.at_once);
    assert_eq!(unkeyed(&joined), unkeyed(&whole));
    assert_eq!(at_once.fingerprint, pg_dumpall.fingerprint);
    assert_eq!(at_once.fingerprint.databases["select"]["public.t"], 7);
    assert!(joined.contains("DROP DATABASE \"select\";\n"), "{joined}");
    assert!(
        joined.contains("DROP DATABASE \"a=b c'd\\e\";\n"),
        "{joined}"
    );

    // Over the size limit pg_dumpall itself runs.
    let (_, big) = dump_sql(&t, 1);
    assert!(!big.at_once);
}

/// A small cluster whose data expands in the dump (40 MiB of text that
/// TOAST stores in a few hundred KiB) is not held in memory: the pieces are
/// dropped past a cap and pg_dumpall itself streams the dump.
#[test]
fn a_small_cluster_that_expands_past_the_memory_cap_goes_through_pg_dumpall() {
    let cluster = harness::fresh();
    let t = cluster.target();
    pg::execute(
        &t,
        "postgres",
        "CREATE TABLE big AS SELECT repeat('x', 40 << 20) AS v",
    )
    .expect("create a compressible value");
    let (sql, stats) = dump_sql(&t, DumpOptions::default().at_once_up_to);
    assert!(!stats.at_once, "{stats:?}");
    assert!(stats.sql_bytes > 40 << 20, "{stats:?}");
    assert_eq!(stats.fingerprint.databases["postgres"]["public.big"], 1);
    assert!(sql.ends_with("-- PostgreSQL database cluster dump complete\n--\n\n"));
}

/// pg_dumpall refuses a database name with a line break (it would break
/// its script's comments); dumping at once must not slip past that.
#[test]
fn a_database_name_with_a_line_break_is_refused_as_pg_dumpall_refuses_it() {
    let cluster = harness::fresh();
    let t = cluster.target();
    pg::execute(&t, "postgres", "CREATE DATABASE \"line\nbreak\"").expect("create db");
    let mut out = Vec::new();
    let err = pg::dump_all(&t, &mut out, |_| {}).expect_err("dump with a line break in a name");
    let text = err.to_string();
    assert!(matches!(err, PgError::DumpFailed { .. }), "{text}");
    assert!(text.contains("newline"), "{text}");
}

#[test]
fn fingerprints_count_every_row_and_the_dump_scan_agrees() {
    let source = harness::seeded(SEED_A);
    let live = pg::fingerprint(&source.target()).expect("fingerprint");
    let chroma = &live.databases["chroma"];
    let counts: Vec<(&str, u64)> = chroma.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    assert_eq!(
        counts,
        vec![
            ("\"Audit\".\"Event Log\"", 2),
            ("public.chroma_core_alertstate", 0),
            ("public.chroma_core_managedhost", 8),
            ("public.chroma_core_managedtarget", 24),
            ("public.chroma_core_volume", 300),
        ]
    );
    assert_eq!(live.databases["iml stats"]["public.samples"], 42);
    assert!(live.databases.contains_key("postgres"));
    assert!(!live.databases.contains_key("template1"));

    let (gz, stats) = dump_bytes(&source);
    assert_eq!(stats.fingerprint, live);
    let scanned =
        pg::fingerprint_from_dump(BufReader::new(MultiGzDecoder::new(&gz[..]))).expect("scan");
    assert_eq!(scanned, live);

    let json = serde_json::to_string(&live).expect("serialise");
    let back: pg::Fingerprint = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, live);

    let other = harness::seeded(SEED_B);
    let diffs: Vec<String> = live
        .diff(&pg::fingerprint(&other.target()).expect("fingerprint"))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        diffs.contains(
            &"table public.chroma_core_volume in database \"chroma\": 300 rows expected, 120 found"
                .to_string()
        ),
        "{diffs:#?}"
    );
}

/// The view and the fingerprint read every database in one psql session
/// each, hopping with `\connect`: a name psql or libpq could misread (a
/// quote, a backslash, `=`, a URI prefix, a newline, non-ASCII) must still
/// be listed and counted as itself.
#[test]
fn databases_with_awkward_names_are_listed_and_counted_as_themselves() {
    let cluster = harness::fresh();
    let t = cluster.target();
    let names = ["we ird'd=b\\x", "postgresql://x", "line\nbreak", "Ünï cödé"];
    for (i, name) in names.iter().enumerate() {
        let ident = format!("\"{}\"", name.replace('"', "\"\""));
        pg::execute(&t, "postgres", &format!("CREATE DATABASE {ident}")).expect("create db");
        pg::execute(
            &t,
            name,
            &format!(
                "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, {});",
                i + 1
            ),
        )
        .expect("seed db");
    }
    let view = pg::cluster_view(&t).expect("cluster_view");
    assert_eq!(
        view.identity,
        pg::cluster_identity(&t).expect("cluster_identity")
    );
    for name in names {
        assert!(
            view.databases.iter().any(|d| d == name),
            "{name:?} missing from {:?}",
            view.databases
        );
    }
    let fp = pg::fingerprint(&t).expect("fingerprint");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            fp.databases.get(*name).and_then(|t| t.get("public.t")),
            Some(&(i as u64 + 1)),
            "rows of {name:?} in {fp:?}"
        );
    }
    assert_eq!(fp.databases.get("postgres"), Some(&Default::default()));
    assert_eq!(fp.databases.len(), names.len() + 1);
}

/// Client programs run as `run_as` (uid, groups, HOME switched in the
/// child): with `peer` authentication on the socket only the OS user
/// `postgres` may log in as role `postgres`, so the query proves the switch;
/// an unknown user is named in the error.
#[test]
fn client_programs_run_as_the_recipes_os_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let cluster = harness::fresh();
    let t = cluster.target();
    assert_eq!(t.run_as.as_deref(), Some("postgres"));
    std::fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        "local all all peer\n",
    )
    .expect("write pg_hba.conf");
    pg::query(&t, "postgres", "SELECT pg_reload_conf()").expect("reload");
    std::thread::sleep(std::time::Duration::from_millis(300));

    let view = pg::cluster_view(&t).expect("as postgres, peer authentication passes");
    assert!(view.databases.contains(&"postgres".to_string()));

    let as_root = pg::PgTarget {
        run_as: None,
        ..t.clone()
    };
    let err = pg::cluster_view(&as_root).expect_err("root is not postgres to peer auth");
    assert!(
        err.to_string().contains("Peer authentication failed"),
        "{err}"
    );

    let unknown = pg::PgTarget {
        run_as: Some("imlrecover-no-such-user".into()),
        ..t.clone()
    };
    let err = pg::cluster_view(&unknown).expect_err("no such OS user");
    let text = err.to_string();
    assert!(
        text.contains("there is no OS user \"imlrecover-no-such-user\"") && text.contains("run_as"),
        "{text}"
    );
}

#[test]
fn restore_into_a_fresh_cluster_names_the_harmless_errors_and_matches() {
    let source = harness::seeded(SEED_A);
    let (gz, stats) = dump_bytes(&source);
    let fresh = harness::fresh();
    let mut seen = 0;
    let report = pg::restore(&fresh.target(), &gz[..], |n| seen = n).expect("restore");
    assert_eq!(seen, gz.len() as u64);
    assert_eq!(report.sql_bytes, stats.sql_bytes);
    assert!(report.verified);
    let kinds: Vec<HarmlessError> = report.allowed.iter().map(|a| a.kind).collect();
    for expected in [
        HarmlessError::CurrentUserCannotBeDropped,
        HarmlessError::SuperuserAlreadyExists,
        HarmlessError::DatabaseDidNotExist,
        HarmlessError::RoleDidNotExist,
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected:?} missing from {kinds:?}"
        );
    }
    let messages = report.allowed_messages();
    assert!(messages.contains(&"ERROR: current user cannot be dropped".to_string()));
    assert!(messages.contains(&"ERROR: role \"postgres\" already exists".to_string()));
    assert!(messages.contains(&"ERROR: database \"chroma\" does not exist".to_string()));
    assert!(messages.contains(&"ERROR: role \"chroma\" does not exist".to_string()));

    assert_eq!(
        harness::chroma_rows(&fresh.target()),
        harness::chroma_rows(&source.target())
    );
    assert_eq!(
        pg::fingerprint(&fresh.target()).expect("fingerprint"),
        stats.fingerprint
    );
    // The owner came back too, not only the rows.
    let owner = pg::query(
        &fresh.target(),
        "postgres",
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'chroma'",
    )
    .expect("owner");
    assert_eq!(owner, vec![vec!["chroma".to_string()]]);

    // A --clean dump restores again over itself (the second time the
    // databases and roles exist, so only the superuser errors remain).
    let again = pg::restore(&fresh.target(), &gz[..], |_| {}).expect("second restore");
    let kinds: Vec<HarmlessError> = again.allowed.iter().map(|a| a.kind).collect();
    assert!(
        !kinds.contains(&HarmlessError::DatabaseDidNotExist),
        "{kinds:?}"
    );
    assert_eq!(
        harness::chroma_rows(&fresh.target()),
        harness::chroma_rows(&source.target())
    );
}

#[test]
fn a_connected_client_never_lets_the_old_data_pass_for_restored() {
    let source = harness::seeded(SEED_A);
    let (gz, _) = dump_bytes(&source);
    let wanted = harness::chroma_rows(&source.target());
    let live = harness::seeded(SEED_B);
    let t = live.target();
    let old = harness::chroma_rows(&t);
    assert_ne!(old, wanted);

    let session = HeldSession::open(&t, "chroma", "held-by-test");
    let backends = pg::connected_backends(&t, &["chroma"]).expect("connected_backends");
    let held = backends
        .iter()
        .find(|b| b.pid == session.pid)
        .unwrap_or_else(|| panic!("session {} not listed in {backends:?}", session.pid));
    assert_eq!(held.database, "chroma");
    assert_eq!(held.application_name, "held-by-test");
    assert!(pg::connected_backends(&t, &["postgres"])
        .expect("connected_backends")
        .iter()
        .all(|b| b.pid != session.pid));

    // Default: refuse before touching anything, naming the client.
    let err = pg::restore(&t, &gz[..], |_| {}).expect_err("restore with a client connected");
    assert!(matches!(err, PgError::DatabaseInUse { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("pid {}", session.pid)), "{text}");
    assert!(text.contains("held-by-test"), "{text}");
    assert_eq!(
        harness::chroma_rows(&t),
        old,
        "a refused restore changed data"
    );

    // Forced through anyway: DROP DATABASE fails, psql still exits 0, and
    // the restore must fail rather than report the old data as restored.
    let forced = RestoreOptions {
        allow_connected_clients: true,
        ..RestoreOptions::default()
    };
    let err = pg::restore_with(&t, &gz[..], &forced, |_| {})
        .expect_err("restore over a connected client must fail");
    let text = err.to_string();
    assert!(matches!(err, PgError::RestoreFailed { .. }), "{text}");
    assert!(
        text.contains("database \"chroma\" is being accessed by other users"),
        "{text}"
    );
    assert_ne!(harness::chroma_rows(&t), wanted);

    // Terminating the client first makes the same restore succeed.
    let gone = pg::terminate_backends(&t, &["chroma"]).expect("terminate_backends");
    assert!(gone.iter().any(|b| b.pid == session.pid), "{gone:?}");
    assert!(pg::connected_backends(&t, &["chroma"])
        .expect("connected_backends")
        .is_empty());
    pg::restore(&t, &gz[..], |_| {}).expect("restore after terminating the client");
    assert_eq!(harness::chroma_rows(&t), wanted);
    drop(session);
}

#[test]
fn an_unexpected_error_in_the_dump_fails_the_restore() {
    let source = harness::seeded(SEED_A);
    let (gz, _) = dump_bytes(&source);
    let sql = gunzip(&gz);
    let at = sql.find("\\connect chroma\n").expect("chroma section") + "\\connect chroma\n".len();
    // A broken statement, and a harmless-looking error from the wrong
    // statement (only the superuser's CREATE ROLE may fail).
    let bad = format!(
        "{}CREATE TABLE public.broken (x nosuchtype);\nCREATE ROLE chroma;\n{}",
        &sql[..at],
        &sql[at..]
    );
    let fresh = harness::fresh();
    let err = pg::restore(&fresh.target(), &gzip(&bad)[..], |_| {})
        .expect_err("restore of a dump with a bad statement");
    let text = err.to_string();
    assert!(matches!(err, PgError::RestoreFailed { .. }), "{text}");
    assert!(
        text.contains("type \"nosuchtype\" does not exist"),
        "{text}"
    );
    assert!(text.contains("role \"chroma\" already exists"), "{text}");
    assert!(
        text.contains("CREATE TABLE public.broken"),
        "statement not shown: {text}"
    );
    assert!(!text.contains("current user cannot be dropped"), "{text}");
}

#[test]
fn corrupt_or_truncated_archives_fail_the_restore() {
    let source = harness::seeded(SEED_A);
    let (gz, _) = dump_bytes(&source);

    // Cut in the middle of the gzip stream.
    let fresh = harness::fresh();
    let err = pg::restore(&fresh.target(), &gz[..gz.len() / 2], |_| {})
        .expect_err("restore of a truncated archive");
    assert!(matches!(err, PgError::CorruptArchive { .. }), "{err}");
    assert!(err.to_string().contains("PARTIALLY restored"), "{err}");

    // Garbage in the middle of the stream.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let fresh = harness::fresh();
    let err =
        pg::restore(&fresh.target(), &bad[..], |_| {}).expect_err("restore of a corrupt archive");
    assert!(matches!(err, PgError::CorruptArchive { .. }), "{err}");

    // A valid gzip of a cut-short dump (what a full disk during a plain
    // `pg_dumpall | gzip` leaves): gzip cannot tell, the script's end can.
    let sql = gunzip(&gz);
    let cut = &sql[..sql.find("\\connect postgres").expect("postgres section")];
    let fresh = harness::fresh();
    let err = pg::restore(&fresh.target(), &gzip(cut)[..], |_| {})
        .expect_err("restore of a truncated dump");
    assert!(matches!(err, PgError::RestoreFailed { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");

    // Not gzip at all.
    let fresh = harness::fresh();
    let err = pg::restore(&fresh.target(), sql.as_bytes(), |_| {})
        .expect_err("restore of an uncompressed file");
    assert!(matches!(err, PgError::CorruptArchive { .. }), "{err}");
    assert!(!pg::fingerprint(&fresh.target())
        .expect("fingerprint")
        .databases
        .contains_key("chroma"));
}
