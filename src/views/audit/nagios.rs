//! `audit --format nagios`: one Nagios/Icinga plugin status line with
//! performance data, and the plugin exit code (docs/monitoring.md):
//!
//! * CRITICAL (2): the bundle is older than `--critical-age` (or its age is
//!   unknown), it fails its integrity check, or a certificate is expired,
//!   expires within `--cert-critical-days`, or fails its key or chain check;
//! * WARNING (1): any other finding (drift, a bundle older than `--max-age`,
//!   a certificate within `--cert-min-days`, unmanaged files, another
//!   recipe, no recent drill, keys only on this host);
//! * OK (0): no finding. UNKNOWN (3) is an error of the audit itself
//!   (`commands::run` prints that line).

use crate::audit::{check, Finding, Report, Suite};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The thresholds that only the plugin output uses.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub critical_age: Duration,
    pub cert_critical_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
        }
    }
}

fn state_of(f: &Finding, r: &Report, t: &Thresholds) -> State {
    if !f.failed() {
        return State::Ok;
    }
    match f.check {
        check::BACKUP_AGE => match r.bundle.age_seconds {
            Some(age) if age <= t.critical_age.as_secs() => State::Warning,
            _ => State::Critical,
        },
        check::BACKUP_INTEGRITY | check::CERT_KEY | check::CERT_CHAIN => State::Critical,
        check::CERT_EXPIRY => {
            let days = r
                .measures
                .certs
                .iter()
                .find(|c| f.path.as_deref() == Some(c.path.as_str()))
                .map(|c| c.days_left);
            match days {
                Some(d) if d >= i64::from(t.cert_critical_days) => State::Warning,
                // Missing or unreadable certificates, expired or nearly so.
                _ => State::Critical,
            }
        }
        _ => State::Warning,
    }
}

/// The status line and the exit code.
pub fn report(r: &Report, t: &Thresholds, now: SystemTime) -> (String, u8) {
    let failed: Vec<(&Finding, State)> = r
        .findings
        .iter()
        .filter(|f| f.failed())
        .map(|f| (f, state_of(f, r, t)))
        .collect();
    let state = failed.iter().map(|(_, s)| *s).max().unwrap_or(State::Ok);
    let text = if failed.is_empty() {
        format!(
            "{} checks passed; bundle {} is {} old",
            r.summary.checks,
            r.bundle.id,
            r.bundle
                .age_seconds
                .map_or("of unknown age".to_string(), |a| {
                    humantime::format_duration(Duration::from_secs(a)).to_string()
                })
        )
    } else {
        let kinds: Vec<String> = Suite::ALL
            .iter()
            .filter(|s| r.summary.of_suite(**s) > 0)
            .map(|s| format!("{} {}", r.summary.of_suite(*s), s.noun()))
            .collect();
        // The worst finding first: the one the on-call person reads.
        let worst = failed
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(f, _)| *f)
            .next();
        format!(
            "{} {} ({}): {}",
            r.summary.findings,
            if r.summary.findings == 1 {
                "finding"
            } else {
                "findings"
            },
            kinds.join(", "),
            worst.map_or(String::new(), |f| format!("{}: {}", f.name(), f.message))
        )
    };
    let perf = perfdata(r, t, now);
    let line = format!(
        "IMLRECOVER {} - {} | {perf}",
        state.word(),
        text.replace('|', "/").replace('\n', " ")
    );
    (line, state as u8)
}

fn perfdata(r: &Report, t: &Thresholds, now: SystemTime) -> String {
    let backup_age = r
        .bundle
        .age_seconds
        .map_or("U".to_string(), |a| format!("{a}s"));
    let certs = r
        .measures
        .certs
        .iter()
        .map(|c| c.days_left)
        .min()
        .map_or("U".to_string(), |d| d.to_string());
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let drill_age = r
        .measures
        .drill
        .as_ref()
        .and_then(|d| d.last_success.as_ref())
        .and_then(|d| d.unix_time())
        .map_or("U".to_string(), |t| format!("{}s", now_s.saturating_sub(t)));
    let drill_warn = r
        .measures
        .max_drill_age
        .map_or(String::new(), |m| format!(";{m}"));
    format!(
        "backup_age={backup_age};{};{} drift={} certs_min_days={certs};{};{} drill_age={drill_age}{drill_warn}",
        r.limits.max_age_seconds,
        t.critical_age.as_secs(),
        r.summary.drift,
        r.limits.cert_min_days,
        t.cert_critical_days,
    )
}
