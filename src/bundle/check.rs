//! The one check every command that reads a bundle runs before using it
//! (`verify`, `plan`, `apply`, `audit`, `pull`): everything [`verify`]
//! checks, plus that the manifest names only what the recipe declares.
//! A bundle that fails is refused before anything is changed.

use super::verify::{self, Problem, ProblemKind, Report};
use super::{normalize, Bundle, Entry, EntryKind, ResourceRecord, MANIFEST};
use crate::recipe::{Address, Recipe, Spec};
use std::collections::{BTreeMap, HashMap};

/// [`verify`], the manifest's own consistency, and (with a recipe) that
/// every entry belongs to a resource of the recipe.
pub fn check(bundle: &Bundle, recipe: Option<&Recipe>) -> Report {
    let mut report = verify::verify(bundle);
    // Signatures: only where `--trust` or the recipe's `trust` asks (#22).
    let trusted = super::sign::trusted(recipe);
    if !trusted.is_empty() {
        match super::sign::check(bundle, &trusted) {
            Ok(by) => report
                .certs
                .push(format!("manifest signed by the trusted key {by}")),
            Err(p) => report.problems.push(p),
        }
    }
    report.problems.extend(duplicates(bundle));
    if let Some(recipe) = recipe {
        report.problems.extend(against_recipe(bundle, recipe));
    }
    report.problems.sort();
    report.problems.dedup();
    report
}

/// A bundle that failed [`check`]: every problem, and (from `plan`) the
/// errors planning found besides, so one run names them all.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("refusing bundle {bundle}: {count} problem{s}:\n{list}", s = if *.count == 1 { "" } else { "s" })]
#[diagnostic(code(imlrecover::bundle_refused))]
pub struct Refused {
    pub bundle: String,
    #[help]
    pub help: String,
    pub count: usize,
    pub list: String,
    #[related]
    pub related: Vec<crate::resources::kind::ResourceError>,
}

/// [`check`], as an error that lists every problem.
pub fn require(bundle: &Bundle, recipe: Option<&Recipe>) -> Result<(), Refused> {
    let report = check(bundle, recipe);
    if report.problems.is_empty() {
        return Ok(());
    }
    let n = report.problems.len();
    let mut list: Vec<String> = report
        .problems
        .iter()
        .take(20)
        .map(|p| format!("  {}", render(bundle, p)))
        .collect();
    if n > 20 {
        list.push(format!(
            "  … and {} more (`imlrecover verify` lists them all)",
            n - 20
        ));
    }
    let unsigned = report
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::Signature);
    Err(Refused {
        bundle: bundle.dir.display().to_string(),
        help: if unsigned {
            "only bundles signed by a trusted key are used here (--trust, the recipe's `trust`); nothing was changed. Restore from a bundle your signing backup made (README \"Signed bundles\")"
        } else {
            "this bundle is not what backup wrote for this recipe; nothing was changed. Restore from another bundle"
        }
        .to_string(),
        count: n,
        list: list.join("\n"),
        related: Vec::new(),
    })
}

/// A changed copy is named the way `plan` names it; the rest as `verify`.
fn render(bundle: &Bundle, p: &Problem) -> String {
    let changed = matches!(p.kind, ProblemKind::Modified | ProblemKind::Truncated);
    let entry = bundle
        .manifest
        .entries
        .iter()
        .find(|e| e.file.as_deref() == Some(p.path.as_str()));
    match (changed, entry, &p.address) {
        (true, Some(e), Some(a)) => format!(
            "{a}: the bundle's copy of {} ({}) does not match its manifest hash: {}",
            e.path, p.path, p.message
        ),
        _ => p.to_string(),
    }
}

fn problem(path: &str, kind: ProblemKind, address: &Address, msg: String) -> Problem {
    Problem {
        path: path.to_string(),
        kind,
        address: Some(address.clone()),
        message: msg,
    }
}

/// One path listed twice for one resource, or with different contents.
fn duplicates(bundle: &Bundle) -> Vec<Problem> {
    let m = &bundle.manifest;
    let mut by_path: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for e in &m.entries {
        by_path.entry(normalize(&e.path)).or_default().push(e);
    }
    let mut problems = Vec::new();
    for (path, es) in by_path {
        for (i, a) in es.iter().enumerate() {
            for b in &es[i + 1..] {
                let same_content = a.kind == b.kind && a.blake3 == b.blake3 && a.file == b.file;
                if a.address == b.address || !same_content {
                    problems.push(problem(
                        MANIFEST,
                        ProblemKind::Manifest,
                        &b.address,
                        format!("{path} is listed more than once (also by {})", a.address),
                    ));
                }
            }
        }
    }
    let mut records: BTreeMap<&Address, usize> = BTreeMap::new();
    for r in &m.resources {
        *records.entry(r.address()).or_default() += 1;
    }
    for (a, n) in records {
        if n > 1 {
            problems.push(problem(
                MANIFEST,
                ProblemKind::Manifest,
                a,
                format!("the resource is recorded {n} times"),
            ));
        }
    }
    problems
}

/// Entries the recipe does not declare, and (when the bundle was made from
/// this very recipe) recipe resources the bundle lacks.
fn against_recipe(bundle: &Bundle, recipe: &Recipe) -> Vec<Problem> {
    let m = &bundle.manifest;
    let same_recipe = m.recipe.blake3 == recipe.hash;
    let specs: HashMap<&Address, &Spec> = recipe
        .resources
        .iter()
        .map(|r| (&r.address, &r.spec))
        .collect();
    let resources: HashMap<&Address, &crate::recipe::Resource> =
        recipe.resources.iter().map(|r| (&r.address, r)).collect();
    let mut problems = Vec::new();
    for e in &m.entries {
        let Some(resource) = resources.get(&e.address) else {
            if same_recipe {
                problems.push(problem(
                    MANIFEST,
                    ProblemKind::Manifest,
                    &e.address,
                    format!("{} belongs to no resource of the recipe", e.path),
                ));
            }
            continue;
        };
        let path = normalize(&e.path);
        // Each kind says which entries its capture writes.
        if let Err(what) = crate::resources::registry::owns_entry(resource, e) {
            problems.push(problem(MANIFEST, ProblemKind::Manifest, &e.address, what));
        }
        if e.kind == EntryKind::File && e.file.as_deref() != Some(&super::bundle_file_for(&path)) {
            problems.push(problem(
                MANIFEST,
                ProblemKind::Manifest,
                &e.address,
                format!(
                    "{path} is stored as {}, not where backup puts it",
                    e.file.as_deref().unwrap_or("nothing")
                ),
            ));
        }
    }
    for r in &m.resources {
        let (address, wrong) = match r {
            ResourceRecord::Files {
                address, members, ..
            } => (
                address,
                match specs.get(address) {
                    Some(Spec::Files(f)) => members
                        .iter()
                        .find(|p| !crate::host::fs::glob_matches(&f.glob, &normalize(p)))
                        .map(|p| format!("member {p} does not match the glob {}", f.glob)),
                    _ => None,
                },
            ),
            other => (other.address(), None),
        };
        if let Some(w) = wrong {
            problems.push(problem(MANIFEST, ProblemKind::Manifest, address, w));
        }
    }
    if let Some(db) = &m.database {
        if same_recipe && !matches!(specs.get(&db.address), Some(Spec::Database(_))) {
            problems.push(problem(
                &db.file,
                ProblemKind::Manifest,
                &db.address,
                "the dump belongs to no database of the recipe".into(),
            ));
        }
    }
    if same_recipe {
        // The manifest claims this recipe: everything it captures must be there.
        // An import says which resources its runbook directory lacked; those
        // are known gaps, not a bundle that lost entries.
        let lacking = m
            .imported
            .as_ref()
            .map(|i| i.lacking.as_slice())
            .unwrap_or_default();
        for missing in crate::plan::missing_from_bundle(recipe, m) {
            if let Ok(a) = missing.parse::<Address>() {
                if lacking.contains(&a) {
                    continue;
                }
                problems.push(problem(
                    MANIFEST,
                    ProblemKind::Missing,
                    &a,
                    "the recipe declares it, but the bundle holds nothing for it".into(),
                ));
            }
        }
        let has_db = recipe
            .resources
            .iter()
            .find(|r| matches!(r.spec, Spec::Database(_)));
        if let (Some(r), None) = (has_db, &m.database) {
            problems.push(problem(
                MANIFEST,
                ProblemKind::Missing,
                &r.address,
                "the recipe declares a database, but the bundle holds no dump".into(),
            ));
        }
    }
    problems
}
