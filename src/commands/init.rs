//! `imlrecover init`: detect the release under --root, draft its recipe.

use super::{CmdResult, Outcome};
use crate::cli::InitArgs;
use crate::printer::Printer;

pub fn run(printer: &Printer, args: &InitArgs) -> CmdResult {
    let detection = crate::init::detect(&args.root.root)?;
    let text = crate::init::render(&detection, &args.vars)?;
    match &args.out {
        None => printer.line(text.trim_end())?,
        Some(path) => {
            crate::init::write(path, &text, args.force)?;
            printer.line(&format!(
                "Wrote {} for {} ({}); review it, then `imlrecover validate -r {}`.",
                path.display(),
                detection.family.value.releases(),
                detection.family.evidence,
                path.display()
            ))?;
        }
    }
    Ok(Outcome::Clean)
}
