//! The one trait every resource kind implements for `plan` (and `apply`):
//! observe the live host, compare it with the desired state (recipe +
//! bundle). A new kind is one new file implementing it, plus its arm in
//! [`dispatch`] (and in [`apply_step`]).
//!
//! Planning runs in two phases ([`crate::plan::build`]): every resource's
//! `observe`, concurrently, then every `compare`, one at a time in graph
//! order. [`observe_resource`] and [`compare_resource`] are the two halves;
//! an [`Observation`] carries the kind's typed `Observed` between them.

use crate::bundle::Bundle;
use crate::graph::Graph;
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::plan::{fingerprint, Action, ResourceChange};
use crate::recipe::{Address, Recipe, Resource, Spec};
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
    pub entries: &'a super::content::EntryIndex<'a>,
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
    pub entries: &'a super::content::EntryIndex<'a>,
    /// Safety dumps started ahead of their restore step ([`prepare_step`]).
    pub safety_dumps: &'a std::cell::RefCell<Vec<super::database::SafetyDump>>,
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

pub trait Kind {
    type Spec;
    /// What was seen on the host; its JSON is the plan's `before` and its
    /// hash tells a stale saved plan. `Send`: it is made on a worker thread.
    type Observed: Serialize + Send + 'static;

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
}

/// What a kind's `observe` saw, opaque until its `compare`; `Send`, so that
/// observations can be made on worker threads.
pub struct Observation(Box<dyn std::any::Any + Send>);

/// Something to do with a resource's kind and its typed spec.
trait WithKind {
    type Out;
    fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out;
}

/// The one place a resource's kind is chosen, so that its observation and
/// its comparison always go to the same kind.
fn dispatch<W: WithKind>(resource: &Resource, w: W) -> W::Out {
    use super::*;
    let a = &resource.address;
    match &resource.spec {
        Spec::File(s) => w.with(file::FileKind, a, s),
        Spec::Files(s) => w.with(files::FilesKind, a, s),
        Spec::Absent(s) => w.with(absent::AbsentKind, a, s),
        Spec::Cert(s) => w.with(cert::CertKind, a, s),
        Spec::Database(s) => w.with(database::DatabaseKind, a, s),
        Spec::Service(s) => w.with(service::ServiceKind, a, s),
        Spec::Exec(s) => w.with(exec::ExecKind, a, s),
        Spec::RemoteService(s) => w.with(remote_service::RemoteServiceKind, a, s),
    }
}

/// Observes one resource with its kind. Read-only; `cx.prior` is not used.
pub fn observe_resource(resource: &Resource, cx: &Cx) -> Result<Observation, ResourceError> {
    struct Observe<'c, 'a>(&'c Cx<'a>);
    impl WithKind for Observe<'_, '_> {
        type Out = Result<Observation, ResourceError>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            Ok(Observation(Box::new(kind.observe(address, spec, self.0)?)))
        }
    }
    dispatch(resource, Observe(cx))
}

/// Compares one resource's observation with the recipe and the bundle.
pub fn compare_resource(
    resource: &Resource,
    observation: Observation,
    cx: &Cx,
) -> Result<ResourceChange, ResourceError> {
    struct Compare<'c, 'a>(Observation, &'c Cx<'a>);
    impl WithKind for Compare<'_, '_> {
        type Out = Result<ResourceChange, ResourceError>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            let Compare(Observation(any), cx) = self;
            // Cannot fail for an observation `observe_resource` made of this
            // resource: `dispatch` chooses the same kind for both.
            let observed = any.downcast::<K::Observed>().map_err(|_| {
                ResourceError::new(address, "internal error: observed as another kind")
            })?;
            let verdict = kind.compare(address, spec, &observed, cx)?;
            let before = serde_json::to_value(&*observed).unwrap_or(serde_json::Value::Null);
            Ok(ResourceChange {
                address: address.clone(),
                action: verdict.action,
                reason: verdict.reason,
                details: verdict.details,
                files: verdict.files,
                observed: fingerprint(&before),
                before,
                after: verdict.after,
                sensitive: verdict.sensitive,
            })
        }
    }
    dispatch(resource, Compare(observation, cx))
}

/// Starts what a step can do ahead of its turn, once the engine knows
/// nothing before it can change what it reads: the safety dump of a
/// database restore. Every other step has nothing to prepare.
pub fn prepare_step(resource: &Resource, step: &crate::plan::Step, cx: &ApplyCx) {
    if let (Spec::Database(s), crate::plan::Op::Restore) = (&resource.spec, step.op) {
        super::database::prepare(&resource.address, s, cx);
    }
}

/// Applies one step with its resource's kind.
pub fn apply_step(
    resource: &Resource,
    step: &crate::plan::Step,
    change: &ResourceChange,
    cx: &ApplyCx,
) -> Result<Applied, ResourceError> {
    use super::*;
    let a = &resource.address;
    match &resource.spec {
        Spec::File(s) => file::FileKind.apply(a, s, step, change, cx),
        Spec::Files(s) => files::FilesKind.apply(a, s, step, change, cx),
        Spec::Absent(s) => absent::AbsentKind.apply(a, s, step, change, cx),
        Spec::Cert(s) => cert::CertKind.apply(a, s, step, change, cx),
        Spec::Database(s) => database::DatabaseKind.apply(a, s, step, change, cx),
        Spec::Service(s) => service::ServiceKind.apply(a, s, step, change, cx),
        Spec::Exec(s) => exec::ExecKind.apply(a, s, step, change, cx),
        Spec::RemoteService(s) => remote_service::RemoteServiceKind.apply(a, s, step, change, cx),
    }
}
