//! `imlrecover import DIR -r RECIPE --bundle-dir OUT`: a runbook backup
//! directory made into a bundle. The report comes first, before anything
//! is written; `--dry-run` stops there.

use super::{CmdResult, Outcome};
use crate::bundle::sign::Signer;
use crate::cli::ImportArgs;
use crate::host::fs::Root;
use crate::import::{self, ImportError};
use crate::printer::Printer;
use crate::target::load_recipe;
use miette::Report;
use std::path::Path;
use std::time::SystemTime;

pub fn run(printer: &Printer, args: &ImportArgs) -> CmdResult {
    let recipe = load_recipe(&args.recipe)?;
    // A key that cannot sign is refused before the report, as in backup.
    let signer = signer(&recipe, args)?;
    let signed = crate::bundle::sign::backup_note(signer.as_ref(), &recipe);
    let survey = import::survey(&args.dir, &recipe, args.dump.as_deref(), SystemTime::now())
        .map_err(Report::new)?;
    printer.out(&import::report::render(&survey, &recipe.path))?;
    printer.line("")?;
    if let Some(why) = &survey.refusal {
        return Err(Report::new(ImportError::Refused(format!(
            "cannot import {}: {why}",
            args.dir.display()
        ))));
    }
    if args.dry_run {
        printer.line(&format!(
            "Dry run: nothing was written. Without --dry-run the bundle goes into {}.",
            args.bundle_dir.display()
        ))?;
        return Ok(Outcome::Clean);
    }
    let committed =
        import::write(&survey, &recipe, &args.bundle_dir, signer).map_err(Report::new)?;
    let files: usize = survey.found.iter().map(|f| f.files.len()).sum();
    let (resources, dump) = match survey.taken() {
        Some((d, _)) => (survey.found.len() + 1, format!(" and the dump {}", d.name)),
        None => (survey.found.len(), String::new()),
    };
    printer.line(&format!(
        "{} {}",
        printer.green("Imported:"),
        printer.bold(&committed.path.display().to_string())
    ))?;
    printer.line(&format!(
        "  {resources} resources: {files} files{dump}; {} lacking",
        survey.lacking.len()
    ))?;
    if let Some(note) = signed {
        printer.line(&format!("  {note}"))?;
    }
    printer.line(&format!(
        "  Next: imlrecover plan -r {} --bundle {}",
        recipe.path.display(),
        committed.path.display()
    ))?;
    Ok(Outcome::Clean)
}

/// `--sign-key`, else the recipe's `sign_key` (a path on this host: import
/// has no `--root`), kept off the bundle directory, as for `backup`.
fn signer(recipe: &crate::recipe::Recipe, args: &ImportArgs) -> miette::Result<Option<Signer>> {
    let host = Root::new(Path::new("/")).map_err(Report::new)?;
    let signer = Signer::for_backup(args.sign.sign_key.as_deref(), recipe, &host)?;
    if let Some(s) = &signer {
        s.check_off_store(&args.bundle_dir).map_err(Report::new)?;
    }
    Ok(signer)
}
