//! The test fixture for the shipped plan: a golden sandbox manager (files,
//! openssl certificates, LSB services, a PostgreSQL cluster; see
//! `imlrecover::sandbox::manager`) with its bundle directory, and the verbs a
//! test runs against it: `backup`, `plan`, `apply`, `audit` (`push` and
//! `pull` are verbs of the off-host store, support::sftp).
//! [`super::host::Host`] is the same for the fixture host and the backup
//! test recipe.

use super::cli::{Imlrecover, Output};
use super::world::World;
use imlrecover::sandbox::manager::{Sandbox, SERVICES};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The plan the manager is restored with.
pub const PLAN: &str = "plans/iml-manager.hcl";

/// Files whose bytes must come back exactly.
pub const KEPT: &[&str] = &[
    "etc/hosts",
    "etc/ntp.conf",
    "etc/shadow",
    "var/lib/chroma/authority.crt",
    "var/lib/chroma/authority.pem",
    "var/lib/chroma/authority.srl",
    "var/lib/chroma/manager.crt",
    "var/lib/chroma/manager.pem",
    "usr/share/chroma-manager/local_settings.py",
];

pub struct Manager {
    // Fields drop in order: the sandbox (which stops its daemons by their
    // pid files) before the directory holding those files.
    pub sb: Sandbox,
    /// Holds the sandbox (`sb/`) and whatever else a test writes.
    pub tmp: tempfile::TempDir,
    /// `latest` in the sandbox's bundle directory.
    pub bundle: String,
    /// `chroma`'s rows and the [`KEPT`] files' bytes when [`Manager::record`]
    /// last ran (at the backup, for [`Manager::golden`]).
    pub rows: BTreeMap<String, u64>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Manager {
    /// A golden manager, not backed up.
    pub fn new() -> Manager {
        Manager::golden_with(true)
    }

    /// A golden manager without PostgreSQL (files, certificates, services).
    pub fn without_database() -> Manager {
        Manager::golden_with(false)
    }

    fn golden_with(database: bool) -> Manager {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sb = Sandbox::golden_with(&tmp.path().join("sb"), database).expect("golden manager");
        Manager {
            bundle: sb.bundles.join("latest").display().to_string(),
            sb,
            tmp,
            rows: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }

    /// A golden manager with a bundle of itself (rows and files recorded).
    pub fn golden() -> Manager {
        let mut m = Manager::new();
        m.backup();
        m.record();
        m
    }

    /// A golden manager, backed up, then destroyed.
    pub fn after_disaster() -> Manager {
        let mut m = Manager::golden();
        m.sb.disaster().expect("disaster");
        m
    }

    /// Remembers `chroma`'s rows and the [`KEPT`] files, as they are now.
    pub fn record(&mut self) {
        self.rows = self.sb.rows().expect("rows");
        self.files = KEPT
            .iter()
            .map(|p| (p.to_string(), std::fs::read(self.sb.root.join(p)).unwrap()))
            .collect();
    }

    /// The shipped plan, the sandbox's root, variables and bundle directory.
    pub fn world(&self) -> World {
        World {
            recipe: PathBuf::from(PLAN),
            vars: self.sb.var_args().into_iter().map(Into::into).collect(),
            root: self.sb.root.clone(),
            bundles: self.sb.bundles.clone(),
        }
    }

    /// `imlrecover SUB -r PLAN --root ROOT [--bundle LATEST] --var …`
    /// (`--bundle` for every SUB but backup).
    pub fn cmd(&self, sub: &str) -> Imlrecover {
        self.cmd_on(Imlrecover::new(), sub, Path::new(&self.bundle))
    }

    /// [`World::cmd_on`] of the manager.
    pub fn cmd_on(&self, c: Imlrecover, sub: &str, bundle: &Path) -> Imlrecover {
        self.world().cmd_on(c, sub, bundle)
    }

    /// `imlrecover backup` into the sandbox's bundle directory; must succeed.
    pub fn backup(&self) {
        self.backup_with(&[] as &[&str]);
    }

    /// [`Manager::backup`] with more arguments; must succeed.
    pub fn backup_with<S: AsRef<OsStr>>(&self, extra: &[S]) -> Output {
        let out = self.try_backup(extra);
        out.code(0);
        out
    }

    /// `imlrecover backup` with more arguments, whatever its outcome.
    pub fn try_backup<S: AsRef<OsStr>>(&self, extra: &[S]) -> Output {
        self.backup_on(Imlrecover::new()).args(extra).run()
    }

    /// `backup … --bundle-dir BUNDLES` on `c`, to be run.
    pub fn backup_on(&self, c: Imlrecover) -> Imlrecover {
        self.world().backup_on(c)
    }

    pub fn plan(&self, extra: &[&str]) -> Output {
        self.cmd("plan").args(extra).run()
    }

    /// `imlrecover apply --auto-approve`.
    pub fn apply(&self) -> Output {
        self.cmd("apply").arg("--auto-approve").run()
    }

    /// `apply --auto-approve` of `bundle` (a pulled or tampered copy) on `c`.
    pub fn apply_from(&self, c: Imlrecover, bundle: &Path) -> Imlrecover {
        self.cmd_on(c, "apply", bundle).arg("--auto-approve")
    }

    pub fn audit(&self, extra: &[&str]) -> Output {
        self.cmd("audit").args(extra).run()
    }

    /// The same apply as a child process, to be killed or raced.
    pub fn spawn_apply(&self, extra: &[&str]) -> std::process::Child {
        self.apply_from(Imlrecover::new(), Path::new(&self.bundle))
            .args(extra)
            .spawn()
    }

    /// `openssl verify -CAfile authority.crt manager.crt` on the host.
    pub fn verify_chain(&self) -> std::process::Output {
        let chroma = self.sb.root.join("var/lib/chroma");
        std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(chroma.join("authority.crt"))
            .arg(chroma.join("manager.crt"))
            .output()
            .unwrap()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.sb.root.join(p.trim_start_matches('/'))
    }

    /// Runs the sandbox's init script for `name`; must succeed.
    pub fn service(&self, name: &str, action: &str) {
        let out = std::process::Command::new(self.sb.root.join("etc/init.d").join(name))
            .arg(action)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} {action}");
    }

    pub fn state(&self) -> String {
        std::fs::read_to_string(self.sb.root.join("var/lib/imlrecover/state.json"))
            .unwrap_or_default()
    }

    /// Waits (bounded) until a restore is recorded as started.
    pub fn wait_for_restore_start(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.state().contains("\"started\"") {
            assert!(Instant::now() < deadline, "the restore never started");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn dump_size(&self) -> u64 {
        super::host::manifest(Path::new(&self.bundle))
            .database
            .unwrap()
            .size
    }

    pub fn drop_chroma(&self) {
        imlrecover::host::postgres::execute(&self.sb.target(), "postgres", "DROP DATABASE chroma")
            .unwrap();
    }

    /// The apply run directories under the sandbox root.
    pub fn run_dirs(&self) -> Vec<PathBuf> {
        let runs = self.sb.root.join("var/lib/imlrecover/runs");
        std::fs::read_dir(runs)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    /// The safety dumps of every run (`safety-…`, `.partial` included).
    pub fn safety_dumps(&self) -> Vec<PathBuf> {
        self.run_dirs()
            .iter()
            .flat_map(|r| std::fs::read_dir(r).unwrap().flatten())
            .map(|f| f.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("safety-"))
            })
            .collect()
    }

    /// The next apply restores, the rows are the bundle's, the re-plan is clean.
    #[track_caller]
    pub fn converges(&self) -> Output {
        let out = self.apply();
        out.code(0).stdout_has("1 restored");
        assert!(!out.stdout.contains("0 restored"), "{}", out.stdout);
        assert_eq!(
            self.sb.rows().unwrap(),
            self.rows,
            "rows differ from the bundle"
        );
        self.cmd("plan").arg("--detailed-exitcode").run().code(0);
        assert!(!self.state().contains("\"started\""), "{}", self.state());
        out
    }

    /// `chroma`'s rows and the [`KEPT`] files are as [`Manager::record`] saw them.
    #[track_caller]
    pub fn assert_as_recorded(&self) {
        assert_eq!(
            self.sb.rows().unwrap(),
            self.rows,
            "rows differ from the original"
        );
        for (p, bytes) in &self.files {
            assert_eq!(
                &std::fs::read(self.sb.root.join(p)).unwrap(),
                bytes,
                "{p} differs from the original"
            );
        }
    }

    /// The host equals the golden one: plan is clean, rows and bytes match,
    /// every service runs.
    #[track_caller]
    pub fn assert_restored(&self) {
        self.cmd("plan")
            .arg("--detailed-exitcode")
            .run()
            .code(0)
            .stdout_has("No changes. The host matches the recipe.");
        self.assert_as_recorded();
        for s in SERVICES {
            assert!(status(&self.sb.root, s), "{s} is not running");
        }
    }
}

/// Whether the init script of `service` under `root` says it runs.
pub fn status(root: &Path, service: &str) -> bool {
    std::process::Command::new(root.join("etc/init.d").join(service))
        .arg("status")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
