//! `imlrecover man [DIR]`: man pages generated from the clap definitions
//! (imlrecover.1 and one imlrecover-SUBCOMMAND.1 each).

use super::{CmdResult, Outcome};
use crate::cli::{Cli, ManArgs};
use crate::printer::Printer;
use clap::CommandFactory;
use miette::miette;

pub fn run(printer: &Printer, args: &ManArgs) -> CmdResult {
    let cmd = Cli::command();
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| miette!("cannot render the man page: {e}"))?;
        printer.out(&String::from_utf8_lossy(&page))?;
        return Ok(Outcome::Clean);
    };
    let fail = |e: std::io::Error| {
        miette!(
            help = "give a directory you can write to, e.g. `imlrecover man ./man1`",
            "cannot write man pages into {}: {e}",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(cmd, dir).map_err(fail)?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .map_err(fail)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("imlrecover") && n.ends_with(".1"))
        .collect();
    pages.sort();
    printer.line(&format!(
        "wrote {} man pages into {}: {}",
        pages.len(),
        dir.display(),
        pages.join(" ")
    ))?;
    Ok(Outcome::Clean)
}
