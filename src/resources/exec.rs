//! `exec`: the installer. It runs when its guard says so: `creates` names a
//! file the installer leaves behind, `unless` a command that exits 0 when
//! there is nothing to do. Without a guard it runs on every apply.

use super::kind::{Applied, ApplyCx, Cx, Kind, Phase, ResourceError, Verdict};
use crate::host::process;
use crate::plan::Action;
use crate::recipe::{Address, BlockSchema, BlockValues};
use serde::Serialize;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv; a string is run with `/bin/sh -c`.
    pub command: Vec<String>,
    /// Skip when this path exists under the root.
    pub creates: Option<String>,
    /// Skip when this command exits 0.
    pub unless: Option<Vec<String>>,
    pub timeout: Duration,
}

pub struct ExecKind;

/// How long an `unless` guard may take while planning.
const GUARD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize)]
pub struct Observed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creates_exists: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unless_exit: Option<i32>,
}

/// The environment every command imlrecover runs for a recipe gets, so that
/// scripts can honour `--root` as the tool does.
pub fn command(argv: &[String], cx_root: &std::path::Path) -> Option<Command> {
    let (program, args) = argv.split_first()?;
    let mut cmd = Command::new(program);
    cmd.args(args).env("IMLRECOVER_ROOT", cx_root);
    Some(cmd)
}

impl Kind for ExecKind {
    type Spec = ExecSpec;
    const KEYWORD: &'static str = "exec";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[
            ("command", true),
            ("creates", false),
            ("unless", false),
            ("timeout", false),
            ("depends_on", false),
        ],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Command;

    fn decode(b: &mut BlockValues) -> Option<ExecSpec> {
        let command = b.command("command");
        let creates = b.path("creates");
        let unless = b.command("unless");
        let timeout = if b.has("timeout") {
            b.duration("timeout")
        } else {
            Some(Duration::from_secs(3600))
        };
        Some(ExecSpec {
            command: command?,
            creates,
            unless,
            timeout: timeout?,
        })
    }
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &ExecSpec,
        cx: &Cx,
    ) -> Result<Observed, ResourceError> {
        let creates_exists = match &spec.creates {
            Some(p) => Some(
                cx.root
                    .metadata(p)
                    .map_err(|e| ResourceError::new(address, e.to_string()))?
                    .is_some(),
            ),
            None => None,
        };
        // A satisfied `creates` decides alone: no need to run `unless`.
        let unless_exit = match (&spec.unless, creates_exists) {
            (Some(argv), None | Some(false)) => {
                let mut cmd = command(argv, cx.root.dir())
                    .ok_or_else(|| ResourceError::new(address, "`unless` is empty"))?;
                let out = process::run(&mut cmd, GUARD_TIMEOUT)
                    .map_err(|e| ResourceError::new(address, format!("the `unless` guard: {e}")))?;
                Some(out.status.code().unwrap_or(-1))
            }
            _ => None,
        };
        Ok(Observed {
            creates_exists,
            unless_exit,
        })
    }

    fn compare(
        &self,
        address: &Address,
        spec: &ExecSpec,
        seen: &Observed,
        cx: &Cx,
    ) -> Result<Verdict, ResourceError> {
        let after = json!({ "command": spec.command });
        let creates = spec.creates.as_deref().unwrap_or("");
        if cx.forced(address) {
            return Ok(Verdict::new(Action::Run, "forced with --replace", after));
        }
        if seen.creates_exists == Some(true) {
            return Ok(Verdict::no_op(format!("{creates} exists"), after));
        }
        if seen.unless_exit == Some(0) {
            return Ok(Verdict::no_op("its `unless` guard exits 0", after));
        }
        let reason = match (seen.creates_exists, seen.unless_exit) {
            (Some(false), _) => format!("{creates} does not exist"),
            (None, Some(code)) => format!("its `unless` guard exits {code}"),
            _ => "it has no `creates` or `unless` guard".to_string(),
        };
        Ok(Verdict::new(Action::Run, reason, after)
            .detail(format!("command: {}", spec.command.join(" "))))
    }

    fn apply(
        &self,
        address: &Address,
        spec: &ExecSpec,
        _step: &crate::plan::Step,
        _change: &crate::plan::ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        let mut cmd = command(&spec.command, cx.root.dir())
            .ok_or_else(|| ResourceError::new(address, "`command` is empty"))?;
        let out = process::run(&mut cmd, spec.timeout);
        // Whatever it ran may have started or stopped services.
        cx.services.forget();
        let out = out.map_err(|e| ResourceError::new(address, e.to_string()))?;
        if !out.status.success() {
            let tail: Vec<&str> = out
                .stderr
                .lines()
                .chain(out.stdout.lines())
                .rev()
                .take(10)
                .collect();
            return Err(ResourceError::new(
                address,
                format!(
                    "`{}` failed ({}): {}",
                    spec.command.join(" "),
                    out.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
            )
            .help("fix what the installer reports and run apply again"));
        }
        // The step line adds how long it took.
        Ok(Applied::new(format!(
            "`{}` finished",
            spec.command.join(" ")
        )))
    }
}
