//! Disasters the way they really go, on a sandbox manager whose `chroma`
//! holds a table of 150,000 rows: the apply killed (`IMLRECOVER_FAULT`, a
//! real `kill -9`) or PostgreSQL stopped in the middle of the restore, rows
//! lost after a restore, a client holding a table lock, a backup started
//! while an apply runs, a stale saved plan, services orphaned by a killed
//! apply. After each, the next apply converges: rows equal the bundle and
//! the re-plan exits 0. Never "0 restored" with rows missing.

use crate::support;

use imlrecover::host::postgres as pg;
use std::path::Path;
use std::time::{Duration, Instant};
use support::cli::Output;

pub(crate) use support::manager::Manager;
pub(crate) const SAMPLE: &str = "chroma_core_sample_10";
pub(crate) const SAMPLE_ROWS: u64 = 150_000;

impl Manager {
    /// A golden manager with a big table, backed up.
    pub(crate) fn backed_up() -> Manager {
        let mut m = Manager::new();
        pg::execute(
            &m.sb.target(),
            "chroma",
            &format!(
                "SET ROLE chroma; CREATE TABLE {SAMPLE} (id serial PRIMARY KEY, sample text NOT NULL); \
                 INSERT INTO {SAMPLE} (sample) SELECT md5(g::text) FROM generate_series(1, {SAMPLE_ROWS}) g;"
            ),
        )
        .unwrap();
        m.record();
        m.backup();
        assert_eq!(m.rows.get(&format!("public.{SAMPLE}")), Some(&SAMPLE_ROWS));
        m
    }
}

pub(crate) fn kill9(child: &mut std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

/// The case: `chroma` dropped by mistake on the same cluster, the
/// apply dies half-way through the restore; plan, audit and the next apply
/// must all know the restore is owed.
#[test]
fn a_restore_killed_half_way_is_owed_until_verified() {
    let m = Manager::backed_up();
    m.drop_chroma();
    let half = m.dump_size() / 2;
    let out = m
        .cmd("apply")
        .arg("--auto-approve")
        .env("IMLRECOVER_FAULT", format!("restore:{half}"))
        .run();
    assert_eq!(out.code, -1, "killed\n{}\n{}", out.stdout, out.stderr);
    let live = m.sb.rows().unwrap_or_default();
    assert_ne!(live, m.rows, "the kill came before the restore finished");
    let plan = m.cmd("plan").arg("--detailed-exitcode").run();
    plan.code(2)
        .stdout_has("-/+ database.chroma (restore: the restore of run ");
    assert!(plan.stdout.contains("was interrupted)"), "{}", plan.stdout);
    m.cmd("audit")
        .run()
        .code(2)
        .stdout_has("the restore of run ")
        .stdout_has("never verified it");
    m.converges();
}

/// A real `kill -9` at several moments of the restore.
#[test]
fn a_restore_killed_at_any_moment_is_redone() {
    let m = Manager::backed_up();
    for delay_ms in [0u64, 120, 400] {
        let mut child = m.spawn_apply(&["--replace", "database.chroma"]);
        m.wait_for_restore_start();
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill9(&mut child);
        // The restore either finished and was verified, or is owed.
        if m.state().contains("\"started\"") {
            m.cmd("plan")
                .arg("--detailed-exitcode")
                .run()
                .code(2)
                .stdout_has("was interrupted");
            m.converges();
        } else {
            m.cmd("plan").arg("--detailed-exitcode").run().code(0);
            assert_eq!(m.sb.rows().unwrap(), m.rows);
        }
    }
}

/// Rows lost after a verified restore of this bundle (nothing newer could
/// explain it) are drift, with the tables and their counts.
#[test]
fn rows_short_of_the_restored_bundle_are_drift() {
    let m = Manager::backed_up();
    m.drop_chroma();
    m.converges();
    pg::execute(
        &m.sb.target(),
        "chroma",
        &format!("DELETE FROM {SAMPLE} WHERE id > 100000"),
    )
    .unwrap();
    let plan = m.cmd("plan").arg("--detailed-exitcode").run();
    plan.code(2)
        .stdout_has("hold fewer rows than the bundle")
        .stdout_has(&format!(
            "table public.{SAMPLE} in database \"chroma\": {SAMPLE_ROWS} rows in bundle"
        ))
        .stdout_has("100000 live");
    m.cmd("audit")
        .run()
        .code(2)
        .stdout_has(&format!("table public.{SAMPLE}"))
        .stdout_has("100000 live");
    // More rows than the bundle is newer work, not drift.
    m.converges();
    pg::execute(
        &m.sb.target(),
        "chroma",
        &format!("INSERT INTO {SAMPLE} (sample) VALUES ('newer')"),
    )
    .unwrap();
    m.cmd("plan").arg("--detailed-exitcode").run().code(0);
}

/// PostgreSQL stops (immediate shutdown) while the dump streams in: the
/// apply fails, says so and starts the services again; once PostgreSQL is
/// back, the next apply restores.
#[test]
fn postgres_stopped_mid_restore_is_redone_when_it_is_back() {
    let m = Manager::backed_up();
    m.drop_chroma();
    let child = m.spawn_apply(&[]);
    m.wait_for_restore_start();
    std::thread::sleep(Duration::from_millis(150));
    let cluster = m.sb.cluster.as_ref().unwrap();
    let pid = cluster.postmaster_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGQUIT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("database.chroma"), "{stderr}");
    assert!(m.state().contains("\"started\""), "{}", m.state());
    restart_postgres(cluster.data_dir());
    m.cmd("plan")
        .arg("--detailed-exitcode")
        .run()
        .code(2)
        .stdout_has("was interrupted");
    m.converges();
}

/// `pg_ctl restart` with the options the cluster was started with
/// (postmaster.opts), after an immediate shutdown.
fn restart_postgres(data: &Path) {
    let pg_ctl = pg::find_program(None, "pg_ctl").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while data.join("postmaster.pid").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&pg_ctl)
        .arg("-D")
        .arg(data)
        .args(["-w", "-t", "60", "-l"])
        .arg(data.parent().unwrap().join("postgres.log"))
        .arg("restart")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits (bounded) for a child; kills it and fails past the deadline.
pub(crate) fn wait_at_most(mut child: std::process::Child, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            kill9(&mut child);
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        started.elapsed(),
    )
}

/// A client (application `lock-holder`) in an open transaction whose last
/// query is `LOCK TABLE chroma_core_command IN ACCESS EXCLUSIVE MODE`: it
/// confirms with psql's client-side `\echo`, so pg_stat_activity still shows
/// the LOCK as its query. Killed when dropped.
pub(crate) struct LockHolder {
    pub(crate) child: std::process::Child,
    pub(crate) stdin: std::process::ChildStdin,
    pub(crate) stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl LockHolder {
    pub(crate) fn take(t: &pg::PgTarget) -> LockHolder {
        let mut child = support::pg::plain_psql(t)
            .args(["-q", "-A", "-t", "-d", "chroma"])
            .env("PGAPPNAME", "lock-holder")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut holder = LockHolder {
            child,
            stdin,
            stdout,
        };
        let line = holder
            .say("BEGIN;\nLOCK TABLE chroma_core_command IN ACCESS EXCLUSIVE MODE;\n\\echo locked");
        assert_eq!(line, "locked");
        holder
    }

    /// Commits; "done" while its session lives (psql, not interactive,
    /// exits when the server ends it, and this reads nothing).
    pub(crate) fn commit(&mut self) -> String {
        self.say("COMMIT;\n\\echo done")
    }

    /// Sends `text`, returns the next line psql prints, trimmed.
    pub(crate) fn say(&mut self, text: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{text}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client holds `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` in an open
/// transaction while apply restores: it is named (pid, user, application,
/// query) and ended within seconds, and the restore completes.
#[test]
fn a_client_holding_a_table_lock_is_ended_within_seconds() {
    use std::io::BufRead;
    let m = Manager::backed_up();
    let t = m.sb.target();
    let holder = LockHolder::take(&t);
    let started = Instant::now();
    let mut child = m.spawn_apply(&["--replace", "database.chroma"]);
    // When the blocker is reported, read as the apply prints it.
    let lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut handled = None;
        for l in lines.lines().map_while(Result::ok) {
            if handled.is_none() && l.contains("ended session blocking the restore") {
                handled = Some(started.elapsed());
            }
            text.push_str(&l);
            text.push('\n');
        }
        (text, handled)
    });
    let (out, _) = wait_at_most(child, Duration::from_secs(300));
    let (stdout, handled) = reader.join().unwrap();
    let out = Output { stdout, ..out };
    out.code(0)
        .stdout_has("ended session blocking the restore: pid ")
        .stdout_has("(application \"lock-holder\")")
        .stdout_has("query: LOCK TABLE chroma_core_command IN ACCESS EXCLUSIVE MODE;")
        .stdout_has("1 restored");
    let handled = handled.unwrap();
    assert!(handled < Duration::from_secs(30), "{handled:?}");
    assert_eq!(m.sb.rows().unwrap(), m.rows);
    m.cmd("plan").arg("--detailed-exitcode").run().code(0);
    drop(holder);
}
