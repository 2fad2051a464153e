//! Carrying out a plan: under a lock, in a run directory that keeps what
//! was replaced, step by step with a journal, stopping at the first failure
//! (after starting again what this run stopped), then planning again to
//! prove the host now matches.

pub mod lock;
pub mod protocol;
pub mod run;

use crate::host::fs::Root;
use crate::host::service::{Action as ServiceAction, Services};
use crate::plan::{Action, Op, Plan, Step};
use crate::recipe::ServiceState;
use crate::resources::kind::{ApplyCx, Phase};
use crate::resources::registry::apply_step;
use crate::target::Target;
use crate::views::apply::{ApplyView, Event};
use run::{JournalLine, RunDir, Unfinished};
use std::cell::RefCell;
use std::time::Instant;

pub fn runs_dir(root: &Root) -> std::path::PathBuf {
    crate::state::confined(root.dir(), &format!("{}/runs", crate::state::DIR))
}

/// Adds the steps an interrupted run still owed (restarts after changes it
/// made, remote actions after its restore): a fresh plan cannot see them.
pub fn carry_over(plan: &mut Plan, unfinished: &Unfinished) -> Vec<Step> {
    let mut added = Vec::new();
    for owed in unfinished.owed() {
        let present = plan
            .steps
            .iter()
            .any(|s| s.address == owed.address && (s.op == owed.op || s.op == Op::Start));
        if !present {
            let mut s = owed.clone();
            s.reason = format!(
                "owed by the interrupted run {}: {}",
                run_name(&unfinished.dir),
                owed.reason
            );
            added.push(s);
        }
    }
    // Restarts before remote actions, each after everything else.
    added.sort_by_key(|s| s.op == Op::RemoteAction);
    plan.steps.extend(added.iter().cloned());
    for (i, s) in plan.steps.iter_mut().enumerate() {
        s.id = i + 1;
    }
    plan.summary = crate::plan::Summary::of(&plan.resource_changes, &plan.steps);
    added
}

pub fn run_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Processes the interrupted run started for services, found by their
/// tag: kept when their service says it runs (they are it), ended when it
/// says stopped (no pid file: the run died between the daemon and its pid
/// file), so that the plan starts each service once. Returns what it said.
pub fn account_for_orphans(
    view: &dyn ApplyView,
    services: &Services,
    unfinished: &Unfinished,
) -> miette::Result<Vec<String>> {
    let run = run_name(&unfinished.dir);
    let tagged = crate::host::orphans::started_by(&run);
    let mut said = Vec::new();
    let mut status: std::collections::BTreeMap<String, bool> = Default::default();
    for p in &tagged {
        let running = *status.entry(p.service.clone()).or_insert_with(|| {
            !p.service.is_empty()
                && services.status(&p.service).ok() == Some(crate::host::service::Status::Running)
        });
        let line = if running {
            format!(
                "{p}, started by the interrupted run {run}: kept, {} is running",
                p.service
            )
        } else if crate::host::orphans::end(p.pid, std::time::Duration::from_secs(10)) {
            format!(
                "{p}, started by the interrupted run {run}: ended, {} is not running (no pid file), so the plan starts it afresh",
                p.service
            )
        } else {
            format!(
                "{p}, started by the interrupted run {run}: could not be ended; stop it by hand",
            )
        };
        view.event(Event::Orphan { line: &line })?;
        said.push(line);
    }
    if !tagged.is_empty() {
        services.forget();
        view.event(Event::OrphansDone)?;
    }
    Ok(said)
}

/// How a finished apply went.
pub struct Outcome {
    pub run_dir: std::path::PathBuf,
    pub warnings: Vec<String>,
    pub elapsed: std::time::Duration,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("apply failed at step {step} ({address}): {message}")]
#[diagnostic(code(imlrecover::apply_failed))]
pub struct StepFailed {
    pub step: usize,
    pub address: String,
    pub message: String,
    #[help]
    pub help: String,
}

/// Runs every step of `plan` in order. On failure, starts again the services
/// this run stopped (whose desired state is running) and reports what was
/// done, what failed and what was not attempted.
pub fn execute(
    view: &dyn ApplyView,
    t: &Target,
    plan: &Plan,
    previous: Option<&Unfinished>,
) -> miette::Result<Outcome> {
    let start = Instant::now();
    let mut run = RunDir::create(&runs_dir(&t.root), plan)
        .map_err(|e| miette::miette!("cannot create the run directory: {e}"))?;
    let previous_dir = run.previous();
    let run_dir = run.dir.clone();
    let entries = crate::resources::content::EntryIndex::new(&t.bundle.manifest);
    let prepared = RefCell::new(Vec::new());
    let cx = ApplyCx {
        recipe: &t.recipe,
        root: &t.root,
        bundle: &t.bundle,
        services: &t.services,
        run_dir: &run_dir,
        previous: &previous_dir,
        state: &t.state,
        printer: view.printer(),
        entries: &entries,
        prepared: &prepared,
    };
    // Services this run starts carry its name: a later apply finds them.
    t.services.tag_starts(&run_name(&run.dir));
    view.event(Event::RunStarted { dir: &run.dir })?;
    let total = plan.steps.len();
    let mut warnings = Vec::new();
    let mut stopped: Vec<&Step> = Vec::new();
    let graph = crate::graph::Graph::build(&t.recipe);
    let ahead = prepare_points(plan, &graph);
    prepare_after(t, &ahead, 0, &cx);
    // Steps up to here belong to a run of stops or starts already acted on.
    let mut batched = 0;
    for (i, step) in plan.steps.iter().enumerate() {
        view.event(Event::StepStarted { step, total })?;
        // The first step of a run acted on together carries its time.
        let t0 = Instant::now();
        if matches!(step.op, Op::Stop | Op::Start) && i >= batched {
            batched = i + act_together(t, &graph, plan.steps.get(i..).unwrap_or_default());
        }
        let result = match (t.recipe.resource(&step.address), plan.change(&step.address)) {
            (Some(resource), Some(change)) => apply_step(resource, step, change, &cx),
            _ => Err(crate::resources::kind::ResourceError::new(
                &step.address,
                "the plan names a resource the recipe does not declare",
            )),
        };
        let elapsed = t0.elapsed();
        match result {
            Ok(applied) => {
                run.record(
                    &JournalLine {
                        step: step.id,
                        op: step.op,
                        address: step.address.to_string(),
                        status: "done".into(),
                        elapsed_ms: elapsed.as_millis() as u64,
                        message: applied.message.clone(),
                    },
                    matches!(step.op, Op::Restart | Op::RemoteAction),
                )
                .map_err(|e| {
                    miette::miette!("cannot write the journal in {}: {e}", run.dir.display())
                })?;
                crate::fault::after_step(step.id);
                view.event(Event::StepFinished {
                    step,
                    total,
                    applied: &applied,
                    elapsed,
                })?;
                warnings.extend(applied.warnings);
                if step.op == Op::Stop {
                    stopped.push(step);
                }
                prepare_after(t, &ahead, step.id, &cx);
            }
            Err(e) => {
                let _ = run.record(
                    &JournalLine {
                        step: step.id,
                        op: step.op,
                        address: step.address.to_string(),
                        status: "failed".into(),
                        elapsed_ms: elapsed.as_millis() as u64,
                        message: e.to_string(),
                    },
                    true,
                );
                let message = format!(
                    "{}{}",
                    e.message,
                    e.help.map(|h| format!(" ({h})")).unwrap_or_default()
                );
                view.event(Event::StepFailed {
                    step,
                    total,
                    message: &message,
                    elapsed,
                })?;
                restart_stopped(view, t, &stopped)?;
                view.event(Event::Stopped {
                    plan,
                    failed: step.id,
                })?;
                return Err(StepFailed {
                    step: step.id,
                    address: step.address.to_string(),
                    message,
                    help: format!(
                        "the run directory {} keeps every file this run replaced and the safety dump; \
                         fix the problem and run the same `imlrecover apply` again: it plans afresh and redoes only what is left",
                        run.dir.display()
                    ),
                }
                .into());
            }
        }
    }
    run.mark(run::COMPLETE)
        .map_err(|e| miette::miette!("cannot mark {} complete: {e}", run.dir.display()))?;
    if let Some(p) = previous {
        let _ = p.mark_superseded();
    }
    Ok(Outcome {
        run_dir: run.dir.clone(),
        warnings,
        elapsed: start.elapsed(),
    })
}

/// Steps that only write or remove files under the root (files, sets,
/// certificates): they cannot change what another step reads from a
/// database or a service.
fn only_files(step: &Step) -> bool {
    match step.op {
        Op::Write | Op::Remove => true,
        Op::Restore => matches!(step.address.kind.phase(), Phase::Files(_)),
        _ => false,
    }
}

/// For each step worth preparing (a database restore), the id of the step
/// after which it may start (0: before the first): the last one before it
/// that can change the cluster — a command, a stop (the quiesce), or a
/// service the database depends on (PostgreSQL itself).
fn prepare_points<'p>(plan: &'p Plan, graph: &crate::graph::Graph) -> Vec<(usize, &'p Step)> {
    plan.steps
        .iter()
        .filter(|s| s.op == Op::Restore && s.address.kind.phase() == Phase::Restore)
        .map(|s| {
            let after = plan
                .steps
                .iter()
                .filter(|p| p.id < s.id && !only_files(p))
                .filter(|p| {
                    matches!(p.op, Op::Run | Op::Stop) || graph.precedes(&p.address, &s.address)
                })
                .map(|p| p.id)
                .max()
                .unwrap_or(0);
            (after, s)
        })
        .collect()
}

fn prepare_after(t: &Target, points: &[(usize, &Step)], done: usize, cx: &ApplyCx) {
    for (_, step) in points.iter().filter(|(after, _)| *after == done) {
        if let Some(resource) = t.recipe.resource(&step.address) {
            crate::resources::registry::prepare_step(resource, step, cx);
        }
    }
}

/// A run of stops (the quiesce) or of starts: their services' statuses
/// read at once instead of one before each; under systemd, acted on by one
/// `systemctl` call. A start joins the run only if systemd would order it
/// as the recipe does: after every service of the run the recipe puts
/// before it, the units themselves say so (`After=`/`Before=`); else a
/// new run begins with it. Stops need no such care: the quiesce stops
/// units that write the databases, in no order the restore relies on.
/// Returns how many steps the run covers.
fn act_together(t: &Target, graph: &crate::graph::Graph, steps: &[Step]) -> usize {
    let Some(op) = steps.first().map(|s| s.op) else {
        return 0;
    };
    let mut run: Vec<(&Step, &str)> = Vec::new();
    for step in steps.iter().take_while(|s| s.op == op) {
        let Some(name) = t
            .recipe
            .resource(&step.address)
            .and_then(crate::resources::registry::service_name)
        else {
            break;
        };
        let ordered = op == Op::Stop
            || run.iter().all(|(before, first)| {
                !graph.precedes(&before.address, &step.address) || t.services.orders(first, name)
            });
        if !ordered {
            break;
        }
        run.push((step, name));
    }
    let names: Vec<&str> = run.iter().map(|(_, n)| *n).collect();
    if names.len() > 1 {
        t.services.look_up(&names);
        t.services.act_together(
            &names,
            match op {
                Op::Stop => ServiceAction::Stop,
                _ => ServiceAction::Start,
            },
        );
    }
    run.len().max(1)
}

/// After a failure: services this run stopped come back, unless the recipe
/// wants them stopped.
fn restart_stopped(view: &dyn ApplyView, t: &Target, stopped: &[&Step]) -> miette::Result<()> {
    for step in stopped.iter().rev() {
        let Some(resource) = t.recipe.resource(&step.address) else {
            continue;
        };
        let Some(name) = crate::resources::registry::service_name(resource) else {
            continue;
        };
        if crate::resources::registry::desired_state(resource) != Some(ServiceState::Running) {
            continue;
        }
        let error = t
            .services
            .act(name, crate::host::service::Action::Start)
            .err()
            .map(|e| e.to_string());
        view.event(Event::Restarted { name, error })?;
    }
    Ok(())
}

/// Resources whose live state moved since `saved` was planned: any of
/// them, not only those with steps (an empty plan made before `chroma` was
/// renamed away must not claim the host matches).
pub fn stale(saved: &Plan, fresh: &Plan) -> Vec<String> {
    saved
        .resource_changes
        .iter()
        // Remote hosts are re-checked as the step runs; flapping reachability
        // is not a reason to refuse the whole plan.
        .filter(|c| c.address.kind.phase() != Phase::Remote)
        .filter(|c| {
            fresh.change(&c.address).is_none_or(|f| {
                f.observed != c.observed || (f.action == Action::NoOp) != (c.action == Action::NoOp)
            })
        })
        .map(|c| c.address.to_string())
        .collect()
}
