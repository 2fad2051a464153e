//! Real throwaway PostgreSQL clusters for the tests (the crate's own
//! `TempCluster`), seeded like an IML manager: role `chroma` owning database
//! `chroma` with the core tables, plus oddly named objects that exercise
//! quoting. Every cluster is stopped and deleted when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use imlrecover::host::postgres::{self as pg, PgTarget, TempCluster};
use imlrecover::sandbox::chroma;

/// What goes into the `chroma` database; two different seeds make "old"
/// and "new" data distinguishable row by row.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    pub tag: &'static str,
    pub hosts: u32,
    pub targets: u32,
    pub volumes: u32,
}

/// The "backed up" manager.
pub const SEED_A: Seed = Seed {
    tag: "a",
    hosts: 8,
    targets: 24,
    volumes: 300,
};

/// A different manager (what a reinstalled or drifted server holds).
pub const SEED_B: Seed = Seed {
    tag: "b",
    hosts: 3,
    targets: 5,
    volumes: 120,
};

/// Tables of `chroma` compared row by row.
pub const CHROMA_TABLES: &[&str] = &[
    "public.chroma_core_managedhost",
    "public.chroma_core_managedtarget",
    "public.chroma_core_volume",
    "public.chroma_core_alertstate",
    "\"Audit\".\"Event Log\"",
];

/// A fresh, empty cluster (like a re-installed manager before restore).
pub fn fresh() -> TempCluster {
    TempCluster::start().expect("start a throwaway PostgreSQL cluster")
}

/// A cluster seeded with `seed`.
pub fn seeded(seed: Seed) -> TempCluster {
    let cluster = fresh();
    seed_cluster(&cluster.target(), seed);
    cluster
}

/// Creates role and database `chroma`, its tables and rows, and objects
/// whose names need quoting (the one seeder: `sandbox::chroma`).
pub fn seed_cluster(t: &PgTarget, s: Seed) {
    let tables = [
        ("chroma_core_managedhost", u64::from(s.hosts)),
        ("chroma_core_managedtarget", u64::from(s.targets)),
        ("chroma_core_volume", u64::from(s.volumes)),
        ("chroma_core_alertstate", 0),
    ];
    let seed = chroma::Seed {
        tag: s.tag,
        tables: &tables,
        odd_names: true,
    };
    chroma::seed(t, &seed).expect("seed chroma");
}

/// The rows of a table as JSON texts, sorted (JSON escapes newlines, so
/// every row is one line of psql output).
pub fn rows(t: &PgTarget, db: &str, table: &str) -> Vec<String> {
    pg::query(
        t,
        db,
        &format!("SELECT to_json(r)::text FROM {table} r ORDER BY 1"),
    )
    .unwrap_or_else(|e| panic!("read {table} in {db}: {e}"))
    .into_iter()
    .map(|r| r.join("|"))
    .collect()
}

/// Every compared table of `chroma`, with its rows.
pub fn chroma_rows(t: &PgTarget) -> BTreeMap<String, Vec<String>> {
    CHROMA_TABLES
        .iter()
        .map(|table| (table.to_string(), rows(t, "chroma", table)))
        .collect()
}

/// A plain `psql -X` command for `t` as the runbook runs it, without any
/// of the crate's machinery (we are root or the cluster's owner; the
/// cluster trusts local connections).
pub fn plain_psql(t: &PgTarget) -> Command {
    let bin = t
        .bin_dir
        .as_ref()
        .map(|d| d.join("psql"))
        .unwrap_or_else(|| "psql".into());
    let mut cmd = Command::new(bin);
    cmd.arg("-X")
        .env("PGHOST", t.host.as_deref().unwrap_or(""))
        .env("PGPORT", t.port.map(|p| p.to_string()).unwrap_or_default())
        .env("PGUSER", &t.superuser);
    cmd
}

/// A real `psql` session kept open on a database (a client the services
/// would be), until dropped.
pub struct HeldSession {
    child: Child,
    _stdin: ChildStdin,
    _stdout: BufReader<ChildStdout>,
    pub pid: i32,
}

impl HeldSession {
    /// Connects and returns once the server has given the session a PID.
    pub fn open(t: &PgTarget, db: &str, application_name: &str) -> HeldSession {
        let mut child = plain_psql(t)
            .args(["-q", "-A", "-t", "-d", db])
            .env("PGAPPNAME", application_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn psql");
        let mut stdin = child.stdin.take().expect("psql stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("psql stdout"));
        writeln!(stdin, "SELECT pg_backend_pid();").expect("write to psql");
        stdin.flush().expect("flush psql stdin");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read pid from psql");
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("psql printed {line:?} instead of a pid"));
        HeldSession {
            child,
            _stdin: stdin,
            _stdout: stdout,
            pid,
        }
    }
}

impl HeldSession {
    /// Runs `sql` in the held session and waits until it is done.
    pub fn run(&mut self, sql: &str) {
        writeln!(self._stdin, "{sql}\nSELECT 'done';").expect("write to psql");
        self._stdin.flush().expect("flush psql stdin");
        let mut line = String::new();
        while line.trim() != "done" {
            line.clear();
            let n = self._stdout.read_line(&mut line).expect("read from psql");
            assert!(n > 0, "psql ended while running {sql}");
        }
    }
}

impl Drop for HeldSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server programs of PostgreSQL `major`: Debian's 15, or the other
/// majors `.ci/pg-majors` installs under target/pg-majors (cached there; the
/// first test to need one installs it, from npm or PyPI).
pub fn major_bin(major: &str) -> std::path::PathBuf {
    let debian = std::path::PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("initdb").is_file() {
        return debian;
    }
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/pg-majors").join(major).join("bin");
    if !dir.join("postgres").is_file() {
        let status = Command::new(root.join(".ci/pg-majors"))
            .arg(major)
            .stdout(Stdio::null())
            .status()
            .expect("run .ci/pg-majors");
        assert!(status.success(), ".ci/pg-majors {major} failed");
    }
    dir
}

/// A cluster of PostgreSQL `major` seeded with `seed`.
pub fn seeded_major(major: &str, seed: Seed) -> TempCluster {
    let cluster = TempCluster::start_with(Some(&major_bin(major)))
        .unwrap_or_else(|e| panic!("start a PostgreSQL {major} cluster: {e}"));
    seed_cluster(&cluster.target(), seed);
    cluster
}

/// The majors the version tests run against: the oldest and newest
/// obtainable here and Debian's own.
pub const MAJORS: &[&str] = &["10", "15", "18"];
