//! `absent`: a file that must not exist (the runbook's client_errors.log).

use super::kind::{Applied, ApplyCx, Cx, Kind, Named, Phase, ResourceError, Verdict};
use crate::plan::{Action, FileChange};
use crate::recipe::{Address, BlockSchema, BlockValues};
use serde::Serialize;
use serde_json::json;

/// A file that must not exist.
#[derive(Debug, Clone)]
pub struct AbsentSpec {
    pub path: String,
}

pub struct AbsentKind;

#[derive(Debug, Serialize)]
pub struct Observed {
    pub path: String,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Kind for AbsentKind {
    type Spec = AbsentSpec;
    const KEYWORD: &'static str = "absent";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[("path", true), ("depends_on", false)],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Remove;

    fn decode(b: &mut BlockValues) -> Option<AbsentSpec> {
        let path = b.path("path");
        Some(AbsentSpec { path: path? })
    }

    fn named(spec: &AbsentSpec, out: &mut Named) {
        out.paths.push(crate::bundle::normalize(&spec.path));
    }
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &AbsentSpec,
        cx: &Cx,
    ) -> Result<Observed, ResourceError> {
        let host = cx
            .root
            .path_nofollow(&spec.path)
            .map_err(|e| ResourceError::new(address, e.to_string()))?;
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => Some(m),
            Err(e) if crate::host::fs::is_not_found(&e) => None,
            Err(e) => {
                return Err(ResourceError::new(
                    address,
                    format!("cannot inspect {}: {e}", spec.path),
                ))
            }
        };
        Ok(Observed {
            path: spec.path.clone(),
            exists: meta.is_some(),
            size: meta.map(|m| m.len()),
        })
    }

    fn compare(
        &self,
        _: &Address,
        spec: &AbsentSpec,
        seen: &Observed,
        _: &Cx,
    ) -> Result<Verdict, ResourceError> {
        let after = json!({ "path": spec.path, "exists": false });
        if !seen.exists {
            return Ok(Verdict::no_op(
                format!("{} does not exist", spec.path),
                after,
            ));
        }
        let mut v = Verdict::new(
            Action::Delete,
            format!("{} exists and must not", spec.path),
            after,
        );
        v.files.push(FileChange {
            path: spec.path.clone(),
            action: Action::Delete,
            details: seen
                .size
                .map(|s| vec![format!("{s} bytes")])
                .unwrap_or_default(),
            diff: None,
        });
        Ok(v)
    }

    fn apply(
        &self,
        address: &Address,
        spec: &AbsentSpec,
        _step: &crate::plan::Step,
        _change: &crate::plan::ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        use crate::host::atomic;
        let err = |e: atomic::AtomicError| ResourceError::new(address, e.to_string());
        let kept = atomic::keep_previous(cx.root, &spec.path, cx.previous).map_err(err)?;
        atomic::remove(cx.root, &spec.path).map_err(err)?;
        Ok(Applied::new(match kept {
            Some(k) => format!("removed {} (kept in {})", spec.path, k.display()),
            None => format!("{} was already gone", spec.path),
        }))
    }
}
