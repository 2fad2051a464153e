//! A plan saved with `plan --out`: written whole (`0600`, no secret
//! values), read back refusing other format versions, and reopened on what
//! it was made from (the same recipe and bundle, checked) for `apply PLANFILE`.

use super::{Plan, FORMAT_VERSION};
use crate::bundle::Bundle;
use crate::recipe::{self, Recipe};
use miette::{miette, IntoDiagnostic};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `plan` to `path` atomically, sensitive values redacted.
pub fn save(plan: &Plan, path: &Path) -> miette::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let json = serde_json::to_string_pretty(plan).into_diagnostic()?;
    let text = crate::redact::text(&json).into_owned();
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
pub fn load(path: &Path) -> miette::Result<Plan> {
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
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(miette!(
                help = "make the plan again with this version of imlrecover",
                "{} has plan format {v}; this imlrecover reads format {}",
                path.display(),
                FORMAT_VERSION
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

/// The recipe and bundle `saved` was made from, refused if either changed.
/// Sensitive values are not in the plan file: they come from `extra` (the
/// `--var`/`--var-file` given again).
pub fn reopen(saved: &Plan, extra: &recipe::VarInput) -> miette::Result<(Recipe, Bundle)> {
    let values = saved
        .variables
        .iter()
        .filter(|(_, v)| v.as_str() != Some(crate::redact::MARK))
        .map(|(k, v)| {
            Ok((
                k.clone(),
                hcl::to_value(v).map_err(|e| miette!("variable {k} in the plan: {e}"))?,
            ))
        })
        .collect::<miette::Result<Vec<_>>>()?;
    let input = recipe::VarInput {
        values,
        vars: extra.vars.clone(),
        files: extra.files.clone(),
    };
    let recipe =
        recipe::load(Path::new(&saved.recipe.path), &input).map_err(miette::Report::new)?;
    if recipe.hash != saved.recipe.hash {
        return Err(miette!(
            help = "make a new plan from the recipe as it is now",
            "the recipe {} changed since the plan was made (blake3 {}… then, {}… now)",
            saved.recipe.path,
            saved.recipe.hash.get(..8).unwrap_or(""),
            recipe.hash.get(..8).unwrap_or("")
        ));
    }
    let bundle = Bundle::open(Path::new(&saved.bundle.path))?;
    crate::bundle::crypt::check_readable(&bundle)?;
    crate::bundle::check::require(&bundle, Some(&recipe))?;
    if bundle.name() != saved.bundle.id {
        return Err(miette!(
            "the plan was made from bundle {}, but {} is now bundle {}",
            saved.bundle.id,
            saved.bundle.path,
            bundle.name()
        ));
    }
    Ok((recipe, bundle))
}
