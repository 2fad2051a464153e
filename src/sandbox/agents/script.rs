//! The `chroma-agent` init script every fake host runs.

use std::path::Path;

/// The `chroma-agent` stand-in: an LSB init script that keeps its state in
/// `DIR/chroma-agent.running`, appends `ACTION HOSTNAME` to
/// `DIR/chroma-agent.actions` for every action it carries out, and fails
/// `start`/`restart` (exit 1, logged as `ACTION-failed HOSTNAME`) while
/// `DIR/chroma-agent.broken` exists. `status` follows LSB: 0 running,
/// 3 stopped.
pub fn agent_script(dir: &Path) -> String {
    AGENT_SCRIPT.replace("@DIR@", &dir.to_string_lossy())
}

pub(super) const AGENT_SCRIPT: &str = r#"#!/bin/sh
### BEGIN INIT INFO
# Provides:          chroma-agent
# Required-Start:    $network $remote_fs
# Required-Stop:     $network $remote_fs
# Default-Start:     3 4 5
# Default-Stop:      0 1 2 6
# Short-Description: IML agent stand-in (imlrecover sandbox); logs every action
### END INIT INFO
# `service` runs this with a cleared environment.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
DIR='@DIR@'
STATE="$DIR/chroma-agent.running"
LOG="$DIR/chroma-agent.actions"
BROKEN="$DIR/chroma-agent.broken"
HOST=$(hostname)

do_start() {
    if [ -e "$BROKEN" ]; then
        echo "$1-failed $HOST" >> "$LOG"
        echo "chroma-agent: $1 failed: $(cat "$BROKEN")" >&2
        exit 1
    fi
    : > "$STATE"
}

case "$1" in
    start)
        do_start start
        echo "start $HOST" >> "$LOG"
        echo "chroma-agent: start done"
        ;;
    stop)
        rm -f "$STATE"
        echo "stop $HOST" >> "$LOG"
        echo "chroma-agent: stop done"
        ;;
    restart)
        rm -f "$STATE"
        do_start restart
        echo "restart $HOST" >> "$LOG"
        echo "chroma-agent: restart done"
        ;;
    status)
        if [ -e "$STATE" ]; then
            echo "chroma-agent is running on $HOST"
            exit 0
        fi
        echo "chroma-agent is stopped on $HOST"
        exit 3
        ;;
    *)
        echo "Usage: $0 {start|stop|restart|status}" >&2
        exit 2
        ;;
esac
"#;
