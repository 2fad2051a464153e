//! `apply --format json|junit`: the engine's [`Event`]s gathered into one
//! record, written as a document when the command ends (docs/output.md).

use super::apply::{ApplyView, Event};
use super::document::{Case, Record};
use crate::plan::Step;
use crate::printer::{eprint, Printer};
use serde::Serialize;
use std::cell::RefCell;

#[derive(Debug, Default, Serialize)]
pub struct ApplyRecord {
    /// The saved plan run (`apply PLANFILE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_plan: Option<String>,
    /// The plan had something to do.
    pub changes: bool,
    /// What the plan does, counted (`3 restored, 0 created, …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
    /// The unfinished run this one took over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<String>,
    pub orphans: Vec<String>,
    pub steps: Vec<StepRecord>,
    /// After a failure: services this run had stopped, started again.
    pub restarted: Vec<Restart>,
    pub cancelled: bool,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct StepRecord {
    pub id: usize,
    pub address: String,
    pub action: String,
    pub reason: String,
    /// `done`, `failed` or `not_attempted`.
    pub status: &'static str,
    pub message: String,
    pub details: Vec<String>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Restart {
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepRecord {
    fn of(step: &Step, status: &'static str) -> StepRecord {
        StepRecord {
            id: step.id,
            address: step.address.to_string(),
            action: step.op.as_str().to_string(),
            reason: step.reason.clone(),
            status,
            message: String::new(),
            details: Vec::new(),
            warnings: Vec::new(),
            seconds: 0.0,
        }
    }
}

impl Record for ApplyRecord {
    fn cases(&self, _error: Option<&str>) -> Vec<Case> {
        let mut cases: Vec<Case> = self
            .steps
            .iter()
            .map(|s| {
                let name = format!("{}. {} {}", s.id, s.action, s.address);
                match s.status {
                    "failed" => Case::failed(name, s.seconds, &s.message),
                    "not_attempted" => Case {
                        name,
                        skipped: Some("not attempted: an earlier step failed".into()),
                        ..Case::default()
                    },
                    _ => Case::passed(name, s.seconds),
                }
            })
            .collect();
        if cases.is_empty() && !self.changes && !self.cancelled {
            cases.push(Case::passed("the host matches the recipe", 0.0));
        }
        cases
    }
}

/// The view of `apply --format json|junit`: stdout stays for the document;
/// waiting and orphans are said on stderr as they happen.
pub struct Gathered<'p> {
    p: &'p Printer,
    record: RefCell<ApplyRecord>,
}

impl<'p> Gathered<'p> {
    pub fn new(p: &'p Printer) -> Gathered<'p> {
        Gathered {
            p,
            record: RefCell::new(ApplyRecord::default()),
        }
    }

    pub fn into_record(self) -> ApplyRecord {
        let mut r = self.record.into_inner();
        r.warnings.extend(super::progress::take_warnings());
        r
    }
}

impl ApplyView for Gathered<'_> {
    fn printer(&self) -> &Printer {
        self.p
    }

    fn approve(&self) -> miette::Result<bool> {
        // A document run asks nothing (apply refuses earlier without --auto-approve).
        Ok(false)
    }

    fn event(&self, event: Event<'_>) -> miette::Result<()> {
        let mut r = self.record.borrow_mut();
        match event {
            Event::Waiting { held } => eprint(&format!("Waiting: {held}\n")),
            Event::Orphan { line } => {
                eprint(&format!("Orphan: {line}\n"));
                r.orphans.push(line.to_string());
            }
            Event::OrphansDone | Event::Begin => {}
            Event::Resuming { name, .. } => r.resumed = Some(name.to_string()),
            Event::Plan(plan) | Event::SavedUnchanged(plan) => {
                r.changes = plan.has_changes();
                r.summary = Some(plan.summary.phrases(true));
            }
            Event::SavedRunning { path, .. } => {
                r.saved_plan = Some(path.display().to_string());
                r.changes = true;
            }
            Event::Cancelled => r.cancelled = true,
            Event::RunStarted { dir } => r.run_dir = Some(dir.display().to_string()),
            Event::StepStarted { .. } => {}
            Event::StepFinished {
                step,
                applied,
                elapsed,
                ..
            } => {
                let mut s = StepRecord::of(step, "done");
                s.message = applied.message.clone();
                s.details = applied.details.clone();
                s.warnings = applied.warnings.clone();
                s.seconds = elapsed.as_secs_f64();
                r.steps.push(s);
            }
            Event::StepFailed {
                step,
                message,
                elapsed,
                ..
            } => {
                let mut s = StepRecord::of(step, "failed");
                s.message = message.to_string();
                s.seconds = elapsed.as_secs_f64();
                r.steps.push(s);
            }
            Event::Restarted { name, error } => r.restarted.push(Restart {
                service: name.to_string(),
                error,
            }),
            Event::Stopped { plan, failed } => {
                for step in plan.steps.iter().filter(|s| s.id > failed) {
                    r.steps.push(StepRecord::of(step, "not_attempted"));
                }
            }
            Event::Complete {
                plan,
                run_dir,
                elapsed,
                warnings,
            } => {
                r.summary = Some(plan.summary.phrases(true));
                r.run_dir = Some(run_dir.display().to_string());
                r.seconds = Some(elapsed.as_secs_f64());
                r.warnings.extend(warnings.iter().cloned());
            }
        }
        Ok(())
    }
}
