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
use std::sync::{Arc, Condvar, Mutex};
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
    /// Services stopped or started together
    /// ([`act_together`](Self::act_together)), by action, whose own step
    /// has not reported it yet.
    together: Arc<Mutex<BTreeSet<(&'static str, String)>>>,
    /// The apply run that starts services, put in their environment
    /// ([`crate::host::orphans`]) so that a later apply can find what a
    /// killed one started.
    tag: Arc<Mutex<Option<String>>>,
    /// A [`looking_up`](Self::looking_up) under way.
    looking: Arc<(Mutex<bool>, Condvar)>,
}

impl Services {
    pub fn new(backend: ServiceBackend, root: &Path) -> Services {
        Services {
            backend,
            root: root.to_path_buf(),
            timeout: Duration::from_secs(90),
            settle: Duration::from_secs(30),
            settled: Arc::default(),
            together: Arc::default(),
            tag: Arc::default(),
            looking: Arc::default(),
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
            (ServiceBackend::Systemd, _) if is_stopped(out.stdout.trim()) => Ok(Status::Stopped),
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
    /// status that cannot be read is not kept (its step asks and reports);
    /// one this instance already holds is not asked again.
    /// Under systemd, one `systemctl is-active A B …` answers for all.
    pub fn look_up(&self, names: &[&str]) {
        let names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.settled(n).is_none())
            .collect();
        if self.backend == ServiceBackend::Systemd {
            self.look_up_at_once(&names);
            return;
        }
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

    /// systemd: the statuses of the installed ones of `names` from one
    /// `systemctl is-active`, which prints one line per unit. What it
    /// cannot answer plainly is not kept: its step asks on its own.
    fn look_up_at_once(&self, names: &[&str]) {
        let names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.unit_installed(n).is_ok() && self.check_unit(n).is_ok())
            .collect();
        if names.is_empty() {
            return;
        }
        let Some(states) = self.active_states(&names) else {
            return;
        };
        if states.len() != names.len() {
            return;
        }
        for (name, state) in names.iter().zip(&states) {
            let status = match state.as_str() {
                "active" => Status::Running,
                s if is_stopped(s) => Status::Stopped,
                _ => continue,
            };
            self.remember(name, Some(status));
        }
    }

    /// `systemctl is-active A B …`: the lines it prints, one state per
    /// unit in their order when it answers for each; `None` if it cannot run.
    fn active_states(&self, names: &[&str]) -> Option<Vec<String>> {
        let mut cmd = self.systemctl();
        cmd.arg("is-active").args(names);
        let out = process::run(&mut cmd, self.timeout).ok()?;
        Some(out.stdout.lines().map(|l| l.trim().to_string()).collect())
    }

    /// Runs `f` while `names` are looked up ([`look_up`](Self::look_up))
    /// on another thread; [`current`](Self::current) waits for that answer
    /// rather than asking again.
    pub fn looking_up<R>(&self, names: &[&str], f: impl FnOnce() -> R) -> R {
        self.set_looking(true);
        std::thread::scope(|s| {
            s.spawn(|| {
                self.look_up(names);
                self.set_looking(false);
            });
            f()
        })
    }

    fn set_looking(&self, on: bool) {
        let (lock, changed) = &*self.looking;
        if let Ok(mut l) = lock.lock() {
            *l = on;
            changed.notify_all();
        }
    }

    /// The status [`look_up`](Self::look_up) kept (waiting for one under
    /// way, within the timeout), else asked now.
    pub fn current(&self, name: &str) -> Result<Status, ServiceError> {
        let (lock, changed) = &*self.looking;
        if let Ok(l) = lock.lock() {
            let _ = changed.wait_timeout_while(l, self.timeout, |on| *on);
        }
        match self.settled(name) {
            Some(s) => Ok(s),
            None => self.status(name),
        }
    }

    /// systemd: those of `names` (statuses from [`look_up`](Self::look_up))
    /// not yet as `action` leaves them, stopped or started by one
    /// `systemctl ACTION A B …` — one transaction, as an administrator
    /// types it; systemd orders its jobs by the units' own `After=` and
    /// `Before=` — then waited for until each is so. Each one's step then
    /// reports it without acting again. SysV, or anything failing: nothing
    /// is kept, and each step acts (and reports) on its own.
    pub fn act_together(&self, names: &[&str], action: Action) {
        if self.backend != ServiceBackend::Systemd || action == Action::Restart {
            return;
        }
        let from = match action {
            Action::Start => Status::Stopped,
            _ => Status::Running,
        };
        let due: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.settled(n) == Some(from))
            .collect();
        if due.len() < 2 || due.iter().any(|n| self.check_unit(n).is_err()) {
            return;
        }
        let mut cmd = self.systemctl();
        cmd.arg(action.as_str()).args(&due);
        let acted = process::run(&mut cmd, self.timeout).is_ok_and(|o| o.status.success());
        if !acted || !self.settle_all(&due, action.expected()) {
            // Whatever happened, each step asks afresh.
            for n in &due {
                self.remember(n, None);
            }
            return;
        }
        if let Ok(mut done) = self.together.lock() {
            for n in &due {
                done.insert((action.as_str(), n.to_string()));
                self.remember(n, Some(action.expected()));
            }
        }
    }

    /// Waits (bounded by `settle`) until `systemctl is-active` reports each
    /// of `names` as `want`.
    fn settle_all(&self, names: &[&str], want: Status) -> bool {
        let deadline = Instant::now() + self.settle;
        loop {
            let Some(states) = self.active_states(names) else {
                return false;
            };
            // Stricter than is_stopped: a unit still deactivating may still write.
            let settled = states.len() == names.len()
                && states.iter().all(|s| match want {
                    Status::Running => s == "active",
                    Status::Stopped => matches!(s.as_str(), "inactive" | "failed"),
                });
            if settled {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether systemd itself orders `first` before `then` in one
    /// transaction: `then`'s unit has `After=` `first`'s, or `first`'s has
    /// `Before=` `then`'s (in the unit file or a drop-in under the root).
    /// What the units do not order, systemd starts at once.
    pub fn orders(&self, first: &str, then: &str) -> bool {
        let (a, b) = (unit_file(first), unit_file(then));
        self.unit_list(&b, "After").contains(&a) || self.unit_list(&a, "Before").contains(&b)
    }

    /// The units named by `key=` lines of `unit`: its file (the first unit
    /// directory that has it) then its drop-ins (`UNIT.d/*.conf`, in name
    /// order); an empty `key=` clears what came before, as in systemd.
    fn unit_list(&self, unit: &str, key: &str) -> Vec<String> {
        let mut files: Vec<PathBuf> = UNIT_DIRS
            .iter()
            .map(|d| self.root.join(d).join(unit))
            .find(|p| p.is_file())
            .into_iter()
            .collect();
        let mut dropins: BTreeMap<std::ffi::OsString, PathBuf> = BTreeMap::new();
        for dir in UNIT_DIRS.iter().rev() {
            let Ok(entries) = std::fs::read_dir(self.root.join(dir).join(format!("{unit}.d")))
            else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "conf") {
                    // An earlier directory's drop-in of the same name wins.
                    dropins.insert(e.file_name(), path);
                }
            }
        }
        files.extend(dropins.into_values());
        let mut units = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for line in text.lines() {
                let Some((k, v)) = line.trim().split_once('=') else {
                    continue;
                };
                if k.trim() != key {
                    continue;
                }
                if v.trim().is_empty() {
                    units.clear();
                }
                units.extend(v.split_whitespace().map(str::to_string));
            }
        }
        units
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
        if self
            .together
            .lock()
            .is_ok_and(|mut d| d.remove(&(action.as_str(), name.to_string())))
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

/// What `systemctl is-active` prints for a unit that is stopped or stopping.
fn is_stopped(state: &str) -> bool {
    matches!(state, "inactive" | "failed" | "deactivating")
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

    #[test]
    fn units_order_each_other_by_after_and_before_and_their_drop_ins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let unit = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        unit(
            "usr/lib/systemd/system/iml-manager.target",
            "[Unit]\nRequires=nginx.service\nAfter=nginx.service network.target\n",
        );
        unit(
            "usr/lib/systemd/system/nginx.service",
            "[Unit]\nAfter=network.target\n",
        );
        unit(
            "usr/lib/systemd/system/rabbitmq-server.service",
            "[Unit]\nBefore=postgresql-9.6.service\n",
        );
        unit("usr/lib/systemd/system/grafana-server.service", "[Unit]\n");
        let s = Services::new(ServiceBackend::Systemd, root);
        assert!(s.orders("nginx", "iml-manager.target"));
        assert!(!s.orders("iml-manager.target", "nginx"));
        assert!(s.orders("rabbitmq-server", "postgresql-9.6"));
        assert!(!s.orders("rabbitmq-server", "nginx"));
        assert!(!s.orders("grafana-server", "iml-manager.target"));

        // A drop-in adds an order; /etc's copy of a drop-in wins over
        // /usr/lib's; an empty `After=` clears what came before.
        unit(
            "usr/lib/systemd/system/iml-manager.target.d/50-grafana.conf",
            "[Unit]\nAfter=grafana-server.service\n",
        );
        assert!(s.orders("grafana-server", "iml-manager.target"));
        unit(
            "etc/systemd/system/iml-manager.target.d/50-grafana.conf",
            "[Unit]\n",
        );
        assert!(!s.orders("grafana-server", "iml-manager.target"));
        unit(
            "etc/systemd/system/iml-manager.target.d/90-reset.conf",
            "[Unit]\nAfter=\nAfter=rabbitmq-server.service\n",
        );
        assert!(!s.orders("nginx", "iml-manager.target"));
        assert!(s.orders("rabbitmq-server", "iml-manager.target"));
        // /etc's unit file hides /usr/lib's.
        unit(
            "etc/systemd/system/nginx.service",
            "[Unit]\nBefore=grafana-server.service\n",
        );
        assert!(s.orders("nginx", "grafana-server"));
    }
}
