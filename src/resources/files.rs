//! `files "x" { glob, sensitive?, optional? }`: every regular file matching.

use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::ResourceRecord;
use crate::recipe::{Address, FilesSpec};

/// Captures each match and records the member list, so a restore knows
/// which files belong to the set (and a plan can spot new ones).
pub fn capture(
    cx: &mut CaptureCx,
    address: &Address,
    spec: &FilesSpec,
) -> Result<Captured, CaptureError> {
    let members = cx
        .root
        .glob(&spec.glob)
        .map_err(|source| CaptureError::Fs {
            address: address.clone(),
            source,
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
