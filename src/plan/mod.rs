//! Plans are plain data: what each resource needs (`resource_changes`) and
//! the ordered steps apply will run (`steps`). They serialise to the
//! documented JSON schema (`format_version`), are saved with `plan --out`
//! and rendered by `views`. A plan never holds secret file contents.

pub mod build;
pub mod saved;
mod steps;

pub use build::{build, missing_from_bundle, Inputs, PlanErrors};
pub use steps::derive_steps;

use crate::recipe::Address;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to the JSON below.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub tool_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub recipe: RecipeRef,
    /// The recipe's variable values, so `apply PLANFILE` loads the same recipe.
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, serde_json::Value>,
    pub bundle: BundleRef,
    pub root: String,
    /// Addresses forced with `--replace`.
    pub replace: Vec<Address>,
    pub warnings: Vec<String>,
    pub resource_changes: Vec<ResourceChange>,
    pub steps: Vec<Step>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipeRef {
    pub path: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleRef {
    pub path: String,
    pub id: String,
    /// The recipe hash the bundle was made from.
    pub recipe_hash: String,
}

/// What must happen to one resource, Terraform's vocabulary plus `restore`
/// (replace from the bundle) and `run` (an exec or a service action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Delete,
    Restore,
    Run,
}

impl Action {
    /// The symbol shown before the resource, as Terraform does.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Restore => "-/+",
            Action::Run => "!",
        }
    }

    /// "create", "update"…: for "(update: reason)".
    pub fn word(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "remove",
            Action::Restore => "restore",
            Action::Run => "run",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "no change",
            Action::Create => "created",
            Action::Update => "updated",
            Action::Delete => "removed",
            Action::Restore => "restored",
            Action::Run => "run",
        }
    }
}

/// One file inside a resource (a `file`, a member of `files`, a cert's
/// key): what differs, never its secret content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub action: Action,
    /// Human lines: "mode 0600 → 0644", "content changed (blake3 a1b2… → c3d4…)".
    pub details: Vec<String>,
    /// A unified diff (3 lines of context) for non-sensitive text files.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: Address,
    pub action: Action,
    /// Why, in one sentence.
    pub reason: String,
    /// Evidence a person reads: subject, fingerprint, status, guard…
    pub details: Vec<String>,
    #[serde(default)]
    pub files: Vec<FileChange>,
    /// Summaries of the live state and of the desired state.
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// blake3 of `before`: apply refuses a saved plan when it moved.
    pub observed: String,
    pub sensitive: bool,
}

impl ResourceChange {
    pub fn changed(&self) -> bool {
        self.action != Action::NoOp
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Run,
    Stop,
    Write,
    Restore,
    Remove,
    Start,
    Restart,
    RemoteAction,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Run => "run",
            Op::Stop => "stop",
            Op::Write => "write",
            Op::Restore => "restore",
            Op::Remove => "remove",
            Op::Start => "start",
            Op::Restart => "restart",
            Op::RemoteAction => "remote",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based position; the journal records completed ids.
    pub id: usize,
    pub op: Op,
    pub address: Address,
    /// "because file.ntp_conf changed", "quiesce for database.chroma"…
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub restore: usize,
    pub create: usize,
    pub update: usize,
    pub remove: usize,
    pub service_actions: usize,
    pub run: usize,
}

impl Summary {
    pub fn of(changes: &[ResourceChange], steps: &[Step]) -> Summary {
        let count = |a: Action| changes.iter().filter(|c| c.action == a).count();
        Summary {
            restore: count(Action::Restore),
            create: count(Action::Create),
            update: count(Action::Update),
            remove: count(Action::Delete),
            service_actions: steps
                .iter()
                .filter(|s| matches!(s.op, Op::Stop | Op::Start | Op::Restart | Op::RemoteAction))
                .count(),
            run: steps.iter().filter(|s| s.op == Op::Run).count(),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Summary::default()
    }

    /// "3 to restore, 0 to create, 2 to update, …" (planned) or "3 restored,
    /// 0 created, 2 updated, …" (done): every kind always shows, zeros too,
    /// as Terraform's summary does.
    pub fn phrases(&self, done: bool) -> String {
        let word = |n: usize, todo: &str, past: &str| {
            if done {
                format!("{n} {past}")
            } else {
                format!("{n} to {todo}")
            }
        };
        let mut parts = vec![
            word(self.restore, "restore", "restored"),
            word(self.create, "create", "created"),
            word(self.update, "update", "updated"),
            word(self.remove, "remove", "removed"),
            word(self.run, "run", "run"),
        ];
        parts.push(format!(
            "{} service {}",
            self.service_actions,
            if self.service_actions == 1 {
                "action"
            } else {
                "actions"
            }
        ));
        parts.join(", ")
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty()
    }

    pub fn change(&self, address: &Address) -> Option<&ResourceChange> {
        self.resource_changes.iter().find(|c| &c.address == address)
    }
}

/// blake3 of a JSON value's canonical text, for `observed`.
pub fn fingerprint(value: &serde_json::Value) -> String {
    blake3::hash(value.to_string().as_bytes())
        .to_hex()
        .to_string()
}
