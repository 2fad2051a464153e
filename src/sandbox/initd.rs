//! LSB init scripts around `start-stop-daemon`: real services to stop and
//! start under a sandbox root, each logging its actions so a test (or the
//! demo) can tell how often it was started.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `<root>/etc/init.d/NAME`, an LSB script running a small daemon
/// whose pid file is `<root>/var/run/NAME.pid` and whose action log is
/// `<root>/var/log/sandbox/NAME.log`.
pub fn write_service(root: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = root.join("etc/init.d");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(root.join("var/run"))?;
    std::fs::create_dir_all(root.join("var/log/sandbox"))?;
    let script = dir.join(name);
    std::fs::write(&script, script_text(root, name))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

/// The text of the init script for `name` under `root`.
pub fn script_text(root: &Path, name: &str) -> String {
    format!(
        r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: {name} (imlrecover sandbox service)
### END INIT INFO
mkdir -p '{run}' '{logdir}'
PIDFILE='{pid}'
LOG='{log}'

do_start() {{
    # The daemon's argv[0] names the sandbox, so that `ps` tells whose it is.
    start-stop-daemon --start --quiet --oknodo --background --make-pidfile \
        --pidfile "$PIDFILE" --startas /bin/bash -- \
        -c "exec -a '{marker}' /bin/sleep 86400" || return 1
    echo start >> "$LOG"
}}

do_stop() {{
    start-stop-daemon --stop --quiet --oknodo --retry TERM/10/KILL/5 \
        --pidfile "$PIDFILE" --remove-pidfile || return 1
    echo stop >> "$LOG"
}}

case "$1" in
    start) do_start ;;
    stop) do_stop ;;
    restart) do_stop && do_start ;;
    status)
        start-stop-daemon --status --pidfile "$PIDFILE"
        rc=$?
        case $rc in
            0) echo "{name} is running" ;;
            *) echo "{name} is stopped" ;;
        esac
        exit $rc
        ;;
    *) echo "Usage: $0 {{start|stop|restart|status}}" >&2; exit 2 ;;
esac
"#,
        pid = root.join("var/run").join(format!("{name}.pid")).display(),
        run = root.join("var/run").display(),
        logdir = root.join("var/log/sandbox").display(),
        marker = marker(root, name),
        log = log_path(root, name).display(),
    )
}

/// The argv[0] of a sandbox service's daemon: `imlrecover-sandbox ROOT NAME`.
pub fn marker(root: &Path, name: &str) -> String {
    format!("imlrecover-sandbox {} {name}", root.display())
}

pub fn log_path(root: &Path, name: &str) -> PathBuf {
    root.join("var/log/sandbox").join(format!("{name}.log"))
}

/// The actions a sandbox service has logged, in order ("start", "stop").
pub fn actions(root: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(log_path(root, name))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Kills a sandbox service's daemon by its pid file (cleanup, not a stop).
pub fn kill(root: &Path, name: &str) {
    let pidfile = root.join("var/run").join(format!("{name}.pid"));
    if let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
