//! Every word a person reads. How plans are shown: `human` for people
//! (colour decided by the `Printer`), `json` for programs (the versioned
//! schema of `plan::Plan`); each command's own views beside them, the
//! documents of `--format json|junit` ([`document`]) and the engine's
//! progress ([`progress`]).

pub mod apply;
pub mod apply_record;
pub mod audit;
pub mod backup;
pub mod demo;
pub mod document;
pub mod human;
pub mod progress;
pub mod prompt;
pub mod transfer;
pub mod verify;

use crate::plan::Plan;

pub fn json(plan: &Plan) -> String {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `file` or `files`, by count.
pub fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
