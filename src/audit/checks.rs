//! The audit's checks. Each appends findings; only a failure to look at
//! the host at all (an I/O error other than "not found") is an error:
//! a missing or wrong file is a finding, never an error.

use super::{check, BundleRef, Finding, Limits, RecipeRef, Report, Suite, Summary, FORMAT_VERSION};
use crate::bundle::{normalize, Bundle, ResourceRecord};
use crate::host::fs::{FileKind, FsError, Root};
use crate::plan::{Action, Plan};
use crate::recipe::{Address, CertSpec, Recipe, Spec};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The directory IML keeps its certificates and state in; anything there
/// that the recipe does not name would be lost by a restore.
pub const CHROMA_DIR: &str = "/var/lib/chroma";

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
    let age_seconds = backup(i, &mut findings);
    if let Some(max) = i.max_drill_age {
        super::records::drill_check(i.bundle, measures.drill.as_ref(), max, i.now, &mut findings);
    }
    super::records::key_escrow(i.bundle, i.root, &mut findings);
    certificates(i, &mut findings, &mut measures.certs)?;
    unmanaged_globs(i, &mut findings)?;
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
fn read_live(root: &Root, path: &str) -> Result<Option<Vec<u8>>, AuditError> {
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

/// Expiry, key match and chain of every `cert`, on the live files (what
/// agents see today), not on the bundle's copies.
fn certificates(
    i: &Inputs,
    out: &mut Vec<Finding>,
    expiries: &mut Vec<super::CertExpiry>,
) -> Result<(), AuditError> {
    for r in &i.recipe.resources {
        let Spec::Cert(spec) = &r.spec else { continue };
        let a = &r.address;
        let cert_path = normalize(&spec.cert);
        let finding = |check, status, msg: String| {
            Finding::new(Suite::Certificates, check, status, msg).at(a)
        };
        let cert = match read_live(i.root, &cert_path)? {
            None => {
                out.push(
                    Finding::fail(
                        Suite::Certificates,
                        check::CERT_EXPIRY,
                        format!("no certificate at {cert_path}: cannot check expiry, key or chain"),
                    )
                    .at(a)
                    .path(cert_path),
                );
                continue;
            }
            Some(pem) => match crate::x509::parse_cert(&pem) {
                Ok(c) => c,
                Err(e) => {
                    out.push(
                        Finding::fail(
                            Suite::Certificates,
                            check::CERT_EXPIRY,
                            format!("{cert_path}: {e}: cannot check expiry, key or chain"),
                        )
                        .at(a)
                        .path(cert_path),
                    );
                    continue;
                }
            },
        };
        let info = crate::x509::info(&cert);
        let days = info.days_left;
        if let Some(not_after) = unix_time(cert.not_after()) {
            expiries.push(super::CertExpiry {
                address: a.to_string(),
                path: cert_path.clone(),
                not_after,
                days_left: days,
            });
        }
        let min = i64::from(i.cert_min_days);
        use super::Status::{Fail, Pass};
        out.push(
            if days < 0 {
                finding(
                    check::CERT_EXPIRY,
                    Fail,
                    format!("expired {} days ago (not after {}): renew it", -days, info.not_after),
                )
            } else if days < min {
                finding(
                    check::CERT_EXPIRY,
                    Fail,
                    format!(
                        "expires in {days} days (not after {}), within --cert-min-days {}: renew it",
                        info.not_after, i.cert_min_days
                    ),
                )
            } else {
                finding(check::CERT_EXPIRY, Pass, format!("expires in {days} days (not after {})", info.not_after))
            }
            .path(cert_path.clone()),
        );
        out.push(key_check(i, a, spec)?);
        if let Some(ca) = &spec.ca {
            out.push(chain_check(i, a, ca, &cert, &cert_path)?);
        }
    }
    Ok(())
}

/// An ASN.1 time as seconds since the epoch.
fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

fn key_check(i: &Inputs, a: &Address, spec: &CertSpec) -> Result<Finding, AuditError> {
    let key_path = normalize(&spec.key);
    let cert_path = normalize(&spec.cert);
    let f = |status, msg: String| {
        Finding::new(Suite::Certificates, check::CERT_KEY, status, msg)
            .at(a)
            .path(key_path.clone())
    };
    use super::Status::{Fail, Pass};
    let Some(pem) = read_live(i.root, &key_path)? else {
        return Ok(f(Fail, format!("no private key at {key_path}")));
    };
    let key = match crate::x509::parse_key(&pem) {
        Ok(k) => k,
        Err(e) => return Ok(f(Fail, format!("{key_path}: {e}"))),
    };
    // The cert was read a moment ago; re-read to keep this check self-contained.
    let cert = read_live(i.root, &cert_path)?.and_then(|b| crate::x509::parse_cert(&b).ok());
    Ok(match cert {
        Some(c) if crate::x509::key_matches(&c, &key) => f(Pass, format!("{key_path} is the key of {cert_path}")),
        Some(_) => f(
            Fail,
            format!("{key_path} is not the private key of {cert_path}: the services using it will fail their TLS handshakes"),
        ),
        None => f(Fail, format!("{cert_path} cannot be read any more")),
    })
}

fn chain_check(
    i: &Inputs,
    a: &Address,
    ca: &Address,
    cert: &openssl::x509::X509,
    cert_path: &str,
) -> Result<Finding, AuditError> {
    use super::Status::{Fail, Pass};
    let f = |status, msg: String| {
        Finding::new(Suite::Certificates, check::CERT_CHAIN, status, msg)
            .at(a)
            .path(cert_path)
    };
    let ca_path = match i.recipe.resource(ca).map(|r| &r.spec) {
        Some(Spec::Cert(s)) => normalize(&s.cert),
        // The recipe loader rejects a `ca` that is not a cert; be safe anyway.
        _ => {
            return Ok(f(
                Fail,
                format!("its ca {ca} is not a cert resource of this recipe"),
            ))
        }
    };
    let Some(pem) = read_live(i.root, &ca_path)? else {
        return Ok(f(
            Fail,
            format!("the authority certificate of {ca} is missing ({ca_path})"),
        ));
    };
    let ca_cert = match crate::x509::parse_cert(&pem) {
        Ok(c) => c,
        Err(e) => {
            return Ok(f(
                Fail,
                format!("the authority certificate of {ca} ({ca_path}): {e}"),
            ))
        }
    };
    Ok(match crate::x509::verify_chain(cert, &ca_cert) {
        Ok(()) => f(Pass, format!("verifies against {ca} ({ca_path})")),
        Err(e) => f(
            Fail,
            format!("does not verify against {ca} ({ca_path}): {e}; agents that trust the authority will reject it"),
        ),
    })
}

/// Files a `files` glob matches on the host today that the bundle does not
/// hold: a restore would not bring them back.
fn unmanaged_globs(i: &Inputs, out: &mut Vec<Finding>) -> Result<(), AuditError> {
    let id = i.bundle.name();
    for r in &i.recipe.resources {
        let Spec::Files(spec) = &r.spec else { continue };
        let a = &r.address;
        let live = i.root.glob(&spec.glob)?;
        let Some(members) = i
            .bundle
            .manifest
            .resources
            .iter()
            .find_map(|rec| match rec {
                ResourceRecord::Files {
                    address, members, ..
                } if address == a => Some(members),
                _ => None,
            })
        else {
            // The whole set is missing (another recipe's bundle): one
            // finding, not one per file; backup.recipe says why.
            out.push(
                Finding::fail(
                    Suite::Unmanaged,
                    check::UNMANAGED_GLOB,
                    format!(
                        "bundle {id} does not hold this set: {} matching {} would not be restored; run `imlrecover backup` with this recipe",
                        plural(live.len(), "file"),
                        spec.glob
                    ),
                )
                .at(a),
            );
            continue;
        };
        let extra: Vec<&String> = live.iter().filter(|p| !members.contains(p)).collect();
        if extra.is_empty() {
            let msg = match live.len() {
                0 => format!("no file matches {}", spec.glob),
                1 => format!("the 1 file matching {} is in bundle {id}", spec.glob),
                n => format!("all {n} files matching {} are in bundle {id}", spec.glob),
            };
            out.push(Finding::pass(Suite::Unmanaged, check::UNMANAGED_GLOB, msg).at(a));
        }
        for p in extra {
            out.push(
                Finding::fail(
                    Suite::Unmanaged,
                    check::UNMANAGED_GLOB,
                    format!(
                        "matches {} but is not in bundle {id}: a restore would not bring it back; run `imlrecover backup`",
                        spec.glob
                    ),
                )
                .at(a)
                .path(p.clone()),
            );
        }
    }
    Ok(())
}

/// Files under /var/lib/chroma that no resource names: IML state a restore
/// would lose.
fn unmanaged_chroma(i: &Inputs, out: &mut Vec<Finding>) -> Result<(), AuditError> {
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut globs: Vec<glob::Pattern> = Vec::new();
    for r in &i.recipe.resources {
        match &r.spec {
            Spec::File(s) => {
                named.insert(normalize(&s.path));
            }
            Spec::Absent(s) => {
                named.insert(normalize(&s.path));
            }
            Spec::Cert(s) => {
                named.insert(normalize(&s.cert));
                named.insert(normalize(&s.key));
                if let Some(serial) = &s.serial {
                    named.insert(normalize(serial));
                }
            }
            Spec::Files(s) => {
                if let Ok(p) = glob::Pattern::new(&normalize(&s.glob)) {
                    globs.push(p);
                }
            }
            _ => {}
        }
    }
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

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
