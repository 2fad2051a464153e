//! The apply protocol, for a fresh plan and for a saved one: lock → the
//! unfinished run (its orphans, the steps it still owed) → plan → approve →
//! execute → plan again to prove the host matches.

use super::{carry_over, execute, run, run_name, runs_dir, stale};
use crate::apply::lock;
use crate::cli::{ReplaceArgs, TargetArgs};
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::plan::{self, Plan};
use crate::recipe::VarInput;
use crate::target::{self, BundleCheck, Target};
use crate::views::apply::{ApplyView, Event};
use miette::miette;
use std::path::Path;
use std::time::Duration;

/// The host's lock, waited for up to `wait`, the view told while waiting.
pub fn take_lock(
    view: &dyn ApplyView,
    root: &Root,
    wait: Option<Duration>,
) -> miette::Result<lock::Lock> {
    Ok(lock::acquire_waiting(
        &crate::state::dir(root.dir()),
        wait,
        |held| {
            let _ = view.event(Event::Waiting {
                held: &held.to_string(),
            });
        },
    )?)
}

/// The run an earlier apply did not finish, its orphans accounted for.
fn unfinished(
    view: &dyn ApplyView,
    root: &Root,
    services: &Services,
) -> miette::Result<Option<run::Unfinished>> {
    let previous =
        run::unfinished(&runs_dir(root)).map_err(|e| miette!("cannot read earlier runs: {e}"))?;
    if let Some(p) = &previous {
        super::account_for_orphans(view, services, p)?;
    }
    Ok(previous)
}

/// `apply -r RECIPE --root DIR --bundle BUNDLE`: plan, ask, run.
pub fn fresh(
    view: &dyn ApplyView,
    args: &TargetArgs,
    replace: &ReplaceArgs,
    auto_approve: bool,
    wait: Option<Duration>,
) -> miette::Result<()> {
    let Some(bundle) = &args.bundle else {
        return Err(miette!(
            "apply needs either PLANFILE or -r RECIPE and --bundle BUNDLE"
        ));
    };
    // Refuse early: nothing is observed or locked for a question nobody can answer.
    if !auto_approve && !view.printer().interactive {
        return Err(miette!(
            help = "review the plan with `imlrecover plan`, then run apply with --auto-approve, or save it with `plan --out F` and run `imlrecover apply F`",
            "apply needs approval, but standard input is not a terminal"
        ));
    }
    let recipe = target::load_recipe(&args.recipe)?;
    let root = target::root(&args.root)?;
    let _lock = take_lock(view, &root, wait)?;
    let services = target::services(&recipe, &root);
    let previous = unfinished(view, &root, &services)?;
    let replace = target::replace_addresses(&recipe, &replace.replace)?;
    let opened = target::open_bundle(bundle, &recipe, BundleCheck::Require)?;
    let mut t = Target::new(recipe, root, services, opened, replace)?;
    let mut plan = t.plan()?;
    if let Some(p) = &previous {
        let added = carry_over(&mut plan, p);
        view.event(Event::Resuming {
            run: p,
            name: &run_name(&p.dir),
            added: added.len(),
        })?;
    }
    view.event(Event::Plan(&plan))?;
    if !plan.has_changes() {
        // The interrupted run's work is all on the host already.
        if let Some(p) = &previous {
            p.mark_superseded()
                .map_err(|e| miette!("cannot mark {} superseded: {e}", p.dir.display()))?;
        }
        return Ok(());
    }
    if !auto_approve && !view.approve()? {
        view.event(Event::Cancelled)?;
        return Err(miette!("apply was not approved"));
    }
    finish(view, &mut t, &plan, previous.as_ref())
}

/// `apply PLANFILE`: the saved plan, if nothing it touches changed.
pub fn saved(
    view: &dyn ApplyView,
    planfile: &Path,
    vars: &VarInput,
    wait: Option<Duration>,
) -> miette::Result<()> {
    let saved = plan::saved::load(planfile)?;
    let (recipe, bundle) = plan::saved::reopen(&saved, vars)?;
    let root = Root::new(&saved.root)?;
    let _lock = take_lock(view, &root, wait)?;
    let services = target::services(&recipe, &root);
    let previous = unfinished(view, &root, &services)?;
    let mut t = Target::new(
        recipe,
        root,
        services,
        (bundle, None),
        saved.replace.clone(),
    )?;
    let fresh = t.plan()?;
    let stale = stale(&saved, &fresh);
    if !stale.is_empty() {
        return Err(miette!(
            help = "make a new plan (`imlrecover plan ... --out F`) and review it",
            "the saved plan is stale: {} changed on the host since it was made",
            stale.join(", ")
        ));
    }
    if !saved.has_changes() {
        view.event(Event::SavedUnchanged(&saved))?;
        return Ok(());
    }
    view.event(Event::SavedRunning {
        path: planfile,
        steps: saved.steps.len(),
    })?;
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
    finish(view, &mut t, to_run, previous.as_ref())
}

/// Runs `plan`, then plans again: anything left is an error.
fn finish(
    view: &dyn ApplyView,
    t: &mut Target,
    plan: &Plan,
    previous: Option<&run::Unfinished>,
) -> miette::Result<()> {
    view.event(Event::Begin)?;
    let outcome = execute(view, t, plan, previous)?;
    // Proof, not hope: plan again, without --replace and asking every
    // service afresh; each database restore's rows were just counted.
    t.replace.clear();
    t.services.forget();
    t.state.borrow_mut().verified_now = plan
        .steps
        .iter()
        .filter(|s| s.op == plan::Op::Restore)
        .filter(|s| s.address.kind.phase() == crate::resources::kind::Phase::Restore)
        .map(|s| s.address.to_string())
        .collect();
    let after = t.plan_again()?;
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
    view.event(Event::Complete {
        plan,
        run_dir: &outcome.run_dir,
        elapsed: outcome.elapsed,
        warnings: &outcome.warnings,
    })
}
