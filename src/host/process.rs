//! Running local programs with a deadline: both output streams are drained
//! concurrently (a full stderr pipe must never block us) and a program that
//! outlives its deadline is killed, never waited on forever.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    /// The last non-empty line of stderr, else of stdout: what a person
    /// most likely needs to see when it failed.
    pub fn last_line(&self) -> &str {
        [&self.stderr, &self.stdout]
            .iter()
            .flat_map(|s| s.lines().rev())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {}; it was killed", humantime::format_duration(*.timeout))]
    Timeout { program: String, timeout: Duration },
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `cmd` (stdin closed) and collects its output, killing it after
/// `timeout`. Nothing polls: a waiter thread reports the exit the moment
/// it happens (init scripts run in milliseconds, many to a step).
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, ProcessError> {
    let program = describe(cmd);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (exited, exit) = mpsc::channel();
    thread::spawn(move || {
        // The receiver may be gone after a timeout; the child is reaped anyway.
        let _ = exited.send(child.wait());
    });
    let status = match exit.recv_timeout(timeout) {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => return Err(ProcessError::Wait { program, source }),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Not reaped yet (the waiter still waits), so the pid is still ours.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = exit.recv();
            return Err(ProcessError::Timeout { program, timeout });
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(ProcessError::Wait {
                program,
                source: std::io::Error::other("the thread waiting for it ended"),
            })
        }
    };
    // A daemon that inherited our pipes keeps them open: give the readers a
    // moment, then return what we have rather than wait for the daemon.
    let deadline = Instant::now() + Duration::from_millis(200);
    let collect = |r: Option<mpsc::Receiver<String>>| {
        r.and_then(|r| {
            r.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok()
        })
        .unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
        elapsed: start.elapsed(),
    })
}

fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// `prog arg1 arg2`, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_both_streams_and_status() {
        let out = run(
            Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.last_line(), "err");
    }

    #[test]
    fn kills_a_program_past_its_deadline() {
        let err = run(
            Command::new("/bin/sleep").arg("30"),
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("did not finish within 100ms"));
    }

    #[test]
    fn a_large_stderr_does_not_deadlock() {
        let out = run(
            Command::new("/bin/sh").args([
                "-c",
                "head -c 1000000 /dev/zero | tr '\\0' x >&2; echo done",
            ]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(out.stderr.len(), 1_000_000);
        assert_eq!(out.stdout, "done\n");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(
            &mut Command::new("/nonexistent/prog"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot run `/nonexistent/prog`"));
    }
}
