//! The test fixture: a fake EL6 manager host (fixtures/host-el6, the tree
//! `imlrecover demo` embeds too) copied to a temporary `--root`, a bundle
//! directory beside it, the backup test recipe, and the verbs a test runs
//! against it: `backup`, `plan`, `apply`, `audit` (`push` and `pull` are
//! verbs of the off-host store, support::sftp).

use super::cli::{Imlrecover, Output};
use super::world::World;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub struct Host {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub bundles: PathBuf,
}

impl Host {
    pub fn new() -> Host {
        Host::of("host-el6")
    }

    /// A host whose root is a copy of `fixtures/TREE`.
    pub fn of(tree: &str) -> Host {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        copy_tree(&super::cli::fixtures().join(tree), &root);
        let bundles = tmp.path().join("bundles");
        Host { tmp, root, bundles }
    }

    /// The verbs of the shared test world on this host, with `recipe` and
    /// its variable arguments (`--bundle` is `latest`, not the directory).
    pub fn world(&self, recipe: PathBuf, vars: Vec<OsString>) -> World {
        World {
            recipe,
            vars,
            root: self.root.clone(),
            bundles: self.bundles.clone(),
        }
    }

    /// A host with an empty root, for recipes that name no file (a
    /// database alone).
    pub fn empty() -> Host {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        let bundles = tmp.path().join("bundles");
        Host { tmp, root, bundles }
    }

    /// `imlrecover SUB -r RECIPE --root ROOT` and this host's bundle
    /// directory as SUB takes it (`--bundle-dir` for backup, `--bundle`
    /// for the rest).
    pub fn cmd(&self, sub: &str, recipe: &Path) -> Imlrecover {
        let bundle = if sub == "backup" {
            "--bundle-dir"
        } else {
            "--bundle"
        };
        self.bare(sub, recipe).arg(bundle).arg(&self.bundles)
    }

    /// `imlrecover SUB -r RECIPE --root ROOT`, no bundle.
    pub fn bare(&self, sub: &str, recipe: &Path) -> Imlrecover {
        Imlrecover::new()
            .args([sub, "-r"])
            .arg(recipe)
            .arg("--root")
            .arg(&self.root)
    }

    /// `imlrecover backup -r RECIPE` of this host into its bundle dir; must succeed.
    pub fn backup(&self, recipe: &Path) {
        self.backup_with(recipe, &[] as &[&str]);
    }

    /// [`Host::backup`] with more arguments (`--var …`); must succeed.
    pub fn backup_with<S: AsRef<OsStr>>(&self, recipe: &Path, extra: &[S]) {
        self.cmd("backup", recipe).args(extra).run().code(0);
    }

    /// `imlrecover backup` with more arguments, whatever its outcome.
    pub fn try_backup(&self, recipe: &Path, extra: &[&str]) -> Output {
        self.cmd("backup", recipe).args(extra).run()
    }

    /// `imlrecover plan` of this host against its bundles.
    pub fn plan(&self, recipe: &Path, extra: &[&str]) -> Output {
        self.cmd("plan", recipe).args(extra).run()
    }

    /// `imlrecover apply` of this host from its bundles.
    pub fn apply(&self, recipe: &Path, extra: &[&str]) -> Output {
        self.cmd("apply", recipe).args(extra).run()
    }

    /// `imlrecover audit` of this host against its bundles.
    pub fn audit(&self, recipe: &Path, extra: &[&str]) -> Output {
        self.cmd("audit", recipe).args(extra).run()
    }

    /// fixtures/backup/el6.hcl without its `database` block, for tests that
    /// need no PostgreSQL.
    pub fn files_recipe(&self) -> PathBuf {
        let text = std::fs::read_to_string(recipe()).expect("read el6.hcl");
        let cut = text.find("database \"chroma\"").expect("database block");
        let path = self.tmp.path().join("files.hcl");
        std::fs::write(&path, &text[..cut]).expect("write recipe");
        path
    }

    pub fn file(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The bundle `latest` points at, resolved.
    pub fn latest(&self) -> PathBuf {
        std::fs::canonicalize(self.bundles.join("latest")).expect("latest")
    }

    /// Complete bundles (timestamp-named directories), sorted.
    pub fn bundle_names(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(&self.bundles) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }
}

/// A temp dir below `dir` the drill's throwaway cluster (run as postgres)
/// can use: world-writable and sticky, `dir` opened to others.
pub fn drill_tmp(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join("drill-tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

pub fn recipe() -> PathBuf {
    super::cli::fixtures().join("backup/el6.hcl")
}

pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let to = dst.join(entry.file_name());
        let ft = entry.file_type().expect("file type");
        if ft.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).expect("readlink");
            std::os::unix::fs::symlink(target, &to).expect("symlink");
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

pub fn manifest(bundle: &Path) -> imlrecover::bundle::Manifest {
    let bytes = std::fs::read(bundle.join("manifest.json")).expect("manifest");
    serde_json::from_slice(&bytes).expect("manifest parses")
}

pub fn write_manifest(bundle: &Path, m: &imlrecover::bundle::Manifest) {
    let json = serde_json::to_vec_pretty(m).expect("serialize");
    std::fs::write(bundle.join("manifest.json"), json).expect("write manifest");
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

pub fn blake3_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).expect("read"))
        .to_hex()
        .to_string()
}
