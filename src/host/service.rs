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
use std::collections::BTreeMap;
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
    #[error(transparent)]
    Process(#[from] ProcessError),
}

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
}

impl Services {
    pub fn new(backend: ServiceBackend, root: &Path) -> Services {
        Services {
            backend,
            root: root.to_path_buf(),
            timeout: Duration::from_secs(90),
            settle: Duration::from_secs(30),
            settled: Arc::default(),
        }
    }

    pub fn backend(&self) -> ServiceBackend {
        self.backend
    }

    fn script(&self, name: &str) -> PathBuf {
        self.root.join("etc/init.d").join(name)
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
                Ok(cmd)
            }
            ServiceBackend::Systemd => {
                let line =
                    std::env::var("IMLRECOVER_SYSTEMCTL").unwrap_or_else(|_| "systemctl".into());
                let mut words = line.split_whitespace();
                let mut cmd = Command::new(words.next().unwrap_or("systemctl"));
                cmd.args(words);
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
