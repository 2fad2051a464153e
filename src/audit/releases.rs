//! A wrong recipe, seen before a disaster: a recipe written for another
//! IML release family than the host runs, or naming a service the host's
//! init system does not know. `plan` shows these as warnings (or with its
//! errors), `audit` as drift findings; the fix is `imlrecover init`.
//!
//! A recipe's family is told by its services ([`Family::of_recipe`]); the
//! host's by its release ([`crate::init::detect::release`]). A host without
//! IML (a rebuilt one, before the installer) is not checked: there, missing
//! services are what the installer brings.

use crate::init::detect::{at, release, unit};
use crate::init::{service_names, Family};
use crate::recipe::{Recipe, ServiceBackend};
use std::path::Path;

/// Stable check identifiers (the audit's `check`).
pub const CHECK_RELEASE: &str = "drift.release";
pub const CHECK_SERVICE: &str = "drift.service";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub check: &'static str,
    /// What is wrong, one sentence.
    pub message: String,
    /// The unit or init script that was looked for (unknown services).
    pub path: Option<String>,
    /// What to do.
    pub fix: String,
}

impl Mismatch {
    /// As one line of `plan`'s warnings.
    pub fn warning(&self) -> String {
        format!("{}; {}", self.message, self.fix)
    }
}

pub fn check(recipe: &Recipe, root: &Path) -> Vec<Mismatch> {
    let Ok((_, host)) = release(root) else {
        return Vec::new();
    };
    let fix = format!(
        "draft the recipe for this host with `imlrecover init --root {} -o FILE` (or start from {})",
        root.display(),
        host.value.plan()
    );
    let mut out = Vec::new();
    if let Some(family) = Family::of_recipe(recipe) {
        if family != host.value {
            out.push(Mismatch {
                check: CHECK_RELEASE,
                message: format!(
                    "the recipe is for {} ({}), but this host runs {} ({}, {})",
                    family.releases(),
                    family.id(),
                    host.value.releases(),
                    host.value.id(),
                    host.evidence
                ),
                path: None,
                fix: fix.clone(),
            });
        }
    }
    for name in service_names(recipe) {
        let (known, looked) = match recipe.settings.services {
            ServiceBackend::Sysv => {
                let script = format!("/etc/init.d/{name}");
                (at(root, &script).is_file(), script)
            }
            ServiceBackend::Systemd => {
                let file = crate::host::service::unit_file(&name);
                (
                    unit(root, &file).is_some(),
                    format!("/usr/lib/systemd/system/{file}"),
                )
            }
        };
        if !known {
            let backend = match recipe.settings.services {
                ServiceBackend::Sysv => "SysV init",
                ServiceBackend::Systemd => "systemd",
            };
            out.push(Mismatch {
                check: CHECK_SERVICE,
                message: format!(
                    "service `{name}` is unknown to {backend} on this {} host (no {looked})",
                    host.value.id()
                ),
                path: Some(looked),
                fix: fix.clone(),
            });
        }
    }
    out
}
