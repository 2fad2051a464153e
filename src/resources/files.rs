//! `files "x" { glob, sensitive?, optional? }`: every regular file matching.

use super::kind::{Audited, Named, Phase};
use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::ResourceRecord;
use crate::recipe::{Address, BlockSchema, BlockValues, ErrorKind};

/// A set of files matched by a glob (`/etc/yum.repos.d/*`).
#[derive(Debug, Clone)]
pub struct FilesSpec {
    pub glob: String,
    pub sensitive: bool,
    pub optional: bool,
}

/// Captures each match and records the member list, so a restore knows
/// which files belong to the set (and a plan can spot new ones).
fn capture(
    cx: &mut CaptureCx,
    address: &Address,
    spec: &FilesSpec,
) -> Result<Captured, CaptureError> {
    let members = cx.root.glob(&spec.glob).map_err(|error| CaptureError::Fs {
        address: address.clone(),
        error,
    })?;
    if members.is_empty() && !spec.optional {
        return Err(CaptureError::NoMatch {
            address: address.clone(),
            glob: spec.glob.clone(),
            root: cx.root.dir().to_path_buf(),
        });
    }
    let mut done = Captured::default();
    let mut captured = Vec::with_capacity(members.len());
    for path in members {
        // A member that vanished since the glob is simply not a member.
        let entry = cx.capture_path(address, &path, spec.sensitive, true)?;
        if entry.kind == crate::bundle::EntryKind::File {
            done.add(&entry);
            captured.push(entry.path.clone());
            cx.bundle.push_entry(entry);
        }
    }
    cx.bundle.push_resource(ResourceRecord::Files {
        address: address.clone(),
        glob: spec.glob.clone(),
        members: captured,
    });
    Ok(done)
}

/// Planning a `files` set: every member the bundle holds against the live
/// one; live files the bundle does not hold are reported and left alone.
pub struct FilesKind;

#[derive(Debug)]
pub struct Observed {
    pub glob: String,
    pub members: Vec<super::content::Seen>,
}

/// In a plan a set is summarised — its size and one digest over every
/// member's path, content hash, mode and owner — not listed: a set can be
/// thousands of files, and the digest still tells a stale plan.
impl serde::Serialize for Observed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut h = blake3::Hasher::new();
        for m in &self.members {
            let line = format!(
                "{}\0{}\0{}\0{}\0{}\n",
                m.path,
                m.blake3.as_deref().unwrap_or("-"),
                m.mode.map(|x| x.to_string()).unwrap_or_default(),
                m.owner.as_deref().unwrap_or(""),
                m.group.as_deref().unwrap_or("")
            );
            h.update(line.as_bytes());
        }
        let mut st = s.serialize_struct("Observed", 4)?;
        st.serialize_field("glob", &self.glob)?;
        st.serialize_field("members", &self.members.iter().filter(|m| m.exists).count())?;
        st.serialize_field("digest", &h.finalize().to_hex().to_string())?;
        st.end()
    }
}

impl super::kind::Kind for FilesKind {
    type Spec = FilesSpec;
    const KEYWORD: &'static str = "files";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("glob", true),
            ("sensitive", false),
            ("optional", false),
            ("notify", false),
            ("depends_on", false),
        ],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Files(crate::plan::Op::Write);
    const CAPTURES: bool = true;
    const AUDIT: Option<Suite> = Some(Suite::Unmanaged);

    fn decode(b: &mut BlockValues) -> Option<FilesSpec> {
        let glob = b.path("glob");
        if let Some(g) = &glob {
            if let Err(e) = glob::Pattern::new(g) {
                b.invalid(
                    "glob",
                    ErrorKind::InvalidValue,
                    format!("`{g}` is not a valid glob: {}", e.msg),
                    "invalid glob",
                );
            }
        }
        let sensitive = b.bool("sensitive").unwrap_or(false);
        let optional = b.bool("optional").unwrap_or(false);
        Some(FilesSpec {
            glob: glob?,
            sensitive,
            optional,
        })
    }

    fn capture(
        &self,
        cx: &mut CaptureCx,
        address: &Address,
        spec: &FilesSpec,
    ) -> Result<Captured, CaptureError> {
        capture(cx, address, spec)
    }

    fn audit(
        &self,
        address: &Address,
        spec: &FilesSpec,
        i: &Inputs,
        out: &mut Audited,
    ) -> Result<(), AuditError> {
        audit(i, address, spec, out)
    }

    fn named(spec: &FilesSpec, out: &mut Named) {
        out.globs.push(crate::bundle::normalize(&spec.glob));
    }

    fn owns_entry(spec: &FilesSpec, entry: &crate::bundle::Entry) -> Result<(), String> {
        let path = crate::bundle::normalize(&entry.path);
        if crate::host::fs::glob_matches(&spec.glob, &path) {
            Ok(())
        } else {
            Err(format!("{path} does not match its glob {}", spec.glob))
        }
    }
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &FilesSpec,
        cx: &super::kind::Cx,
    ) -> Result<Observed, super::kind::ResourceError> {
        let mut paths = cx
            .root
            .glob(&spec.glob)
            .map_err(|e| super::kind::ResourceError::new(address, e.to_string()))?;
        // Members the bundle holds are looked at even where the glob no
        // longer matches them (deleted files).
        for r in &cx.bundle.manifest.resources {
            if let crate::bundle::ResourceRecord::Files {
                address: a,
                members,
                ..
            } = r
            {
                if a == address {
                    paths.extend(members.iter().cloned());
                }
            }
        }
        paths.sort();
        paths.dedup();
        // Both cores: a set can be thousands of files.
        use rayon::prelude::*;
        let members = paths
            .par_iter()
            .map(|p| super::content::observe(address, p, cx))
            .collect::<Result<_, _>>()?;
        Ok(Observed {
            glob: spec.glob.clone(),
            members,
        })
    }

    fn compare(
        &self,
        address: &Address,
        spec: &FilesSpec,
        seen: &Observed,
        cx: &super::kind::Cx,
    ) -> Result<super::kind::Verdict, super::kind::ResourceError> {
        use super::content;
        use super::kind::Verdict;
        use crate::plan::Action;
        let Some(members) = cx.bundle.manifest.resources.iter().find_map(|r| match r {
            crate::bundle::ResourceRecord::Files {
                address: a,
                members,
                ..
            } if a == address => Some(members),
            _ => None,
        }) else {
            return Ok(Verdict::no_op(
                cx.bundle.manifest.why_missing(address),
                serde_json::Value::Null,
            ));
        };
        let overrides = content::Overrides {
            sensitive: spec.sensitive,
            diff: true,
            ..Default::default()
        };
        let mut files = Vec::new();
        let mut extra = Vec::new();
        let member_set: std::collections::HashSet<&str> =
            members.iter().map(String::as_str).collect();
        for s in &seen.members {
            match content::entry(cx, address, &s.path) {
                Some(e) if member_set.contains(s.path.as_str()) => {
                    files.push(content::compare(cx, address, e, s, overrides)?)
                }
                _ if s.exists => extra.push(s.path.clone()),
                _ => {}
            }
        }
        let changed: Vec<&crate::plan::FileChange> =
            files.iter().filter(|f| f.action != Action::NoOp).collect();
        let action = if changed.is_empty() {
            Action::NoOp
        } else if changed.iter().all(|f| f.action == Action::Create) {
            Action::Create
        } else {
            Action::Update
        };
        let reason = match action {
            Action::NoOp => format!("all {} members match the bundle", members.len()),
            _ => format!(
                "{} of {} members differ from the bundle",
                changed.len(),
                members.len()
            ),
        };
        let mut v = Verdict::new(
            action,
            reason,
            serde_json::json!({ "glob": spec.glob, "members": members.len() }),
        );
        for p in extra {
            v.details.push(format!(
                "{p}: matches the glob but is not in the bundle; left as it is"
            ));
        }
        v.sensitive = spec.sensitive;
        // Only what differs: unchanged members are the digest's business.
        v.files = files
            .into_iter()
            .filter(|f| f.action != Action::NoOp)
            .collect();
        Ok(v)
    }

    fn apply(
        &self,
        address: &Address,
        _spec: &FilesSpec,
        _step: &crate::plan::Step,
        change: &crate::plan::ResourceChange,
        cx: &super::kind::ApplyCx,
    ) -> Result<super::kind::Applied, super::kind::ResourceError> {
        super::content::apply_files(cx, address, &change.files, Default::default())
    }
}

// The audit's check of a set's unmanaged files.

use crate::audit::checks::{plural, AuditError, Inputs};
use crate::audit::{check, Finding, Suite};

/// Files the glob matches on the host today that the bundle does not
/// hold: a restore would not bring them back.
fn audit(i: &Inputs, a: &Address, spec: &FilesSpec, out: &mut Audited) -> Result<(), AuditError> {
    let id = i.bundle.name();
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
        out.findings.push(
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
        return Ok(());
    };
    let extra: Vec<&String> = live.iter().filter(|p| !members.contains(p)).collect();
    if extra.is_empty() {
        let msg = match live.len() {
            0 => format!("no file matches {}", spec.glob),
            1 => format!("the 1 file matching {} is in bundle {id}", spec.glob),
            n => format!("all {n} files matching {} are in bundle {id}", spec.glob),
        };
        out.findings
            .push(Finding::pass(Suite::Unmanaged, check::UNMANAGED_GLOB, msg).at(a));
    }
    for p in extra {
        out.findings.push(
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
    Ok(())
}
