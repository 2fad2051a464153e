//! The throwaway clusters and the dump's failure paths: a stopped cluster, a
//! pg_dumpall failing half way, a full destination, cluster identity, and
//! that every cluster is stopped and removed (also after an interrupt).

use crate::postgres::dump_bytes;
use crate::support;

use std::io::Write;
use std::process::{Command, Stdio};

use imlrecover::host::postgres::{self as pg, DumpOptions, PgError, TempCluster};
use support::pg::{self as harness, SEED_A, SEED_B};

#[test]
fn dumping_a_stopped_cluster_fails_clearly() {
    let mut cluster = harness::seeded(SEED_B);
    cluster.stop().expect("stop cluster");
    let mut out = Vec::new();
    let err =
        pg::dump_all(&cluster.target(), &mut out, |_| {}).expect_err("dump a stopped cluster");
    let text = err.to_string();
    assert!(matches!(err, PgError::DumpFailed { .. }), "{text}");
    assert!(
        text.contains(&cluster.socket_dir().display().to_string()),
        "{text}"
    );
    assert!(text.contains(&cluster.port().to_string()), "{text}");
    assert!(
        text.contains("No such file or directory"),
        "pg_dumpall's stderr missing: {text}"
    );
    assert!(text.contains("server is not running"), "no hint: {text}");
    let err = pg::cluster_identity(&cluster.target()).expect_err("identity of a stopped cluster");
    assert!(err.to_string().contains("server is not running"), "{err}");
}

#[test]
fn pg_dumpall_failing_half_way_is_an_error_with_its_messages() {
    let cluster = harness::seeded(SEED_A);
    // Reject connections to the second database only: pg_dumpall has then
    // written roles and other databases when it fails.
    let hba = cluster.data_dir().join("pg_hba.conf");
    let conf = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    std::fs::write(&hba, format!("local \"iml stats\" all reject\n{conf}"))
        .expect("write pg_hba.conf");
    pg::query(&cluster.target(), "postgres", "SELECT pg_reload_conf()").expect("reload");
    let mut out = Vec::new();
    let err = pg::dump_all(&cluster.target(), &mut out, |_| {})
        .expect_err("dump with a rejected database");
    let text = err.to_string();
    match &err {
        PgError::DumpFailed { sql_bytes, .. } => assert!(*sql_bytes > 0, "{text}"),
        other => panic!("expected DumpFailed, got {other}"),
    }
    assert!(text.contains("pg_hba.conf rejects connection"), "{text}");
    assert!(text.contains("must not be used"), "{text}");
}

/// A destination that fills up after `room` bytes.
struct FullDisk {
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("No space left on device (test)"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_destination_stops_the_dump_with_an_error() {
    let cluster = harness::seeded(SEED_A);
    let options = DumpOptions {
        chunk_size: 4096,
        ..DumpOptions::default()
    };
    let err = pg::dump_all_with(&cluster.target(), FullDisk { room: 3000 }, &options, |_| {})
        .expect_err("dump into a full disk");
    let text = err.to_string();
    assert!(matches!(err, PgError::DumpWrite { .. }), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains("free space"), "{text}");
    // Nothing hangs and the cluster is unharmed: the next dump works.
    let (_, stats) = dump_bytes(&cluster);
    assert_eq!(
        stats.fingerprint.databases["chroma"]["public.chroma_core_volume"],
        300
    );
}

#[test]
fn cluster_identity_tells_clusters_apart() {
    let a = harness::fresh();
    let b = harness::fresh();
    let ia = pg::cluster_identity(&a.target()).expect("identity a");
    let ib = pg::cluster_identity(&b.target()).expect("identity b");
    assert_ne!(ia.system_identifier, ib.system_identifier);
    assert!(
        ia.system_identifier.len() >= 15
            && ia.system_identifier.chars().all(|c| c.is_ascii_digit())
    );
    assert!(ia.server_version_num >= 90600, "{ia:?}");
    assert!(
        ia.server_version
            .starts_with(&(ia.server_version_num / 10000).to_string()),
        "{ia:?}"
    );
    assert_eq!(pg::cluster_identity(&a.target()).expect("again"), ia);
}

#[test]
fn dropping_a_temp_cluster_stops_it_and_removes_its_directory() {
    let cluster = harness::fresh();
    let root = cluster.socket_dir().to_path_buf();
    let pid = cluster.postmaster_pid().expect("postmaster pid");
    assert!(root.join("data/PG_VERSION").exists());
    drop(cluster);
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(!process_alive(pid), "postmaster {pid} still running");
}

fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

const CHILD_ENV: &str = "IMLRECOVER_TEST_CLEANUP_CHILD";

/// Run by `cleanup_all_removes_clusters_an_interrupted_process_leaves` in a
/// child process: starts a cluster and exits the way an interrupt handler
/// does (cleanup_all, then exit without running destructors).
#[test]
#[ignore = "helper run in a child process"]
fn cleanup_all_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = TempCluster::start().expect("start");
    println!(
        "\nROOT={}\nPID={}",
        cluster.socket_dir().display(),
        cluster.postmaster_pid().expect("pid")
    );
    let n = pg::cleanup_all();
    println!("CLEANED={n}");
    std::mem::forget(cluster);
    std::process::exit(0);
}

#[test]
fn cleanup_all_removes_clusters_an_interrupted_process_leaves() {
    let exe = std::env::current_exe().expect("test binary");
    // The child's name in this binary: its module path without the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            &format!("{module}::cleanup_all_child"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} missing in child output: {stdout}"))
            .to_string()
    };
    let root = std::path::PathBuf::from(field("ROOT="));
    let pid: i32 = field("PID=").parse().expect("pid");
    assert_eq!(field("CLEANED="), "1");
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(!process_alive(pid), "postmaster {pid} still running");
}
