//! Throwaway PostgreSQL clusters: `verify --drill` restores a bundle into
//! one, and the tests use the same thing.
//!
//! A cluster lives in its own temporary directory (data directory, Unix
//! socket, log), listens only on that socket, and runs as `postgres` when
//! we are root (initdb refuses root). It is stopped and deleted on `Drop`,
//! even after a failure.
//!
//! # Ctrl-C
//!
//! `Drop` does not run when the process dies from SIGINT. Every live
//! cluster is therefore also in a process-wide registry, and
//! [`cleanup_all`] stops and deletes them all. The CLI's SIGINT handler
//! (running on a normal thread, e.g. a signal-waiting thread or a flag
//! checked by the main loop; not inside an async signal handler, since it
//! locks and does I/O) calls it before exiting:
//!
//! ```no_run
//! // in the CLI's interrupt path:
//! let stopped = imlrecover::host::postgres::cleanup_all();
//! eprintln!("interrupted: removed {stopped} throwaway cluster(s)");
//! std::process::exit(130);
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::error::{PgError, Result};
use super::process::{find_program, indent, os_user_command, tail_of, OsUser, TAIL_LINES};
use super::PgTarget;

/// The database superuser (and, when we are root, OS user) of a throwaway cluster.
const SUPERUSER: &str = "postgres";

#[derive(Debug, Clone)]
struct Registered {
    id: u64,
    root: PathBuf,
    data_dir: PathBuf,
}

static LIVE: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    // A panic elsewhere must not stop the cleanup of clusters.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops every throwaway cluster of this process that is still alive and
/// deletes its directory; returns how many there were. For interrupt
/// handlers (see the module documentation); `TempCluster`s dropped later
/// find nothing left to do.
/// Programs this process still runs (an `initdb` half-way, a `pg_ctl`) are
/// killed first: one still writing into a directory would outlive its
/// removal.
pub fn cleanup_all() -> usize {
    let entries = std::mem::take(&mut *registry());
    if !entries.is_empty() {
        super::process::kill_descendants(std::process::id() as i32);
    }
    for e in &entries {
        let _ = stop_postmaster(&e.data_dir);
        // A killed child may still be finishing its last write: try again.
        for _ in 0..40 {
            match std::fs::remove_dir_all(&e.root) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(25))
                }
                _ => break,
            }
        }
    }
    entries.len()
}

/// A running throwaway cluster. See the module documentation.
#[derive(Debug)]
pub struct TempCluster {
    id: u64,
    root: PathBuf,
    data_dir: PathBuf,
    port: u16,
    bin_dir: PathBuf,
    os_user: Option<String>,
    os_id: Option<OsUser>,
    running: bool,
}

impl TempCluster {
    /// Creates and starts a cluster with the PostgreSQL found like any
    /// other program (`$IMLRECOVER_PG_BINDIR`, newest
    /// `/usr/lib/postgresql/*/bin`, `$PATH`).
    pub fn start() -> Result<TempCluster> {
        Self::start_with(None)
    }

    /// Like [`start`](Self::start) with the server programs from `bin_dir`.
    pub fn start_with(bin_dir: Option<&Path>) -> Result<TempCluster> {
        let initdb = find_program(bin_dir, "initdb")?;
        let bin_dir = initdb
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let root = make_root()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let data_dir = root.join("data");
        registry().push(Registered {
            id,
            root: root.clone(),
            data_dir: data_dir.clone(),
        });
        // From here on Drop cleans up whatever happens.
        let mut cluster = TempCluster {
            id,
            root,
            data_dir,
            port: 0,
            bin_dir,
            os_user: None,
            os_id: None,
            running: false,
        };
        cluster.init()?;
        cluster.launch()?;
        Ok(cluster)
    }

    fn fail(&self, step: &str, detail: String, hint: &'static str) -> PgError {
        PgError::TempCluster {
            dir: self.root.clone(),
            step: step.into(),
            detail,
            hint,
        }
    }

    fn init(&mut self) -> Result<()> {
        if nix::unistd::geteuid().is_root() {
            // initdb refuses to run as root: the cluster belongs to postgres.
            let user = OsUser::lookup(SUPERUSER).map_err(|e| {
                self.fail(
                    "looking up the OS user \"postgres\"",
                    e.to_string(),
                    "install the PostgreSQL server package (it creates the user), \
                     or run as a non-root user",
                )
            })?;
            nix::unistd::chown(&self.root, Some(user.uid), Some(user.gid)).map_err(|e| {
                self.fail(
                    "handing the directory to \"postgres\"",
                    e.to_string(),
                    "run on a filesystem that supports ownership (not a FAT/SMB mount)",
                )
            })?;
            self.os_id = Some(user);
            self.os_user = Some(SUPERUSER.into());
        }
        let mut last_error = String::new();
        // C.UTF-8 is missing on some older systems; C always exists.
        for locale in ["--locale=C.UTF-8", "--locale=C"] {
            let mut cmd = self.server_command("initdb");
            cmd.arg("-D")
                .arg(&self.data_dir)
                .args(["-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8"])
                .arg(locale);
            match self.run(cmd, "initdb") {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
        }
        Err(self.fail(
            "initdb",
            last_error,
            "check free space in the temporary directory ($TMPDIR) and that the \
             PostgreSQL server package is installed",
        ))
    }

    fn launch(&mut self) -> Result<()> {
        self.port = free_port().map_err(|e| {
            self.fail(
                "choosing a port",
                e.to_string(),
                "the loopback interface must be up",
            )
        })?;
        let options = format!(
            "-k '{}' -p {} -c listen_addresses='' -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off",
            self.root.display(),
            self.port
        );
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-l"])
            .arg(self.log_file())
            .arg("-o")
            .arg(options)
            .arg("start");
        if let Err(e) = self.run(cmd, "pg_ctl start") {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            return Err(self.fail(
                "starting the server",
                format!("{e}\n  server log:\n{}", indent(&tail_of(&log, TAIL_LINES))),
                "see the server log above",
            ));
        }
        self.running = true;
        Ok(())
    }

    fn server_command(&self, program: &str) -> std::process::Command {
        os_user_command(self.os_id.as_ref(), &self.bin_dir.join(program))
    }

    /// Runs a server program; on failure returns its status and output.
    fn run(&self, mut cmd: std::process::Command, what: &str) -> Result<(), String> {
        cmd.stdin(std::process::Stdio::null());
        match cmd.output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                Err(format!(
                    "{what} exited with {}:\n{}",
                    out.status,
                    indent(&tail_of(&text, TAIL_LINES))
                ))
            }
            Err(e) => Err(format!("cannot run {what}: {e}")),
        }
    }

    /// How to reach the cluster: its socket directory and port, as
    /// `postgres`, with client programs from the same installation (where
    /// it has them: a server-only installation leaves them to the search).
    pub fn target(&self) -> PgTarget {
        let has_clients = super::version::CLIENT_PROGRAMS
            .iter()
            .all(|p| find_program(Some(&self.bin_dir), p).is_ok());
        PgTarget {
            host: Some(self.root.display().to_string()),
            port: Some(self.port),
            superuser: SUPERUSER.into(),
            run_as: self.os_user.clone(),
            bin_dir: has_clients.then(|| self.bin_dir.clone()),
        }
    }

    /// Directory of the server programs this cluster runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory of the Unix socket (also the cluster's temporary root).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// The postmaster's PID while it runs.
    pub fn postmaster_pid(&self) -> Option<i32> {
        read_postmaster_pid(&self.data_dir)
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server now (immediate shutdown); the directory stays until
    /// the value is dropped.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        stop_postmaster(&self.data_dir).map_err(|detail| {
            self.fail(
                "stopping the server",
                detail,
                "kill the postgres processes of this data directory by hand",
            )
        })?;
        self.running = false;
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = stop_postmaster(&self.data_dir);
        let _ = std::fs::remove_dir_all(&self.root);
        registry().retain(|r| r.id != self.id);
    }
}

fn make_root() -> Result<PathBuf> {
    // The socket path (dir + "/.s.PGSQL.NNNNN") must fit in sun_path (108).
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        base = PathBuf::from("/tmp");
    }
    let dir = tempfile::Builder::new()
        .prefix("imlrecover-pg-")
        .tempdir_in(&base)
        .map_err(|source| PgError::Io {
            doing: format!(
                "creating a temporary directory for a throwaway cluster in {}",
                base.display()
            ),
            source,
        })?;
    Ok(dir.keep())
}

fn free_port() -> std::io::Result<u16> {
    // The cluster listens only on its private socket; the port just has to
    // be plausible and not collide with a real server on this host.
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn read_postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok().filter(|&p| p > 0)
}

/// Immediate shutdown through the postmaster's PID (SIGQUIT, then SIGKILL),
/// waiting until it is gone. No process is spawned, so this also works from
/// an interrupt path.
fn stop_postmaster(data_dir: &Path) -> Result<(), String> {
    let Some(pid) = read_postmaster_pid(data_dir) else {
        return Ok(());
    };
    let pid = Pid::from_raw(pid);
    for (signal, wait) in [
        (Signal::SIGQUIT, Duration::from_secs(10)),
        (Signal::SIGKILL, Duration::from_secs(5)),
    ] {
        if kill(pid, signal).is_err() || wait_gone(pid, wait) {
            return Ok(());
        }
    }
    Err(format!("postmaster {pid} did not exit"))
}

fn wait_gone(pid: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        // Reap it if we are its subreaper; ignore "not our child".
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st == "Z"))
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        if zombie || kill(pid, None).is_err() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
