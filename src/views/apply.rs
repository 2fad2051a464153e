//! What `apply` tells a person. The engine ([`crate::apply`]) reports
//! [`Event`]s to an [`ApplyView`]; [`Human`] turns them into the lines a
//! terminal or a log shows.

use crate::apply::run::Unfinished;
use crate::plan::{Plan, Step};
use crate::printer::Printer;
use crate::resources::kind::Applied;
use miette::miette;
use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

/// Something the apply protocol or its steps did.
pub enum Event<'a> {
    /// Another apply or backup holds the host's lock; waiting for it.
    Waiting {
        held: &'a str,
    },
    /// A process the interrupted run started, and what became of it.
    Orphan {
        line: &'a str,
    },
    /// Every orphan was accounted for (after at least one `Orphan`).
    OrphansDone,
    /// An interrupted run is taken over; `added` steps it still owed.
    Resuming {
        run: &'a Unfinished,
        name: &'a str,
        added: usize,
    },
    /// The plan about to be approved (or found empty).
    Plan(&'a Plan),
    /// A saved plan whose resources show no change.
    SavedUnchanged(&'a Plan),
    /// A saved plan about to run.
    SavedRunning {
        path: &'a Path,
        steps: usize,
    },
    /// The answer was not "yes".
    Cancelled,
    /// Approved: the steps are about to begin.
    Begin,
    /// Steps begin, journaled in `dir`.
    RunStarted {
        dir: &'a Path,
    },
    StepStarted {
        step: &'a Step,
        total: usize,
    },
    StepFinished {
        step: &'a Step,
        total: usize,
        applied: &'a Applied,
        elapsed: Duration,
    },
    StepFailed {
        step: &'a Step,
        total: usize,
        message: &'a str,
        elapsed: Duration,
    },
    /// After a failure: a service this run stopped, started again (or not).
    Restarted {
        name: &'a str,
        error: Option<String>,
    },
    /// After a failure: what was done and what was not attempted.
    Stopped {
        plan: &'a Plan,
        failed: usize,
    },
    /// Every step done and the re-plan clean.
    Complete {
        plan: &'a Plan,
        run_dir: &'a Path,
        elapsed: Duration,
        warnings: &'a [String],
    },
}

pub trait ApplyView {
    fn event(&self, event: Event<'_>) -> miette::Result<()>;
    /// Asks for approval of the plan just shown.
    fn approve(&self) -> miette::Result<bool>;
    /// The printer the steps draw their own progress bars with.
    fn printer(&self) -> &Printer;
}

/// Lines for people: colour and a spinner per step on a terminal, a start
/// line per step in logs.
pub struct Human<'p> {
    pub p: &'p Printer,
    spinner: RefCell<Option<indicatif::ProgressBar>>,
}

impl<'p> Human<'p> {
    pub fn new(p: &'p Printer) -> Human<'p> {
        Human {
            p,
            spinner: RefCell::new(None),
        }
    }

    fn head(step: &Step, total: usize) -> String {
        let width = total.to_string().len();
        format!(
            "[{:>width$}/{total}] {} {}",
            step.id,
            step.op.as_str(),
            step.address
        )
    }

    fn clear_spinner(&self) {
        if let Some(s) = self.spinner.borrow_mut().take() {
            s.finish_and_clear();
        }
    }
}

impl ApplyView for Human<'_> {
    fn printer(&self) -> &Printer {
        self.p
    }

    fn event(&self, event: Event<'_>) -> miette::Result<()> {
        let p = self.p;
        match event {
            Event::Waiting { held } => {
                let _ = p.line(&format!("Waiting: {held}"));
            }
            Event::Orphan { line } => p.line(&format!("{} {line}", p.yellow("Orphan:")))?,
            Event::OrphansDone => p.line("")?,
            Event::Resuming { run, name, added } => p.line(&format!(
                "{} the run {name} did not finish ({} of {} steps done); planning afresh{}.\n",
                p.yellow("Resuming:"),
                run.done.len(),
                run.plan.steps.len(),
                if added == 0 {
                    String::new()
                } else {
                    format!(", plus {added} step(s) it still owed")
                }
            ))?,
            Event::Plan(plan) => p.out(&super::human::plan(p, plan))?,
            Event::SavedUnchanged(plan) => p.line(&super::human::plan(p, plan))?,
            Event::SavedRunning { path, steps } => p.line(&format!(
                "Applying the saved plan {} ({steps} steps).",
                path.display()
            ))?,
            Event::Cancelled => p.line("Apply cancelled; nothing was changed.")?,
            Event::Begin => p.line("")?,
            Event::RunStarted { dir } => p.line(&format!("Run directory: {}", dir.display()))?,
            Event::StepStarted { step, total } => {
                let head = Self::head(step, total);
                // A spinner on a terminal; a start line in logs, so a slow
                // step shows what it is waiting for.
                let spinner = p.bar(0, &head);
                if p.progress {
                    spinner.enable_steady_tick(Duration::from_millis(120));
                } else {
                    p.line(&format!("{head} …"))?;
                }
                *self.spinner.borrow_mut() = Some(spinner);
            }
            Event::StepFinished {
                step,
                total,
                applied,
                elapsed,
            } => {
                self.clear_spinner();
                p.line(&format!(
                    "{}: {} {}",
                    Self::head(step, total),
                    p.green(&applied.message),
                    p.dim(&format!("({:.2} s)", elapsed.as_secs_f64()))
                ))?;
                for d in &applied.details {
                    p.line(&format!("      {d}"))?;
                }
                for w in &applied.warnings {
                    p.line(&format!("      {} {w}", p.yellow("Warning:")))?;
                }
            }
            Event::StepFailed { step, total, .. } => {
                self.clear_spinner();
                p.line(&format!("{}: {}", Self::head(step, total), p.red("FAILED")))?;
            }
            Event::Restarted { name, error: None } => {
                p.line(&format!("  started {name} again (this run had stopped it)"))?
            }
            Event::Restarted {
                name,
                error: Some(e),
            } => p.line(&format!(
                "  {} could not start {name} again: {e}",
                p.red("Warning:")
            ))?,
            Event::Stopped { plan, failed } => stopped(p, plan, failed)?,
            Event::Complete {
                plan,
                run_dir,
                elapsed,
                warnings,
            } => {
                p.line(&format!(
                    "\n{} {}",
                    p.green(&summary_line(plan)),
                    p.dim(&format!(
                        "({:.1} s; run directory {})",
                        elapsed.as_secs_f64(),
                        run_dir.display()
                    ))
                ))?;
                for w in warnings {
                    p.line(&format!("{} {w}", p.yellow("Warning:")))?;
                }
            }
        }
        Ok(())
    }

    fn approve(&self) -> miette::Result<bool> {
        let p = self.p;
        p.line(&format!(
            "\n{}\n  imlrecover will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n",
            p.bold("Do you want to perform these actions?")
        ))?;
        let answer: String = dialoguer::Input::new()
            .with_prompt("  Enter a value")
            .allow_empty(true)
            .interact_text()
            .map_err(|e| miette!("cannot read the answer: {e}"))?;
        Ok(answer.trim() == "yes")
    }
}

fn stopped(p: &Printer, plan: &Plan, failed: usize) -> miette::Result<()> {
    let list = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        plan.steps
            .iter()
            .filter(|s| keep(s.id))
            .map(|s| format!("{} {}", s.op.as_str(), s.address))
            .collect()
    };
    let joined = |v: &[String]| {
        if v.is_empty() {
            "nothing".to_string()
        } else {
            v.join(", ")
        }
    };
    let done = list(&|id| id < failed);
    let left = list(&|id| id > failed);
    p.line(&format!("\nDone ({}): {}", done.len(), joined(&done)))?;
    p.line(&format!(
        "Not attempted ({}): {}",
        left.len(),
        joined(&left)
    ))
}

/// `Apply complete! 3 restored, 0 created, 2 updated, 0 removed, 0 run, 4 service actions.`
pub fn summary_line(plan: &Plan) -> String {
    format!("Apply complete! {}.", plan.summary.phrases(true))
}
