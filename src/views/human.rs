//! The plan as a person reads it, like `terraform plan`: one block per
//! resource with a symbol, then the ordered steps, then a summary line.

use crate::plan::{Action, FileChange, Op, Plan, ResourceChange, Step};
use crate::printer::Printer;
use std::fmt::Write;

pub fn plan(p: &Printer, plan: &Plan) -> String {
    let mut out = String::new();
    for w in &plan.warnings {
        let _ = writeln!(out, "{} {w}", p.yellow("Warning:"));
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    if !plan.has_changes() {
        remote_hosts(p, &mut out, plan);
        let _ = writeln!(
            out,
            "{}",
            p.green("No changes. The host matches the recipe.")
        );
        return out;
    }
    let _ = writeln!(
        out,
        "imlrecover will perform the following actions (symbols: {} create, {} update, {} remove, {} restore, {} run/restart):\n",
        symbol(p, Action::Create),
        symbol(p, Action::Update),
        symbol(p, Action::Delete),
        symbol(p, Action::Restore),
        symbol(p, Action::Run),
    );
    for c in plan.resource_changes.iter().filter(|c| c.changed()) {
        resource(p, &mut out, c);
    }
    remote_hosts(p, &mut out, plan);
    let _ = writeln!(out, "{}", p.bold("Steps, in order:"));
    let width = plan.steps.len().to_string().len();
    for s in &plan.steps {
        let _ = writeln!(out, "  {:>width$}. {}", s.id, step(p, plan, s));
    }
    let _ = writeln!(out, "\n{}", summary_line(plan));
    out
}

/// Remote services with no action planned still show their hosts: which
/// are reachable with a verified host key is worth knowing before a restore.
fn remote_hosts(p: &Printer, out: &mut String, plan: &Plan) {
    let quiet = plan.resource_changes.iter().filter(|c| {
        !c.changed()
            && c.address.kind.phase() == crate::resources::kind::Phase::Remote
            && !c.details.is_empty()
    });
    for c in quiet {
        let _ = writeln!(
            out,
            "  {} {}",
            p.bold(&c.address.to_string()),
            p.dim(&format!("(no action: {})", c.reason))
        );
        for d in &c.details {
            let _ = writeln!(out, "      {d}");
        }
        out.push('\n');
    }
}

fn symbol(p: &Printer, a: Action) -> String {
    let s = a.symbol();
    match a {
        Action::Create => p.green(s),
        Action::Update => p.yellow(s),
        Action::Delete => p.red(s),
        Action::Restore => format!("{}{}{}", p.red("-"), "/", p.green("+")),
        Action::Run => p.bold(s),
        Action::NoOp => s.to_string(),
    }
}

fn resource(p: &Printer, out: &mut String, c: &ResourceChange) {
    let _ = writeln!(
        out,
        "  {} {} {}",
        symbol(p, c.action),
        p.bold(&c.address.to_string()),
        p.dim(&format!("({}: {})", c.action.word(), c.reason)),
    );
    for d in &c.details {
        let _ = writeln!(out, "      {d}");
    }
    for f in c.files.iter().filter(|f| f.action != Action::NoOp) {
        file(p, out, f);
    }
    out.push('\n');
}

fn file(p: &Printer, out: &mut String, f: &FileChange) {
    let _ = writeln!(out, "      {} {}", symbol(p, f.action), f.path);
    for d in &f.details {
        let _ = writeln!(out, "          {d}");
    }
    if let Some(diff) = &f.diff {
        for line in diff.lines() {
            let styled = if line.starts_with("+++") || line.starts_with("---") {
                p.bold(line)
            } else if line.starts_with('+') {
                p.green(line)
            } else if line.starts_with('-') {
                p.red(line)
            } else if line.starts_with("@@") {
                p.dim(line)
            } else {
                line.to_string()
            };
            let _ = writeln!(out, "          {styled}");
        }
    }
}

fn step(p: &Printer, plan: &Plan, s: &Step) -> String {
    let action = match s.op {
        Op::Run | Op::RemoteAction => Action::Run,
        Op::Remove => Action::Delete,
        Op::Restore => Action::Restore,
        Op::Write => match plan.change(&s.address).map(|c| c.action) {
            Some(Action::Create) => Action::Create,
            _ => Action::Update,
        },
        // As the service's own line in the plan marks it: `!`.
        Op::Stop | Op::Start | Op::Restart => Action::Run,
    };
    format!(
        "{} {} {} {}",
        symbol(p, action),
        s.op.as_str(),
        s.address,
        p.dim(&format!("({})", s.reason))
    )
}

pub fn summary_line(plan: &Plan) -> String {
    format!("Plan: {}.", plan.summary.phrases(false))
}

/// After `plan --out F`: how to apply exactly this plan.
pub fn saved(out: &std::path::Path) -> String {
    format!(
        "\nSaved the plan to {}. To perform exactly these actions, run:\n    imlrecover apply {}",
        out.display(),
        out.display()
    )
}

/// `show`'s first line: what a saved plan was made from.
pub fn made(plan: &Plan) -> String {
    format!(
        "Plan made {} from recipe {} and bundle {} for root {}.\n",
        plan.created, plan.recipe.path, plan.bundle.id, plan.root
    )
}
