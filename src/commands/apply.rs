//! `imlrecover apply`: plan (or load a saved plan), approve, run the steps,
//! then plan again to prove the host matches.

use super::{CmdResult, Outcome};
use crate::apply::{self, lock, run};
use crate::bundle::Bundle;
use crate::cli::{ApplyArgs, RecipeArgs, TargetArgs};
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::plan::Plan;
use crate::printer::Printer;
use crate::recipe::{self, Recipe};
use crate::views;
use miette::miette;

pub fn run(printer: &Printer, args: &ApplyArgs) -> CmdResult {
    match &args.plan {
        Some(planfile) => apply_saved(printer, planfile, args),
        None => apply_fresh(printer, args),
    }
}

fn target_args(args: &ApplyArgs) -> miette::Result<TargetArgs> {
    let (Some(recipe), Some(bundle)) = (&args.recipe, &args.bundle) else {
        return Err(miette!(
            "apply needs either PLANFILE or -r RECIPE and --bundle BUNDLE"
        ));
    };
    Ok(TargetArgs {
        recipe: RecipeArgs {
            recipe: recipe.clone(),
            vars: args.vars.clone(),
            var_files: args.var_files.clone(),
        },
        root: args.root.clone(),
        bundle: bundle.clone(),
        replace: args.replace.clone(),
    })
}

/// The host's lock, waited for up to `--wait`, saying so while waiting.
pub(crate) fn take_lock(
    printer: &Printer,
    root: &Root,
    wait: Option<std::time::Duration>,
) -> miette::Result<lock::Lock> {
    Ok(lock::acquire_waiting(
        &crate::state::dir(root.dir()),
        wait,
        |held| {
            let _ = printer.line(&format!("Waiting: {held}"));
        },
    )?)
}

fn apply_fresh(printer: &Printer, args: &ApplyArgs) -> CmdResult {
    let t = target_args(args)?;
    // Refuse early: nothing is observed or locked for a question nobody can answer.
    if !args.auto_approve && !printer.interactive {
        return Err(miette!(
            help = "review the plan with `imlrecover plan`, then run apply with --auto-approve, or save it with `plan --out F` and run `imlrecover apply F`",
            "apply needs approval, but standard input is not a terminal"
        ));
    }
    let recipe = super::load_recipe(&t.recipe)?;
    let root = Root::new(&t.root)?;
    let _lock = take_lock(printer, &root, args.wait)?;
    let previous = run::unfinished(&apply::runs_dir(&root))
        .map_err(|e| miette!("cannot read earlier runs: {e}"))?;
    if let Some(p) = &previous {
        let services = Services::new(recipe.settings.services, root.dir());
        apply::account_for_orphans(printer, &services, p)?;
    }
    let mut plan = super::plan::make_plan(&recipe, &t, true)?;
    if let Some(p) = &previous {
        let added = apply::carry_over(&mut plan, p);
        printer.line(&format!(
            "{} the run {} did not finish ({} of {} steps done); planning afresh{}.\n",
            printer.yellow("Resuming:"),
            apply::run_name(&p.dir),
            p.done.len(),
            p.plan.steps.len(),
            if added.is_empty() {
                String::new()
            } else {
                format!(", plus {} step(s) it still owed", added.len())
            }
        ))?;
    }
    printer.out(&views::human::plan(printer, &plan))?;
    if !plan.has_changes() {
        // The interrupted run's work is all on the host already.
        if let Some(p) = &previous {
            p.mark_superseded()
                .map_err(|e| miette!("cannot mark {} superseded: {e}", p.dir.display()))?;
        }
        return Ok(Outcome::Clean);
    }
    if !args.auto_approve && !approved(printer)? {
        printer.line("Apply cancelled; nothing was changed.")?;
        return Err(miette!("apply was not approved"));
    }
    finish(printer, &recipe, &root, &t, &plan, previous.as_ref())
}

fn approved(printer: &Printer) -> miette::Result<bool> {
    printer.line(&format!(
        "\n{}\n  imlrecover will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n",
        printer.bold("Do you want to perform these actions?")
    ))?;
    let answer: String = dialoguer::Input::new()
        .with_prompt("  Enter a value")
        .allow_empty(true)
        .interact_text()
        .map_err(|e| miette!("cannot read the answer: {e}"))?;
    Ok(answer.trim() == "yes")
}

fn apply_saved(printer: &Printer, planfile: &std::path::Path, args: &ApplyArgs) -> CmdResult {
    let saved = super::plan::load(planfile)?;
    // Sensitive values are not in the plan file: they come from --var again.
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
        vars: args.vars.clone(),
        files: args.var_files.clone(),
    };
    let recipe_path = std::path::PathBuf::from(&saved.recipe.path);
    let recipe = recipe::load(&recipe_path, &input).map_err(miette::Report::new)?;
    if recipe.hash != saved.recipe.hash {
        return Err(miette!(
            help = "make a new plan from the recipe as it is now",
            "the recipe {} changed since the plan was made (blake3 {}… then, {}… now)",
            saved.recipe.path,
            saved.recipe.hash.get(..8).unwrap_or(""),
            recipe.hash.get(..8).unwrap_or("")
        ));
    }
    let bundle = Bundle::open(std::path::Path::new(&saved.bundle.path))?;
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
    let t = TargetArgs {
        recipe: RecipeArgs {
            recipe: recipe_path,
            vars: Vec::new(),
            var_files: Vec::new(),
        },
        root: saved.root.clone().into(),
        bundle: bundle.dir.clone(),
        replace: saved.replace.iter().map(|a| a.to_string()).collect(),
    };
    let root = Root::new(&t.root)?;
    let _lock = take_lock(printer, &root, args.wait)?;
    let previous = run::unfinished(&apply::runs_dir(&root))
        .map_err(|e| miette!("cannot read earlier runs: {e}"))?;
    if let Some(p) = &previous {
        let services = Services::new(recipe.settings.services, root.dir());
        apply::account_for_orphans(printer, &services, p)?;
    }
    let fresh = plan_with(&recipe, &root, &bundle, &saved.replace, Vec::new())?;
    let stale = apply::stale(&saved, &fresh);
    if !stale.is_empty() {
        return Err(miette!(
            help = "make a new plan (`imlrecover plan ... --out F`) and review it",
            "the saved plan is stale: {} changed on the host since it was made",
            stale.join(", ")
        ));
    }
    if !saved.has_changes() {
        printer.line(&views::human::plan(printer, &saved))?;
        return Ok(Outcome::Clean);
    }
    printer.line(&format!(
        "Applying the saved plan {} ({} steps).",
        planfile.display(),
        saved.steps.len()
    ))?;
    // A plan file holds sensitive values redacted: run the fresh plan,
    // which is the saved one once its values are redacted the same way.
    let to_run = if crate::redact::active() {
        let shown = |p: &Plan| serde_json::to_string(&p.steps).unwrap_or_default();
        if crate::redact::text(&shown(&fresh)) != shown(&saved) {
            return Err(miette!(
                help = "make a new plan (`imlrecover plan ... --out F`) and review it",
                "the saved plan is stale: its steps differ from a plan made now"
            ));
        }
        &fresh
    } else {
        &saved
    };
    finish(printer, &recipe, &root, &t, to_run, previous.as_ref())
}

fn plan_with(
    recipe: &Recipe,
    root: &Root,
    bundle: &Bundle,
    replace: &[recipe::Address],
    verified_now: Vec<String>,
) -> miette::Result<Plan> {
    let mut state = crate::state::State::load(root.dir())?;
    state.verified_now = verified_now;
    let services = Services::new(recipe.settings.services, root.dir());
    Ok(crate::plan::build(&crate::plan::Inputs {
        recipe,
        root,
        bundle,
        services: &services,
        state: &state,
        replace,
    })?)
}

fn finish(
    printer: &Printer,
    recipe: &Recipe,
    root: &Root,
    t: &TargetArgs,
    plan: &Plan,
    previous: Option<&run::Unfinished>,
) -> CmdResult {
    let bundle = Bundle::open(&t.bundle)?;
    crate::bundle::crypt::check_readable(&bundle)?;
    let services = Services::new(recipe.settings.services, root.dir());
    let target = apply::Target {
        recipe,
        root,
        bundle: &bundle,
        services: &services,
    };
    printer.line("")?;
    let outcome = apply::execute(printer, &target, plan, previous)?;
    // Proof, not hope: plan again; anything left is an error.
    let replace: Vec<recipe::Address> = Vec::new();
    // Every step succeeded: each database restore's rows were just counted.
    let verified_now = plan
        .steps
        .iter()
        .filter(|s| s.op == crate::plan::Op::Restore)
        .filter(|s| s.address.kind == recipe::ResourceType::Database)
        .map(|s| s.address.to_string())
        .collect();
    let after = plan_with(recipe, root, &bundle, &replace, verified_now)?;
    if after.has_changes() {
        let left: Vec<String> = after
            .resource_changes
            .iter()
            .filter(|c| c.changed())
            .map(|c| format!("{} ({})", c.address, c.reason))
            .collect();
        return Err(miette!(
            help = format!(
                "the run directory {} keeps what was replaced",
                outcome.run_dir.display()
            ),
            "every step succeeded, but the host still differs from the recipe: {}",
            left.join("; ")
        ));
    }
    printer.line(&format!(
        "\n{} {}",
        printer.green(&apply::summary_line(plan)),
        printer.dim(&format!(
            "({:.1} s; run directory {})",
            outcome.elapsed.as_secs_f64(),
            outcome.run_dir.display()
        ))
    ))?;
    for w in &outcome.warnings {
        printer.line(&format!("{} {w}", printer.yellow("Warning:")))?;
    }
    Ok(Outcome::Clean)
}
