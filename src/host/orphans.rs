//! Processes an apply started, found again after it died. Init scripts run
//! by an apply get `IMLRECOVER_RUN=<run>` and `IMLRECOVER_SERVICE=<name>`
//! in their environment, which every daemon they start inherits; a later
//! apply reads `/proc/*/environ` for the run it resumes, and ends those
//! whose service says it is stopped (started without a pid file: the kill
//! came between the daemon and its pid file), so they never run twice.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

pub const RUN_VAR: &str = "IMLRECOVER_RUN";
pub const SERVICE_VAR: &str = "IMLRECOVER_SERVICE";

/// A live process started for a service by the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub pid: i32,
    pub service: String,
    /// Its command line, spaces between the arguments.
    pub command: String,
}

impl std::fmt::Display for Tagged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({}): {}", self.pid, self.service, self.command)
    }
}

/// Every live process whose environment names `run`. Processes we may not
/// read (another user's, when not root) are skipped.
pub fn started_by(run: &str) -> Vec<Tagged> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut found: Vec<Tagged> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let var = |name: &str| {
                let prefix = format!("{name}=");
                env.split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            if var(RUN_VAR).as_deref() != Some(run) {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let command = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(" ");
            Some(Tagged {
                pid,
                service: var(SERVICE_VAR).unwrap_or_default(),
                command,
            })
        })
        .collect();
    found.sort_by_key(|t| t.pid);
    found
}

/// SIGTERM, then SIGKILL after `grace`; true once the process is gone.
pub fn end(pid: i32, grace: Duration) -> bool {
    let p = Pid::from_raw(pid);
    if kill(p, Signal::SIGTERM).is_err() {
        return gone(pid);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(p, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Gone, or a zombie (its parent, maybe us, reaps it).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_process_is_found_and_ended() {
        let run = format!("test-run-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(RUN_VAR, &run)
            .env(SERVICE_VAR, "ntpd")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let found = started_by(&run);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, pid);
        assert_eq!(found[0].service, "ntpd");
        assert_eq!(found[0].command, "sleep 30");
        assert!(started_by("another-run").iter().all(|t| t.pid != pid));
        assert!(end(pid, Duration::from_secs(5)));
        let _ = child.wait();
    }
}
