//! `imlrecover pull sftp://USER@HOST[:PORT]/PATH DIR`: fetch a bundle back.

use super::{CmdResult, Outcome};
use crate::cli::PullArgs;
use crate::printer::Printer;
use crate::transfer::{self, RemoteTarget};
use crate::views::transfer::{self as view, Bar};
use miette::Report;

pub fn run(printer: &Printer, args: &PullArgs) -> CmdResult {
    let target = RemoteTarget::parse(&args.target).map_err(Report::new)?;
    let pulled = transfer::pull(
        &target,
        &args.dir,
        args.bundle.as_deref(),
        &(&args.ssh).into(),
        &Bar::new(printer),
    )
    .map_err(Report::new)?;
    view::pulled(printer, &pulled)?;
    Ok(Outcome::Clean)
}
