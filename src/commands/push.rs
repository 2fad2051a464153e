//! `imlrecover push BUNDLE sftp://USER@HOST[:PORT]/PATH`: an off-host copy.

use super::{CmdResult, Outcome};
use crate::cli::PushArgs;
use crate::printer::Printer;
use crate::transfer::{self, RemoteTarget};
use crate::views::document;
use crate::views::transfer::{self as view, Bar, PushRecord};
use miette::Report;
use std::time::Instant;

pub fn run(printer: &Printer, args: &PushArgs) -> CmdResult {
    let machine = args.output.machine();
    let quiet = printer.for_document();
    let p = if machine { &quiet } else { printer };
    let mut record = PushRecord::default();
    let result = push(p, args, machine, &mut record);
    document::finish(printer, args.output.format, "push", &record, result)
}

fn push(printer: &Printer, args: &PushArgs, machine: bool, record: &mut PushRecord) -> CmdResult {
    record.destination = args.target.clone();
    let target = RemoteTarget::parse(&args.target).map_err(Report::new)?;
    *record = PushRecord::new(&target);
    let started = Instant::now();
    let pushed = transfer::push_path(
        &args.bundle,
        &target,
        &(&args.ssh).into(),
        Some(&args.retention.policy()),
        &Bar::new(printer),
    )
    .map_err(Report::new);
    record.seconds = started.elapsed().as_secs_f64();
    let pushed = pushed?;
    record.pushed(&target, &pushed, started.elapsed());
    if !machine {
        view::pushed(printer, &target, &pushed, started.elapsed())?;
    }
    Ok(Outcome::Clean)
}
