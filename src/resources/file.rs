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

/// Planning a `file`: its live content and metadata against the bundle's.
pub struct FileKind;

impl super::kind::Kind for FileKind {
    type Spec = FileSpec;
    type Observed = super::content::Seen;

    fn observe(
        &self,
        address: &Address,
        spec: &FileSpec,
        cx: &super::kind::Cx,
    ) -> Result<super::content::Seen, super::kind::ResourceError> {
        super::content::observe(address, &crate::bundle::normalize(&spec.path), cx)
    }

    fn compare(
        &self,
        address: &Address,
        spec: &FileSpec,
        seen: &super::content::Seen,
        cx: &super::kind::Cx,
    ) -> Result<super::kind::Verdict, super::kind::ResourceError> {
        use super::content;
        use super::kind::Verdict;
        let path = crate::bundle::normalize(&spec.path);
        let Some(entry) = content::entry(cx, address, &path) else {
            return Ok(Verdict::no_op(
                cx.bundle.manifest.why_missing(address),
                serde_json::Value::Null,
            ));
        };
        let after = serde_json::to_value(entry).unwrap_or_default();
        let overrides = content::Overrides {
            mode: spec.mode,
            owner: spec.owner.as_deref(),
            group: spec.group.as_deref(),
            sensitive: spec.sensitive,
            diff: true,
        };
        let change = content::compare(cx, address, entry, seen, overrides)?;
        let mut v = Verdict::new(change.action, content::reason(&change), after);
        v.sensitive = spec.sensitive;
        v.files.push(change);
        Ok(v)
    }

    fn apply(
        &self,
        address: &Address,
        spec: &FileSpec,
        _step: &crate::plan::Step,
        change: &crate::plan::ResourceChange,
        cx: &super::kind::ApplyCx,
    ) -> Result<super::kind::Applied, super::kind::ResourceError> {
        let o = super::content::Overrides {
            mode: spec.mode,
            owner: spec.owner.as_deref(),
            group: spec.group.as_deref(),
            sensitive: spec.sensitive,
            diff: false,
        };
        super::content::apply_files(cx, address, &change.files, o)
    }
}
