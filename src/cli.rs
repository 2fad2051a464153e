//! Raw command-line arguments (clap). Each subcommand's module turns these
//! into validated inputs before touching anything.

use crate::recipe::VarInput;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod docs;
mod format;
mod init;
mod sign;
pub use docs::{CompletionShell, CompletionsArgs, ManArgs};
pub use format::{AuditFormat, Format, FormatArgs};
pub use init::InitArgs;
pub use sign::{SignArgs, TrustArgs};

/// `--version`: what a site needs to know about a binary it was handed.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nrevision: ",
    env!("IMLRECOVER_GIT_REVISION"),
    "\ntarget:   ",
    env!("IMLRECOVER_TARGET"),
    "\nglibc:    >= ",
    env!("IMLRECOVER_GLIBC_FLOOR"),
    "\nlinked:   ",
    env!("IMLRECOVER_LINKAGE"),
);

#[derive(Debug, Parser)]
#[command(
    name = "imlrecover",
    version,
    long_version = LONG_VERSION,
    about = "Plan/apply backup and restore for the Integrated Manager for Lustre server",
    long_about = "imlrecover turns the IML backup/restore runbook into a declarative recipe: \
                  back the manager server up into a verifiable bundle, plan a restore against \
                  the live host, apply it in dependency order, and audit drift in CI.",
    after_help = "Exit codes: 0 success / no changes, 1 error, 2 changes present (with --detailed-exitcode, and audit findings)."
)]
pub struct Cli {
    /// When to use colour: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and type-check a recipe and build its dependency graph.
    Validate(RecipeArgs),
    /// Print the dependency graph in DOT (pipe to `dot -Tsvg`).
    Graph(RecipeArgs),
    /// Capture everything the recipe declares into a new, verifiable bundle.
    Backup(BackupArgs),
    /// Check a bundle's integrity; with --drill, test-restore its database.
    Verify(VerifyArgs),
    /// Show what a restore would change on the live host (read-only).
    Plan(PlanArgs),
    /// Render a plan saved with `plan --out`.
    Show(ShowArgs),
    /// Restore: plan, ask, then carry out the steps in dependency order.
    Apply(ApplyArgs),
    /// Audit drift, backup age and integrity, certificates and unmanaged files (for CI).
    Audit(AuditArgs),
    /// The whole backup/disaster/restore drill in a temporary sandbox.
    Demo(DemoArgs),
    /// Copy a bundle off-host over SFTP (renamed into place only when complete).
    Push(PushArgs),
    /// Fetch the newest (or a named) bundle back over SFTP and verify it.
    Pull(PullArgs),
    /// Remove old bundles from a bundle directory by age and count (restic's rules).
    Prune(PruneArgs),
    /// Turn a runbook backup directory ($HOME/backup) into a bundle.
    Import(ImportArgs),
    /// Draft a ready recipe for this host: which IML release, PostgreSQL, InfluxDB, storage servers.
    Init(InitArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Write the man pages (one per subcommand) into DIR, or print imlrecover(1).
    Man(ManArgs),
}

/// `--age-identity FILE`, only on the commands that read bundle contents.
#[derive(Debug, Clone, Default, Args)]
pub struct AgeArgs {
    /// age identity file (AGE-SECRET-KEY-1…) that decrypts encrypted bundle files. Repeatable.
    #[arg(
        long = "age-identity",
        value_name = "FILE",
        env = "IMLRECOVER_AGE_IDENTITY"
    )]
    pub age_identity: Vec<PathBuf>,
}

/// `-r RECIPE [--var K=V]... [--var-file F]...`
#[derive(Debug, Clone, Args)]
pub struct RecipeArgs {
    // Required, except by `apply PLANFILE` (which turns that off).
    /// The recipe (HCL), e.g. plans/iml-manager.hcl.
    #[arg(short = 'r', long = "recipe", value_name = "RECIPE", required = true)]
    pub recipe: Option<PathBuf>,

    /// Set a variable: --var agents='["oss1","oss2"]'. Repeatable; later wins.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = VarInput::parse_pair)]
    pub vars: Vec<(String, String)>,

    /// Read variables from an HCL file of `name = value` lines. Repeatable.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// `--root DIR`: declared once, flattened wherever a host is read or changed.
#[derive(Debug, Clone, Args)]
pub struct RootArgs {
    /// The directory the recipe's absolute paths live under (like rpm --root).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

impl RecipeArgs {
    pub fn var_input(&self) -> VarInput {
        VarInput {
            vars: self.vars.clone(),
            files: self.var_files.clone(),
            values: Vec::new(),
        }
    }
}

/// `backup -r RECIPE --root DIR --bundle-dir DIR [--keep N]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The bundle is DIR/<UTC timestamp>/ with files/<path>, the pg_dumpall dump and manifest.json \
                  (docs/bundle.md). It appears only when complete; DIR/latest points at the newest."
)]
pub struct BackupArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,

    #[command(flatten)]
    pub root: RootArgs,

    /// Where bundles are written (created 0700 if missing).
    #[arg(long = "bundle-dir", value_name = "DIR")]
    pub bundle_dir: PathBuf,

    /// After a successful backup, remove the bundles these rules do not keep.
    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Write node_exporter textfile metrics here (docs/monitoring.md).
    #[arg(long = "metrics-file", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Then copy the new bundle off-host: sftp://USER@HOST[:PORT]/PATH (as `push`).
    #[arg(long, value_name = "TARGET")]
    pub push: Option<String>,

    /// With --push: keep only the newest N complete bundles on the remote side.
    #[arg(long = "push-keep", value_name = "N", requires = "push", value_parser = clap::value_parser!(u32).range(1..))]
    pub push_keep: Option<u32>,

    /// Encrypt sensitive entries with age to this recipient (age1…), besides
    /// the recipe's `recipients`. Repeatable.
    #[arg(long, value_name = "RECIPIENT")]
    pub recipient: Vec<String>,

    /// Encrypt every entry and the database dump too, not only sensitive entries.
    #[arg(long = "encrypt-all")]
    pub encrypt_all: bool,

    /// Store the dump, and any file larger than SIZE, as numbered parts of at
    /// most SIZE (64M, 2G, 512K): for file systems with a file size limit.
    #[arg(long = "split-size", value_name = "SIZE", value_parser = crate::bundle::split::parse_size)]
    pub split_size: Option<u64>,

    #[command(flatten)]
    pub sign: SignArgs,

    #[command(flatten)]
    pub ssh: SftpArgs,

    /// When another imlrecover apply or backup holds the host's lock, wait
    /// up to DURATION for it (30s, 10min) instead of refusing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<std::time::Duration>,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// How to reach an SFTP target (defaults as ssh: the invoking user's ~/.ssh).
#[derive(Debug, Clone, Args)]
pub struct SftpArgs {
    /// SSH private key for the SFTP target (given: only this key; default: ssh-agent, then ~/.ssh/id_ed25519, then ~/.ssh/id_rsa).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// known_hosts file the SFTP server's host key must be in (default: ~/.ssh/known_hosts).
    #[arg(long = "known-hosts", value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
}

/// `push BUNDLE sftp://USER@HOST[:PORT]/PATH [--keep N]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The copy is written as PATH/.incomplete-<name>-<host>-<pid>, every byte is hashed and \
                  compared with the manifest, every remote size is checked, and only then is it renamed \
                  to PATH/<name>. A push that fails or is killed leaves nothing that looks complete."
)]
pub struct PushArgs {
    /// A bundle directory, DIR/latest, or the bundle dir itself (meaning its latest).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,

    /// sftp://USER@HOST[:PORT]/PATH: the remote directory that holds bundles.
    #[arg(value_name = "TARGET")]
    pub target: String,

    #[command(flatten)]
    pub ssh: SftpArgs,

    /// After the push, remove the remote bundles these rules do not keep.
    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Write node_exporter textfile metrics here (docs/monitoring.md).
    #[arg(long = "metrics-file", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// The retention rules of `backup`, `push` and `prune`: restic's `forget`
/// semantics (README "Retention").
#[derive(Debug, Clone, Default, Args)]
#[group(multiple = true)]
pub struct RetentionArgs {
    /// Keep the N newest bundles (`--keep N` means the same).
    #[arg(long = "keep-last", visible_alias = "keep", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,

    /// Keep the newest bundle of each of the N latest days that have one (UTC days).
    #[arg(long = "keep-daily", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,

    /// Keep the newest bundle of each of the N latest ISO weeks that have one.
    #[arg(long = "keep-weekly", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,

    /// Keep the newest bundle of each of the N latest months that have one.
    #[arg(long = "keep-monthly", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_monthly: Option<u32>,

    /// Keep every bundle made less than DURATION before the newest one (7days, 36h).
    #[arg(long = "keep-within", value_name = "DURATION", value_parser = parse_duration)]
    pub keep_within: Option<std::time::Duration>,
}

impl RetentionArgs {
    pub fn policy(&self) -> crate::bundle::retention::Policy {
        crate::bundle::retention::Policy {
            last: self.keep_last,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            within: self.keep_within,
        }
    }
}

/// `prune --bundle-dir DIR [--keep-last N ...] [--dry-run]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "A bundle is kept if any rule keeps it; the newest bundle that verifies is always kept, \
                  and `.incomplete-*` directories (a backup or pull still writing) are never touched. \
                  Example: --keep-daily 7 --keep-weekly 4 --keep-monthly 6 keeps a week of dailies, \
                  a month of weeklies and half a year of monthlies."
)]
pub struct PruneArgs {
    /// The bundle directory (as `backup --bundle-dir`).
    #[arg(long = "bundle-dir", value_name = "DIR")]
    pub bundle_dir: PathBuf,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Show what would be removed and why each kept bundle stays; remove nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// `pull sftp://USER@HOST[:PORT]/PATH DIR [--bundle NAME]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The bundle lands in DIR/<name> (DIR/latest points at it) only after `verify` passed on it; \
                  then restore with `imlrecover plan/apply --bundle DIR`."
)]
pub struct PullArgs {
    /// sftp://USER@HOST[:PORT]/PATH: the remote directory that holds bundles.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// The local bundle directory to fetch into (created 0700 if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub ssh: SftpArgs,

    /// Fetch this bundle (its timestamp name) instead of the newest.
    #[arg(long, value_name = "NAME")]
    pub bundle: Option<String>,

    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// `verify BUNDLE [--drill]`
#[derive(Debug, Clone, Args)]
#[command(after_help = "Exit codes: 0 the bundle is intact, 1 any problem (each one is listed).")]
pub struct VerifyArgs {
    /// A bundle directory, DIR/latest, or the bundle dir itself (meaning its latest).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,

    /// Also restore the dump into a throwaway PostgreSQL cluster and compare row
    /// counts; the result is recorded in the bundle directory (drill.json).
    #[arg(long)]
    pub drill: bool,

    /// Write node_exporter textfile metrics here (docs/monitoring.md).
    #[arg(long = "metrics-file", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// The recipe, the host and the bundle: what plan, apply and audit compare.
/// Validated once per command into a [`crate::target::Target`].
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,

    #[command(flatten)]
    pub root: RootArgs,

    /// The bundle to restore from: a bundle directory, DIR/latest, or the bundle dir.
    #[arg(long, value_name = "BUNDLE", required = true)]
    pub bundle: Option<PathBuf>,
}

/// `--replace ADDR`, on plan and apply.
#[derive(Debug, Clone, Args)]
pub struct ReplaceArgs {
    /// Plan this resource's restore or action even if nothing changed
    /// (e.g. database.chroma, remote_service.chroma_agent). Repeatable.
    #[arg(long, value_name = "ADDR")]
    pub replace: Vec<String>,
}

/// `plan -r RECIPE --root DIR --bundle BUNDLE [--out F] [--json] [--detailed-exitcode]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 no changes (or any plan without --detailed-exitcode), 1 error, 2 changes present with --detailed-exitcode."
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub replace: ReplaceArgs,

    /// Save the plan (JSON, no secret contents) for `apply PLANFILE` and `show`.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,

    /// Print the plan as JSON (schema: docs/plan.md, "format_version": 1).
    #[arg(long)]
    pub json: bool,

    /// Exit 2 when the plan has changes.
    #[arg(long = "detailed-exitcode")]
    pub detailed_exitcode: bool,

    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `show PLANFILE [--json]`
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// A plan saved with `plan --out`.
    #[arg(value_name = "PLANFILE")]
    pub plan: PathBuf,

    /// Print it as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `apply (-r RECIPE --root DIR --bundle BUNDLE [--replace ADDR] | PLANFILE) [--auto-approve]`
#[derive(Debug, Clone, Args)]
#[command(
    override_usage = "imlrecover apply -r RECIPE --root DIR --bundle BUNDLE [--replace ADDR]... [--auto-approve]\n       \
                      imlrecover apply PLANFILE",
    after_help = "With PLANFILE, the saved plan runs without a question, but only if nothing it touches changed since it was made.",
    group = clap::ArgGroup::new("what").required(true).args(["plan", "recipe"]),
    mut_args(apply_target)
)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`.
    #[arg(value_name = "PLANFILE", conflicts_with_all = ["recipe", "bundle", "replace"])]
    pub plan: Option<PathBuf>,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub replace: ReplaceArgs,

    /// Do not ask for approval (required when stdin is not a terminal).
    #[arg(long = "auto-approve")]
    pub auto_approve: bool,

    /// Write node_exporter textfile metrics here (docs/monitoring.md).
    #[arg(long = "metrics-file", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// When another imlrecover apply or backup holds the host's lock, wait
    /// up to DURATION for it (30s, 10min) instead of refusing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<std::time::Duration>,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// `apply PLANFILE` needs no recipe or bundle; its own words for two options.
/// (`mut_args` keeps the options' order, which completions follow.)
fn apply_target(a: clap::Arg) -> clap::Arg {
    match a.get_id().as_str() {
        "recipe" => a.required(false).requires("bundle"),
        "bundle" => a.required(false).help("The bundle to restore from"),
        "replace" => a.help("Restore or act on this resource even if nothing changed. Repeatable"),
        _ => a,
    }
}

fn audit_target(a: clap::Arg) -> clap::Arg {
    match a.get_id().as_str() {
        "bundle" => a.help(
            "The bundle to audit against: a bundle directory, DIR/latest, or the bundle dir (its newest)",
        ),
        _ => a,
    }
}

/// `demo [--keep]`
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The IML release whose manager is drilled, e.g. 6.2 (systemd units and
    /// InfluxDB; needs docker-systemctl-replacement and influxd). Default: an
    /// EL6 4.0.x manager.
    #[arg(long, value_name = "VERSION", value_parser = parse_release)]
    pub release: Option<crate::init::Family>,
    /// Keep the sandbox directory afterwards, to read: its services and
    /// PostgreSQL cluster are stopped, so it cannot be planned or applied.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub output: FormatArgs,
}

fn parse_release(s: &str) -> Result<crate::init::Family, String> {
    crate::init::Family::of_version(s)
        .ok_or_else(|| format!("{s:?} is not an IML release version (e.g. 4.0.8, 5.1, 6.2)"))
}

/// `audit -r RECIPE --root DIR --bundle BUNDLE [--format F] [--max-age D] [--cert-min-days N]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Reports drift (the plan's resource changes), the bundle's age, integrity and recipe, \
                        certificate expiry, key and chain on the live files, and files the recipe does not manage. \
                        Read-only.\n\nExit codes: 0 clean, 2 drift or findings, 1 error (unreadable recipe or bundle, \
                        missing root, unreachable database). JSON schema and JUnit mapping: docs/audit.md.\n\n\
                        With --format nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (an error); docs/monitoring.md."
)]
#[command(mut_args(audit_target))]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Output: human (a short report), json (docs/audit.md), junit (for GitLab and Jenkins),
    /// nagios (one plugin status line with perfdata; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = AuditFormat::Human)]
    pub format: AuditFormat,

    /// A bundle older than this is a finding: 24h, 90min, 7days, 1week.
    #[arg(long = "max-age", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub max_age: std::time::Duration,

    /// A certificate expiring within this many days is a finding.
    #[arg(long = "cert-min-days", value_name = "DAYS", default_value_t = 30)]
    pub cert_min_days: u32,

    /// No successful `verify --drill` of a bundle made within DURATION is a
    /// finding (read from the bundle directory's drill.json). Default: not checked.
    #[arg(long = "max-drill-age", value_name = "DURATION", value_parser = parse_duration)]
    pub max_drill_age: Option<std::time::Duration>,

    /// With --format nagios: a bundle older than this is CRITICAL (older than --max-age: WARNING).
    #[arg(long = "critical-age", value_name = "DURATION", default_value = "48h", value_parser = parse_duration)]
    pub critical_age: std::time::Duration,

    /// With --format nagios: a certificate expiring within this many days is CRITICAL
    /// (within --cert-min-days: WARNING).
    #[arg(long = "cert-critical-days", value_name = "DAYS", default_value_t = 7)]
    pub cert_critical_days: u32,

    /// Write node_exporter textfile metrics here (docs/monitoring.md).
    #[arg(long = "metrics-file", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write a duration such as 24h, 90min or 7days)"))
}

/// `import DIR -r RECIPE --bundle-dir DIR [--dump NAME] [--dry-run]`
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "DIR is what the runbook's backup commands made ($HOME/backup, or a copy of it): the files its `cp` \
                  commands put there and the cron job's pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz dumps (whole or cut by \
                  `split`). A report of what was found, what is lacking, what the recipe does not name and which dump \
                  was taken comes first; then the bundle is written like one from `backup`.\n\n\
                  Exit codes: 0 the bundle was made (with --dry-run: it could be), 1 it was not."
)]
pub struct ImportArgs {
    /// The runbook backup directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub recipe: RecipeArgs,

    /// Where the bundle is written (created 0700 if missing).
    #[arg(long = "bundle-dir", value_name = "DIR")]
    pub bundle_dir: PathBuf,

    /// Take this dump (its name, or one of its split parts) instead of the newest complete one.
    #[arg(long, value_name = "NAME")]
    pub dump: Option<String>,

    /// Print the report only; write nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    #[command(flatten)]
    pub sign: SignArgs,
}
