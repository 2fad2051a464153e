//! An authenticated session: commands run with a deadline, output bounded.

use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use ssh2::{ExtendedData, Session};

use super::connect::{connect, is_timeout, timeout_ms};
use super::{fan_out_with_progress, Progress, SshError, SshTarget, MAX_OUTPUT_BYTES};

/// An authenticated SSH session to one host.
pub struct Connection {
    pub(super) session: Session,
    pub(super) target: SshTarget,
    pub(super) endpoint: String,
    pub(super) host_key_type: String,
    pub(super) host_key_fingerprint: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .finish_non_exhaustive()
    }
}

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The remote exit status (0 also when the command died of a signal:
    /// check `exit_signal`, or use [`CommandOutput::success`]).
    pub exit_status: i32,
    /// The signal name (`TERM`, `KILL`, ...) if the command died of one.
    pub exit_signal: Option<String>,
    /// stdout and stderr merged in arrival order, lossily decoded as UTF-8,
    /// at most [`MAX_OUTPUT_BYTES`]. The server forwards the two streams
    /// independently, so lines of stdout and stderr may interleave
    /// differently than they were written.
    pub output: String,
    /// True when output beyond [`MAX_OUTPUT_BYTES`] was discarded.
    pub output_truncated: bool,
    pub duration: Duration,
}

impl CommandOutput {
    /// Exited with status 0 and not by a signal.
    pub fn success(&self) -> bool {
        self.exit_status == 0 && self.exit_signal.is_none()
    }
}

impl Connection {
    /// The underlying libssh2 session (for SFTP and other channels).
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// `host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The host key algorithm, e.g. `ssh-ed25519`.
    pub fn host_key_type(&self) -> &str {
        &self.host_key_type
    }

    /// The host key's fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// Runs `command` through the remote user's shell and collects its
    /// merged stdout and stderr. The whole exchange is bounded by `timeout`:
    /// past it the channel is abandoned and [`SshError::CommandTimeout`] is
    /// returned (the remote process is not killed: SSH without a pty has no
    /// portable way to signal it; closing the channel closes its pipes).
    pub fn run(&self, command: &str, timeout: Duration) -> Result<CommandOutput, SshError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut output = Vec::new();
        let mut truncated = false;

        let timed_out = |output: &[u8]| SshError::CommandTimeout {
            endpoint: self.endpoint.clone(),
            command: command.to_string(),
            timeout,
            partial_output: String::from_utf8_lossy(output).into_owned(),
        };
        let ssh_err = |during: &'static str, output: &[u8], source: ssh2::Error| {
            if is_timeout(&source) {
                timed_out(output)
            } else {
                SshError::Session {
                    endpoint: self.endpoint.clone(),
                    during,
                    source,
                }
            }
        };
        // Each blocking libssh2 call gets only the time left until the deadline.
        let arm = || -> bool {
            let left = deadline.saturating_duration_since(Instant::now());
            self.session.set_timeout(timeout_ms(left));
            !left.is_zero()
        };

        arm();
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| ssh_err("opening a channel", &output, e))?;
        // Merge stderr into stdout: reading only stdout while the remote
        // fills the stderr window would deadlock.
        let result = (|| {
            channel
                .handle_extended_data(ExtendedData::Merge)
                .map_err(|e| ssh_err("setting up the channel", &output, e))?;
            arm();
            channel
                .exec(command)
                .map_err(|e| ssh_err("starting the command", &output, e))?;
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                if !arm() {
                    return Err(timed_out(&output));
                }
                match channel.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_OUTPUT_BYTES.saturating_sub(output.len());
                        if n > room {
                            truncated = true;
                        }
                        output.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        return Err(timed_out(&output))
                    }
                    Err(source) => {
                        return Err(SshError::Io {
                            endpoint: self.endpoint.clone(),
                            during: "reading command output",
                            source,
                        })
                    }
                }
            }
            if !arm() {
                return Err(timed_out(&output));
            }
            // EOF comes when the pipes close; the exit status follows it.
            channel
                .wait_close()
                .map_err(|e| ssh_err("waiting for the command to exit", &output, e))?;
            let exit_status = channel
                .exit_status()
                .map_err(|e| ssh_err("reading the exit status", &output, e))?;
            let exit_signal = channel
                .exit_signal()
                .ok()
                .and_then(|s| s.exit_signal)
                .filter(|s| !s.is_empty());
            Ok((exit_status, exit_signal))
        })();

        let (exit_status, exit_signal) = match result {
            Ok(r) => r,
            Err(e) => {
                // Give up on the channel without waiting for the peer: a
                // peer still running the command answers neither close
                // nor free, and 200 ms keeps the overrun small.
                self.session.set_timeout(200);
                let _ = channel.close();
                return Err(e);
            }
        };
        Ok(CommandOutput {
            exit_status,
            exit_signal,
            output: String::from_utf8_lossy(&output).into_owned(),
            output_truncated: truncated,
            duration: start.elapsed(),
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A polite disconnect, bounded so a dead peer cannot stall a drop.
        self.session.set_timeout(1000);
        let _ = self.session.disconnect(
            Some(ssh2::DisconnectCode::ByApplication),
            "imlrecover done",
            None,
        );
    }
}

/// Connects to every target and runs `command` there, at most `parallelism`
/// hosts at once; results come back in the order of `targets`. Each host's
/// connection is closed as soon as its command is done, so at most
/// `parallelism` connections are open at any time.
pub fn run_on_all<P: FnMut(Progress)>(
    targets: &[SshTarget],
    command: &str,
    timeout: Duration,
    parallelism: usize,
    progress: P,
) -> Vec<Result<CommandOutput, SshError>> {
    fan_out_with_progress(
        targets,
        parallelism,
        |target| connect(target)?.run(command, timeout),
        progress,
    )
}
