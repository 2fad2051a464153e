//! Benchmark helper for `benches/compare`: keeps a golden EL6 manager
//! sandbox (`imlrecover::sandbox::manager::Sandbox`) alive and drives it from
//! a line protocol on stdin, so that a shell script can time the real CLI
//! against it.
//!
//! ```text
//! bench_sandbox DIR        # DIR must exist and be empty
//! ```
//!
//! Builds the golden manager under DIR, writes `DIR/sandbox.env` (shell
//! assignments: ROOT, BUNDLES, INSTALLER, PGHOST, PGPORT, VAR_ARGS as an
//! array) and prints `ready`. Then reads commands, one per line, answering
//! each with `ok` or `error: ...`:
//!
//! * `disaster` — the server dies (see `Sandbox::disaster`); `sandbox.env`
//!   is rewritten for the new cluster;
//! * `quit` (or end of input) — kill the sandbox's daemons, stop and remove
//!   its PostgreSQL cluster, exit.
//!
//! End of input is a quit, so a script that dies still leaves nothing running.

use imlrecover::sandbox::manager::Sandbox;
use std::io::{BufRead, Write};
use std::path::Path;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn write_env(sb: &Sandbox) -> std::io::Result<()> {
    let mut text = String::new();
    text.push_str(&format!("ROOT={}\n", quote(&sb.root.display().to_string())));
    text.push_str(&format!(
        "BUNDLES={}\n",
        quote(&sb.bundles.display().to_string())
    ));
    text.push_str(&format!(
        "INSTALLER={}\n",
        quote(&sb.installer.display().to_string())
    ));
    let mut pghost = String::new();
    let mut pgport = String::new();
    for (k, v) in sb.vars() {
        match k.as_str() {
            "pg_host" => pghost = v,
            "pg_port" => pgport = v,
            _ => {}
        }
    }
    text.push_str(&format!(
        "PGHOST={}\nPGPORT={}\n",
        quote(&pghost),
        quote(&pgport)
    ));
    let args: Vec<String> = sb.var_args().iter().map(|a| quote(a)).collect();
    text.push_str(&format!("VAR_ARGS=({})\n", args.join(" ")));
    let tmp = sb.dir.join("sandbox.env.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, sb.dir.join("sandbox.env"))
}

fn main() {
    let dir = match std::env::args().nth(1) {
        Some(d) => d,
        None => {
            eprintln!("usage: bench_sandbox DIR");
            std::process::exit(2);
        }
    };
    let stdout = std::io::stdout();
    let say = |line: &str| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let mut sb = match Sandbox::golden(Path::new(&dir)) {
        Ok(sb) => sb,
        Err(e) => {
            say(&format!("error: {e}"));
            std::process::exit(1);
        }
    };
    if sb.cluster.is_none() {
        say("error: no PostgreSQL server binaries on this machine");
        std::process::exit(1);
    }
    if let Err(e) = write_env(&sb) {
        say(&format!("error: writing sandbox.env: {e}"));
        std::process::exit(1);
    }
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "disaster" => match sb.disaster() {
                Ok(()) => match write_env(&sb) {
                    Ok(()) => say("ok"),
                    Err(e) => say(&format!("error: writing sandbox.env: {e}")),
                },
                Err(e) => say(&format!("error: {e}")),
            },
            "quit" => break,
            "" => {}
            other => say(&format!("error: unknown command {other:?}")),
        }
    }
    // Drop: daemons killed, cluster stopped and removed.
    drop(sb);
}
