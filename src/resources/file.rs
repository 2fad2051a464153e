//! `file "x" { path, mode?, owner?, group?, sensitive?, optional? }`

use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::ResourceRecord;
use crate::recipe::{Address, FileSpec};

/// Captures the file's content, mode and owner (optional and missing:
/// recorded as absent).
pub fn capture(
    cx: &mut CaptureCx,
    address: &Address,
    spec: &FileSpec,
) -> Result<Captured, CaptureError> {
    let entry = cx.capture_path(address, &spec.path, spec.sensitive, spec.optional)?;
    let mut done = Captured::default();
    done.add(&entry);
    cx.bundle.push_resource(ResourceRecord::File {
        address: address.clone(),
        path: entry.path.clone(),
    });
    cx.bundle.push_entry(entry);
    Ok(done)
}
