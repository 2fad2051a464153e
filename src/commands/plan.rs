//! `imlrecover plan`: what a restore would change, read-only.

use super::{load_recipe, CmdResult, Outcome};
use crate::bundle::Bundle;
use crate::cli::{PlanArgs, TargetArgs};
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::plan::{self, Plan};
use crate::printer::Printer;
use crate::recipe::{suggest, Address, Recipe};
use crate::state::State;
use crate::views;
use miette::{miette, IntoDiagnostic};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub fn run(printer: &Printer, args: &PlanArgs) -> CmdResult {
    let recipe = load_recipe(&args.target.recipe)?;
    let plan = make_plan(&recipe, &args.target, true)?;
    if let Some(out) = &args.out {
        save(&plan, out)?;
    }
    if args.json {
        printer.line(&views::json(&plan))?;
    } else {
        printer.out(&views::human::plan(printer, &plan))?;
        if let Some(out) = &args.out {
            printer.line(&format!(
                "\nSaved the plan to {}. To perform exactly these actions, run:\n    imlrecover apply {}",
                out.display(),
                out.display()
            ))?;
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Clean
    })
}

/// Validates `--root`, `--bundle` and `--replace`, then plans. Shared with
/// `apply` and `audit`. `require_bundle`: refuse a bundle that fails
/// [`crate::bundle::check`] (audit reports its problems as findings instead).
pub(crate) fn make_plan(
    recipe: &Recipe,
    t: &TargetArgs,
    require_bundle: bool,
) -> miette::Result<Plan> {
    let replace = replace_addresses(recipe, &t.replace)?;
    let root = Root::new(&t.root)?;
    let bundle = Bundle::open(&t.bundle)?;
    crate::bundle::crypt::check_readable(&bundle)?;
    let refused = if require_bundle {
        crate::bundle::check::require(&bundle, Some(recipe)).err()
    } else {
        None
    };
    let state = State::load(root.dir())?;
    let services = Services::new(recipe.settings.services, root.dir());
    let plan = plan::build(&plan::Inputs {
        recipe,
        root: &root,
        bundle: &bundle,
        services: &services,
        state: &state,
        replace: &replace,
    });
    match (refused, plan) {
        (None, plan) => Ok(plan?),
        (Some(r), Ok(_)) => Err(r.into()),
        (Some(mut r), Err(errors)) => {
            r.related = errors.errors;
            Err(r.into())
        }
    }
}

fn replace_addresses(recipe: &Recipe, raw: &[String]) -> miette::Result<Vec<Address>> {
    let all: Vec<String> = recipe
        .resources
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    raw.iter()
        .map(|s| {
            let a: Address = s.parse().map_err(|e| miette!("--replace {s}: {e}"))?;
            if recipe.resource(&a).is_none() {
                let help = suggest(s, all.iter().map(String::as_str)).unwrap_or_default();
                return Err(miette!(
                    help = help,
                    "--replace {s}: the recipe declares no such resource"
                ));
            }
            Ok(a)
        })
        .collect()
}

/// A saved plan: JSON, `0600`, written whole or not at all.
fn save(plan: &Plan, path: &std::path::Path) -> miette::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let text = crate::redact::text(&views::json(plan)).into_owned();
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .into_diagnostic()
        .map_err(|e| e.wrap_err(format!("cannot save the plan to {}", path.display())))
}

/// Reads a saved plan, refusing other format versions.
pub(crate) fn load(path: &std::path::Path) -> miette::Result<Plan> {
    let not_a_plan = "a saved plan is the JSON file `imlrecover plan … --out PLANFILE` writes";
    let text = std::fs::read_to_string(path).map_err(|e| {
        miette!(
            help = not_a_plan,
            "cannot read the plan file {}: {e}",
            path.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        miette!(
            help = not_a_plan,
            "{} is not a saved plan: it is not JSON",
            path.display()
        )
    })?;
    match value.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(plan::FORMAT_VERSION) => {}
        Some(v) => {
            return Err(miette!(
                help = "make the plan again with this version of imlrecover",
                "{} has plan format {v}; this imlrecover reads format {}",
                path.display(),
                plan::FORMAT_VERSION
            ))
        }
        None => {
            return Err(miette!(
                help = not_a_plan,
                "{} is not a saved plan: it has no format_version",
                path.display()
            ))
        }
    }
    serde_json::from_value(value)
        .map_err(|e| miette!("{} is not a valid saved plan: {e}", path.display()))
}
