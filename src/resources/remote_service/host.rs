//! One host of a `remote_service`: connect, act, check, within the
//! resource's timeout.

use super::{target, RemoteServiceSpec};
use crate::host::ssh::{self, SshError};
use std::time::{Duration, Instant};

/// What happened on one host.
#[derive(Debug)]
pub(super) struct HostResult {
    pub seconds: f64,
    pub last_line: String,
}

/// Bounded retries of `check` after the action: an agent may take a moment.
const CHECK_TRIES: u32 = 5;
const CHECK_PAUSE: Duration = Duration::from_millis(500);

fn remote_command(spec: &RemoteServiceSpec) -> String {
    let name = ssh::shell_quote(&spec.name);
    match spec.init {
        crate::recipe::ServiceBackend::Sysv => format!("service {name} {}", spec.action.as_str()),
        crate::recipe::ServiceBackend::Systemd => {
            format!("systemctl {} {name}", spec.action.as_str())
        }
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// `exited with status 1` / `was killed by signal TERM`.
fn how_it_ended(out: &ssh::CommandOutput) -> String {
    match &out.exit_signal {
        Some(sig) => format!("was killed by signal {sig}"),
        None => format!("exited with status {}", out.exit_status),
    }
}

/// Connect, act, check: every failure becomes this host's error, within
/// the resource's timeout (see the module documentation).
pub(super) fn act_on_host(
    spec: &RemoteServiceSpec,
    host: &str,
    root: &crate::host::fs::Root,
) -> Result<HostResult, HostResult> {
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let fail = |line: String| HostResult {
        seconds: start.elapsed().as_secs_f64(),
        last_line: line,
    };
    // The time left for `what`, or this host's error when none is.
    let left = |what: &str| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(fail(format!(
                "timed out after {} before {what}",
                human(spec.timeout)
            )))
        } else {
            Ok(left)
        }
    };
    // Command errors in terms of the resource's timeout, not of the slice
    // of it that was left.
    let run_err = |command: &str, e: SshError| match e {
        SshError::CommandTimeout { partial_output, .. } => {
            let partial = last_line(&partial_output);
            fail(format!(
                "`{command}` did not finish within the {} timeout (it may still be running there){}",
                human(spec.timeout),
                if partial.is_empty() { String::new() } else { format!("; last output: {partial}") }
            ))
        }
        other => fail(other.to_string()),
    };

    let t = target(spec, host, root).map_err(fail)?;
    let conn = ssh::connect(&t).map_err(|e| fail(e.to_string()))?;
    let action = remote_command(spec);
    let out = conn
        .run(&action, left(&format!("`{action}`"))?)
        .map_err(|e| run_err(&action, e))?;
    if !out.success() {
        return Err(fail(format!(
            "`{action}` {}: {}",
            how_it_ended(&out),
            last_line(&out.output)
        )));
    }
    let mut line = last_line(&out.output);
    if let Some(check) = &spec.check {
        let mut tries = 0;
        loop {
            tries += 1;
            let c = conn
                .run(check, left(&format!("the check `{check}`"))?)
                .map_err(|e| run_err(check, e))?;
            if c.success() {
                line = last_line(&c.output);
                break;
            }
            let pause = CHECK_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
            if tries >= CHECK_TRIES || pause.is_zero() {
                return Err(fail(format!(
                    "`{action}` succeeded, but the check `{check}` still fails after {tries} {} ({}): {}",
                    if tries == 1 { "try" } else { "tries" },
                    how_it_ended(&c),
                    last_line(&c.output)
                )));
            }
            std::thread::sleep(pause);
        }
    }
    Ok(HostResult {
        seconds: start.elapsed().as_secs_f64(),
        last_line: line,
    })
}

pub(super) fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(last_line("a\nb  \n\n"), "b");
        assert_eq!(last_line(""), "");
    }
}
