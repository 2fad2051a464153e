//! From resource changes and the DAG to the ordered steps apply runs.
//!
//! The phases are the runbook's order: the installer; stop the quiesced
//! services (PostgreSQL stays up); files and certificates; the database;
//! removals; start services again in dependency order; `notify` restarts;
//! the remote agents last. Within a phase, the graph's order.

use super::{Action, Op, ResourceChange, Step};
use crate::graph::Graph;
use crate::recipe::{Address, Recipe, ResourceType, ServiceState, Spec};

pub fn derive_steps(recipe: &Recipe, graph: &Graph, changes: &[ResourceChange]) -> Vec<Step> {
    let order = graph.order();
    let change = |a: &Address| changes.iter().find(|c| &c.address == a);
    let changed = |a: &Address| change(a).is_some_and(|c| c.action != Action::NoOp);
    let running = |a: &Address| {
        change(a)
            .is_some_and(|c| c.before.get("status").and_then(|s| s.as_str()) == Some("running"))
    };
    let desired = |a: &Address| match recipe.resource(a).map(|r| &r.spec) {
        Some(Spec::Service(s)) => Some(s.state),
        _ => None,
    };
    let of_kind = |k: ResourceType| order.iter().filter(move |a| a.kind == k);

    let mut steps: Vec<Step> = Vec::new();
    let mut push = |op: Op, address: &Address, reason: String| {
        steps.push(Step {
            id: 0,
            op,
            address: address.clone(),
            reason,
        })
    };

    for a in of_kind(ResourceType::Exec).filter(|a| changed(a)) {
        push(Op::Run, a, reason_of(change(a)));
    }

    // The quiesce bracket: services named by a database being restored.
    let restoring: Vec<&Address> = of_kind(ResourceType::Database)
        .filter(|a| changed(a))
        .collect();
    let quiesced_by = |s: &Address| {
        restoring
            .iter()
            .copied()
            .find(|db| match recipe.resource(db).map(|r| &r.spec) {
                Some(Spec::Database(d)) => d.quiesce.contains(s),
                _ => false,
            })
    };
    let services: Vec<&Address> = of_kind(ResourceType::Service).collect();
    // A service not installed yet is started by the installer before the
    // restore: it must be stopped too.
    let not_installed = |a: &Address| {
        change(a).is_some_and(|c| {
            c.before.get("status").and_then(|s| s.as_str()) == Some("not_installed")
        })
    };
    for s in services.iter().rev() {
        if let Some(db) = quiesced_by(s).filter(|_| running(s) || not_installed(s)) {
            push(Op::Stop, s, format!("quiesce for the {db} restore"));
        } else if running(s) && desired(s) == Some(ServiceState::Stopped) {
            push(Op::Stop, s, "desired state is stopped".into());
        }
    }

    for a in order.iter().filter(|a| changed(a)) {
        match a.kind {
            ResourceType::File | ResourceType::Files => push(Op::Write, a, reason_of(change(a))),
            ResourceType::Cert => push(Op::Restore, a, reason_of(change(a))),
            _ => {}
        }
    }
    for db in &restoring {
        push(Op::Restore, db, reason_of(change(db)));
    }
    for a in of_kind(ResourceType::Absent).filter(|a| changed(a)) {
        push(Op::Remove, a, reason_of(change(a)));
    }

    // Every change that notifies a service, by name.
    let causes_of = |s: &Address| -> Vec<String> {
        order
            .iter()
            .filter(|a| changed(a))
            .filter(|a| {
                recipe
                    .resource(a)
                    .is_some_and(|r| r.notify().any(|n| n == s))
            })
            .map(|a| a.to_string())
            .collect()
    };
    let mut started: Vec<&Address> = Vec::new();
    for s in &services {
        if desired(s) != Some(ServiceState::Running) {
            continue;
        }
        if let Some(db) = quiesced_by(s) {
            let why = if running(s) {
                format!("start again after the {db} restore")
            } else {
                format!("desired state is running (after the {db} restore)")
            };
            push(Op::Start, s, why);
            started.push(s);
        } else if !running(s) {
            // Something else (the installer) may start it before this step,
            // with the old configuration: a notified service is restarted.
            let causes = causes_of(s);
            if causes.is_empty() {
                push(Op::Start, s, "desired state is running".into());
            } else {
                push(
                    Op::Restart,
                    s,
                    format!(
                        "because {} changed (not running when planned)",
                        causes.join(", ")
                    ),
                );
            }
            started.push(s);
        }
    }

    // notify: one restart per service, naming every change that caused it.
    for s in &services {
        if started.contains(s) || desired(s) != Some(ServiceState::Running) {
            continue;
        }
        let causes = causes_of(s);
        if !causes.is_empty() {
            push(
                Op::Restart,
                s,
                format!("because {} changed", causes.join(", ")),
            );
        }
    }

    for a in of_kind(ResourceType::RemoteService).filter(|a| changed(a)) {
        push(Op::RemoteAction, a, reason_of(change(a)));
    }

    for (i, s) in steps.iter_mut().enumerate() {
        s.id = i + 1;
    }
    steps
}

fn reason_of(change: Option<&ResourceChange>) -> String {
    change.map(|c| c.reason.clone()).unwrap_or_default()
}
