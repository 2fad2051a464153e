//! Local services, through the recipe's backend.
//!
//! `sysv` runs `<root>/etc/init.d/NAME ACTION` with a cleared environment, as
//! `service(8)` does, and reads LSB exit codes. `systemd` runs
//! `systemctl ACTION NAME` (`systemctl is-active NAME` for status); the
//! program is `systemctl`, or the command line in `IMLRECOVER_SYSTEMCTL`
//! (e.g. docker-systemctl-replacement with its own `--root`).

use super::process::{self, ProcessError};
use crate::recipe::ServiceBackend;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }

    fn expected(self) -> Status {
        match self {
            Action::Stop => Status::Stopped,
            Action::Start | Action::Restart => Status::Running,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("unknown service `{name}`: {script} does not exist")]
    NotInstalled { name: String, script: String },
    #[error("`{name}` status is unknown (exit code {code}): {detail}")]
    Unknown {
        name: String,
        code: i32,
        detail: String,
    },
    #[error("`{name} {action}` failed (exit code {code}): {detail}")]
    ActionFailed {
        name: String,
        action: &'static str,
        code: i32,
        detail: String,
    },
    #[error("`{name} {action}` returned, but the service is still {actual} after {}", humantime::format_duration(*.waited))]
    NotSettled {
        name: String,
        action: &'static str,
        actual: &'static str,
        waited: Duration,
    },
    #[error("unit {unit} of `{name}` is {} under the root, which leads out of it to {}; systemctl would read the host's unit, not the root's", path.display(), target.display())]
    UnitOutsideRoot {
        name: String,
        unit: String,
        path: PathBuf,
        target: PathBuf,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Where systemctl looks for unit files and drop-ins, in its order.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// Services on one host, under one root.
#[derive(Debug, Clone)]
pub struct Services {
    backend: ServiceBackend,
    root: PathBuf,
    /// How long one init script / systemctl call may take.
    pub timeout: Duration,
    /// How long to wait for the status to follow an action.
    pub settle: Duration,
    /// Statuses this instance saw settle after its own actions: a start
    /// after our own verified stop need not ask again. Cleared by
    /// [`forget`](Self::forget) when something else may have acted.
    settled: Arc<Mutex<BTreeMap<String, Status>>>,
    /// Services stopped together ([`stop_together`](Self::stop_together))
    /// whose own step has not reported it yet.
    stopped_together: Arc<Mutex<BTreeSet<String>>>,
    /// The apply run that starts services, put in their environment
    /// ([`crate::host::orphans`]) so that a later apply can find what a
    /// killed one started.
    tag: Arc<Mutex<Option<String>>>,
}

impl Services {
    pub fn new(backend: ServiceBackend, root: &Path) -> Services {
        Services {
            backend,
            root: root.to_path_buf(),
            timeout: Duration::from_secs(90),
            settle: Duration::from_secs(30),
            settled: Arc::default(),
            stopped_together: Arc::default(),
            tag: Arc::default(),
        }
    }

    /// Tags every service started from now on with `run` (SysV only:
    /// systemd keeps track of what it starts).
    pub fn tag_starts(&self, run: &str) {
        if let Ok(mut t) = self.tag.lock() {
            *t = Some(run.to_string());
        }
    }

    pub fn backend(&self) -> ServiceBackend {
        self.backend
    }

    /// `<root>/etc/init.d/NAME`, resolved inside the root: with `<root>/etc`
    /// a link to `/etc`, the host's own script must not run.
    fn script(&self, name: &str) -> PathBuf {
        let rel = format!("/etc/init.d/{}", name.replace('/', "_"));
        crate::state::confined(&self.root, &rel)
    }

    /// Under a `--root` other than `/`, systemctl (or a replacement given
    /// its own `--root`) reads `<root>/etc/systemd/system/NAME.service` and
    /// the like with ordinary opens, so a link there (or in a directory on
    /// the way) out of the root would make it read and run the host's unit.
    /// Such a unit is refused before systemctl is called.
    fn check_unit(&self, name: &str) -> Result<(), ServiceError> {
        let Ok(root) = std::fs::canonicalize(&self.root) else {
            return Ok(());
        };
        if root == Path::new("/") {
            return Ok(());
        }
        let unit = unit_file(&name.replace('/', "_"));
        for dir in UNIT_DIRS {
            for file in [unit.clone(), format!("{unit}.d")] {
                let path = self.root.join(dir).join(&file);
                // Missing (or a dangling link): nothing systemctl could read.
                let Ok(target) = std::fs::canonicalize(&path) else {
                    continue;
                };
                if !target.starts_with(&root) {
                    return Err(ServiceError::UnitOutsideRoot {
                        name: name.into(),
                        unit,
                        path,
                        target,
                    });
                }
            }
        }
        Ok(())
    }

    /// systemd says `inactive` of a unit it has no file for, as of a
    /// stopped one; a rebuilt host's installer brings (and starts) it, so
    /// the plan must tell the two apart. Installed: a unit file (or its
    /// template's) in a unit directory under the root, or an init script
    /// (systemd-sysv-generator makes a unit of it).
    fn unit_installed(&self, name: &str) -> Result<(), ServiceError> {
        let unit = unit_file(&name.replace('/', "_"));
        let template = unit
            .split_once('@')
            .and_then(|(p, rest)| Some(format!("{p}@.{}", rest.rsplit_once('.')?.1)));
        let found = UNIT_DIRS.iter().any(|dir| {
            let d = self.root.join(dir);
            d.join(&unit).symlink_metadata().is_ok()
                || template
                    .as_ref()
                    .is_some_and(|t| d.join(t).symlink_metadata().is_ok())
        }) || self.script(name).is_file();
        if found {
            Ok(())
        } else {
            Err(ServiceError::NotInstalled {
                name: name.into(),
                script: format!("/usr/lib/systemd/system/{unit}"),
            })
        }
    }

    fn command(&self, name: &str, verb: &str) -> Result<Command, ServiceError> {
        match self.backend {
            ServiceBackend::Sysv => {
                let script = self.script(name);
                if !script.is_file() {
                    return Err(ServiceError::NotInstalled {
                        name: name.into(),
                        script: script.display().to_string(),
                    });
                }
                let mut cmd = Command::new(script);
                cmd.arg(verb);
                // service(8) keeps only these.
                cmd.env_clear()
                    .env(
                        "PATH",
                        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    )
                    .env("LANG", "C");
                let tag = self.tag.lock().ok().and_then(|t| t.clone());
                if let (Some(run), "start" | "restart") = (tag, verb) {
                    cmd.env(super::orphans::RUN_VAR, run)
                        .env(super::orphans::SERVICE_VAR, name);
                }
                Ok(cmd)
            }
            ServiceBackend::Systemd => {
                self.check_unit(name)?;
                let mut cmd = self.systemctl();
                match verb {
                    "status" => cmd.args(["is-active", name]),
                    v => cmd.args([v, name]),
                };
                Ok(cmd)
            }
        }
    }

    /// Running or stopped; anything else is an error, never a guess.
    pub fn status(&self, name: &str) -> Result<Status, ServiceError> {
        if self.backend == ServiceBackend::Systemd {
            self.unit_installed(name)?;
        }
        let out = process::run(&mut self.command(name, "status")?, self.timeout)?;
        let code = out.status.code().unwrap_or(-1);
        match (self.backend, code) {
            (_, 0) => Ok(Status::Running),
            // LSB: 1 dead with pid file, 2 dead with lock file, 3 not running.
            (ServiceBackend::Sysv, 1..=3) => Ok(Status::Stopped),
            // is-active: non-zero with inactive/failed/unknown.
            (ServiceBackend::Systemd, _)
                if matches!(out.stdout.trim(), "inactive" | "failed" | "deactivating") =>
            {
                Ok(Status::Stopped)
            }
            _ => Err(ServiceError::Unknown {
                name: name.into(),
                code,
                detail: out.last_line().to_string(),
            }),
        }
    }

    /// Forgets the statuses seen after our own actions: a command (the
    /// installer) may have started or stopped anything since.
    pub fn forget(&self) {
        if let Ok(mut m) = self.settled.lock() {
            m.clear();
        }
    }

    /// Reads the statuses of `names` at once, one thread each, and keeps
    /// them as seen: the run of steps about to act on these services, with
    /// nothing else acting in between, need not ask one after another. A
    /// status that cannot be read is not kept (its step asks and reports).
    pub fn look_up(&self, names: &[&str]) {
        std::thread::scope(|s| {
            for name in names {
                s.spawn(move || {
                    if let Ok(status) = self.status(name) {
                        self.remember(name, Some(status));
                    }
                });
            }
        });
    }

    /// systemd: the running ones of `names` (statuses from
    /// [`look_up`](Self::look_up)) stopped by one `systemctl stop A B …`,
    /// one transaction, as an administrator quiesces them; then waited for
    /// until each is inactive. Each one's step then reports it stopped
    /// without acting again. SysV, or anything failing: nothing is kept,
    /// and each step acts (and reports) on its own.
    pub fn stop_together(&self, names: &[&str]) {
        if self.backend != ServiceBackend::Systemd {
            return;
        }
        let running: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.settled(n) == Some(Status::Running))
            .collect();
        if running.len() < 2 || running.iter().any(|n| self.check_unit(n).is_err()) {
            return;
        }
        let mut cmd = self.systemctl();
        cmd.arg("stop").args(&running);
        match process::run(&mut cmd, self.timeout) {
            Ok(out) if out.status.success() => {}
            _ => return,
        }
        let deadline = Instant::now() + self.settle;
        loop {
            let mut cmd = self.systemctl();
            cmd.arg("is-active").args(&running);
            let Ok(out) = process::run(&mut cmd, self.timeout) else {
                return;
            };
            let states: Vec<&str> = out.stdout.lines().map(str::trim).collect();
            if states.len() == running.len()
                && states.iter().all(|s| matches!(*s, "inactive" | "failed"))
            {
                break;
            }
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(mut done) = self.stopped_together.lock() {
            for n in &running {
                done.insert(n.to_string());
                self.remember(n, Some(Status::Stopped));
            }
        }
    }

    /// `systemctl` (or `IMLRECOVER_SYSTEMCTL`'s command line).
    fn systemctl(&self) -> Command {
        let line = std::env::var("IMLRECOVER_SYSTEMCTL").unwrap_or_else(|_| "systemctl".into());
        let mut words = line.split_whitespace();
        let mut cmd = Command::new(words.next().unwrap_or("systemctl"));
        cmd.args(words);
        cmd
    }

    fn settled(&self, name: &str) -> Option<Status> {
        self.settled.lock().ok()?.get(name).copied()
    }

    fn remember(&self, name: &str, status: Option<Status>) {
        if let Ok(mut m) = self.settled.lock() {
            match status {
                Some(s) => m.insert(name.to_string(), s),
                None => m.remove(name),
            };
        }
    }

    /// Runs the action, then waits (bounded) until the status matches it.
    /// `Ok(false)`: a start or stop found the service already so (LSB makes
    /// them idempotent; the installer may have started it since the plan).
    pub fn act(&self, name: &str, action: Action) -> Result<bool, ServiceError> {
        let result = self.act_uncached(name, action);
        self.remember(name, result.as_ref().ok().map(|_| action.expected()));
        result
    }

    fn act_uncached(&self, name: &str, action: Action) -> Result<bool, ServiceError> {
        if action == Action::Stop
            && self
                .stopped_together
                .lock()
                .is_ok_and(|mut d| d.remove(name))
        {
            return Ok(true);
        }
        // A restart does not care; a status this run saw settle is current.
        if action != Action::Restart {
            let now = match self.settled(name) {
                Some(s) => s,
                None => match self.status(name) {
                    // Nothing to stop where nothing is installed.
                    Err(ServiceError::NotInstalled { .. }) if action == Action::Stop => {
                        return Ok(false)
                    }
                    other => other?,
                },
            };
            if now == action.expected() {
                return Ok(false);
            }
        }
        let out = process::run(&mut self.command(name, action.as_str())?, self.timeout)?;
        let code = out.status.code().unwrap_or(-1);
        if code != 0 {
            return Err(ServiceError::ActionFailed {
                name: name.into(),
                action: action.as_str(),
                code,
                detail: out.last_line().to_string(),
            });
        }
        let deadline = Instant::now() + self.settle;
        loop {
            let status = self.status(name)?;
            if status == action.expected() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Err(ServiceError::NotSettled {
                    name: name.into(),
                    action: action.as_str(),
                    actual: status.as_str(),
                    waited: self.settle,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The unit file systemctl reads for `name`: as given when it ends in a
/// unit type (`iml-manager.target`), else `NAME.service` — as systemctl
/// itself does, so `postgresql-9.6` is `postgresql-9.6.service`.
pub fn unit_file(name: &str) -> String {
    const TYPES: [&str; 11] = [
        "service",
        "socket",
        "device",
        "mount",
        "automount",
        "swap",
        "target",
        "path",
        "timer",
        "slice",
        "scope",
    ];
    match name.rsplit_once('.') {
        Some((_, t)) if TYPES.contains(&t) => name.to_string(),
        _ => format!("{name}.service"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_unit_file_is_the_name_with_its_type_or_dot_service() {
        assert_eq!(unit_file("iml-manager.target"), "iml-manager.target");
        assert_eq!(unit_file("postgresql-9.6"), "postgresql-9.6.service");
        assert_eq!(unit_file("influxdb"), "influxdb.service");
        assert_eq!(unit_file("nginx.service"), "nginx.service");
    }

    /// An LSB init script keeping its state in a file and logging each call.
    fn script(root: &Path, name: &str, running: bool) {
        let dir = root.join("etc/init.d");
        std::fs::create_dir_all(&dir).unwrap();
        let state = root.join(format!("{name}.running"));
        if running {
            std::fs::write(&state, "").unwrap();
        }
        let log = root.join("calls.log");
        let body = format!(
            "#!/bin/sh\necho \"{name} $1\" >> '{log}'\ncase \"$1\" in\n  \
             start) touch '{state}' ;;\n  stop) rm -f '{state}' ;;\n  \
             status) [ -e '{state}' ] || exit 3 ;;\n  *) exit 2 ;;\nesac\n",
            log = log.display(),
            state = state.display()
        );
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls(root: &Path) -> Vec<String> {
        std::fs::read_to_string(root.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn statuses_looked_up_at_once_serve_the_stops_that_follow() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        script(root, "httpd", true);
        script(root, "rabbitmq-server", false);
        let services = Services::new(ServiceBackend::Sysv, root);
        services.look_up(&["httpd", "rabbitmq-server", "missing"]);
        let mut seen = calls(root);
        seen.sort();
        assert_eq!(seen, ["httpd status", "rabbitmq-server status"]);

        assert!(services.act("httpd", Action::Stop).unwrap(), "stopped");
        assert!(
            !services.act("rabbitmq-server", Action::Stop).unwrap(),
            "was already stopped"
        );
        // No second status before the stops; the stop is still verified.
        assert_eq!(
            calls(root)[2..],
            ["httpd stop".to_string(), "httpd status".to_string()]
        );
        assert!(!root.join("httpd.running").exists());
        // What could not be read is asked again, and reported.
        assert!(matches!(
            services.act("missing", Action::Start),
            Err(ServiceError::NotInstalled { .. })
        ));

        // Something else may act: forgotten, asked again.
        services.forget();
        script(root, "rabbitmq-server", true);
        assert!(services.act("rabbitmq-server", Action::Stop).unwrap());
    }
}
