//! `imlrecover audit`: drift and health of the live host against a recipe
//! and its newest bundle, for CI and timers. Read-only. Exit 0 clean, 2
//! findings, 1 when the audit could not be done (never reported as drift).

use super::{CmdResult, Outcome};
use crate::audit;
use crate::bundle::Bundle;
use crate::cli::{AuditArgs, AuditFormat};
use crate::printer::Printer;
use crate::target::{self, Target};
use crate::views;

pub fn run(printer: &Printer, args: &AuditArgs) -> CmdResult {
    let recipe = target::load_recipe(&args.target.recipe)?;
    let root = target::root(&args.target.root)?;
    let bundle = Bundle::open(target::bundle_arg(&args.target)?)?;
    // The plan's errors (an unreachable database, an unreadable file) are
    // the audit's errors: without a plan there is no drift to report.
    let not_drift = |e: miette::Report| {
        e.wrap_err("the audit could not compare the host with the recipe (an error, not drift)")
    };
    crate::bundle::crypt::check_readable(&bundle).map_err(|e| not_drift(e.into()))?;
    let services = target::services(&recipe, &root);
    let mut t =
        Target::new(recipe, root, services, (bundle, None), Vec::new()).map_err(not_drift)?;
    let plan = t.plan().map_err(not_drift)?;
    let now = std::time::SystemTime::now();
    let report = audit::run(&audit::Inputs {
        recipe: &t.recipe,
        root: &t.root,
        bundle: &t.bundle,
        plan: &plan,
        max_age: args.max_age,
        cert_min_days: args.cert_min_days,
        max_drill_age: args.max_drill_age,
        now,
    })?;
    record_metrics(&report);
    match args.format {
        AuditFormat::Human => printer.out(&views::audit::human::report(printer, &report))?,
        AuditFormat::Json => printer.line(&views::audit::json(&report))?,
        AuditFormat::Junit => printer.out(&views::audit::junit::report(&report))?,
        AuditFormat::Nagios => {
            let thresholds = views::audit::nagios::Thresholds {
                critical_age: args.critical_age,
                cert_critical_days: args.cert_critical_days,
            };
            let (line, code) = views::audit::nagios::report(&report, &thresholds, now);
            printer.line(&line)?;
            return Ok(Outcome::Code(code));
        }
    }
    Ok(if report.clean() {
        Outcome::Clean
    } else {
        Outcome::Changes
    })
}

/// What `--metrics-file` shows of an audit: findings by kind, the bundle's
/// age, certificate expiry times and the drill on record.
fn record_metrics(report: &audit::Report) {
    use crate::metrics::{self, record, Family};
    let mut findings = Family::labelled(
        "imlrecover_audit_findings",
        "Failing findings of the last audit, by kind (drift, backup, certificates, unmanaged).",
    );
    for s in audit::Suite::ALL {
        findings = findings.sample(&[("kind", s.as_str())], report.summary.of_suite(s) as f64);
    }
    record(findings);
    record(Family::gauge(
        "imlrecover_audit_checks",
        "Checks the last audit performed (passing and failing).",
        report.summary.checks as f64,
    ));
    if let Some(age) = report.bundle.age_seconds {
        record(Family::gauge(
            "imlrecover_audit_backup_age_seconds",
            "Age of the audited bundle when the last audit ran.",
            age as f64,
        ));
    }
    let mut certs = Family::labelled(
        "imlrecover_certificate_expiry_timestamp_seconds",
        "notAfter of each live certificate the recipe names (Unix time).",
    );
    for c in &report.measures.certs {
        certs = certs.sample(
            &[("address", c.address.as_str()), ("path", c.path.as_str())],
            c.not_after as f64,
        );
    }
    if !certs.samples.is_empty() {
        record(certs);
    }
    if let Some(d) = &report.measures.drill {
        for f in metrics::drill(d) {
            record(f);
        }
    }
}
