//! The audit's checks. Each appends findings; only a failure to look at
//! the host at all (an I/O error other than "not found") is an error:
//! a missing or wrong file is a finding, never an error.

use super::{check, BundleRef, Finding, Limits, RecipeRef, Report, Suite, Summary, FORMAT_VERSION};
use crate::bundle::Bundle;
use crate::host::fs::{FileKind, FsError, Root};
use crate::plan::{Action, Plan};
use crate::recipe::Recipe;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The directory IML keeps its certificates and state in; anything there
/// that the recipe does not name would be lost by a restore.
pub const CHROMA_DIR: &str = "/var/lib/chroma";

/// Files IML regenerates itself (iml-settings-populator, from the settings
/// and the database): a restore must not bring them back, so a recipe does
/// not name them and they are not "lost".
const DERIVED: &[&str] = &["/var/lib/chroma/iml-settings.conf"];

/// Certificates and keys are small; a bigger file is not one.
const PEM_LIMIT: u64 = 1 << 20;

/// A manifest `created` this far ahead of our clock is not a clock-skew
/// rounding: the age cannot be trusted.
const FUTURE_SLACK: Duration = Duration::from_secs(300);

pub struct Inputs<'a> {
    pub recipe: &'a Recipe,
    pub root: &'a Root,
    pub bundle: &'a Bundle,
    /// The plan of this recipe against this root and bundle.
    pub plan: &'a Plan,
    pub max_age: Duration,
    pub cert_min_days: u32,
    /// `--max-drill-age`: check the drill record (none: not checked).
    pub max_drill_age: Option<Duration>,
    pub now: SystemTime,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AuditError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] FsError),
    #[error("cannot read {path} under {}: {source}", root.display())]
    #[diagnostic(
        code(imlrecover::audit_io),
        help("the audit must be able to read everything it checks; run it as a user that can (root on the manager)")
    )]
    Io {
        root: std::path::PathBuf,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub fn run(i: &Inputs) -> Result<Report, AuditError> {
    let mut findings = Vec::new();
    let mut measures = super::Measures {
        drill: crate::bundle::drill::read_record(i.bundle),
        max_drill_age: i.max_drill_age.map(|d| d.as_secs()),
        ..Default::default()
    };
    drift(i, &mut findings);
    release(i, &mut findings);
    let age_seconds = backup(i, &mut findings);
    if let Some(max) = i.max_drill_age {
        super::records::drill_check(i.bundle, measures.drill.as_ref(), max, i.now, &mut findings);
    }
    super::records::key_escrow(i.bundle, i.root, &mut findings);
    kinds(i, &mut findings, &mut measures.certs)?;
    unmanaged_chroma(i, &mut findings)?;
    let m = &i.bundle.manifest;
    Ok(Report {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        created: humantime::format_rfc3339_seconds(i.now).to_string(),
        recipe: RecipeRef {
            path: i.recipe.path.display().to_string(),
            hash: i.recipe.hash.clone(),
        },
        bundle: BundleRef {
            path: i.bundle.dir.display().to_string(),
            id: i.bundle.name(),
            created: m.created.clone(),
            age_seconds,
            recipe_hash: m.recipe.blake3.clone(),
        },
        root: i.root.dir().display().to_string(),
        limits: Limits {
            max_age: humantime::format_duration(i.max_age).to_string(),
            max_age_seconds: i.max_age.as_secs(),
            cert_min_days: i.cert_min_days,
        },
        summary: Summary::of(&findings),
        findings,
        measures,
    })
}

/// One finding per resource the plan looked at; changed ones fail.
fn drift(i: &Inputs, out: &mut Vec<Finding>) {
    for c in &i.plan.resource_changes {
        let mut f = if c.changed() {
            Finding::fail(
                Suite::Drift,
                check::DRIFT,
                format!("{}: {}", c.action.word(), c.reason),
            )
        } else {
            Finding::pass(Suite::Drift, check::DRIFT, c.reason.clone())
        }
        .at(&c.address);
        f.action = Some(c.action);
        if c.changed() {
            f.details.clone_from(&c.details);
            let mut diff = String::new();
            for file in c.files.iter().filter(|f| f.action != Action::NoOp) {
                // A one-file resource already names its path in the reason.
                if c.files.len() > 1 {
                    f.details.push(format!(
                        "{} {}: {}",
                        file.action.symbol(),
                        file.path,
                        file.action.word()
                    ));
                }
                for d in &file.details {
                    f.details.push(format!("{}: {d}", file.path));
                }
                if let Some(d) = &file.diff {
                    diff.push_str(d);
                    if !d.ends_with('\n') {
                        diff.push('\n');
                    }
                }
            }
            f.diff = (!diff.is_empty()).then_some(diff);
        }
        out.push(f);
    }
}

/// Age, integrity and provenance of the bundle. Returns the age in seconds.
fn backup(i: &Inputs, out: &mut Vec<Finding>) -> Option<u64> {
    let m = &i.bundle.manifest;
    let max = humantime::format_duration(i.max_age);
    let mut age_seconds = None;
    // An import's `created` is its dump's time: say so, and whose age it is.
    let (subject, stale_hint) = match &m.imported {
        Some(imp) => (
            format!(
                "the bundle is an import of the runbook backup {} (imported {}); its dump {}",
                imp.source,
                imp.time,
                imp.dump.as_ref().map_or("(none)", |d| d.name.as_str())
            ),
            "make a fresh bundle with `imlrecover backup`",
        ),
        None => (
            "the bundle".to_string(),
            "is the scheduled `imlrecover backup` running?",
        ),
    };
    match humantime::parse_rfc3339_weak(&m.created) {
        Err(e) => out.push(Finding::fail(
            Suite::Backup,
            check::BACKUP_AGE,
            format!(
                "its manifest's `created` ({:?}) is not a timestamp ({e}); make a new backup",
                m.created
            ),
        )),
        Ok(created) => match i.now.duration_since(created) {
            Ok(age) => {
                let age = Duration::from_secs(age.as_secs());
                age_seconds = Some(age.as_secs());
                let shown = humantime::format_duration(age);
                out.push(if age > i.max_age {
                    Finding::fail(
                        Suite::Backup,
                        check::BACKUP_AGE,
                        format!(
                            "{subject} is {shown} old, older than --max-age {max}: {stale_hint}"
                        ),
                    )
                } else {
                    Finding::pass(
                        Suite::Backup,
                        check::BACKUP_AGE,
                        format!("{subject} is {shown} old (limit {max})"),
                    )
                });
            }
            Err(e) if e.duration() <= FUTURE_SLACK => {
                age_seconds = Some(0);
                out.push(Finding::pass(
                    Suite::Backup,
                    check::BACKUP_AGE,
                    format!("{subject} was just made (limit {max})"),
                ));
            }
            Err(e) => out.push(Finding::fail(
                Suite::Backup,
                check::BACKUP_AGE,
                format!(
                    "the bundle claims to be made {} in the future ({}): check this host's clock",
                    humantime::format_duration(Duration::from_secs(e.duration().as_secs())),
                    m.created
                ),
            )),
        },
    }

    let report = crate::bundle::check::check(i.bundle, Some(i.recipe));
    if report.problems.is_empty() {
        out.push(Finding::pass(
            Suite::Backup,
            check::BACKUP_INTEGRITY,
            format!(
                "{} files, {} bytes match the manifest",
                report.files, report.bytes
            ),
        ));
    }
    for p in &report.problems {
        let mut f = Finding::fail(
            Suite::Backup,
            check::BACKUP_INTEGRITY,
            format!(
                "{}: {} (run `imlrecover verify {}` and make a new backup)",
                p.kind.as_str(),
                p.message,
                i.bundle.dir.display()
            ),
        )
        .path(p.path.clone());
        f.address.clone_from(&p.address);
        out.push(f);
    }

    if m.recipe.blake3 == i.recipe.hash {
        out.push(Finding::pass(
            Suite::Backup,
            check::BACKUP_RECIPE,
            "the bundle was made from this recipe".to_string(),
        ));
    } else {
        let missing = crate::plan::missing_from_bundle(i.recipe, m);
        let mut msg = format!(
            "the bundle was made from another recipe ({}, blake3 {}…), not this one (blake3 {}…)",
            m.recipe.path,
            m.recipe.blake3.get(..8).unwrap_or(""),
            i.recipe.hash.get(..8).unwrap_or(""),
        );
        if !missing.is_empty() {
            msg.push_str(&format!("; not in the bundle: {}", missing.join(", ")));
        }
        msg.push_str("; run `imlrecover backup` with this recipe");
        out.push(Finding::fail(Suite::Backup, check::BACKUP_RECIPE, msg));
    }
    age_seconds
}

/// A live PEM file: `Ok(None)` when it is missing or not a regular file.
pub(crate) fn read_live(root: &Root, path: &str) -> Result<Option<Vec<u8>>, AuditError> {
    let Some((file, meta)) = root.open(path)? else {
        return Ok(None);
    };
    if meta.kind != FileKind::File {
        return Ok(None);
    }
    let mut buf = Vec::new();
    file.take(PEM_LIMIT)
        .read_to_end(&mut buf)
        .map_err(|source| AuditError::Io {
            root: root.dir().to_path_buf(),
            path: path.to_string(),
            source,
        })?;
    Ok(Some(buf))
}

/// Each resource's own checks ([`Kind::audit`]: a cert's expiry, key and
/// chain, a set's unmanaged files), suite by suite, in the recipe's order.
///
/// [`Kind::audit`]: crate::resources::kind::Kind::audit
fn kinds(
    i: &Inputs,
    out: &mut Vec<Finding>,
    expiries: &mut Vec<super::CertExpiry>,
) -> Result<(), AuditError> {
    let mut audited: Vec<&crate::recipe::Resource> = i
        .recipe
        .resources
        .iter()
        .filter(|r| r.address.kind.audit_suite().is_some())
        .collect();
    audited.sort_by_key(|r| r.address.kind.audit_suite());
    let mut found = crate::resources::kind::Audited::default();
    for r in audited {
        crate::resources::registry::audit(r, i, &mut found)?;
    }
    out.append(&mut found.findings);
    expiries.append(&mut found.certs);
    Ok(())
}

/// A recipe of another release family, or naming services the host does
/// not know: drift of the recipe itself (failures only, so that a clean
/// audit counts what it did before).
fn release(i: &Inputs, out: &mut Vec<Finding>) {
    for m in super::releases::check(i.recipe, i.root.dir()) {
        let mut f = Finding::fail(Suite::Drift, m.check, m.message);
        f.path = m.path;
        f.details.push(m.fix);
        out.push(f);
    }
}

/// Files under /var/lib/chroma that no resource names: IML state a restore
/// would lose.
fn unmanaged_chroma(i: &Inputs, out: &mut Vec<Finding>) -> Result<(), AuditError> {
    let mut names = crate::resources::kind::Named::default();
    for r in &i.recipe.resources {
        crate::resources::registry::named(r, &mut names);
    }
    let named: BTreeSet<String> = names.paths.into_iter().collect();
    let globs: Vec<glob::Pattern> = names
        .globs
        .iter()
        .filter_map(|g| glob::Pattern::new(g).ok())
        .collect();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let dir = i.root.path(CHROMA_DIR)?;
    let mut found = Vec::new();
    top_level_files(i.root, &dir, &mut found)?;
    let unnamed: Vec<&String> = found
        .iter()
        .filter(|p| !named.contains(*p) && !globs.iter().any(|g| g.matches_with(p, opts)))
        .filter(|p| !DERIVED.contains(&p.as_str()))
        .collect();
    if unnamed.is_empty() {
        out.push(
            Finding::pass(
                Suite::Unmanaged,
                check::UNMANAGED_CHROMA,
                format!(
                    "all {} files in {CHROMA_DIR} are named by the recipe",
                    found.len()
                ),
            )
            .path(CHROMA_DIR),
        );
    }
    for p in unnamed {
        out.push(
            Finding::fail(
                Suite::Unmanaged,
                check::UNMANAGED_CHROMA,
                "not named by any resource: a restore would lose it; add a `file` for it to the recipe".to_string(),
            )
            .path(p.clone()),
        );
    }
    Ok(())
}

/// The regular files and symlinks directly in /var/lib/chroma (its `*`),
/// as recipe paths, sorted; a missing directory has none. Subdirectories
/// are not walked: IML's installer fills them (the agent repositories),
/// and one finding per package would drown the ones that matter.
fn top_level_files(root: &Root, dir: &Path, out: &mut Vec<String>) -> Result<(), AuditError> {
    let io = |source| AuditError::Io {
        root: root.dir().to_path_buf(),
        path: CHROMA_DIR.to_string(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if crate::host::fs::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let ft = entry.file_type().map_err(io)?;
        if ft.is_file() || ft.is_symlink() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(format!("{CHROMA_DIR}/{name}"));
        }
    }
    out.sort();
    Ok(())
}

pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
