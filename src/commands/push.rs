//! `imlrecover push BUNDLE sftp://USER@HOST[:PORT]/PATH`: an off-host copy.

use super::{CmdResult, Outcome};
use crate::cli::PushArgs;
use crate::printer::Printer;
use crate::transfer::{self, RemoteTarget};
use crate::views::transfer::{self as view, Bar};
use miette::Report;
use std::time::Instant;

pub fn run(printer: &Printer, args: &PushArgs) -> CmdResult {
    let target = RemoteTarget::parse(&args.target).map_err(Report::new)?;
    let started = Instant::now();
    let pushed = transfer::push_path(
        &args.bundle,
        &target,
        &(&args.ssh).into(),
        Some(&args.retention.policy()),
        &Bar::new(printer),
    )
    .map_err(Report::new)?;
    view::pushed(printer, &target, &pushed, started.elapsed())?;
    Ok(Outcome::Clean)
}
