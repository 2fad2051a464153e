//! `imlrecover audit`: the drift and health report a CI job or a timer runs
//! against the live host. Read-only. Every check performed becomes a
//! [`Finding`], passing ones too, so that JUnit shows one testcase per
//! resource/check; `status = fail` findings are what make the audit exit 2.
//!
//! The checks (`checks`) work on plain inputs: a loaded recipe, the root,
//! an opened bundle and the plan the plan builder made. The renderers
//! (`human`, `junit`, and [`json`]) only format the resulting [`Report`].
//! docs/audit.md documents the JSON schema and the JUnit mapping.

pub mod checks;
pub mod records;
pub mod releases;

pub use checks::{run, AuditError, Inputs};

use crate::plan::Action;
use crate::recipe::Address;
use serde::Serialize;

/// Bumped on any incompatible change to the JSON below (docs/audit.md).
pub const FORMAT_VERSION: u32 = 1;

/// Where findings are grouped: a JUnit `<testsuite>` and a human section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    Drift,
    Backup,
    Certificates,
    Unmanaged,
}

impl Suite {
    pub const ALL: [Suite; 4] = [
        Suite::Drift,
        Suite::Backup,
        Suite::Certificates,
        Suite::Unmanaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Drift => "drift",
            Suite::Backup => "backup",
            Suite::Certificates => "certificates",
            Suite::Unmanaged => "unmanaged",
        }
    }

    /// The word in the summary line: "(1 drift, 2 certificate)".
    pub fn noun(self) -> &'static str {
        match self {
            Suite::Drift => "drift",
            Suite::Backup => "backup",
            Suite::Certificates => "certificate",
            Suite::Unmanaged => "unmanaged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
}

/// The checks, as they appear in `check` (stable identifiers: CI filters on them).
pub mod check {
    pub const DRIFT: &str = "drift";
    pub const BACKUP_AGE: &str = "backup.age";
    pub const BACKUP_INTEGRITY: &str = "backup.integrity";
    pub const BACKUP_RECIPE: &str = "backup.recipe";
    pub const BACKUP_DRILL: &str = "backup.drill";
    pub const BACKUP_KEY_ESCROW: &str = "backup.key_escrow";
    pub const CERT_EXPIRY: &str = "certificate.expiry";
    pub const CERT_KEY: &str = "certificate.key";
    pub const CERT_CHAIN: &str = "certificate.chain";
    pub const UNMANAGED_GLOB: &str = "unmanaged.glob";
    pub const UNMANAGED_CHROMA: &str = "unmanaged.chroma";
}

/// One check on one resource or path, and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub suite: Suite,
    pub check: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// A path on the host (under `--root`) or, for `backup.integrity`,
    /// inside the bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `drift`: what the plan would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// One sentence; for failures it says what to do where that is not obvious.
    pub message: String,
    /// Evidence lines (the plan's details, per-file changes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// For `drift` of non-sensitive text files: the unified diff, live → bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Finding {
    pub fn new(
        suite: Suite,
        check: &'static str,
        status: Status,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            suite,
            check,
            status,
            address: None,
            path: None,
            action: None,
            message: message.into(),
            details: Vec::new(),
            diff: None,
        }
    }

    pub fn pass(suite: Suite, check: &'static str, message: impl Into<String>) -> Finding {
        Finding::new(suite, check, Status::Pass, message)
    }

    pub fn fail(suite: Suite, check: &'static str, message: impl Into<String>) -> Finding {
        Finding::new(suite, check, Status::Fail, message)
    }

    pub fn at(mut self, address: &Address) -> Finding {
        self.address = Some(address.clone());
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Finding {
        self.path = Some(path.into());
        self
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }

    /// The short name of the check without its suite: "expiry", "age".
    pub fn check_name(&self) -> &'static str {
        self.check.rsplit('.').next().unwrap_or(self.check)
    }

    /// A name unique within its suite: the JUnit testcase name and the
    /// human line's label. `cert.manager chain`, `integrity files/etc/hosts`.
    pub fn name(&self) -> String {
        let address = self.address.as_ref().map(Address::to_string);
        match (self.suite, address, &self.path) {
            (Suite::Drift, Some(a), _) => a,
            (Suite::Backup, _, Some(p)) => format!("{} {p}", self.check_name()),
            (Suite::Backup, _, None) => self.check_name().to_string(),
            (Suite::Certificates, Some(a), _) => format!("{a} {}", self.check_name()),
            (Suite::Unmanaged, Some(a), Some(p)) if self.failed() => format!("{a} {p}"),
            (Suite::Unmanaged, Some(a), _) => a,
            (_, _, Some(p)) => p.clone(),
            (_, None, None) => self.check.to_string(),
        }
    }
}

/// The whole audit: what was compared, with which limits, and every finding.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub tool_version: String,
    /// When the audit ran, RFC 3339 UTC.
    pub created: String,
    pub recipe: RecipeRef,
    pub bundle: BundleRef,
    pub root: String,
    pub limits: Limits,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// Numbers for `--format nagios` and `--metrics-file`, not in the JSON.
    #[serde(skip)]
    pub measures: Measures,
}

/// What the perfdata and the metrics show besides the findings.
#[derive(Debug, Clone, Default)]
pub struct Measures {
    /// Every certificate read: address, live path, notAfter (Unix time), days left.
    pub certs: Vec<CertExpiry>,
    /// The drill record beside the bundle, if any.
    pub drill: Option<crate::bundle::drill::Record>,
    /// `--max-drill-age` in seconds, when given.
    pub max_drill_age: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct CertExpiry {
    pub address: String,
    pub path: String,
    pub not_after: i64,
    pub days_left: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipeRef {
    pub path: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleRef {
    pub path: String,
    pub id: String,
    /// The manifest's `created`.
    pub created: String,
    /// Seconds between `created` and the audit; absent when `created`
    /// does not parse or lies in the future.
    pub age_seconds: Option<u64>,
    pub recipe_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// `--max-age` as given by humantime ("1day"), and in seconds.
    pub max_age: String,
    pub max_age_seconds: u64,
    pub cert_min_days: u32,
}

/// Counts of failing findings, per suite; `checks` counts all findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub checks: usize,
    pub passed: usize,
    pub findings: usize,
    pub drift: usize,
    pub backup: usize,
    pub certificates: usize,
    pub unmanaged: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Summary {
        let fails = |s: Suite| {
            findings
                .iter()
                .filter(|f| f.failed() && f.suite == s)
                .count()
        };
        let failed = findings.iter().filter(|f| f.failed()).count();
        Summary {
            checks: findings.len(),
            passed: findings.len() - failed,
            findings: failed,
            drift: fails(Suite::Drift),
            backup: fails(Suite::Backup),
            certificates: fails(Suite::Certificates),
            unmanaged: fails(Suite::Unmanaged),
        }
    }

    pub fn of_suite(&self, s: Suite) -> usize {
        match s {
            Suite::Drift => self.drift,
            Suite::Backup => self.backup,
            Suite::Certificates => self.certificates,
            Suite::Unmanaged => self.unmanaged,
        }
    }
}

impl Report {
    pub fn clean(&self) -> bool {
        self.summary.findings == 0
    }

    pub fn in_suite(&self, s: Suite) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.suite == s)
    }
}
