//! `service`: a local service that must be running or stopped.

use super::kind::{Applied, ApplyCx, Cx, Kind, Phase, ResourceError, Verdict};
use crate::host::service::{ServiceError, Status};
use crate::plan::Action;
use crate::recipe::{Address, BlockSchema, BlockValues, ServiceState};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The init script or unit name (default: the block's name).
    pub name: String,
    pub state: ServiceState,
}

pub struct ServiceKind;

#[derive(Debug, Serialize)]
pub struct Observed {
    pub name: String,
    /// `running`, `stopped`, or `not_installed`.
    pub status: &'static str,
}

impl Kind for ServiceKind {
    type Spec = ServiceSpec;
    const KEYWORD: &'static str = "service";
    const SCHEMA: BlockSchema = BlockSchema {
        attrs: &[("name", false), ("state", true), ("depends_on", false)],
        blocks: &[],
    };
    const PHASE: Phase = Phase::Service;

    fn decode(b: &mut BlockValues) -> Option<ServiceSpec> {
        let name = if b.has("name") {
            b.string("name")
        } else {
            Some(b.name().to_string())
        };
        let state = b.one_of(
            "state",
            "service state",
            &[
                ("running", ServiceState::Running),
                ("stopped", ServiceState::Stopped),
            ],
        );
        Some(ServiceSpec {
            name: name?,
            state: state?,
        })
    }

    fn desired_state(spec: &ServiceSpec) -> Option<ServiceState> {
        Some(spec.state)
    }
    type Observed = Observed;

    fn observe(
        &self,
        address: &Address,
        spec: &ServiceSpec,
        cx: &Cx,
    ) -> Result<Observed, ResourceError> {
        let status = match cx.services.current(&spec.name) {
            Ok(s) => s.as_str(),
            Err(ServiceError::NotInstalled { .. }) => "not_installed",
            Err(e) => return Err(ResourceError::new(address, e.to_string())),
        };
        Ok(Observed {
            name: spec.name.clone(),
            status,
        })
    }

    fn compare(
        &self,
        address: &Address,
        spec: &ServiceSpec,
        seen: &Observed,
        cx: &Cx,
    ) -> Result<Verdict, ResourceError> {
        let want = match spec.state {
            ServiceState::Running => Status::Running,
            ServiceState::Stopped => Status::Stopped,
        };
        let after = json!({ "name": spec.name, "status": want.as_str() });
        if seen.status == "not_installed" {
            // Expected on a rebuilt host: the installer, planned earlier, brings it.
            let before = cx.changed_before(address);
            // Name the installer when one runs; it is what brings services.
            let installer = before
                .iter()
                .find(|a| a.kind.phase() == Phase::Command)
                .or(before.first());
            if let Some(first) = installer {
                return Ok(Verdict::new(
                    Action::Run,
                    format!("not installed yet; {first} runs first"),
                    after,
                ));
            }
            return Err(ResourceError::new(
                address,
                format!("unknown service `{}`: no init script or unit on this host", spec.name),
            )
            .help(format!(
                "check the name (sysv looks for <root>/etc/init.d/{}) and the `services` backend in the recipe's imlrecover block",
                spec.name
            )));
        }
        if seen.status == want.as_str() {
            return Ok(Verdict::no_op(
                format!("{} is {}", spec.name, seen.status),
                after,
            ));
        }
        Ok(Verdict::new(
            Action::Run,
            format!(
                "{} is {}; desired state is {}",
                spec.name,
                seen.status,
                want.as_str()
            ),
            after,
        ))
    }

    fn apply(
        &self,
        address: &Address,
        spec: &ServiceSpec,
        step: &crate::plan::Step,
        _change: &crate::plan::ResourceChange,
        cx: &ApplyCx,
    ) -> Result<Applied, ResourceError> {
        use crate::host::service::Action as SvcAction;
        use crate::plan::Op;
        let action = match step.op {
            Op::Start => SvcAction::Start,
            Op::Stop => SvcAction::Stop,
            Op::Restart => SvcAction::Restart,
            other => {
                return Err(ResourceError::new(
                    address,
                    format!("a service cannot `{}`", other.as_str()),
                ))
            }
        };
        let acted = cx.services.act(&spec.name, action).map_err(|e| {
            ResourceError::new(address, e.to_string()).help(format!(
                "check the service by hand (`service {} status`) and its logs, then run apply again",
                spec.name
            ))
        })?;
        Ok(Applied::new(format!(
            "{} {}",
            spec.name,
            match (action, acted) {
                (SvcAction::Start, true) => "started",
                (SvcAction::Start, false) => "was already running",
                (SvcAction::Stop, true) => "stopped",
                (SvcAction::Stop, false) => "was already stopped",
                (SvcAction::Restart, _) => "restarted",
            }
        )))
    }

    fn service_name(spec: &ServiceSpec) -> Option<&str> {
        Some(&spec.name)
    }
}
