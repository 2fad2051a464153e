//! Building a plan: observe every resource, compare each with the recipe and
//! the bundle in graph order, then derive the steps. Read-only.
//!
//! Observing is most of the time a plan takes (files hashed; init scripts'
//! `status` and `psql`, each a process of 5–12 ms), and no observation
//! depends on another: they run concurrently on a few threads. Comparing may depend
//! on what was planned before (a service the installer brings, a restart a
//! changed file causes): it runs afterwards, one resource at a time in graph
//! order, as if everything had been observed one by one.

use super::{derive_steps, BundleRef, Plan, RecipeRef, ResourceChange, Summary, FORMAT_VERSION};
use crate::bundle::{Bundle, ResourceRecord};
use crate::graph::Graph;
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::recipe::{Address, Recipe, Resource};
use crate::resources::kind::{Cx, Observation, ResourceError};
use crate::resources::registry::{compare_resource, observe_resource};
use crate::state::State;

pub struct Inputs<'a> {
    pub recipe: &'a Recipe,
    pub root: &'a Root,
    pub bundle: &'a Bundle,
    pub services: &'a Services,
    pub state: &'a State,
    pub replace: &'a [Address],
}

/// Every resource that could not be observed, reported together.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot plan: {} {} could not be observed", .errors.len(), if .errors.len() == 1 { "resource" } else { "resources" })]
pub struct PlanErrors {
    #[related]
    pub errors: Vec<ResourceError>,
    /// What to do, with a wrong recipe's warnings (#17) where there are some.
    #[help]
    pub help: String,
}

const PLAN_ERRORS_HELP: &str = "nothing was changed; fix the problems listed below and plan again";

/// Resources of the recipe that capture something but that the bundle does
/// not hold (it was made from another recipe).
pub fn missing_from_bundle(recipe: &Recipe, m: &crate::bundle::Manifest) -> Vec<String> {
    let captured: std::collections::HashSet<&Address> =
        m.resources.iter().map(ResourceRecord::address).collect();
    recipe
        .resources
        .iter()
        .filter(|r| r.address.kind.captures() && !captured.contains(&r.address))
        .map(|r| r.address.to_string())
        .collect()
}

pub fn build(i: &Inputs) -> Result<Plan, PlanErrors> {
    let graph = Graph::build(i.recipe);
    let mut warnings = Vec::new();
    let m = &i.bundle.manifest;
    if m.recipe.blake3 != i.recipe.hash {
        let missing = missing_from_bundle(i.recipe, m);
        let mut w = format!(
            "the bundle was made from a different recipe ({} at blake3 {}…), not this one (blake3 {}…)",
            m.recipe.path,
            m.recipe.blake3.get(..8).unwrap_or(""),
            i.recipe.hash.get(..8).unwrap_or(""),
        );
        if !missing.is_empty() {
            w.push_str(&format!(
                "; not in the bundle, left unplanned: {}",
                missing.join(", ")
            ));
        }
        warnings.push(w);
    }
    warnings.extend(
        crate::audit::releases::check(i.recipe, i.root.dir())
            .iter()
            .map(crate::audit::releases::Mismatch::warning),
    );
    let entries = crate::resources::content::EntryIndex::new(m);
    // Observing sees no prior changes: there are none yet.
    let observing = Cx {
        recipe: i.recipe,
        graph: &graph,
        root: i.root,
        bundle: i.bundle,
        services: i.services,
        state: i.state,
        replace: i.replace,
        prior: &[],
        entries: &entries,
    };
    // By address, with the recipe position: lookups stay O(1) (#22: linear).
    let by_address: std::collections::HashMap<&Address, (usize, &Resource)> = (i.recipe.resources)
        .iter()
        .enumerate()
        .map(|(n, r)| (&r.address, (n, r)))
        .collect();
    let resources: Vec<&Resource> = graph
        .order()
        .iter()
        .filter_map(|a| by_address.get(a).map(|(_, r)| *r))
        .collect();
    // Every service's status at once (one systemctl call under systemd),
    // while the rest is observed; kept for this observation only.
    let names: Vec<&str> = resources
        .iter()
        .filter_map(|r| crate::resources::registry::service_name(r))
        .collect();
    let observed = i
        .services
        .looking_up(&names, || observe_all(&resources, &observing));
    i.services.forget();
    let mut changes: Vec<ResourceChange> = Vec::new();
    let mut errors = Vec::new();
    for (resource, observation) in resources.into_iter().zip(observed) {
        let cx = Cx {
            prior: &changes,
            ..observing
        };
        match observation.and_then(|o| compare_resource(resource, o, &cx)) {
            Ok(c) => changes.push(c),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let mut help = PLAN_ERRORS_HELP.to_string();
        for w in crate::audit::releases::check(i.recipe, i.root.dir()) {
            help.push_str(&format!("\n{}", w.warning()));
        }
        return Err(PlanErrors { errors, help });
    }
    // Show resources in the recipe's order, as written.
    changes.sort_by_key(|c| by_address.get(&c.address).map_or(usize::MAX, |(n, _)| *n));
    let steps = derive_steps(i.recipe, &graph, &changes);
    let summary = Summary::of(&changes, &steps);
    Ok(Plan {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        recipe: RecipeRef {
            // Absolute, so `apply PLANFILE` works from any directory.
            path: std::fs::canonicalize(&i.recipe.path)
                .unwrap_or_else(|_| i.recipe.path.clone())
                .display()
                .to_string(),
            hash: i.recipe.hash.clone(),
        },
        variables: i
            .recipe
            .variables
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    serde_json::to_value(&v.value).unwrap_or_default(),
                )
            })
            .collect(),
        bundle: BundleRef {
            path: i.bundle.dir.display().to_string(),
            id: i.bundle.name(),
            recipe_hash: m.recipe.blake3.clone(),
        },
        root: i.root.dir().display().to_string(),
        replace: i.replace.to_vec(),
        warnings,
        resource_changes: changes,
        steps,
        summary,
    })
}

/// Observations in flight at once: they mostly wait for processes (init
/// scripts, psql) and the disk, so a few more than the cores, but few, so
/// as not to swamp a small host.
fn observers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.saturating_mul(2).clamp(1, 4)
}

/// Observes every resource, concurrently; the results in the order given.
/// Workers take the next resource from a shared index; the calling thread is
/// one of them, so every resource is observed even if no thread can be
/// started. A panic while observing is that resource's error, not the end
/// of the plan.
fn observe_all(resources: &[&Resource], cx: &Cx) -> Vec<Result<Observation, ResourceError>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    type Observed = (usize, Result<Observation, ResourceError>);
    let next = AtomicUsize::new(0);
    let work = || -> Vec<Observed> {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(resource) = resources.get(k) else {
                return done;
            };
            done.push((k, observe_one(k, resource, cx)));
        }
    };
    let mut slots: Vec<Option<Result<Observation, ResourceError>>> =
        resources.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..observers().min(resources.len()))
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("observe".into())
                    .spawn_scoped(s, work)
                    .ok()
            })
            .collect();
        let mine = work();
        // A helper cannot panic (observe_one catches it); were one lost all
        // the same, its resources stay empty and are reported below.
        let theirs = helpers.into_iter().filter_map(|h| h.join().ok());
        for (k, result) in std::iter::once(mine).chain(theirs).flatten() {
            if let Some(slot) = slots.get_mut(k) {
                *slot = Some(result);
            }
        }
    });
    slots
        .into_iter()
        .zip(resources)
        .map(|(slot, r)| {
            slot.unwrap_or_else(|| {
                Err(ResourceError::new(
                    &r.address,
                    "internal error: it was not observed",
                ))
            })
        })
        .collect()
}

/// The observation of the `index`th resource; a panic becomes its error.
fn observe_one(index: usize, resource: &Resource, cx: &Cx) -> Result<Observation, ResourceError> {
    let observe = std::panic::AssertUnwindSafe(|| {
        crate::fault::observe(index);
        observe_resource(resource, cx)
    });
    std::panic::catch_unwind(observe).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        let error = format!("internal error while observing it: {what}");
        Err(ResourceError::new(&resource.address, error).help(
            "this is a bug in imlrecover; nothing was changed. Please report it with the message above",
        ))
    })
}
