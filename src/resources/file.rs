//! `file "x" { path, mode?, owner?, group?, sensitive?, optional? }`

use super::kind::{Named, Phase};
use super::{CaptureCx, CaptureError, Captured};
use crate::bundle::ResourceRecord;
use crate::recipe::{Address, BlockSchema, BlockValues};

/// One file. `path` is absolute and lives under `--root`.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub path: String,
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub sensitive: bool,
    pub optional: bool,
}

/// Captures the file's content, mode and owner (optional and missing:
/// recorded as absent).
fn capture(
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
    const KEYWORD: &'static str = "file";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("path", true),
            ("mode", false),
            ("owner", false),
            ("group", false),
            ("sensitive", false),
            ("optional", false),
            ("notify", false),
            ("depends_on", false),
        ],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Files(crate::plan::Op::Write);
    const CAPTURES: bool = true;

    fn decode(b: &mut BlockValues) -> Option<FileSpec> {
        let path = b.path("path");
        let mode = b.mode("mode");
        let owner = b.string("owner");
        let group = b.string("group");
        let sensitive = b.bool("sensitive").unwrap_or(false);
        let optional = b.bool("optional").unwrap_or(false);
        Some(FileSpec {
            path: path?,
            mode,
            owner,
            group,
            sensitive,
            optional,
        })
    }

    fn capture(
        &self,
        cx: &mut CaptureCx,
        address: &Address,
        spec: &FileSpec,
    ) -> Result<Captured, CaptureError> {
        capture(cx, address, spec)
    }

    fn named(spec: &FileSpec, out: &mut Named) {
        out.paths.push(crate::bundle::normalize(&spec.path));
    }

    fn owns_entry(spec: &FileSpec, entry: &crate::bundle::Entry) -> Result<(), String> {
        let path = crate::bundle::normalize(&entry.path);
        if crate::bundle::normalize(&spec.path) == path {
            Ok(())
        } else {
            Err(format!("{path} is not its path {}", spec.path))
        }
    }
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
