//! The one trait every resource kind implements: its keyword, schema and
//! decoding (for the recipe), its capture (for `backup`), observe/compare
//! (for `plan`), apply and prepare (for `apply`), its step phase and its
//! audit checks. A new kind is one new file implementing [`Kind`], plus its
//! line in [`super::registry`].
//!
//! Planning runs in two phases ([`crate::plan::build`]): every resource's
//! `observe`, concurrently, then every `compare`, one at a time in graph
//! order. [`super::registry::observe_resource`] and
//! [`super::registry::compare_resource`] are the two halves; an
//! [`Observation`] carries the kind's typed `Observed` between them.

use super::entries::EntryIndex;
use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::Bundle;
use crate::graph::Graph;
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::plan::Op;
use crate::plan::{Action, ResourceChange};
use crate::recipe::{Address, BlockSchema, BlockValues, Recipe, ServiceState};
use crate::state::State;
use serde::Serialize;

/// Everything a resource may look at while planning. Read-only: planning
/// never changes the host or the bundle.
pub struct Cx<'a> {
    pub recipe: &'a Recipe,
    pub graph: &'a Graph,
    pub root: &'a Root,
    pub bundle: &'a Bundle,
    pub services: &'a Services,
    pub state: &'a State,
    /// `--replace` addresses.
    pub replace: &'a [Address],
    /// Changes of the resources planned before this one (graph order).
    /// Only `compare` may use them: while observing, this is empty
    /// (observations run concurrently, before any compare).
    pub prior: &'a [ResourceChange],
    pub entries: &'a EntryIndex<'a>,
}

impl Cx<'_> {
    pub fn forced(&self, address: &Address) -> bool {
        self.replace.contains(address)
    }

    /// Will some resource that comes before `address` in the graph run in
    /// this plan? (e.g. the installer, before a service it installs)
    pub fn changed_before(&self, address: &Address) -> Vec<&Address> {
        self.prior
            .iter()
            .filter(|c| c.changed() && self.graph.precedes(&c.address, address))
            .map(|c| &c.address)
            .collect()
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{address}: {message}")]
#[diagnostic(code(imlrecover::resource))]
pub struct ResourceError {
    pub address: Address,
    pub message: String,
    #[help]
    pub help: Option<String>,
}

impl ResourceError {
    pub fn new(address: &Address, message: impl Into<String>) -> ResourceError {
        ResourceError {
            address: address.clone(),
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> ResourceError {
        self.help = Some(help.into());
        self
    }
}

/// What a kind decides about one resource, before the common fields.
pub struct Verdict {
    pub action: Action,
    pub reason: String,
    pub details: Vec<String>,
    pub files: Vec<crate::plan::FileChange>,
    pub after: serde_json::Value,
    pub sensitive: bool,
}

impl Verdict {
    pub fn no_op(reason: impl Into<String>, after: serde_json::Value) -> Verdict {
        Verdict {
            action: Action::NoOp,
            reason: reason.into(),
            details: Vec::new(),
            files: Vec::new(),
            after,
            sensitive: false,
        }
    }

    pub fn new(action: Action, reason: impl Into<String>, after: serde_json::Value) -> Verdict {
        Verdict {
            action,
            ..Verdict::no_op(reason, after)
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Verdict {
        self.details.push(d.into());
        self
    }
}

/// Everything a resource may use while applying a step.
pub struct ApplyCx<'a> {
    pub recipe: &'a Recipe,
    pub root: &'a Root,
    pub bundle: &'a Bundle,
    pub services: &'a Services,
    /// This run's directory (safety dumps) and its `previous/`.
    pub run_dir: &'a std::path::Path,
    pub previous: &'a std::path::Path,
    pub state: &'a std::cell::RefCell<State>,
    pub printer: &'a crate::printer::Printer,
    pub entries: &'a EntryIndex<'a>,
    /// Work started ahead of its step by a kind's [`Kind::prepare`] (a
    /// database's safety dump), for that step to collect.
    pub prepared: &'a std::cell::RefCell<Vec<Box<dyn std::any::Any>>>,
}

/// What one step did, in a line, plus anything worth a warning.
#[derive(Debug, Default)]
pub struct Applied {
    pub message: String,
    pub warnings: Vec<String>,
    /// Lines printed under the step (a per-host table, removed backends…).
    pub details: Vec<String>,
}

impl Applied {
    pub fn new(message: impl Into<String>) -> Applied {
        Applied {
            message: message.into(),
            ..Applied::default()
        }
    }
}

/// Where a kind's steps go in a plan ([`crate::plan::steps`]), in the
/// runbook's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Written with the files (with this op); before a command that
    /// depends on it, else after the services stopped for a restore.
    Files(Op),
    /// A command (the installer), after the files it depends on.
    Command,
    /// A local service: stopped for a restore that quiesces it, started
    /// or restarted (`notify`) after; may be named by `quiesce`/`notify`.
    Service,
    /// Restored after the files, its quiesced services stopped.
    Restore,
    /// Removed after the restore.
    Remove,
    /// Acted on remote hosts, last; may be named by `notify`.
    Remote,
}

impl Phase {
    /// Whether `notify` may name a resource of this phase.
    pub fn notifiable(self) -> bool {
        matches!(self, Phase::Service | Phase::Remote)
    }
}

/// What resources name under the root, for the audit's unmanaged-files check.
#[derive(Debug, Default)]
pub struct Named {
    pub paths: Vec<String>,
    pub globs: Vec<String>,
}

/// What a kind's audit checks found.
#[derive(Debug, Default)]
pub struct Audited {
    pub findings: Vec<crate::audit::Finding>,
    pub certs: Vec<crate::audit::CertExpiry>,
}

pub trait Kind {
    /// Its block keyword (`file`, `remote_service`): also the `TYPE` of its
    /// addresses and the name its blocks are referred to by (`cert.ca`).
    const KEYWORD: &'static str;
    /// The attributes and nested blocks its block accepts.
    const SCHEMA: BlockSchema;
    /// Where its steps go in a plan.
    const PHASE: Phase;
    /// Whether `backup` puts it in the bundle (see [`Kind::capture`]).
    const CAPTURES: bool = false;
    /// The audit suite its [`Kind::audit`] checks report in, if any.
    const AUDIT: Option<crate::audit::Suite> = None;

    /// What its block decodes to.
    type Spec: std::fmt::Debug + Clone;
    /// What was seen on the host; its JSON is the plan's `before` and its
    /// hash tells a stale saved plan. `Send`: it is made on a worker thread.
    type Observed: Serialize + Send + 'static;

    /// Decodes its block (checked against [`Kind::SCHEMA`]); every problem
    /// is reported through `b`, `None` when there was one.
    fn decode(b: &mut BlockValues) -> Option<Self::Spec>;

    /// Reads the live host under `--root` into the bundle being written.
    /// Called only when [`Kind::CAPTURES`].
    fn capture(
        &self,
        _cx: &mut CaptureCx,
        _address: &Address,
        _spec: &Self::Spec,
    ) -> Result<Captured, CaptureError> {
        Ok(Captured::default())
    }

    /// Reads the live host. Never changes anything. Runs concurrently with
    /// other resources' `observe`, before any `compare`: it must not depend
    /// on other resources (`cx.prior` is empty here) and must give the same
    /// result whatever else is being observed at the same time.
    fn observe(
        &self,
        address: &Address,
        spec: &Self::Spec,
        cx: &Cx,
    ) -> Result<Self::Observed, ResourceError>;

    /// Desired state (recipe + bundle) against what was observed.
    fn compare(
        &self,
        address: &Address,
        spec: &Self::Spec,
        observed: &Self::Observed,
        cx: &Cx,
    ) -> Result<Verdict, ResourceError>;

    /// Carries out one step of a plan for this resource.
    fn apply(
        &self,
        address: &Address,
        spec: &Self::Spec,
        step: &crate::plan::Step,
        change: &ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError>;

    /// Starts what `step` can do ahead of its turn, once the engine knows
    /// nothing before it can change what it reads (a database's safety
    /// dump); it leaves its work in `cx.prepared`. Most kinds have nothing.
    fn prepare(
        &self,
        _address: &Address,
        _spec: &Self::Spec,
        _step: &crate::plan::Step,
        _cx: &ApplyCx,
    ) {
    }

    /// The services its step stops around itself (a database's quiesce).
    fn quiesces(_spec: &Self::Spec) -> &[Address] {
        &[]
    }

    /// The state a service wants; `None` for other kinds.
    fn desired_state(_spec: &Self::Spec) -> Option<ServiceState> {
        None
    }

    /// The paths and globs it names under the root.
    fn named(_spec: &Self::Spec, _out: &mut Named) {}

    /// Whether a manifest entry recorded under this resource's address is
    /// one its capture writes (`Err`: why not), for the bundle check
    /// ([`crate::bundle::check`]). Kinds that capture no entries refuse all.
    fn owns_entry(_spec: &Self::Spec, entry: &crate::bundle::Entry) -> Result<(), String> {
        Err(format!(
            "{}: this kind of resource captures no files",
            crate::bundle::normalize(&entry.path)
        ))
    }

    /// Its own audit checks, on the live host.
    fn audit(
        &self,
        _address: &Address,
        _spec: &Self::Spec,
        _i: &crate::audit::checks::Inputs,
        _out: &mut Audited,
    ) -> Result<(), crate::audit::checks::AuditError> {
        Ok(())
    }
}

/// What a kind's `observe` saw, opaque until its `compare`; `Send`, so that
/// observations can be made on worker threads.
pub struct Observation(pub(super) Box<dyn std::any::Any + Send>);
