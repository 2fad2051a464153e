//! `imlrecover pull sftp://USER@HOST[:PORT]/PATH DIR`: fetch a bundle back.

use super::{CmdResult, Outcome};
use crate::cli::PullArgs;
use crate::printer::Printer;
use crate::transfer::{self, RemoteTarget};
use crate::views::document;
use crate::views::transfer::{self as view, Bar, PullRecord};
use miette::Report;
use std::time::Instant;

pub fn run(printer: &Printer, args: &PullArgs) -> CmdResult {
    let machine = args.output.machine();
    let quiet = printer.for_document();
    let p = if machine { &quiet } else { printer };
    let mut record = PullRecord {
        source: args.target.clone(),
        ..PullRecord::default()
    };
    let result = pull(p, args, machine, &mut record);
    document::finish(printer, args.output.format, "pull", &record, result)
}

fn pull(printer: &Printer, args: &PullArgs, machine: bool, record: &mut PullRecord) -> CmdResult {
    let target = RemoteTarget::parse(&args.target).map_err(Report::new)?;
    *record = PullRecord::new(&target);
    let started = Instant::now();
    let pulled = transfer::pull(
        &target,
        &args.dir,
        args.bundle.as_deref(),
        &(&args.ssh).into(),
        &Bar::new(printer),
    )
    .map_err(Report::new);
    record.seconds = started.elapsed().as_secs_f64();
    let pulled = pulled?;
    record.pulled(&pulled, started.elapsed());
    if !machine {
        view::pulled(printer, &pulled)?;
    }
    Ok(Outcome::Clean)
}
