//! Key material of the fake hosts and their client: `ssh-keygen`, key
//! fields, fingerprints.

use super::{failed, AgentsError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs a short helper (ssh-keygen) and returns its stdout.
pub(super) fn run(cmd: &mut Command) -> Result<String, AgentsError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ssh-keygen -t KIND` into `dir/name` (and `dir/name.pub`), with an
/// optional passphrase (`""` for none).
pub fn keygen(
    dir: &Path,
    name: &str,
    kind: &str,
    passphrase: &str,
) -> Result<PathBuf, AgentsError> {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-C", name, "-N", passphrase]);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    run(cmd.arg("-f").arg(&path))?;
    Ok(path)
}

/// `TYPE BASE64` of a public key line (its comment dropped), the form a
/// known_hosts entry holds.
pub fn key_fields(public_line: &str) -> String {
    public_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fingerprint of a public key file as `ssh-keygen -lf` prints it
/// (`SHA256:...`).
pub fn fingerprint(public_key_file: &Path) -> Result<String, AgentsError> {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(public_key_file))?;
    out.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| failed(format!("no fingerprint in `ssh-keygen -lf` output: {out}")))
}
