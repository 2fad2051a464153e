//! `imlrecover pull sftp://USER@HOST[:PORT]/PATH DIR`: fetch a bundle back.

use super::{CmdResult, Outcome};
use crate::cli::PullArgs;
use crate::printer::Printer;
use crate::transfer::{self, RemoteTarget};
use indicatif::HumanBytes;
use miette::Report;

pub fn run(printer: &Printer, args: &PullArgs) -> CmdResult {
    let target = RemoteTarget::parse(&args.target).map_err(Report::new)?;
    let opts = super::push::ssh_options(&args.ssh);
    let pulled = transfer::pull(&target, &args.dir, args.bundle.as_deref(), &opts, printer)
        .map_err(Report::new)?;
    printer.line(&format!(
        "{} {} → {}",
        printer.green("Pull complete:"),
        printer.bold(&pulled.name),
        pulled.path.display()
    ))?;
    printer.line(&format!(
        "  {} files, {} fetched; the bundle verifies (every hash, the dump, the certificates)",
        pulled.files,
        HumanBytes(pulled.bytes)
    ))?;
    printer.line(&format!(
        "  restore with: imlrecover plan -r RECIPE --bundle {}",
        pulled.path.display()
    ))?;
    Ok(Outcome::Clean)
}
