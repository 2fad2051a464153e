//! How an audit report is shown: `human` for people, `json` (the versioned
//! document of docs/audit.md), `junit` for CI, `nagios` for monitoring.

pub mod human;
pub mod junit;
pub mod nagios;

use crate::audit::Report;

/// The versioned JSON document (docs/audit.md).
pub fn json(report: &Report) -> String {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
