//! How plans are shown: `human` for people (colour decided by the
//! `Printer`), `json` for programs (the versioned schema of `plan::Plan`).

pub mod human;
pub mod prompt;
pub mod transfer;

use crate::plan::Plan;

pub fn json(plan: &Plan) -> String {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
