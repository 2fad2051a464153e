//! From resource changes and the DAG to the ordered steps apply runs.
//!
//! The phases are the runbook's order: the OS files a command (the
//! installer) depends on; the installer; stop the quiesced
//! services (PostgreSQL stays up); files and certificates; start or
//! restart the services the restore neither quiesces nor follows (as the
//! runbook restarts NTP before the restore; PostgreSQL, which the database
//! depends on, is up before it); the database; removals; the other starts
//! and `notify` restarts, in dependency order; the remote agents last.
//! Within a phase, the graph's order. Each kind says which phase its
//! steps belong to ([`Phase`]); nothing here names a kind.

use super::{Action, Op, ResourceChange, Step};
use crate::graph::Graph;
use crate::recipe::{Address, Recipe, ServiceState};
use crate::resources::kind::Phase;
use crate::resources::registry;

pub fn derive_steps(recipe: &Recipe, graph: &Graph, changes: &[ResourceChange]) -> Vec<Step> {
    let order = graph.order();
    // Maps, not scans: every resource is looked up (#22: linear in resources).
    let by_change: std::collections::HashMap<&Address, &ResourceChange> =
        changes.iter().map(|c| (&c.address, c)).collect();
    let by_resource: std::collections::HashMap<&Address, &crate::recipe::Resource> =
        recipe.resources.iter().map(|r| (&r.address, r)).collect();
    let change = |a: &Address| by_change.get(a).copied();
    let changed = |a: &Address| change(a).is_some_and(|c| c.action != Action::NoOp);
    let running = |a: &Address| {
        change(a)
            .is_some_and(|c| c.before.get("status").and_then(|s| s.as_str()) == Some("running"))
    };
    let desired = |a: &Address| by_resource.get(a).and_then(|r| registry::desired_state(r));
    let of_phase = |p: Phase| order.iter().filter(move |a| a.kind.phase() == p);

    let mut steps: Vec<Step> = Vec::new();
    let mut push = |op: Op, address: &Address, reason: String| {
        steps.push(Step {
            id: 0,
            op,
            address: address.clone(),
            reason,
        })
    };

    let file_kind = |a: &Address| matches!(a.kind.phase(), Phase::Files(_));
    let file_step = |a: &Address| match a.kind.phase() {
        Phase::Files(op) => op,
        _ => Op::Write,
    };
    let execs: Vec<&Address> = of_phase(Phase::Command).filter(|a| changed(a)).collect();
    // The OS configuration the installer depends on (repositories, users)
    // is restored before it runs, as the runbook does.
    let before_exec: Vec<&Address> = order
        .iter()
        .filter(|a| changed(a) && file_kind(a))
        .filter(|a| execs.iter().any(|e| graph.precedes(a, e)))
        .collect();
    for a in &before_exec {
        push(file_step(a), a, reason_of(change(a)));
    }
    for a in &execs {
        push(Op::Run, a, reason_of(change(a)));
    }

    // The quiesce bracket: services named by a database being restored.
    let restoring: Vec<&Address> = of_phase(Phase::Restore).filter(|a| changed(a)).collect();
    let quiesced_by = |s: &Address| {
        restoring.iter().copied().find(|db| {
            recipe
                .resource(db)
                .is_some_and(|r| registry::quiesces(r).contains(s))
        })
    };
    let services: Vec<&Address> = of_phase(Phase::Service).collect();
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

    // Every change that notifies a service, by name.
    let causes_of = |s: &Address| -> Vec<&Address> {
        order
            .iter()
            .filter(|a| changed(a))
            .filter(|a| {
                by_resource
                    .get(a)
                    .is_some_and(|r| r.notify().any(|n| n == s))
            })
            .collect()
    };
    let names = |c: &[&Address]| {
        c.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };

    // Services to start or restart, in dependency order.
    let mut wanted: Vec<(Op, &Address, String)> = Vec::new();
    let mut started: Vec<&Address> = Vec::new();
    for s in &services {
        if desired(s) != Some(ServiceState::Running) {
            continue;
        }
        if let Some(db) = quiesced_by(s) {
            let why = if running(s) {
                format!("start again after the {db} restore")
            } else {
                format!("desired state is running, after the {db} restore")
            };
            wanted.push((Op::Start, s, why));
            started.push(s);
        } else if !running(s) {
            // Something else (the installer) may start it before this step,
            // with the old configuration: a notified service is restarted.
            let causes = causes_of(s);
            if causes.is_empty() {
                wanted.push((Op::Start, s, "desired state is running".into()));
            } else {
                wanted.push((
                    Op::Restart,
                    s,
                    format!(
                        "because {} changed; it was not running when planned",
                        names(&causes)
                    ),
                ));
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
            wanted.push((
                Op::Restart,
                s,
                format!("because {} changed", names(&causes)),
            ));
        }
    }
    // As the runbook restarts NTP before the restore: a service the restore
    // does not quiesce, that does not come after a restored database and
    // whose causes are all written by now, starts before the restore (a
    // database that depends on it needs it up); the rest after it.
    let early = |s: &Address| {
        !restoring.is_empty()
            && quiesced_by(s).is_none()
            && !restoring.iter().any(|db| graph.precedes(db, s))
            && causes_of(s).iter().all(|c| file_kind(c))
    };
    // Early ones a restored database depends on and that wait for no file
    // (PostgreSQL) go before the files, so the safety dump overlaps those.
    let waits_for_files = |s: &Address| {
        !causes_of(s).is_empty()
            || order.iter().any(|a| {
                changed(a) && file_kind(a) && !before_exec.contains(&a) && graph.precedes(a, s)
            })
    };
    let (before, after): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(_, s, _)| early(s));
    let (first, before): (Vec<_>, Vec<_>) = before.into_iter().partition(|(_, s, _)| {
        !waits_for_files(s) && restoring.iter().any(|db| graph.precedes(s, db))
    });
    for (op, s, why) in first {
        push(op, s, why);
    }
    for a in order
        .iter()
        .filter(|a| changed(a) && file_kind(a) && !before_exec.contains(a))
    {
        push(file_step(a), a, reason_of(change(a)));
    }
    for (op, s, why) in before {
        push(op, s, why);
    }
    for db in &restoring {
        push(Op::Restore, db, reason_of(change(db)));
    }
    for a in of_phase(Phase::Remove).filter(|a| changed(a)) {
        push(Op::Remove, a, reason_of(change(a)));
    }
    for (op, s, why) in after {
        push(op, s, why);
    }

    for a in of_phase(Phase::Remote).filter(|a| changed(a)) {
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
