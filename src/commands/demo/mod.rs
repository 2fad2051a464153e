//! `imlrecover demo`: the whole runbook in a temporary sandbox, narrated.
//! A working manager is built from real parts, backed up, destroyed,
//! planned, restored and checked, by running this very binary's commands,
//! so what is shown is their real output. Everything is removed afterwards.

mod manager;

use crate::bundle::{Bundle, EntryKind};
use crate::cli::DemoArgs;
use crate::commands::{CmdResult, Outcome};
use crate::host::postgres as pg;
use crate::init::Family;
use crate::printer::Printer;
use crate::sandbox::agents::{Agents, AgentsError};
use crate::sandbox::manager::Sandbox;
use crate::views;
use crate::views::demo::{CommandRecord, DemoRecord, Narrator};
use manager::DemoHost;
use miette::{miette, IntoDiagnostic};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The shipped EL6 plan, so the demo works from an installed binary.
const PLAN: &str = include_str!("../../../plans/iml-manager.hcl");

pub fn run(printer: &Printer, args: &DemoArgs) -> CmdResult {
    let quiet = printer.for_document();
    let p = if args.output.machine() {
        &quiet
    } else {
        printer
    };
    let mut record = DemoRecord::default();
    let result = demo(p, args, &mut record);
    views::document::finish(printer, args.output.format, "demo", &record, result)
}

fn demo(printer: &Printer, args: &DemoArgs, record: &mut DemoRecord) -> CmdResult {
    let started = Instant::now();
    let family = args.release.unwrap_or(Family::El6);
    let have_pg = pg::find_program(None, "initdb").is_ok();
    if Command::new("openssl").arg("version").output().is_err() {
        return Err(miette!(
            help =
                "install it (apt-get install openssl / yum install openssl) and run the demo again",
            "the demo needs the `openssl` program to make the manager's certificates"
        ));
    }
    // A later release's demo needs its parts whole; refused before anything is built.
    let lacking = manager::missing_for(family, have_pg);
    if !lacking.is_empty() {
        return Err(miette!(
            help = format!(
                "install them and run the demo again:\n  {}",
                lacking.join("\n  ")
            ),
            "the demo of {} needs parts this machine lacks",
            family.releases()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("imlrecover-demo-")
        .tempdir()
        .into_diagnostic()?;
    let dir = tmp.path();
    record.sandbox = Some(dir.display().to_string());
    record.release = Some(family.releases().to_string());
    let say = Narrator { p: printer };
    say.title(dir, family.releases())?;
    if !have_pg {
        record
            .missing
            .push("PostgreSQL server binaries (initdb)".into());
        say.missing(
            "no PostgreSQL server binaries (initdb) on this machine: the demo runs without the database.",
        )?;
    }

    phase(&say, record, 1, "A working IML manager")?;
    let mut host = if family == Family::El6 {
        el6(dir, have_pg, &say, record)?
    } else {
        DemoHost::el7(dir, family)?
    };
    let recipe = dir.join("iml-manager.hcl");
    let root = host.sandbox().root.clone();
    let (services, how) = host.services();
    say.built(&root, &services, how)?;
    if family == Family::El6 {
        let text = if have_pg {
            PLAN.to_string()
        } else {
            without_database(PLAN)
        };
        std::fs::write(&recipe, text).into_diagnostic()?;
    } else {
        // The recipe a site would start from: drafted from the host.
        let mut init = Command::new(self_exe());
        init.args(["--color", color(printer), "init", "--root"])
            .arg(&root)
            .args(["--var", "agents=[]", "--var"])
            .arg(format!("installer={}", host.installer().display()))
            .arg("-o")
            .arg(&recipe);
        step(
            printer,
            record,
            init,
            "init --root ... -o iml-manager.hcl",
            &[0],
        )?;
        say.no_agents()?;
    }
    let rows_before = host.rows()?;
    let (stats_before, points) = host.statistics()?;
    if let Some(a) = host.agents() {
        say.storage_servers(&a.hosts())?;
    }
    if let Some(rows) = &rows_before {
        say.cluster(rows.len(), rows.values().sum::<u64>())?;
    }
    if !stats_before.is_empty() {
        say.statistics(points)?;
    }
    let certs_before = read_certs(&root);
    let bundles = host.sandbox().bundles.clone();

    phase(
        &say,
        record,
        2,
        "Backup (the runbook's \"Creating a Backup Manifest\")",
    )?;
    let backup = {
        let mut c = base(printer, &host, &recipe, "backup");
        c.arg("--bundle-dir").arg(&bundles);
        c
    };
    step(printer, record, backup, "backup ...", &[0])?;
    let bundle = bundles.join("latest");

    phase(&say, record, 3, "Disaster: the manager's disk dies")?;
    host.disaster()?;
    say.disaster(!stats_before.is_empty())?;

    // Planned once and shown once; apply runs that saved plan (after
    // checking that nothing it touches moved), as an operator would.
    phase(&say, record, 4, "Plan: what a restore would change")?;
    let planfile = dir.join("restore.plan");
    let mut plan = base(printer, &host, &recipe, "plan");
    plan.arg("--bundle")
        .arg(&bundle)
        .arg("--out")
        .arg(&planfile);
    step(printer, record, plan, "plan ... --out restore.plan", &[0])?;

    phase(
        &say,
        record,
        5,
        "Apply: reinstall, quiesce, restore, restart",
    )?;
    let restore_started = Instant::now();
    let mut apply = Command::new(self_exe());
    apply
        .args(["--color", color(printer), "apply"])
        .arg(&planfile)
        .envs(host.env());
    step(printer, record, apply, "apply restore.plan", &[0])?;
    let restored_in = restore_started.elapsed();

    phase(
        &say,
        record,
        6,
        "Check: the host matches, and what came back is the original",
    )?;
    let mut again = base(printer, &host, &recipe, "plan");
    again
        .arg("--bundle")
        .arg(&bundle)
        .arg("--detailed-exitcode");
    step(printer, record, again, "plan ... --detailed-exitcode", &[0])?;
    let chain = dir_chain(&root);
    let certs_ok = read_certs(&root) == certs_before && chain.is_ok();
    record.check(
        "certificates",
        certs_ok,
        match &chain {
            Err(e) => e.clone(),
            Ok(()) if certs_ok => {
                "byte-for-byte the originals; manager.crt verifies against authority.crt".into()
            }
            Ok(()) => "the restored certificates differ from the originals".into(),
        },
    );
    let rows = host.rows()?;
    if rows.is_some() {
        record.check(
            "database",
            rows == rows_before,
            format!(
                "{} rows restored, {} before the disaster",
                rows.as_ref().map_or(0, |r| r.values().sum::<u64>()),
                rows_before.as_ref().map_or(0, |r| r.values().sum::<u64>())
            ),
        );
    }
    let (stats, points_after) = host.statistics()?;
    let stats_ok = stats == stats_before;
    if !stats_before.is_empty() {
        record.check(
            "statistics",
            stats_ok,
            format!(
                "InfluxDB: {points_after} points restored, {points} before the disaster; series and counts per database {}",
                if stats_ok { "equal" } else { "differ" }
            ),
        );
    }
    if rows != rows_before || !certs_ok || !stats_ok {
        return Err(miette!(
            "the restored manager differs from the original (certificates equal and verifying: {certs_ok}; database rows equal: {}; statistics equal: {stats_ok}{})",
            rows == rows_before,
            chain.err().map(|e| format!("; {e}")).unwrap_or_default()
        ));
    }
    if let Some(a) = host.agents() {
        let counts = a.restart_counts();
        record.check(
            "agents",
            counts.iter().all(|c| *c == 1),
            format!("chroma-agent restarts per storage server: {counts:?}"),
        );
        if counts.iter().any(|c| *c != 1) {
            return Err(miette!(
                "each agent should have restarted once; counts: {counts:?}"
            ));
        }
        say.agents_restarted(counts.len())?;
    }
    let opened = Bundle::open(&bundle)?;
    let files = opened
        .manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .count();
    let row_count: u64 = rows.as_ref().map_or(0, |r| r.values().sum());
    say.originals(rows.is_some(), !stats.is_empty())?;
    let points = (!stats.is_empty()).then_some(points_after);
    say.restored(restored_in, files, row_count, points, started.elapsed())?;
    record.restore_seconds = Some(restored_in.as_secs_f64());
    record.seconds = started.elapsed().as_secs_f64();
    drop(host);
    if args.keep {
        let kept = tmp.keep();
        record.kept = Some(kept.display().to_string());
        say.kept(&kept)?;
    }
    Ok(Outcome::Clean)
}

/// The EL6 sandbox manager, with three storage servers whose chroma-agent
/// the restore restarts (when this machine has sshd).
fn el6(
    dir: &Path,
    have_pg: bool,
    say: &Narrator,
    record: &mut DemoRecord,
) -> miette::Result<DemoHost> {
    let sb = Sandbox::golden_with(dir, have_pg)?;
    let agents = match Agents::start(&dir.join("agents"), 3) {
        Ok(a) => {
            a.install_client(&sb.root)?;
            Some(a)
        }
        Err(AgentsError::NoSshd) => {
            record
                .missing
                .push("OpenSSH server (/usr/sbin/sshd)".into());
            say.missing("no OpenSSH server (/usr/sbin/sshd) on this machine: the demo runs without storage-server agents.")?;
            None
        }
        Err(e) => {
            record.missing.push(format!("storage servers ({e})"));
            say.missing(&format!(
                "the fake storage servers could not start ({e}): the demo runs without agents."
            ))?;
            None
        }
    };
    Ok(DemoHost::El6 { sb, agents })
}

/// This binary's `sub` command against the sandbox (its variables change
/// after the disaster: a new cluster listens elsewhere).
fn base(printer: &Printer, host: &DemoHost, recipe: &Path, sub: &str) -> Command {
    let mut c = Command::new(self_exe());
    c.args(["--color", color(printer), sub, "-r"])
        .arg(recipe)
        .arg("--root")
        .arg(&host.sandbox().root)
        .args(host.var_args())
        .envs(host.env());
    c
}

fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "imlrecover".into())
}

fn color(printer: &Printer) -> &'static str {
    if printer.color {
        "always"
    } else {
        "never"
    }
}

/// A phase begins: said, and recorded.
fn phase(say: &Narrator, record: &mut DemoRecord, n: usize, title: &str) -> miette::Result<()> {
    record.phase(n, title);
    say.phase(n, title)
}

/// Runs one of our own commands (shown as `imlrecover SHOWN`) with its
/// output shown as it comes; under `--format json|junit` its own JSON
/// document is kept in the record instead.
fn step(
    printer: &Printer,
    record: &mut DemoRecord,
    mut cmd: Command,
    shown: &str,
    ok: &[i32],
) -> miette::Result<()> {
    Narrator { p: printer }.command(shown)?;
    let t0 = Instant::now();
    let (status, output) = if printer.document {
        // plan has --json; init writes a file and has no document.
        if shown.starts_with("plan") {
            cmd.arg("--json");
        } else if !shown.starts_with("init") {
            cmd.arg("--format=json");
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .into_diagnostic()?;
        (out.status, serde_json::from_slice(&out.stdout).ok())
    } else {
        (cmd.status().into_diagnostic()?, None)
    };
    record.command(CommandRecord {
        command: format!("imlrecover {shown}"),
        exit_code: status.code(),
        seconds: t0.elapsed().as_secs_f64(),
        output,
    });
    match status.code() {
        Some(c) if ok.contains(&c) => Ok(()),
        _ => Err(miette!(
            "the demo's `imlrecover {shown}` step failed ({status})"
        )),
    }
}

/// manager.crt against authority.crt, as an agent checks it.
fn dir_chain(root: &Path) -> Result<(), String> {
    let read = |f: &str| {
        std::fs::read(root.join("var/lib/chroma").join(f)).map_err(|e| format!("{f}: {e}"))
    };
    let ca = crate::x509::parse_cert(&read("authority.crt")?)?;
    let leaf = crate::x509::parse_cert(&read("manager.crt")?)?;
    crate::x509::verify_chain(&leaf, &ca)
}

fn read_certs(root: &Path) -> Vec<Vec<u8>> {
    [
        "authority.crt",
        "authority.pem",
        "authority.srl",
        "manager.crt",
        "manager.pem",
    ]
    .iter()
    .map(|f| std::fs::read(root.join("var/lib/chroma").join(f)).unwrap_or_default())
    .collect()
}

/// The shipped plan minus its `database` block and the references to it,
/// for a machine without PostgreSQL.
fn without_database(plan: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut skipping = false;
    for line in plan.lines() {
        if !skipping && line.starts_with("database \"chroma\"") {
            skipping = true;
        }
        if skipping {
            depth += line.matches('{').count();
            depth = depth.saturating_sub(line.matches('}').count());
            if depth == 0 && line.contains('}') {
                skipping = false;
            }
            continue;
        }
        out.push_str(
            &line
                .replace("[database.chroma, ", "[")
                .replace("[database.chroma]", "[]"),
        );
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_without_a_database_still_validates() {
        let text = without_database(PLAN);
        assert!(!text.contains("database.chroma"));
        assert!(!text.contains("database \"chroma\""));
        let recipe = crate::recipe::load_str("demo.hcl", text, &Default::default()).unwrap();
        assert_eq!(recipe.resources.len(), 28);
    }
}
