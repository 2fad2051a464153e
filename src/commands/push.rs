//! `imlrecover push BUNDLE sftp://USER@HOST[:PORT]/PATH`: an off-host copy.

use super::{CmdResult, Outcome};
use crate::bundle::Bundle;
use crate::cli::{PushArgs, SftpArgs};
use crate::printer::Printer;
use crate::transfer::{self, RemoteTarget, SshOptions};
use indicatif::HumanBytes;
use miette::Report;
use std::path::Path;
use std::time::Instant;

pub fn run(printer: &Printer, args: &PushArgs) -> CmdResult {
    let target = RemoteTarget::parse(&args.target).map_err(Report::new)?;
    push_bundle(
        printer,
        &args.bundle,
        &target,
        &args.ssh,
        Some(&args.retention.policy()),
    )?;
    Ok(Outcome::Clean)
}

pub(crate) fn ssh_options(args: &SftpArgs) -> SshOptions {
    SshOptions {
        identity: args.identity.clone(),
        known_hosts: args.known_hosts.clone(),
    }
}

/// Shared with `backup --push`.
pub(crate) fn push_bundle(
    printer: &Printer,
    bundle: &Path,
    target: &RemoteTarget,
    ssh: &SftpArgs,
    retention: Option<&crate::bundle::retention::Policy>,
) -> miette::Result<()> {
    let started = Instant::now();
    let bundle = Bundle::open(bundle).map_err(Report::new)?;
    let pushed = transfer::push(&bundle, target, &ssh_options(ssh), retention, printer)
        .map_err(Report::new)?;
    crate::metrics::record(crate::metrics::Family::gauge(
        "imlrecover_push_bytes",
        "Bytes the last successful push sent (0 when the bundle was already there).",
        pushed.bytes as f64,
    ));
    crate::metrics::record(crate::metrics::Family::gauge(
        "imlrecover_push_files",
        "Files the last successful push sent.",
        pushed.files as f64,
    ));
    if pushed.already_there {
        printer.line(&format!(
            "{} {} is already on {target} (nothing sent)",
            printer.green("Push complete:"),
            printer.bold(&bundle.name()),
        ))?;
    } else {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        printer.line(&format!(
            "{} {} → {}/{}",
            printer.green("Push complete:"),
            printer.bold(&bundle.name()),
            target.to_string().trim_end_matches('/'),
            bundle.name(),
        ))?;
        printer.line(&format!(
            "  {} files, {} sent and verified (blake3 of every byte, remote sizes) in {} ({}/s)",
            pushed.files,
            HumanBytes(pushed.bytes),
            humantime::format_duration(std::time::Duration::from_millis(
                started.elapsed().as_millis() as u64
            )),
            HumanBytes((pushed.bytes as f64 / secs) as u64),
        ))?;
    }
    if let Some(why) = &pushed.one_connection {
        printer.line(&format!(
            "  {} big files went over one SSH connection: the second one failed ({why})",
            printer.yellow("Note:")
        ))?;
    }
    for old in &pushed.pruned {
        printer.line(&format!("  pruned remote {old}"))?;
    }
    Ok(())
}
