//! Benchmark helper for `benches/compare`: keeps a golden EL6 manager
//! sandbox (`imlrecover::sandbox::manager::Sandbox`) alive and drives it from
//! a line protocol on stdin, so that a shell script can time the real CLI
//! against it.
//!
//! ```text
//! bench_sandbox DIR                                  # DIR must exist and be empty
//! bench_sandbox DIR --release VERSION --systemctl TOOLS
//! ```
//!
//! Builds the golden manager under DIR, writes `DIR/sandbox.env` (shell
//! assignments: ROOT, BUNDLES, INSTALLER, PGHOST, PGPORT, VAR_ARGS as an
//! array) and prints `ready`. With `--release` (5.1, 6.2, …) it is a whole
//! EL7 manager of that release (`imlrecover::sandbox::el7`), its units run
//! by the docker-systemctl-replacement that `pip3 install --target TOOLS`
//! put there; `sandbox.env` then also has SYSTEMCTL (the command line, its
//! `--root` included), PYTHONPATH, INFLUX_RPC and INFLUX_DBS (an array). Then reads commands, one per line, answering
//! each with `ok` or `error: ...`:
//!
//! * `disaster` — the server dies (see `Sandbox::disaster`); `sandbox.env`
//!   is rewritten for the new cluster;
//! * `quit` (or end of input) — kill the sandbox's daemons, stop and remove
//!   its PostgreSQL cluster, exit.
//!
//! End of input is a quit, so a script that dies still leaves nothing running.

use imlrecover::init::Family;
use imlrecover::sandbox::el7::{El7Manager, Systemctl};
use imlrecover::sandbox::manager::Sandbox;
use std::io::{BufRead, Write};
use std::path::Path;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The EL6 sandbox, or a whole EL7 manager of a release.
enum Bench {
    El6(Box<Sandbox>),
    El7(Box<El7Manager>),
}

impl Bench {
    fn sandbox(&self) -> &Sandbox {
        match self {
            Bench::El6(sb) => sb,
            Bench::El7(m) => &m.sandbox,
        }
    }

    fn disaster(&mut self) -> Result<(), String> {
        match self {
            Bench::El6(sb) => sb.disaster().map_err(|e| e.to_string()),
            Bench::El7(m) => m.disaster().map_err(|e| e.to_string()),
        }
    }

    fn write_env(&self) -> std::io::Result<()> {
        let sb = self.sandbox();
        let Bench::El7(m) = self else {
            return write_env(sb, sb.var_args(), String::new());
        };
        let mut extra = String::new();
        for (k, v) in m.env() {
            let k = if k == "IMLRECOVER_SYSTEMCTL" {
                "SYSTEMCTL".to_string()
            } else {
                k
            };
            extra.push_str(&format!("{k}={}\n", quote(&v)));
        }
        if let Some(d) = &m.influxd {
            extra.push_str(&format!("INFLUX_RPC={}\n", quote(&d.rpc)));
        }
        let dbs: Vec<String> = m.databases.iter().map(|d| quote(d)).collect();
        extra.push_str(&format!("INFLUX_DBS=({})\n", dbs.join(" ")));
        write_env(sb, m.var_args(), extra)
    }
}

fn write_env(sb: &Sandbox, var_args: Vec<String>, extra: String) -> std::io::Result<()> {
    let mut text = extra;
    text.push_str(&format!("ROOT={}\n", quote(&sb.root.display().to_string())));
    text.push_str(&format!(
        "BUNDLES={}\n",
        quote(&sb.bundles.display().to_string())
    ));
    text.push_str(&format!(
        "INSTALLER={}\n",
        quote(&installer(&var_args).unwrap_or_else(|| sb.installer.display().to_string()))
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
    let args: Vec<String> = var_args.iter().map(|a| quote(a)).collect();
    text.push_str(&format!("VAR_ARGS=({})\n", args.join(" ")));
    let tmp = sb.dir.join("sandbox.env.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, sb.dir.join("sandbox.env"))
}

/// The `installer=` of `--var` arguments.
fn installer(var_args: &[String]) -> Option<String> {
    var_args
        .iter()
        .find_map(|a| a.strip_prefix("installer=").map(str::to_string))
}

fn usage() -> ! {
    eprintln!("usage: bench_sandbox DIR [--release VERSION --systemctl TOOLS]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, release) = match args.as_slice() {
        [d] => (d.clone(), None),
        [d, r, v, s, tools] if r == "--release" && s == "--systemctl" => {
            let Some(f) = Family::of_version(v) else {
                usage()
            };
            (d.clone(), Some((f, std::path::PathBuf::from(tools))))
        }
        _ => usage(),
    };
    let stdout = std::io::stdout();
    let say = |line: &str| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let built = match &release {
        None | Some((Family::El6, _)) => {
            Sandbox::golden(Path::new(&dir)).map(|s| Bench::El6(Box::new(s)))
        }
        Some((f, tools)) => El7Manager::golden(Path::new(&dir), *f, &Systemctl::at(tools), None)
            .map(|m| Bench::El7(Box::new(m))),
    };
    let mut sb = match built {
        Ok(sb) => sb,
        Err(e) => {
            say(&format!("error: {e}"));
            std::process::exit(1);
        }
    };
    if sb.sandbox().cluster.is_none() {
        say("error: no PostgreSQL server binaries on this machine");
        std::process::exit(1);
    }
    if let Err(e) = sb.write_env() {
        say(&format!("error: writing sandbox.env: {e}"));
        std::process::exit(1);
    }
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "disaster" => match sb.disaster() {
                Ok(()) => match sb.write_env() {
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
